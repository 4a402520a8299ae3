// The tenant's roles: the built-in ones and custom roles (lists of `resource:action` grants);
// create a custom role with the grants you hold yourself, delete one no user holds.
import { useState } from 'react';
import { api, problemText } from '../api/client';
import { useCan } from '../session';
import { ErrorLine, useLoad } from './common';

/** Grants from text: separated by commas, spaces or new lines. */
export function parseGrants(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((g) => g.trim())
    .filter(Boolean);
}

export function Roles({ onChanged }: { onChanged?: () => void }) {
  const can = useCan();
  const roles = useLoad(() => api.GET('/api/v1/roles'), []);
  const [form, setForm] = useState({ name: '', description: '', grants: '' });
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const create = async () => {
    const r = await api.POST('/api/v1/roles', { body: { name: form.name, description: form.description, permissions: parseGrants(form.grants) } });
    if (r.data) {
      setResult({ ok: true, text: `role ${r.data.name} created` });
      setForm({ name: '', description: '', grants: '' });
    } else setResult({ ok: false, text: problemText(r.error, r.response) });
    roles.reload();
    onChanged?.();
  };
  const remove = async (name: string) => {
    if (!confirm(`Delete role ${name}?`)) return;
    const r = await api.DELETE('/api/v1/roles/{name}', { params: { path: { name } } });
    setResult(r.response.ok ? { ok: true, text: `role ${name} deleted` } : { ok: false, text: problemText(r.error, r.response) });
    roles.reload();
    onChanged?.();
  };

  return (
    <div className="panel" aria-label="roles">
      <h2>Roles</h2>
      <ErrorLine error={roles.error} />
      {result && (
        <p className={result.ok ? 'notice' : 'error'} role={result.ok ? 'status' : 'alert'} data-testid="role-result">
          {result.text}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th>name</th>
            <th>grants</th>
            <th>description</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(roles.data ?? []).map((r) => (
            <tr key={r.name} data-testid={`role-${r.name}`}>
              <td>
                {r.name}
                {r.builtin && <span className="muted small"> (built in)</span>}
              </td>
              <td className="small">
                {r.permissions.map((p) => (
                  <code key={p} className="grant">
                    {p}
                  </code>
                ))}
              </td>
              <td className="muted small">{r.description}</td>
              <td>
                {!r.builtin && can('roles', 'delete') && (
                  <button type="button" className="danger" onClick={() => remove(r.name)}>
                    delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {can('roles', 'create') && (
        <div className="toolbar">
          <input aria-label="new role name" placeholder="role name" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} />
          <input aria-label="new role grants" placeholder="grants, e.g. pipelines:read, messages:read" value={form.grants} onChange={(e) => setForm({ ...form, grants: e.target.value })} style={{ minWidth: 320 }} />
          <input aria-label="new role description" placeholder="description (optional)" value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} />
          <button type="button" onClick={create} disabled={!form.name || !form.grants.trim()}>
            Create role
          </button>
        </div>
      )}
    </div>
  );
}
