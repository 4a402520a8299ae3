// The console's shell: login gate, navigation, and the screen for the current path.
import { useCallback, useEffect, useState } from 'react';
import { api, setOnUnauthorized, setToken } from './api/client';
import { Login } from './Login';
import { Link, navigate, usePath } from './router';
import { SessionContext, grants, loadSession, saveSession, type Session } from './session';
import { Builder } from './builder/Builder';
import { Overview } from './screens/Overview';
import { Pipelines } from './screens/Pipelines';
import { Streams, StreamDetail } from './screens/Streams';
import { Dlq } from './screens/Dlq';
import { Users } from './screens/Users';
import { Audit } from './screens/Audit';
import { Kv } from './screens/Kv';
import { Tenant } from './screens/Tenant';

/** Navigation: path, label, and the resource the role must be able to read to see it. */
const NAV: [string, string, string][] = [
  ['/', 'Overview', 'pipelines'],
  ['/pipelines', 'Pipelines', 'pipelines'],
  ['/streams', 'Streams', 'streams'],
  ['/dlq', 'DLQ', 'dlq'],
  ['/kv', 'KV', 'kv'],
  ['/users', 'Users & keys', 'users'],
  ['/tenant', 'Tenant & quotas', 'quotas'],
  ['/audit', 'Audit log', 'audit'],
];

export function App() {
  const [session, setSession] = useState<Session | null>(() => {
    const s = loadSession();
    setToken(s?.token ?? null);
    return s;
  });
  const path = usePath();

  const logout = useCallback(() => {
    if (session && session.token.startsWith('wat_')) void api.POST('/api/v1/auth/logout');
    saveSession(null);
    setToken(null);
    setSession(null);
  }, [session]);

  useEffect(() => {
    setOnUnauthorized(() => {
      saveSession(null);
      setToken(null);
      setSession(null);
    });
  }, []);

  if (!session) {
    return (
      <Login
        onLogin={(s) => {
          saveSession(s);
          setSession(s);
          if (path === '/login') navigate('/');
        }}
      />
    );
  }

  let screen;
  let m: RegExpExecArray | null;
  if (path === '/' || path === '/login') screen = <Overview />;
  else if (path === '/pipelines') screen = <Pipelines />;
  else if (path === '/pipelines/new') screen = <Builder key="new" name={null} />;
  else if ((m = /^\/pipelines\/([^/]+)$/.exec(path))) screen = <Builder key={m[1]} name={decodeURIComponent(m[1])} />;
  else if (path === '/streams') screen = <Streams />;
  else if ((m = /^\/streams\/([^/]+)$/.exec(path))) screen = <StreamDetail name={decodeURIComponent(m[1])} />;
  else if (path === '/dlq') screen = <Dlq />;
  else if (path === '/kv') screen = <Kv />;
  else if (path === '/users') screen = <Users />;
  else if (path === '/tenant') screen = <Tenant />;
  else if (path === '/audit') screen = <Audit />;
  else screen = <p className="error">No page at {path}.</p>;

  return (
    <SessionContext.Provider value={{ session, logout }}>
      <div className="shell">
        <nav className="sidebar" aria-label="main">
          <div className="brand">Weir</div>
          {NAV.filter(([, , resource]) => grants(session.me.permissions, resource, 'read')).map(([to, label]) => (
            <Link key={to} to={to} className={(to === '/' ? path === '/' : path.startsWith(to)) ? 'active' : ''}>
              {label}
            </Link>
          ))}
          <div className="who">
            <div title={session.me.email}>{session.me.email}</div>
            <div>
              tenant <b>{session.me.tenant}</b>, role <b data-testid="role">{session.me.role}</b>
            </div>
            <button type="button" onClick={logout}>
              Log out
            </button>
          </div>
        </nav>
        <main>{screen}</main>
      </div>
    </SessionContext.Provider>
  );
}
