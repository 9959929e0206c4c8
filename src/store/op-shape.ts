// Journal ops that come from elsewhere (a primary's replicated records) are checked for the shape
// this mailstore writes before any of them is written: apply trusts its own journal, so a field of
// the wrong type (a uid of 'x', flags that are no list) stopped the replica HALTED with the record
// already durable, and every later open stopped at it again.
import { INLINE_PACK } from '../blob/pack-store.js';
import { MailstoreError } from '../errors.js';
import { HASH_BYTES } from '../hash/blake3.js';
import { cborBoundsProblem } from '../index/cbor-bounds.js';
import { decodeCbor } from '../index/codec.js';
import { limits } from '../limits.js';
import { FORGET_ENTRY_BYTES, RELOCATE_ENTRY_BYTES } from './blob-runs.js';
import type { JournalPayload } from './records.js';

const U32_MAX = 0xffff_ffff;
export const ID_BYTES = 16;

export const isU32 = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= U32_MAX;
/** uidNext: one past the last uid given out, so 2^32 once uid 2^32 - 1 was (a full mailbox). */
export const isUidNext = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= U32_MAX + 1;
export const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
export const isBytes = (b: unknown, length: number): b is Uint8Array => b instanceof Uint8Array && b.length === length;
export const isStrings = (list: unknown): list is string[] => Array.isArray(list) && list.every((s) => typeof s === 'string');
const isUid = (n: unknown): n is number => isU32(n) && n > 0;
/** A time (ms) as apply takes it, any number: an older version took dates it did not check (NaN), and apply only stores them. */
const isTime = (n: unknown): n is number => typeof n === 'number';
const isPack = (n: unknown): boolean => n === INLINE_PACK || isCount(n);
const isName = (name: unknown): boolean => isStrings(name) && name.length > 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isAcl = (acl: unknown): boolean => isObject(acl) && Object.values(acl).every((rights) => typeof rights === 'string');
const isFlag = (v: unknown): boolean => v === undefined || typeof v === 'boolean';
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);
const listOf = (list: unknown, check: (entry: unknown[]) => boolean): boolean => Array.isArray(list) && list.every((entry) => Array.isArray(entry) && check(entry));
const runOf = (entries: unknown, entryBytes: number): boolean => entries instanceof Uint8Array && entries.length % entryBytes === 0;

const isMailboxInfo = (info: unknown): boolean => isObject(info) && isBytes(info.id, ID_BYTES) && isName(info.name)
  && Array.isArray(info.pastNames) && info.pastNames.every(isStrings) && isU32(info.uidValidity) && isUidNext(info.uidNext)
  && isCount(info.highestModseq) && isCount(info.messages) && isCount(info.unseen) && isCount(info.bytes) && isAcl(info.acl)
  && optional(info.owner, (o) => typeof o === 'string') && isTime(info.created) && isFlag(info.deleting)
  && optional(info.digest, (d) => Array.isArray(d) && d.length === 4 && d.every(Number.isInteger)) // read as u32s (>>> 0)
  && optional(info.vanishedFloor, isCount);

