// The pipeline builder: the canvas (React Flow) and the YAML side by side, both editable and
// kept in sync through the YAML document (see model.ts); a palette and an inspector generated
// from the format's JSON Schema; validation as you type; save, deploy, pause, resume,
// rollback, version history and the fleet's counters for the pipeline.
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ReactFlow, Background, Controls, Handle, MarkerType, Position, useStore, useUpdateNodeInternals, type Connection, type Edge, type Node, type NodeChange, type NodeProps, type EdgeChange } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { api, problemText, yamlBody } from '../api/client';
import { useStatusStream } from '../api/live';
import type { components } from '../api/schema';
import { navigate } from '../router';
import { useCan } from '../session';
import { SchemaField } from './SchemaForm';
import { kindHelp, kindSchema, nodeKinds, resolve, root, starter } from './schema';
import * as M from './model';
import { TestPanel, type Trace } from './TestPanel';
import type { EditorProblem } from './YamlEditor';

// CodeMirror and the schema tooling load with the builder's editor, not with the console.
const YamlEditor = lazy(() => import('./YamlEditor'));
import { compact, nodeLine, nodeRates, portIndex, type NodeCounts, type NodeStats } from './counts';

type Status = components['schemas']['PipelineStatus'];
type VersionInfo = components['schemas']['VersionInfo'];

const NEW_PIPELINE = `apiVersion: weir.dev/v1
kind: Pipeline
metadata:
  name: my-pipeline
spec:
  source:
    stream: ORDERS
    subjects: ["orders.created.>"]
  nodes: []
`;

type NodeData = { id: string; kind: string; summary: string; errors: string[]; ports: { id: string; label?: string }[]; sink: boolean; direction: M.Direction; trace?: 'path' | 'failed'; live?: NodeStats; rate?: number };

function summary(kind: string, config: unknown): string {
  if (typeof config === 'string') return config;
  if (kind === 'route' && Array.isArray(config)) return `${config.length} rule(s)`;
  if (config && typeof config === 'object') {
    const c = config as Record<string, unknown>;
    if (typeof c.subject === 'string') return c.subject;
    return Object.keys(c).join(', ');
  }
  return '';
}

/** A node's live counters: in, out, errors and the rate in. */
function LiveLine({ id, live, rate }: { id: string; live: NodeStats; rate?: number }) {
  const c = nodeLine(live);
  return (
    <div className="wnode-live" data-testid={`node-live-${id}`} title={`rows in ${c.in}, out ${c.out}, errors ${c.errors}`}>
      <span>
        in <b data-testid={`node-in-${id}`}>{compact(c.in)}</b>
      </span>
      <span>
        out <b data-testid={`node-out-${id}`}>{compact(c.out)}</b>
      </span>
      {c.errors > 0 && (
        <span className="live-errors">
          err <b data-testid={`node-errors-${id}`}>{compact(c.errors)}</b>
        </span>
      )}
      {rate !== undefined && <span className="muted">{rate.toFixed(rate < 10 ? 1 : 0)}/s</span>}
    </div>
  );
}

function WeirNode({ data, selected }: NodeProps<Node<NodeData>>) {
  return (
    <div className={`wnode kind-${data.kind} ${data.errors.length ? 'has-error' : ''} ${selected ? 'selected' : ''} ${data.trace ? `trace-${data.trace}` : ''} ${data.live && data.live.errors > 0 ? 'live-error' : ''}`} data-testid={`node-${data.id}`} title={data.errors.join('\n')}>
      <Handle type="target" position={data.direction === 'TB' ? Position.Top : Position.Left} />
      <div className="wnode-kind">{data.kind}</div>
      <div className="wnode-id">{data.id}</div>
      <div className="wnode-summary">{data.summary}</div>
      {data.live && <LiveLine id={data.id} live={data.live} rate={data.rate} />}
      {data.errors.map((e, i) => (
        <div className="wnode-error" key={i}>
          {e}
        </div>
      ))}
      {!data.sink &&
        data.ports.map((p, i) => (
          <Handle
              key={p.id}
              id={p.id}
              type="source"
              position={data.direction === 'TB' ? Position.Bottom : Position.Right}
              style={data.direction === 'TB' ? { left: `${((i + 1) * 100) / (data.ports.length + 1)}%` } : { top: `${((i + 1) * 100) / (data.ports.length + 1)}%` }}
              title={p.label ?? p.id}
            />
        ))}
    </div>
  );
}

