// Index snapshots on disk (docs/FORMAT.md, "Snapshots"): the whole metadata state at one journal
// seq, so that a rebuild replays the snapshot plus the journal after it instead of the whole
// history, and the journal before it can be retired. A snapshot is a header, the state as framed
// checkpoint ops (the journal's record framing), and a trailer with the counts and a BLAKE3 digest
// of everything before it: "verified" means every frame valid, the trailer present and last, the
// digest and the counts right. Written aside and renamed into place, so a crash leaves the old file
// set or the new one, never half a snapshot under a snapshot's name.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, assert, fromSystemError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { ensureDir } from '../fs/durable.js';
import { createHasher } from '../hash/blake3.js';
import { decodeCbor, encodeCbor } from '../index/codec.js';
import { RECORD_HEADER_BYTES, decodeRecordHeader, encodeRecord } from '../journal/journal-format.js';
import { limits } from '../limits.js';
import type { JournalPayload, Op } from './records.js';

export const SNAPSHOTS_DIR = 'snapshots';
export const SNAPSHOT_MAGIC = Buffer.from('MSSN');
export const SNAPSHOT_FORMAT_VERSION = 1;
/** magic(4) version(4) storeId(16) seq(8) crc32(4), as a journal segment header. */
export const SNAPSHOT_HEADER_BYTES = 36;

/** What the trailer counts; a reader recounts and compares. */
export interface SnapshotCounts {
  /** Op records (the trailer not included). */
  records: number;
  /** state.mailbox ops (deleting ones included). */
  mailboxes: number;
  /** Messages in state.messages ops. */
  messages: number;
  /** Blobs in state.blobs ops. */
  blobs: number;
}

interface TrailerPayload {
  trailer: SnapshotCounts & { seq: number; digest: Uint8Array };
}

export interface SnapshotInfo extends SnapshotCounts {
  name: string;
  path: string;
  seq: number;
  bytes: number;
}

export function snapshotFileName(seq: number): string {
  return `${String(seq).padStart(16, '0')}.snap`;
}

export function parseSnapshotFileName(name: string): number | undefined {
  const m = /^(\d{16})\.snap$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function snapshotsDir(root: string): string {
  return join(root, SNAPSHOTS_DIR);
}

function encodeHeader(storeId: Buffer, seq: number): Buffer {
  const b = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
  SNAPSHOT_MAGIC.copy(b, 0);
  b.writeUInt32BE(SNAPSHOT_FORMAT_VERSION, 4);
  storeId.copy(b, 8);
  b.writeBigUInt64BE(BigInt(seq), 24);
  b.writeUInt32BE(crc32(b.subarray(0, 32)), 32);
  return b;
}

/** The header's seq, or why it is not a snapshot header of this store. */
export function decodeSnapshotHeader(b: Buffer, storeId: Buffer): { seq: number } | { damage: string } {
  if (b.length < SNAPSHOT_HEADER_BYTES || !b.subarray(0, 4).equals(SNAPSHOT_MAGIC)) return { damage: 'no snapshot header' };
  if (b.readUInt32BE(32) !== crc32(b.subarray(0, 32))) return { damage: 'header checksum mismatch' };
  if (b.readUInt32BE(4) !== SNAPSHOT_FORMAT_VERSION) return { damage: `format version ${b.readUInt32BE(4)} is not supported` };
  if (!b.subarray(8, 24).equals(storeId)) return { damage: 'it belongs to another store' };
  return { seq: Number(b.readBigUInt64BE(24)) };
}

/** Snapshot files in snapshots/, newest first (names only: nothing is verified). */
export async function listSnapshots(fs: FileSystem, root: string): Promise<{ name: string; path: string; seq: number }[]> {
  const dir = snapshotsDir(root);
  const names = await fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw fromSystemError(error, 'listing snapshots', dir);
  });
  const out: { name: string; path: string; seq: number }[] = [];
  for (const name of names) {
    const seq = parseSnapshotFileName(name);
    if (seq !== undefined) out.push({ name, path: join(dir, name), seq });
  }
  return out.sort((a, b) => b.seq - a.seq);
}

