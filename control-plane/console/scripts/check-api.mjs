// Fails when src/api/schema.d.ts is not what `npm run gen:api` makes of src/api/openapi.json
// (the server's document, kept current by the control plane's test
// `openapi::console_copy_of_the_document_is_current`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const out = join(mkdtempSync(join(tmpdir(), 'weir-api-')), 'schema.d.ts');
execFileSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', 'src/api/openapi.json', '-o', out], { stdio: 'ignore' });
if (readFileSync(out, 'utf8') !== readFileSync('src/api/schema.d.ts', 'utf8')) {
  console.error('check:api: src/api/schema.d.ts is out of date with src/api/openapi.json: run `npm run gen:api` and commit it');
  process.exit(1);
}
console.log('check:api: generated API types are current');
