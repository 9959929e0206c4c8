// Applies journal ops to the index. The same code runs for a live commit and for replay and
// rebuild, so the index after a rebuild equals the index before it, byte for byte.
import { MailstoreError } from '../errors.js';
import { INDEX_FORMAT_NAME } from '../index/codec.js';
import { keys } from '../keys/index-keys.js';
import type { IndexView } from '../index/index-db.js';
import { emptyDigest, toggleMessage } from './mailbox-digest.js';
import { clearMovedAt } from './moved.js';
import { forEachForgetEntry, forEachRelocateEntry } from './blob-runs.js';
import { extrasOf, hintOf, recordExtras, type BlobRecord, type ChangeRecord, type MailboxInfo, type MessageRecord, type Op, type RightsRecord } from './records.js';

export const SEEN = '\\Seen';

/** The meta name of the modseq offset. */
export const MODSEQ_OFFSET_NAME = 'modseq/offset';
/** The meta name of the highest uidValidity given. */
export const UID_VALIDITY_LAST_NAME = 'uidValidityLast';

export const meta = {
  appliedSeq: keys.meta('appliedSeq'),
  storeId: keys.meta('storeId'),
  /** The index's value format (codec.ts INDEX_FORMAT); index-only, like storeId and appliedSeq. */
  indexFormat: keys.meta(INDEX_FORMAT_NAME),
  uidValidityLast: keys.meta(UID_VALIDITY_LAST_NAME),
  deleting: (id: Buffer) => keys.meta(`deleting/${id.toString('hex')}`),
  deletingPrefix: keys.meta('deleting/').subarray(0, -1),
  /** Packs retired by compaction whose files may still exist (docs/FORMAT.md, "Compaction"). */
  retiredPacks: keys.meta('packs/retired'),
  /** The highest pack number ever retired: new packs are numbered above it (a number is never reused). */
  highestRetiredPack: keys.meta('packs/highestRetired'),
  named: (name: string) => keys.meta(name),
  /** Set by the first inline body (docs/FORMAT.md, "Inline bodies"): retirement looks for them only then. */
  inlineUsed: keys.meta('inline/used'),
  /** Added to a record's seq to give its modseq (absent: 0); XFER's target raises it (modseqAt). */
  modseqOffset: keys.meta(MODSEQ_OFFSET_NAME),
  /**
   * Set by a rebuild from a damaged or incomplete journal (what was wrong with it): such an index
   * knows nothing that journal lacks, however many opens later. No recovery may take it for the
   * better source and write the journal anew from it, and no snapshot of it may cover the missing
   * records (either would make the loss look clean). Index-only; a rebuild from a whole journal,
   * such as the checkpoint `reconstruct --from-index` writes, has none.
   */
  journalIncomplete: keys.meta('index/journal-incomplete'),
  /**
   * The store's clock reference (clock.ts): the latest time it has seen and how this boot's start
   * read on the wall clock. Index-only: a rebuilt index starts again from the store's creation.
   */
  clock: keys.meta('index/clock'),
};

/** The ways out for an index that carries meta.journalIncomplete (RECOVERY.md). */
export const JOURNAL_INCOMPLETE_ADVICE = `put the missing journal segments back and run 'mailstore reconstruct', ` +
  `or recover what the packs hold ('mailstore reconstruct --from-packs') and accept the rest as lost ('mailstore reconstruct --from-index')`;

/** Meta entries an index sets for itself: never in a snapshot or checkpoint, never compared. */
export const indexOwnMeta = [meta.appliedSeq, meta.storeId, meta.indexFormat, meta.journalIncomplete, meta.clock];

/** A problem found while applying (only possible in a degraded replay after journal damage). */
export type ApplyProblem = (message: string) => void;

/**
 * Synchronous: every read is a point read (the view's pending sets, then LevelDB's getSync), so
 * nothing waits; a live commit, replay and rebuild all call this, and a rebuild is spared the
 * promises and async frames of several awaits a message.
 */