/**
 * Writes the state (checkpoint ops, state.begin first, as snapshotState yields them) as
 * snapshots/<seq>.snap: temp file, length check, fsync, rename, directory fsync. On any failure
 * the temp file is removed and nothing else changed.
 */
export async function writeSnapshotFile(fs: FileSystem, root: string, storeId: Buffer, seq: number, ops: AsyncIterable<Op>): Promise<SnapshotInfo> {
  const dir = snapshotsDir(root);
  await ensureDir(fs, dir).catch((e) => { throw fromSystemError(e, 'creating the snapshots directory', dir); });
  const name = snapshotFileName(seq);
  const temp = join(dir, `.${name}.${process.pid}.tmp`);
  await fs.unlink(temp).catch(() => undefined); // a leftover of a crashed writer with this pid
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(temp, 'createNew');
    const { bytes, counts } = await writeFrames(handle, storeId, seq, ops);
    if ((await handle.size()) !== bytes) throw Object.assign(new Error(`length check failed for ${temp}`), { code: 'EIO' });
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(temp, join(dir, name));
    await fs.syncDir(dir);
    return { name, path: join(dir, name), seq, bytes, ...counts };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.unlink(temp).catch(() => undefined);
    throw fromSystemError(error, 'writing a snapshot', temp);
  }
}

/** Header, one frame per op (ordinal seqs from 1), trailer; written in chunks, hashed as written. */
async function writeFrames(handle: FileHandle, storeId: Buffer, seq: number, ops: AsyncIterable<Op>): Promise<{ bytes: number; counts: SnapshotCounts }> {
  const hasher = await createHasher();
  const counts: SnapshotCounts = { records: 0, mailboxes: 0, messages: 0, blobs: 0 };
  let parts: Buffer[] = [];
  let pending = 0;
  let position = 0;
  const add = async (frame: Buffer, hashed: boolean) => {
    if (hashed) hasher.update(frame);
    parts.push(frame);
    pending += frame.length;
    if (pending < limits.snapshotWriteChunkBytes) return;
    await handle.writev(parts, position);
    position += pending;
    parts = [];
    pending = 0;
  };
  await add(encodeHeader(storeId, seq), true);
  for await (const op of ops) {
    count(counts, op);
    await add(encodeRecord(counts.records, encodeCbor({ ops: [op] } satisfies JournalPayload)), true);
  }
  const trailer: TrailerPayload = { trailer: { ...counts, seq, digest: hasher.digest() } };
  await add(encodeRecord(counts.records + 1, encodeCbor(trailer)), false);
  if (parts.length > 0) await handle.writev(parts, position);
  return { bytes: position + pending, counts };
}

function count(counts: SnapshotCounts, op: Op): void {
  counts.records++;
  if (op.op === 'state.mailbox') counts.mailboxes++;
  else if (op.op === 'state.messages') counts.messages += op.messages.length;
  else if (op.op === 'state.blobs') counts.blobs += op.blobs.length;
}

/**
 * Reads a snapshot through, checking everything (see the top of this file); hands each op to
 * `onOp` when given (a caller that must not apply a damaged snapshot reads it twice: verify, then
 * apply). Damage is CORRUPT with what is wrong; an unreadable file is its system error.
 */
