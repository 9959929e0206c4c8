// Index snapshots on disk (docs/FORMAT.md, "Snapshots"): the whole metadata state at one journal
// seq, so that a rebuild replays the snapshot plus the journal after it instead of the whole
// history, and the journal before it can be retired. A snapshot is a header, the state in the
// journal's record framing, and a trailer with the counts and a BLAKE3 digest of everything before
// it: "verified" means every frame valid, the trailer present and last, the digest and the counts
// right. Format 3 holds the index's own entries (key and stored value bytes, in key order), so a
// rebuild loads them as raw LevelDB puts with no decoding or encoding per entry. Still read: format
// 2 (the same entries, values checksummed without their key: index format 1, re-framed as they
// load) and format 1 (checkpoint ops). Written aside and renamed into place, so a crash leaves the
// old file set or the new one, never half a snapshot under a snapshot's name.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, assert, fromSystemError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { ensureDir } from '../fs/durable.js';
import { createHasher, type Hasher } from '../hash/blake3.js';
import { decodeCbor, encodeCbor, reframeFormat1, valueChecksumHolds } from '../index/codec.js';
import { SPACE } from '../keys/tuple.js';
import { RECORD_HEADER_BYTES, decodeRecordHeader, encodeRecord, encodeRecordHeader } from '../journal/journal-format.js';
import { limits } from '../limits.js';
import { indexOwnMeta } from './apply.js';
import type { JournalPayload, Op } from './records.js';

export const SNAPSHOTS_DIR = 'snapshots';
export const SNAPSHOT_MAGIC = Buffer.from('MSSN');
/** The format written; 2 (values of index format 1) and 1 (checkpoint ops) are still read. */
export const SNAPSHOT_FORMAT_VERSION = 3;
const READABLE_VERSIONS: readonly number[] = [1, 2, 3];
/** First payload byte of a format 2/3 record: index entries, or the trailer (CBOR after it). */
const KIND_ENTRIES = 0x45; // 'E'
const KIND_TRAILER = 0x54; // 'T'
/** Format 2/3 entry head: key length u16, value length u32. */
const ENTRY_HEAD_BYTES = 6;
/** The index spaces a format 2/3 snapshot may hold. */
const SNAPSHOT_SPACES = new Set<number>(Object.values(SPACE));
/** SNAPSHOT_SPACES by key byte (1: a space), for the check of every entry: a Set's has() was ~60 instructions. */
const SNAPSHOT_SPACE_BYTES = Uint8Array.from({ length: 256 }, (_, byte) => (SNAPSHOT_SPACES.has(byte) ? 1 : 0));
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
  /** Formats 2 and 3: index entries (every space). */
  entries?: number;
}

interface TrailerPayload {
  trailer: SnapshotCounts & { seq: number; digest: Uint8Array };
}

export interface SnapshotInfo extends SnapshotCounts {
  name: string;
  path: string;
  seq: number;
  bytes: number;
  /** 1: checkpoint ops; 2: index entries of index format 1; 3: index entries. */
  format: number;
}

/** The index's entries as a snapshot holds them: key and stored value bytes, ascending keys. */
export type RawEntryBatches = AsyncIterable<[Buffer, Buffer][]>;

/**
 * What a reader hands on as it goes: a format 1 snapshot's checkpoint ops, a format 2 snapshot's
 * entries (views into the chunk read, which is not reused unless `keepsNoViews`), the end of each
 * record (where a loader may flush). Each passed the record's checksum; the whole file's digest is checked at the
 * end, so a caller that must not use a damaged snapshot verifies it first (or builds aside).
 */
