// Users, API keys and roles of the tenant: list, add a user, create a key (its secret is shown
// once), revoke a key; custom roles (see Roles.tsx).
import { useState } from 'react';
import { api, problemText } from '../api/client';
import { useCan } from '../session';
import { ErrorLine, useLoad } from './common';
import { Roles } from './Roles';

export function Users() {
  const can = useCan();
  const users = useLoad(() => api.GET('/api/v1/users'), []);
  const keys = useLoad(() => api.GET('/api/v1/api-keys'), []);
  const roles = useLoad(() => api.GET('/api/v1/roles'), []);
  const [user, setUser] = useState({ email: '', role: 'viewer', password: '' });
  const [keyName, setKeyName] = useState('');
  const [secret, setSecret] = useState<string | null>(null);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const addUser = async () => {
    const r = await api.POST('/api/v1/users', { body: { email: user.email, role: user.role, password: user.password || undefined } });
    setResult(r.data ? { ok: true, text: `added ${r.data.email}` } : { ok: false, text: problemText(r.error, r.response) });
    users.reload();
  };
  const addKey = async () => {
    const r = await api.POST('/api/v1/api-keys', { body: { name: keyName } });
    if (r.data) {
      setSecret(r.data.key);
      setResult(null);
    } else setResult({ ok: false, text: problemText(r.error, r.response) });
    keys.reload();
  };
  const revoke = async (id: string) => {
    const r = await api.DELETE('/api/v1/api-keys/{id}', { params: { path: { id } } });
    setResult(r.response.ok ? { ok: true, text: 'revoked' } : { ok: false, text: problemText(r.error, r.response) });
    keys.reload();
  };

  return (
    <div>
      <h1>Users and API keys</h1>
      {result && (
        <p className={result.ok ? 'notice' : 'error'} role={result.ok ? 'status' : 'alert'}>
          {result.text}
        </p>
      )}
      <div className="panel">
        <h2>Users</h2>
        <ErrorLine error={users.error} />
        <table>
          <thead>
            <tr>
              <th>email</th>
              <th>role</th>
              <th>password</th>
              <th>last login</th>
            </tr>
          </thead>
          <tbody>
            {(users.data ?? []).map((u) => (
              <tr key={u.id}>
                <td>{u.email}</td>
                <td>{u.role}</td>
                <td>{u.has_password ? 'set' : '—'}</td>
                <td className="muted">{u.last_login_at ?? 'never'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {can('users', 'create') && (
          <div className="toolbar">
            <input aria-label="new user email" placeholder="email" value={user.email} onChange={(e) => setUser({ ...user, email: e.target.value })} />
            <select aria-label="new user role" value={user.role} onChange={(e) => setUser({ ...user, role: e.target.value })}>
              {(roles.data ?? []).map((r) => (
                <option key={r.name}>{r.name}</option>
              ))}
            </select>
            <input aria-label="new user password" type="password" placeholder="password (optional)" value={user.password} onChange={(e) => setUser({ ...user, password: e.target.value })} />
            <button type="button" onClick={addUser} disabled={!user.email}>
              Add user
            </button>
          </div>
        )}
      </div>
      <div className="panel">
        <h2>API keys</h2>
        <ErrorLine error={keys.error} />
        {secret && (
          <p className="notice">
            New key (shown once, copy it now): <code data-testid="new-key">{secret}</code>
          </p>
        )}
        <table>
          <thead>
            <tr>
              <th>name</th>
              <th>prefix</th>
              <th>user</th>
              <th>created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys.data ?? []).map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{k.user_email}</td>
                <td className="muted">{k.created_at}</td>
                <td>
                  {can('keys', 'delete') && (
                    <button type="button" className="danger" onClick={() => revoke(k.id)}>
                      revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {can('keys', 'create') && (
          <div className="toolbar">
            <input aria-label="new key name" placeholder="key name" value={keyName} onChange={(e) => setKeyName(e.target.value)} />
            <button type="button" onClick={addKey} disabled={!keyName}>
              Create key
            </button>
          </div>
        )}
      </div>
      {can('roles', 'read') && <Roles onChanged={roles.reload} />}
    </div>
  );
}