export function applyOpsNow(view: IndexView, seq: number, ops: Op[], problem: ApplyProblem): void {
  // every apply function below takes the record's modseq: its seq, plus the offset an XFER raised
  const modseq = modseqAt(view, seq);
  try {
    for (const op of ops) applyOp(view, modseq, op, problem);
  } finally {
    ownedInfo = undefined; // a later view (stacked, replay's next record) may share it
  }
}

/**
 * The info a message.add of this applyOpsNow call copied and put, seen by no one else (getNow's
 * values are shared): the next add to that mailbox in the call changes it in place (an import's
 * record: 250 adds, 249 copies saved). Other changes put a new object, which getNow returns then.
 */
let ownedInfo: MailboxInfo | undefined;

/** Each index's modseq offset, read once: it changes only through the ops applied here, which update it. */
const modseqOffsets = new WeakMap<object, number>();

/**
 * The modseq of the record at `seq`: seq + the store's modseq offset (0 until an XFER brought in
 * modseqs above this store's seqs: the target raises the offset past them before they land, so
 * no later change gets a modseq below one a client already saw; xfer-target.ts).
 */
export function modseqAt(view: IndexView, seq: number): number {
  let offset = modseqOffsets.get(view.db);
  if (offset === undefined) {
    offset = view.getNow<number>(meta.modseqOffset) ?? 0;
    modseqOffsets.set(view.db, offset);
  }
  return seq + offset;
}

/** After a failed batch that may have set the offset: the next apply reads it from the index again. */
export function forgetModseqOffset(db: object): void {
  modseqOffsets.delete(db);
}

function noteMetaPut(view: IndexView, name: string, value: unknown): void {
  if (name === MODSEQ_OFFSET_NAME) modseqOffsets.set(view.db, typeof value === 'number' ? value : 0);
}

/** getShared: read only, and prefetched by a prepare changing many mailboxes (a user's 5,000). */
function info(view: IndexView, id: Buffer, seq: number, problem: ApplyProblem): MailboxInfo | undefined {
  const found = view.getShared<MailboxInfo>(keys.info(id));
  if (!found) problem(`record ${seq} refers to mailbox ${id.toString('hex')}, which does not exist`);
  return found;
}

function putRights(view: Pick<IndexView, 'put'>, box: MailboxInfo): void {
  for (const [identifier, rights] of Object.entries(box.acl)) {
    view.put(keys.rights(identifier, box.name), { id: box.id, rights } satisfies RightsRecord);
  }
}

function delRights(view: IndexView, box: MailboxInfo): void {
  for (const identifier of Object.keys(box.acl)) view.del(keys.rights(identifier, box.name));
}

/** One op kind's record, as its apply function receives it. */
type OpOf<K extends Op['op']> = Extract<Op, { op: K }>;

/**
 * A switch, not a lookup table: it narrows `op` for each call without a cast, and replay runs it
 * millions of times without allocating anything for the dispatch.
 */
function applyOp(view: IndexView, seq: number, op: Op, problem: ApplyProblem): void {
  switch (op.op) {
    case 'mailbox.create': return createMailbox(view, seq, op);
    case 'mailbox.rename': return renameMailbox(view, seq, op, problem);
    case 'mailbox.deleteBegin': return beginMailboxDelete(view, seq, op, problem);
    case 'mailbox.deleteEnd': return endMailboxDelete(view, op);
    case 'mailbox.owner': return setMailboxOwner(view, seq, op, problem);
    case 'mailbox.uidValidity': return setUidValidity(view, seq, op, problem);
    case 'message.add': return addMessage(view, seq, op, problem);
    case 'message.flags': return setMessageFlags(view, seq, op, problem);
    case 'message.expunge': return expungeMessages(view, seq, op, problem);
    case 'change.purge': return purgeChanges(view, op);
    case 'change.floor': return raiseVanishedFloor(view, seq, op, problem);
    case 'acl.set': return setAcl(view, seq, op, problem);
    case 'blob.relocate': return relocateBlob(view, seq, op, problem);
    case 'blob.forget': return forgetBlob(view, op);
    case 'blob.forgetRun': return forgetBlobRun(view, op);
    case 'blob.relocateRun': return relocateBlobRun(view, op);
    case 'pack.retire': return changeRetired(view, op.packs, []);
    case 'pack.removed': return changeRetired(view, [], op.packs);
    case 'meta.set': return setMeta(view, op);
    default: return applyStateOp(view, op);
  }
}

