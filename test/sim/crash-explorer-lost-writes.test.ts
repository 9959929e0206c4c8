// Crash explorer, part 3: a drive that loses every write it was not made to flush. Both explorer
// workloads (mixed; tiny packs and segments) are crashed along their op log in FaultFS's
// 'data-lost' mode: each file keeps exactly what its last completed fdatasync/fsync
// covered, and every un-synced directory entry survives (new files come back empty, renamed ones
// without their un-synced data). Its twin, 'all-lost' (un-synced entries dropped too), runs in
// parts 1 and 2. Same checks as there (explorer.ts, checkCrashState).
// Default (npm test): the covering sample of crash points (crash-sample.ts): every kind of crash
// point (each call — create, write, sync, syncDir, rename, unlink, truncate, mkdir — on each file
// class, with each workload op in flight, or between ops), every acknowledgement point, the empty
// and the whole log, one point in 15. The whole sweep (every crash point, ~780 states):
//   CRASH_POINTS=all npx vitest run test/sim/crash-explorer-lost-writes.test.ts
import { describe, expect, it } from 'vitest';
import { expectCrashPointCoverage, recordAndExplore } from './explorer.js';

describe('crash explorer: un-flushed writes lost, un-synced names kept', () => {
  it('mixed workload: every crash point recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (data-lost, mixed)', { seed: 0xc4a5, steps: 90, share: 0, fallbackTotal: 0, modes: ['data-lost'], everyPoint: true });
    expectCrashPointCoverage(result);
    expect(result.byCrashMode['data-lost']).toBe(result.states);
  }, 7_200_000);

  it('rotation workload (8 KiB packs, 1 KiB segments): the same', async () => {
    const result = await recordAndExplore('crash explorer (data-lost, rotation)', {
      seed: 0x707a7e, steps: 60, share: 0, fallbackTotal: 0, packBytesMax: 8 * 1024, journalSegmentBytesMax: 1024, modes: ['data-lost'], everyPoint: true,
    });
    expectCrashPointCoverage(result);
    expect(result.byCrashMode['data-lost']).toBe(result.states);
  }, 7_200_000);
});
