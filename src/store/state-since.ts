// What changed in the index since an earlier journal seq, for an incremental backup: the
// journal records after that seq say which mailboxes and uids were touched, and one LevelDB
// snapshot gives their values now (the index's own, never re-derived from the ops), so a backup
// costs what changed instead of a read of the whole state (checkpoint.ts, snapshotState).
import { MailstoreError } from '../errors.js';
import { hashBytes } from '../hash/blake3.js';
import { decodeCbor } from '../index/codec.js';
import type { IndexDb, IndexSnapshot } from '../index/index-db.js';
import type { Journal } from '../journal/journal.js';
import { decodeChangeKey, decodeMessageKey, keys } from '../keys/index-keys.js';
import { SPACE, decodeString, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import { indexOwnMeta, meta } from './apply.js';
import { stateEntry, type ChangeRecord, type JournalPayload, type MailboxInfo, type MessageRecord, type Op } from './records.js';

export type StateMessage = Extract<Op, { op: 'state.messages' }>['messages'][number];
export type StateChange = Extract<Op, { op: 'state.changes' }>['entries'][number];

/** Per mailbox (id hex): what the journal records after the earlier seq touched. */
export interface TouchedMailbox {
  /** Uids added, flagged or expunged. */
  uids: Set<number>;
  /**
   * Of those, the uids whose last op was an expunge: no message is there now, so a backup need
   * not read one (a wrong guess would show in the mailbox's counters, which it checks).
   */
  gone: Set<number>;
  /** Change-log entries a change.purge or change.floor removed, or a message.add wrote with a modseq of its own (XFER). */
  entries: [modseq: number, uid: number][];
}

/** A blob a message.add after the earlier seq wrote new (`fresh`): its message and where it is. */
export interface FreshBlob { id: Uint8Array; uid: number; hash: Buffer; size: number; pack: number; offset: number }

export interface StateSince {
  /** The journal seq of the state read (the index's watermark in the snapshot). */
  appliedSeq: number;
  /**
   * BLAKE3 (hex) of the journal record at `afterSeq` and at `appliedSeq` (undefined at seq 0): an
   * earlier backup of the same store id whose record differs is of another history (the store was
   * rolled back, e.g. to a file-system snapshot, and went on), not an ancestor of this state.
   */
  afterDigest?: string;
  appliedDigest?: string;
  meta: [string, unknown][];
  mailboxes: MailboxInfo[];
  touched: Map<string, TouchedMailbox>;
  /**
   * Message bytes the journal records after `afterSeq` added as new blobs (message.add with
   * `fresh`): at most what a backup has to copy, known before the state is built (it starts its
   * compression workers early when this is large).
   */
  freshBytes: number;
  /**
   * Those new blobs one by one, in journal order (each with the mailbox id and uid of the message
   * that added it, and where the store wrote it), but for messages the journal expunged later: a
   * backup can start copying them before it has built the state (they are in it).
   */
  fresh: FreshBlob[];
  /** Change-log entries of a mailbox with a modseq above `modseq`. */
  changesAfter(id: Buffer, modseq: number): Promise<StateChange[]>;
  /** The messages at `uids` as state.messages entries (undefined: none at that uid), in one read on LevelDB's thread pool, in order. */
  messages(id: Buffer, uids: number[]): Promise<(StateMessage | undefined)[]>;
  /** Change-log entries' values (undefined: no such entry), in one read, in order. */
  changes(id: Buffer, entries: [modseq: number, uid: number][]): Promise<(ChangeRecord | undefined)[]>;
  /** Every message and change-log entry of one mailbox. */
  mailbox(id: Buffer): Promise<{ messages: StateMessage[]; changes: StateChange[] }>;
  close(): Promise<void>;
}

/**
 * The state at the index's current seq as the changes after `afterSeq`. NOT_FOUND when the journal
 * no longer holds every record after it (retired under a store snapshot), INVALID when those records
 * hold a checkpoint (the store's state was rewritten whole): the caller then reads the whole state.
 */
export async function stateSince(db: IndexDb, journal: Pick<Journal, 'read' | 'firstSeq'>, afterSeq: number): Promise<StateSince> {
  const snapshot = await db.snapshot();
  try {
    const appliedSeq = snapshot.get<number>(meta.appliedSeq) ?? 0;
    if (appliedSeq < afterSeq) throw new MailstoreError('INVALID', `the store is at seq ${appliedSeq}, before the earlier snapshot's ${afterSeq}`);
    const { touched, digests, freshBytes, fresh } = await touchedSince(journal, afterSeq, appliedSeq);
    const [metaEntries, mailboxes] = [await readMeta(snapshot), await readAll<MailboxInfo>(snapshot, SPACE.info)];
    return {
      appliedSeq, afterDigest: digests.get(afterSeq), appliedDigest: digests.get(appliedSeq), meta: metaEntries, mailboxes: mailboxes.map(([, info]) => info), touched, freshBytes, fresh,
      changesAfter: async (id, modseq) => (await readRange<ChangeRecord>(snapshot, keys.changeFrom(id, modseq + 1), prefixEnd(keys.changePrefix(id))))
        .map(([key, value]) => { const c = decodeChangeKey(key); return [c.modseq, c.uid, value]; }),
      messages: async (id, uids) => (await snapshot.getMany<MessageRecord>(uids.map((uid) => keys.message(id, uid))))
        .map((record, i) => record && stateEntry(uids[i]!, record)),
      changes: (id, entries) => snapshot.getMany<ChangeRecord>(entries.map(([modseq, uid]) => keys.change(id, modseq, uid))),
      mailbox: async (id) => {
        const messages = await readRange<MessageRecord>(snapshot, keys.messagePrefix(id), prefixEnd(keys.messagePrefix(id)));
        const changes = await readRange<ChangeRecord>(snapshot, keys.changePrefix(id), prefixEnd(keys.changePrefix(id)));
        return {
          messages: messages.map(([key, r]) => stateEntry(decodeMessageKey(key).uid, r)),
          changes: changes.map(([key, value]) => { const c = decodeChangeKey(key); return [c.modseq, c.uid, value]; }),
        };
      },
      close: () => snapshot.close(),
    };
  } catch (error) {
    await snapshot.close();
    throw error;
  }
}

/** The records (afterSeq, upTo]: which mailboxes and uids they touched; the digests of records afterSeq and upTo. */
async function touchedSince(journal: Pick<Journal, 'read' | 'firstSeq'>, afterSeq: number, upTo: number): Promise<{ touched: Map<string, TouchedMailbox>; digests: Map<number, string>; freshBytes: number; fresh: FreshBlob[] }> {
  const touched = new Map<string, TouchedMailbox>();
  const digests = new Map<number, string>();
  const fresh: Fresh = { bytes: 0, blobs: [] };
  if (afterSeq === 0 && upTo === 0) return { touched, digests, freshBytes: 0, fresh: [] };
  const from = Math.max(afterSeq, 1); // record afterSeq itself too: its digest
  if (from < journal.firstSeq) throw new MailstoreError('NOT_FOUND', `the journal records after seq ${afterSeq} were retired (it starts at ${journal.firstSeq})`);
  const of = (id: Buffer) => {
    const key = Buffer.from(id).toString('hex');
    let entry = touched.get(key);
    if (!entry) touched.set(key, (entry = { uids: new Set(), gone: new Set(), entries: [] }));
    return entry;
  };
  let expected = from;
  // skipRead: from the record at `from` where the journal knows its offset, not its segment's start
  for await (const record of journal.read(from - 1, (damage) => {
    throw new MailstoreError('CORRUPT', `journal segment ${damage.segment} is damaged at offset ${damage.offset}`, { path: damage.segment });
  }, { skipRead: true })) {
    if (record.seq > upTo) break;
    if (record.seq !== expected) throw new MailstoreError('NOT_FOUND', `the journal has no record ${expected} (the next is ${record.seq})`);
    expected = record.seq + 1;
    if (record.seq === afterSeq || record.seq === upTo) digests.set(record.seq, hashBytes(record.payload).toString('hex'));
    if (record.seq > afterSeq) for (const op of decodeCbor<JournalPayload>(record.payload).ops) noteOp(op, of, fresh);
  }
  if (expected !== upTo + 1) throw new MailstoreError('NOT_FOUND', `the journal ends at seq ${expected - 1}, before the index's ${upTo}`);
  const kept = fresh.blobs.filter((blob) => !touched.get(Buffer.from(blob.id).toString('hex'))?.gone.has(blob.uid));
  return { touched, digests, freshBytes: fresh.bytes, fresh: kept };
}

interface Fresh { bytes: number; blobs: FreshBlob[] }

function noteOp(op: Op, of: (id: Buffer) => TouchedMailbox, fresh: Fresh): void {
  switch (op.op) {
    case 'message.add': {
      const box = of(op.id);
      box.uids.add(op.uid);
      box.gone.delete(op.uid);
      if (op.fresh) {
        fresh.bytes += op.size;
        fresh.blobs.push({ id: op.id, uid: op.uid, hash: op.hash, size: op.size, pack: op.pack, offset: op.offset });
      }
      if (op.modseq !== undefined) box.entries.push([op.modseq, op.uid]);
      return;
    }
    case 'message.flags': { const box = of(op.id); for (const [uid] of op.set) box.uids.add(uid); return; }
    case 'message.expunge': { const box = of(op.id); for (const uid of op.uids) { box.uids.add(uid); box.gone.add(uid); } return; }
    case 'change.purge': of(op.id).entries.push(...op.entries); return;
    case 'change.floor': of(op.id).entries.push(...op.entries); return; // and the floor in its mailbox's info, read whole
    default:
      if (op.op.startsWith('state.')) throw new MailstoreError('INVALID', 'the journal holds a checkpoint after the earlier snapshot (the state was rewritten whole)');
  }
}

async function readMeta(snapshot: IndexSnapshot): Promise<[string, unknown][]> {
  const skip = new Set(indexOwnMeta.map((key) => key.toString('latin1')));
  return (await readAll<unknown>(snapshot, SPACE.meta)).filter(([key]) => !skip.has(key.toString('latin1'))).map(([key, value]) => [decodeString(key, 1).value, value]);
}

function readAll<T>(snapshot: IndexSnapshot, space: number): Promise<[Buffer, T][]> {
  return readRange<T>(snapshot, Buffer.of(space), Buffer.of(space + 1));
}

async function readRange<T>(snapshot: IndexSnapshot, gte: Buffer, lt: Buffer): Promise<[Buffer, T][]> {
  const out: [Buffer, T][] = [];
  for await (const batch of snapshot.entryBatches<T>({ gte, lt }, limits.checkpointEntriesPerRecord)) out.push(...batch);
  return out;
}