/** The largest uidValidity: a 32-bit unsigned number in IMAP (RFC 3501, nz-number). */
export const UID_VALIDITY_MAX = 0xffffffff;

/**
 * A new mailbox's uidValidity after `last`, the store's highest so far: above every earlier one,
 * so a client's cache of a deleted mailbox of the same name is dropped; but 32 bits (RFC 3501):
 * past the top (a list undumped with 2^32 - 1), the clock again, as a new store starts, so never
 * a value IMAP cannot carry; apply then counts on from that one (the next is above it, not the
 * clock's same second again). A clock past 32 bits of seconds (a wrong year at boot, after 2106)
 * is not used: it gave values IMAP cannot carry, and once recorded as the last, every later
 * mailbox's came from the clock too.
 */
export function uidValidityAfter(last: number): number {
  const clock = Math.floor(Date.now() / 1000);
  const now = clock >= 1 && clock <= UID_VALIDITY_MAX ? clock : 1;
  return last + 1 > UID_VALIDITY_MAX ? now : Math.max(now, last + 1);
}

/** uidValidityLast after a mailbox.create of `uidValidity` (what createMailbox below records). */
export function uidValidityLastAfter(last: number, uidValidity: number): number {
  // at the top, the next one given starts the count again (createMailbox takes it from the clock):
  // kept at the top, every later mailbox took the clock's value, the same for all in one second,
  // so a mailbox deleted and created again in that second kept its uidValidity (clients' caches)
  return last >= UID_VALIDITY_MAX ? uidValidity : Math.max(last, uidValidity);
}

function createMailbox(view: IndexView, seq: number, op: OpOf<'mailbox.create'>): void {
  const box: MailboxInfo = {
    // uidNext: an undumped list's, so uids clients saw under its uidValidity are never given again
    id: op.id, name: op.name, pastNames: [], uidValidity: op.uidValidity, uidNext: op.uidNext ?? 1, highestModseq: seq,
    messages: 0, unseen: 0, bytes: 0, acl: op.acl, owner: op.owner, created: op.created, digest: emptyDigest(),
  };
  if (op.owner === undefined) delete box.owner;
  view.put(keys.name(op.name), op.id);
  view.put(keys.info(op.id), box);
  putRights(view, box);
  view.put(meta.uidValidityLast, uidValidityLastAfter(view.getNow<number>(meta.uidValidityLast) ?? 0, op.uidValidity));
  clearMovedAt(view, op.name);
}

function renameMailbox(view: IndexView, seq: number, op: OpOf<'mailbox.rename'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  view.del(keys.name(box.name));
  delRights(view, box);
  const renamed = { ...box, name: op.to, pastNames: [...box.pastNames, box.name] };
  view.put(keys.name(op.to), op.id);
  view.put(keys.info(op.id), renamed);
  putRights(view, renamed);
  clearMovedAt(view, op.to);
}

function beginMailboxDelete(view: IndexView, seq: number, op: OpOf<'mailbox.deleteBegin'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  view.del(keys.name(box.name));
  delRights(view, box);
  view.put(keys.info(op.id), { ...box, deleting: true, highestModseq: seq });
  view.put(meta.deleting(op.id), 1);
}

function endMailboxDelete(view: IndexView, op: OpOf<'mailbox.deleteEnd'>): void {
  view.del(keys.info(op.id));
  view.del(meta.deleting(op.id));
}

function setMailboxOwner(view: IndexView, seq: number, op: OpOf<'mailbox.owner'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  const changed: MailboxInfo = { ...box, owner: op.owner ?? undefined };
  if (op.owner === null) delete changed.owner;
  view.put(keys.info(op.id), changed);
}