/** What each op kind must hold (records.ts, Op), beside its `op`. */
const SHAPES: Record<string, (op: Record<string, unknown>) => boolean> = {
  'mailbox.create': (op) => isBytes(op.id, ID_BYTES) && isName(op.name) && isU32(op.uidValidity) && isAcl(op.acl)
    && optional(op.owner, (o) => typeof o === 'string') && isTime(op.created) && optional(op.uidNext, isUidNext),
  'mailbox.rename': (op) => isBytes(op.id, ID_BYTES) && isName(op.to),
  'mailbox.deleteBegin': (op) => isBytes(op.id, ID_BYTES),
  'mailbox.deleteEnd': (op) => isBytes(op.id, ID_BYTES),
  'mailbox.owner': (op) => isBytes(op.id, ID_BYTES) && (op.owner === null || typeof op.owner === 'string'),
  'mailbox.uidValidity': (op) => isBytes(op.id, ID_BYTES) && isU32(op.uidValidity) && op.uidValidity !== 0,
  'message.add': (op) => isBytes(op.id, ID_BYTES) && isUid(op.uid) && isBytes(op.hash, HASH_BYTES) && isCount(op.size) && isTime(op.date)
    && isStrings(op.flags) && isPack(op.pack) && isCount(op.offset) && isFlag(op.fresh) && optional(op.body, (b) => b instanceof Uint8Array)
    && optional(op.modseq, isCount) && optional(op.envelopeFrom, (e) => typeof e === 'string') && optional(op.dateZone, Number.isInteger) && isFlag(op.recent),
  'message.flags': (op) => isBytes(op.id, ID_BYTES) && listOf(op.set, ([uid, flags]) => isUid(uid) && isStrings(flags)),
  'message.expunge': (op) => isBytes(op.id, ID_BYTES) && Array.isArray(op.uids) && op.uids.every(isUid) && isFlag(op.purge) && optional(op.at, isTime),
  'change.purge': (op) => isBytes(op.id, ID_BYTES) && listOf(op.entries, ([modseq, uid]) => isCount(modseq) && isUid(uid)),
  'change.floor': (op) => isBytes(op.id, ID_BYTES) && isCount(op.floor) && listOf(op.entries, ([modseq, uid]) => isCount(modseq) && isUid(uid)),
  'acl.set': (op) => isBytes(op.id, ID_BYTES) && typeof op.identifier === 'string' && typeof op.rights === 'string',
  // size: absent in the first version's records, which a journal may still hold
  'blob.relocate': (op) => isBytes(op.hash, HASH_BYTES) && isPack(op.pack) && isCount(op.offset) && optional(op.size, isCount)
    && optional(op.from, (from) => Array.isArray(from) && from.length === 2 && isPack(from[0]) && isCount(from[1])),
  'blob.forget': (op) => isBytes(op.hash, HASH_BYTES) && isPack(op.pack) && isCount(op.offset),
  'blob.forgetRun': (op) => isPack(op.pack) && isTime(op.cutoff) && runOf(op.entries, FORGET_ENTRY_BYTES),
  'blob.relocateRun': (op) => isPack(op.from) && isPack(op.to) && runOf(op.entries, RELOCATE_ENTRY_BYTES),
  'pack.retire': (op) => Array.isArray(op.packs) && op.packs.every(isCount),
  'pack.removed': (op) => Array.isArray(op.packs) && op.packs.every(isCount),
  'meta.set': (op) => typeof op.key === 'string',
  'state.begin': (op) => isCount(op.appliedSeq),
  'state.mailbox': (op) => isMailboxInfo(op.info),
  'state.messages': (op) => isBytes(op.id, ID_BYTES) && listOf(op.messages, ([uid, hash, size, date, flags, modseq, extras]) =>
    isUid(uid) && isBytes(hash, HASH_BYTES) && isCount(size) && isTime(date) && isStrings(flags) && isCount(modseq) && optional(extras, isObject)),
  'state.changes': (op) => isBytes(op.id, ID_BYTES) && listOf(op.entries, ([modseq, uid, value]) => isCount(modseq) && isUid(uid) && (value === 0 || value === 1)),
  'state.blobs': (op) => listOf(op.blobs, ([hash, pack, offset, length, references, released]) =>
    isBytes(hash, HASH_BYTES) && isPack(pack) && isCount(offset) && isCount(length) && isCount(references) && optional(released, isTime)),
  'state.meta': (op) => listOf(op.entries, ([key]) => typeof key === 'string'),
};

/** Whether `kind` is an op kind this mailstore writes (and so knows how to apply). */
export function isKnownOpKind(kind: unknown): boolean {
  return typeof kind === 'string' && Object.hasOwn(SHAPES, kind);
}

/** Why a journal payload (`{ops, end?}`) is not of the shape this mailstore writes, or undefined when it is. */
export function payloadShapeProblem(payload: unknown): string | undefined {
  if (!isObject(payload) || !Array.isArray(payload.ops) || !isFlag(payload.end)) return 'not a journal payload ({ops, end?})';
  for (const [i, op] of payload.ops.entries()) {
    const kind = isObject(op) ? op.op : undefined;
    if (!isKnownOpKind(kind)) return `op ${i} is of a kind this mailstore does not know (${JSON.stringify(kind)}): a newer version's, or not an op`;
    if (!SHAPES[kind as string]!(op as Record<string, unknown>)) return `op ${i} (${kind}) is not of the shape mailstore writes`;
  }
  return undefined;
}

/**
 * A journal record another node sent, decoded: its CBOR walked first (a bignum tag held the event
 * loop for minutes), then its ops checked; INVALID naming the record otherwise.
 */
export function decodeForeignRecord(record: { seq: number; payload: Uint8Array }): JournalPayload {
  const bounds = cborBoundsProblem(record.payload, limits.replicationDecodedBytesPerByteMax);
  if (bounds) throw new MailstoreError('INVALID', `record ${record.seq}: ${bounds}`);
  let payload: unknown;
  try {
    payload = decodeCbor(record.payload);
  } catch (error) {
    throw new MailstoreError('INVALID', `record ${record.seq} does not decode`, { cause: error });
  }
  const shape = payloadShapeProblem(payload);
  if (shape) throw new MailstoreError('INVALID', `record ${record.seq}: ${shape}`);
  return payload as JournalPayload;
}
