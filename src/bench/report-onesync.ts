// One-sync delivery (issue 12 point 4): the same single writer delivering with inline bodies off
// (`mailstore-two-file`: body to a pack, record to the journal, two fdatasyncs) and on
// (`mailstore-inline`: bodies up to ONE_SYNC_INLINE_BYTES inside their journal record, one file,
// one fdatasync), run back to back in every round of the `deliver` step beside the bare
// `sync-shapes`, and the goal rows: inline ≥ 90 % of floor-sync-one-zeroed and ≥ 1.8× two-file.
import { limits } from '../limits.js';
import type { BenchResult } from './common.js';
import { rateGoal, type Goal } from './report.js';

/** The threshold the inline row runs with: the store's default when it is on, else the one measured best (BENCHMARKS.md). */
export function oneSyncInlineBytes(): number {
  return limits.inlineBodyBytesDefault > 0 ? limits.inlineBodyBytesDefault : limits.inlineBodyBytesMeasured;
}

export const ONE_SYNC_PEERS = ['mailstore-two-file', 'mailstore-inline'] as const;

/** The two goal rows (each the median of the per-round ratios, as rateGoal does). */
export function oneSyncGoals(results: Parameters<typeof rateGoal>[0], msgRate: (r: BenchResult) => number | undefined): Goal[] {
  return [
    rateGoal(results, 'one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages/s', ['mailstore-inline', 'deliver'], ['floor-sync-one-zeroed', 'deliver'], 0.9, msgRate),
    rateGoal(results, 'one-sync delivery: inline bodies ≥ 1.8× the two-file commit (same writer, inline off) messages/s', ['mailstore-inline', 'deliver'], ['mailstore-two-file', 'deliver'], 1.8, msgRate),
  ];
}