export async function readSnapshotFile(fs: FileSystem, path: string, name: string, storeId: Buffer, onOp?: (op: Op) => void | Promise<void>): Promise<SnapshotInfo> {
  const damaged = (why: string) => new MailstoreError('CORRUPT', `snapshot ${name} is damaged: ${why}`, { path });
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'read');
  } catch (error) {
    throw fromSystemError(error, 'opening a snapshot', path);
  }
  try {
    const reader = new ChunkReader(handle, await handle.size());
    const header = decodeSnapshotHeader(await reader.take(SNAPSHOT_HEADER_BYTES) ?? Buffer.alloc(0), storeId);
    if ('damage' in header) throw damaged(header.damage);
    const hasher = await createHasher();
    hasher.update(encodeHeader(storeId, header.seq));
    const counts: SnapshotCounts = { records: 0, mailboxes: 0, messages: 0, blobs: 0 };
    for (;;) {
      const frame = await readFrame(reader, counts.records + 1, damaged);
      const payload = decodeFrame(frame.payload, damaged);
      if ('trailer' in payload) {
        checkTrailer(payload.trailer, header.seq, counts, hasher.digest(), damaged);
        if (reader.position !== reader.size) throw damaged(`${reader.size - reader.position} bytes after the trailer`);
        return { name, path, seq: header.seq, bytes: reader.size, ...counts };
      }
      hasher.update(frame.bytes);
      const op = payload.ops?.[0];
      if (!op || payload.ops.length !== 1 || !op.op.startsWith('state.') || (counts.records === 0) !== (op.op === 'state.begin')) throw damaged(`record ${counts.records + 1} is not a state op`);
      count(counts, op);
      await onOp?.(op);
    }
  } catch (error) {
    throw error instanceof MailstoreError ? error : fromSystemError(error, 'reading a snapshot', path);
  } finally {
    await handle.close();
  }
}

async function readFrame(reader: ChunkReader, ordinal: number, damaged: (why: string) => MailstoreError): Promise<{ bytes: Buffer; payload: Buffer }> {
  const head = await reader.take(RECORD_HEADER_BYTES);
  if (!head) throw damaged(`it ends after record ${ordinal - 1} without a trailer (truncated)`);
  const header = decodeRecordHeader(head);
  if (!header || header.payloadLength > limits.journalRecordBytesMax) throw damaged(`record ${ordinal} has no valid frame header at offset ${reader.position - RECORD_HEADER_BYTES}`);
  if (header.seq !== ordinal) throw damaged(`record ${ordinal} is numbered ${header.seq}`);
  const payload = await reader.take(header.payloadLength);
  if (!payload) throw damaged(`record ${ordinal} is cut short (truncated)`);
  if (crc32(payload) !== header.payloadCrc) throw damaged(`record ${ordinal} fails its checksum`);
  return { bytes: Buffer.concat([head, payload]), payload };
}

function decodeFrame(payload: Buffer, damaged: (why: string) => MailstoreError): JournalPayload | TrailerPayload {
  try {
    const value = decodeCbor<JournalPayload | TrailerPayload>(payload);
    if (value && typeof value === 'object' && ('trailer' in value || Array.isArray((value as JournalPayload).ops))) return value;
  } catch { /* reported below */ }
  throw damaged('a record does not decode');
}

function checkTrailer(t: TrailerPayload['trailer'], seq: number, counts: SnapshotCounts, digest: Buffer, damaged: (why: string) => MailstoreError): void {
  if (t.seq !== seq) throw damaged(`the trailer is for seq ${t.seq}, the header says ${seq}`);
  if (!Buffer.from(t.digest ?? []).equals(digest)) throw damaged('the digest does not match');
  for (const key of ['records', 'mailboxes', 'messages', 'blobs'] as const) {
    if (t[key] !== counts[key]) throw damaged(`the trailer counts ${t[key]} ${key}, the file holds ${counts[key]}`);
  }
}

/** Sequential reads in chunks of limits.scanChunkBytes (a snapshot may be far bigger than memory should hold). */
class ChunkReader {
  position = 0;
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;

  constructor(private readonly handle: FileHandle, readonly size: number) {}

  /** The next `n` bytes, or undefined when the file ends first. */
  async take(n: number): Promise<Buffer | undefined> {
    assert(n >= 0, `take ${n}`);
    if (this.position + n > this.size) return undefined;
    const offset = this.position - this.bufferStart;
    if (offset + n > this.buffer.length) {
      const length = Math.max(n, limits.scanChunkBytes);
      const chunk = Buffer.allocUnsafe(Math.min(length, this.size - this.position));
      const read = await this.handle.read(chunk, 0, chunk.length, this.position);
      if (read < n) return undefined;
      this.buffer = chunk.subarray(0, read);
      this.bufferStart = this.position;
    }
    const start = this.position - this.bufferStart;
    this.position += n;
    return this.buffer.subarray(start, start + n);
  }
}
