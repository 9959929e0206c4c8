// Open's check of the newest journal segment (Journal.findTail): where its last valid record ends,
// whether damage comes before that, and the invalid bytes after it. The segment is read through one
// reused window and payloads are checked, not kept: read whole into fresh memory, it cost every
// open (each CLI command, each backup run) a page fault per 4 KiB, ~50 ms at 16 MiB (issue 16).
// The few payloads recovery decodes are read again by position (TailRecords.payload).
import type { FileHandle } from '../fs/filesystem.js';
import { MailstoreError } from '../errors.js';
import { FILLER_PATTERN, SEGMENT_HEADER_BYTES, decodeSegmentHeader, recordSeqAt, validRecordEnd } from './journal-format.js';
import { ReadWindow, itemAt, recordAt } from './segment-reader.js';

/**
 * Records by position, three numbers each, in typed arrays that double as they fill: a segment of
 * small records holds tens of thousands, and JS arrays of them, copied into fresh memory at each
 * growth, were most of what the scan touched (16 MiB of 280-byte records: ~2,500 page faults).
 */
export class TailList {
  length = 0;
  private seqs = new Float64Array(64);
  private offsets = new Int32Array(64);
  private ends = new Int32Array(64);

  push(seq: number, offset: number, end: number): void {
    if (this.length === this.seqs.length) this.grow();
    this.seqs[this.length] = seq;
    this.offsets[this.length] = offset;
    this.ends[this.length++] = end;
  }

  clear(): void {
    this.length = 0;
  }

  seq(i: number): number {
    return this.seqs[i];
  }

  offset(i: number): number {
    return this.offsets[i];
  }

  end(i: number): number {
    return this.ends[i];
  }

  private grow(): void {
    const seqs = new Float64Array(this.seqs.length * 2);
    const offsets = new Int32Array(seqs.length);
    const ends = new Int32Array(seqs.length);
    seqs.set(this.seqs);
    offsets.set(this.offsets);
    ends.set(this.ends);
    [this.seqs, this.offsets, this.ends] = [seqs, offsets, ends];
  }
}

/** A segment's offset table as record-offsets.ts placeRecord builds one, in an Int32Array that doubles as it fills. */
class OffsetTableBuilder {
  private table = new Int32Array(64).fill(-1);
  private length = 0;

  constructor(private readonly firstSeq: number) {}

  place(seq: number, offset: number): void {
    if (seq < this.firstSeq) return;
    const i = seq - this.firstSeq;
    if (i >= this.table.length) {
      const table = new Int32Array(Math.max(this.table.length * 2, i + 1)).fill(-1);
      table.set(this.table.subarray(0, this.length));
      this.table = table;
    }
    this.table[i] = offset;
    this.length = Math.max(this.length, i + 1);
  }

  get offsets(): Int32Array {
    return this.table.subarray(0, this.length);
  }
}

export interface TailScan {
  /** The file's size: the end of the space preallocated for records. */
  size: number;
  headerValid: boolean;
  /** Valid records in the segment. */
  records: number;
  /** The last valid record's seq and end (firstSeq - 1 and SEGMENT_HEADER_BYTES when there is none). */
  lastSeq: number;
  end: number;
  /** Some bytes after the header are neither a valid record nor the filler that runs to the end. */
  damaged: boolean;
  /** Each record's offset by seq (offsets[seq - firstSeq], -1 where none is: record-offsets.ts). */
  offsets: Int32Array;
  /** The valid records after the last damaged range that a valid record follows. */
  tail: TailList;
  /** Invalid bytes from `end` on, without the filler after them: a torn write or damage. */
  torn?: { offset: number; length: number; bytes: Buffer };
}

/**
 * Scans an open segment as parseSegment would the whole of it (tail-scan.test.ts holds them
 * equal), through a window of `windowBytes` (bigger only for a record bigger than it).
 */
