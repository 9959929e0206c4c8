// Parsing one journal segment (src/journal/segment-reader.ts): every valid record in order with its
// bounds, every damaged range between them, and a resync on the next frame whose header and
// payload checksums both hold.
import { describe, expect, it } from 'vitest';
import { FILLER_PATTERN, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, fillerBytes } from '../../src/journal/journal-format.js';
import { parseSegment, readSegmentBytes, segmentHeader } from '../../src/journal/segment-reader.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.alloc(16, 7);

function segment(...parts: Buffer[]): Buffer {
  return Buffer.concat([encodeSegmentHeader(storeId, 1), ...parts]);
}

const rec = (seq: number, text = `payload ${seq}`) => encodeRecord(seq, Buffer.from(text));

function summary(bytes: Buffer, payloadBytesMax = 1024) {
  return [...parseSegment(bytes, payloadBytesMax)].map((item) =>
    item.kind === 'record' ? `r${item.seq}@${item.offset}-${item.end}:${item.payload.toString()}` : `damage@${item.offset}+${item.length}`);
}

describe('parseSegment', () => {
  it('yields consecutive records with their offsets and ends', () => {
    const records = [rec(1), rec(2), rec(3)];
    const bytes = segment(...records);
    expect(segmentHeader(bytes)).toEqual({ storeId, firstSeq: 1 });
    let at = SEGMENT_HEADER_BYTES;
    const expected = records.map((r, i) => {
      const line = `r${i + 1}@${at}-${at + r.length}:payload ${i + 1}`;
      at += r.length;
      return line;
    });
    expect(summary(bytes)).toEqual(expected);
  });

  it('a torn last record is one damaged range up to the end', () => {
    const whole = segment(rec(1), rec(2));
    const torn = Buffer.concat([whole, rec(3).subarray(0, RECORD_HEADER_BYTES + 2)]);
    expect(summary(torn).slice(2)).toEqual([`damage@${whole.length}+${RECORD_HEADER_BYTES + 2}`]);
    const zeros = Buffer.concat([whole, Buffer.alloc(100)]);
    expect(summary(zeros).slice(2)).toEqual([`damage@${whole.length}+100`]);
  });

  it('filler to the end is preallocated space; zeros, garbage or a torn record before the filler are damage', () => {
    const whole = segment(rec(1), rec(2));
    const fill = (from: number, n: number) => fillerBytes(from, n);
    expect(summary(Buffer.concat([whole, fill(whole.length, 5000)])).slice(2)).toEqual([]);
    // filler out of phase (copied to another offset) is not filler
    expect(summary(Buffer.concat([whole, fill(whole.length + 1, 100)])).slice(2)).toEqual([`damage@${whole.length}+100`]);
    const zerosThenFiller = Buffer.concat([whole, Buffer.alloc(100), fill(whole.length + 100, 400)]);
    expect(summary(zerosThenFiller).slice(2)).toEqual([`damage@${whole.length}+500`]);
    const tornLength = RECORD_HEADER_BYTES + 2;
    const tornThenFiller = Buffer.concat([whole, rec(3).subarray(0, tornLength), fill(whole.length + tornLength, 400)]);
    expect(summary(tornThenFiller).slice(2)).toEqual([`damage@${whole.length}+${tornLength + 400}`]);
    const fillerThenZeros = Buffer.concat([whole, fill(whole.length, 400), Buffer.alloc(64)]);
    expect(summary(fillerThenZeros).slice(2)).toEqual([`damage@${whole.length}+464`]);
    expect(FILLER_PATTERN.includes(0)).toBe(false);
  });

  it('resyncs after a damaged frame: a bad payload CRC, a bad header CRC, garbage between records', () => {
    const one = rec(1);
    const two = rec(2);
    const three = rec(3);
    const start2 = SEGMENT_HEADER_BYTES + one.length;
    for (const damageAt of [RECORD_HEADER_BYTES + 1, 10, 0]) { // payload byte, header CRC'd field, magic
      const bad = Buffer.from(two);
      bad[damageAt] ^= 0x20;
      const items = summary(segment(one, bad, three));
      expect(items, `damage at ${damageAt}`).toEqual([
        `r1@${SEGMENT_HEADER_BYTES}-${start2}:payload 1`,
        `damage@${start2}+${two.length}`,
        `r3@${start2 + two.length}-${start2 + two.length + three.length}:payload 3`,
      ]);
    }
    const garbage = Buffer.from('MSJR looks like a frame but is not one');
    expect(summary(segment(one, garbage, two))).toEqual([
      `r1@${SEGMENT_HEADER_BYTES}-${start2}:payload 1`,
      `damage@${start2}+${garbage.length}`,
      `r2@${start2 + garbage.length}-${start2 + garbage.length + two.length}:payload 2`,
    ]);
  });

  it('a frame claiming a payload above the bound is damage, not a huge read', () => {
    const big = rec(2, 'x'.repeat(200));
    const items = summary(segment(rec(1), big, rec(3)), 100);
    expect(items[1]).toMatch(/^damage@/);
    expect(items[2]).toMatch(/^r3@/);
  });

  it('a segment with a damaged header still yields its records (the header is checked by its reader)', () => {
    const bytes = segment(rec(1), rec(2));
    bytes[0] ^= 0xff;
    expect(segmentHeader(bytes)).toBeUndefined();
    expect(summary(bytes).map((s) => s.split('@')[0])).toEqual(['r1', 'r2']);
  });
});

describe('readSegmentBytes: one buffer reused across segments', () => {
  it('a larger segment gets a fresh buffer of its own; a smaller one after it is read into that buffer, exactly its bytes', async () => {
    const dir = tmpDir('segbuf');
    const small = segment(rec(1), rec(2));
    const large = segment(...Array.from({ length: 40 }, (_, i) => rec(3 + i, `a longer payload ${i} `.repeat(8))));
    const smaller = segment(rec(43, 'z'));
    const paths = [small, large, smaller].map((bytes, i) => {
      const path = join(dir, `${i}.jnl`);
      writeFileSync(path, bytes);
      return path;
    });
    const read = async (path: string, into?: Buffer) => {
      const handle = await nodeFileSystem.open(path, 'read');
      try {
        return await readSegmentBytes(handle, into);
      } finally {
        await handle.close();
      }
    };
    const a = await read(paths[0]);
    expect(a.equals(small)).toBe(true);
    const aCopy = Buffer.from(a);
    const b = await read(paths[1], Buffer.from(a.buffer));
    expect(b.buffer).not.toBe(a.buffer); // too small to reuse: a fresh allocation, and `a` is untouched
    expect(b.equals(large)).toBe(true);
    expect(a.equals(aCopy)).toBe(true);
    expect(b.byteOffset).toBe(0); // never a slice of node's shared pool (the reader keeps it)
    const c = await read(paths[2], Buffer.from(b.buffer));
    expect(c.buffer).toBe(b.buffer); // read into the larger buffer
    expect(c.length).toBe(smaller.length); // no stale tail of the larger segment
    expect(c.equals(smaller)).toBe(true);
    expect(summary(c).map((s) => s.split('@')[0])).toEqual(['r43']);
  });
});
