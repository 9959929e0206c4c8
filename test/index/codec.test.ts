import { describe, expect, it } from 'vitest';
import { decodeCbor, decodeValue, enableNativeCborStrings, encodeCbor, encodeValue } from '../../src/index/codec.js';

// The CRC in front of every index value is on disk: these frames were taken from the codec as it
// was before it used node:zlib's crc32 alone (a table-driven loop below 256 bytes), so a change of
// checksum or framing fails here instead of turning every existing index into CORRUPT.
const KNOWN: [string, unknown, string, number][] = [
  ['0 (a change record)', 0, 'd202ef8d', 5],
  ['1 (a deleting mark)', 1, 'a505df1b', 5],
  ['a small integer', 7, '4c667a2e', 5],
  ['a string', 'INBOX', 'a69cf9de', 10],
  ['a message record', {
    h: Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex'),
    f: ['\\Seen'], d: 1700000000, m: 42,
  }, '7278b54b', 61],
  ['252 bytes of body (was the table-driven path)', 'x'.repeat(250), '5400d6fc', 256],
  ['303 bytes of body (was zlib already)', 'y'.repeat(300), '7a19ea21', 307],
];

describe('index value codec', () => {
  for (const [name, value, crc, length] of KNOWN) {
    it(`frames ${name} with the same CRC-32 as before`, () => {
      const framed = encodeValue(value);
      expect(framed.length).toBe(length);
      expect(framed.subarray(0, 4).toString('hex')).toBe(crc);
      expect(decodeValue(framed, Buffer.from('k'))).toEqual(value);
    });
  }

  it('refuses a value whose body no longer matches its CRC, naming the key', () => {
    const framed = Buffer.from(encodeValue('x'.repeat(250)));
    framed[100] ^= 0x01;
    let caught: unknown;
    try { decodeValue(framed, Buffer.from('4d01', 'hex')); } catch (error) { caught = error; }
    expect(caught).toMatchObject({ code: 'CORRUPT', path: '4d01' });
  });

  it('refuses a value too short to hold a CRC', () => {
    expect(() => decodeValue(Buffer.of(1, 2, 3), Buffer.from('k'))).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });
});

describe('enableNativeCborStrings', () => {
  it('turns on cbor-extract for the shared decoder, and values decode the same', async () => {
    const value = { name: ['user', 'älice', 'x'.repeat(300)], flags: ['\\Seen', '$Label1'], n: 42, h: Buffer.alloc(32, 7) };
    const bytes = encodeCbor(value);
    const plain = decodeCbor(bytes);
    await enableNativeCborStrings();
    const decoder = await import('cbor-x/encode');
    expect(decoder.isNativeAccelerationEnabled).toBe(true);
    expect(decodeCbor(bytes)).toEqual(plain);
    expect(plain).toEqual(value);
  });
});
