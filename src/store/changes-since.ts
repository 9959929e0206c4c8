// changesSince (CONDSTORE/QRESYNC) read a piece at a time from one LevelDB snapshot, so that
// neither the store nor the daemon nor a server reading it through the client holds the whole
// answer: changesSince(0) of a 1M-message mailbox was 1M records at once in each (935 MB in the
// daemon, 651 MB in its caller). Loaded when first asked: an append never needs it.
import { MailstoreError } from '../errors.js';
import type { IndexDb } from '../index/index-db.js';
import { decodeChangeKey, keys } from '../keys/index-keys.js';
import { prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import type { ChangeRecord, MailboxInfo, MessageRecord } from './records.js';
import { toInfo, type ChangesSincePart, type MessageInfo } from './types.js';

/**
 * The parts of changesSince(modseq) of the mailbox `id` (named `mailbox`): the head, the vanished
 * uids, the vanished ranges below the floor (at least one part there, maybe empty), the changed
 * messages; uids in limits.changesSincePartUids a part, messages in limits.readBatchMessages.
 * Holds the change log's uids, 4 bytes each (to give them in uid order), and one part.
 */
export async function* changesSinceParts(db: IndexDb, id: Buffer, mailbox: string, modseq: number): AsyncGenerator<ChangesSincePart> {
  // one point in time for the mailbox, its change log and its messages: read one after the
  // other while clients changed them, a message came with a modseq above the highestModseq
  // answered, and a client that took it as its new point missed what changed in between
  const snapshot = await db.snapshot();
  try {
    const box = snapshot.get<MailboxInfo>(keys.info(id));
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${mailbox}`, { path: mailbox });
    const changed = new UidList();
    const vanished = new UidList();
    for await (const batch of snapshot.entryBatches<ChangeRecord>({ gte: keys.changeFrom(id, modseq + 1), lt: prefixEnd(keys.changePrefix(id)) }, limits.readBatchMessages)) {
      for (const [key, value] of batch) (value === 1 ? vanished : changed).push(decodeChangeKey(key).uid);
    }
    const floor = box.vanishedFloor ?? 0;
    yield modseq < floor ? { highestModseq: box.highestModseq, vanishedFloor: floor } : { highestModseq: box.highestModseq };
    for (const uids of vanished.sortedPieces(limits.changesSincePartUids)) yield { vanished: uids };
    if (modseq < floor) {
      // the tombstones below the floor are gone: every uid that holds no message may have
      // vanished, and a client drops those it cached; bounded by the mailbox's live messages
      const { emptyUidRangePieces } = await import('./vanished-floor.js');
      for await (const vanishedRanges of emptyUidRangePieces(snapshot, id, box.uidNext, limits.changesSincePartUids)) yield { vanishedRanges, vanishedFloor: floor };
    }
    // each piece its own round trip: one read of every changed record (QRESYNC from 0 of 200k
    // messages) decoded them all in one turn of the event loop, 2.2 s the daemon answered no
    // delivery and no read
    for (const piece of changed.sortedPieces(limits.readBatchMessages)) {
      const records = await snapshot.getMany<MessageRecord>(piece.map((uid) => keys.message(id, uid)));
      const infos: MessageInfo[] = [];
      records.forEach((record, i) => { if (record) infos.push(toInfo(piece[i], record)); });
      yield { changed: infos };
    }
  } finally {
    await snapshot.close();
  }
}

/** Uids in 4 bytes each (12 for a moment while it doubles), where an array of numbers took 8 and more. */
class UidList {
  private uids = new Uint32Array(1024);
  private length = 0;

  push(uid: number): void {
    if (this.length === this.uids.length) {
      const grown = new Uint32Array(this.uids.length * 2);
      grown.set(this.uids);
      this.uids = grown;
    }
    this.uids[this.length++] = uid;
  }

  /** Ascending, as arrays of at most `size`; the list is sorted in place first. */
  *sortedPieces(size: number): Generator<number[]> {
    const sorted = this.uids.subarray(0, this.length).sort();
    for (let at = 0; at < sorted.length; at += size) yield Array.from(sorted.subarray(at, at + size));
  }
}
