// Open's tail check (src/journal/tail-scan.ts, Journal.findTail) reads the newest segment through
// one reused window instead of whole: it must find exactly what the whole read found (the code
// below as `wholeRead`, findTail before session 47) on every segment, whatever the window: the same
// end, last seq, damage, torn bytes, record offsets and tail records with their payloads. Checked
// on generated segments, and at every offset of a small segment cut short, zeroed, left as filler
// (a write that never reached the preallocated space) or with a byte flipped.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, fillerBytes, fillerFrom, fillerStart, segmentFileName } from '../../src/journal/journal-format.js';
import { Journal } from '../../src/journal/journal.js';
import { parseSegment, segmentHeader } from '../../src/journal/segment-reader.js';
import { TailRecords, scanTail } from '../../src/journal/tail-scan.js';
import { placeRecord } from '../../src/journal/record-offsets.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { limits } from '../../src/limits.js';
import { memoryHandle, segments } from '../helpers/journal-segments.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.alloc(16, 3);

/** What findTail found when it read the segment whole (journal.ts before the window). */
function wholeRead(bytes: Buffer, firstSeq: number, payloadBytesMax: number) {
  let lastSeq = firstSeq - 1;
  let end = SEGMENT_HEADER_BYTES;
  let records = 0;
  let damaged = false;
  let tail: { seq: number; offset: number; end: number; payload: string }[] = [];
  const offsets: number[] = [];
  for (const item of parseSegment(bytes, payloadBytesMax)) {
    if (item.kind === 'record') {
      lastSeq = item.seq;
      end = item.end;
      records++;
      tail.push({ seq: item.seq, offset: item.offset, end: item.end, payload: item.payload.toString('hex') });
      placeRecord(offsets, firstSeq, item.seq, item.offset);
      continue;
    }
    damaged = true;
    if (item.offset + item.length < bytes.length) tail = [];
  }
  const headerValid = !!segmentHeader(bytes);
  const clean = headerValid && !damaged && (end === bytes.length || fillerFrom(bytes, end));
  const torn = end < bytes.length && !fillerFrom(bytes, end)
    ? { offset: end, length: fillerStart(bytes, end) - end, bytes: bytes.subarray(end, fillerStart(bytes, end)).toString('hex') }
    : undefined;
  return { size: bytes.length, headerValid, records, lastSeq, end, damaged, offsets, tail, torn, clean };
}

/** Each tail record with its payload, read from the end backwards as recovery reads them. */
async function listed(tail: TailRecords) {
  const out = [];
  for (let i = tail.length - 1; i >= 0; i--) out.unshift({ seq: tail.seq(i), offset: tail.offset(i), end: tail.end(i), payload: (await tail.payload(i)).toString('hex') });
  return out;
}

const fromMemory = (bytes: Buffer) => async (start: number, length: number) => bytes.subarray(start, start + length);

/** scanTail's findings in wholeRead's terms, payloads read back through TailRecords. */
async function windowed(bytes: Buffer, firstSeq: number, payloadBytesMax: number, windowBytes: number) {
  const scan = await scanTail(memoryHandle(bytes), firstSeq, payloadBytesMax, windowBytes);
  const tail = await listed(new TailRecords(scan.tail, 'memory', fromMemory(bytes), payloadBytesMax, windowBytes));
  const torn = scan.torn && { ...scan.torn, bytes: scan.torn.bytes.toString('hex') };
  return { ...scan, offsets: Array.from(scan.offsets), tail, torn, clean: scan.headerValid && !scan.damaged };
}

/** A segment of (the first `count` of) seven records of 0 to 90 bytes, then `fillerLength` bytes of preallocated space. */
function smallSegment(fillerLength: number, count = 7): Buffer {
  const body = Buffer.concat([encodeSegmentHeader(storeId, 11), ...[40, 0, 90, 7, 33, 61, 12].slice(0, count).map((n, i) => encodeRecord(11 + i, Buffer.alloc(n, 0x41 + i)))]);
  return Buffer.concat([body, fillerBytes(body.length, fillerLength)]);
}

/** The segment ended at every offset: cut there, zeros from there, filler from there, one byte flipped there. */
function* everyEnd(whole: Buffer): Generator<[string, Buffer]> {
  for (let at = 0; at <= whole.length; at++) {
    yield [`cut at ${at}`, whole.subarray(0, at)];
    if (at === whole.length) break;
    yield [`zeros from ${at}`, Buffer.concat([whole.subarray(0, at), Buffer.alloc(whole.length - at)])];
    yield [`filler from ${at}`, Buffer.concat([whole.subarray(0, at), fillerBytes(at, whole.length - at)])];
    const flipped = Buffer.from(whole);
    flipped[at] ^= 0x10;
    yield [`byte ${at} flipped`, flipped];
  }
}

