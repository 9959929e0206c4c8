// Finishing mailbox deletes whose intent record (mailbox.deleteBegin) is committed: expunge their
// messages, purge their change log, then end them, many mailboxes to a record. One commit and two
// prefix scans a mailbox made a user of 30k empty folders take 30k fsyncs, and each scan stepped
// over every name the intent record freed (LevelDB walks deleted keys until it compacts): minutes.
import { ID_BYTES, decodeChangeKey, decodeMessageKey, keys } from '../keys/index-keys.js';
import { SPACE, decodeString, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import type { AdminIndexReader } from './administration.js';
import type { MessageRecord, Op } from './records.js';
import type { Mutation, PrepareContext } from './writer.js';

export interface DeleteHost {
  /** The current index (after an index swap, the new one). */
  readonly index: AdminIndexReader;
  submit<T>(mutation: Mutation<T>): Promise<T>;
}

/** One key space a deleted mailbox is emptied of, and the op that removes found keys from it. */
interface Emptying {
  space: number;
  prefix(id: Buffer): Buffer;
  op(id: Buffer, found: Buffer[]): Op;
}

const EXPUNGE: Emptying = {
  space: SPACE.message,
  prefix: keys.messagePrefix,
  op: (id, found) => ({ op: 'message.expunge', id, uids: found.map((key) => decodeMessageKey(key).uid), purge: true, at: Date.now() }),
};

const PURGE_CHANGES: Emptying = {
  space: SPACE.change,
  prefix: keys.changePrefix,
  op: (id, found) => ({ op: 'change.purge', id, entries: found.map((key): [number, number] => { const c = decodeChangeKey(key); return [c.modseq, c.uid]; }) }),
};

/**
 * Expunges, purges and ends every mailbox of `ids` (each with its deleteBegin committed). Nothing
 * adds a message or change to a mailbox being deleted (it has no name, and every mutation refuses
 * it), so a mailbox emptied of a space stays empty: every mailbox is emptied of messages, then of
 * changes, then ended. A crash between records leaves its `X deleting/` entry: open calls this again.
 */
export async function finishMailboxDeletes(host: DeleteHost, ids: readonly Buffer[]): Promise<void> {
  const pending = [...new Map(ids.map((id) => [id.toString('hex'), id])).values()].sort(Buffer.compare);
  for (const emptying of [EXPUNGE, PURGE_CHANGES]) {
    for (let at = 0; at < pending.length;) at = await host.submit({ exclusive: true, prepare: (ctx) => emptyingRecord(host.index, pending, at, emptying, ctx.view) });
  }
  for (let at = 0; at < pending.length; at += limits.deleteChunkMailboxes) {
    const chunk = pending.slice(at, at + limits.deleteChunkMailboxes);
    const ops = chunk.map((id): Op => ({ op: 'mailbox.deleteEnd', id }));
    await host.submit({ exclusive: true, prepare: async () => ({ ops: [...ops, ...await importCursorRemovals(host.index, chunk)], result: undefined }) });
  }
}

/** Every import cursor's meta key starts so (Store.setMeta's namespace `user/` before it in the index; src/import/cursor.ts). */
export const CURSOR_KEY_PREFIX = 'import/';
/** Where import resume cursors are in the index. */
const IMPORT_CURSORS = keys.meta(`user/${CURSOR_KEY_PREFIX}`).subarray(0, -1);

/**
 * Ops removing the import resume cursors (src/import/cursor.ts) of the mailboxes `ids`: a cursor
 * names its mailbox, and one of a deleted mailbox is never used again (a mailbox made again under
 * the name starts over). Kept, a migration of many users left a key per folder in the index and in
 * every snapshot for good, through every user deleted since.
 */
async function importCursorRemovals(index: AdminIndexReader, ids: readonly Buffer[]): Promise<Op[]> {
  const gone = new Set(ids.map((id) => id.toString('hex')));
  const ops: Op[] = [];
  for await (const [key, cursor] of index.entries<{ mailboxId?: unknown }>({ prefix: IMPORT_CURSORS })) {
    const id = typeof cursor?.mailboxId === 'string' ? cursor.mailboxId.replace(/-/g, '').toLowerCase() : undefined;
    if (id !== undefined && gone.has(id)) ops.push({ op: 'meta.set', key: decodeString(key, 1).value, value: null } as Op);
  }
  return ops;
}

/**
 * One record's ops emptying `pending` (sorted) from `at` on: at most deleteChunkMessages keys and
 * deleteChunkMailboxes mailboxes looked at; the result is where the next record starts. Each look
 * asks for the first key of the space at or after a mailbox's prefix, so the mailboxes before the
 * mailbox holding it are passed over without a scan each, and a look past the last key there is
 * (over every key deleted since LevelDB compacted) is the last one.
 */
async function emptyingRecord(index: AdminIndexReader, pending: readonly Buffer[], at: number, emptying: Emptying, view: PrepareContext['view']): Promise<{ ops: Op[]; result: number }> {
  const ops: Op[] = [];
  const spaceEnd = prefixEnd(keys.space(emptying.space));
  let keysLeft = limits.deleteChunkMessages;
  for (let looked = 0; at < pending.length && looked < limits.deleteChunkMailboxes; looked++) {
    const next = await firstKey(index, emptying.prefix(pending[at]), spaceEnd);
    if (!next) return { ops, result: pending.length };
    const holder = next.subarray(1, 1 + ID_BYTES);
    while (at < pending.length && Buffer.compare(pending[at], holder) < 0) at++;
    if (at === pending.length || !pending[at].equals(holder)) continue; // a mailbox not being deleted
    const found: Buffer[] = [];
    for await (const [key] of index.entries({ prefix: emptying.prefix(pending[at]), limit: keysLeft })) found.push(key);
    ops.push(emptying.op(pending[at], found));
    keysLeft -= found.length;
    if (keysLeft === 0) break; // it may hold more: the next record looks at it again
    at++;
  }
  await prefetchExpunged(view, ops);
  return { ops, result: at };
}

/**
 * What the apply of a record's expunges reads (getShared): each mailbox's entry and message's, then
 * each blob's, in two round trips off the event loop a record, where they were synchronous reads
 * (20,000 a record at 190k messages), then two round trips a mailbox (a user of 5,000 mailboxes).
 */
async function prefetchExpunged(view: PrepareContext['view'], ops: readonly Op[]): Promise<void> {
  const messageKeys: Buffer[] = [];
  const infoKeys: Buffer[] = [];
  for (const op of ops) {
    if (op.op !== 'message.expunge') continue;
    infoKeys.push(keys.info(op.id));
    for (const uid of op.uids) messageKeys.push(keys.message(op.id, uid));
  }
  if (infoKeys.length === 0) return;
  await view.prefetch([...infoKeys, ...messageKeys]);
  await view.prefetch(messageKeys.flatMap((key) => {
    const record = view.getShared<MessageRecord>(key);
    return record ? [keys.blob(record.h)] : [];
  }));
}

async function firstKey(index: AdminIndexReader, gte: Buffer, lt: Buffer): Promise<Buffer | undefined> {
  for await (const [key] of index.entries({ gte, lt, limit: 1 })) return key;
  return undefined;
}
