// The byte layout of journal segments (docs/FORMAT.md): a checksummed segment header, then framed
// records, each with its own seq, payload length and two CRC32s (header and payload).
import { crc32 } from 'node:zlib';
import { limits } from '../limits.js';

export const SEGMENT_MAGIC = Buffer.from('MSJS');
export const RECORD_MAGIC = Buffer.from('MSJR');
export const JOURNAL_FORMAT_VERSION = 1;
/** magic(4) version(4) storeId(16) firstSeq(8) crc32(4) */
export const SEGMENT_HEADER_BYTES = 36;
/** magic(4) payloadLength(4) seq(8) payloadCrc(4) headerCrc(4) */
export const RECORD_HEADER_BYTES = 24;

export function segmentFileName(firstSeq: number): string {
  return `${String(firstSeq).padStart(16, '0')}.jnl`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = /^(\d{16})\.jnl$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function encodeSegmentHeader(storeId: Buffer, firstSeq: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32BE(JOURNAL_FORMAT_VERSION, 4);
  storeId.copy(b, 8);
  b.writeBigUInt64BE(BigInt(firstSeq), 24);
  b.writeUInt32BE(crc32(b.subarray(0, 32)), 32);
  return b;
}

export function decodeSegmentHeader(b: Buffer): { storeId: Buffer; firstSeq: number } | undefined {
  if (b.length < SEGMENT_HEADER_BYTES || !b.subarray(0, 4).equals(SEGMENT_MAGIC)) return undefined;
  if (b.readUInt32BE(32) !== crc32(b.subarray(0, 32))) return undefined;
  return { storeId: Buffer.from(b.subarray(8, 24)), firstSeq: Number(b.readBigUInt64BE(24)) };
}

export function encodeRecord(seq: number, payload: Buffer): Buffer {
  return Buffer.concat([encodeRecordHeader(seq, payload), payload]);
}

/** A record's header alone: a batch is written as header, payload, header, ... (no copy of the payloads). */
export function encodeRecordHeader(seq: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  RECORD_MAGIC.copy(b, 0);
  b.writeUInt32BE(payload.length, 4);
  b.writeBigUInt64BE(BigInt(seq), 8);
  b.writeUInt32BE(crc32(payload), 16);
  b.writeUInt32BE(crc32(b.subarray(0, 20)), 20);
  return b;
}

export function decodeRecordHeader(b: Buffer): { payloadLength: number; seq: number; payloadCrc: number } | undefined {
  if (b.length < RECORD_HEADER_BYTES || !b.subarray(0, 4).equals(RECORD_MAGIC)) return undefined;
  if (b.readUInt32BE(20) !== crc32(b.subarray(0, 20))) return undefined;
  return { payloadLength: b.readUInt32BE(4), seq: Number(b.readBigUInt64BE(8)), payloadCrc: b.readUInt32BE(16) };
}

/**
 * Where the valid record starting at bytes[p] ends in `bytes`, or -1 (segment-reader.ts recordAt's
 * test, without allocating a header or BigInt: open's tail check runs it on every record).
 */
export function validRecordEnd(bytes: Buffer, p: number, payloadBytesMax: number): number {
  if (p + RECORD_HEADER_BYTES > bytes.length || bytes.readUInt32BE(p) !== RECORD_MAGIC_WORD) return -1;
  if (bytes.readUInt32BE(p + 20) !== crc32(bytes.subarray(p, p + 20))) return -1;
  const payloadLength = bytes.readUInt32BE(p + 4);
  if (payloadLength > payloadBytesMax) return -1;
  const end = p + RECORD_HEADER_BYTES + payloadLength;
  if (end > bytes.length || crc32(bytes.subarray(p + RECORD_HEADER_BYTES, end)) !== bytes.readUInt32BE(p + 16)) return -1;
  return end;
}
const RECORD_MAGIC_WORD = RECORD_MAGIC.readUInt32BE(0);

/** The seq in the header of the record at bytes[p] (decodeRecordHeader's, exact below 2^53 as it is). */
export function recordSeqAt(bytes: Buffer, p: number): number {
  return bytes.readUInt32BE(p + 8) * 2 ** 32 + bytes.readUInt32BE(p + 12);
}

/**
 * Preallocated space after a segment's last record holds this pattern, never zeros (docs/FORMAT.md,
 * "Journal", preallocation): the byte at file offset `o` is FILLER_PATTERN[o % 16], so any suffix
 * can be checked alone. Records are written over it in place (no size change, so a crash leaves
 * each block old or new, never zeros); zeros or other bytes after the last record are damage or a
 * torn write, as they were before preallocation. It holds no "MSJR", so resync never stops in it.
 */
export const FILLER_PATTERN = Buffer.from('MSJF-unused-fill');
const FILLER_CHUNK_BYTES = 64 * 1024;
/** The pattern from offset 0, one chunk plus a period long: comparisons slice it at o % 16. */
const FILLER_CHUNK = Buffer.alloc(FILLER_CHUNK_BYTES + FILLER_PATTERN.length, FILLER_PATTERN);

/**
 * The filler the journal writes ahead of its records (limits.journalPreallocateBytes at a time):
 * a view of one shared buffer, allocated once and never written to. A fresh 1 MiB copy for each
 * preallocation cost ~1.3 ms of CPU (new pages each time), one commit in ~170 deliveries.
 */
export function fillerToWrite(offset: number, length: number): Buffer {
  const phase = offset % FILLER_PATTERN.length;
  if (!sharedFiller || sharedFiller.length < phase + length) {
    if (length > limits.journalPreallocateBytes) return fillerBytes(offset, length);
    sharedFiller = fillerBytes(0, limits.journalPreallocateBytes + FILLER_PATTERN.length);
  }
  return sharedFiller.subarray(phase, phase + length);
}
let sharedFiller: Buffer | undefined;

/** `length` bytes of filler for file offset `offset` onwards. */
export function fillerBytes(offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let done = 0; done < length;) {
    const phase = (offset + done) % FILLER_PATTERN.length;
    const n = Math.min(FILLER_CHUNK_BYTES, length - done);
    FILLER_CHUNK.copy(out, done, phase, phase + n);
    done += n;
  }
  return out;
}

/** Whether bytes[p..] is filler for those file offsets (true when p is at or past the end). */
export function fillerFrom(bytes: Buffer, p: number): boolean {
  return p >= bytes.length || isFillerAt(bytes.subarray(p), p);
}

/** Whether `bytes`, read from file offset `offset`, are filler there (a window's chunk: no copy of the pattern made). */
export function isFillerAt(bytes: Buffer, offset: number): boolean {
  for (let done = 0; done < bytes.length; done += FILLER_CHUNK_BYTES) {
    const n = Math.min(FILLER_CHUNK_BYTES, bytes.length - done);
    const phase = (offset + done) % FILLER_PATTERN.length;
    if (!bytes.subarray(done, done + n).equals(FILLER_CHUNK.subarray(phase, phase + n))) return false;
  }
  return true;
}

/** Where the filler that runs to the end of `bytes` starts (not before `from`): bytes.length if none. */
export function fillerStart(bytes: Buffer, from: number): number {
  let p = bytes.length;
  while (p > from && bytes[p - 1] === FILLER_PATTERN[(p - 1) % FILLER_PATTERN.length]) p--;
  return p;
}
