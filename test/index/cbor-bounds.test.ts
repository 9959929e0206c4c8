// The walk that bounds what CBOR someone else wrote decodes to (src/index/cbor-bounds.ts): what
// mailstore's encoder writes passes and decodes as before; payloads that decode to far more heap
// than their size, or carry tags mailstore never writes, are CORRUPT before the decoder runs.
import { Tag } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { checkCborBounds } from '../../src/index/cbor-bounds.js';
import { decodeCbor, encodeCbor } from '../../src/index/codec.js';
import { backupLimits } from '../../src/limits.js';

const ratio = backupLimits.metadataDecodedBytesPerByteMax;
const refused = (bytes: Uint8Array) => {
  try {
    checkCborBounds(bytes, ratio, 'f');
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('checkCborBounds', () => {
  it('passes what mailstore writes: snapshot messages, small numbers, strings, dates, sets, floats, big integers, nesting', () => {
    const hash = Buffer.alloc(32, 9);
    const values: unknown[] = [
      { ops: [{ op: 'state.messages', id: Buffer.alloc(16, 1), messages: Array.from({ length: 5000 }, (_, i) => [i + 1, hash, 1234 + i, 1.7e12 + i * 0.5, i % 2 ? ['\\Seen'] : [], i + 7]) }] },
      Array.from({ length: 100_000 }, (_, i) => i % 24),
      { when: new Date(1_700_000_000_123), tags: new Set(['a', 'b']), f: -1.5e300, big: 2 ** 53 - 1, neg: -(2 ** 40), n: null, t: true, u: undefined, s: 'ü'.repeat(100), e: '', b: Buffer.alloc(0) },
      [[[[[[[[[[[[1]]]]]]]]]]]],
      0,
      // the densest journal ops: a flag change of 20k messages to no flags, or to a one-letter keyword
      { ops: [{ op: 'message.flags', id: Buffer.alloc(16, 1), set: Array.from({ length: 20_000 }, (_, i) => [300 + i, []]) }] },
      { ops: [{ op: 'message.flags', id: Buffer.alloc(16, 1), set: Array.from({ length: 20_000 }, (_, i) => [300 + i, ['$']]) }] },
      // uids of two CBOR bytes (24-255) in every entry: ~30 heap bytes a byte, the densest seen
      { ops: [{ op: 'message.flags', id: Buffer.alloc(16, 1), set: Array.from({ length: 20_000 }, (_, i) => [24 + (i % 232), []]) }] },
      Array.from({ length: 20_000 }, () => ''),
    ];
    for (const value of values) {
      const bytes = encodeCbor(value);
      expect(refused(bytes)).toBeUndefined();
      expect(decodeCbor(bytes)).toEqual(decodeCbor(bytes)); // and the decoder takes it
    }
  });

  it('refuses a small payload that decodes into a huge tree: a million empty maps, arrays, byte strings', () => {
    for (const initial of [0xa0, 0x80, 0x40]) {
      const bytes = Buffer.alloc(5 + 1_000_000, initial);
      bytes[0] = 0x9a;
      bytes.writeUInt32BE(1_000_000, 1);
      expect(refused(bytes)).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/would decode to more than/) });
    }
  });

  it('refuses tags mailstore never writes: value sharing, bignums, cbor-x records and packing', () => {
    const sharing = encodeCbor([new Tag([1, 2, 3], 28), new Tag(0, 29), new Tag(0, 29)]);
    expect(refused(sharing)).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/CBOR tag 28/) });
    expect(refused(encodeCbor(new Tag(Buffer.alloc(100_000, 0xff), 2)))).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/CBOR tag 2\b/) });
    for (const tag of [6, 25, 27, 51, 105, 256, 0xe000]) expect(refused(encodeCbor(new Tag(1, tag))), String(tag)).toMatchObject({ code: 'CORRUPT' });
  });

  it('refuses CBOR that is cut short, declares more items than it has bytes, or breaks outside an indefinite item', () => {
    for (const hex of ['9a0100000001', 'bb00000000ffffffff', '5a00010000', '8201', 'ff', '81ff', '1c', '9b0020000000000000']) {
      expect(refused(Buffer.from(hex, 'hex')), hex).toMatchObject({ code: 'CORRUPT' });
    }
    expect(refused(Buffer.from('9f0102ff', 'hex'))).toBeUndefined(); // an indefinite array, ended
    expect(refused(Buffer.from('bf6161019f02ffff', 'hex'))).toBeUndefined(); // an indefinite map holding one
    expect(refused(Buffer.from('5f42010243030405ff', 'hex'))).toBeUndefined(); // an indefinite byte string in chunks
  });
});