/** The uids stay (uidNext too): under the new uidValidity a client reads them all again. */
function setUidValidity(view: IndexView, modseq: number, op: OpOf<'mailbox.uidValidity'>, problem: ApplyProblem): void {
  const box = info(view, op.id, modseq, problem);
  if (!box) return;
  view.put(keys.info(op.id), { ...box, uidValidity: op.uidValidity, highestModseq: modseq } satisfies MailboxInfo);
  view.put(meta.uidValidityLast, uidValidityLastAfter(view.getNow<number>(meta.uidValidityLast) ?? 0, op.uidValidity));
}

function addMessage(view: IndexView, seq: number, op: OpOf<'message.add'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  const blobKey = keys.blob(op.hash);
  // getShared: read only, and appendBatch's prepare read (or prefetched) the same entry in this batch
  const blob = view.getShared<BlobRecord>(blobKey);
  // a fresh copy of a known blob (its old one unused, not trusted: store.ts placeBlob) moves it there
  const placed: BlobRecord = blob && !op.fresh ? referenced(blob) : { p: op.pack, o: op.offset, l: op.size, r: (blob?.r ?? 0) + 1 };
  view.put(blobKey, placed);
  if (op.body && !view.getNow<number>(meta.inlineUsed)) view.put(meta.inlineUsed, 1);
  // XFER keeps the source's modseq (below this record's: the target raised its offset first)
  const modseq = op.modseq ?? seq;
  // the blob-location hint: where the B entry says the blob is now (a replay writes the same)
  const record: MessageRecord = { h: op.hash, s: op.size, d: op.date, f: op.flags, m: modseq, ...recordExtras(op), p: placed.p, o: placed.o };
  view.put(keys.message(op.id, op.uid), record);
  view.put(keys.change(op.id, modseq, op.uid), 0 satisfies ChangeRecord);
  if (box === ownedInfo) {
    if (box.digest) toggleMessage(box.digest, op.uid, record);
    box.uidNext = Math.max(box.uidNext, op.uid + 1);
    box.highestModseq = seq;
    box.messages += 1;
    box.unseen += op.flags.includes(SEEN) ? 0 : 1;
    box.bytes += op.size;
    return;
  }
  const digest = copyDigest(box);
  if (digest) toggleMessage(digest, op.uid, record);
  ownedInfo = withDigest({
    ...box,
    uidNext: Math.max(box.uidNext, op.uid + 1),
    highestModseq: seq,
    messages: box.messages + 1,
    unseen: box.unseen + (op.flags.includes(SEEN) ? 0 : 1),
    bytes: box.bytes + op.size,
  }, digest);
  view.put(keys.info(op.id), ownedInfo);
}

/** The box's digest to change (a copy: the one read may be shared), or undefined when it keeps none. */
function copyDigest(box: MailboxInfo): MailboxInfo['digest'] {
  return box.digest ? [box.digest[0], box.digest[1], box.digest[2], box.digest[3]] : undefined;
}

function withDigest(box: MailboxInfo, digest: MailboxInfo['digest']): MailboxInfo {
  if (digest) box.digest = digest;
  return box;
}

function setMessageFlags(view: IndexView, seq: number, op: OpOf<'message.flags'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  let unseen = box.unseen;
  const digest = copyDigest(box);
  for (const [uid, flags] of op.set) {
    const key = keys.message(op.id, uid);
    const message = view.getShared<MessageRecord>(key); // read only (messagesOfPart)
    if (!message) { problem(`record ${seq} sets flags on missing message ${uid}`); continue; }
    unseen += (message.f.includes(SEEN) ? 0 : -1) + (flags.includes(SEEN) ? 0 : 1);
    view.del(keys.change(op.id, message.m, uid));
    view.put(keys.change(op.id, seq, uid), 0 satisfies ChangeRecord);
    const changed = { ...message, f: flags, m: seq };
    view.put(key, changed);
    if (digest) { toggleMessage(digest, uid, message); toggleMessage(digest, uid, changed); }
  }
  view.put(keys.info(op.id), withDigest({ ...box, unseen, highestModseq: seq }, digest));
}