const nodeTypes = { weir: WeirNode };

/**
 * Measures again the nodes that React Flow knows the size of but not their handles (a re-render
 * can drop them, and an unchanged node is not measured again): without handles their edges
 * are not drawn.
 */
function RemeasureLost() {
  const lost = useStore((s) => {
    const ids: string[] = [];
    for (const [id, n] of s.nodeLookup) if (n.measured?.width && !n.internals.handleBounds) ids.push(id);
    return ids.join('\n');
  });
  const update = useUpdateNodeInternals();
  useEffect(() => {
    if (lost) update(lost.split('\n'));
  }, [lost, update]);
  return null;
}

/** The per-node counts of a deployed pipeline (none before it runs anywhere). */
function deployedNodes(status: Status | null): NodeCounts | undefined {
  if (!status?.deployment || !status.nodes || Object.keys(status.nodes).length === 0) return undefined;
  return status.nodes;
}

/** An edge's label: its route rule, and the rows its source passed on that port while deployed. */
function edgeLabel(e: M.GraphEdge, graph: M.Graph, live: NodeCounts): string | undefined {
  const stats = live[e.source];
  if (!stats) return e.label;
  const from = graph.nodes.find((n) => n.id === e.source);
  const rules = from?.kind === 'route' && Array.isArray(from.config) ? from.config.length : 0;
  const n = compact(stats.ports[portIndex(e.port, rules)] ?? 0);
  return e.label ? `${e.label} · ${n}` : n;
}

/** How a node shows the chosen test result: on its path, or the node that failed. */
function traceOf(trace: Trace, id: string): NodeData['trace'] {
  if (!trace) return undefined;
  if (trace.errorNode === id) return 'failed';
  return trace.path.includes(id) ? 'path' : undefined;
}

function isSink(kind: string) {
  return kindHelp(kind).startsWith('Sink');
}

function portsOf(n: M.GraphNode): { id: string; label?: string }[] {
  if (n.kind === 'route' && Array.isArray(n.config)) {
    return [
      ...n.config.map((r: Record<string, unknown>, i: number) => ({ id: `rule:${i}`, label: String(r?.name ?? r?.when ?? `rule ${i + 1}`) })),
      { id: 'default', label: 'default' },
    ];
  }
  return [{ id: 'next' }];
}

