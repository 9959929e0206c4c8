// What the journal says and what the index holds. Journal ops are fully resolved (UIDs, blob
// locations, the complete new flag set), so applying them needs no decision and replay is exact.

export type Id = Buffer; // 16-byte mailbox UUID
export type Acl = Record<string, string>;

export interface MailboxInfo {
  id: Id;
  name: string[];
  pastNames: string[][];
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  messages: number;
  unseen: number;
  bytes: number;
  acl: Acl;
  owner?: string;
  created: number;
  /** Set by a delete in progress (the name is already free); open finishes the delete. */
  deleting?: boolean;
  /**
   * The XOR of its messages' mixes (mailbox-digest.ts), kept by apply for `replica check`; absent
   * on a mailbox created before digests existed (the check then scans its messages).
   */
  digest?: [number, number, number, number];
  /**
   * The vanished floor (docs/FORMAT.md, "The vanished floor"): the change log lists every uid
   * expunged after this modseq, not necessarily those before (its tombstones expired, or the
   * mailbox came from elsewhere without its history: XFER, undump, a rebuild past journal
   * damage). changesSince from below it answers with the uid ranges that hold no message. Absent: 0,
   * the whole history is listed.
   */
  vanishedFloor?: number;
}

/** M value. Short keys: there is one per message. */
export interface MessageRecord {
  h: Buffer; // hash
  s: number; // size in bytes
  d: number; // internal date, ms since epoch
  f: string[]; // flags
  m: number; // modseq
  // Optional, absent when unknown (docs/FORMAT.md), always in this order after m so every path
  // that writes a record (add, checkpoint replay) encodes the same bytes.
  e?: string; // envelope sender of the mbox From_ line
  z?: number; // zone of the internal date, minutes east of UTC
  n?: true; // delivered to Maildir new/ (not yet seen by a mail client)
  // The blob-location hint (docs/FORMAT.md, "Blob-location hints"): where the blob was when the
  // record was written (its B entry's p and o then). Read first, trusted only as far as a read
  // verifies (record header, length, hash); stale after compaction or a tier move, then the B
  // entry is looked up as without it. Absent in records written before session 17.
  p?: number; // pack, or INLINE_PACK (then o is the journal seq)
  o?: number; // offset of the record header
}

/** A record's blob-location hint alone, in the record's key order. */
export type MessageHint = Pick<MessageRecord, 'p' | 'o'>;

/** The hint of a record or state entry ({} when it has none, or only half of one). */
export function hintOf(record: MessageHint | undefined): MessageHint {
  return record?.p !== undefined && record.o !== undefined ? { p: record.p, o: record.o } : {};
}

/** A record or state entry without its blob-location hint (the rest in its order). */
export function withoutHint<T extends MessageHint>(record: T): Omit<T, 'p' | 'o'> {
  const { p: _pack, o: _offset, ...rest } = record;
  return rest;
}

/** The optional part of a message record, in its fixed key order. */
export type MessageExtras = Pick<MessageRecord, 'e' | 'z' | 'n'>;

/** A record's extras alone, in the fixed key order (none for undefined). */
export function extrasOf(record: MessageExtras | undefined): MessageExtras {
  return record ? recordExtras(opExtras(record)) : {};
}

/** A record as a state.messages entry (checkpoints, snapshots, backups): the extras and hint only when it has any. */
export function stateEntry(uid: number, r: MessageRecord): Extract<Op, { op: 'state.messages' }>['messages'][number] {
  const x: MessageExtras & MessageHint = { ...extrasOf(r), ...hintOf(r) };
  return Object.keys(x).length > 0 ? [uid, r.h, r.s, r.d, r.f, r.m, x] : [uid, r.h, r.s, r.d, r.f, r.m];
}

/** What a message.add op carries beyond the required fields (each absent when unknown). */
export interface MessageAddExtras { envelopeFrom?: string; dateZone?: number; recent?: true }

/** The record's extras from an op's, in the record's key order; {} when there are none. */
export function recordExtras(source: MessageAddExtras): MessageExtras {
  const x: MessageExtras = {};
  if (source.envelopeFrom !== undefined) x.e = source.envelopeFrom;
  if (source.dateZone !== undefined) x.z = source.dateZone;
  if (source.recent) x.n = true;
  return x;
}

/** The op fields for a record's extras (a copy or move carries them with the message). */
export function opExtras(record: MessageExtras): MessageAddExtras {
  const x: MessageAddExtras = {};
  if (record.e !== undefined) x.envelopeFrom = record.e;
  if (record.z !== undefined) x.dateZone = record.z;
  if (record.n) x.recent = true;
  return x;
}

/** B value. */
export interface BlobRecord {
  p: number; // pack
  o: number; // offset of the record header
  l: number; // body length
  r: number; // references
  /**
   * When r reached 0 (ms, the releasing record's `at`): compaction reclaims the blob once this is
   * older than its grace period. Absent while r > 0, and on a blob released before `at` existed.
   */
  z?: number;
}

/** C value: 0 = changed (added or flags), 1 = expunged. */
export type ChangeRecord = 0 | 1;

/** R value. */
export interface RightsRecord {
  id: Id;
  rights: string;
}

