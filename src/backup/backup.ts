// `mailstore backup`: one point-in-time snapshot of a store into a repository. The state is read
// at one journal seq beside live writers; only blobs the repository does not hold yet are read
// from the store (the state names every blob by hash, so an incremental run reads what changed),
// written into data files, each indexed once durable, and the snapshot file is written last.
import { hostname } from 'node:os';
import { MailstoreError, isMailstoreError } from '../errors.js';
import { backupLimits } from '../limits.js';
import { formatMailboxName } from '../store/validate.js';
import type { StateSnapshot } from '../store/checkpoint.js';
import type { Op } from '../store/records.js';
import { blobIdOf } from './crypto.js';
import { CompressPool } from './compress-pool.js';
import { DATA_HEADER_BYTES, FORMAT_VERSION, encodeDataHeader, sealRecord } from './format.js';
import { addToIndex, lockRepository, type BlobEntry, type IndexFile, type Repository, type SnapshotCounts, type SnapshotFile } from './repository.js';

/** What a backup needs of a store: the Store itself, or later the daemon's client. */
export interface BackupSource {
  /** The store's id (UUID text). */
  readonly storeId: string;
  snapshotState(): Promise<StateSnapshot>;
  /** A blob's bytes, verified against its hash (CORRUPT otherwise). */
  fetchBlob(hash: Buffer): Promise<Buffer>;
}

export interface BackupOptions {
  /** Called as blobs are added: messages and bytes read from the store. */
  onProgress?: (blobs: number, bytes: number) => void;
  /** Called once the state is read: how much there is to copy. */
  onPlan?: (newBlobs: number, newBytes: number) => void;
}

export interface BackupSummary {
  snapshot: string;
  storeId: string;
  seq: number;
  mailboxes: number;
  messages: number;
  /** Distinct blobs the snapshot refers to... */
  blobs: number;
  /** ...of which this run copied (the others were in the repository already). */
  newBlobs: number;
  /** Message bytes read from the store. */
  bytesRead: number;
  /** Bytes of new repository files (data, index, snapshot). */
  bytesAdded: number;
  durationMs: number;
}

interface NeededBlob {
  hash: Buffer;
  size: number;
  /** The first message using it ("MAILBOX uid N"): an error names it. */
  what: string;
  /** Where the store keeps it (pack, offset): blobs are read in that order. */
  position: number;
}

interface StateRead {
  seq: number;
  ops: Op[];
  counts: SnapshotCounts;
  blobs: NeededBlob[];
}

export async function runBackup(source: BackupSource, repo: Repository, options: BackupOptions = {}): Promise<BackupSummary> {
  const started = Date.now();
  const writtenBefore = repo.bytesWritten;
  const lock = await lockRepository(repo, false);
  try {
    const known = await repo.loadIndex();
    const state = await readState(source);
    const missing = state.blobs.filter((blob) => !known.has(blobIdOf(blob.hash, repo.keys).toString('hex')));
    options.onPlan?.(missing.length, missing.reduce((sum, blob) => sum + blob.size, 0));
    const bytesRead = await copyBlobs(source, repo, known, missing, options);
    const snapshot: SnapshotFile = {
      version: FORMAT_VERSION, time: Date.now(), storeId: source.storeId, hostname: hostname(), seq: state.seq, counts: state.counts, ops: state.ops,
    };
    const id = await repo.writeSnapshot(snapshot);
    return {
      snapshot: id, storeId: source.storeId, seq: state.seq, mailboxes: state.counts.mailboxes, messages: state.counts.messages, blobs: state.counts.blobs,
      newBlobs: missing.length, bytesRead, bytesAdded: repo.bytesWritten - writtenBefore, durationMs: Date.now() - started,
    };
  } finally {
    await lock.release();
  }
}

/**
 * The state as the snapshot keeps it (without state.blobs: pack locations are the store's own),
 * and the blobs its messages use. A mailbox being deleted is kept in the state as it was, but its
 * messages are not restored, so their blobs are not needed.
 */
async function readState(source: BackupSource): Promise<StateRead> {
  const snapshot = await source.snapshotState();
  const ops: Op[] = [];
  const deleting = new Set<string>();
  const names = new Map<string, string>();
  const blobs = new Map<string, NeededBlob>();
  const counts: SnapshotCounts = { mailboxes: 0, messages: 0, bytes: 0, blobs: 0 };
  const positions = new Map<string, number>();
  try {
    for await (const op of snapshot.ops) {
      if (op.op === 'state.blobs') {
        for (const [hash, pack, offset] of op.blobs) positions.set(hash.toString('hex'), pack * 2 ** 40 + offset);
        continue;
      }
      ops.push(op);
      if (op.op === 'state.mailbox') {
        if (op.info.deleting) deleting.add(op.info.id.toString('hex'));
        else counts.mailboxes++;
        names.set(op.info.id.toString('hex'), formatMailboxName(op.info.name));
      } else if (op.op === 'state.messages' && !deleting.has(op.id.toString('hex'))) {
        for (const [uid, hash, size] of op.messages) {
          counts.messages++;
          counts.bytes += size;
          const key = hash.toString('hex');
          if (!blobs.has(key)) blobs.set(key, { hash: Buffer.from(hash), size, position: 0, what: `${names.get(op.id.toString('hex'))} uid ${uid}` });
        }
      }
    }
  } finally {
    await snapshot.close();
  }
  for (const [key, blob] of blobs) blob.position = positions.get(key) ?? 0;
  counts.blobs = blobs.size;
  return { seq: snapshot.appliedSeq, ops, counts, blobs: [...blobs.values()].sort((a, b) => a.position - b.position) };
}

