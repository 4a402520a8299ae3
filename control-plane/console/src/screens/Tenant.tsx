// The tenant: its quotas with usage, and its secrets (names, kinds and non-secret settings
// only; secret values never leave the server).
import { api } from '../api/client';
import { useCan } from '../session';
import { ErrorLine, useLoad } from './common';

export function Tenant() {
  const can = useCan();
  const usage = useLoad(() => api.GET('/api/v1/quotas/usage'), []);
  const secrets = useLoad(async () => (can('secrets', 'read') ? api.GET('/api/v1/secrets') : { data: [], response: new Response() }), []);
  return (
    <div>
      <h1>Tenant {usage.data?.tenant ?? ''}</h1>
      <div className="panel">
        <h2>Quotas</h2>
        <ErrorLine error={usage.error} />
        <table>
          <thead>
            <tr>
              <th>quota</th>
              <th>usage</th>
              <th>limit</th>
            </tr>
          </thead>
          <tbody>
            {(usage.data?.quotas ?? []).map((q) => (
              <tr key={q.name}>
                <td>{q.name}</td>
                <td>{q.usage ?? '—'}</td>
                <td>{q.limit ?? 'unlimited'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {can('secrets', 'read') && (
        <div className="panel">
          <h2>Secrets</h2>
          <ErrorLine error={secrets.error} />
          <table>
            <thead>
              <tr>
                <th>name</th>
                <th>kind</th>
                <th>secret fields</th>
              </tr>
            </thead>
            <tbody>
              {(secrets.data ?? []).map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>{s.kind}</td>
                  <td>{s.secret_fields.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
