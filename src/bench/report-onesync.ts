// One-sync delivery (issue 12 point 4): the same single writer delivering with inline bodies off
// (`mailstore-two-file`: body to a pack, record to the journal, two fdatasyncs) and on
// (`mailstore-inline`: bodies up to ONE_SYNC_INLINE_BYTES inside their journal record, one file,
// one fdatasync), run back to back in every round of the `deliver` step beside the bare
// `sync-shapes`, and the goal rows: inline ≥ 90 % of floor-sync-one-zeroed and ≥ 1.8× two-file.
// All three rows are warm (engine.ts deliveryWarmup: untimed deliveries, the floor's untimed
// writes, first in the same process): the verdicts are on the timed ones after, the cold ratios
// (a freshly started process's first deliveries) are printed beside them.
import { limits } from '../limits.js';
import { find, num, warmRateGoal, type Goal, type TaggedResult } from './report.js';

/** The threshold the inline row runs with: the store's default when it is on, else the one measured best (BENCHMARKS.md). */
export function oneSyncInlineBytes(): number {
  return limits.inlineBodyBytesDefault > 0 ? limits.inlineBodyBytesDefault : limits.inlineBodyBytesMeasured;
}

export const ONE_SYNC_PEERS = ['mailstore-two-file', 'mailstore-inline'] as const;

/** The rows the one-sync goals compare, all warmed alike (their cold_* fields are the warm-up). */
export const ONE_SYNC_WARM_ROWS = [...ONE_SYNC_PEERS, 'floor-sync-one-zeroed'] as const;

/** The warm-up of the one-sync rows in this run, as the report writes it (undefined: none, the rows are cold). */
export function oneSyncWarmup(results: TaggedResult[]): string | undefined {
  const warmup = find(results, 'mailstore-inline', 'deliver')?.warmup;
  return typeof warmup === 'number' && warmup > 0 ? warmup.toLocaleString('en-US') : undefined;
}

/** The two goal rows (each the median of the per-round ratios, as rateGoal does), on the warm figures when the rows were warmed. */
export function oneSyncGoals(results: TaggedResult[]): Goal[] {
  const n = oneSyncWarmup(results);
  const cold = `the first ${n} of a freshly started process`;
  return [
    warmRateGoal(results, 'one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages/s', ['mailstore-inline', 'deliver'], ['floor-sync-one-zeroed', 'deliver'], 0.9,
      n ? { warm: `after ${n} untimed deliveries, the floor after ${n} untimed writes into its own preallocated file`, cold } : undefined),
    warmRateGoal(results, 'one-sync delivery: inline bodies ≥ 1.8× the two-file commit (same writer, inline off) messages/s', ['mailstore-inline', 'deliver'], ['mailstore-two-file', 'deliver'], 1.8,
      n ? { warm: `each after ${n} untimed deliveries`, cold } : undefined),
  ];
}

interface TailGroup { messages: number; seconds: number; p50_ms: number }
interface Tail { inline_bytes_max: number; over_inline: TailGroup; journal_extension: TailGroup; rest: TailGroup }

/**
 * Where the inline row's and the floor's mean go beyond their p50 (the `tail` of the deliver and
 * sync-shapes steps, common.ts latencyTail): the seconds spent in the bodies over the inline
 * threshold, in commits that also extended the journal, and in the rest. Undefined for results
 * from before the steps reported it.
 */
export function oneSyncTailText(results: TaggedResult[]): string | undefined {
  const lines = ['mailstore-inline', 'floor-sync-one-zeroed'].flatMap((peer) => {
    const r = results.find((x) => x.peer === peer && x.measurement === 'deliver' && !x.error);
    const tail = r?.tail as Tail | undefined;
    if (!r || !tail) return [];
    const { over_inline: over, journal_extension: extension, rest } = tail;
    const kib = Math.round(tail.inline_bytes_max / 1024);
    return [`${peer} mean ${num(r.mean_ms as number, 3)} / p50 ${num(r.p50_ms, 3)} ms, ${r.over_1ms} over 1 ms: ` +
      `${num(over.seconds, 3)} s in the ${over.messages} bodies over ${kib} KiB, ` +
      (extension.messages ? `${num(extension.seconds, 3)} s in ${extension.messages} commits that extended the journal, ` : '') +
      `${num(rest.seconds, 3)} s in the other ${rest.messages} (p50 ${num(rest.p50_ms, 3)} ms)`];
  });
  const warm = oneSyncWarmup(results) ? ', the timed deliveries after the warm-up' : '';
  return lines.length ? `\nDiagnostic, where the one-sync time goes (this round${warm}): ${lines.join('; ')}.\n` : undefined;
}
