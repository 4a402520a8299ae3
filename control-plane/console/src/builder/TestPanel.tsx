// "Test before deploy": runs the pipeline in the editor on sample messages through
// `POST /api/v1/pipelines:test` (pasted, uploaded JSON lines, or captured from the source
// stream) and shows per input the nodes it reached, its outputs or its error. Choosing a
// result highlights its path on the canvas (through `onTrace`).
import { useState } from 'react';
import { api, problemText } from '../api/client';
import type { components } from '../api/schema';

export type SampleResult = components['schemas']['SampleResult'];
type SampleMessage = components['schemas']['SampleMessage'];

/** The path of the chosen result, for the canvas: nodes reached and the node that failed. */
export type Trace = { path: string[]; errorNode?: string } | null;

const EXAMPLE = '{"subject": "orders.created.1", "data": {"amount": 250, "region": "eu"}}';
const KEYS = new Set(['subject', 'headers', 'data', 'payload_b64']);

/**
 * Sample messages from pasted text: one JSON value a line; a line that is an object of only
 * `subject`/`headers`/`data`/`payload_b64` is a message, any other JSON value is its `data`.
 */
export function parseSamples(text: string): { messages: SampleMessage[]; error?: string } {
  const messages: SampleMessage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      return { messages, error: `line ${i + 1}: not JSON (${(e as Error).message})` };
    }
    const isMessage = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => KEYS.has(k));
    messages.push(isMessage ? (v as SampleMessage) : { data: v as SampleMessage['data'] });
  }
  if (messages.length === 0) return { messages, error: 'paste at least one message' };
  return { messages };
}

function Payload({ data, b64 }: { data?: unknown; b64?: string | null }) {
  if (data !== undefined && data !== null) return <pre className="payload">{JSON.stringify(data, null, 2)}</pre>;
  if (b64) return <pre className="payload muted">base64: {b64}</pre>;
  return <span className="muted">(empty)</span>;
}

function Headers({ headers }: { headers: Record<string, string[]> }) {
  const entries = Object.entries(headers);
  if (entries.length === 0) return null;
  return (
    <div className="small">
      {entries.map(([k, vs]) => (
        <div key={k}>
          <code>{k}</code>: {vs.join(', ')}
        </div>
      ))}
    </div>
  );
}

export function TestPanel({ text, canCapture, onTrace }: { text: string; canCapture: boolean; onTrace: (t: Trace) => void }) {
  const [mode, setMode] = useState<'paste' | 'capture'>(canCapture ? 'capture' : 'paste');
  const [samples, setSamples] = useState(EXAMPLE);
  const [count, setCount] = useState(10);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [results, setResults] = useState<SampleResult[] | null>(null);
  const [chosen, setChosen] = useState(0);

  const choose = (rs: SampleResult[] | null, i: number) => {
    setChosen(i);
    const r = rs?.[i];
    onTrace(r ? { path: r.path, errorNode: r.error?.node } : null);
  };

  const run = async () => {
    setError(null);
    let body: components['schemas']['TestRequest'];
    if (mode === 'capture') body = { pipeline: text, capture: { count } };
    else {
      const parsed = parseSamples(samples);
      if (parsed.error) {
        setError(parsed.error);
        return;
      }
      body = { pipeline: text, messages: parsed.messages };
    }
    setBusy(true);
    const { data, error: problem, response } = await api.POST('/api/v1/pipelines:test', { body });
    setBusy(false);
    if (data) {
      setResults(data.results);
      choose(data.results, 0);
    } else {
      setResults(null);
      choose(null, 0);
      setError(problemText(problem, response));
    }
  };

  const upload = async (f: File | undefined) => {
    if (!f) return;
    setSamples(await f.text());
    setMode('paste');
  };

  return (
    <details className="test-panel" aria-label="test" data-testid="test-panel" open>
      <summary>Test on sample messages</summary>
      <div className="test-controls">
        <label>
          <input type="radio" name="test-mode" checked={mode === 'paste'} onChange={() => setMode('paste')} data-testid="test-mode-paste" /> paste / upload
        </label>
        {canCapture && (
          <label>
            <input type="radio" name="test-mode" checked={mode === 'capture'} onChange={() => setMode('capture')} data-testid="test-mode-capture" /> capture the last
            <input type="number" min={1} max={100} value={count} onChange={(e) => setCount(Number(e.target.value))} aria-label="messages to capture" data-testid="test-count" style={{ width: 56 }} /> messages of the source stream
          </label>
        )}
        <button type="button" className="primary" onClick={run} disabled={busy} data-testid="test-run">
          {busy ? 'Running…' : 'Run test'}
        </button>
      </div>
      {mode === 'paste' && (
        <div className="test-input">
          <textarea aria-label="sample messages" data-testid="test-samples" spellCheck={false} value={samples} onChange={(e) => setSamples(e.target.value)} rows={3} />
          <label className="small">
            upload JSONL <input type="file" accept=".jsonl,.json,.txt,application/json" onChange={(e) => void upload(e.target.files?.[0])} data-testid="test-upload" />
          </label>
          <span className="muted small">One message a line: {'{"subject", "headers", "data"}'} (or a bare JSON payload).</span>
        </div>
      )}
      {error && (
        <p className="error small" role="alert" data-testid="test-error">
          {error}
        </p>
      )}
      {results && (
        <div className="test-results">
          <ol className="test-list" data-testid="test-results">
            {results.map((r, i) => (
              <li key={i} className={i === chosen ? 'chosen' : ''}>
                <button type="button" onClick={() => choose(results, i)} data-testid={`test-result-${i}`}>
                  <span className={`outcome ${r.outcome}`}>{r.outcome}</span> <code>{r.input.subject}</code>
                  {r.input.seq != null && <span className="muted small"> #{r.input.seq}</span>}
                  <span className="muted small"> {r.path.length ? r.path.join(' → ') : '(no node)'}</span>
                </button>
              </li>
            ))}
          </ol>
          {results[chosen] && <ResultDetail r={results[chosen]} />}
        </div>
      )}
    </details>
  );
}

function ResultDetail({ r }: { r: SampleResult }) {
  return (
    <div className="test-detail" data-testid="test-detail">
      <p className="small">
        path: <b data-testid="test-path">{r.path.length ? r.path.join(' → ') : '(stopped before the first node)'}</b>
      </p>
      <h3>Input</h3>
      <Headers headers={r.input.headers} />
      <Payload data={r.input.data} b64={r.input.payload_b64} />
      {r.outcome === 'filtered' && <p className="muted">Filtered: no output, the input would be acked.</p>}
      {r.error && (
        <p className="error" data-testid="test-failure">
          {r.error.kind} error at <code>{r.error.node}</code>: {r.error.message} <span className="muted small">(would go to the DLQ)</span>
        </p>
      )}
      {r.outputs.map((o, i) => (
        <div key={i} className="test-output" data-testid="test-output">
          <h3>
            Output {i + 1} from <code>{o.node}</code> → <code data-testid="test-output-subject">{o.subject}</code>
          </h3>
          <Headers headers={o.headers} />
          <Payload data={o.data} b64={o.payload_b64} />
        </div>
      ))}
    </div>
  );
}