export type Op =
  | { op: 'mailbox.create'; id: Id; name: string[]; uidValidity: number; acl: Acl; owner?: string; created: number; uidNext?: number }
  | { op: 'mailbox.rename'; id: Id; to: string[] }
  | { op: 'mailbox.deleteBegin'; id: Id }
  | { op: 'mailbox.deleteEnd'; id: Id }
  /** A user rename hands the tree to its new name (null: no owner). */
  | { op: 'mailbox.owner'; id: Id; owner: string | null }
  /**
   * A new uidValidity for a mailbox that keeps its messages, uids and uidNext: what a promotion
   * gives every mailbox when the old primary may have shown changes this store never received
   * (docs/REPLICATION.md), so no uid an IMAP client cached from it is taken for another message.
   */
  | { op: 'mailbox.uidValidity'; id: Id; uidValidity: number }
  /**
   * `body`: the message stored inside this record (docs/FORMAT.md, "Inline bodies"); then `pack`
   * is INLINE_PACK and `offset` this record's seq, and the blob's location says the same.
   * `modseq`: kept from another store by XFER (below the record's own modseq); absent: the record's.
   */
  | ({ op: 'message.add'; id: Id; uid: number; hash: Buffer; size: number; date: number; flags: string[]; pack: number; offset: number; fresh?: true; body?: Buffer; modseq?: number } & MessageAddExtras)
  | { op: 'message.flags'; id: Id; set: [uid: number, flags: string[]][] }
  /** `at`: when (ms), set by prepare, so replay gives a released blob the same time (BlobRecord.z). */
  | { op: 'message.expunge'; id: Id; uids: number[]; purge?: boolean; at?: number }
  | { op: 'change.purge'; id: Id; entries: [modseq: number, uid: number][] }
  /**
   * Raises the mailbox's vanished floor to `floor` (never lowers it) and drops the listed
   * tombstones (`C` entries of value 1), each at or below it: what expired, or none (the mailbox
   * came without its history). A reader before session 39 refuses the record (unknown op).
   */
  | { op: 'change.floor'; id: Id; floor: number; entries: [modseq: number, uid: number][] }
  | { op: 'acl.set'; id: Id; identifier: string; rights: string }
  /**
   * Points a blob at another copy. With `from` (compaction), only if it is still at that pack and
   * offset: a blob that moved or was re-written meanwhile keeps its newer location.
   */
  | { op: 'blob.relocate'; hash: Buffer; pack: number; offset: number; size: number; from?: [pack: number, offset: number] }
  /** Compaction: drops the B entry of a blob no message uses, only if still r=0 at that location. */
  | { op: 'blob.forget'; hash: Buffer; pack: number; offset: number }
  /**
   * Compaction: blob.forget for many entries of one pack in one op (docs/FORMAT.md, "Compaction"):
   * `entries` packs FORGET_ENTRY_BYTES per entry (the 32-byte hash, then the offset as a u64 BE);
   * each B entry is dropped only if still r=0 at `pack` and that offset and released at or before
   * `cutoff` (ms). One op and one buffer instead of a CBOR map per entry.
   */
  | { op: 'blob.forgetRun'; pack: number; cutoff: number; entries: Uint8Array }
  /**
   * Compaction: blob.relocate with `from` for many blobs copied from one pack into another:
   * `entries` packs RELOCATE_ENTRY_BYTES per entry (hash, offset in `from`, offset in `to`, size,
   * blob-runs.ts); each B entry moves only if it is still at `from` and that offset.
   */
  | { op: 'blob.relocateRun'; from: number; to: number; entries: Uint8Array }
  /**
   * Compaction: packs whose live records were copied elsewhere (`retire`) are listed in meta
   * `packs/retired` until their files are deleted (`removed`): the intent open finishes.
   */
  | { op: 'pack.retire'; packs: number[] }
  | { op: 'pack.removed'; packs: number[] }
  | { op: 'meta.set'; key: string; value: unknown }
  // A checkpoint (docs/FORMAT.md): the whole index state as records, written by reconstruct when
  // the journal is lost or damaged and the index is intact. Modseqs are explicit, so its replay
  // reproduces the index it was taken from; `state.begin` opens it (`appliedSeq`: the seq of the
  // state), and the checkpoint is one batch (only its last record carries `end`).
  | { op: 'state.begin'; appliedSeq: number }
  | { op: 'state.mailbox'; info: MailboxInfo }
  /**
   * The 7th element (a record's extras and its blob-location hint, short keys) is present only
   * when the record has any.
   */
  | { op: 'state.messages'; id: Id; messages: [uid: number, hash: Buffer, size: number, date: number, flags: string[], modseq: number, extras?: MessageExtras & MessageHint][] }
  | { op: 'state.changes'; id: Id; entries: [modseq: number, uid: number, value: ChangeRecord][] }
  /** The 6th element (BlobRecord.z, when r reached 0) is present only when the record has one. */
  | { op: 'state.blobs'; blobs: [hash: Buffer, pack: number, offset: number, length: number, references: number, released?: number][] }
  | { op: 'state.meta'; entries: [key: string, value: unknown][] };

/** The first op of a checkpoint, if this payload opens one. */
export function checkpointBegin(payload: JournalPayload | undefined): Extract<Op, { op: 'state.begin' }> | undefined {
  const first = payload?.ops?.[0];
  return first?.op === 'state.begin' ? first : undefined;
}

export interface JournalPayload {
  ops: Op[];
  /** The last record of a group-commit batch. */
  end?: true;
}
