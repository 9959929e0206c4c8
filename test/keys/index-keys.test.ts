// messageKeyUid reads the uid of a message key in place; it must agree with decodeMessageKey.
// decodeChangeKey reads what keys.change wrote, modseqs above 32 bits too.
import { describe, expect, it } from 'vitest';
import { decodeChangeKey, decodeMessageKey, keys, messageKeyUid } from '../../src/keys/index-keys.js';

describe('messageKeyUid', () => {
  it('is the uid decodeMessageKey finds, up to the largest uid', () => {
    const id = Buffer.alloc(16, 0xab);
    for (const uid of [1, 255, 256, 65_536, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]) {
      const key = keys.message(id, uid);
      expect(messageKeyUid(key)).toBe(uid);
      expect(messageKeyUid(new Uint8Array(key))).toBe(decodeMessageKey(key).uid);
    }
  });
});

describe('decodeChangeKey', () => {
  it('gives back the id, modseq and uid keys.change wrote, up to the largest safe modseq', () => {
    const id = Buffer.alloc(16, 0xcd);
    for (const modseq of [0, 1, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER]) {
      const decoded = decodeChangeKey(keys.change(id, modseq, 0xffff_fffe));
      expect(decoded.modseq).toBe(modseq);
      expect(decoded.uid).toBe(0xffff_fffe);
      expect(decoded.id.equals(id)).toBe(true);
    }
  });

  it('reads a modseq above 2^53 (a damaged key) as the nearest number, as a BigInt would be read', () => {
    const key = keys.change(Buffer.alloc(16, 1), 0, 7);
    key.writeBigUInt64BE(2n ** 64n - 1n, 17);
    expect(decodeChangeKey(key).modseq).toBe(Number(2n ** 64n - 1n));
    key.writeBigUInt64BE(2n ** 53n + 1n, 17);
    expect(decodeChangeKey(key).modseq).toBe(Number(2n ** 53n + 1n));
  });
});