export interface SnapshotSink {
  op(op: Op): void | Promise<void>;
  /** Plain Uint8Array views, not Buffers: node's Buffer subarray costs ~2.5x a view's making (issue 16). */
  entry(key: Uint8Array, value: Uint8Array): void;
  recordDone?(): Promise<void>;
  /**
   * The sink keeps no view of an op or entry after the call that handed it (it copies what it
   * keeps): the reader then reads every chunk into one buffer instead of a fresh one each (a
   * rebuild's load: fresh 4 MiB chunks were page faults and external memory the collector chases),
   * and a format 3 entry's key and value come in arrays handed again (EntryScratch).
   */
  keepsNoViews?: boolean;
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

function encodeHeader(storeId: Buffer, seq: number, version: number): Buffer {
  const b = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
  SNAPSHOT_MAGIC.copy(b, 0);
  b.writeUInt32BE(version, 4);
  storeId.copy(b, 8);
  b.writeBigUInt64BE(BigInt(seq), 24);
  b.writeUInt32BE(crc32(b.subarray(0, 32)), 32);
  return b;
}

/** The header's seq, or why it is not a snapshot header of this store. */
export function decodeSnapshotHeader(b: Buffer, storeId: Buffer): { seq: number; version: number } | { damage: string } {
  if (b.length < SNAPSHOT_HEADER_BYTES || !b.subarray(0, 4).equals(SNAPSHOT_MAGIC)) return { damage: 'no snapshot header' };
  if (b.readUInt32BE(32) !== crc32(b.subarray(0, 32))) return { damage: 'header checksum mismatch' };
  if (!READABLE_VERSIONS.includes(b.readUInt32BE(4))) return { damage: `format version ${b.readUInt32BE(4)} is not supported` };
  if (!b.subarray(8, 24).equals(storeId)) return { damage: 'it belongs to another store' };
  return { seq: Number(b.readBigUInt64BE(24)), version: b.readUInt32BE(4) };
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
 * Writes the index's entries (`entries`: every key but the store id and appliedSeq, in key order,
 * as snapshotEntries reads them at seq) as snapshots/<seq>.snap, format 2: temp file, length check,
 * fsync, rename, directory fsync. Every value's checksum is checked before it is written (a damaged
 * index value is CORRUPT, and nothing is left). On any failure the temp file is removed and
 * nothing else changed.
 */
export async function writeSnapshotFile(fs: FileSystem, root: string, storeId: Buffer, seq: number, entries: RawEntryBatches): Promise<SnapshotInfo> {
  const dir = snapshotsDir(root);
  await ensureDir(fs, dir).catch((e) => { throw fromSystemError(e, 'creating the snapshots directory', dir); });
  const name = snapshotFileName(seq);
  const temp = join(dir, `.${name}.${process.pid}.tmp`);
  await fs.unlink(temp).catch(() => undefined); // a leftover of a crashed writer with this pid
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(temp, 'createNew');
    const { bytes, counts } = await writeFrames(handle, storeId, seq, entries);
    if ((await handle.size()) !== bytes) throw Object.assign(new Error(`length check failed for ${temp}`), { code: 'EIO' });
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(temp, join(dir, name));
    await fs.syncDir(dir);
    return { name, path: join(dir, name), seq, bytes, format: SNAPSHOT_FORMAT_VERSION, ...counts };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.unlink(temp).catch(() => undefined);
    throw error instanceof MailstoreError ? error : fromSystemError(error, 'writing a snapshot', temp);
  }
}

/** Header, entry records (ordinal seqs from 1, each up to limits.snapshotRecordBytes), trailer; hashed as written. */
async function writeFrames(handle: FileHandle, storeId: Buffer, seq: number, entries: RawEntryBatches): Promise<{ bytes: number; counts: SnapshotCounts }> {
  const hasher = await createHasher();
  const counts: SnapshotCounts = { records: 0, mailboxes: 0, messages: 0, blobs: 0, entries: 0 };
  const out = new RecordWriter(handle, hasher, limits.snapshotWriteChunkBytes, limits.snapshotRecordBytes);
  await out.raw(encodeHeader(storeId, seq, SNAPSHOT_FORMAT_VERSION));
  let previous: Buffer | undefined;
  for await (const batch of entries) {
    for (const [key, value] of batch) {
      assert(previous === undefined || Buffer.compare(previous, key) < 0, 'snapshot entries must come in ascending key order');
      if (!valueChecksumHolds(key, value)) {
        throw new MailstoreError('CORRUPT', `index value for key ${key.toString('hex')} fails its checksum: no snapshot written; run 'mailstore reconstruct' to rebuild the index from the journal`, { path: key.toString('hex') });
      }
      await out.entry(key, value);
      countEntry(counts, key);
      previous = key;
    }
  }
  counts.records = await out.endRecord();
  const trailer: TrailerPayload = { trailer: { ...counts, seq, digest: hasher.digest() } };
  await out.raw(encodeRecord(counts.records + 1, Buffer.concat([Buffer.of(KIND_TRAILER), encodeCbor(trailer)])), false);
  return { bytes: await out.finish(), counts };
}