function expungeMessages(view: IndexView, seq: number, op: OpOf<'message.expunge'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  let { messages, unseen, bytes } = box;
  const digest = copyDigest(box);
  for (const uid of op.uids) {
    const key = keys.message(op.id, uid);
    const message = view.getShared<MessageRecord>(key); // read only (messagesOfPart)
    if (!message) { problem(`record ${seq} expunges missing message ${uid}`); continue; }
    if (digest) toggleMessage(digest, uid, message);
    messages--;
    bytes -= message.s;
    if (!message.f.includes(SEEN)) unseen--;
    view.del(key);
    view.del(keys.change(op.id, message.m, uid));
    if (!op.purge) view.put(keys.change(op.id, seq, uid), 1 satisfies ChangeRecord);
    releaseBlob(view, seq, uid, message.h, op.at, problem);
  }
  view.put(keys.info(op.id), withDigest({ ...box, messages, unseen, bytes, highestModseq: seq }, digest));
}

/** One more reference; a blob used again is no longer waiting for reclaim (no `z`). */
function referenced(blob: BlobRecord): BlobRecord {
  const { z: _released, ...rest } = blob;
  return { ...rest, r: blob.r + 1 };
}

/**
 * Drops one reference to an expunged message's blob; the count never goes below zero. The last
 * one records when (`at` of the record, so replay gives the same time): the grace period counts from it.
 */
function releaseBlob(view: IndexView, seq: number, uid: number, hash: Buffer, at: number | undefined, problem: ApplyProblem): void {
  const blobKey = keys.blob(hash);
  const blob = view.getShared<BlobRecord>(blobKey); // read only (messagesOfPart)
  if (!blob) { problem(`record ${seq}: message ${uid} refers to unknown blob ${hash.toString('hex')}`); return; }
  const r = Math.max(0, blob.r - 1);
  view.put(blobKey, r === 0 && at !== undefined ? { ...blob, r, z: at } : { ...blob, r });
}

function purgeChanges(view: IndexView, op: OpOf<'change.purge'>): void {
  for (const [modseq, uid] of op.entries) view.del(keys.change(op.id, modseq, uid));
}

/** Drops only tombstones at or below the floor (changesSince must say what it misses); highestModseq stays: no message changed. */
function raiseVanishedFloor(view: IndexView, seq: number, op: OpOf<'change.floor'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  const floor = Math.max(box.vanishedFloor ?? 0, op.floor);
  for (const [modseq, uid] of op.entries) {
    const key = keys.change(op.id, modseq, uid);
    if (modseq <= floor && view.getNow<ChangeRecord>(key) === 1) view.del(key);
  }
  if (floor !== (box.vanishedFloor ?? 0)) view.put(keys.info(op.id), { ...box, vanishedFloor: floor });
}

function setAcl(view: IndexView, seq: number, op: OpOf<'acl.set'>, problem: ApplyProblem): void {
  const box = info(view, op.id, seq, problem);
  if (!box) return;
  const acl = { ...box.acl };
  if (op.rights === '') delete acl[op.identifier];
  else acl[op.identifier] = op.rights;
  if (op.rights === '') view.del(keys.rights(op.identifier, box.name));
  else view.put(keys.rights(op.identifier, box.name), { id: box.id, rights: op.rights } satisfies RightsRecord);
  view.put(keys.info(op.id), { ...box, acl });
}

function relocateBlob(view: IndexView, seq: number, op: OpOf<'blob.relocate'>, problem: ApplyProblem): void {
  const blobKey = keys.blob(op.hash);
  const blob = view.getNow<BlobRecord>(blobKey);
  if (!blob) {
    // a compaction's relocation of a blob forgotten or never known meanwhile: nothing to move
    if (!op.from) problem(`record ${seq} relocates unknown blob ${op.hash.toString('hex')}`);
    return;
  }
  if (op.from && (blob.p !== op.from[0] || blob.o !== op.from[1])) return; // moved meanwhile: keep the newer copy
  view.put(blobKey, { ...blob, p: op.pack, o: op.offset });
}

function forgetBlob(view: IndexView, op: OpOf<'blob.forget'>): void {
  const blobKey = keys.blob(op.hash);
  const blob = view.getNow<BlobRecord>(blobKey);
  if (blob && blob.r === 0 && blob.p === op.pack && blob.o === op.offset) view.del(blobKey);
}

