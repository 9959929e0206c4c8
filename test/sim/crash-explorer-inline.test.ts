// Crash explorer, part 3: the mixed workload with inline bodies (docs/FORMAT.md, "Inline bodies"):
// most messages (up to 2 KiB) go inside their journal record, so a delivery is one write and one
// fdatasync of a segment; small segments (3 KiB) rotate often, and the workload's snapshots and
// compactions move inline bodies into packs before their segments are retired. Every crash
// point once in each of the three crash modes (CRASH_STATES=N: N × 0.3 seeded random states
// instead, the long form), with the checks of explorer.ts.
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from './faultfs.js';
import { recordAndExplore } from './explorer.js';

const SEED = process.env.FAULTFS_SEED ? (seedFromEnv() ^ 0x1e1e) >>> 0 : 0x1b0d1e5;

describe('crash explorer: inline bodies', () => {
  it('every crash state recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (inline bodies)', {
      seed: SEED, steps: 45, share: 0.3, fallbackTotal: 3000, everyPoint: !process.env.CRASH_STATES, journalSegmentBytesMax: 3 * 1024, inlineBodyBytesMax: 2048, compact: true,
    });
    expect(result.states).toBeGreaterThan(result.logLength);
    expect(result.indexSnapshots, 'the workload takes snapshots (and retires the journal under them)').toBeGreaterThan(0);
  }, 7_200_000);
});

describe('crash explorer: inline bodies on a drive that loses un-flushed writes', () => {
  it('every crash point in data-lost mode recovers to a model state between acknowledged and submitted', async () => {
    const result = await recordAndExplore('crash explorer (inline bodies, data-lost)', {
      seed: SEED, steps: 40, share: 0, fallbackTotal: 0, journalSegmentBytesMax: 3 * 1024, inlineBodyBytesMax: 2048, compact: true, modes: ['data-lost'], everyPoint: true,
    });
    expect(result.states).toBeGreaterThan(result.logLength);
  }, 7_200_000);
});