function countEntry(counts: SnapshotCounts, key: Buffer): void {
  counts.entries!++;
  if (key[0] === SPACE.info) counts.mailboxes++;
  else if (key[0] === SPACE.message) counts.messages++;
  else if (key[0] === SPACE.blob) counts.blobs++;
}

/** Format 1 counting (checkpoint ops). */
function count(counts: SnapshotCounts, op: Op): void {
  counts.records++;
  if (op.op === 'state.mailbox') counts.mailboxes++;
  else if (op.op === 'state.messages') counts.messages += op.messages.length;
  else if (op.op === 'state.blobs') counts.blobs += op.blobs.length;
}

/**
 * Format 2 entries records ('E', then per entry key length u16, value length u32, key, value),
 * framed as journal records and written in place into one buffer of about chunkBytes that is
 * written out and reused: a snapshot holds one chunk however big the index is. (Building each
 * record by concatenation left ~2x the file in dead 256 KiB buffers, the ~80 MB a daemon's first
 * automatic snapshot held, and glibc kept the heap they grew: issue 13, RSS.) Hashes each frame
 * as it is finished. Only an entry too big for the chunk gets a buffer of its own.
 */
class RecordWriter {
  private readonly chunk: Buffer;
  private buffer: Buffer;
  private used = 0;
  private position = 0;
  /** Where the open record's frame starts in `buffer`; -1: no record open. */
  private recordStart = -1;
  private records = 0;

  constructor(private readonly handle: FileHandle, private readonly hasher: Hasher, chunkBytes: number, private readonly recordBytes: number) {
    this.chunk = Buffer.allocUnsafe(Math.max(chunkBytes, RECORD_HEADER_BYTES + recordBytes));
    this.buffer = this.chunk;
  }

  /** Bytes that are not an entries record (the header, the trailer), hashed unless told not to. */
  async raw(bytes: Buffer, hash = true): Promise<void> {
    await this.endRecord();
    if (hash) this.hasher.update(bytes);
    await this.room(bytes.length);
    bytes.copy(this.buffer, this.used);
    this.used += bytes.length;
  }

  async entry(key: Buffer, value: Buffer): Promise<void> {
    assert(key.length > 0 && key.length <= 0xffff, `an index key of ${key.length} bytes`);
    const need = ENTRY_HEAD_BYTES + key.length + value.length;
    // a record holds one entry at least, and at most recordBytes of payload otherwise
    if (this.recordStart >= 0 && this.used - this.recordStart - RECORD_HEADER_BYTES + need > this.recordBytes) await this.endRecord();
    if (this.recordStart < 0) {
      await this.room(RECORD_HEADER_BYTES + 1 + Math.max(need, this.recordBytes));
      this.recordStart = this.used;
      this.used += RECORD_HEADER_BYTES;
      this.buffer[this.used++] = KIND_ENTRIES;
    }
    const b = this.buffer;
    b.writeUInt16BE(key.length, this.used);
    b.writeUInt32BE(value.length, this.used + 2);
    key.copy(b, this.used + ENTRY_HEAD_BYTES);
    value.copy(b, this.used + ENTRY_HEAD_BYTES + key.length);
    this.used += need;
  }

  /** Frames and hashes the open record, if any; returns the records framed so far. */
  async endRecord(): Promise<number> {
    if (this.recordStart < 0) return this.records;
    const payload = this.buffer.subarray(this.recordStart + RECORD_HEADER_BYTES, this.used);
    encodeRecordHeader(++this.records, payload).copy(this.buffer, this.recordStart);
    this.hasher.update(this.buffer.subarray(this.recordStart, this.used));
    this.recordStart = -1;
    return this.records;
  }

