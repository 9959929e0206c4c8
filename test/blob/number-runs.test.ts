// NumberRuns (src/blob/number-runs.ts), the pack store's removed packs as runs: the same answers
// as a Set of every number added, in as many runs as there are gaps between them.
import { describe, expect, it } from 'vitest';
import { NumberRuns } from '../../src/blob/number-runs.js';
import { prng } from '../helpers/prng.js';

/** How many runs `numbers` make: each number that does not follow the one before it starts one. */
function runsOf(numbers: Set<number>): number {
  return [...numbers].filter((n) => !numbers.has(n - 1)).length;
}

describe('NumberRuns', () => {
  it('answers as a Set of every number added, in any order, repeats included, and merges neighbours into one run', () => {
    for (const seed of [1, 2, 3, 4]) {
      const random = prng(seed);
      const runs = new NumberRuns();
      const added = new Set<number>();
      for (let step = 0; step < 600; step++) {
        const n = 1 + Math.floor(random() * 300);
        runs.add(n);
        added.add(n);
        if (step % 50 === 0) for (let m = 0; m <= 302; m++) expect(runs.has(m), `seed ${seed} step ${step}: ${m}`).toBe(added.has(m));
      }
      for (let m = -1; m <= 302; m++) expect(runs.has(m), `seed ${seed}: ${m}`).toBe(added.has(m));
      expect(runs.runs).toBe(runsOf(added));
    }
  });

  it('a daemon that removes a pack at a time, 100,000 of them, holds one run, and one a pack kept live among them', () => {
    const runs = new NumberRuns();
    for (let pack = 1; pack <= 100_000; pack++) if (pack % 10_000 !== 0) runs.add(pack);
    expect(runs.runs).toBe(10); // packs 10,000, 20,000, ... 90,000 still live; 100,000 is not added
    expect([runs.has(1), runs.has(9_999), runs.has(10_000), runs.has(10_001), runs.has(100_000)]).toEqual([true, true, false, true, false]);
    for (let pack = 10_000; pack < 100_000; pack += 10_000) runs.add(pack); // compacted at last
    expect(runs.runs).toBe(1);
    expect(runs.has(50_000)).toBe(true);
    expect(new NumberRuns().has(1)).toBe(false);
  });
});
