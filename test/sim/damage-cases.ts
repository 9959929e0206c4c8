// The damage explorer's cases: for one file of a store, every single-bit flip, every 512-byte block
// zeroed, every truncation at a record boundary ±1 (boundaries from the pack and journal formats),
// and the file deleted. A case is applied to the pristine bytes; cases that change nothing are left out.
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES as PACK_RECORD_HEADER_BYTES, decodeRecordHeader, PACK_RECORD_MAGIC } from '../../src/blob/pack-format.js';
import { SEGMENT_HEADER_BYTES, RECORD_HEADER_BYTES as JOURNAL_RECORD_HEADER_BYTES } from '../../src/journal/journal-format.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { limits } from '../../src/limits.js';

export type DamageKind = 'flip' | 'zero' | 'truncate' | 'delete';

export interface DamageCase {
  shape: string;
  path: string;
  kind: DamageKind;
  /** flip: the byte (its bit `at % 8`); zero: the block's first byte; truncate: the new length. */
  at: number;
}

export const BLOCK_BYTES = 512;

/** The damaged bytes of the file (undefined: the file is gone). */
export function applyDamage(pristine: Buffer, c: DamageCase): Buffer | undefined {
  switch (c.kind) {
    case 'delete': return undefined;
    case 'truncate': return Buffer.from(pristine.subarray(0, c.at));
    case 'flip': {
      const out = Buffer.from(pristine);
      out[c.at] ^= 1 << (c.at % 8);
      return out;
    }
    case 'zero': {
      const out = Buffer.from(pristine);
      out.fill(0, c.at, Math.min(c.at + BLOCK_BYTES, out.length));
      return out;
    }
  }
}

/** The byte range a case changes or removes, [from, to) of the pristine file. */
export function damagedRange(pristine: Buffer, c: DamageCase): [number, number] {
  switch (c.kind) {
    case 'delete': return [0, Math.max(pristine.length, 1)];
    case 'truncate': return [c.at, pristine.length];
    case 'flip': return [c.at, c.at + 1];
    case 'zero': return [c.at, Math.min(c.at + BLOCK_BYTES, pristine.length)];
  }
}

/** Record boundaries of a pack: its header's end, each record's start and body start, the end. */
export function packBoundaries(bytes: Buffer): number[] {
  const out = [0, PACK_HEADER_BYTES, bytes.length];
  let p = PACK_HEADER_BYTES;
  while (p < bytes.length) {
    const header = decodeRecordHeader(bytes.subarray(p, p + PACK_RECORD_HEADER_BYTES));
    if (header && p + PACK_RECORD_HEADER_BYTES + header.bodyLength <= bytes.length) {
      out.push(p, p + PACK_RECORD_HEADER_BYTES);
      // a torn record's claimed length may run over later records: look for them inside it too
      const next = bytes.indexOf(PACK_RECORD_MAGIC, p + PACK_RECORD_HEADER_BYTES);
      p = next !== -1 && next < p + PACK_RECORD_HEADER_BYTES + header.bodyLength ? next : p + PACK_RECORD_HEADER_BYTES + header.bodyLength;
      continue;
    }
    if (header) out.push(p, p + PACK_RECORD_HEADER_BYTES); // torn: its body runs past the end
    const next = bytes.indexOf(PACK_RECORD_MAGIC, p + 1);
    if (next === -1) break;
    p = next;
  }
  return out;
}

/** Record boundaries of a journal segment: its header's end, each record's start and payload start, the end. */
export function segmentBoundaries(bytes: Buffer): number[] {
  const out = [0, SEGMENT_HEADER_BYTES, bytes.length];
  for (const item of parseSegment(bytes, limits.journalRecordBytesMax)) {
    if (item.kind === 'record') out.push(item.offset, item.offset + JOURNAL_RECORD_HEADER_BYTES);
    else out.push(item.offset);
  }
  return out;
}

/** Every case for one file, in a stable order. */
export function casesForFile(shape: string, path: string, bytes: Buffer): DamageCase[] {
  const cases: DamageCase[] = [{ shape, path, kind: 'delete', at: 0 }];
  const boundaries = path.endsWith('.pack') ? packBoundaries(bytes) : path.endsWith('.jnl') ? segmentBoundaries(bytes) : [0, bytes.length];
  const cuts = new Set<number>();
  for (const b of boundaries) for (const d of [-1, 0, 1]) if (b + d >= 0 && b + d < bytes.length) cuts.add(b + d);
  for (const at of [...cuts].sort((a, b) => a - b)) cases.push({ shape, path, kind: 'truncate', at });
  // A journal segment runs on in filler the journal preallocated (docs/FORMAT.md, "Journal"): its
  // blocks are zeroed and its bytes flipped up to one block past its last record (every filler byte
  // is alike; damage there is cut like a torn tail), not through a megabyte of filler.
  const end = path.endsWith('.jnl') ? Math.min(bytes.length, segmentRecordsEnd(bytes) + BLOCK_BYTES) : bytes.length;
  for (let at = 0; at < end; at += BLOCK_BYTES) {
    if (bytes.subarray(at, at + BLOCK_BYTES).some((b) => b !== 0)) cases.push({ shape, path, kind: 'zero', at });
  }
  for (let at = 0; at < end; at++) cases.push({ shape, path, kind: 'flip', at });
  return cases;
}

/** Where a segment's valid records end (its header's end when it holds none): the filler starts there. */
export function segmentRecordsEnd(bytes: Buffer): number {
  let end = Math.min(bytes.length, SEGMENT_HEADER_BYTES);
  for (const item of parseSegment(bytes, limits.journalRecordBytesMax)) if (item.kind === 'record') end = item.end;
  return end;
}

export function describeCase(c: DamageCase): string {
  return `${c.shape} ${c.path} ${c.kind}${c.kind === 'delete' ? '' : ` @${c.at}`}`;
}