  /** Writes what is left; returns the bytes written in all. */
  async finish(): Promise<number> {
    await this.endRecord();
    await this.flush();
    return this.position;
  }

  /** Makes room for `bytes` more: writes the chunk out when they would not fit (only whole frames are in it then). */
  private async room(bytes: number): Promise<void> {
    assert(this.recordStart < 0, 'room is made between records');
    if (this.used + bytes <= this.buffer.length) return;
    await this.flush();
    // one entry past the chunk: a buffer of its own, this once; then the chunk again
    this.buffer = bytes > this.chunk.length ? Buffer.allocUnsafe(bytes) : this.chunk;
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.handle.write(this.buffer.subarray(0, this.used), this.position);
    this.position += this.used;
    this.used = 0;
  }
}

/**
 * Reads a snapshot through, checking everything (see the top of this file); hands what it holds to
 * `sink` when given (a caller that must not apply a damaged snapshot reads it twice: verify, then
 * apply). Damage is CORRUPT with what is wrong; an unreadable file is its system error.
 */
export async function readSnapshotFile(fs: FileSystem, path: string, name: string, storeId: Buffer, sink?: SnapshotSink): Promise<SnapshotInfo> {
  const damaged = (why: string) => new MailstoreError('CORRUPT', `snapshot ${name} is damaged: ${why}`, { path });
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'read');
  } catch (error) {
    throw fromSystemError(error, 'opening a snapshot', path);
  }
  try {
    const reader = new ChunkReader(handle, await handle.size(), sink === undefined || sink.keepsNoViews === true);
    const header = decodeSnapshotHeader(await reader.take(SNAPSHOT_HEADER_BYTES) ?? Buffer.alloc(0), storeId);
    if ('damage' in header) throw damaged(header.damage);
    const hasher = await createHasher();
    hasher.update(encodeHeader(storeId, header.seq, header.version));
    const counts: SnapshotCounts = { records: 0, mailboxes: 0, messages: 0, blobs: 0, ...(header.version === 1 ? {} : { entries: 0 }) };
    const entries = new EntriesCheck(counts, damaged, header.version, sink);
    for (;;) {
      const frame = await readFrame(reader, counts.records + 1, damaged);
      const trailer = header.version === 1 ? await readOpRecord(frame.payload, counts, damaged, sink) : entries.record(frame.payload);
      if (trailer) {
        entries.tally();
        checkTrailer(trailer, header.seq, counts, hasher.digest(), damaged);
        if (reader.position !== reader.size) throw damaged(`${reader.size - reader.position} bytes after the trailer`);
        return { name, path, seq: header.seq, bytes: reader.size, format: header.version, ...counts };
      }
      hasher.update(frame.head);
      hasher.update(frame.payload);
      await sink?.recordDone?.();
    }
  } catch (error) {
    throw error instanceof MailstoreError ? error : fromSystemError(error, 'reading a snapshot', path);
  } finally {
    await handle.close();
  }
}

async function readFrame(reader: ChunkReader, ordinal: number, damaged: (why: string) => MailstoreError): Promise<{ head: Buffer; payload: Buffer }> {
  const read = await reader.take(RECORD_HEADER_BYTES);
  if (!read) throw damaged(`it ends after record ${ordinal - 1} without a trailer (truncated)`);
  const head = Buffer.from(read); // the payload's read may reuse the chunk it is in (ChunkReader reuse)
  const header = decodeRecordHeader(head);
  if (!header || header.payloadLength > limits.journalRecordBytesMax) throw damaged(`record ${ordinal} has no valid frame header at offset ${reader.position - RECORD_HEADER_BYTES}`);
  if (header.seq !== ordinal) throw damaged(`record ${ordinal} is numbered ${header.seq}`);
  const payload = await reader.take(header.payloadLength);
  if (!payload) throw damaged(`record ${ordinal} is cut short (truncated)`);
  if (crc32(payload) !== header.payloadCrc) throw damaged(`record ${ordinal} fails its checksum`);
  return { head, payload };
}

