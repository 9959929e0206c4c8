// The pack byte layout (src/blob/pack-format.ts, docs/FORMAT.md): headers round-trip, and a single
// flipped byte anywhere in a header makes it undecodable rather than wrong.
import { describe, expect, it } from 'vitest';
import {
  PACK_HEADER_BYTES, RECORD_HEADER_BYTES, decodePackHeader, decodeRecordHeader, encodePackHeader, encodeRecordHeader,
  packFileName, parsePackFileName, recordHeaderFault,
} from '../../src/blob/pack-format.js';
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
