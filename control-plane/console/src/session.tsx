// The signed-in session: an API key or a password login's access token, kept in
// sessionStorage, and the caller (`GET /auth/me`) whose role decides which actions are shown.
// The server checks every call anyway; hiding is only so that a user is not offered what fails.
import { createContext, useContext } from 'react';
import type { components } from './api/schema';

export type Me = components['schemas']['Me'];

export interface Session {
  token: string;
  refreshToken?: string;
  me: Me;
}

export const SessionContext = createContext<{ session: Session | null; logout: () => void }>({
  session: null,
  logout: () => {},
});

export function useSession() {
  return useContext(SessionContext);
}

/** Whether `permissions` (`resource:action`, `*` wildcards, `manage` = every action) grant it. */
export function grants(permissions: string[], resource: string, action: string): boolean {
  return permissions.some((p) => {
    const [r, a] = p.split(':');
    return (r === '*' || r === resource) && (a === '*' || a === action || a === 'manage');
  });
}

export function useCan() {
  const { session } = useSession();
  return (resource: string, action: string) => !!session && grants(session.me.permissions, resource, action);
}

const KEY = 'weir.session';

export function saveSession(s: Session | null) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}