/** A format 1 record: one checkpoint op (counted, handed on), or the trailer. */
async function readOpRecord(payload: Buffer, counts: SnapshotCounts, damaged: (why: string) => MailstoreError, sink?: SnapshotSink): Promise<TrailerPayload['trailer'] | undefined> {
  const value = decodeFrame(payload, damaged);
  if ('trailer' in value) return value.trailer;
  const op = value.ops?.[0];
  if (!op || value.ops.length !== 1 || !op.op.startsWith('state.') || (counts.records === 0) !== (op.op === 'state.begin')) throw damaged(`record ${counts.records + 1} is not a state op`);
  count(counts, op);
  await sink?.op(op);
  return undefined;
}

function decodeFrame(payload: Buffer, damaged: (why: string) => MailstoreError): JournalPayload | TrailerPayload {
  try {
    const value = decodeCbor<JournalPayload | TrailerPayload>(payload);
    if (value && typeof value === 'object' && ('trailer' in value || Array.isArray((value as JournalPayload).ops))) return value;
  } catch { /* reported below */ }
  throw damaged('a record does not decode');
}

/**
 * Format 2 records: each entry in bounds, of a known space, its key above the one before (so no
 * key twice) and not one a rebuild sets itself, its value long enough to hold a checksum.
 */
class EntriesCheck {
  /** The key before, as a range of the record it is in (no object made an entry: ~60k a 20k-message store). */
  private previousBytes: DataView | undefined;
  private previousStart = 0;
  private previousEnd = 0;
  private readonly own = indexOwnMeta;
  /**
   * Entries by their key's space byte, written into the counts at the end (tally): one store for
   * every space, where a field of the counts a space (mailboxes, messages, blobs) was a property
   * write the optimized entry code had never seen until that space's first key, so it was thrown
   * away at the I and again at the M keys and ran unoptimized until recompiled (issue 16).
   */
  private readonly spaces = new Float64Array(256);
  /**
   * The record's memory and offset, read once a record: `payload.buffer` is a C++ getter that
   * optimized code reaches through a generic LoadIC (~400 instructions a call, twice an entry: ~35M
   * of the ~470M a 20k-message rebuild's open runs on the main thread, issue 16).
   */
  private recordMemory: ArrayBufferLike = new ArrayBuffer(0);
  private recordOffset = 0;
  /** The record as a DataView, for the key order's comparison a word at a time (sortsAfter). */
  private recordView = new DataView(this.recordMemory);
  /** Where a sink that keeps no views is handed each entry's key and value (one array each by length). */
  private readonly keys = new EntryScratch();
  private readonly values = new EntryScratch();

  constructor(private readonly counts: SnapshotCounts, private readonly damaged: (why: string) => MailstoreError, private readonly version: number, private readonly sink?: SnapshotSink) {}

  /** Checks and hands on a record's entries; the trailer when the record is the trailer. */
  record(payload: Buffer): TrailerPayload['trailer'] | undefined {
    const ordinal = this.counts.records + 1;
    if (payload[0] === KIND_TRAILER) {
      const value = decodeFrame(payload.subarray(1), this.damaged);
      if ('trailer' in value) return value.trailer;
    }
    if (payload[0] !== KIND_ENTRIES || payload.length === 1) throw this.damaged(`record ${ordinal} holds neither index entries nor the trailer`);
    this.recordMemory = payload.buffer;
    this.recordOffset = payload.byteOffset;
    this.recordView = new DataView(this.recordMemory, this.recordOffset, payload.length);
    for (let at = 1; at < payload.length;) at = this.entry(payload, at, ordinal);
    // the next record's first key is compared with this one, and its read may reuse this chunk
    const previous = Buffer.from(payload.subarray(this.previousStart, this.previousEnd));
    this.previousBytes = new DataView(previous.buffer, previous.byteOffset, previous.length);
    this.previousStart = 0;
    this.previousEnd = previous.length;
    this.counts.records++;
    return undefined;
  }