export function Builder({ name }: { name: string | null }) {
  const can = useCan();
  const editable = name ? can('pipelines', 'update') : can('pipelines', 'create');
  const [text, setText] = useState<string>(name ? '' : NEW_PIPELINE);
  const [loaded, setLoaded] = useState(!name);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [diagnostics, setDiagnostics] = useState<M.Diagnostic[]>([]);
  const [validation, setValidation] = useState<'idle' | 'checking' | 'valid' | 'invalid' | 'error'>('idle');
  const [validationMessage, setValidationMessage] = useState('');
  const [positions, setPositions] = useState<Record<string, { x: number; y: number }>>({});
  // Sizes React Flow measured: nodes are rebuilt on every render (they come from the YAML), and
  // a node without its measured size stays hidden. A ref, written as React Flow reports a size:
  // a render that passed a measured node without its size would drop its handle positions for
  // good (React Flow does not measure an unchanged node again), and its edges would vanish.
  const measured = useRef<Record<string, { width: number; height: number }>>({});
  const [, setMeasuredVersion] = useState(0);
  const [selected, setSelected] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  const [versions, setVersions] = useState<VersionInfo[]>([]);
  const [diff, setDiff] = useState<string | null>(null);
  const [refresh, setRefresh] = useState(0);
  const [trace, setTrace] = useState<Trace>(null);

  // Load the stored pipeline as YAML.
  useEffect(() => {
    if (!name) return;
    void (async () => {
      const { data, error, response } = await api.GET('/api/v1/pipelines/{name}', {
        params: { path: { name }, query: { format: 'yaml' } },
        parseAs: 'text',
      });
      if (data === undefined) setLoadError(problemText(error, response));
      else setText(data as unknown as string);
      setLoaded(true);
    })();
  }, [name]);

  const file = useMemo(() => M.parseFile(text), [text]);
  const lastGood = useRef<M.Graph>({ nodes: [], edges: [] });
  const graph = useMemo(() => {
    if (file.syntaxErrors.length === 0) lastGood.current = M.readGraph(file);
    return lastGood.current;
  }, [file]);
  const pipelineName = useMemo(() => {
    const n = file.index >= 0 ? file.docs[file.index].getIn(['metadata', 'name']) : undefined;
    return typeof n === 'string' ? n : '';
  }, [file]);

  // Validate as you type (debounced), through the same checker as `weir validate`.
  const seq = useRef(0);
  useEffect(() => {
    if (!loaded) return;
    const mine = ++seq.current;
    setValidation('checking');
    const t = setTimeout(async () => {
      const { data, error, response } = await api.POST('/api/v1/pipelines:validate', { body: text as never, ...yamlBody });
      if (mine !== seq.current) return;
      if (data) {
        setDiagnostics([]);
        setValidation('valid');
        setValidationMessage('');
      } else if (response.status === 422 && Array.isArray(error?.diagnostics)) {
        setDiagnostics(error.diagnostics as unknown as M.Diagnostic[]);
        setValidation('invalid');
        setValidationMessage(problemText(error, response));
      } else {
        setDiagnostics([]);
        setValidation('error');
        setValidationMessage(problemText(error, response));
      }
    }, 350);
    return () => clearTimeout(t);
  }, [text, loaded]);

  // Status and versions when the page opens and after each action; then the status live
  // from the server-sent event stream.
  useEffect(() => {
    if (!name) return;
    let stop = false;
    void (async () => {
      const [s, v] = await Promise.all([
        api.GET('/api/v1/pipelines/{name}/status', { params: { path: { name } } }),
        api.GET('/api/v1/pipelines/{name}/versions', { params: { path: { name } } }),
      ]);
      if (stop) return;
      if (s.data) setStatus(s.data);
      if (v.data) setVersions(v.data);
    })();
    return () => {
      stop = true;
    };
  }, [name, refresh]);
  useStatusStream((s) => {
    if (s.pipeline === name) setStatus(s);
  }, !!name);
  // Per-node rates from two successive statuses.
  const lastCounts = useRef<{ at: number; nodes: NodeCounts } | null>(null);
  const [rates, setRates] = useState<Record<string, number>>({});
  useEffect(() => {
    if (!status?.nodes) return;
    const now = Date.now();
    const prev = lastCounts.current;
    if (prev && now - prev.at >= 500) setRates(nodeRates(prev.nodes, status.nodes, (now - prev.at) / 1000));
    if (!prev || now - prev.at >= 500) lastCounts.current = { at: now, nodes: status.nodes };
  }, [status]);
  const live: NodeCounts = (deployedNodes(status) ?? {}) as NodeCounts;

  // Edits compose: several in one event (a node and its edges deleted) each start from the
  // text the previous one left.
  const textRef = useRef(text);
  textRef.current = text;
  const edit = useCallback(
    (change: (f: M.PipelineFile) => void) => {
      const f = M.parseFile(textRef.current);
      if (f.syntaxErrors.length) {
        setMessage({ ok: false, text: 'Fix the YAML syntax errors before editing on the canvas.' });
        return;
      }
      try {
        change(f);
        textRef.current = M.fileText(f);
        setText(textRef.current);
      } catch (e) {
        setMessage({ ok: false, text: String((e as Error).message) });
      }
    },
    [],
  );

  const nodeErrors = useMemo(() => {
    const out: Record<string, string[]> = {};
    for (const d of diagnostics) {
      const id = M.nodeOfDiagnostic(file, d);
      if (id) (out[id] ??= []).push(d.message);
    }
    return out;
  }, [diagnostics, file]);

  const auto = useMemo(() => M.layout(graph), [graph]);
  const rfNodes: Node<NodeData>[] = graph.nodes.map((n) => ({
    id: n.id,
    type: 'weir',
    position: positions[n.id] ?? auto.positions[n.id],
    selected: n.id === selected,
    measured: measured.current[n.id],
    data: { id: n.id, kind: n.kind, summary: summary(n.kind, n.config), errors: nodeErrors[n.id] ?? [], ports: portsOf(n), sink: isSink(n.kind), direction: auto.direction, trace: traceOf(trace, n.id), live: live[n.id], rate: rates[n.id] },
  }));
  const rfEdges: Edge[] = graph.edges.map((e) => ({
    id: `${e.source}|${e.port}|${e.target}`,
    source: e.source,
    target: e.target,
    sourceHandle: e.port,
    label: edgeLabel(e, graph, live),
    markerEnd: { type: MarkerType.ArrowClosed },
    className: trace && trace.path.includes(e.source) && trace.path.includes(e.target) ? 'trace-path' : undefined,
  }));

  const onNodesChange = (changes: NodeChange<Node<NodeData>>[]) => {
    for (const c of changes) {
      if (c.type === 'position' && c.position) setPositions((p) => ({ ...p, [c.id]: c.position! }));
      if (c.type === 'dimensions' && c.dimensions) {
        measured.current = { ...measured.current, [c.id]: c.dimensions };
        setMeasuredVersion((v) => v + 1);
      }
      if (c.type === 'select' && c.selected) setSelected(c.id);
      if (c.type === 'remove' && editable) edit((f) => M.deleteNode(f, c.id));
    }
  };
  const onEdgesChange = (changes: EdgeChange[]) => {
    if (!editable) return;
    for (const c of changes) {
      if (c.type === 'remove') {
        const [source, port, target] = c.id.split('|');
        edit((f) => M.disconnect(f, source, target, port));
      }
    }
  };
  const onConnect = (c: Connection) => {
    if (!editable || !c.source || !c.target) return;
    edit((f) => M.connect(f, c.source, c.target, c.sourceHandle ?? 'next'));
  };

  const addKind = (kind: string) => {
    let id = '';
    edit((f) => {
      id = M.freshId(f, kind);
      const from = selected ? M.readGraph(f).nodes.find((n) => n.id === selected) : undefined;
      M.addNode(f, id, kind, starter(kind));
      // Chain after the selected node when it has no successor yet.
      if (from && !isSink(from.kind) && from.kind !== 'route' && !M.readGraph(f).edges.some((e) => e.source === from.id)) M.connect(f, from.id, id);
    });
    if (id) setSelected(id);
  };

  const selectedNode = graph.nodes.find((n) => n.id === selected);
  const problems: EditorProblem[] = useMemo(
    () => [...file.syntaxErrors.map((e) => ({ line: e.line, message: e.message })), ...diagnostics.map((d) => ({ line: d.line, column: d.column, message: d.message }))],
    [file, diagnostics],
  );

  async function act(label: string, call: () => Promise<{ data?: unknown; error?: unknown; response: Response }>) {
    setMessage(null);
    const { data, error, response } = await call();
    if (response.ok) {
      setMessage({ ok: true, text: `${label}: done${data && typeof data === 'object' && 'version' in data ? ` (version ${(data as { version: unknown }).version})` : ''}` });
      setRefresh((r) => r + 1);
      return true;
    }
    setMessage({ ok: false, text: `${label}: ${problemText(error, response)}` });
    return false;
  }

  const save = async () => {
    const target = pipelineName;
    const ok = await act('Save', () => api.PUT('/api/v1/pipelines/{name}', { params: { path: { name: target } }, body: text as never, ...yamlBody }));
    if (ok && target !== name) navigate(`/pipelines/${encodeURIComponent(target)}`);
  };

  if (loadError) return <p className="error">{loadError}</p>;
  if (!loaded) return <p>Loading…</p>;

  const deployment = status?.deployment;
  return (
    <div className="builder">
      <header className="builder-head">
        <h1>{name ?? 'New pipeline'}</h1>
        <span className={`validity ${validation}`} data-testid="validity">
          {validation === 'checking' ? 'checking…' : validation === 'valid' ? 'valid' : validation === 'invalid' ? `${diagnostics.length} problem(s)` : validation === 'error' ? 'not checked' : ''}
        </span>
        <div className="actions">
          {editable && (
            <button type="button" className="primary" onClick={save} disabled={!pipelineName}>
              Save
            </button>
          )}
          {name && !deployment && can('pipelines', 'delete') && (
            <button
              type="button"
              className="danger"
              onClick={async () => {
                if (!confirm(`Delete pipeline ${name} and all its versions?`)) return;
                if (await act('Delete', () => api.DELETE('/api/v1/pipelines/{name}', { params: { path: { name } } }))) navigate('/pipelines');
              }}
            >
              Delete
            </button>
          )}
          {name && can('deployments', 'update') && (
            <>
              <button type="button" onClick={() => act('Deploy', () => api.POST('/api/v1/pipelines/{name}/deploy', { params: { path: { name } }, body: {} }))}>
                Deploy
              </button>
              {deployment?.state === 'running' && (
                <button type="button" onClick={() => act('Pause', () => api.POST('/api/v1/pipelines/{name}/pause', { params: { path: { name } } }))}>
                  Pause
                </button>
              )}
              {deployment && can('deployments', 'delete') && (
                <button type="button" onClick={() => confirm(`Stop running ${name} on the fleet?`) && act('Undeploy', () => api.DELETE('/api/v1/pipelines/{name}/deployment', { params: { path: { name } } }))}>
                  Undeploy
                </button>
              )}
              {deployment?.state === 'paused' && (
                <button type="button" onClick={() => act('Resume', () => api.POST('/api/v1/pipelines/{name}/resume', { params: { path: { name } } }))}>
                  Resume
                </button>
              )}
            </>
          )}
        </div>
      </header>
      {message && (
        <p className={message.ok ? 'notice' : 'error'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </p>
      )}
      {validationMessage && validation !== 'valid' && <p className="error small">{validationMessage}</p>}
      {status && (
        <div className="counters" data-testid="counters">
          <span>
            health <b data-testid="health">{status.health}</b>
          </span>
          {deployment && (
            <span>
              deployed v{deployment.version} <b>{deployment.state}</b>
            </span>
          )}
          <span>
            in <b data-testid="count-in">{status.totals.messages_in}</b>
          </span>
          <span>
            out <b data-testid="count-out">{status.totals.messages_out}</b>
          </span>
          <span>
            filtered <b data-testid="count-filtered">{status.totals.filtered}</b>
          </span>
          <span>
            DLQ <b data-testid="count-dlq">{status.totals.dead_lettered}</b>
          </span>
          {status.rates && <span>{status.rates.messages_in.toFixed(1)} msg/s in</span>}
          {live.source && live.source.errors > 0 && (
            <span className="live-errors" data-testid="source-errors">
              source: {live.source.errors} undecodable
            </span>
          )}
          <span>workers {status.running_workers}</span>
          {status.operator_state && (
            <span data-testid="operator-state" title={status.operator_state.started_from}>
              state: <b>{status.operator_state.open_windows}</b> windows open,{' '}
              <b>{status.operator_state.keys_held}</b> keys, {status.operator_state.late_events} late
              {status.operator_state.watermark && <> · watermark {status.operator_state.watermark}</>}
              {status.operator_state.last_checkpoint && (
                <>
                  {' '}· checkpoint {status.operator_state.last_checkpoint} ({status.operator_state.state_bytes} B)
                </>
              )}
            </span>
          )}
          {status.reasons.length > 0 && <span className="muted">{status.reasons.join('; ')}</span>}
        </div>
      )}
      {editable && (
        <nav className="palette" aria-label="palette">
          <span className="muted small">Add node:</span>
          {nodeKinds().map((k) => (
            <button type="button" key={k} title={kindHelp(k)} onClick={() => addKind(k)} data-testid={`palette-${k}`}>
              + {k}
            </button>
          ))}
          <span className="muted small">A new node follows the selected one. Drag from a node's output handle to another node to connect; select and press Delete to remove.</span>
        </nav>
      )}
      <div className="builder-body">
        <section className="canvas" aria-label="canvas">
          <ReactFlow
            key={graph.nodes.length /* re-fit the view when nodes come or go */}
            nodes={rfNodes}
            edges={rfEdges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onPaneClick={() => setSelected(null)}
            nodesConnectable={editable}
            deleteKeyCode={editable ? ['Delete', 'Backspace'] : null}
            fitView
            fitViewOptions={{ maxZoom: 1, minZoom: 0.2 }}
            proOptions={{ hideAttribution: true }}
          >
            <Background />
            <Controls showInteractive={false} />
            <RemeasureLost />
          </ReactFlow>
        </section>
        <section className="yaml" aria-label="YAML">
          <div className="yaml-editor">
            <Suspense fallback={<p className="muted small">Loading the editor…</p>}>
              <YamlEditor value={text} onChange={setText} readOnly={!editable} problems={problems} />
            </Suspense>
          </div>
          <ul className="diagnostics" data-testid="diagnostics">
            {file.syntaxErrors.map((e, i) => (
              <li key={`s${i}`}>
                line {e.line}: {e.message}
              </li>
            ))}
            {diagnostics.map((d, i) => (
              <li key={i}>
                line {d.line}:{d.column} {d.path && <code>{d.path}</code>} {d.message} <span className="muted">({d.code})</span>
              </li>
            ))}
          </ul>
        </section>
        <aside className="inspector" aria-label="inspector">
          {selectedNode ? (
            <>
              <h2>
                {selectedNode.kind} <code>{selectedNode.id}</code>
              </h2>
              <p className="muted small">{kindHelp(selectedNode.kind)}</p>
              {selectedNode.kind !== 'unknown' && (
                <SchemaField
                  schema={kindSchema(selectedNode.kind)}
                  value={selectedNode.config}
                  label={selectedNode.kind}
                  readOnly={!editable}
                  onChange={(v) => edit((f) => M.setNodeConfig(f, selectedNode.id, selectedNode.kind, v))}
                />
              )}
              {(nodeErrors[selectedNode.id] ?? []).map((e, i) => (
                <p className="error small" key={i}>
                  {e}
                </p>
              ))}
              {editable && (
                <button type="button" className="danger" onClick={() => (edit((f) => M.deleteNode(f, selectedNode.id)), setSelected(null))}>
                  Delete node
                </button>
              )}
            </>
          ) : (
            <PipelineForm file={file} editable={editable} edit={edit} />
          )}
          {name && (
            <Versions
              name={name}
              versions={versions}
              deployed={deployment?.version}
              canRollback={can('deployments', 'update')}
              onRollback={(v) => act('Rollback', () => api.POST('/api/v1/pipelines/{name}/rollback', { params: { path: { name } }, body: { version: v } }))}
              onDiff={async (from, to) => {
                const { data, error, response } = await api.GET('/api/v1/pipelines/{name}/diff', { params: { path: { name }, query: { from, to } } });
                setDiff(data ? data.diff || '(no changes)' : problemText(error, response));
              }}
            />
          )}
          {diff !== null && (
            <pre className="diff" data-testid="diff">
              {diff}
            </pre>
          )}
        </aside>
      </div>
      {can('pipelines', 'read') && <TestPanel text={text} canCapture={can('messages', 'read')} onTrace={setTrace} />}
    </div>
  );
}

/** The pipeline-level fields (source, errors, execution), from the schema of `PipelineSpec`. */
function PipelineForm({ file, editable, edit }: { file: M.PipelineFile; editable: boolean; edit: (c: (f: M.PipelineFile) => void) => void }) {
  if (file.index < 0) return <p className="muted">The YAML has no `kind: Pipeline` document.</p>;
  const spec = (file.docs[file.index].toJS()?.spec ?? {}) as Record<string, unknown>;
  const props = resolve(root.$defs.PipelineSpec).properties ?? {};
  return (
    <>
      <h2>Pipeline</h2>
      <p className="muted small">Select a node to edit it.</p>
      {Object.entries(props)
        .filter(([k]) => k !== 'nodes')
        .map(([k, s]) => (
          <SchemaField
            key={k}
            schema={s}
            label={k}
            value={spec[k]}
            readOnly={!editable}
            onChange={(v) =>
              edit((f) => {
                const doc = f.docs[f.index];
                if (v === undefined) doc.deleteIn(['spec', k]);
                else doc.setIn(['spec', k], doc.createNode(v));
              })
            }
          />
        ))}
    </>
  );
}

function Versions({ name, versions, deployed, canRollback, onRollback, onDiff }: { name: string; versions: VersionInfo[]; deployed?: number; canRollback: boolean; onRollback: (v: number) => void; onDiff: (from: number, to: number) => void }) {
  const latest = versions.reduce((m, v) => Math.max(m, v.version), 0);
  return (
    <div className="versions" aria-label={`versions of ${name}`}>
      <h2>Versions</h2>
      {deployed !== undefined && deployed < latest && (
        <button type="button" onClick={() => onDiff(deployed, latest)}>
          changes since the deployed v{deployed}
        </button>
      )}
      <table>
        <tbody>
          {[...versions].reverse().map((v) => (
            <tr key={v.version}>
              <td>
                v{v.version}
                {v.version === deployed && <b> (deployed)</b>}
              </td>
              <td className="muted small">{v.created_by}</td>
              <td>
                {v.version !== latest && (
                  <button type="button" onClick={() => onDiff(v.version, latest)}>
                    diff
                  </button>
                )}
                {canRollback && deployed !== undefined && v.version !== deployed && (
                  <button type="button" onClick={() => onRollback(v.version)}>
                    {v.version < deployed ? 'roll back' : 'deploy'}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
