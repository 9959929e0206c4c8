import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { decodeBlobLocation, decodeCbor, decodeMessageValue, decodeValue, enableNativeCborStrings, encodeCbor, encodeCborParts, encodeValue } from '../../src/index/codec.js';

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

describe('decodeBlobLocation', () => {
  // a B key: space B, then a hash
  const BLOB_KEY = Buffer.concat([Buffer.of(0x42), Buffer.alloc(32, 0xab)]);
  const RECORDS: [string, Record<string, number>][] = [
    ['one-byte integers', { p: 3, o: 7, l: 9, r: 1 }],
    ['every integer width', { p: 200, o: 0x7fff_ffff, l: 70_000, r: 300 }],
    ['zeros', { p: 0, o: 0, l: 0, r: 0 }],
    ['an offset over 31 bits', { p: 1, o: 2 ** 31 + 5, l: 1, r: 1 }],
    ['an offset over 32 bits', { p: 1, o: 2 ** 33 + 5, l: 1, r: 1 }],
    ['an inline blob (pack -1)', { p: -1, o: 7, l: 9, r: 1 }],
    ['a released blob', { p: 2, o: 300, l: 70_000, r: 0, z: 1_764_000_000_000 }],
    ['another key order', { o: 1, p: 2, l: 3, r: 1 }],
    ['no references field', { p: 2, o: 1, l: 3 }],
  ];
  for (const [name, record] of RECORDS) {
    it(`gives decodeValue's p, o and l: ${name}`, () => {
      const framed = encodeValue(BLOB_KEY, record);
      const decoded = decodeValue<Record<string, number>>(framed, BLOB_KEY);
      expect(decodeBlobLocation(framed, BLOB_KEY)).toEqual({ pack: decoded.p, offset: decoded.o, length: decoded.l });
    });
  }

  it('refuses what decodeValue refuses: a flipped body byte, another key, a short value', () => {
    const framed = encodeValue(BLOB_KEY, { p: 3, o: 7, l: 9, r: 1 });
    for (let i = 4; i < framed.length; i++) {
      const damaged = Buffer.from(framed);
      damaged[i] ^= 0x01;
      expect(() => decodeBlobLocation(damaged, BLOB_KEY), `byte ${i}`).toThrow(expect.objectContaining({ code: 'CORRUPT', path: BLOB_KEY.toString('hex') }));
    }
    const other = Buffer.from(BLOB_KEY);
    other[5] ^= 0x10;
    expect(() => decodeBlobLocation(framed, other)).toThrow(expect.objectContaining({ code: 'CORRUPT', path: other.toString('hex') }));
    expect(() => decodeBlobLocation(Buffer.of(1, 2, 3), BLOB_KEY)).toThrow(expect.objectContaining({ code: 'CORRUPT' }));
  });
});

describe('decodeMessageValue', () => {
  const MESSAGE_KEY = KEY;
  /** `body` framed as an index value of MESSAGE_KEY: any bytes, with a good checksum. */
  const framed = (body: Buffer) => {
    const out = Buffer.alloc(4 + body.length);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body, crc32(MESSAGE_KEY)), 0);
    return out;
  };
  /** What decodeValue makes of `bytes`, or the error it throws. */
  const viaDecodeValue = (bytes: Buffer) => {
    try { return { value: decodeValue(bytes, MESSAGE_KEY) }; } catch (error) { return { error }; }
  };
  const h = Buffer.alloc(32, 9);

  it('gives what decodeValue gives for the records a store writes, and other shapes', () => {
    for (const record of [
      { h, s: 5216, d: 0, f: [], m: 2, e: 'MAILER-DAEMON' },
      { h, s: 70_000, d: 1_796_195_518_148, f: ['\\Seen', '$Junk'], m: 2 ** 31 + 1, e: 'a@b', z: -300, n: true },
      { h, s: 1, d: 1.5, f: ['x'.repeat(30)], m: 7, z: 60 },
      { h, s: 1, d: -1, f: [], m: 7 }, // a date before 1970
      { h, s: 1, d: 5, f: ['é'], m: 7, n: true }, // non-ASCII flag
      { h, s: 1, d: 5, f: [], m: 2 ** 40 }, // a 64-bit modseq
      { s: 1, h, d: 5, f: [], m: 7 }, // another order
      { h, s: 1, d: 5, f: [], m: 7, z: -1, e: 'x' }, // extras out of order
      { h: Buffer.alloc(20), s: 1, d: 5, f: [], m: 7 }, // a short hash
    ]) {
      const bytes = encodeValue(MESSAGE_KEY, record);
      expect(decodeMessageValue(bytes, MESSAGE_KEY), JSON.stringify(record)).toStrictEqual(decodeValue(bytes, MESSAGE_KEY));
    }
  });

  it('never disagrees with decodeValue on message-like values', () => {
    const scalar = fc.oneof(fc.nat(), fc.integer({ min: -(2 ** 32), max: -1 }), fc.double(), fc.boolean(), fc.string({ maxLength: 30 }), fc.maxSafeNat());
    const record = fc.record({
      h: fc.oneof(fc.constant(h), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))),
      s: scalar, d: scalar, f: fc.oneof(fc.array(fc.string({ maxLength: 30 }), { maxLength: 25 }), scalar), m: scalar,
      e: fc.string({ maxLength: 300 }), z: fc.integer({ min: -70_000, max: 70_000 }), n: fc.constant(true as const),
    }, { requiredKeys: [] });
    let fast = 0;
    fc.assert(fc.property(record, (value) => {
      const bytes = encodeValue(MESSAGE_KEY, value);
      const decoded = decodeMessageValue(bytes, MESSAGE_KEY);
      expect(decoded).toStrictEqual(decodeValue(bytes, MESSAGE_KEY));
      if ('h' in value && Object.keys(value).length >= 5) fast++;
    }), { numRuns: 3000 });
    expect(fast).toBeGreaterThan(100);
  });

  it('never accepts a body decodeValue refuses or reads otherwise', () => {
    const written = [
      encodeCbor({ h, s: 5216, d: 1_796_195_518_148, f: ['\\Seen', '$Junk'], m: 2, e: 'MAILER-DAEMON', z: -30, n: true }),
      encodeCbor({ h, s: 5216, d: 0, f: [], m: 2, e: 'MAILER-DAEMON' }),
    ];
    const damaged = fc.tuple(fc.constantFrom(...written), fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 3 }))
      .map(([bytes, at, byte, cut]) => {
        const b = Buffer.from(bytes);
        b[at % b.length] = byte;
        return b.subarray(0, b.length - cut);
      });
    fc.assert(fc.property(damaged, (body) => {
      const bytes = framed(body);
      const slow = viaDecodeValue(bytes);
      let fast: { value?: unknown; error?: unknown };
      try { fast = { value: decodeMessageValue(bytes, MESSAGE_KEY) }; } catch (error) { fast = { error }; }
      expect(fast.error === undefined).toBe(slow.error === undefined);
      expect(fast.value).toStrictEqual(slow.value);
    }), { numRuns: 5000 });
  });

  it('refuses a value that fails its checksum, as decodeValue does', () => {
    const bytes = Buffer.from(encodeValue(MESSAGE_KEY, { h, s: 1, d: 5, f: [], m: 7 }));
    bytes[10] ^= 0x04;
    expect(() => decodeMessageValue(bytes, MESSAGE_KEY)).toThrow(expect.objectContaining({ code: 'CORRUPT', path: MESSAGE_KEY.toString('hex') }));
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
