// Streams: the tenant's JetStream streams, and per stream its consumers (pause/resume), a
// message browser (by sequence, time or last-by-subject, JSON pretty view) and publish.
import { useState } from 'react';
import { api, problemText } from '../api/client';
import type { components } from '../api/schema';
import { Link } from '../router';
import { useCan } from '../session';
import { ErrorLine, pretty, useLoad } from './common';

type MessageView = components['schemas']['MessageView'];

export function Streams() {
  const list = useLoad(() => api.GET('/api/v1/nats/streams'), [], 5000);
  return (
    <div>
      <h1>Streams</h1>
      <ErrorLine error={list.error} />
      <table className="panel">
        <thead>
          <tr>
            <th>name</th>
            <th>subjects</th>
            <th>messages</th>
            <th>bytes</th>
            <th>first..last</th>
            <th>consumers</th>
          </tr>
        </thead>
        <tbody>
          {(list.data ?? []).map((s) => (
            <tr key={s.name}>
              <td>
                <Link to={`/streams/${encodeURIComponent(s.name)}`}>{s.name}</Link>
              </td>
              <td>{s.subjects.join(', ')}</td>
              <td data-testid={`stream-messages-${s.name}`}>{s.messages}</td>
              <td>{s.bytes}</td>
              <td>
                {s.first_seq}..{s.last_seq}
              </td>
              <td>{s.consumer_count}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function StreamDetail({ name }: { name: string }) {
  const can = useCan();
  const info = useLoad(() => api.GET('/api/v1/nats/streams/{name}', { params: { path: { name } } }), [name], 5000);
  const consumers = useLoad(() => api.GET('/api/v1/nats/streams/{name}/consumers', { params: { path: { name } } }), [name], 5000);
  const [msg, setMsg] = useState<MessageView | null>(null);
  const [msgError, setMsgError] = useState<string | null>(null);
  const [seq, setSeq] = useState('');
  const [time, setTime] = useState('');
  const [bySubject, setBySubject] = useState('');
  const [pub, setPub] = useState({ subject: '', payload: '{}', headers: '' });
  const [pubResult, setPubResult] = useState<{ ok: boolean; text: string } | null>(null);

  const show = (r: { data?: MessageView; error?: unknown; response: Response }) => {
    if (r.data) {
      setMsg(r.data);
      setSeq(String(r.data.seq));
      setMsgError(null);
    } else {
      setMsg(null);
      setMsgError(problemText(r.error, r.response));
    }
  };
  const bySeq = async (n: number) => show(await api.GET('/api/v1/nats/streams/{name}/messages/{seq}', { params: { path: { name, seq: n } } }));
  const query = async (q: { start_time?: string; last_by_subject?: string }) => show(await api.GET('/api/v1/nats/streams/{name}/messages', { params: { path: { name }, query: q } }));

  const publish = async () => {
    const headers: Record<string, string> = {};
    for (const line of pub.headers.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    const r = await api.POST('/api/v1/nats/publish', { body: { subject: pub.subject, payload: pub.payload, headers } });
    setPubResult(r.data ? { ok: true, text: `stored in ${r.data.stream} at sequence ${r.data.seq}${r.data.duplicate ? ' (duplicate)' : ''}` } : { ok: false, text: problemText(r.error, r.response) });
    info.reload();
  };

  const s = info.data;
  return (
    <div>
      <h1>Stream {name}</h1>
      <ErrorLine error={info.error} />
      {s && (
        <div className="cards">
          <div className="card">
            <b>{s.messages}</b>messages
          </div>
          <div className="card">
            <b>{s.bytes}</b>bytes
          </div>
          <div className="card">
            <b>
              {s.first_seq}..{s.last_seq}
            </b>
            sequences
          </div>
          <div className="card">
            <b>{s.subjects.join(', ')}</b>subjects
          </div>
        </div>
      )}
      <div className="panel">
        <h2>Consumers</h2>
        <ErrorLine error={consumers.error} />
        <table>
          <thead>
            <tr>
              <th>name</th>
              <th>pending (lag)</th>
              <th>ack pending</th>
              <th>redelivered</th>
              <th>delivered seq</th>
              <th>state</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(consumers.data ?? []).map((c) => (
              <tr key={c.name}>
                <td>{c.name}</td>
                <td>{c.num_pending}</td>
                <td>{c.num_ack_pending}</td>
                <td>{c.num_redelivered}</td>
                <td>{c.delivered_stream_seq}</td>
                <td>{c.paused ? 'paused' : 'active'}</td>
                <td>
                  {can('consumers', 'pause') && (
                    <button
                      type="button"
                      onClick={async () => {
                        const path = { name, consumer: c.name };
                        if (c.paused) await api.POST('/api/v1/nats/streams/{name}/consumers/{consumer}/resume', { params: { path } });
                        else await api.POST('/api/v1/nats/streams/{name}/consumers/{consumer}/pause', { params: { path }, body: {} });
                        consumers.reload();
                      }}
                    >
                      {c.paused ? 'resume' : 'pause'}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="panel">
        <h2>Messages</h2>
        <div className="toolbar">
          <input aria-label="sequence" placeholder="sequence" value={seq} onChange={(e) => setSeq(e.target.value)} style={{ width: 100 }} />
          <button type="button" onClick={() => bySeq(Number(seq || s?.first_seq || 1))}>
            Show
          </button>
          <button type="button" disabled={!msg} onClick={() => msg && bySeq(msg.seq - 1)}>
            ◀ prev
          </button>
          <button type="button" disabled={!msg} onClick={() => msg && bySeq(msg.seq + 1)}>
            next ▶
          </button>
          <button type="button" onClick={() => s && bySeq(s.last_seq)}>
            Last
          </button>
          <input aria-label="from time" placeholder="from time (RFC 3339)" value={time} onChange={(e) => setTime(e.target.value)} />
          <button type="button" onClick={() => query({ start_time: time })}>
            By time
          </button>
          <input aria-label="last by subject" placeholder="subject" value={bySubject} onChange={(e) => setBySubject(e.target.value)} />
          <button type="button" onClick={() => query({ last_by_subject: bySubject })}>
            Last on subject
          </button>
        </div>
        <ErrorLine error={msgError} />
        {msg && (
          <div data-testid="message">
            <p>
              <b>#{msg.seq}</b> <code>{msg.subject}</code> <span className="muted">{msg.time}</span> ({msg.size} bytes)
            </p>
            {Object.keys(msg.headers).length > 0 && (
              <table>
                <tbody>
                  {Object.entries(msg.headers).map(([k, v]) => (
                    <tr key={k}>
                      <th>{k}</th>
                      <td>{v.join(', ')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <pre className="payload">{pretty(msg.payload_utf8)}</pre>
          </div>
        )}
      </div>
      {can('messages', 'publish') && (
        <div className="panel">
          <h2>Publish</h2>
          <label className="field">
            <span>subject</span>
            <input aria-label="publish subject" value={pub.subject} onChange={(e) => setPub({ ...pub, subject: e.target.value })} placeholder={s?.subjects[0]} />
          </label>
          <label className="field">
            <span>headers (one `Name: value` a line)</span>
            <textarea aria-label="publish headers" value={pub.headers} onChange={(e) => setPub({ ...pub, headers: e.target.value })} rows={2} />
          </label>
          <label className="field">
            <span>payload</span>
            <textarea aria-label="publish payload" className="payload" value={pub.payload} onChange={(e) => setPub({ ...pub, payload: e.target.value })} />
          </label>
          <button type="button" className="primary" onClick={publish} disabled={!pub.subject}>
            Publish
          </button>
          {pubResult && (
            <p className={pubResult.ok ? 'notice' : 'error'} role={pubResult.ok ? 'status' : 'alert'}>
              {pubResult.text}
            </p>
          )}
        </div>
      )}
    </div>
  );
}