  /**
   * Checks and hands on the entry at `at`; where the next one starts. One call an entry, so V8
   * optimizes it as any hot function: with the loop's body inline in record() (called once a
   * record, ~4,000 entries each) the loop ran on on-stack replacement, whose code met the
   * record's end without type feedback and was thrown away at every record (issue 16).
   */
  private entry(payload: Buffer, at: number, ordinal: number): number {
    if (at + ENTRY_HEAD_BYTES > payload.length) throw this.damaged(`record ${ordinal}: an entry is cut short at ${at}`);
    const keyStart = at + ENTRY_HEAD_BYTES;
    // through the record's DataView: Buffer's readUInt16BE/readUInt32BE check their offset again
    const keyEnd = keyStart + this.recordView.getUint16(at);
    const valueEnd = keyEnd + this.recordView.getUint32(at + 2);
    if (valueEnd > payload.length) throw this.damaged(`record ${ordinal}: an entry at ${at} runs past the record`);
    this.check(payload, keyStart, keyEnd, valueEnd - keyEnd, ordinal);
    if (this.sink) this.hand(this.sink, payload, keyStart, keyEnd, valueEnd);
    return valueEnd;
  }

  /**
   * A format 2 value (its CRC32 of the body alone) is framed with its key as it loads; one whose
   * old checksum fails is handed on as it is, so the index reads it as CORRUPT, never as valid.
   */
  private hand(sink: SnapshotSink, payload: Buffer, keyStart: number, keyEnd: number, valueEnd: number): void {
    if (this.version === 2) {
      const [key, value] = [payload.subarray(keyStart, keyEnd), payload.subarray(keyEnd, valueEnd)];
      sink.entry(key, reframeFormat1(key, value) ?? value);
      return;
    }
    if (sink.keepsNoViews) {
      sink.entry(this.keys.copy(payload, this.recordView, keyStart, keyEnd), this.values.copy(payload, this.recordView, keyEnd, valueEnd));
      return;
    }
    const at = this.recordOffset;
    sink.entry(new Uint8Array(this.recordMemory, at + keyStart, keyEnd - keyStart), new Uint8Array(this.recordMemory, at + keyEnd, valueEnd - keyEnd));
  }

  private check(payload: Buffer, keyStart: number, keyEnd: number, valueBytes: number, ordinal: number): void {
    const space = payload[keyStart];
    if (keyEnd === keyStart || SNAPSHOT_SPACE_BYTES[space] !== 1) throw this.bad(ordinal, payload, keyStart, keyEnd, 'is of no index space');
    if (this.previousBytes && !sortsAfter(this.recordView, keyStart, keyEnd, this.previousBytes, this.previousStart, this.previousEnd)) throw this.bad(ordinal, payload, keyStart, keyEnd, 'is out of order');
    if (valueBytes < 5) throw this.bad(ordinal, payload, keyStart, keyEnd, 'has a value too short for its checksum');
    if (space === SPACE.meta && this.own.some((k) => payload.compare(k, 0, k.length, keyStart, keyEnd) === 0)) throw this.bad(ordinal, payload, keyStart, keyEnd, 'is one a rebuild sets itself');
    this.previousBytes = this.recordView;
    this.previousStart = keyStart;
    this.previousEnd = keyEnd;
    this.spaces[space]++;
  }

  /** Puts the entries seen into the counts (the trailer is checked against them). */
  tally(): void {
    if (this.version === 1) return;
    this.counts.entries = this.spaces.reduce((sum, n) => sum + n, 0);
    this.counts.mailboxes = this.spaces[SPACE.info];
    this.counts.messages = this.spaces[SPACE.message];
    this.counts.blobs = this.spaces[SPACE.blob];
  }

  private bad(ordinal: number, payload: Buffer, keyStart: number, keyEnd: number, why: string): MailstoreError {
    return this.damaged(`record ${ordinal}: key ${payload.subarray(keyStart, Math.min(keyEnd, keyStart + 80)).toString('hex')} ${why}`);
  }
}

/**
 * An array a length, handed again for the next entry of that length: two views an entry for
 * LevelDB's batch to copy from (~120k at 20k messages) cost more to make and collect than a copy
 * (issue 16). A longer one is handed as a view, as before.
 */
