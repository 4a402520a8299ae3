// YAML ⇄ graph sync: every example pipeline survives graph → YAML → graph, canvas edits land
// in the YAML (keeping its comments), and YAML edits show on the graph.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as M from './model';

const examplesDir = join(process.cwd(), '../../pipelines/examples');
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));

/** One target as a string, several as a list (the two spellings of `next`). */
function normalise(nodes: unknown[]): unknown {
  return JSON.parse(JSON.stringify(nodes), (k, v) => ((k === 'next' || k === 'default') && Array.isArray(v) && v.length === 1 ? v[0] : v));
}

describe('every example file', () => {
  it('there are examples', () => expect(examples.length).toBeGreaterThan(0));
  for (const name of examples) {
    const text = readFileSync(join(examplesDir, name), 'utf8');
    it(`${name}: graph → spec nodes gives back the file's nodes`, () => {
      const file = M.parseFile(text);
      expect(file.syntaxErrors).toEqual([]);
      expect(file.index).toBeGreaterThanOrEqual(0);
      const nodes = M.specNodes(file);
      const graph = M.readGraph(file);
      expect(graph.nodes.length).toBe(nodes.length);
      expect(graph.nodes.every((n) => n.kind !== 'unknown')).toBe(true);
      expect(M.specFromGraph(graph)).toEqual(normalise(nodes));
    });
    it(`${name}: rebuilding it on an empty canvas gives the same graph`, () => {
      const orig = M.parseFile(text);
      const graph = M.readGraph(orig);
      const fresh = M.parseFile('apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  source: {stream: S}\n  nodes: []\n');
      for (const n of graph.nodes) {
        // Route rules are added with their config; their edges come from `connect`.
        M.addNode(fresh, n.id, n.kind, n.config);
      }
      for (const e of graph.edges) M.connect(fresh, e.source, e.target, e.port);
      const again = M.readGraph(M.parseFile(M.fileText(fresh)));
      expect(again.nodes).toEqual(graph.nodes);
      expect(new Set(again.edges.map((e) => `${e.source}|${e.port}|${e.target}`))).toEqual(new Set(graph.edges.map((e) => `${e.source}|${e.port}|${e.target}`)));
    });
    it(`${name}: an untouched file prints back to the same documents, comments included`, () => {
      const file = M.parseFile(text);
      const out = M.fileText(file);
      expect(M.parseFile(out).docs.map((d) => d.toJS())).toEqual(file.docs.map((d) => d.toJS()));
      for (const comment of text.split('\n').filter((l) => l.trim().startsWith('#'))) expect(out).toContain(comment.trim());
    });
  }
});

describe('canvas edits change the YAML', () => {
  const base = readFileSync(join(examplesDir, 'order-routing.yaml'), 'utf8');

  it('adding and connecting a node writes it under spec.nodes and keeps comments', () => {
    const f = M.parseFile(base);
    M.addNode(f, 'tag', 'map', { set: { tier: "'gold'" } });
    M.connect(f, 'high-value', 'tag');
    const text = M.fileText(f);
    expect(text).toContain('# Rule 1: high-value order routing.');
    const g = M.readGraph(M.parseFile(text));
    expect(g.nodes.find((n) => n.id === 'tag')).toMatchObject({ kind: 'map', config: { set: { tier: "'gold'" } } });
    expect(g.edges).toContainEqual({ source: 'high-value', target: 'tag', port: 'next' });
  });

  it('deleting a node removes the edges into it', () => {
    const f = M.parseFile(base);
    M.deleteNode(f, 'notify-vip');
    const g = M.readGraph(M.parseFile(M.fileText(f)));
    expect(g.nodes.map((n) => n.id)).not.toContain('notify-vip');
    expect(g.edges.some((e) => e.target === 'notify-vip')).toBe(false);
    // high-value kept its other target, now written as a single id.
    expect(M.specNodes(M.parseFile(M.fileText(f))).find((n) => (n as { id: string }).id === 'high-value')).toMatchObject({ next: 'copy-high-value' });
  });

  it('connecting a route rule and the default port', () => {
    const f = M.parseFile(base);
    M.disconnect(f, 'regional', 'publish-global', 'default');
    M.connect(f, 'regional', 'publish-us', 'rule:1');
    const g = M.readGraph(M.parseFile(M.fileText(f)));
    expect(g.edges.filter((e) => e.source === 'regional' && e.port === 'default')).toEqual([]);
    expect(g.edges.filter((e) => e.port === 'rule:1').map((e) => e.target).sort()).toEqual(['publish-eu', 'publish-us']);
  });

  it('inspector changes keep route rules pointing where they did', () => {
    const f = M.parseFile(base);
    const route = M.readGraph(f).nodes.find((n) => n.id === 'regional')!;
    const rules = (route.config as Record<string, unknown>[]).map((r, i) => (i === 0 ? { ...r, when: "data.region LIKE 'us-%' OR data.region = 'ca'" } : r));
    M.setNodeConfig(f, 'regional', 'route', rules);
    const g = M.readGraph(M.parseFile(M.fileText(f)));
    expect((g.nodes.find((n) => n.id === 'regional')!.config as { when: string }[])[0].when).toContain("'ca'");
    expect(g.edges.filter((e) => e.source === 'regional').length).toBe(4);
  });
});

describe('YAML edits show on the graph', () => {
  it('a node typed into the YAML appears, and a syntax error is reported with its line', () => {
    const text = 'apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  source: {stream: S}\n  nodes:\n    - id: a\n      filter: "true"\n      next: b\n    - id: b\n      publish: {subject: out}\n';
    const g = M.readGraph(M.parseFile(text));
    expect(g.nodes.map((n) => [n.id, n.kind])).toEqual([
      ['a', 'filter'],
      ['b', 'publish'],
    ]);
    expect(g.edges).toEqual([{ source: 'a', target: 'b', port: 'next' }]);
    const broken = M.parseFile(text.replace('next: b', 'next: [b'));
    expect(broken.syntaxErrors.length).toBeGreaterThan(0);
    expect(broken.syntaxErrors[0].line).toBeGreaterThanOrEqual(9);
  });

  it('a diagnostic with a node path is placed on that node', () => {
    const f = M.parseFile('apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {name: x}\nspec:\n  source: {stream: S}\n  nodes:\n    - id: a\n      filter: "nope("\n');
    const d = { line: 8, column: 15, document: 0, path: '/spec/nodes/0/filter', code: 'invalid-expression', message: 'bad SQL' };
    expect(M.nodeOfDiagnostic(f, d)).toBe('a');
    expect(M.nodeOfDiagnostic(f, { ...d, path: '/spec/source' })).toBeUndefined();
  });
});
