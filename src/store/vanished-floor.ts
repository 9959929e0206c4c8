// The vanished floor's rarer paths (docs/FORMAT.md, "The vanished floor"), loaded only when needed:
// changesSince from below a mailbox's floor, and a replay that lost records.
import type { IndexSnapshot, IndexView } from '../index/index-db.js';
import { keys, messageKeyUid } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import { modseqAt } from './apply.js';
import type { MailboxInfo } from './records.js';

/**
 * The uids in [1, uidNext) holding no message of mailbox `id`, as [first, last] ranges in order, in
 * pieces of at most `pieceRanges` (at least one piece, maybe empty; values not decoded): a mailbox
 * of 1M messages with every other one expunged has 1M ranges, ~50 MB as one list.
 */
export async function* emptyUidRangePieces(snapshot: Pick<IndexSnapshot, 'rawEntryBatches'>, id: Buffer, uidNext: number, pieceRanges: number): AsyncGenerator<[number, number][]> {
  const ranges: [number, number][] = [];
  let next = 1; // the lowest uid not yet known to hold a message
  let given = false;
  for await (const batch of snapshot.rawEntryBatches({ gte: keys.messagePrefix(id), lt: prefixEnd(keys.messagePrefix(id)) }, limits.readBatchMessages)) {
    for (const [key] of batch) {
      const uid = messageKeyUid(key);
      if (uid > next) ranges.push([next, uid - 1]);
      next = uid + 1;
    }
    while (ranges.length >= pieceRanges) {
      yield ranges.splice(0, pieceRanges);
      given = true;
    }
  }
  if (next < uidNext) ranges.push([next, uidNext - 1]);
  if (ranges.length > 0 || !given) yield ranges;
}

/**
 * A replay that skipped damaged or missing records lost what they did, expunges and adds alike,
 * so a QRESYNC client that saw one would never be told: every mailbox's vanished floor goes past
 * the last record (docs/FORMAT.md, "The vanished floor"), and changesSince from any modseq given
 * before answers with the uid ranges that hold no message. In the index only, like the rebuild's
 * mark: a rebuild from the same journal sets it again; a checkpoint written from this index
 * (`reconstruct --from-index`) carries it in its mailbox records.
 */
export async function raiseFloorsPastLoss(view: IndexView, lastSeq: number): Promise<void> {
  const floor = modseqAt(view, lastSeq) + 1;
  for await (const [, box] of view.db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
    if ((box.vanishedFloor ?? 0) < floor) view.put(keys.info(Buffer.from(box.id)), { ...box, vanishedFloor: floor });
    if (view.size >= limits.replayBatchKeys) await view.flushBehind();
  }
  await view.flush();
}
