// A journal written from the index: when the journal is lost or damaged and the index is intact,
// the index is the best surviving source, and a journal that holds its whole state (a checkpoint,
// docs/FORMAT.md) lets a later rebuild recover everything it holds. Built aside in
// `journal.rebuild/` and swapped in by directory renames; the old journal goes to quarantine/.
import { join } from 'node:path';
import { fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';
import { encodeCbor } from '../index/codec.js';
import type { IndexDb, IndexRangeReader } from '../index/index-db.js';
import { SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, segmentFileName } from '../journal/journal-format.js';
import { decodeChangeKey, decodeMessageKey } from '../keys/index-keys.js';
import { SPACE, decodeString } from '../keys/tuple.js';
import { limits } from '../limits.js';
import { LAYOUT } from './identity.js';
import { indexOwnMeta, meta } from './apply.js';
import { stateEntry, type BlobRecord, type ChangeRecord, type JournalPayload, type MailboxInfo, type MessageRecord, type Op } from './records.js';
import { moveAside } from './recovery.js';

export const JOURNAL_REBUILD_DIR = `${LAYOUT.journal}.rebuild`;
/** Written last into journal.rebuild/: the built journal is complete and may be swapped in. */
const COMPLETE_MARK = 'COMPLETE';

export interface CheckpointWritten {
  path: string;
  firstSeq: number;
  lastSeq: number;
  records: number;
}

/**
 * Writes the index's whole state as one checkpoint batch, seqs `firstSeq`.., into a fresh
 * journal.rebuild/ (with its STORE-ID marker), every file and the directory synced.
 * `appliedSeq` is the seq of the state (the index's watermark).
 */
export async function writeCheckpointJournal(fs: FileSystem, root: string, db: IndexDb, storeId: Buffer, storeIdText: string, appliedSeq: number, firstSeq: number, segmentBytesMax: number): Promise<CheckpointWritten> {
  const dir = join(root, JOURNAL_REBUILD_DIR);
  try {
    return await writeCheckpointInto(fs, dir, db, storeId, storeIdText, appliedSeq, firstSeq, segmentBytesMax);
  } catch (error) {
    // Nothing of it is used: journal/ and the index are untouched until the swap.
    await fs.removeTree(dir).catch(() => undefined);
    throw fromSystemError(error, 'writing a new journal from the index', dir);
  }
}

async function writeCheckpointInto(fs: FileSystem, dir: string, db: IndexDb, storeId: Buffer, storeIdText: string, appliedSeq: number, firstSeq: number, segmentBytesMax: number): Promise<CheckpointWritten> {
  if (await fs.statIfExists(dir)) await fs.removeTree(dir); // a leftover this code made: derived from the index
  await ensureDir(fs, dir);
  await writeFileDurable(fs, join(dir, LAYOUT.marker), Buffer.from(storeIdText + '\n'));
  const lastSeq = await writeStateSegments(fs, dir, storeId, firstSeq, checkpointOps(db, appliedSeq), segmentBytesMax);
  await writeFileDurable(fs, join(dir, COMPLETE_MARK), Buffer.from(`${firstSeq}..${lastSeq}\n`));
  return { path: dir, firstSeq, lastSeq, records: lastSeq - firstSeq + 1 };
}

/**
 * Writes checkpoint ops (state.begin first) as one batch of journal records, one op a record, seqs
 * `firstSeq`.., into segment files of `dir`, every file and the directory synced; returns the last
 * seq. Reconstruct writes the index's state this way, a restore the state of a backup snapshot.
 */
export async function writeStateSegments(fs: FileSystem, dir: string, storeId: Buffer, firstSeq: number, ops: AsyncIterator<Op> | Iterator<Op>, segmentBytesMax: number): Promise<number> {
  const writer = new SegmentWriter(fs, dir, storeId, firstSeq, segmentBytesMax);
  let pending = await ops.next();
  while (!pending.done) {
    const op = pending.value;
    pending = await ops.next();
    const payload: JournalPayload = { ops: [op] };
    if (pending.done) payload.end = true; // one batch: a checkpoint counts only whole
    await writer.add(encodeCbor(payload));
  }
  await writer.finish();
  await fs.syncDir(dir);
  return writer.seq - 1;
}

/** Segments of at most segmentBytesMax (one record may exceed it alone), each synced when full. */
class SegmentWriter {
  seq: number;
  private parts: Buffer[] = [];
  private bytes = 0;
  private segmentFirst: number;

  constructor(private readonly fs: FileSystem, private readonly dir: string, private readonly storeId: Buffer, firstSeq: number, private readonly segmentBytesMax: number) {
    this.seq = firstSeq;
    this.segmentFirst = firstSeq;
  }

  async add(payload: Buffer): Promise<void> {
    const record = encodeRecord(this.seq, payload);
    if (this.parts.length > 0 && SEGMENT_HEADER_BYTES + this.bytes + record.length > this.segmentBytesMax) await this.flush();
    if (this.parts.length === 0) this.segmentFirst = this.seq;
    this.parts.push(record);
    this.bytes += record.length;
    this.seq++;
  }

  async finish(): Promise<void> {
    if (this.parts.length > 0) await this.flush();
  }

  private async flush(): Promise<void> {
    const path = join(this.dir, segmentFileName(this.segmentFirst));
    const handle = await this.fs.open(path, 'createNew').catch((e) => { throw fromSystemError(e, 'writing the rebuilt journal', path); });
    try {
      await handle.writev([encodeSegmentHeader(this.storeId, this.segmentFirst), ...this.parts], 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.parts = [];
    this.bytes = 0;
  }
}

/**
 * The index as checkpoint ops, each holding at most limits.checkpointEntriesPerRecord entries:
 * meta, mailboxes, messages and change-log entries per mailbox, blobs. Values are taken verbatim
 * (modseqs, refcounts, counters), so the replay reproduces them; the name index and the reverse
 * ACL map are derived from the mailboxes as every create and rename derives them.
 */
export async function* checkpointOps(db: IndexRangeReader, appliedSeq: number): AsyncGenerator<Op> {
  const per = limits.checkpointEntriesPerRecord;
  yield { op: 'state.begin', appliedSeq };
  let entries: [string, unknown][] = [];
  const skip = new Set(indexOwnMeta.map((key) => key.toString('latin1')));
  for await (const batch of all<unknown>(db, SPACE.meta)) {
    for (const [key, value] of batch) {
      if (skip.has(key.toString('latin1'))) continue;
      entries.push([decodeString(key, 1).value, value]);
      if (entries.length >= per) { yield { op: 'state.meta', entries }; entries = []; }
    }
  }
  if (entries.length > 0) yield { op: 'state.meta', entries };
  for await (const batch of all<MailboxInfo>(db, SPACE.info)) for (const [, info] of batch) yield { op: 'state.mailbox', info };
  yield* grouped<MessageRecord, Op>(db, SPACE.message, per, (key) => decodeMessageKey(key), (id, list) => ({
    op: 'state.messages', id, messages: list.map(([key, r]) => stateEntry(decodeMessageKey(key).uid, r)),
  }));
  yield* grouped<ChangeRecord, Op>(db, SPACE.change, per, (key) => decodeChangeKey(key), (id, list) => ({
    op: 'state.changes', id, entries: list.map(([key, value]) => { const c = decodeChangeKey(key); return [c.modseq, c.uid, value]; }),
  }));
  let blobs: Extract<Op, { op: 'state.blobs' }>['blobs'] = [];
  for await (const batch of all<BlobRecord>(db, SPACE.blob)) {
    for (const [key, b] of batch) {
      blobs.push(b.z === undefined ? [Buffer.from(key.subarray(1)), b.p, b.o, b.l, b.r] : [Buffer.from(key.subarray(1)), b.p, b.o, b.l, b.r, b.z]);
      if (blobs.length >= per) { yield { op: 'state.blobs', blobs }; blobs = []; }
    }
  }
  if (blobs.length > 0) yield { op: 'state.blobs', blobs };
}


/** Every entry of a key space, decoded (a damaged value throws CORRUPT), a batch at a time (not a yield each). */
function all<T>(db: IndexRangeReader, space: number): AsyncGenerator<[Buffer, T][]> {
  return db.entryBatches<T>({ gte: Buffer.of(space), lt: Buffer.of(space + 1) }, 1000);
}

/** Entries of a per-mailbox space in runs of one mailbox, at most `per` a run. */
async function* grouped<T, O>(db: IndexRangeReader, space: number, per: number, idOf: (key: Buffer) => { id: Buffer }, make: (id: Buffer, list: [Buffer, T][]) => O): AsyncGenerator<O> {
  let list: [Buffer, T][] = [];
  let id: Buffer | undefined;
  for await (const batch of all<T>(db, space)) {
    for (const entry of batch) {
      const keyId = idOf(entry[0]).id;
      if (id && (!keyId.equals(id) || list.length >= per)) { yield make(id, list); list = []; }
      if (!id || !keyId.equals(id)) id = Buffer.from(keyId);
      list.push(entry);
    }
  }
  if (id && list.length > 0) yield make(id, list);
}

/**
 * Swaps journal.rebuild/ in for journal/ (the old one to quarantine/). A crash between the two
 * renames leaves no journal/ (open then says UNMOUNTED); `finishJournalSwap`, which reconstruct
 * runs first, completes it.
 */
export async function swapJournal(fs: FileSystem, root: string): Promise<string | undefined> {
  const old = await moveAside(fs, root, join(root, LAYOUT.journal), 'journal-replaced');
  await finishJournalSwap(fs, root);
  return old;
}

/** journal/ missing and a complete journal.rebuild/ beside it: an interrupted swap, finished. */
export async function finishJournalSwap(fs: FileSystem, root: string): Promise<boolean> {
  const journal = join(root, LAYOUT.journal);
  const rebuilt = join(root, JOURNAL_REBUILD_DIR);
  if (await fs.statIfExists(journal)) return false;
  if (!(await fs.statIfExists(join(rebuilt, COMPLETE_MARK)))) return false;
  await fs.rename(rebuilt, journal).catch((e) => { throw fromSystemError(e, 'installing the rebuilt journal', journal); });
  await fs.syncDir(root);
  await fs.unlink(join(journal, COMPLETE_MARK)).catch(() => undefined);
  return true;
}

export interface StateSnapshot {
  /** The journal seq the state reflects (the index's watermark in the snapshot). */
  appliedSeq: number;
  /** The whole state as checkpoint ops (state.begin first), read from the snapshot. */
  ops: AsyncGenerator<Op>;
  /** Releases the LevelDB snapshot (also after reading every op). */
  close(): Promise<void>;
}

/**
 * The index's whole state at one point, read from a LevelDB snapshot while writers go on: index
 * snapshots and backups take it. The seq comes from the same snapshot, so state and seq agree.
 */
export async function snapshotState(db: IndexDb): Promise<StateSnapshot> {
  const snapshot = await db.snapshot();
  const appliedSeq = snapshot.get<number>(meta.appliedSeq) ?? 0;
  const inner = checkpointOps(snapshot, appliedSeq);
  async function* ops(): AsyncGenerator<Op> {
    try {
      yield* inner;
    } finally {
      await snapshot.close();
    }
  }
  return { appliedSeq, ops: ops(), close: () => snapshot.close() };
}

/** The index's entries at one point, as a format 2 snapshot holds them (snapshot-file.ts). */
export interface EntriesSnapshot {
  /** The journal seq the entries reflect (the index's watermark in the snapshot). */
  appliedSeq: number;
  /** Every entry but the store id and appliedSeq (a rebuild sets those), in key order. */
  entries: AsyncGenerator<[Buffer, Buffer][]>;
  /** Releases the LevelDB snapshot (also after reading every entry). */
  close(): Promise<void>;
}

/**
 * The index's whole state at one point as raw entries, read from a LevelDB snapshot while writers
 * go on (index snapshots take it). Streamed in batches of limits.snapshotReadEntries: memory
 * does not follow the index's size.
 */
export async function snapshotEntries(db: IndexDb): Promise<EntriesSnapshot> {
  const snapshot = await db.snapshot();
  const appliedSeq = snapshot.get<number>(meta.appliedSeq) ?? 0;
  const own = indexOwnMeta;
  async function* entries(): AsyncGenerator<[Buffer, Buffer][]> {
    try {
      for await (const batch of snapshot.rawEntryBatches({ gte: Buffer.alloc(0), lt: Buffer.of(0xff) }, limits.snapshotReadEntries)) {
        yield batch.some(([key]) => key[0] === SPACE.meta) ? batch.filter(([key]) => !own.some((k) => k.equals(key))) : batch;
      }
    } finally {
      await snapshot.close();
    }
  }
  return { appliedSeq, entries: entries(), close: () => snapshot.close() };
}
