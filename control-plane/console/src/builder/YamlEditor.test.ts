// The YAML editor: canvas edits replace only the changed span, and the schema behind it
// completes a Pipeline's fields at every depth (the `Pipeline` branch of the file schema).
import { describe, expect, it } from 'vitest';
import { EditorState } from '@codemirror/state';
import { CompletionContext } from '@codemirror/autocomplete';
import { yamlCompletion, yamlSchema } from 'codemirror-json-schema/yaml';
import { minimalChange, pipelineSchema } from './YamlEditor';

async function complete(doc: string): Promise<string[]> {
  const state = EditorState.create({ doc, extensions: [yamlSchema(pipelineSchema() as never)] });
  const r = await yamlCompletion()(new CompletionContext(state, doc.length, true));
  return r && 'options' in r ? r.options.map((o) => o.label) : [];
}

describe('YAML editor', () => {
  it('replaces only the span that changed', () => {
    expect(minimalChange('a: 1\nb: 2\n', 'a: 1\nb: 3\n')).toEqual({ from: 8, to: 9, insert: '3' });
    expect(minimalChange('x', 'x')).toBeNull();
    expect(minimalChange('ab', 'abc')).toEqual({ from: 2, to: 2, insert: 'c' });
  });
  it('completes from the schema at the top level and inside spec', async () => {
    expect(await complete('kind: Pipeline\nm')).toContain('metadata');
    expect(await complete('kind: Pipeline\nspec:\n  source: {}\n  e')).toEqual(expect.arrayContaining(['errors', 'execution']));
  });
});
