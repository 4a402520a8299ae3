// Overview: the tenant's pipelines with health and counters, the workers, and DLQ totals.
import { useState } from 'react';
import { api } from '../api/client';
import { useStatusStream, type PipelineStatus } from '../api/live';
import { Link } from '../router';
import { ErrorLine, useLoad } from './common';

export function Overview() {
  const pipelines = useLoad(() => api.GET('/api/v1/pipelines'), []);
  const names = pipelines.data?.items.map((p) => p.name) ?? [];
  // Every pipeline's status, live from the server-sent event stream.
  const [live, setLive] = useState<Record<string, PipelineStatus>>({});
  useStatusStream((s) => setLive((m) => ({ ...m, [s.pipeline]: s })));
  const workers = useLoad(() => api.GET('/api/v1/workers'), [], 3000);
  const rows = names.flatMap((n) => (live[n] ? [live[n]] : []));
  const sum = (f: (s: (typeof rows)[number]) => number) => rows.reduce((a, s) => a + f(s), 0);
  return (
    <div>
      <h1>Overview</h1>
      <ErrorLine error={pipelines.error ?? workers.error} />
      <div className="cards">
        <div className="card">
          <b data-testid="total-pipelines">{names.length}</b>pipelines
        </div>
        <div className="card">
          <b>{rows.filter((s) => s.health === 'healthy').length}</b>healthy
        </div>
        <div className="card">
          <b data-testid="total-workers">{workers.data?.length ?? 0}</b>workers
        </div>
        <div className="card">
          <b>{sum((s) => s.totals.messages_in)}</b>messages in
        </div>
        <div className="card">
          <b>{sum((s) => s.totals.messages_out)}</b>messages out
        </div>
        <div className="card">
          <b data-testid="total-dlq">{sum((s) => s.totals.dead_lettered)}</b>dead letters
        </div>
      </div>
      <div className="panel">
        <h2>Pipelines</h2>
        <table>
          <thead>
            <tr>
              <th>name</th>
              <th>health</th>
              <th>deployed</th>
              <th>in</th>
              <th>out</th>
              <th>filtered</th>
              <th>DLQ</th>
              <th>msg/s</th>
              <th>lag</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr key={s.pipeline}>
                <td>
                  <Link to={`/pipelines/${encodeURIComponent(s.pipeline)}`}>{s.pipeline}</Link>
                </td>
                <td className={`health-${s.health}`} title={s.reasons.join('\n')}>
                  {s.health}
                </td>
                <td>{s.deployment ? `v${s.deployment.version} ${s.deployment.state}` : '—'}</td>
                <td>{s.totals.messages_in}</td>
                <td>{s.totals.messages_out}</td>
                <td>{s.totals.filtered}</td>
                <td>{s.totals.dead_lettered}</td>
                <td>{s.rates ? s.rates.messages_in.toFixed(1) : '—'}</td>
                <td>{s.lag ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="panel">
        <h2>Workers</h2>
        <table>
          <thead>
            <tr>
              <th>worker</th>
              <th>host</th>
              <th>alive</th>
              <th>last seen</th>
              <th>pipelines</th>
            </tr>
          </thead>
          <tbody>
            {(workers.data ?? []).map((w) => (
              <tr key={w.worker_id}>
                <td>{w.worker_id}</td>
                <td>{w.host}</td>
                <td>{w.alive ? 'yes' : 'no'}</td>
                <td>{w.last_seen}</td>
                <td>{w.pipelines.map((p) => p.pipeline).join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
