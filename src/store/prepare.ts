// What the prepare step of a Mutation (writer.ts) needs in both the Store's changes and the
// maintenance hooks: a mailbox looked up inside the batch, and the bound on one journal record.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MailstoreError } from '../errors.js';
import { UID_MAX } from '../formats/uidset.js';
import { encodeCbor } from '../index/codec.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { MailboxInfo, MessageRecord, Op } from './records.js';
import { uuidString } from './types.js';
import type { PrepareContext } from './writer.js';

/** Resolves a name inside a batch (sees the batch's own pending changes). */
export async function resolveInBatch(view: Pick<PrepareContext['view'], 'get'>, components: readonly string[], name: string): Promise<MailboxInfo> {
  const id = await view.get<Buffer>(keys.name(components));
  const box = existing(id ? await view.get<MailboxInfo>(keys.info(Buffer.from(id))) : undefined, name);
  return { ...box, id: Buffer.from(box.id) };
}

/**
 * resolveInBatch for a prepare that only reads the mailbox (a delivery): read synchronously and
 * not copied (the value may be the view's or the index's own: the caller must not change it).
 */
export function mailboxInBatchNow(view: Pick<PrepareContext['view'], 'getNow'>, components: readonly string[], name: string): Readonly<MailboxInfo> {
  const id = view.getNow<Buffer>(keys.name(components));
  return existing(id ? view.getNow<MailboxInfo>(keys.info(id)) : undefined, name);
}

function existing(box: MailboxInfo | undefined, name: string): MailboxInfo {
  if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
  return box;
}

/**
 * A change to many uids (STORE 1:* +FLAGS, EXPUNGE of a big mailbox) commits in parts of at most
 * limits.uidChangePartMessages, one after the other, each its own record and modseq: as one record,
 * 100k uids held the event loop (prepare and apply run on it) for seconds, and with it every
 * delivery and read the daemon serves. Each part is a correct IMAP state (each message's change is
 * whole), and a crash between parts leaves one that the same call run again completes. Parts after
 * the first take the mailbox the first one found: one deleted or renamed meanwhile, and another
 * made under its name, is never changed in its place (NOT_FOUND, the parts before stay done).
 * As one record would, it takes only what the first part found: `resolve` drops uids at or above
 * that uidNext from its part (mail delivered between parts is not expunged), read after it.
 * Once `stopping` says so (the store closing), it ends at the next part boundary (partsStopped).
 */
export async function inUidParts<T>(uids: number[], components: string[], name: string,
  change: (part: number[], resolve: (view: PrepareContext['view']) => Promise<MailboxInfo>) => Promise<T>, pin?: Buffer, stopping?: () => boolean): Promise<T[]> {
  let uidsDoneBefore = uids[0];
  const resolveBox = pinnedMailbox(components, name, () => `its messages were being changed; the uids before ${uidsDoneBefore} are done`, pin);
  let uidEnd: number | undefined;
  const results: T[] = [];
  for (let at = 0; at < uids.length || at === 0; at += limits.uidChangePartMessages) {
    // a part's small journal write may be flushed in this thread, so the parts could follow one
    // another without the event loop turning: the sockets, and a delivery on one, go first
    if (at > 0) await nextTurn();
    if (at > 0 && stopping?.()) throw partsStopped(name, `its uids before ${uids[at]} (${at} of ${uids.length}) are done, each part committed; from uid ${uids[at]} on nothing was changed`);
    uidsDoneBefore = uids[at];
    const part = uids.slice(at, at + limits.uidChangePartMessages);
    results.push(await change(part, async (view) => {
      const box = await resolveBox(view);
      uidEnd ??= box.uidNext;
      part.length = belowUid(part, uidEnd);
      return box;
    }));
  }
  return results;
}

/** A call in parts stopped at a part boundary as the store closes (Store.stopCallsInParts); `progress`: what was committed, what not. */
export function partsStopped(name: string, progress: string): MailstoreError {
  return new MailstoreError('UNAVAILABLE', `${name}: the store is closing (the daemon was asked to stop), so this call in parts stopped between two parts: ${progress}. ` +
    'Run it again once the store is back: what is done is found done', { path: name, mayHaveCommitted: true });
}