/**
 * Reads, compresses, seals and writes the missing blobs; returns the bytes read. Blobs go to the
 * compression workers in batches, batchesInFlight batches at once, so every core compresses while
 * the main thread reads the next blobs, seals finished ones, and a full data file is written in
 * the background (compress-pool.ts says why not zlib's own async calls).
 */
async function copyBlobs(source: BackupSource, repo: Repository, known: Map<string, BlobEntry[]>, missing: NeededBlob[], options: BackupOptions): Promise<number> {
  if (missing.length === 0) return 0;
  const writer = new DataFileWriter(repo, known);
  const pool = new CompressPool(repo.codec);
  const window: Promise<{ blobs: NeededBlob[]; bytes: Buffer[]; compressed: Buffer[] }>[] = [];
  let next = 0;
  const start = () => {
    const blobs: NeededBlob[] = [];
    let size = 0;
    while (next < missing.length && blobs.length < backupLimits.compressBatchBlobs && size < backupLimits.compressBatchBytes) {
      size += missing[next]!.size;
      blobs.push(missing[next++]!);
    }
    const pending = Promise.all(blobs.map((blob) => fetchNamed(source, blob)))
      .then(async (bytes) => ({ blobs, bytes, compressed: await pool.compress(bytes) }));
    pending.catch(() => undefined); // handled when its turn comes; a failure must not crash the process before then
    window.push(pending);
  };
  let bytesRead = 0;
  let done = 0;
  try {
    while (next < missing.length && window.length < backupLimits.batchesInFlight) start();
    while (window.length > 0) {
      const batch = await window.shift()!;
      if (next < missing.length) start();
      batch.blobs.forEach((blob, i) => {
        const id = blobIdOf(blob.hash, repo.keys);
        writer.add(id, sealRecord(id, batch.bytes[i]!, batch.compressed[i]!, repo.codec, repo.keys));
        bytesRead += batch.bytes[i]!.length;
      });
      done += batch.blobs.length;
      options.onProgress?.(done, bytesRead);
      if (writer.bytes >= backupLimits.packBytesTarget) await writer.flush(false);
    }
    await writer.flush(true);
  } finally {
    // a failed run: nothing is left running behind it (the files written so far are reused next time)
    await Promise.allSettled(window);
    await writer.settled();
    await pool.close();
  }
  return bytesRead;
}

/**
 * A damaged message stops the backup (no snapshot is written, earlier ones stay): a snapshot that
 * could not restore it would be a backup that lies. The store's scrub --repair, or an expunge of
 * the message, lets the next run through.
 */
async function fetchNamed(source: BackupSource, blob: NeededBlob): Promise<Buffer> {
  try {
    return await source.fetchBlob(blob.hash);
  } catch (error) {
    if (!isMailstoreError(error, 'CORRUPT') && !isMailstoreError(error, 'NOT_FOUND')) throw error;
    throw new MailstoreError('CORRUPT', `${blob.what} is damaged in the store, so no snapshot was written (run 'mailstore scrub'; ${error.message})`, { path: blob.what, cause: error });
  }
}

/**
 * Gathers records for one data file; `flush` hands the file to the background, where it is
 * written, then its index file (the index refers to the data file only once it is durable), then
 * its blobs are counted as known. One file is written at a time; `flush(true)` waits for all.
 */
class DataFileWriter {
  private parts: Buffer[] = [];
  private blobs: [Buffer, number, number][] = [];
  private writing: Promise<void> = Promise.resolve();
  bytes = 0;

  constructor(private readonly repo: Repository, private readonly known: Map<string, BlobEntry[]>) {}

  add(id: Buffer, parts: Buffer[]): void {
    if (this.parts.length === 0) {
      this.parts.push(encodeDataHeader(Boolean(this.repo.keys)));
      this.bytes = DATA_HEADER_BYTES;
    }
    this.blobs.push([id, this.bytes, parts[1].length]);
    this.parts.push(...parts);
    this.bytes += parts[0].length + parts[1].length;
  }

  /** Starts writing what was gathered once the previous file is written; `wait`: until it is. */
  async flush(wait: boolean): Promise<void> {
    await this.writing; // the previous file's failure stops the run here
    if (this.blobs.length > 0) {
      const data = this.parts;
      const index: IndexFile = { files: [{ file: '', blobs: this.blobs }] };
      this.parts = [];
      this.blobs = [];
      this.bytes = 0;
      this.writing = this.write(data, index);
      this.writing.catch(() => undefined); // reported by the next flush or settled, not as an unhandled rejection
    }
    if (wait) await this.writing;
  }

  /** The background write, done or failed (a failed run waits for it before it returns). */
  async settled(): Promise<void> {
    await this.writing.catch(() => undefined);
  }

  private async write(data: Buffer[], index: IndexFile): Promise<void> {
    index.files[0]!.file = await this.repo.writeData(data);
    await this.repo.writeIndex(index);
    addToIndex(this.known, index);
  }
}
