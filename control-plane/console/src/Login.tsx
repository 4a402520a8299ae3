// Login with an API key (`weir_…`, checked with `GET /auth/me`) or email and password
// (`POST /auth/login`, which gives an access token). Emails are unique per tenant: when one
// email and password are a user of several tenants, the API answers `tenant_required` and the
// form asks for the tenant's name.
import { useState, type FormEvent } from 'react';
import { api, problemText, setToken } from './api/client';
import type { Session } from './session';

export function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [mode, setMode] = useState<'key' | 'password'>('key');
  const [key, setKey] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [tenant, setTenant] = useState('');
  const [askTenant, setAskTenant] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      let token = key.trim();
      let refreshToken: string | undefined;
      if (mode === 'password') {
        const body = { email, password, ...(tenant.trim() ? { tenant: tenant.trim() } : {}) };
        const { data, error, response } = await api.POST('/api/v1/auth/login', { body });
        if (!data) {
          if (response.status === 409) setAskTenant(true);
          throw new Error(problemText(error, response));
        }
        token = data.access_token;
        refreshToken = data.refresh_token;
      }
      setToken(token);
      const { data: me, error, response } = await api.GET('/api/v1/auth/me');
      if (!me) {
        setToken(null);
        throw new Error(problemText(error, response));
      }
      onLogin({ token, refreshToken, me });
    } catch (err) {
      setError(String((err as Error).message ?? err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="login">
      <form onSubmit={submit} aria-label="log in">
        <h1>Weir console</h1>
        <div className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={mode === 'key'} onClick={() => setMode('key')}>
            API key
          </button>
          <button type="button" role="tab" aria-selected={mode === 'password'} onClick={() => setMode('password')}>
            Password
          </button>
        </div>
        {mode === 'key' ? (
          <label className="field">
            <span>API key</span>
            <input aria-label="API key" type="password" autoFocus value={key} onChange={(e) => setKey(e.target.value)} placeholder="weir_…" />
          </label>
        ) : (
          <>
            <label className="field">
              <span>Email</span>
              <input aria-label="Email" type="email" autoFocus value={email} onChange={(e) => setEmail(e.target.value)} />
            </label>
            <label className="field">
              <span>Password</span>
              <input aria-label="Password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
            </label>
            {askTenant && (
              <label className="field">
                <span>Tenant</span>
                <input aria-label="Tenant" value={tenant} onChange={(e) => setTenant(e.target.value)} />
              </label>
            )}
          </>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          Log in
        </button>
      </form>
    </div>
  );
}
