// The builder's test panel: pasted samples are read line by line (messages or bare payloads),
// a run posts them with the editor's pipeline, and each result shows its path, outputs or
// error and hands its path to the canvas; an API problem is shown as the API wrote it.
import { describe, expect, it, vi, afterEach } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { parseSamples, TestPanel, type Trace } from './TestPanel';

// The API client keeps the `fetch` it found when created: replace it before any import; and
// resolve its same-origin paths against a base, as a browser would.
const fetch = vi.hoisted(() => {
  const Base = globalThis.Request;
  globalThis.Request = class extends Base {
    constructor(input: RequestInfo | URL, init?: RequestInit) {
      super(typeof input === 'string' && input.startsWith('/') ? new URL(input, 'http://console.test') : input, init);
    }
  };
  const f = vi.fn<(req: Request) => Promise<Response>>();
  globalThis.fetch = ((req: Request) => f(req)) as typeof globalThis.fetch;
  return f;
});

afterEach(() => {
  cleanup();
  fetch.mockReset();
});

describe('parseSamples', () => {
  it('reads messages and bare payloads, one a line, skipping blank lines', () => {
    const r = parseSamples('{"subject": "a.b", "data": {"x": 1}}\n\n{"x": 2}\n42\n');
    expect(r.error).toBeUndefined();
    expect(r.messages).toEqual([{ subject: 'a.b', data: { x: 1 } }, { data: { x: 2 } }, { data: 42 }]);
  });
  it('names the line that is not JSON', () => {
    expect(parseSamples('{"x": 1}\n{oops').error).toMatch(/^line 2: not JSON/);
    expect(parseSamples('  \n').error).toBe('paste at least one message');
  });
});

function reply(status: number, body: unknown, type = 'application/json') {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type } });
}

describe('TestPanel', () => {
  it('runs the pipeline on pasted samples and shows path, outputs and errors', async () => {
    const results = [
      { input: { subject: 'orders.created.1', headers: {}, data: { amount: 500 }, seq: 1 }, path: ['big', 'out'], outcome: 'outputs', outputs: [{ node: 'out', subject: 'out.eu', headers: { 'X-Tier': ['big'] }, data: { amount: 500 } }], error: null },
      { input: { subject: 'test', headers: {}, payload_b64: 'e30s', seq: 2 }, path: [], outcome: 'error', outputs: [], error: { kind: 'decode', node: 'source', message: 'not JSON' } },
    ];
    fetch.mockImplementation(async () => reply(200, { pipeline: 'p', results }));
    const traces: Trace[] = [];
    render(<TestPanel text="kind: Pipeline" canCapture={false} onTrace={(t) => traces.push(t)} />);
    fireEvent.change(screen.getByTestId('test-samples'), { target: { value: '{"amount": 500}\n{"bad": true}' } });
    fireEvent.click(screen.getByTestId('test-run'));
    await waitFor(() => expect(screen.getByTestId('test-path').textContent).toBe('big → out'));
    const sent = await fetch.mock.calls[0][0].json();
    expect(sent).toEqual({ pipeline: 'kind: Pipeline', messages: [{ data: { amount: 500 } }, { data: { bad: true } }] });
    expect(screen.getByTestId('test-output-subject').textContent).toBe('out.eu');
    expect(traces.at(-1)).toEqual({ path: ['big', 'out'], errorNode: undefined });
    fireEvent.click(screen.getByTestId('test-result-1'));
    expect(screen.getByTestId('test-failure').textContent).toContain('decode error at source: not JSON');
    expect(traces.at(-1)).toEqual({ path: [], errorNode: 'source' });
  });

  it('captures when allowed, and shows the problem the API returns', async () => {
    fetch.mockImplementation(async () => reply(404, { title: 'Not Found', status: 404, code: 'not_found', detail: 'a message on orders.> in stream `ORDERS` to capture (publish some first) not found' }, 'application/problem+json'));
    render(<TestPanel text="kind: Pipeline" canCapture onTrace={() => {}} />);
    fireEvent.change(screen.getByTestId('test-count'), { target: { value: '5' } });
    fireEvent.click(screen.getByTestId('test-run'));
    await waitFor(() => expect(screen.getByTestId('test-error').textContent).toContain('publish some first'));
    expect(await fetch.mock.calls[0][0].json()).toEqual({ pipeline: 'kind: Pipeline', capture: { count: 5 } });
  });

  it('offers no capture without messages:read', () => {
    render(<TestPanel text="" canCapture={false} onTrace={() => {}} />);
    expect(screen.queryByTestId('test-mode-capture')).toBeNull();
    expect(screen.getByTestId('test-samples')).toBeTruthy();
  });
});