/**
 * blob.forget for each entry, and only past the grace period the compaction used (`cutoff`); read
 * with getShared, since the compaction's prepare read the same entries in this batch.
 */
function forgetBlobRun(view: IndexView, op: OpOf<'blob.forgetRun'>): void {
  forEachForgetEntry(op.entries, (hash, offset) => {
    view.delIfShared<BlobRecord>(keys.blob(hash), (blob) => blob !== undefined && blob.r === 0 && blob.p === op.pack && blob.o === offset && (blob.z === undefined || blob.z <= op.cutoff));
  });
}

/**
 * blob.relocate with `from` for each entry: a blob that moved, was re-written or forgotten meanwhile
 * stays as it is. Read with getShared: the compaction's prepare fetched these entries in one read
 * (IndexView.prefetch).
 */
function relocateBlobRun(view: IndexView, op: OpOf<'blob.relocateRun'>): void {
  forEachRelocateEntry(op.entries, ({ hash, from, to }) => {
    const blobKey = keys.blob(hash);
    const blob = view.getShared<BlobRecord>(blobKey);
    if (blob && blob.p === op.from && blob.o === from) view.put(blobKey, { ...blob, p: op.to, o: to });
  });
}

/** meta packs/retired: sorted pack numbers, absent when empty. */
function changeRetired(view: IndexView, add: number[], remove: number[]): void {
  const list = new Set(view.getNow<number[]>(meta.retiredPacks) ?? []);
  for (const p of add) list.add(p);
  for (const p of remove) list.delete(p);
  if (list.size === 0) view.del(meta.retiredPacks);
  else view.put(meta.retiredPacks, [...list].sort((a, b) => a - b));
  if (add.length > 0) view.put(meta.highestRetiredPack, Math.max(view.getNow<number>(meta.highestRetiredPack) ?? 0, ...add));
}

function setMeta(view: IndexView, op: OpOf<'meta.set'>): void {
  if (op.value === null || op.value === undefined) view.del(keys.meta(op.key));
  else view.put(keys.meta(op.key), op.value);
  noteMetaPut(view, op.key, op.value);
}

/**
 * Checkpoint ops put index state as it was, modseqs included (the record's own seq is not used):
 * the primary values verbatim, the name index and the reverse ACL map derived as a create does.
 * Putting them twice changes nothing, so an index already at the checkpoint's state replays it
 * without harm. Puts only, never a read: a rebuild loading a snapshot hands them straight to
 * LevelDB batches (IndexDb.bulkLoad) instead of a view's pending set.
 */
export function applyStateOp(view: Pick<IndexView, 'put'>, op: Op): void {
  switch (op.op) {
    case 'state.begin':
      return;
    case 'state.mailbox': {
      const box = { ...op.info, id: Buffer.from(op.info.id) };
      view.put(keys.info(box.id), op.info);
      if (!box.deleting) {
        view.put(keys.name(box.name), box.id);
        putRights(view, box);
      }
      return;
    }
    case 'state.messages':
      for (const [uid, h, s, d, f, m, x] of op.messages) view.put(keys.message(op.id, uid), { h, s, d, f, m, ...extrasOf(x), ...hintOf(x) } satisfies MessageRecord);
      return;
    case 'state.changes':
      for (const [modseq, uid, value] of op.entries) view.put(keys.change(op.id, modseq, uid), value);
      return;
    case 'state.blobs':
      for (const [hash, p, o, l, r, z] of op.blobs) view.put(keys.blob(hash), z === undefined ? { p, o, l, r } : { p, o, l, r, z } satisfies BlobRecord);
      return;
    case 'state.meta':
      for (const [key, value] of op.entries) {
        view.put(keys.meta(key), value);
        // a bulk load (rebuild from a snapshot) has no db here: it forgets the cached offset itself
        if ('db' in view) noteMetaPut(view as IndexView, key, value);
      }
      return;
    default:
      // a record written by a newer mailstore (a downgrade): skipping it would lose its effect silently
      throw new MailstoreError('INVALID', `the journal holds an op this mailstore does not know (${JSON.stringify((op as { op: unknown }).op)}): it was written by a newer version; run that version (downgrading a store is not supported)`);
  }
}