/** A part's message entries (and with `blobs` their blob entries) in getMany round trips off the event loop, read only (getShared). */
export async function messagesOfPart(view: PrepareContext['view'], id: Buffer, uids: readonly number[], blobs = false): Promise<(MessageRecord | undefined)[]> {
  const messageKeys = uids.map((uid) => keys.message(id, uid));
  await view.prefetch(messageKeys);
  const records = messageKeys.map((key) => view.getShared<MessageRecord>(key));
  if (blobs) await view.prefetch(records.flatMap((record) => record ? [keys.blob(record.h)] : []));
  return records;
}

/** How many of the ascending `uids` are below `end`. */
export function belowUid(uids: readonly number[], end: number): number {
  let count = uids.length;
  while (count > 0 && uids[count - 1] >= end) count--;
  return count;
}

/**
 * Resolves `name` in each part's batch of a call in parts: a mailbox other than the one the first
 * part found (that one deleted or renamed meanwhile, another made under its name) is refused
 * (NOT_FOUND, `during` says what was under way and what is done), never changed in its place.
 */
export function pinnedMailbox(components: readonly string[], name: string, during: () => string, given?: Buffer): (view: PrepareContext['view']) => Promise<MailboxInfo> {
  let pinned = given;
  let resolved = false;
  return async (view) => {
    const box = await resolveInBatch(view, components, name);
    if (pinned && !pinned.equals(box.id)) {
      // pinned by the caller (the mailbox it listed): not yet changed here
      if (!resolved) throw new MailstoreError('NOT_FOUND', `${name} is no longer the mailbox ${uuidString(pinned)}: it was renamed or deleted (and the name made again); nothing was changed`, { path: name });
      throw new MailstoreError('NOT_FOUND', `${name} was deleted or renamed while ${during()}`, { path: name });
    }
    pinned = box.id;
    resolved = true;
    return box;
  };
}

/**
 * Refuses `count` new messages that would pass the last UID a mailbox has (RFC 9051: 32 bits,
 * never reused or wrapped within a UIDVALIDITY): a uid past it has no index key, and the batch
 * carrying it stopped the whole store. OVER_QUOTA, as a full mailbox: an LMTP delivery is kept
 * queued (452), never bounced, while an admin moves the messages into a new mailbox.
 */
export function checkUidsLeft(box: MailboxInfo, count: number, name: string): void {
  if (count === 0 || box.uidNext + count - 1 <= UID_MAX) return;
  throw new MailstoreError('OVER_QUOTA',
    `${name} has ${Math.max(0, UID_MAX + 1 - box.uidNext)} UIDs left, ${count} needed (its last UID is ${UID_MAX}); nothing was stored. ` +
    `Rename it away, create it again (a new UIDVALIDITY) and move its messages in`, { path: name });
}

/**
 * appendBatch's compare-and-set: the meta key still holds `expected` (null or undefined: no
 * value) in this batch's view, which sees every batch committed or prepared before it; else
 * REFUSED, before anything of the batch is written.
 */
export async function checkMetaUnchanged(view: PrepareContext['view'], key: Buffer, meta: { key: string; expected?: unknown }): Promise<void> {
  const current = await view.get<unknown>(key);
  if (sameValue(current ?? null, meta.expected ?? null)) return;
  throw new MailstoreError('REFUSED',
    `${meta.key} changed since it was read: another run of the same import is under way, or ran meanwhile; nothing of this batch was written (run the import again once the other has finished: it resumes)`,
    { path: meta.key });
}

/** Plain values (as the index decodes them) alike: the same scalars, bytes, arrays and keys; an undefined field is no field. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a).equals(Buffer.from(b));
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const fields = (value: object) => Object.entries(value).filter(([, v]) => v !== undefined);
  const [x, y] = [fields(a), fields(b)];
  const other = new Map(y);
  return x.length === y.length && x.every(([k, v]) => other.has(k) && sameValue(v, other.get(k)));
}

/**
 * One call is one journal record, and open reads a record above limits.journalRecordBytesMax as
 * damage: a call that would write one (a copy of 100,000 messages, many long keywords) is refused
 * before anything is written, and the caller splits it.
 */
