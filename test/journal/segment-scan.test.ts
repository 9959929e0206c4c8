// scanSegmentFile (src/journal/segment-reader.ts) reads a segment in bounded windows; it must yield
// exactly what parseSegment yields from the whole bytes, whatever the window size: records across
// window edges, damage and resync, a magic split by an edge, filler to the end, a record bigger
// than a window. Checked on generated segments (fast-check) and on the edge cases by hand.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeRecord, encodeSegmentHeader } from '../../src/journal/journal-format.js';
import { parseSegment, scanSegmentFile, type SegmentItem } from '../../src/journal/segment-reader.js';
import { memoryHandle, segments } from '../helpers/journal-segments.js';

const show = (item: SegmentItem) => (item.kind === 'record' ? `r${item.seq}@${item.offset}-${item.end}:${item.payload.toString('hex')}` : `damage@${item.offset}+${item.length}`);

async function scanned(bytes: Buffer, chunkBytes: number, payloadBytesMax: number, reads?: number[]): Promise<string[]> {
  const out: string[] = [];
  for await (const item of scanSegmentFile(memoryHandle(bytes, reads), payloadBytesMax, chunkBytes)) out.push(show(item));
  return out;
}

const parsed = (bytes: Buffer, payloadBytesMax: number) => [...parseSegment(bytes, payloadBytesMax)].map(show);

describe('scanSegmentFile', () => {
  it('yields what parseSegment yields, for any window size (generated segments)', async () => {
    await fc.assert(fc.asyncProperty(segments, fc.integer({ min: 24, max: 2048 }), fc.constantFrom(64, 400, 1024), async (bytes, chunkBytes, payloadBytesMax) => {
      expect(await scanned(bytes, chunkBytes, payloadBytesMax)).toEqual(parsed(bytes, payloadBytesMax));
    }), { numRuns: 300 });
  });

  it('reads in windows: no read longer than the window except one for a record bigger than it', async () => {
    const big = encodeRecord(9, Buffer.alloc(5000, 9));
    const bytes = Buffer.concat([encodeSegmentHeader(Buffer.alloc(16, 3), 1), ...Array.from({ length: 40 }, (_, i) => encodeRecord(i + 1, Buffer.alloc(100, i))), big]);
    const reads: number[] = [];
    expect(await scanned(bytes, 512, 10_000, reads)).toEqual(parsed(bytes, 10_000));
    expect(reads.filter((n) => n > 512)).toEqual([5000]); // the big record's payload, once
    expect(reads.reduce((a, b) => a + b, 0)).toBeLessThan(2 * bytes.length); // windows overlap little
  });

  it('a reader that stops early has read only the windows it needed', async () => {
    const bytes = Buffer.concat([encodeSegmentHeader(Buffer.alloc(16, 3), 1), ...Array.from({ length: 200 }, (_, i) => encodeRecord(i + 1, Buffer.alloc(100, i)))]);
    const reads: number[] = [];
    for await (const item of scanSegmentFile(memoryHandle(bytes, reads), 1024, 1024)) if (item.kind === 'record' && item.seq === 3) break;
    expect(reads).toEqual([1024]);
  });

  it('refuses a window smaller than a record header (a bug in the caller)', async () => {
    await expect(scanned(Buffer.alloc(100), 8, 1024)).rejects.toMatchObject({ name: 'AssertionFailure' });
  });
});
