// scanSegmentFile (src/journal/segment-reader.ts) reads a segment in bounded windows; it must yield
// exactly what parseSegment yields from the whole bytes, whatever the window size: records across
// window edges, damage and resync, a magic split by an edge, filler to the end, a record bigger
// than a window. Checked on generated segments (fast-check) and on the edge cases by hand.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { FileHandle } from '../../src/fs/filesystem.js';
import { RECORD_MAGIC, SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, fillerBytes } from '../../src/journal/journal-format.js';
import { parseSegment, scanSegmentFile, type SegmentItem } from '../../src/journal/segment-reader.js';

/** A read-only handle over bytes in memory, noting each read's length. */
function memoryHandle(bytes: Buffer, reads: number[] = []): FileHandle {
  const refuse = async (): Promise<never> => { throw new Error('read-only'); };
  return {
    path: 'memory',
    read: async (buffer, offset, length, position) => {
      reads.push(length);
      return bytes.copy(buffer, offset, position, Math.min(bytes.length, position + length));
    },
    size: async () => bytes.length,
    write: refuse, writev: refuse, writevDurable: refuse, sync: refuse, truncate: refuse,
    stat: refuse, close: async () => undefined,
  };
}

const show = (item: SegmentItem) => (item.kind === 'record' ? `r${item.seq}@${item.offset}-${item.end}:${item.payload.toString('hex')}` : `damage@${item.offset}+${item.length}`);

async function scanned(bytes: Buffer, chunkBytes: number, payloadBytesMax: number, reads?: number[]): Promise<string[]> {
  const out: string[] = [];
  for await (const item of scanSegmentFile(memoryHandle(bytes, reads), payloadBytesMax, chunkBytes)) out.push(show(item));
  return out;
}

const parsed = (bytes: Buffer, payloadBytesMax: number) => [...parseSegment(bytes, payloadBytesMax)].map(show);

const part = fc.oneof(
  fc.tuple(fc.nat({ max: 1000 }), fc.uint8Array({ maxLength: 600 })).map(([seq, p]) => ({ kind: 'record' as const, bytes: encodeRecord(seq, Buffer.from(p)) })),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => ({ kind: 'garbage' as const, bytes: Buffer.from(b) })),
  fc.nat({ max: 100 }).map((n) => ({ kind: 'zeros' as const, bytes: Buffer.alloc(n + 1) })),
  fc.constant({ kind: 'magic' as const, bytes: RECORD_MAGIC }),
  fc.tuple(fc.nat({ max: 300 }), fc.nat({ max: 40 })).map(([seq, cut]) => ({ kind: 'torn' as const, bytes: encodeRecord(seq, Buffer.alloc(50, seq)).subarray(0, cut) })),
);

/** A segment header, the parts, maybe filler to the end, then a few flipped bytes. */
const segments = fc.record({
  parts: fc.array(part, { maxLength: 12 }),
  filler: fc.nat({ max: 500 }),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
}).map(({ parts, filler, flips }) => {
  const body = Buffer.concat([encodeSegmentHeader(Buffer.alloc(16, 3), 1), ...parts.map((p) => p.bytes)]);
  const bytes = Buffer.concat([body, fillerBytes(body.length, filler)]);
  for (const [at, mask] of flips) if (bytes.length > SEGMENT_HEADER_BYTES) bytes[SEGMENT_HEADER_BYTES + (at % (bytes.length - SEGMENT_HEADER_BYTES))] ^= mask;
  return bytes;
});

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