export function checkRecordSize(ops: Op[], doing: string, inlineBytes = 0): void {
  if (recordBytesBound(ops, inlineBytes) <= limits.journalRecordBytesMax) return;
  // inline bodies (given apart: encoding them only to count them would copy every body) add
  // their length and at most 16 bytes each (the `body` key and a byte string header)
  const bytes = encodeCbor({ ops, end: true }).length + inlineBytes;
  if (bytes > limits.journalRecordBytesMax) {
    throw new MailstoreError('INVALID', `${doing} would make one journal record of ${bytes} bytes (at most ${limits.journalRecordBytesMax}); split it into smaller calls`);
  }
}

/**
 * The most bytes one message.add op (without an inline body) can encode to: every field at its
 * largest (128 flags of 255 bytes, the longest envelope sender). The encoder keeps no records or
 * shared strings (codec.ts), so an op encodes to the same bytes alone as inside a record.
 */
const MESSAGE_ADD_BYTES_MAX = encodeCbor({
  op: 'message.add', id: Buffer.alloc(16), uid: 0xffffffff, hash: Buffer.alloc(32), size: Number.MAX_SAFE_INTEGER,
  date: Number.MAX_SAFE_INTEGER, flags: Array.from({ length: limits.flagsPerMessageMax }, () => 'x'.repeat(limits.flagBytesMax)),
  pack: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, fresh: true, modseq: Number.MAX_SAFE_INTEGER,
  envelopeFrom: 'x'.repeat(limits.envelopeFromBytesMax), dateZone: limits.dateZoneMinutesMin, recent: true,
} satisfies Op).length;

/** `{ ops: [], end: true }` with the longest array header CBOR has (9 bytes for its length, not 1). */
const RECORD_FRAME_BYTES = encodeCbor({ ops: [], end: true }).length + 8;

/**
 * An upper bound of checkRecordSize's encoded size: its message.add ops counted at
 * MESSAGE_ADD_BYTES_MAX each (an import's batch of 500 is far from the limit whatever they hold,
 * and encoding them only to count them was ~5 % of an import's CPU), the other ops encoded; or
 * Infinity for an op outside the bound (an inline body, a field or a length it was not made for).
 */
export function recordBytesBound(ops: Op[], inlineBytes = 0): number {
  let bytes = RECORD_FRAME_BYTES + inlineBytes;
  for (const op of ops) {
    if (op.op !== 'message.add') bytes += encodeCbor(op).length;
    else if (withinMessageAddBound(op)) bytes += MESSAGE_ADD_BYTES_MAX;
    else return Number.POSITIVE_INFINITY;
  }
  return bytes;
}

const MESSAGE_ADD_FIELDS = new Set(['op', 'id', 'uid', 'hash', 'size', 'date', 'flags', 'pack', 'offset', 'fresh', 'modseq', 'envelopeFrom', 'dateZone', 'recent']);

/** Every field of the op is one MESSAGE_ADD_BYTES_MAX was made with, none longer (numbers: 9 bytes at most in CBOR). */
function withinMessageAddBound(op: Op & { op: 'message.add' }): boolean {
  for (const key in op) if (!MESSAGE_ADD_FIELDS.has(key)) return false;
  if (op.id.length > 16 || op.hash.length > 32 || op.flags.length > limits.flagsPerMessageMax) return false;
  for (const flag of op.flags) if (!utf8Within(flag, limits.flagBytesMax)) return false;
  return op.envelopeFrom === undefined || utf8Within(op.envelopeFrom, limits.envelopeFromBytesMax);
}

/** A string's UTF-8 length is at most `bytes` (a UTF-16 unit is at most 3 bytes: only long ones are counted). */
function utf8Within(text: string, bytes: number): boolean {
  return typeof text === 'string' && (text.length * 3 <= bytes || Buffer.byteLength(text) <= bytes);
}