describe('scanTail', () => {
  it('finds what a whole read finds, for any window (generated segments)', async () => {
    await fc.assert(fc.asyncProperty(segments, fc.integer({ min: 24, max: 2048 }), fc.constantFrom(64, 400, 1024), async (bytes, windowBytes, payloadBytesMax) => {
      expect(await windowed(bytes, 1, payloadBytesMax, windowBytes)).toEqual(wholeRead(bytes, 1, payloadBytesMax));
    }), { numRuns: 300 });
  });

  it('finds what a whole read finds at every torn, zeroed, unwritten or flipped end of a small segment', async () => {
    for (const fillerLength of [0, 150]) {
      for (const [name, bytes] of everyEnd(smallSegment(fillerLength))) {
        const whole = wholeRead(bytes, 11, 64);
        for (const windowBytes of [24, 61, 4096]) expect(await windowed(bytes, 11, 64, windowBytes), `${name}, window ${windowBytes}`).toEqual(whole);
      }
    }
  });

  it('reads through its window: the memory it touches does not grow with the segment', async () => {
    const records = Array.from({ length: 3000 }, (_, i) => encodeRecord(i + 1, Buffer.alloc(300, i)));
    const body = Buffer.concat([encodeSegmentHeader(storeId, 1), ...records]);
    const bytes = Buffer.concat([body, fillerBytes(body.length, 100_000)]);
    const reads: number[] = [];
    const scan = await scanTail(memoryHandle(bytes, reads), 1, 1024, 8192);
    expect(scan).toMatchObject({ lastSeq: 3000, end: body.length, damaged: false, records: 3000 });
    expect(Math.max(...reads)).toBeLessThanOrEqual(8192);
    expect(reads.reduce((a, b) => a + b, 0)).toBeLessThan(1.1 * bytes.length);
  });
});

describe('TailRecords', () => {
  it('reads the first payload asked for alone, then the ones before it in pieces of at most its bound', async () => {
    const bytes = smallSegment(0);
    const scan = await scanTail(memoryHandle(bytes), 11, 1024, 4096);
    const reads: [number, number][] = [];
    const tail = new TailRecords(scan.tail, 'memory', async (start, length) => { reads.push([start, length]); return bytes.subarray(start, start + length); }, 1024, 150);
    expect((await tail.payload(6)).toString()).toBe('G'.repeat(12));
    expect(reads).toEqual([[tail.offset(6), tail.end(6) - tail.offset(6)]]); // the first one alone: an open decodes only the last
    expect((await tail.payload(5)).toString()).toBe('F'.repeat(61));
    expect(reads[1]).toEqual([tail.offset(4), tail.end(5) - tail.offset(4)]); // with record 4: record 3 too would pass 150 bytes
    expect((await tail.payload(4)).toString()).toBe('E'.repeat(33)); // read with record 5
    expect((await tail.payload(0)).toString()).toBe('A'.repeat(40));
    expect(reads.every(([, length]) => length <= 150)).toBe(true);
    expect(reads).toHaveLength(3);
    expect([tail.indexAbove(13), tail.indexAbove(13, 5), tail.indexAbove(17)]).toEqual([3, 5, -1]);
  });

  it('refuses a record that no longer reads back as the scan found it (CORRUPT), naming the segment', async () => {
    const bytes = smallSegment(0);
    const scan = await scanTail(memoryHandle(bytes), 11, 1024, 4096);
    const changed = Buffer.from(bytes);
    changed[scan.tail.offset(6) + 30] ^= 1;
    const tail = new TailRecords(scan.tail, '/store/journal/x.jnl', fromMemory(changed), 1024, 4096);
    await expect(tail.payload(6)).rejects.toMatchObject({ code: 'CORRUPT', path: '/store/journal/x.jnl', message: expect.stringContaining('record 17 at offset') });
    const short = new TailRecords(scan.tail, 'memory', async (start, length) => bytes.subarray(start, start + length - 1), 1024, 4096);
    await expect(short.payload(6)).rejects.toMatchObject({ code: 'CORRUPT' });
  });
});

describe('Journal.findTail', () => {
  it('finds what a whole read found at every torn end of a small segment on disk: end, torn bytes, emptiness, a clean tail, the tail records', async () => {
    const root = tmpDir('tail-scan');
    let cases = 0;
    const window = limits.journalTailWindowBytes;
    limits.journalTailWindowBytes = 64; // the window's edges fall inside records
    try {
      // torn writes (a crash's) only: zeros and flips at every offset are scanTail's test above
      for (const [name, bytes] of everyEnd(smallSegment(60, 4))) {
        if (!name.startsWith('cut') && !name.startsWith('filler')) continue;
        // a directory each: ext4 flushes a file written over one truncated to 0 on close (~5 ms each)
        const dir = join(root, String(cases++));
        mkdirSync(dir);
        writeFileSync(join(dir, segmentFileName(11)), bytes);
        const whole = wholeRead(bytes, 11, 4096);
        const journal = await Journal.open(nodeFileSystem, dir, storeId, { segmentBytesMax: 1 << 20, recordBytesMax: 4096, checkMounted: async () => undefined });
        const found = await journal.findTail();
        const clean = journal.nothingAfter(found.lastSeq);
        const tail = await listed(journal.takeTailRecords());
        const empty = !whole.headerValid && whole.records === 0; // said before any torn bytes
        // one comparison a case: a few thousand expect() calls were most of this test's time
        expect({
          lastSeq: found.lastSeq, clean, empty: found.empty, torn: found.tail && { ...found.tail, bytes: found.tail.bytes.toString('hex') },
          tail,
        }, name).toEqual({
          lastSeq: whole.lastSeq, clean: whole.clean, empty: empty ? { segment: segmentFileName(11), firstSeq: 11, length: bytes.length } : undefined,
          torn: empty ? undefined : whole.torn && { segment: segmentFileName(11), ...whole.torn }, tail: whole.tail,
        });
        await journal.close();
      }
    } finally {
      limits.journalTailWindowBytes = window;
    }
  });
});
