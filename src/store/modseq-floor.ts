// Modseqs a client may already have seen elsewhere (an XFER source's, an undumped list's): the
// store's modseq offset is raised past them, so a mailbox's modseqs never go backwards (RFC 7162).
import { MODSEQ_OFFSET_NAME, forgetModseqOffset, modseqAt } from './apply.js';
import type { Op } from './records.js';
import type { Mutation } from './writer.js';

/**
 * Raises the modseq offset so that the next record's modseq is above `highest` (a journaled
 * meta.set, its own record, committed through `commit`, before anything lands that must be above
 * it; docs/FORMAT.md invariant 21). Nothing when modseqs are already above.
 */
export async function raiseModseqsAbove(commit: (prepare: Mutation<undefined>['prepare']) => Promise<undefined>, db: object, highest: number): Promise<void> {
  await commit(async ({ view, seq }) => {
    if (modseqAt(view, seq) > highest) return { ops: [], result: undefined };
    return { ops: [{ op: 'meta.set', key: MODSEQ_OFFSET_NAME, value: highest + 1 - seq } as Op], result: undefined };
  }).catch((error: unknown) => {
    forgetModseqOffset(db); // the batch failed: the offset applied in memory is not the index's
    throw error;
  });
}
