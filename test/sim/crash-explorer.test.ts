// Crash explorer, part 1: a mixed workload (creates, appends with duplicates, batch appends,
// concurrent group commits, flags, expunge, copy, move, rename, delete, ACLs) recorded on FaultFS;
// crash points in three crash modes (all-lost, random, all-kept: the sample below, or every one)
// or seeded random states, each reopened with the real file system with index/ missing or an older copy, and
// checked against the reference model (explorer.ts, checkCrashState).
// Default (npm test): the covering sample of crash points (crash-sample.ts) in each of the three
// modes: every kind of crash point (the boundary the log prefix ends at — write, sync, create,
// rename, unlink, truncate, mkdir, syncDir of each file class: packs, journal segments, snapshots,
// consumer cursors, LOCK — with each workload op in flight: create, append, appendBatch, flags,
// expunge, move, copy, acl, rename, delete, compact, or between ops) at least once per mode, every
// acknowledgement point in all-lost, the empty and the whole log, and one point in 15.
// The whole sweep (every crash point once in each mode, ~1,150 states):
//   CRASH_POINTS=all npx vitest run test/sim/crash-explorer.test.ts
// CRASH_STATES sets the total of seeded random states over both explorer files instead
// (`npm run test:crash`: 100,000).
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { expectCrashPointCoverage, recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? seedFromEnv() : 0xc4a5;

describe('crash explorer: mixed workload', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (mixed)', { seed: SEED, steps: 90, share: 0.5, fallbackTotal: 0, everyPoint: !process.env.CRASH_STATES, compact: true });
    if (result.coverage.points === 'random') expect(result.states).toBeGreaterThan(result.logLength);
    expectCrashPointCoverage(result);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});
