// Crash explorer, part 1: a mixed workload (creates, appends with duplicates, batch appends,
// concurrent group commits, flags, expunge, copy, move, rename, delete, ACLs) recorded on FaultFS;
// every crash point in three crash modes and then seeded random states, each reopened with the
// real file system with index/ missing or older, and checked against the reference model.
// CRASH_STATES sets the total over both explorer files (default 3,000; `npm run test:crash` 100,000).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FaultFileSystem, seedFromEnv } from './faultfs.js';
import { runWorkload, type WorkloadRun } from './workload.js';
import { crashStatesFromEnv, exploreCrashes, fastTmpRoot } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? seedFromEnv() : 0xc4a5;
let work: string;
let ffs: FaultFileSystem;
let run: WorkloadRun;

beforeAll(async () => {
  work = await fsp.mkdtemp(join(fastTmpRoot(), 'crash-explorer-'));
  ffs = new FaultFileSystem({ seed: SEED });
  run = await runWorkload({ dir: join(work, 'store'), ffs, seed: SEED, steps: 90, snapshotRoot: join(work, 'snapshots'), verifyLive: true });
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('crash explorer: mixed workload', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const count = Math.ceil(crashStatesFromEnv(3000) / 2);
    const result = await exploreCrashes(ffs, run, { count, seed: SEED, tmpRoot: work });
    console.info(`crash explorer (seed ${SEED}): ${run.ops.length} ops, ${run.logLength} log entries, ${run.snapshots.length} index snapshots; `
      + `${result.states} crash states in ${(result.ms / 1000).toFixed(1)} s `
      + `(index missing ${result.byIndexMode.missing}, older ${result.byIndexMode.older}; ${JSON.stringify(result.byCrashMode)}; `
      + `recovered exactly the acknowledged state ${result.atAck}, with unacknowledged ops kept ${result.beyondAck})`);
    expect(result.states).toBe(count);
  }, 3_600_000);
});