export async function scanTail(handle: FileHandle, firstSeq: number, payloadBytesMax: number, windowBytes: number): Promise<TailScan> {
  const window = new ReadWindow(handle, await handle.size(), windowBytes, true);
  const headerValid = decodeSegmentHeader(await window.get(0, SEGMENT_HEADER_BYTES)) !== undefined;
  const tail = new TailList();
  const table = new OffsetTableBuilder(firstSeq);
  const scan: TailScan = { size: window.size, headerValid, records: 0, lastSeq: firstSeq - 1, end: SEGMENT_HEADER_BYTES, damaged: false, offsets: table.offsets, tail };
  let lastIsDamage = false;
  for (let p = SEGMENT_HEADER_BYTES; p < window.size;) {
    // A record wholly inside the window, whose first byte is not the filler's there, is what itemAt
    // would find: taken in place, without a promise or an object (a segment of small records has
    // tens of thousands, and a one-shot CLI process paid for their garbage in fresh memory).
    const held = window.held;
    const at = p - window.heldFrom;
    const end = at >= 0 && at < held.length && held[at] !== FILLER_PATTERN[p % FILLER_PATTERN.length] ? validRecordEnd(held, at, payloadBytesMax) : -1;
    let seq: number;
    let next: number;
    if (end >= 0) {
      seq = recordSeqAt(held, at);
      next = p + (end - at);
    } else {
      const item = await itemAt(window, p, payloadBytesMax);
      if (!item) break;
      if (item.kind === 'damage') {
        lastIsDamage = scan.damaged = true;
        p = item.offset + item.length;
        if (p < window.size) tail.clear(); // damage in the middle: only the records after it are the newest batch's
        continue;
      }
      seq = item.seq;
      next = item.end;
    }
    lastIsDamage = false;
    scan.lastSeq = seq;
    scan.end = next;
    scan.records++;
    tail.push(seq, p, next);
    table.place(seq, p);
    p = next;
  }
  scan.offsets = table.offsets;
  // The scan stops at the filler or the end of the file, and a damaged range runs to the next valid
  // record or to the end: so the last item is damage exactly when the bytes from `end` on are
  // neither filler nor nothing.
  if (lastIsDamage) {
    // the invalid bytes, without the filler after them (not what was torn; a last byte of a torn
    // record that happens to equal the filler there is left out of the quarantine copy too)
    const stop = await window.fillerStart(scan.end);
    const bytes = Buffer.allocUnsafeSlow(stop - scan.end);
    const length = await handle.read(bytes, 0, bytes.length, scan.end);
    scan.torn = { offset: scan.end, length: stop - scan.end, bytes: bytes.subarray(0, length) };
  }
  return scan;
}

/**
 * The valid records after the newest segment's last damaged range (recovery looks for the newest
 * batch among them, from the end backwards). A payload is read again when asked for (after the
 * first, with the records before it up to `readBytesMax` in one read), and checked again: bytes that changed since
 * the scan (a failing disk, another process writing the journal) are refused (CORRUPT).
 */
export class TailRecords {
  private readonly payloads = new Map<number, Buffer>();

  constructor(
    private readonly list: TailList,
    private readonly path: string,
    private readonly read: (start: number, length: number) => Promise<Buffer>,
    private readonly payloadBytesMax: number,
    private readonly readBytesMax: number,
  ) {}

  get length(): number {
    return this.list.length;
  }

  seq(i: number): number {
    return this.list.seq(i);
  }

  offset(i: number): number {
    return this.list.offset(i);
  }

  end(i: number): number {
    return this.list.end(i);
  }

  /** The first record at or after index `from` whose seq is above `seq` (-1: none). */
  indexAbove(seq: number, from = 0): number {
    for (let i = Math.max(0, from); i < this.length; i++) if (this.list.seq(i) > seq) return i;
    return -1;
  }

  async payload(i: number): Promise<Buffer> {
    const known = this.payloads.get(i);
    if (known) return known;
    // the first one asked for alone (an open decodes only the last record, unless the index is
    // behind it), then with the records before it: the caller is walking back through a batch
    let first = i;
    while (this.payloads.size > 0 && first > 0 && !this.payloads.has(first - 1) && this.end(i) - this.offset(first - 1) <= this.readBytesMax) first--;
    const start = this.offset(first);
    const bytes = await this.read(start, this.end(i) - start);
    for (let k = first; k <= i; k++) {
      const item = recordAt(bytes, this.offset(k) - start, this.payloadBytesMax);
      if (!item || item.kind !== 'record' || item.seq !== this.seq(k) || item.end !== this.end(k) - start) {
        throw new MailstoreError('CORRUPT', `journal segment ${this.path}: record ${this.seq(k)} at offset ${this.offset(k)} no longer reads back as it did a moment ago, when the open checked it (a failing disk, or another process wrote the journal); nothing was changed: open the store again, and run 'mailstore scrub' if this repeats`, { path: this.path });
      }
      this.payloads.set(k, item.payload);
    }
    return this.payloads.get(i)!;
  }
}
