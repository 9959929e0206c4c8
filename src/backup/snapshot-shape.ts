// A snapshot's state as read from a repository someone else may have written (an unencrypted one
// is checked only by its content name): its mailboxes and messages become index keys, mailbox
// names and appends in a restore, so one of another shape is CORRUPT when read, before any of it
// is used. A uid of 'x' or 2^40 stopped a restore with a bug's message (INTERNAL: u32 out of
// range), and two messages of one uid restored as one while the summary counted both.
import { MailstoreError } from '../errors.js';
import { HASH_BYTES } from '../hash/blake3.js';
import { ID_BYTES, isBytes, isCount, isKnownOpKind, isStrings, isU32, isUidNext } from '../store/op-shape.js';
import type { Op } from '../store/records.js';

/** Throws CORRUPT naming the first op of `ops` that is not of the shape mailstore writes. */
export function checkSnapshotState(ops: Op[], path: string): void {
  const bad = (i: number, why: string) => new MailstoreError('CORRUPT', `${path}: not a snapshot mailstore wrote (op ${i}: ${why})`, { path });
  const uids = new Map<string, Set<number>>();
  ops.forEach((op, i) => {
    // one of no kind mailstore writes was passed over by restore: a snapshot of such ops restored as an empty store
    if (typeof op !== 'object' || op === null || !isKnownOpKind(op.op)) throw bad(i, 'not an op');
    if (op.op === 'state.mailbox') {
      const info = op.info as Partial<typeof op.info> | null;
      if (typeof info !== 'object' || info === null || !isBytes(info.id, ID_BYTES)) throw bad(i, 'a mailbox without an id');
      if (!isStrings(info.name) || info.name.length === 0 || !isU32(info.uidValidity) || !isUidNext(info.uidNext)) throw bad(i, 'a mailbox without a name, uidValidity or uidNext');
    } else if (op.op === 'state.messages') {
      if (!isBytes(op.id, ID_BYTES) || !Array.isArray(op.messages)) throw bad(i, 'messages without a mailbox id');
      const box = Buffer.from(op.id).toString('hex');
      const seen = uids.get(box) ?? new Set<number>();
      uids.set(box, seen);
      for (const entry of op.messages as unknown[]) {
        const [uid, hash, size, date, flags, modseq] = Array.isArray(entry) ? entry as unknown[] : [];
        if (!isU32(uid) || uid === 0 || seen.has(uid)) throw bad(i, `a message uid ${JSON.stringify(uid)} that is no uid, or a second time`);
        if (!isBytes(hash, HASH_BYTES) || !isCount(size) || !Number.isFinite(date) || !isStrings(flags) || !isCount(modseq)) throw bad(i, `message ${uid} without a hash, size, date, flags or modseq`);
        seen.add(uid);
      }
    }
  });
}
