// The LMTP bench client's DATA encoding on bytes (tools/bench/peers/lmtp-encode.mjs) gives exactly
// the bytes of the string version it replaced, over messages made of the shapes that matter: bare
// LF, CRLF, a bare CR, lines starting with ".", empty lines, no final line end.
import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../cli/helpers.js';

const { encodeData, encodeDataSlow } = (await import(join(repoRoot, 'tools/bench/peers/lmtp-encode.mjs'))) as {
  encodeData(b: Buffer): Buffer;
  encodeDataSlow(b: Buffer): Buffer;
};

const piece = fc.constantFrom('\n', '\r\n', '\r', '.', '..', 'a', 'Subject: x', ' ', '\xe9', '\0');

describe('lmtp-encode', () => {
  it('encodes every message exactly as the string version (CRLF, dot-stuffing, final line end and dot)', () => {
    fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
      const message = Buffer.from(pieces.join(''), 'latin1');
      expect(encodeData(message).equals(encodeDataSlow(message))).toBe(true);
    }), { numRuns: 3000 });
  });

  it('encodes a Received: line put before a message as that line before the message encoded alone (the client encodes each file once), but for an empty message', () => {
    const received = Buffer.from('Received: from bench by bench.localhost with LMTP id d7; Fri, 04 Dec 2026 15:00:00 GMT\r\n');
    // an empty message gains a line end alone, not after the Received: line: the client encodes that one whole
    expect(encodeData(received).equals(Buffer.concat([received, encodeData(Buffer.alloc(0))]))).toBe(false);
    fc.assert(fc.property(fc.array(piece, { minLength: 1, maxLength: 40 }), (pieces) => {
      const message = Buffer.from(pieces.join(''), 'latin1');
      expect(encodeData(Buffer.concat([received, message])).equals(Buffer.concat([received, encodeData(message)]))).toBe(true);
    }), { numRuns: 3000 });
  });

  it('turns a bare-LF message into CRLF lines with a dot-stuffed line and the terminator', () => {
    expect(encodeData(Buffer.from('A: b\n\n.hidden\nlast')).toString('latin1')).toBe('A: b\r\n\r\n..hidden\r\nlast\r\n.\r\n');
    expect(encodeData(Buffer.alloc(0)).toString('latin1')).toBe('\r\n.\r\n');
  });
});
