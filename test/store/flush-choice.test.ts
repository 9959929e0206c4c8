// FlushChoice: a lone writer's journal-only commits flush in this thread or through the pool,
// whichever the last commits measured faster; the other way is probed every probeEvery-th commit,
// k times rarer when it measured k times slower.
import { describe, expect, it } from 'vitest';
import { FlushChoice } from '../../src/store/flush-choice.js';

/** Runs `n` commits whose latency each way is given by `ms`; returns how many went in this thread. */
function run(choice: FlushChoice, n: number, ms: { thread: number; pool: number }): number {
  let inThread = 0;
  for (let i = 0; i < n; i++) {
    const way = choice.inThread();
    if (way) inThread++;
    choice.record(way, way ? ms.thread : ms.pool);
  }
  return inThread;
}

describe('FlushChoice', () => {
  it('measures both ways first (7 commits each), then keeps to the faster one and probes the other every 16th commit', () => {
    const choice = new FlushChoice(16);
    const first = Array.from({ length: 14 }, () => { const way = choice.inThread(); choice.record(way, way ? 0.4 : 0.5); return way; });
    expect(first).toEqual([...Array(7).fill(true), ...Array(7).fill(false)]);
    expect(run(choice, 160, { thread: 0.4, pool: 0.5 })).toBe(150); // 10 probes through the pool
    expect(choice.describe()).toEqual({ preferThread: true, threadMedianMs: 0.4, poolMedianMs: 0.5 });
  });

  it('probes a way that measured k times slower k times rarer (at most 8)', () => {
    const choice = new FlushChoice(16);
    run(choice, 14, { thread: 2.4, pool: 0.3 });
    expect(choice.describe().preferThread).toBe(false);
    expect(run(choice, 128 * 4, { thread: 2.4, pool: 0.3 })).toBe(4); // every 128th: 8x slower
    const other = new FlushChoice(16);
    run(other, 14, { thread: 0.3, pool: 0.9 });
    expect(128 * 3 - run(other, 128 * 3, { thread: 0.3, pool: 0.9 })).toBe(8); // every 48th: 3x slower
  });

  it('follows the machine: when the in-thread flush turns slow (busy cores), the pool takes over within a few commits, and back after a few probes', () => {
    const choice = new FlushChoice(16);
    run(choice, 14, { thread: 0.4, pool: 0.5 });
    expect(run(choice, 64, { thread: 3, pool: 0.5 })).toBeLessThan(8); // 4 slow samples flip the median
    expect(choice.describe()).toMatchObject({ preferThread: false, threadMedianMs: 3 });
    // the pool is now preferred and in-thread probed every 16 * 6 commits: 4 fast probes flip it back
    const later = run(choice, 16 * 6 * 8, { thread: 0.3, pool: 0.5 });
    expect(choice.describe()).toMatchObject({ preferThread: true, threadMedianMs: 0.3 });
    expect(later).toBeGreaterThan(16 * 6 * 3);
  });

  it('an outlier does not flip it: the median of the last 7 decides', () => {
    const choice = new FlushChoice(16);
    run(choice, 14, { thread: 0.4, pool: 0.6 });
    choice.record(true, 50);
    choice.record(true, 50);
    expect(choice.describe()).toMatchObject({ preferThread: true, threadMedianMs: 0.4 });
  });
});
