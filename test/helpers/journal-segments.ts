// Journal segments for the readers' tests (test/journal/segment-scan.test.ts, tail-scan.test.ts):
// a read-only handle over bytes in memory, and generated segments with records, garbage, zeros,
// torn records, a stray magic, filler to the end and flipped bytes.
import fc from 'fast-check';
import type { FileHandle } from '../../src/fs/filesystem.js';
import { RECORD_MAGIC, SEGMENT_HEADER_BYTES, encodeRecord, encodeSegmentHeader, fillerBytes } from '../../src/journal/journal-format.js';

/** A read-only handle over bytes in memory, noting each read's length. */
export function memoryHandle(bytes: Buffer, reads: number[] = []): FileHandle {
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

const part = fc.oneof(
  fc.tuple(fc.nat({ max: 1000 }), fc.uint8Array({ maxLength: 600 })).map(([seq, p]) => ({ kind: 'record' as const, bytes: encodeRecord(seq, Buffer.from(p)) })),
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => ({ kind: 'garbage' as const, bytes: Buffer.from(b) })),
  fc.nat({ max: 100 }).map((n) => ({ kind: 'zeros' as const, bytes: Buffer.alloc(n + 1) })),
  fc.constant({ kind: 'magic' as const, bytes: RECORD_MAGIC }),
  fc.tuple(fc.nat({ max: 300 }), fc.nat({ max: 40 })).map(([seq, cut]) => ({ kind: 'torn' as const, bytes: encodeRecord(seq, Buffer.alloc(50, seq)).subarray(0, cut) })),
);

/** A segment header, the parts, maybe filler to the end, then a few flipped bytes. */
export const segments = fc.record({
  parts: fc.array(part, { maxLength: 12 }),
  filler: fc.nat({ max: 500 }),
  flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
}).map(({ parts, filler, flips }) => {
  const body = Buffer.concat([encodeSegmentHeader(Buffer.alloc(16, 3), 1), ...parts.map((p) => p.bytes)]);
  const bytes = Buffer.concat([body, fillerBytes(body.length, filler)]);
  for (const [at, mask] of flips) if (bytes.length > SEGMENT_HEADER_BYTES) bytes[SEGMENT_HEADER_BYTES + (at % (bytes.length - SEGMENT_HEADER_BYTES))] ^= mask;
  return bytes;
});
