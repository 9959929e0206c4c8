// Crash explorer, part 3: the mixed workload with inline bodies (docs/FORMAT.md, "Inline bodies"):
// most messages (up to 2 KiB) go inside their journal record, so a delivery is one write and one
// fdatasync of a segment; small segments (3 KiB) rotate often, and the workload's snapshots and
// compactions move inline bodies into packs before their segments are retired. With the checks of
// explorer.ts, by default (npm test) at the covering sample of crash points (crash-sample.ts): every
// kind of crash point (each call on each file class, with each workload op in flight, or between
// ops) at least once in each mode, every acknowledgement point in the losing modes (all-lost,
// data-lost), the empty and the whole log, one point in 15. The whole sweep (every crash point once
// in each of the three modes, then in data-lost; ~850 states):
//   CRASH_POINTS=all npx vitest run test/sim/crash-explorer-inline.test.ts
// CRASH_STATES=N: N × 0.3 seeded random states instead of the three-mode sweep (the long form).
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { expectCrashPointCoverage, recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? (seedFromEnv() ^ 0x1e1e) >>> 0 : 0x1b0d1e5;

describe('crash explorer: inline bodies', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (inline bodies)', {
      seed: SEED, steps: 45, share: 0.3, fallbackTotal: 3000, everyPoint: !process.env.CRASH_STATES, journalSegmentBytesMax: 3 * 1024, inlineBodyBytesMax: 2048, compact: true,
    });
    if (result.coverage.points === 'random') expect(result.states).toBeGreaterThan(result.logLength);
    expectCrashPointCoverage(result);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});

describe('crash explorer: inline bodies on a drive that loses un-flushed writes', () => {
  it('every crash point in data-lost mode recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (inline bodies, data-lost)', {
      seed: SEED, steps: 40, share: 0, fallbackTotal: 0, journalSegmentBytesMax: 3 * 1024, inlineBodyBytesMax: 2048, compact: true, modes: ['data-lost'], everyPoint: true,
    });
    expectCrashPointCoverage(result);
    expect(result.byCrashMode['data-lost']).toBe(result.states);
  }, 7_200_000);
});
