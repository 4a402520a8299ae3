// Live per-node counters on the canvas: the status's per-node counts (summed over the fleet,
// pushed by the status event stream), rates from two successive statuses, and the count of
// each edge (the rows its source node passed on that output port).
import type { components } from '../api/schema';

export type NodeStats = components['schemas']['NodeStats'];
export type NodeCounts = Record<string, NodeStats>;

/** Index of an edge's port in a node's `ports` counts: a route's rules in order, then `default`. */
export function portIndex(port: string, routeRules: number): number {
  if (port.startsWith('rule:')) return Number(port.slice(5)) || 0;
  if (port === 'default') return routeRules;
  return 0;
}

/** Rows per second into each node between two samples `seconds` apart (none when a count went back). */
export function nodeRates(prev: NodeCounts | undefined, cur: NodeCounts, seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  if (!prev || seconds <= 0) return out;
  for (const [id, c] of Object.entries(cur)) {
    const p = prev[id];
    if (p && c.rows_in >= p.rows_in) out[id] = (c.rows_in - p.rows_in) / seconds;
  }
  return out;
}

/** A compact count: 950, 12.3k, 4.5M. */
export function compact(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** What a node shows: rows in, rows out (passed on plus published), errors. */
export function nodeLine(s: NodeStats): { in: number; out: number; errors: number } {
  return { in: s.rows_in, out: s.ports.reduce((a, b) => a + b, 0) + s.outputs, errors: s.errors };
}
