// The pack byte layout (src/blob/pack-format.ts, docs/FORMAT.md): headers round-trip, and a single
// flipped byte anywhere in a header makes it undecodable rather than wrong.
import { describe, expect, it } from 'vitest';
import {
  PACK_HEADER_BYTES, RECORD_HEADER_BYTES, decodePackHeader, decodeRecordHeader, encodePackHeader, encodeRecordHeader,
  packFileName, parsePackFileName, recordHeaderFault, wholeRecordRanges,
} from '../../src/blob/pack-format.js';
import { crc32 } from 'node:zlib';
import { hashBytes } from '../../src/hash/blake3.js';

const storeId = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

describe('pack format', () => {
  it('pack file names are eight digits and parse back; anything else is not a pack', () => {
    expect(packFileName(1)).toBe('00000001.pack');
    expect(parsePackFileName(packFileName(12345678))).toBe(12345678);
    for (const name of ['1.pack', '00000001.pack.tmp', '0000000a.pack', '00000001.jnl', '000000001.pack']) {
      expect(parsePackFileName(name), name).toBeUndefined();
    }
  });

  it('a pack header round-trips and is refused after any single-byte flip or when short', () => {
    const header = encodePackHeader(storeId, 42);
    expect(header.length).toBe(PACK_HEADER_BYTES);
    expect(decodePackHeader(header)).toEqual({ storeId, packNumber: 42 });
    for (let i = 0; i < PACK_HEADER_BYTES; i++) {
      const bad = Buffer.from(header);
      bad[i] ^= 0x01;
      expect(decodePackHeader(bad), `byte ${i}`).toBeUndefined();
    }
    expect(decodePackHeader(header.subarray(0, PACK_HEADER_BYTES - 1))).toBeUndefined();
  });

  it('a record header names the hash and body length, and is refused after any single-byte flip', () => {
    const body = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    const hash = hashBytes(body);
    const header = encodeRecordHeader(hash, body.length);
    expect(header.length).toBe(RECORD_HEADER_BYTES);
    expect(decodeRecordHeader(header)).toEqual({ hash, bodyLength: body.length });
    for (let i = 0; i < RECORD_HEADER_BYTES; i++) {
      const bad = Buffer.from(header);
      bad[i] ^= 0x80;
      expect(decodeRecordHeader(bad), `byte ${i}`).toBeUndefined();
    }
    expect(decodeRecordHeader(encodeRecordHeader(hash, 2 ** 40))).toEqual({ hash, bodyLength: 2 ** 40 });
  });

  it('recordHeaderFault agrees with decodeRecordHeader at any offset of a bigger buffer, and checks the length', () => {
    const length = 2 ** 32 + 5; // both halves of the 64-bit length are read
    const header = encodeRecordHeader(hashBytes(Buffer.from('x')), length);
    const buffer = Buffer.concat([Buffer.alloc(7, 0xaa), header, Buffer.alloc(3)]);
    expect(recordHeaderFault(buffer, 7, length)).toBeUndefined();
    expect(recordHeaderFault(buffer, 7, 5)).toBe(`record length ${length} differs from the index's 5`);
    expect(recordHeaderFault(buffer, 6, length)).toBe('record header is damaged');
    expect(recordHeaderFault(buffer.subarray(0, 7 + RECORD_HEADER_BYTES - 1), 7, length)).toBe('record header is damaged');
    for (let i = 0; i < RECORD_HEADER_BYTES; i++) {
      const damaged = Buffer.from(buffer);
      damaged[7 + i] ^= 0x10;
      expect(recordHeaderFault(damaged, 7, length), `byte ${i}`).toBe(decodeRecordHeader(damaged.subarray(7, 7 + RECORD_HEADER_BYTES)) ? undefined : 'record header is damaged');
    }
  });
});

describe('wholeRecordRanges (the scan parser the scrub hash worker runs too)', () => {
  const record = (body: string) => {
    const bytes = Buffer.from(body);
    return Buffer.concat([encodeRecordHeader(hashBytes(bytes), bytes.length), bytes]);
  };
  it('yields whole records only: one cut by the end, or after a damaged header, ends the run', () => {
    const a = record('first body'), b = record('second, a little longer'), c = record('third');
    const chunk = Buffer.concat([a, b, c]);
    const ranges: number[] = [];
    expect(wholeRecordRanges(chunk, chunk.length, crc32, ranges)).toBe(chunk.length);
    expect(ranges).toEqual([48, 10, a.length + 48, 23, a.length + b.length + 48, 5]);
    const cut: number[] = [];
    expect(wholeRecordRanges(chunk, chunk.length - 1, crc32, cut)).toBe(a.length + b.length);
    expect(cut.length).toBe(4);
    const damaged = Buffer.from(chunk);
    damaged[a.length + 40] ^= 1; // b's length, covered by its header CRC
    const stopped: number[] = [];
    expect(wholeRecordRanges(damaged, damaged.length, crc32, stopped)).toBe(a.length);
    expect(stopped).toEqual([48, 10]);
  });
  it('its source text runs alone (the worker evaluates it with nothing else in scope)', () => {
    const alone = new Function('chunk', 'n', 'crc32', 'ranges', `return (${wholeRecordRanges.toString()})(chunk, n, crc32, ranges);`) as typeof wholeRecordRanges;
    const chunk = Buffer.concat([record('x'), record('yy')]);
    const ranges: number[] = [];
    expect(alone(chunk, chunk.length, crc32, ranges)).toBe(chunk.length);
    expect(ranges).toEqual([48, 1, 97, 2]);
  });
});
