// Buffer's own encoders called directly (src/buffer-slices.ts) give what the documented calls give,
// on views at any offset; without them (a runtime that lacks them) the documented calls stand in.
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bufferSlices, hexOf, latin1Of, writeBase64url, type BufferSlices } from '../../src/buffer-slices.js';

function check(slices: BufferSlices): void {
  const backing = randomBytes(200);
  for (const [start, end] of [[0, 0], [0, 32], [7, 39], [150, 200]]) {
    const view = backing.subarray(start, end);
    expect(slices.hexOf(view)).toBe(view.toString('hex'));
    for (const [s, e] of [[0, view.length], [1, Math.max(1, view.length - 2)], [0, 0]]) expect(slices.latin1Of(view, s, e)).toBe(view.toString('latin1', s, e));
  }
  const digest = randomBytes(32);
  for (const text of [digest.toString('base64url'), `${digest.toString('base64url')}=`, digest.toString('base64'), randomBytes(40).toString('base64url')]) {
    const a = Buffer.alloc(32), b = Buffer.alloc(32);
    expect(slices.writeBase64url(a, text)).toBe(b.write(text, 0, 'base64url'));
    expect(a).toEqual(b);
  }
  expect(slices.writeBase64url(Buffer.alloc(32), 'AAAA')).toBe(3); // fewer bytes than the buffer: the count says so
}

describe('buffer slices', () => {
  it('latin1, hex and base64url as toString and write give them, on views at an offset', () => {
    check({ latin1Of, hexOf, writeBase64url });
    expect(typeof (Buffer.prototype as unknown as Record<string, unknown>).hexSlice).toBe('function'); // this node has them: the natives were tested above
  });

  it('without node\'s own encoders the documented calls stand in', () => {
    const calls: string[] = [];
    const spy = new Proxy({}, { get: (_target, name) => { calls.push(String(name)); return undefined; } });
    check(bufferSlices(spy));
    expect(calls.sort()).toEqual(['base64urlWrite', 'hexSlice', 'latin1Slice']); // each looked for once, at the start
  });
});
