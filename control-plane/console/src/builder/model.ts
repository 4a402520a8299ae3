// The pipeline builder's model: the YAML text is the truth. The canvas is derived from it
// (`readPipeline` → `Graph`) and every canvas edit is a targeted change of the YAML document
// (`yaml`'s Document API), so comments and the layout of untouched parts are kept.
import { parseAllDocuments, isMap, isSeq, Document, YAMLMap, YAMLSeq } from 'yaml';
import { nodeKinds } from './schema';

/** Where an edge leaves its node: `next`, `default` (route) or `rule:<i>` (route rule i). */
export type Port = string;

export interface GraphNode {
  id: string;
  /** The kind field set on the node (`filter`, `map`, ...), or `unknown`. */
  kind: string;
  /** Index in `spec.nodes`. */
  index: number;
  /** The value of the kind field (for `route`: the rules, without their `next`). */
  config: unknown;
}

export interface GraphEdge {
  source: string;
  target: string;
  port: Port;
  /** What the canvas shows on the edge (a rule's name or condition, `default`). */
  label?: string;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

/** A parsed builder file: all its YAML documents and which one is the pipeline. */
export interface PipelineFile {
  docs: Document.Parsed[];
  /** Index of the `kind: Pipeline` document, -1 when there is none. */
  index: number;
  /** YAML syntax errors (the graph cannot be read while there are any). */
  syntaxErrors: { line: number; message: string }[];
}

export function parseFile(text: string): PipelineFile {
  const docs = parseAllDocuments(text, { prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  const syntaxErrors: { line: number; message: string }[] = [];
  const lineOf = (pos: number) => text.slice(0, pos).split('\n').length;
  for (const d of list) {
    for (const e of d.errors) syntaxErrors.push({ line: lineOf(e.pos[0]), message: e.message });
  }
  const index = list.findIndex((d) => d.get('kind') === 'Pipeline');
  return { docs: list, index, syntaxErrors };
}

export function fileText(file: PipelineFile): string {
  return file.docs
    .map((d, i) => {
      const s = d.toString({ lineWidth: 0 });
      return i > 0 && !s.startsWith('---') ? `---\n${s}` : s;
    })
    .join('');
}

export function asList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/** The kind field a spec node sets (the first of the schema's node kinds that is present). */
export function kindOf(node: Record<string, unknown>): string {
  return nodeKinds().find((k) => node[k] !== undefined && node[k] !== null) ?? 'unknown';
}

/** Reads the graph of a pipeline's `spec.nodes` (plain JSON). */
export function graphFromSpec(specNodes: unknown[]): Graph {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  specNodes.forEach((raw, index) => {
    const n = (raw ?? {}) as Record<string, unknown>;
    const id = String(n.id ?? `#${index}`);
    const kind = kindOf(n);
    let config = kind === 'unknown' ? null : n[kind];
    if (kind === 'route' && Array.isArray(config)) {
      config = config.map((rule: Record<string, unknown>, i: number) => {
        const { next, ...rest } = rule ?? {};
        for (const t of asList(next))
          edges.push({ source: id, target: t, port: `rule:${i}`, label: String(rule?.name ?? rule?.when ?? `rule ${i + 1}`) });
        return rest;
      });
    }
    for (const t of asList(n.next)) edges.push({ source: id, target: t, port: 'next' });
    for (const t of asList(n.default)) edges.push({ source: id, target: t, port: 'default', label: 'default' });
    nodes.push({ id, kind, index, config });
  });
  return { nodes, edges };
}

/** Writes a graph back as `spec.nodes` (one target → a string, several → a list). */
export function specFromGraph(graph: Graph): Record<string, unknown>[] {
  const one = (ts: string[]) => (ts.length === 1 ? ts[0] : ts);
  return graph.nodes.map((n) => {
    const out: Record<string, unknown> = { id: n.id };
    const from = (port: Port) => graph.edges.filter((e) => e.source === n.id && e.port === port).map((e) => e.target);
    if (n.kind === 'route' && Array.isArray(n.config)) {
      out.route = n.config.map((rule: Record<string, unknown>, i: number) => {
        const ts = from(`rule:${i}`);
        return ts.length ? { ...rule, next: one(ts) } : { ...rule };
      });
      const d = from('default');
      if (d.length) out.default = one(d);
    } else if (n.kind !== 'unknown') {
      out[n.kind] = n.config;
    }
    const next = from('next');
    if (next.length) out.next = one(next);
    return out;
  });
}

/** The pipeline's spec nodes as plain JSON ([] when the file has no pipeline). */
export function specNodes(file: PipelineFile): unknown[] {
  if (file.index < 0) return [];
  const nodes = file.docs[file.index].toJS()?.spec?.nodes;
  return Array.isArray(nodes) ? nodes : [];
}

export function readGraph(file: PipelineFile): Graph {
  return graphFromSpec(specNodes(file));
}

// ---- edits: each changes the pipeline document in place --------------------------------

function pipelineDoc(file: PipelineFile): Document.Parsed {
  if (file.index < 0) throw new Error('the file has no `kind: Pipeline` document');
  return file.docs[file.index];
}

function nodesSeq(doc: Document): YAMLSeq {
  let seq = doc.getIn(['spec', 'nodes']);
  if (!isSeq(seq)) {
    doc.setIn(['spec', 'nodes'], doc.createNode([]));
    seq = doc.getIn(['spec', 'nodes']);
  }
  // `nodes: []` in flow style would keep every added node on one line.
  (seq as YAMLSeq).flow = false;
  return seq as YAMLSeq;
}

function indexOf(doc: Document, id: string): number {
  return nodesSeq(doc).items.findIndex((it) => isMap(it) && (it as YAMLMap).get('id') === id);
}

function portPath(doc: Document, source: string, port: Port): (string | number)[] {
  const i = indexOf(doc, source);
  if (i < 0) throw new Error(`no node \`${source}\``);
  if (port.startsWith('rule:')) return ['spec', 'nodes', i, 'route', Number(port.slice(5)), 'next'];
  return ['spec', 'nodes', i, port];
}

function setTargets(doc: Document, path: (string | number)[], targets: string[]) {
  if (targets.length === 0) doc.deleteIn(path);
  else if (targets.length === 1) doc.setIn(path, targets[0]);
  else {
    const seq = doc.createNode(targets) as YAMLSeq;
    seq.flow = true;
    doc.setIn(path, seq);
  }
}

function targetsAt(doc: Document, path: (string | number)[]): string[] {
  const v = doc.getIn(path);
  if (isSeq(v)) return (v as YAMLSeq).items.map((x) => String((x as { value?: unknown }).value ?? x));
  return v === undefined || v === null ? [] : [String(v)];
}

/** A free node id: `kind`, `kind-2`, ... */
export function freshId(file: PipelineFile, kind: string): string {
  const taken = new Set(readGraph(file).nodes.map((n) => n.id));
  if (!taken.has(kind)) return kind;
  for (let i = 2; ; i++) if (!taken.has(`${kind}-${i}`)) return `${kind}-${i}`;
}

export function addNode(file: PipelineFile, id: string, kind: string, config: unknown) {
  const doc = pipelineDoc(file);
  nodesSeq(doc).add(doc.createNode({ id, [kind]: config }));
}

export function setNodeConfig(file: PipelineFile, id: string, kind: string, config: unknown) {
  const doc = pipelineDoc(file);
  const i = indexOf(doc, id);
  if (i < 0) throw new Error(`no node \`${id}\``);
  if (kind === 'route' && Array.isArray(config)) {
    // Keep each rule's `next` (edges), which the inspector does not edit.
    const old = doc.getIn(['spec', 'nodes', i, 'route']);
    const rules = config.map((r: Record<string, unknown>, k: number) => {
      const next = isSeq(old) ? (old.items[k] as YAMLMap | undefined)?.get('next', true) : undefined;
      return next === undefined ? r : { ...r, next: (next as { toJSON?: () => unknown })?.toJSON?.() ?? next };
    });
    doc.setIn(['spec', 'nodes', i, 'route'], doc.createNode(rules));
    return;
  }
  doc.setIn(['spec', 'nodes', i, kind], doc.createNode(config));
}

export function connect(file: PipelineFile, source: string, target: string, port: Port = 'next') {
  const doc = pipelineDoc(file);
  const path = portPath(doc, source, port);
  const ts = targetsAt(doc, path);
  if (!ts.includes(target)) setTargets(doc, path, [...ts, target]);
}

export function disconnect(file: PipelineFile, source: string, target: string, port: Port) {
  const doc = pipelineDoc(file);
  if (indexOf(doc, source) < 0) return; // the node went first, and its edges with it
  const path = portPath(doc, source, port);
  setTargets(doc, path, targetsAt(doc, path).filter((t) => t !== target));
}

/** Removes a node and every edge into it. */
export function deleteNode(file: PipelineFile, id: string) {
  const doc = pipelineDoc(file);
  for (const e of readGraph(file).edges) if (e.target === id && e.source !== id) disconnect(file, e.source, id, e.port);
  const i = indexOf(doc, id);
  if (i >= 0) nodesSeq(doc).delete(i);
}

// ---- layout --------------------------------------------------------------------------------

/** Which way the canvas flows: top to bottom, or left to right (for wide, shallow graphs). */
export type Direction = 'TB' | 'LR';

/**
 * Layered layout: a node's layer is its longest distance from a root. Layers run top to
 * bottom, or left to right when a layer holds more nodes than there are layers (a wide fan-out
 * fits a tall canvas better that way).
 */
export function layout(graph: Graph): { positions: Record<string, { x: number; y: number }>; direction: Direction } {
  const depth: Record<string, number> = {};
  for (const n of graph.nodes) depth[n.id] = 0;
  // Longest path by relaxation (bounded: a cycle is an error the server reports anyway).
  for (let round = 0; round < graph.nodes.length; round++) {
    let changed = false;
    for (const e of graph.edges) {
      if (depth[e.source] === undefined || depth[e.target] === undefined) continue;
      if (depth[e.target] < depth[e.source] + 1) {
        depth[e.target] = depth[e.source] + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const counts: Record<number, number> = {};
  const slot: Record<string, number> = {};
  for (const n of graph.nodes) {
    const d = depth[n.id];
    slot[n.id] = counts[d] ?? 0;
    counts[d] = slot[n.id] + 1;
  }
  const layers = Object.keys(counts).length;
  const widest = Math.max(0, ...Object.values(counts));
  const direction: Direction = widest > layers ? 'LR' : 'TB';
  const positions: Record<string, { x: number; y: number }> = {};
  for (const n of graph.nodes) {
    const d = depth[n.id];
    positions[n.id] = direction === 'TB' ? { x: 40 + slot[n.id] * 210, y: 40 + d * 120 } : { x: 40 + d * 250, y: 40 + slot[n.id] * 95 };
  }
  return { positions, direction };
}

// ---- diagnostics ---------------------------------------------------------------------------

export interface Diagnostic {
  line: number;
  column: number;
  document: number;
  path: string;
  code: string;
  message: string;
}

/** The node a diagnostic is about (by its `/spec/nodes/<i>` path), if any. */
export function nodeOfDiagnostic(file: PipelineFile, d: Diagnostic): string | undefined {
  if (d.document !== file.index && !(file.docs.length === 1 && d.document === 0)) return undefined;
  const m = /^\/spec\/nodes\/(\d+)/.exec(d.path ?? '');
  if (!m) return undefined;
  return readGraph(file).nodes[Number(m[1])]?.id;
}
