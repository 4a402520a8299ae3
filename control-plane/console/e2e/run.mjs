// Browser tests of the console in headless Debian chromium (playwright-core), against a real
// nats-server, `weir serve` and `weir worker` that this script starts on free ports:
// an admin logs in with an API key, builds filter → map → publish from the palette, sees a
// validation error on the node and its YAML line and fixes it, saves, tests the pipeline on
// messages captured from its source stream (paths highlighted on the canvas), deploys and sees
// the pipeline's and each node's counters rise to the exact counts; opens the DLQ, edits a dead letter and redrives it to
// the output; a viewer (password login) sees no edit or deploy controls and the API refuses
// them anyway. Screenshots of the main screens: WEIR_CONSOLE_SHOTS=docs/console refreshes the
// committed ones.
//
// Usage: node e2e/run.mjs [path/to/weir]   (default: $WEIR_BIN, else $CARGO_TARGET_DIR/debug/weir)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, openSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(import.meta.dirname, '../../..');
const weir = process.argv[2] ?? process.env.WEIR_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug/weir');
const natsBin = process.env.WEIR_NATS_SERVER ?? join(repo, '.tools/bin/nats-server');
const chromiumBin = process.env.CHROMIUM ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'weir-console-e2e-'));
// Screenshots: into $TMPDIR/weir-console-screenshots, or where WEIR_CONSOLE_SHOTS says (docs/console to refresh the committed ones).
const shots = resolve(process.env.WEIR_CONSOLE_SHOTS ?? join(tmpdir(), 'weir-console-screenshots'));
const KEY = 'weir_e2eConsoleBrowserTestKey0123456789abcdefghij';
const VIEWER = { email: 'viewer@example.com', password: 'viewer-password-123' };
const started = Date.now();
const children = [];

