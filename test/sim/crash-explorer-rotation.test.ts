// Crash explorer, part 2: the same checks on a workload with tiny packs (8 KiB) and journal
// segments (1 KiB), so nearly every commit creates a new file: the crash states that lose a new
// file's directory entry, its header or its first records.
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? (seedFromEnv() ^ 0x5a5a) >>> 0 : 0x707a7e;

describe('crash explorer: file rotation', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (rotation)', {
      seed: SEED, steps: 60, share: 0.5, fallbackTotal: 0, everyPoint: !process.env.CRASH_STATES, packBytesMax: 8 * 1024, journalSegmentBytesMax: 1024, compact: true,
    });
    expect(result.states).toBeGreaterThan(result.logLength);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});
