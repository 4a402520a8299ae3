// Live counters: edges take their count from their source node's port, rates come from two
// samples, and counts are shown compactly.
import { describe, expect, it } from 'vitest';
import { compact, nodeLine, nodeRates, portIndex } from './counts';

describe('live counters', () => {
  it('maps edge ports to the engine port order (rules, then default)', () => {
    expect(portIndex('next', 0)).toBe(0);
    expect(portIndex('rule:0', 2)).toBe(0);
    expect(portIndex('rule:1', 2)).toBe(1);
    expect(portIndex('default', 2)).toBe(2);
  });
  it('rates are rows in per second between samples; none after a reset', () => {
    const a = { big: { rows_in: 10, ports: [4], outputs: 0, errors: 0 }, out: { rows_in: 5, ports: [0], outputs: 5, errors: 0 } };
    const b = { big: { rows_in: 30, ports: [9], outputs: 0, errors: 0 }, out: { rows_in: 2, ports: [0], outputs: 2, errors: 0 } };
    expect(nodeRates(a, b, 2)).toEqual({ big: 10 });
    expect(nodeRates(undefined, b, 2)).toEqual({});
  });
  it('a node shows in, out (passed on and published) and errors', () => {
    expect(nodeLine({ rows_in: 9, ports: [2, 3], outputs: 1, errors: 2 })).toEqual({ in: 9, out: 6, errors: 2 });
    expect([compact(950), compact(12345), compact(4_500_000)]).toEqual(['950', '12k', '4.5M']);
  });
});
