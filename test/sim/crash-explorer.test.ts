// Crash explorer, part 1: a mixed workload (creates, appends with duplicates, batch appends,
// concurrent group commits, flags, expunge, copy, move, rename, delete, ACLs) recorded on FaultFS;
// every crash point in three crash modes (all-lost, random, all-kept) and then seeded random
// states, each reopened with the real file system with index/ missing or an older copy, and
// checked against the reference model (explorer.ts, checkCrashState).
// Default (npm test): every crash point once in each of the three modes (~2,280 states over both
// files). CRASH_STATES sets the total over both explorer files instead (`npm run test:crash`: 100,000).
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? seedFromEnv() : 0xc4a5;

describe('crash explorer: mixed workload', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (mixed)', { seed: SEED, steps: 90, share: 0.5, fallbackTotal: 0, everyPoint: !process.env.CRASH_STATES, compact: true });
    expect(result.states).toBeGreaterThan(result.logLength);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});