class EntryScratch {
  private readonly arrays: (Uint8Array | undefined)[] = [];
  /** Their DataViews: the copy goes four bytes at a time. */
  private readonly views: (DataView | undefined)[] = [];

  /** from[start, end) (`from` views `bytes`), valid until the next copy of that length. */
  copy(bytes: Uint8Array, from: DataView, start: number, end: number): Uint8Array {
    const length = end - start;
    if (length > limits.snapshotScratchBytesMax) return new Uint8Array(bytes.buffer, bytes.byteOffset + start, length);
    let out = this.arrays[length];
    let to = this.views[length];
    if (out === undefined || to === undefined) {
      this.arrays[length] = out = new Uint8Array(length);
      this.views[length] = to = new DataView(out.buffer);
    }
    let i = 0;
    for (; i + 4 <= length; i += 4) to.setUint32(i, from.getUint32(start + i));
    for (; i < length; i++) to.setUint8(i, from.getUint8(start + i));
    return out;
  }
}

/**
 * Whether a[aStart, aEnd) sorts strictly after b[bStart, bEnd), bytewise (as LevelDB orders keys):
 * buf.compare with offsets did it for every entry, and its argument checks and native call were
 * ~30 % of a cold snapshot verification (issue 16: scrub checks every snapshot; 60k entries at
 * 20k messages). Consecutive keys share ~17 bytes at 20k messages: compared four at a time as
 * big-endian words (the order of their bytes), where a byte at a time cost ~35 instructions a byte
 * in optimized code (~38M of a 20k rebuild's open).
 */
function sortsAfter(a: DataView, aStart: number, aEnd: number, b: DataView, bStart: number, bEnd: number): boolean {
  const common = Math.min(aEnd - aStart, bEnd - bStart);
  let i = 0;
  for (; i + 4 <= common; i += 4) {
    const x = a.getUint32(aStart + i);
    const y = b.getUint32(bStart + i);
    if (x !== y) return x > y;
  }
  for (; i < common; i++) {
    const x = a.getUint8(aStart + i);
    const y = b.getUint8(bStart + i);
    if (x !== y) return x > y;
  }
  return aEnd - aStart > bEnd - bStart;
}

function checkTrailer(t: TrailerPayload['trailer'], seq: number, counts: SnapshotCounts, digest: Buffer, damaged: (why: string) => MailstoreError): void {
  if (t.seq !== seq) throw damaged(`the trailer is for seq ${t.seq}, the header says ${seq}`);
  if (!Buffer.from(t.digest ?? []).equals(digest)) throw damaged('the digest does not match');
  for (const key of ['records', 'mailboxes', 'messages', 'blobs', 'entries'] as const) {
    if (t[key] !== counts[key]) throw damaged(`the trailer counts ${t[key]} ${key}, the file holds ${counts[key]}`);
  }
}

/**
 * Sequential reads in chunks of limits.scanChunkBytes (a snapshot may be far bigger than memory
 * should hold). `reuse`: every chunk is read into the same buffer, so what take returned holds
 * only until the next take reads (a verification keeps nothing; a sink keeps entries, so it
 * gets chunks of their own). Without it each snapshot verified left its size in dead chunks.
 */
class ChunkReader {
  position = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private bufferStart = 0;
  private spare?: Buffer;

  constructor(private readonly handle: FileHandle, readonly size: number, private readonly reuse = false) {}

  /** The next `n` bytes, or undefined when the file ends first. */
  async take(n: number): Promise<Buffer | undefined> {
    assert(n >= 0, `take ${n}`);
    if (this.position + n > this.size) return undefined;
    const offset = this.position - this.bufferStart;
    if (offset + n > this.buffer.length) {
      const length = Math.min(Math.max(n, this.reuse ? limits.snapshotReadChunkBytes : limits.scanChunkBytes), this.size - this.position);
      const chunk = this.reuse && this.spare && this.spare.length >= length ? this.spare.subarray(0, length) : Buffer.allocUnsafe(length);
      if (this.reuse && chunk.buffer !== this.spare?.buffer) this.spare = chunk;
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
