import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { crc32Range } from '../../src/hash/crc32-small.js';

describe('crc32Range', () => {
  it('is zlib crc32 of the same range, for every length around the table/zlib switch and at any offset', () => {
    const b = randomBytes(2048);
    for (let length = 0; length <= 600; length++) {
      const start = (length * 37) % 1000;
      expect(crc32Range(b, start, start + length), `length ${length}`).toBe(crc32(b.subarray(start, start + length)));
    }
  });

  it('known value: the check value of CRC-32 ("123456789" -> cbf43926), and a flipped bit changes it', () => {
    const b = Buffer.from('xx123456789yy');
    expect(crc32Range(b, 2, 11)).toBe(0xcbf43926);
    b[5] ^= 1;
    expect(crc32Range(b, 2, 11)).not.toBe(0xcbf43926);
  });

  it('continues from a seed as zlib does: the CRC of a key followed by a value (index format 2), either side of the switch', () => {
    const key = randomBytes(40);
    for (const length of [0, 1, 5, 100, 256, 257, 600]) {
      const value = randomBytes(length);
      const seeded = crc32Range(value, 0, length, crc32Range(key, 0, key.length));
      // (zlib's crc32 of nothing is 0 whatever its seed: no index value is empty)
      if (length > 0) expect(seeded, `length ${length}`).toBe(crc32(value, crc32(key)));
      expect(seeded, `length ${length}`).toBe(crc32(Buffer.concat([key, value])));
    }
    expect(crc32Range(Buffer.from('6789'), 0, 4, crc32(Buffer.from('12345')))).toBe(0xcbf43926);
  });
});
