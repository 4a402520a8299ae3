// Live pipeline statuses from `GET /api/v1/status/stream` (server-sent events). EventSource
// cannot send a bearer token, so this reads the event stream through fetch; it reconnects
// after a drop, with a short pause.
import { useEffect } from 'react';
import { getToken } from './client';
import type { components } from './schema';

export type PipelineStatus = components['schemas']['PipelineStatus'];

/** Splits an event-stream text into complete events; returns them and the unfinished rest. */
export function parseEvents(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  const blocks = buffer.replace(/\r\n/g, '\n').split('\n\n');
  const rest = blocks.pop() ?? '';
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest };
}

/** Calls `onStatus` with every status event while the component is mounted. */
export function useStatusStream(onStatus: (s: PipelineStatus) => void, enabled = true) {
  useEffect(() => {
    if (!enabled) return;
    const abort = new AbortController();
    let stopped = false;
    const run = async () => {
      while (!stopped) {
        try {
          const r = await fetch('/api/v1/status/stream', { headers: { Authorization: `Bearer ${getToken()}`, Accept: 'text/event-stream' }, signal: abort.signal });
          if (!r.ok || !r.body) throw new Error(`status stream: HTTP ${r.status}`);
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            const { events, rest } = parseEvents(buffer + value);
            buffer = rest;
            for (const e of events) if (e.event === 'status') onStatus(JSON.parse(e.data) as PipelineStatus);
          }
        } catch {
          if (stopped) return;
        }
        await new Promise((ok) => setTimeout(ok, 2000));
      }
    };
    void run();
    return () => {
      stopped = true;
      abort.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [enabled]);
}
