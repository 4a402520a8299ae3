// The typed API client: `openapi-fetch` over the types generated from the server's OpenAPI
// document (src/api/schema.d.ts, `npm run gen:api`). Every call carries the session's bearer
// token; errors come back as the API's problem+json, shown to the user as they are.
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths, components } from './schema';

export type Problem = components['schemas']['Problem'];

let token: string | null = null;
let onUnauthorized: () => void = () => {};

export function setToken(t: string | null) {
  token = t;
}

export function setOnUnauthorized(f: () => void) {
  onUnauthorized = f;
}

const auth: Middleware = {
  onRequest({ request }) {
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.endsWith('/auth/login')) onUnauthorized();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: '' });
api.use(auth);

/** Options to send a YAML body (pipeline files) instead of JSON. */
export const yamlBody = {
  bodySerializer: (b: unknown) => String(b),
  headers: { 'Content-Type': 'application/yaml' },
} as const;

/** The message to show for a failed call: the problem's detail, else its title, else the status. */
export function problemText(error: unknown, response?: Response): string {
  const p = error as Partial<Problem> | undefined;
  if (p && typeof p === 'object' && (p.detail || p.title)) return `${p.title ?? 'Error'}: ${p.detail ?? ''}`.trim();
  if (typeof error === 'string' && error) return error;
  return response ? `HTTP ${response.status}` : 'request failed';
}

/** The session's bearer token (for calls that `openapi-fetch` cannot make, e.g. streams). */
export function getToken(): string | null {
  return token;
}
