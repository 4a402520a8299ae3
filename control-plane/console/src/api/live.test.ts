import { describe, expect, it } from 'vitest';
import { parseEvents } from './live';

describe('event-stream parsing', () => {
  it('splits complete events and keeps the unfinished rest', () => {
    const { events, rest } = parseEvents('event: status\ndata: {"a":1}\n\n: keep-alive\n\nevent: status\ndata: {"a"');
    expect(events).toEqual([{ event: 'status', data: '{"a":1}' }]);
    expect(rest).toBe('event: status\ndata: {"a"');
    const more = parseEvents(rest + ':2}\n\n');
    expect(more.events).toEqual([{ event: 'status', data: '{"a":2}' }]);
  });
});
