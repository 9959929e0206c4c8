// Crash explorer, part 2: the same checks on a workload with tiny packs (8 KiB) and journal
// segments (1 KiB), so nearly every commit creates a new file: the crash states that lose a new
// file's directory entry, its header or its first records.
// Default (npm test): the covering sample of crash points (crash-sample.ts) in each of the three
// modes: every kind of crash point (each call — create, write, sync, syncDir, rename, unlink,
// truncate, mkdir — on each file class, with each workload op in flight, or between ops) at least
// once per mode, every acknowledgement point in all-lost, the empty and the whole log, one point in 15.
// The whole sweep (every crash point once in each mode, ~1,200 states):
//   CRASH_POINTS=all npx vitest run test/sim/crash-explorer-rotation.test.ts
// CRASH_STATES=N: N × 0.5 seeded random states instead (the long form, `npm run test:crash`).
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { expectCrashPointCoverage, recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? (seedFromEnv() ^ 0x5a5a) >>> 0 : 0x707a7e;

describe('crash explorer: file rotation', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (rotation)', {
      seed: SEED, steps: 60, share: 0.5, fallbackTotal: 0, everyPoint: !process.env.CRASH_STATES, packBytesMax: 8 * 1024, journalSegmentBytesMax: 1024, compact: true,
    });
    if (result.coverage.points === 'random') expect(result.states).toBeGreaterThan(result.logLength);
    expectCrashPointCoverage(result);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});
