// messageKeyUid reads the uid of a message key in place; it must agree with decodeMessageKey.
import { describe, expect, it } from 'vitest';
import { decodeMessageKey, keys, messageKeyUid } from '../../src/keys/index-keys.js';

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
