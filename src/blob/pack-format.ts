// The byte layout of pack files (docs/FORMAT.md). A pack is self-describing: a scan finds every blob
// by its record magic even with the index and journal gone, and every record verifies by its hash.
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { HASH_BYTES } from '../hash/blake3.js';
import { crc32Range } from '../hash/crc32-small.js';

export const PACK_FILE_MAGIC = Buffer.from('MSPK');
export const PACK_RECORD_MAGIC = Buffer.from('MSB1');
export const PACK_FORMAT_VERSION = 1;
/** magic(4) version(4) storeId(16) packNumber(4) crc32(4) */
export const PACK_HEADER_BYTES = 32;
/** magic(4) hash(32) bodyLength(8) crc32(4) */
export const RECORD_HEADER_BYTES = 4 + HASH_BYTES + 8 + 4;

/** The highest pack number: the pack header holds it as a u32. */
export const PACK_NUMBER_MAX = 0xffff_ffff;

export function packFileName(packNumber: number): string {
  return `${String(packNumber).padStart(8, '0')}.pack`;
}

export function parsePackFileName(name: string): number | undefined {
  const m = /^(\d{8})\.pack$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function encodePackHeader(storeId: Buffer, packNumber: number): Buffer {
  const b = Buffer.alloc(PACK_HEADER_BYTES);
  PACK_FILE_MAGIC.copy(b, 0);
  b.writeUInt32BE(PACK_FORMAT_VERSION, 4);
  storeId.copy(b, 8);
  b.writeUInt32BE(packNumber, 24);
  b.writeUInt32BE(crc32(b.subarray(0, 28)), 28);
  return b;
}

export function decodePackHeader(b: Buffer): { storeId: Buffer; packNumber: number } | undefined {
  if (b.length < PACK_HEADER_BYTES || !b.subarray(0, 4).equals(PACK_FILE_MAGIC)) return undefined;
  if (b.readUInt32BE(28) !== crc32(b.subarray(0, 28))) return undefined;
  return { storeId: Buffer.from(b.subarray(8, 24)), packNumber: b.readUInt32BE(24) };
}

export function encodeRecordHeader(hash: Buffer, bodyLength: number): Buffer {
  const b = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  PACK_RECORD_MAGIC.copy(b, 0);
  hash.copy(b, 4);
  b.writeBigUInt64BE(BigInt(bodyLength), 36);
  b.writeUInt32BE(crc32(b.subarray(0, 44)), 44);
  return b;
}

/**
 * decodeRecordHeader's checks on a record header inside a bigger buffer, without copying or
 * allocating (a bulk read checks one header a message): why it is unusable, or undefined when its
 * magic and checksum hold and its length is `bodyLength`.
 */
export function recordHeaderFault(b: Buffer, at: number, bodyLength: number): string | undefined {
  if (at + RECORD_HEADER_BYTES > b.length || b.readUInt32BE(at) !== RECORD_MAGIC_WORD || b.readUInt32BE(at + 44) !== crc32Range(b, at, at + 44)) return 'record header is damaged';
  const length = b.readUInt32BE(at + 36) * 2 ** 32 + b.readUInt32BE(at + 40);
  if (length !== bodyLength) return `record length ${length} differs from the index's ${bodyLength}`;
  return undefined;
}

const RECORD_MAGIC_WORD = PACK_RECORD_MAGIC.readUInt32BE(0);

/**
 * The whole records at the start of chunk[0, n): each one's (body start, body length) pushed onto
 * `ranges`; returns how far they reach (a record whose magic or header checksum fails, or that `n`
 * cuts, ends them). The one definition of a pack scan's record parsing: the scrub hash worker
 * evaluates this function's own source text (src/hash/pool.ts), so it names nothing from outside
 * (literals stand for RECORD_HEADER_BYTES and the magic; checked below at load).
 */
export function wholeRecordRanges(chunk: Buffer, n: number, crc32: (bytes: Uint8Array) => number, ranges: number[]): number {
  let q = 0;
  while (q + 48 <= n) {
    if (chunk.readUInt32BE(q) !== 0x4d534231 || chunk.readUInt32BE(q + 44) !== crc32(chunk.subarray(q, q + 44))) break;
    const bodyLength = chunk.readUInt32BE(q + 36) * 4294967296 + chunk.readUInt32BE(q + 40);
    if (q + 48 + bodyLength > n) break;
    ranges.push(q + 48, bodyLength);
    q += 48 + bodyLength;
  }
  return q;
}
if (RECORD_HEADER_BYTES !== 48 || RECORD_MAGIC_WORD !== 0x4d534231) {
  throw new Error('wholeRecordRanges: its literals no longer match the record header layout');
}

export function decodeRecordHeader(b: Buffer): { hash: Buffer; bodyLength: number } | undefined {
  if (b.length < RECORD_HEADER_BYTES || !b.subarray(0, 4).equals(PACK_RECORD_MAGIC)) return undefined;
  if (b.readUInt32BE(44) !== crc32(b.subarray(0, 44))) return undefined;
  return { hash: Buffer.from(b.subarray(4, 36)), bodyLength: Number(b.readBigUInt64BE(36)) };
}
