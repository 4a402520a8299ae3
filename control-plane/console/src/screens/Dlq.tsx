// DLQ browser: per pipeline, dead letters grouped by error kind; inspect one, edit its payload
// and redrive it to its original subject; redrive all; purge.
import { useState } from 'react';
import { api, problemText } from '../api/client';
import type { components } from '../api/schema';
import { useCan } from '../session';
import { ErrorLine, pretty, useLoad } from './common';

type DlqMessage = components['schemas']['DlqMessage'];

export function Dlq() {
  const can = useCan();
  const pipelines = useLoad(() => api.GET('/api/v1/pipelines'), []);
  const [chosen, setChosen] = useState('');
  const name = chosen || pipelines.data?.items[0]?.name || '';
  const [kind, setKind] = useState<string | undefined>();
  const list = useLoad(
    async () => (name ? api.GET('/api/v1/pipelines/{name}/dlq', { params: { path: { name }, query: kind ? { kind } : {} } }) : { data: undefined, response: new Response() }),
    [name, kind],
    5000,
  );
  const [open, setOpen] = useState<DlqMessage | null>(null);
  const [payload, setPayload] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const inspect = async (seq: number) => {
    const r = await api.GET('/api/v1/pipelines/{name}/dlq/{seq}', { params: { path: { name, seq } } });
    if (r.data) {
      setOpen(r.data);
      setPayload(r.data.payload_utf8 ?? '');
    } else setResult({ ok: false, text: problemText(r.error, r.response) });
  };
  const redrive = async (body: { seqs?: number[]; all?: boolean; payload?: string }) => {
    const r = await api.POST('/api/v1/pipelines/{name}/dlq/redrive', { params: { path: { name } }, body });
    if (r.data) {
      const d = r.data;
      setResult({
        ok: d.failed.length === 0,
        text: `redriven ${d.redriven.length}${d.redriven.map((x) => ` → ${x.subject} (${x.stream} #${x.stream_seq})`).join('')}${d.failed.map((f) => `; #${f.seq} failed: ${f.error}`).join('')}`,
      });
      setOpen(null);
    } else setResult({ ok: false, text: problemText(r.error, r.response) });
    list.reload();
  };
  const purge = async () => {
    if (!confirm(`Purge every dead letter of ${name}?`)) return;
    const r = await api.DELETE('/api/v1/pipelines/{name}/dlq', { params: { path: { name } } });
    setResult(r.data ? { ok: true, text: `purged ${r.data.purged}` } : { ok: false, text: problemText(r.error, r.response) });
    list.reload();
  };

  const d = list.data;
  return (
    <div>
      <h1>Dead letters</h1>
      <div className="toolbar">
        <label>
          pipeline{' '}
          <select aria-label="pipeline" value={name} onChange={(e) => (setChosen(e.target.value), setKind(undefined), setOpen(null))}>
            {(pipelines.data?.items ?? []).map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        {d && (
          <span className="muted">
            {d.total} in {d.stream} ({d.subject}){d.truncated ? ', counts partial' : ''}
          </span>
        )}
        {can('dlq', 'redrive') && d && d.total > 0 && (
          <button type="button" onClick={() => redrive({ all: true })}>
            Redrive all
          </button>
        )}
        {can('dlq', 'purge') && d && d.total > 0 && (
          <button type="button" className="danger" onClick={purge}>
            Purge
          </button>
        )}
      </div>
      <ErrorLine error={pipelines.error ?? list.error} />
      {result && (
        <p className={result.ok ? 'notice' : 'error'} role={result.ok ? 'status' : 'alert'}>
          {result.text}
        </p>
      )}
      {d && (
        <div className="panel">
          <h2>By error</h2>
          <table>
            <thead>
              <tr>
                <th>kind</th>
                <th>count</th>
                <th>latest error</th>
              </tr>
            </thead>
            <tbody>
              {d.groups.map((g) => (
                <tr key={g.kind} className={g.kind === kind ? 'selected' : ''}>
                  <td>
                    <button type="button" onClick={() => setKind(g.kind === kind ? undefined : g.kind)}>
                      {g.kind}
                    </button>
                  </td>
                  <td>{g.count}</td>
                  <td>{g.last_error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {d && (
        <div className="panel">
          <h2>Entries{kind ? ` (${kind})` : ''}</h2>
          <table data-testid="dlq-entries">
            <thead>
              <tr>
                <th>#</th>
                <th>failed at</th>
                <th>kind</th>
                <th>node</th>
                <th>error</th>
                <th>source</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {d.entries.map((e) => (
                <tr key={e.seq}>
                  <td>{e.seq}</td>
                  <td className="small">{e.failed_at ?? e.time}</td>
                  <td>{e.kind}</td>
                  <td>{e.node ?? ''}</td>
                  <td>{e.error}</td>
                  <td className="small">
                    {e.source_subject} {e.source_seq !== undefined && e.source_seq !== null ? `#${e.source_seq}` : ''}
                  </td>
                  <td>
                    <button type="button" onClick={() => inspect(e.seq)}>
                      inspect
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && (
        <div className="panel" data-testid="dlq-message">
          <h2>
            Dead letter #{open.seq}: {open.kind}
          </h2>
          <p className="error">{open.error}</p>
          {can('dlq', 'redrive') ? (
            <>
              <label className="field">
                <span>payload (edit before redriving)</span>
                <textarea aria-label="dead letter payload" className="payload" value={payload} onChange={(e) => setPayload(e.target.value)} />
              </label>
              <button type="button" className="primary" onClick={() => redrive({ seqs: [open.seq], payload: payload === (open.payload_utf8 ?? '') ? undefined : payload })}>
                Redrive
              </button>
            </>
          ) : (
            <pre className="payload">{pretty(open.payload_utf8)}</pre>
          )}
        </div>
      )}
    </div>
  );
}
