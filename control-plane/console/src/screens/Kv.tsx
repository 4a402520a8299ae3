// KV buckets of the tenant: keys of a bucket, a key's value and history, put and delete.
import { useState } from 'react';
import { api, problemText } from '../api/client';
import type { components } from '../api/schema';
import { useCan } from '../session';
import { ErrorLine, pretty, useLoad } from './common';

type Entry = components['schemas']['KvEntryView'];

export function Kv() {
  const can = useCan();
  const buckets = useLoad(() => api.GET('/api/v1/nats/kv'), []);
  const [bucket, setBucket] = useState('');
  const keys = useLoad(async () => (bucket ? api.GET('/api/v1/nats/kv/{bucket}/keys', { params: { path: { bucket } } }) : { data: [] as string[], response: new Response() }), [bucket]);
  const [history, setHistory] = useState<Entry[]>([]);
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const open = async (k: string) => {
    setKey(k);
    const r = await api.GET('/api/v1/nats/kv/{bucket}/keys/{key}/history', { params: { path: { bucket, key: k } } });
    if (r.data) {
      setHistory(r.data);
      setValue(r.data[r.data.length - 1]?.value_utf8 ?? '');
    } else setResult({ ok: false, text: problemText(r.error, r.response) });
  };
  const put = async () => {
    const r = await api.PUT('/api/v1/nats/kv/{bucket}/keys/{key}', { params: { path: { bucket, key } }, body: { value } });
    setResult(r.data ? { ok: true, text: `${r.data.key} is at revision ${r.data.revision}` } : { ok: false, text: problemText(r.error, r.response) });
    keys.reload();
    if (r.data) void open(key);
  };
  const remove = async () => {
    const r = await api.DELETE('/api/v1/nats/kv/{bucket}/keys/{key}', { params: { path: { bucket, key } } });
    setResult(r.response.ok ? { ok: true, text: `deleted ${key}` } : { ok: false, text: problemText(r.error, r.response) });
    keys.reload();
    void open(key);
  };

  return (
    <div>
      <h1>KV buckets</h1>
      <ErrorLine error={buckets.error} />
      {result && (
        <p className={result.ok ? 'notice' : 'error'} role={result.ok ? 'status' : 'alert'}>
          {result.text}
        </p>
      )}
      <table className="panel">
        <thead>
          <tr>
            <th>bucket</th>
            <th>values</th>
            <th>history</th>
            <th>bytes</th>
            <th>TTL (s)</th>
          </tr>
        </thead>
        <tbody>
          {(buckets.data ?? []).map((b) => (
            <tr key={b.name}>
              <td>
                <button type="button" onClick={() => (setBucket(b.name), setKey(''), setHistory([]))}>
                  {b.name}
                </button>
              </td>
              <td>{b.values}</td>
              <td>{b.history}</td>
              <td>{b.bytes}</td>
              <td>{b.ttl_seconds || '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {bucket && (
        <div className="panel">
          <h2>Keys of {bucket}</h2>
          <ErrorLine error={keys.error} />
          <div className="toolbar">
            {(keys.data ?? []).map((k) => (
              <button type="button" key={k} onClick={() => open(k)}>
                {k}
              </button>
            ))}
          </div>
          <div className="toolbar">
            <input aria-label="key" placeholder="key" value={key} onChange={(e) => setKey(e.target.value)} />
          </div>
          {can('kv', 'update') ? (
            <label className="field">
              <span>value</span>
              <textarea aria-label="value" className="payload" value={value} onChange={(e) => setValue(e.target.value)} />
            </label>
          ) : (
            <pre className="payload">{pretty(value)}</pre>
          )}
          <div className="toolbar">
            {can('kv', 'update') && (
              <button type="button" className="primary" disabled={!key} onClick={put}>
                Put
              </button>
            )}
            {can('kv', 'delete') && (
              <button type="button" className="danger" disabled={!key} onClick={remove}>
                Delete
              </button>
            )}
          </div>
          {history.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>revision</th>
                  <th>when</th>
                  <th>operation</th>
                  <th>value</th>
                </tr>
              </thead>
              <tbody>
                {[...history].reverse().map((h) => (
                  <tr key={h.revision}>
                    <td>{h.revision}</td>
                    <td className="small">{h.created}</td>
                    <td>{h.operation}</td>
                    <td>
                      <code>{h.value_utf8 ?? '(binary)'}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </div>
  );
}
