// HashSlab (src/backup/backup.ts): a full backup keeps every message's hash until its snapshot is
// written; copied into shared buffers, the hashes no longer hold each index value's own buffer.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HashSlab } from '../../src/backup/backup.js';

describe('HashSlab', () => {
  it('copies each hash exactly into a few shared buffers, none of them the source, and a copy never changes after', () => {
    const slab = new HashSlab(1024); // 32 hashes a buffer
    const sources = Array.from({ length: 100 }, () => {
      const value = randomBytes(330); // an index value with the hash inside it
      return value.subarray(7, 39);
    });
    const copies = sources.map((h) => slab.copy(h));
    copies.forEach((c, i) => {
      expect(c.equals(sources[i]!)).toBe(true);
      expect(c.buffer).not.toBe(sources[i]!.buffer);
    });
    expect(new Set(copies.map((c) => c.buffer)).size).toBe(4); // 100 hashes in 4 buffers of 32
    const before = copies.map((c) => Buffer.from(c));
    for (const s of sources) s.fill(0); // the sources reused: the copies stand
    copies.forEach((c, i) => expect(c.equals(before[i]!)).toBe(true));
  });

  it('a value longer than a slab gets a buffer of its own, and the next copy a new slab', () => {
    const slab = new HashSlab(64);
    const big = randomBytes(100);
    const a = slab.copy(randomBytes(32));
    const b = slab.copy(big);
    const c = slab.copy(randomBytes(32));
    expect(b.equals(big)).toBe(true);
    expect(b.buffer).not.toBe(a.buffer);
    expect(c.buffer).not.toBe(b.buffer);
  });
});
