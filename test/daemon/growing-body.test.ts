// A big LMTP body is copied into one buffer as its pieces come (src/daemon/growing-body.ts): the
// bytes out are the pieces joined, whatever their sizes against the step it grows by.
import { describe, expect, it } from 'vitest';
import { GrowingBody } from '../../src/daemon/growing-body.js';
import { prng } from '../helpers/prng.js';

describe('GrowingBody', () => {
  it('gives the pieces joined, exactly as long as they are, up to its limit and not a byte past it', () => {
    const random = prng(51);
    const bytesMax = 300_000;
    const body = new GrowingBody(bytesMax, 64 * 1024);
    const pieces: Buffer[] = [];
    let length = 0;
    while (length < bytesMax) {
      const piece = Buffer.alloc(Math.min(bytesMax - length, 1 + Math.floor(random() * 70_000)));
      for (let i = 0; i < piece.length; i++) piece[i] = Math.floor(random() * 256);
      body.append(piece);
      pieces.push(piece);
      length += piece.length;
    }
    const bytes = body.bytes();
    expect(bytes.length).toBe(bytesMax);
    expect(bytes.equals(Buffer.concat(pieces))).toBe(true);
    expect(() => new GrowingBody(10, 4).append(Buffer.alloc(11))).toThrow(/past its limit of 10/);
  });
});
