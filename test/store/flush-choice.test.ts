// FlushChoice: a lone writer's journal-only commits flush in this thread or through the pool,
// whichever the last commits measured faster, and every probeEvery-th commit tries the other way.
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
    const first = Array.from({ length: 14 }, () => { const way = choice.inThread(); choice.record(way, 1); return way; });
    expect(first).toEqual([...Array(7).fill(true), ...Array(7).fill(false)]);
    expect(run(choice, 160, { thread: 0.4, pool: 0.6 })).toBe(150); // 10 probes through the pool
    expect(choice.describe()).toEqual({ preferThread: true, threadMedianMs: 0.4, poolMedianMs: 0.6 });
  });

  it('follows the machine: when the in-thread flush turns slow (busy cores), the pool takes over within a few probes, and back', () => {
    const choice = new FlushChoice(16);
    run(choice, 14, { thread: 0.4, pool: 0.6 });
    expect(run(choice, 32, { thread: 3, pool: 0.6 })).toBeLessThan(8); // at most 4 slow samples before the median flips
    expect(choice.describe().preferThread).toBe(false);
    const later = run(choice, 16 * 12, { thread: 0.3, pool: 0.6 }); // only probes go in-thread until 4 of 7 samples are fast again
    expect(choice.describe().preferThread).toBe(true);
    expect(later).toBeGreaterThan(16 * 12 / 2);
  });

  it('an outlier does not flip it: the median of the last 7 decides', () => {
    const choice = new FlushChoice(16);
    run(choice, 14, { thread: 0.4, pool: 0.6 });
    choice.record(true, 50);
    choice.record(true, 50);
    expect(choice.describe()).toMatchObject({ preferThread: true, threadMedianMs: 0.4 });
  });
});
