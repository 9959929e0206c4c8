// Reads one journal segment: every valid record in order, and every damaged range between them.
// Damage in the middle never hides the records after it: the reader resynchronises on the next
// frame whose header and payload checksums both hold.
import { crc32 } from 'node:zlib';
import type { FileHandle } from '../fs/filesystem.js';
import { assert } from '../errors.js';
import {
  FILLER_PATTERN, RECORD_HEADER_BYTES, RECORD_MAGIC, SEGMENT_HEADER_BYTES, decodeRecordHeader, decodeSegmentHeader, fillerFrom, isFillerAt,
} from './journal-format.js';

export type SegmentItem =
  | { kind: 'record'; seq: number; payload: Buffer; offset: number; end: number }
  | { kind: 'damage'; offset: number; length: number };

/** Buffered sequential reading of a segment (journal segments are bounded by journalSegmentBytesMax). */
/**
 * A segment's bytes, read into `into` when it is large enough (a reader of many segments reuses
 * one buffer), else into a fresh allocation of its own (never node's shared pool: a reader may keep
 * it as its `into` for the next segment). `from`: only the header and the bytes from there on.
 */
export async function readSegmentBytes(handle: FileHandle, into?: Buffer, from = 0): Promise<Buffer> {
  const size = await handle.size();
  const buf = into && into.length >= size ? into : Buffer.allocUnsafeSlow(size);
  if (from <= SEGMENT_HEADER_BYTES || from >= size) return buf.subarray(0, await handle.read(buf, 0, size, 0));
  // each where it is in the file; the bytes between are never looked at
  const head = await handle.read(buf, 0, SEGMENT_HEADER_BYTES, 0);
  return buf.subarray(0, head < SEGMENT_HEADER_BYTES ? head : from + await handle.read(buf, from, size - from, from));
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
 * not filler: they are damage (or a torn write), as before preallocation. `from`: where a record
 * starts (the bytes before it are not looked at).
 */
export function* parseSegment(bytes: Buffer, payloadBytesMax: number, from = SEGMENT_HEADER_BYTES): Generator<SegmentItem> {
  let p = from;
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

/**
 * Reads a file through one window of about `chunkBytes`, read again wherever the next request falls
 * outside it; a request longer than that (one big record) is read whole. Buffers handed out are
 * never reused, so a payload stays valid after the window moves; with `reuse`, every read goes
 * into one buffer (grown only for a record bigger than it), so what was handed out is valid only
 * until the next request: for a reader that keeps nothing (open's tail check, tail-scan.ts), the
 * memory it touches no longer grows with the segment.
 */
export class ReadWindow {
  private base = 0;
  private bytes: Buffer = Buffer.alloc(0);
  private scratch?: Buffer;

  constructor(private readonly handle: FileHandle, readonly size: number, readonly chunkBytes: number, private readonly reuse = false) {}

  /** The bytes [at, at + length), cut at the end of the file. */
  async get(at: number, length: number): Promise<Buffer> {
    const end = Math.min(at + length, this.size);
    if (at >= this.base && end <= this.base + this.bytes.length) return this.bytes.subarray(at - this.base, end - this.base);
    const want = Math.max(0, Math.min(Math.max(end - at, this.chunkBytes), this.size - at));
    const buffer = this.reuse ? this.reusable(want) : Buffer.allocUnsafe(want);
    const got = await this.handle.read(buffer, 0, want, at);
    this.base = at;
    this.bytes = buffer.subarray(0, got);
    return this.bytes.subarray(0, Math.min(got, end - at));
  }

  /** What the window holds now (no read): the file's bytes from `heldFrom` on. */
  get held(): Buffer {
    return this.bytes;
  }

  get heldFrom(): number {
    return this.base;
  }

  /** The reused buffer, at least `bytes` long (never node's shared pool: it is written while views of it are out). */
  private reusable(bytes: number): Buffer {
    if (!this.scratch || this.scratch.length < bytes) this.scratch = Buffer.allocUnsafeSlow(Math.max(bytes, this.chunkBytes));
    return this.scratch;
  }

  /** The first offset at or after `from` where `needle` starts, or -1 (windows overlap by its length - 1). */
  async indexOf(needle: Buffer, from: number): Promise<number> {
    for (let at = from; at < this.size;) {
      const chunk = await this.get(at, this.chunkBytes);
      const found = chunk.indexOf(needle);
      if (found >= 0) return at + found;
      if (at + chunk.length >= this.size || chunk.length < needle.length) return -1;
      at += chunk.length - (needle.length - 1);
    }
    return -1;
  }

  /**
   * Whether everything from `from` to the end of the file is the journal's filler. The first look
   * is short (a record's magic shares its first byte with the filler), then windows.
   */
  async fillerFrom(from: number): Promise<boolean> {
    for (let at = from, step = FILLER_PATTERN.length; at < this.size; step = this.chunkBytes) {
      const chunk = await this.get(at, step);
      if (chunk.length === 0) return true; // the file ends here (it shrank since its size was taken)
      if (!isFillerAt(chunk, at)) return false;
      at += chunk.length;
    }
    return true;
  }

  /** Where the filler that runs to the end of the file starts, not before `from` (journal-format.ts fillerStart, backwards through windows). */
  async fillerStart(from: number): Promise<number> {
    let p = this.size;
    while (p > from) {
      const start = Math.max(from, p - this.chunkBytes);
      const chunk = await this.get(start, p - start);
      if (chunk.length < p - start) return p; // the file shrank under the reader: no filler seen
      let i = chunk.length;
      while (i > 0 && chunk[i - 1] === FILLER_PATTERN[(start + i - 1) % FILLER_PATTERN.length]) i--;
      if (i > 0) return start + i;
      p = start;
    }
    return p;
  }
}

/** recordAt, over a window. */
async function recordIn(window: ReadWindow, p: number, payloadBytesMax: number): Promise<Extract<SegmentItem, { kind: 'record' }> | undefined> {
  const header = decodeRecordHeader(await window.get(p, RECORD_HEADER_BYTES));
  if (!header || header.payloadLength > payloadBytesMax) return undefined;
  const end = p + RECORD_HEADER_BYTES + header.payloadLength;
  if (end > window.size) return undefined;
  const payload = await window.get(p + RECORD_HEADER_BYTES, header.payloadLength);
  if (payload.length !== header.payloadLength || crc32(payload) !== header.payloadCrc) return undefined;
  return { kind: 'record', seq: header.seq, payload, offset: p, end };
}

/**
 * parseSegment over an open segment, read in windows of `chunkBytes` (a record longer than that
 * is read whole): the same items, for a reader that may stop early (repair looking for a few
 * inline bodies in a source store) and should not hold a whole segment for it.
 */
export async function* scanSegmentFile(handle: FileHandle, payloadBytesMax: number, chunkBytes: number): AsyncGenerator<SegmentItem> {
  const window = new ReadWindow(handle, await handle.size(), chunkBytes);
  for (let p = SEGMENT_HEADER_BYTES; p < window.size;) {
    const item = await itemAt(window, p, payloadBytesMax);
    if (!item) return;
    yield item;
    p = item.kind === 'record' ? item.end : item.offset + item.length;
  }
}

/** parseSegment's step at `p` over a window: the record or damaged range starting there, or undefined when filler runs from there to the end. */
export async function itemAt(window: ReadWindow, p: number, payloadBytesMax: number): Promise<SegmentItem | undefined> {
  assert(window.chunkBytes >= RECORD_HEADER_BYTES, `a segment is read in chunks of at least one record header (${window.chunkBytes} bytes asked)`);
  const first = await window.get(p, 1);
  if (first[0] === FILLER_PATTERN[p % FILLER_PATTERN.length] && (await window.fillerFrom(p))) return undefined;
  const item = await recordIn(window, p, payloadBytesMax);
  if (item) return item;
  let next = await window.indexOf(RECORD_MAGIC, p + 1);
  while (next !== -1 && !(await recordIn(window, next, payloadBytesMax))) next = await window.indexOf(RECORD_MAGIC, next + 1);
  const stop = next === -1 ? window.size : next;
  return { kind: 'damage', offset: p, length: stop - p };
}