function log(...a) {
  console.log(`[console e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
}

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

function start(name, cmd, args, env = {}) {
  const out = openSync(join(dir, `${name}.log`), 'w');
  const child = spawn(cmd, args, { env: { ...process.env, ...env, HOME: dir }, stdio: ['ignore', out, out] });
  child.logFile = join(dir, `${name}.log`);
  children.push(child);
  return child;
}

function stopAll() {
  for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
}

async function waitFor(what, f, ms = 20000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

const RESOURCES = `apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec:
  subjects: ["orders.>"]
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec:
  subjects: ["out.>"]
`;

async function main() {
  check(existsSync(weir), `no weir binary at ${weir} (build it with cargo build --bin weir)`);
  check(existsSync(chromiumBin), `no chromium at ${chromiumBin} (bash deploy/setup.sh installs it)`);
  const natsPort = await freePort();
  const addr = `127.0.0.1:${await freePort()}`;
  const base = `http://${addr}`;
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  start('nats', natsBin, ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(dir, 'nats')]);
  await waitFor('nats-server', () => new Promise((ok) => {
    const s = createServer();
    s.once('error', () => ok(true));
    s.listen(natsPort, '127.0.0.1', () => s.close(() => ok(false)));
  }));
  const serve = start('serve', weir, ['serve', '--nats', natsUrl, '--addr', addr, '--data-dir', join(dir, 'data')], { WEIR_BOOTSTRAP_API_KEY: KEY });
  await waitFor('weir serve', async () => (await fetch(`${base}/healthz`)).ok).catch((e) => {
    throw new Error(`${e.message}\n${readFileSync(serve.logFile, 'utf8')}`);
  });
  start('worker', weir, ['worker', '--nats', natsUrl, '--id', 'console-e2e-w1']);
  const call = async (method, path, body, token = KEY) => {
    const r = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };
  // The streams, applied as a user would; a viewer with a password.
  writeFileSync(join(dir, 'streams.yaml'), RESOURCES);
  // The examples too (not deployed), so that the builder shows a real fan-out pipeline.
  const examples = ['order-processing.yaml', 'order-routing.yaml'].flatMap((f) => ['-f', join(repo, 'pipelines/examples', f)]);
  execFileSync(weir, ['apply', '-f', join(dir, 'streams.yaml'), ...examples], { env: { ...process.env, WEIR_URL: base, WEIR_API_KEY: KEY, HOME: dir } });
  const created = await call('POST', '/users', { email: VIEWER.email, role: 'viewer', password: VIEWER.password });
  check(created.status === 201 || created.status === 200, `create viewer: ${JSON.stringify(created)}`);

  // A fresh profile directory per run.
  const context = await chromium.launchPersistentContext(join(dir, 'chromium'), {
    executablePath: chromiumBin,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && (consoleErrors.push(m.text()), log(`browser console: ${m.text()}`)));
    page.on('pageerror', (e) => (consoleErrors.push(String(e)), log(`page error: ${e}`)));
    page.setDefaultTimeout(15000);

    // 1. Log in with the admin's API key.
    await page.goto(`${base}/`);
    // By keyboard only: the key field has the focus, Enter submits.
    await page.getByLabel('API key').waitFor();
    await page.keyboard.type(KEY);
    await page.screenshot({ path: join(shots, 'login.png') });
    await page.keyboard.press('Enter');
    await page.getByTestId('role').filter({ hasText: 'admin' }).waitFor();
    log('logged in as admin (keyboard only)');

    // 2. Build filter → map → publish from the palette.
    await page.getByRole('link', { name: 'Pipelines' }).click();
    await page.getByRole('button', { name: 'New pipeline' }).click();
    // The YAML editor (CodeMirror, loaded lazily): read and replace its text through its handle.
    const yaml = {
      text: () => page.getByTestId('yaml').evaluate((el) => el.weirEditor.get()),
      fill: (t) => page.getByTestId('yaml').evaluate((el, t) => el.weirEditor.set(t), t),
    };
    await page.locator('.cm-content').waitFor();
    await yaml.fill((await yaml.text()).replace('my-pipeline', 'big-orders'));
    await page.getByTestId('palette-filter').click();
    const inspector = page.getByRole('complementary', { name: 'inspector' });
    // A broken expression: the error shows on the node and on its YAML line.
    await inspector.getByLabel('filter').fill('data.amount >');
    await page.getByTestId('node-filter').and(page.locator('.has-error')).waitFor();
    const badLine = await page.locator('.cm-lineNumbers .cm-gutterElement.bad').first().textContent();
    check(Number(badLine) > 0, 'an error line is marked in the YAML gutter');
    check((await yaml.text()).split('\n')[Number(badLine) - 1].includes('filter'), `marked line ${badLine} is the filter's`);
    await page.locator('.cm-lint-marker-error').first().waitFor();
    await page.locator('.cm-lintRange-error').first().waitFor();
    await page.screenshot({ path: join(shots, 'builder-error.png') });
    log(`validation error shown on node filter and YAML line ${badLine}`);
    await inspector.getByLabel('filter').fill('data.amount > 100');
    // Palette entries are buttons: reachable with Tab and pressed with Enter.
    await page.getByTestId('palette-map').focus();
    await page.keyboard.press('Enter');
    await inspector.getByLabel('new set key').fill('tier');
    await inspector.getByRole('button', { name: 'add', exact: true }).first().click();
    await inspector.getByLabel('tier', { exact: true }).fill("'big'");
    await page.getByTestId('palette-publish').click();
    await inspector.getByLabel('subject *').first().fill('out.big');
    await page.getByTestId('validity').filter({ hasText: /^valid$/ }).waitFor();
    check((await page.locator('.wnode.has-error').count()) === 0, 'no node has an error once fixed');
    const text = await yaml.text();
    for (const want of ['id: filter', 'filter: data.amount > 100', 'next: map', "tier: \"'big'\"", 'next: publish', 'subject: out.big'])
      check(text.includes(want), `the YAML has \`${want}\`:\n${text}`);
    log('built filter → map → publish; valid');
    // The YAML side edits the canvas too.
    await yaml.fill(text.replace('subject: out.big', 'subject: out.large'));
    await page.getByTestId('node-publish').filter({ hasText: 'out.large' }).waitFor();
    await yaml.fill(text);
    await page.getByTestId('node-publish').filter({ hasText: 'out.big' }).waitFor();
    await page.getByTestId('validity').filter({ hasText: /^valid$/ }).waitFor();
    log('a YAML edit shows on the canvas');
    // The editor completes from the JSON Schema: a key begun under `spec:` is offered the
    // spec's fields.
    await yaml.fill(`${text.trimEnd()}\n  e`);
    await page.locator('.cm-line').last().click();
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Control+Space');
    const options = page.locator('.cm-tooltip-autocomplete li');
    await options.first().waitFor();
    const offered = await options.allTextContents();
    check(offered.some((o) => o.includes('errors')) && offered.some((o) => o.includes('execution')), `schema completion offers the spec's fields: ${offered}`);
    await page.keyboard.press('Escape');
    await yaml.fill(text);
    await page.getByTestId('validity').filter({ hasText: /^valid$/ }).waitFor();
    log(`schema completion offers ${offered.length} fields under spec`);

    // 3. Save; traffic on the source stream; test on the last 12 messages captured from it.
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(`${base}/pipelines/big-orders`);
    for (let i = 0; i < 20; i++) {
      const r = await call('POST', '/nats/publish', { subject: `orders.created.${i}`, payload: JSON.stringify({ id: i, amount: i * 10 }) });
      check(r.status === 200, `publish: ${JSON.stringify(r)}`);
    }
    // One that cannot be decoded: a dead letter.
    await call('POST', '/nats/publish', { subject: 'orders.created.bad', payload: '{"id": 99, "amount":' });
    await page.getByTestId('test-mode-capture').check();
    await page.getByTestId('test-count').fill('12');
    await page.getByTestId('test-run').click();
    const results = page.getByTestId('test-results').locator('li');
    await waitFor('12 test results', async () => (await results.count()) === 12);
    const outcomes = await results.locator('.outcome').allTextContents();
    check(outcomes.filter((o) => o === 'filtered').length === 2 && outcomes.filter((o) => o === 'outputs').length === 9 && outcomes.at(-1) === 'error', `test outcomes ${outcomes}`);
    // The first (id 9, amount 90) was filtered: its path is the filter alone.
    check((await page.getByTestId('test-path').textContent()) === 'filter', 'a filtered input stops at the filter');
    await waitFor('its path highlighted on the canvas', async () => (await page.locator('.wnode.trace-path').count()) === 1);
    await page.getByTestId('test-result-5').click();
    await page.getByTestId('test-path').filter({ hasText: 'filter → map → publish' }).waitFor();
    await waitFor('an output highlighted through all three nodes', async () => (await page.locator('.wnode.trace-path').count()) === 3);
    check((await page.getByTestId('test-output-subject').textContent()) === 'out.big', 'its output subject');
    check((await page.getByTestId('test-detail').textContent()).includes('"tier": "big"'), 'its output is mapped');
    await page.getByTestId('test-result-11').click();
    check((await page.getByTestId('test-failure').textContent()).startsWith('decode error at source'), 'the bad one fails to decode');
    await page.getByTestId('test-result-5').click();
    await page.locator('.react-flow__controls-fitview').click();
    await page.screenshot({ path: join(shots, 'builder-test.png') });
    log('tested on 12 captured messages: 2 filtered, 9 outputs, 1 decode error; paths highlighted');

    // 4. Deploy; the pipeline's and each node's counters reach the exact counts, live.
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: 'Deploy: done' }).waitFor();
    await waitFor('the worker to run the pipeline', async () => (await call('GET', '/pipelines/big-orders/status')).json.running_workers === 1, 30000);
    const readCounts = async () => Object.fromEntries(await Promise.all(['in', 'out', 'filtered', 'dlq'].map(async (k) => [k, Number(await page.getByTestId(`count-${k}`).textContent())])));
    await waitFor('counters in the builder', async () => {
      const c = await readCounts();
      return c.in >= 21 && c.out >= 9 && c.filtered >= 11 && c.dlq >= 1;
    }, 30000);
    const counts = await readCounts();
    check(counts.in === 21 && counts.out === 9 && counts.filtered === 11 && counts.dlq === 1, `counters ${JSON.stringify(counts)}`);
    const nodeCount = async (k, id) => Number(await page.getByTestId(`node-${k}-${id}`).textContent());
    const expectNodes = { filter: [20, 9], map: [9, 9], publish: [9, 9] };
    await waitFor('node counters on the canvas', async () => {
      for (const [id, [i, o]] of Object.entries(expectNodes)) if ((await nodeCount('in', id)) !== i || (await nodeCount('out', id)) !== o) return false;
      return true;
    }, 30000).catch(async (e) => {
      throw new Error(`${e.message}: ${await page.locator('.wnode-live').allTextContents()}`);
    });
    check((await page.getByTestId('source-errors').textContent()).includes('1 undecodable'), 'the undecodable input shows at the source');
    await waitFor('both edges to carry 9 messages', async () => (await page.locator('.react-flow__edge-text').allTextContents()).filter((t) => t === '9').length === 2);
    await page.locator('.react-flow__controls-fitview').click();
    await page.screenshot({ path: join(shots, 'builder.png') });
    log(`deployed; counters ${JSON.stringify(counts)}`);

    // 5. An example with a route (one handle per rule) renders every node and edge.
    await page.goto(`${base}/pipelines/order-routing`);
    await page.getByTestId('node-publish-global').waitFor();
    // React Flow draws edges only once it has measured their nodes: wait, do not sample.
    await waitFor('order-routing to show its 10 nodes and 9 edges', async () => (await page.locator('.wnode').count()) === 10 && (await page.locator('.react-flow__edge').count()) === 9).catch(async (e) => {
      const nodes = await page.locator('.react-flow__node').evaluateAll((els) => els.map((el) => `${el.dataset.id}:${getComputedStyle(el).visibility}:${el.querySelectorAll('.react-flow__handle').length}`));
      throw new Error(`${e.message}: ${nodes.join(' ')}; ${await page.locator('.react-flow__edge').count()} edges`);
    });
    await page.getByTestId('validity').filter({ hasText: /^valid$/ }).waitFor();
    await page.screenshot({ path: join(shots, 'builder-routing.png') });
    log('the order-routing example renders with its route ports');

    // 5b. A 100-node pipeline stays usable: it renders, and an edit in the YAML reaches the
    // canvas, each within a bound (the figures are logged).
    const chain = ['apiVersion: weir.dev/v1', 'kind: Pipeline', 'metadata: { name: long-chain }', 'spec:', '  source: { stream: ORDERS, subjects: ["orders.>"] }', '  nodes:'];
    for (let i = 0; i < 99; i++) chain.push(`    - id: step-${i}`, '      map:', `        set: { step: "${i}" }`, `      next: ${i < 98 ? `step-${i + 1}` : 'out'}`);
    chain.push('    - id: out', '      publish: { subject: out.chain }', '');
    writeFileSync(join(dir, 'long-chain.yaml'), chain.join('\n'));
    execFileSync(weir, ['apply', '-f', join(dir, 'long-chain.yaml')], { env: { ...process.env, WEIR_URL: base, WEIR_API_KEY: KEY, HOME: dir } });
    let started = Date.now();
    await page.goto(`${base}/pipelines/long-chain`);
    await waitFor('the 100-node pipeline to render', async () => (await page.locator('.wnode').count()) === 100);
    const renderMs = Date.now() - started;
    const longText = await yaml.text();
    check(longText.includes('subject: out.chain'), `the 100-node YAML as loaded:\n${longText.slice(-400)}`);
    started = Date.now();
    await yaml.fill(longText.replace('subject: out.chain', 'subject: out.chained'));
    await page.getByTestId('node-out').filter({ hasText: 'out.chained' }).waitFor();
    const editMs = Date.now() - started;
    check(renderMs < 8000 && editMs < 3000, `100 nodes: rendered in ${renderMs} ms, a YAML edit on the canvas in ${editMs} ms`);
    log(`100-node pipeline: rendered in ${renderMs} ms, a YAML edit reached the canvas in ${editMs} ms`);

    // 6. Overview and streams.
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('link', { name: 'big-orders' }).waitFor();
    await page.getByTestId('total-workers').filter({ hasText: '1' }).waitFor();
    await page.screenshot({ path: join(shots, 'overview.png') });
    await page.getByRole('link', { name: 'Streams' }).click();
    await page.getByRole('link', { name: 'OUT', exact: true }).click();
    await page.locator('.card').first().waitFor();
    await page.getByRole('button', { name: 'Last', exact: true }).click();
    await page.getByTestId('message').filter({ hasText: 'out.big' }).waitFor();
    check((await page.getByTestId('message').textContent()).includes('"tier": "big"'), 'the output message is mapped');
    await page.screenshot({ path: join(shots, 'streams.png') });
    log('overview and stream browser show the pipeline and its output');

    // 7. DLQ: inspect the dead letter, fix its payload, redrive; it reaches OUT.
    const outBefore = (await call('GET', '/nats/streams/OUT')).json.messages;
    await page.getByRole('link', { name: 'DLQ', exact: true }).click();
    await page.getByRole('button', { name: 'inspect' }).first().click();
    await page.getByLabel('dead letter payload').fill('{"id": 99, "amount": 990}');
    await page.screenshot({ path: join(shots, 'dlq.png') });
    await page.getByRole('button', { name: 'Redrive', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'redriven 1' }).waitFor();
    await waitFor('the redriven message on OUT', async () => (await call('GET', '/nats/streams/OUT')).json.messages === outBefore + 1, 30000);
    log('dead letter edited and redriven to the output');
    // The other screens render from the API without errors.
    for (const [link, heading] of [['Users & keys', 'Users and API keys'], ['Audit log', 'Audit log'], ['KV', 'KV buckets'], ['Tenant & quotas', 'Tenant default']]) {
      await page.getByRole('link', { name: link, exact: true }).click();
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      check((await page.getByRole('alert').count()) === 0, `${link}: ${await page.getByRole('alert').allTextContents()}`);
    }
    // A custom role: created with its grants, listed, refused when it grants an unknown
    // permission (the API's problem shown), deleted.
    await page.getByRole('link', { name: 'Users & keys', exact: true }).click();
    await page.getByTestId('role-viewer').waitFor();
    await page.getByLabel('new role name').fill('tester');
    await page.getByLabel('new role grants').fill('pipelines:read, bogus:read');
    await page.getByRole('button', { name: 'Create role' }).click();
    await page.getByTestId('role-result').filter({ hasText: 'unknown resource `bogus`' }).waitFor();
    await page.getByLabel('new role grants').fill('pipelines:read, messages:read');
    await page.getByRole('button', { name: 'Create role' }).click();
    await page.getByTestId('role-tester').filter({ hasText: 'messages:read' }).waitFor();
    await waitFor('the new role offered for users', async () => (await page.getByLabel('new user role').locator('option', { hasText: 'tester' }).count()) === 1);
    await page.screenshot({ path: join(shots, 'roles.png') });
    page.once('dialog', (d) => d.accept());
    await page.getByTestId('role-tester').getByRole('button', { name: 'delete' }).click();
    await page.getByTestId('role-result').filter({ hasText: 'role tester deleted' }).waitFor();
    // The list reloads after the message: wait for the row to go rather than count at once.
    await page.getByTestId('role-tester').waitFor({ state: 'detached' });
    log('custom role created, refused with a bad grant, deleted');
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.getByRole('cell', { name: 'admin@weir.local' }).first().waitFor();
    await page.screenshot({ path: join(shots, 'audit.png') });
    log('users, audit, KV and tenant screens render');

    // 8. A viewer: no edit or deploy controls, and the API refuses anyway.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('tab', { name: 'Password' }).click();
    await page.getByLabel('Email').fill(VIEWER.email);
    await page.getByLabel('Password').fill(VIEWER.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByTestId('role').filter({ hasText: 'viewer' }).waitFor();
    await page.goto(`${base}/pipelines/big-orders`);
    await page.getByTestId('node-publish').waitFor();
    await page.getByTestId('count-in').waitFor();
    for (const name of ['Save', 'Deploy', 'Pause', 'Undeploy', 'Delete', 'Delete node'])
      check((await page.getByRole('button', { name, exact: true }).count()) === 0, `a viewer sees no ${name} button`);
    check((await page.locator('[data-testid^="palette-"]').count()) === 0, 'a viewer sees no palette');
    check((await page.getByTestId('test-run').count()) === 1, 'a viewer may test (it changes nothing)');
    await page.locator('.cm-content').waitFor();
    check((await page.locator('.cm-content').getAttribute('contenteditable')) === 'false', 'the YAML is read-only for a viewer');
    const refused = await page.evaluate(async () => {
      const s = JSON.parse(sessionStorage.getItem('weir.session'));
      const r = await fetch('/api/v1/pipelines/big-orders/deploy', { method: 'POST', headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/json' }, body: '{}' });
      return { status: r.status, body: await r.json() };
    });
    check(refused.status === 403 && refused.body.code === 'forbidden', `the API refuses a viewer's deploy: ${JSON.stringify(refused)}`);
    await page.goto(`${base}/pipelines`);
    await page.getByRole('link', { name: 'big-orders' }).waitFor();
    check((await page.getByRole('button', { name: 'New pipeline' }).count()) === 0, 'a viewer cannot start a pipeline');
    log('viewer: read-only builder; deploy refused with 403');

    check(consoleErrors.filter((e) => !e.includes('403') && !e.includes('Failed to load resource')).length === 0, `browser console errors: ${consoleErrors.join('\n')}`);
  } finally {
    await context.close();
  }
}

mkdirSync(shots, { recursive: true });
main()
  .then(() => {
    log(`all browser checks passed; screenshots in ${shots}`);
    stopAll();
    // Keep the servers' logs and stores only when something failed.
    setTimeout(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }, 500);
  })
  .catch((e) => {
    console.error(`[console e2e] FAILED: ${e.stack ?? e}\n(logs and stores kept in ${dir})`);
    for (const c of children) if (c.logFile) console.error(`--- ${c.logFile}\n${readFileSync(c.logFile, 'utf8').slice(-3000)}`);
    stopAll();
    process.exit(1);
  });
