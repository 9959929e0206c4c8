// The byte layout of journal segments (docs/FORMAT.md): a checksummed segment header, then framed
// records, each with its own seq, payload length and two CRC32s (header and payload).
import { crc32 } from 'node:zlib';

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
  const b = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  RECORD_MAGIC.copy(b, 0);
  b.writeUInt32BE(payload.length, 4);
  b.writeBigUInt64BE(BigInt(seq), 8);
  b.writeUInt32BE(crc32(payload), 16);
  b.writeUInt32BE(crc32(b.subarray(0, 20)), 20);
  payload.copy(b, RECORD_HEADER_BYTES);
  return b;
}

export function decodeRecordHeader(b: Buffer): { payloadLength: number; seq: number; payloadCrc: number } | undefined {
  if (b.length < RECORD_HEADER_BYTES || !b.subarray(0, 4).equals(RECORD_MAGIC)) return undefined;
  if (b.readUInt32BE(20) !== crc32(b.subarray(0, 20))) return undefined;
  return { payloadLength: b.readUInt32BE(4), seq: Number(b.readBigUInt64BE(8)), payloadCrc: b.readUInt32BE(16) };
}
