// Reads one journal segment: every valid record in order, and every damaged range between them.
// Damage in the middle never hides the records after it: the reader resynchronises on the next
// frame whose header and payload checksums both hold.
import { crc32 } from 'node:zlib';
import type { FileHandle } from '../fs/filesystem.js';
import {
  FILLER_PATTERN, RECORD_HEADER_BYTES, RECORD_MAGIC, SEGMENT_HEADER_BYTES, decodeRecordHeader, decodeSegmentHeader, fillerFrom,
} from './journal-format.js';

export type SegmentItem =
  | { kind: 'record'; seq: number; payload: Buffer; offset: number; end: number }
  | { kind: 'damage'; offset: number; length: number };

/** Buffered sequential reading of a segment (journal segments are bounded by journalSegmentBytesMax). */
export async function readSegmentBytes(handle: FileHandle): Promise<Buffer> {
  const size = await handle.size();
  const buf = Buffer.allocUnsafe(size);
  const n = await handle.read(buf, 0, size, 0);
  return buf.subarray(0, n);
}

export function segmentHeader(bytes: Buffer) {
  return decodeSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_BYTES));
}

/** The valid record starting at `p`, or undefined. */
export function recordAt(bytes: Buffer, p: number, payloadBytesMax: number): SegmentItem | undefined {
  const header = decodeRecordHeader(bytes.subarray(p, p + RECORD_HEADER_BYTES));
  if (!header || header.payloadLength > payloadBytesMax) return undefined;
  const end = p + RECORD_HEADER_BYTES + header.payloadLength;
  if (end > bytes.length) return undefined;
  const payload = bytes.subarray(p + RECORD_HEADER_BYTES, end);
  if (crc32(payload) !== header.payloadCrc) return undefined;
  return { kind: 'record', seq: header.seq, payload, offset: p, end };
}

/**
 * Every valid record and every damaged range, in order. Filler from some point to the end of the
 * segment is space the journal preallocated (docs/FORMAT.md, "Journal"): the end. Zeros there are
 * not filler: they are damage (or a torn write), as before preallocation.
 */
export function* parseSegment(bytes: Buffer, payloadBytesMax: number): Generator<SegmentItem> {
  let p = SEGMENT_HEADER_BYTES;
  while (p < bytes.length) {
    if (bytes[p] === FILLER_PATTERN[p % FILLER_PATTERN.length] && fillerFrom(bytes, p)) return;
    const item = recordAt(bytes, p, payloadBytesMax);
    if (item && item.kind === 'record') {
      yield item;
      p = item.end;
      continue;
    }
    let next = bytes.indexOf(RECORD_MAGIC, p + 1);
    while (next !== -1 && !recordAt(bytes, next, payloadBytesMax)) next = bytes.indexOf(RECORD_MAGIC, next + 1);
    const stop = next === -1 ? bytes.length : next;
    yield { kind: 'damage', offset: p, length: stop - p };
    p = stop;
  }
}
