// Error mapping: a failed call shows the API's problem message; role grants decide controls.
import { describe, expect, it } from 'vitest';
import { problemText } from './client';
import { grants } from '../session';

describe('problemText', () => {
  it("shows the problem's title and detail", () => {
    const p = { type: 'https://weir.dev/problems/forbidden', title: 'Forbidden', status: 403, code: 'forbidden', detail: 'your role `viewer` lacks the permission `deployments:update`' };
    expect(problemText(p, new Response(null, { status: 403 }))).toBe('Forbidden: your role `viewer` lacks the permission `deployments:update`');
  });
  it('falls back to a text body, then to the status', () => {
    expect(problemText('gateway down', new Response(null, { status: 502 }))).toBe('gateway down');
    expect(problemText(undefined, new Response(null, { status: 502 }))).toBe('HTTP 502');
  });
});

describe('grants', () => {
  it('matches resource:action with wildcards and manage', () => {
    expect(grants(['pipelines:read'], 'pipelines', 'read')).toBe(true);
    expect(grants(['pipelines:read'], 'pipelines', 'update')).toBe(false);
    expect(grants(['pipelines:manage'], 'pipelines', 'update')).toBe(true);
    expect(grants(['*:*'], 'deployments', 'update')).toBe(true);
    expect(grants(['*:read'], 'audit', 'read')).toBe(true);
    expect(grants(['*:read'], 'audit', 'purge')).toBe(false);
  });
});
