import { describe, expect, it } from 'vitest';
import { decodeCbor, decodeValue, enableNativeCborStrings, encodeCbor, encodeCborParts, encodeValue } from '../../src/index/codec.js';

// The CRC in front of every index value is on disk. Index format 2 (docs/FORMAT.md, "Index
// values"): the CRC-32 of the key's bytes followed by the CBOR body (checked here against Python's
// zlib.crc32(key + body)), so a change of checksum or framing fails here instead of turning every
// existing index into CORRUPT. KEY is a message key (space M, a mailbox id, uid 1).
const KEY = Buffer.from('4d0101010101010101010101010101010100000001', 'hex');
const KNOWN: [string, unknown, string, number][] = [
  ['0 (a change record)', 0, '98047153', 5],
  ['1 (a deleting mark)', 1, 'ef0341c5', 5],
  ['a small integer', 7, '0660e4f0', 5],
  ['a string', 'INBOX', 'c3dd754c', 10],
  ['a message record', {
    h: Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex'),
    f: ['\\Seen'], d: 1700000000, m: 42,
  }, '56f4f3ea', 61],
  ['252 bytes of body', 'x'.repeat(250), 'bdec8fc0', 256],
  ['303 bytes of body', 'y'.repeat(300), 'bac1f2b8', 307],
];

describe('index value codec', () => {
  for (const [name, value, crc, length] of KNOWN) {
    it(`frames ${name} with the CRC-32 of key and body`, () => {
      const framed = encodeValue(KEY, value);
      expect(framed.length).toBe(length);
      expect(framed.subarray(0, 4).toString('hex')).toBe(crc);
      expect(decodeValue(framed, KEY)).toEqual(value);
    });
  }

  it('refuses a value whose body no longer matches its CRC, naming the key', () => {
    const key = Buffer.from('4d01', 'hex');
    const framed = Buffer.from(encodeValue(key, 'x'.repeat(250)));
    framed[100] ^= 0x01;
    let caught: unknown;
    try { decodeValue(framed, key); } catch (error) { caught = error; }
    expect(caught).toMatchObject({ code: 'CORRUPT', path: '4d01' });
  });

  it('refuses a valid value read under another key (a flipped key bit), naming that key', () => {
    for (const value of [0, 1, 'INBOX']) {
      const framed = encodeValue(KEY, value);
      const flipped = Buffer.from(KEY);
      flipped[flipped.length - 1] ^= 0x02;
      expect(() => decodeValue(framed, flipped)).toThrow(expect.objectContaining({ code: 'CORRUPT', path: flipped.toString('hex') }));
    }
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

// A synchronous replica's round goes out as encodeCborParts' parts: the replica decodes it with
// cbor-x and writes its bytes to its pending file as they came, so they must be encodeCbor's own.
describe('encodeCborParts', () => {
  const body = Buffer.alloc(30_000, 0x61);
  const payload = encodeCbor({ ops: [{ op: 'message.add', body, uid: 7 }], end: true });
  const frames: [string, unknown][] = [
    ['a tentative round with an inline body', { t: 'tentative', r: [[41, payload]], p: [], k: [[1, 4096]], c: 40 }],
    ['pack bytes, seqs and offsets past 32 bits', { t: 'tentative', r: [[2 ** 40, payload], [2 ** 40 + 1, Buffer.alloc(10)]], p: [[3, 2 ** 33, body.subarray(5)]], k: [[3, 2 ** 33 + 29_995], [9, 0]] }],
    ['a 70 KB byte string and a Uint8Array', { t: 'pack', bytes: new Uint8Array(70_000).fill(3), more: [new Uint8Array(2000), 'x', null, true, -1.5, undefined] }],
    ['no large bytes at all', { t: 'ack', seq: 5, pending: true }],
  ];
  for (const [name, frame] of frames) {
    it(`makes encodeCbor's bytes of ${name}`, () => {
      const parts = encodeCborParts(frame);
      expect(Buffer.concat(parts).equals(encodeCbor(frame))).toBe(true);
      expect(decodeCbor(Buffer.concat(parts))).toEqual(decodeCbor(encodeCbor(frame)));
    });
  }

  it('leaves byte strings of 1 KiB or more uncopied: the parts hold the caller\'s buffers', () => {
    const parts = encodeCborParts({ t: 'tentative', r: [[1, payload]], p: [[0, 0, body]] });
    expect(parts.some((part) => part === payload)).toBe(true);
    expect(parts.some((part) => part === body)).toBe(true);
    expect(parts).toHaveLength(4); // head, payload, the bytes between, body
  });
});
