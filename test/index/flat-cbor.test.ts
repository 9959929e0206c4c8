// The flat-map decoder must give exactly what cbor-x gives, or leave the bytes to cbor-x: a value
// decoded differently would be a wrong index record with a good checksum.
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { damagedBytes } from '../helpers/damaged-bytes.js';
import { decodeFlatMap, encodeFlatMap, readBlobCounts, type BlobCounts } from '../../src/index/flat-cbor.js';
import { decodeCbor, encodeCbor, encodeJournalPayload, encodeValue, decodeValue } from '../../src/index/codec.js';
import type { BlobRecord, MessageRecord } from '../../src/store/records.js';

const hash = Buffer.alloc(32, 7);
const message: MessageRecord = { h: hash, s: 5216, d: 1_796_195_518_148, f: ['\\Seen', '$Junk'], m: 2, e: 'MAILER-DAEMON', z: -300, n: true };
const blob: BlobRecord = { p: 1, o: 7_793_880, l: 1125, r: 1 };

/** What cbor-x makes of `bytes`, or the error it throws. */
function viaCborX(bytes: Buffer): { value?: unknown; error?: unknown } {
  try {
    return { value: decodeCbor(bytes) };
  } catch (error) {
    return { error };
  }
}

describe('decodeFlatMap', () => {
  it('decodes message and blob records itself, as cbor-x does', () => {
    for (const record of [message, blob, { ...blob, o: 2 ** 40, t: 1_796_195_518_148 }, { h: hash, s: 0, d: 0, f: [], m: 1 }, { a: 1.5, b: -(2 ** 40), c: false }]) {
      const bytes = encodeCbor(record);
      const fast = decodeFlatMap(bytes);
      expect(fast).toBeDefined();
      expect(fast).toStrictEqual(decodeCbor(bytes));
    }
  });

  it('decodes in place after a prefix (an index value behind its checksum), as cbor-x decodes the rest', () => {
    for (const record of [message, blob]) {
      const bytes = encodeCbor(record);
      const framed = Buffer.concat([Buffer.of(0xa1, 0x61, 0x7a, 0x00), bytes]); // a map head in the prefix: not read
      expect(decodeFlatMap(framed, 4)).toStrictEqual(decodeCbor(bytes));
      expect(decodeFlatMap(Buffer.concat([framed, Buffer.of(0)]), 4)).toBeUndefined(); // trailing bytes
      expect(decodeFlatMap(framed.subarray(0, framed.length - 1), 4)).toBeUndefined(); // cut short
    }
  });

  it('leaves other shapes to cbor-x', () => {
    for (const value of [
      { name: ['INBOX'], uidNext: 3 }, // longer keys
      { f: ['\\Seen'], e: 'müller@example.org' }, // non-ASCII text
      { a: { b: 1 } }, // a nested map
      { a: [[1]] }, // a nested array
      { a: null }, [1, 2], 7,
    ]) {
      expect(decodeFlatMap(encodeCbor(value))).toBeUndefined();
    }
    expect(decodeFlatMap(Buffer.concat([encodeCbor(blob), Buffer.of(0)]))).toBeUndefined(); // trailing bytes
    expect(decodeFlatMap(encodeCbor(blob).subarray(0, 5))).toBeUndefined(); // cut short
  });

  it('decodeValue gives the same record either way', () => {
    const framed = encodeValue(Buffer.of(1), message);
    expect(decodeValue(framed, Buffer.of(1))).toStrictEqual(message);
    expect(decodeValue(new Uint8Array(framed), Buffer.of(1))).toStrictEqual(message); // not a Buffer
  });

  it('never disagrees with cbor-x on record-like values', () => {
    const key = fc.constantFrom(...'abdefhlmnoprstz');
    const scalar = fc.oneof(
      fc.nat(), fc.integer({ min: -(2 ** 32), max: -1 }), fc.double(), fc.boolean(), fc.constant(null),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 8 }),
      fc.maxSafeNat(),
    );
    const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 26 }));
    let decodedHere = 0;
    fc.assert(fc.property(fc.dictionary(key, value, { maxKeys: 15 }), (record) => {
      const bytes = encodeCbor(record);
      const fast = decodeFlatMap(bytes);
      if (fast === undefined) return;
      decodedHere++;
      expect(fast).toStrictEqual(decodeCbor(bytes));
    }), { numRuns: 2000 });
    expect(decodedHere).toBeGreaterThan(200); // the comparison ran, not only the fallback
  });

  it('never accepts bytes cbor-x refuses or reads otherwise', () => {
    fc.assert(fc.property(damagedBytes([encodeCbor(message), encodeCbor(blob)]), (bytes) => {
      const fast = decodeFlatMap(bytes);
      if (fast === undefined) return;
      const slow = viaCborX(bytes);
      expect(slow.error).toBeUndefined();
      expect(fast).toStrictEqual(slow.value);
    }), { numRuns: 5000 });
  });
});

// The flat-map encoder must write exactly cbor-x's bytes: an index value written otherwise would
// still decode, but a snapshot, a replica or scrub comparing encoded values would see a change.
describe('readBlobCounts', () => {
  const read = (bytes: Buffer, start = 0): BlobCounts | undefined => {
    const out = { p: -1, l: -1, r: -1 };
    return readBlobCounts(bytes, start, out) ? out : undefined;
  };

  it('reads p, l and r of a blob record in place, as cbor-x decodes them', () => {
    const repeated = Buffer.of(0xa4, 0x61, 0x70, 0x01, 0x61, 0x6c, 0x05, 0x61, 0x72, 0x01, 0x61, 0x6c, 0x07); // l twice: the last counts
    for (const bytes of [blob, { ...blob, r: 0 }, { r: 3, l: 2 ** 32 - 1, o: 0, p: 70_000 }].map((record) => encodeCbor(record)).concat(repeated)) {
      const framed = Buffer.concat([Buffer.of(1, 2, 3, 4), bytes]);
      const { p, l, r } = decodeCbor<BlobRecord>(bytes);
      expect(read(framed, 4)).toStrictEqual({ p, l, r });
    }
    expect(read(repeated)?.l).toBe(7);
  });

  it('leaves any other shape to a full decode', () => {
    for (const value of [
      { ...blob, z: 1_796_195_518_148 }, // a 64-bit field
      { p: 1, o: 2, l: 3 }, // no r
      { ...blob, r: -1 }, { ...blob, p: 1.5 }, { ...blob, f: ['\\Seen'] }, { ...blob, r: null },
      { name: ['INBOX'], r: 1 }, 7, [1, 2],
    ]) {
      expect(read(encodeCbor(value))).toBeUndefined();
    }
    expect(read(Buffer.concat([encodeCbor(blob), Buffer.of(0)]))).toBeUndefined(); // trailing bytes
    expect(read(encodeCbor(blob).subarray(0, 5))).toBeUndefined(); // cut short
  });

  it('never disagrees with cbor-x on record-like values', () => {
    const key = fc.constantFrom(...'lopqrz');
    const scalar = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.integer({ min: -5, max: -1 }), fc.double(), fc.boolean(), fc.string({ maxLength: 4 }));
    let readHere = 0;
    const counts = fc.record({ p: fc.nat(), l: fc.nat(), r: fc.nat() }, { requiredKeys: [] });
    fc.assert(fc.property(fc.dictionary(key, scalar, { maxKeys: 4 }), counts, (record, fields) => {
      const bytes = encodeCbor({ ...fields, ...record });
      const counts = read(bytes);
      if (counts === undefined) return;
      readHere++;
      const { p, l, r } = decodeCbor<BlobRecord>(bytes);
      expect(counts).toStrictEqual({ p, l, r });
    }), { numRuns: 3000 });
    expect(readHere).toBeGreaterThan(50); // the comparison ran, not only the fallback
  });
});

describe('encodeFlatMap', () => {
  it('writes message and blob records byte for byte as cbor-x, after the reserved bytes', () => {
    for (const record of [message, blob, { ...blob, o: 2 ** 40 }, { h: hash, s: 0, d: 0, f: [], m: 1, p: 3, o: 0 }, { a: 1.5, b: -(2 ** 40), c: false, d: -0, e: NaN }]) {
      const flat = encodeFlatMap(record, 4);
      expect(flat).toBeDefined();
      expect(flat!.subarray(4)).toStrictEqual(encodeCbor(record));
      expect(flat!.length).toBe(4 + encodeCbor(record).length);
    }
  });

  it('leaves other shapes to cbor-x', () => {
    for (const value of [
      { name: 'INBOX' }, { e: 'müller@example.org' }, { a: { b: 1 } }, { a: [[1]] }, { a: null }, { a: undefined },
      { a: 'x'.repeat(256) }, { a: Buffer.alloc(2000) }, { a: 2n }, [1, 2], 7, null, new Map([['a', 1]]), new Date(0),
      Object.fromEntries(Array.from({ length: 24 }, (_, i) => [String.fromCharCode(0x61 + (i % 26)) + (i >= 26 ? 'x' : ''), i]).slice(0, 24)),
    ]) {
      expect(encodeFlatMap(value, 4)).toBeUndefined();
    }
  });

  it('never disagrees with cbor-x on record-like values', () => {
    const key = fc.constantFrom(...'abdefhlmnoprstzAZ');
    const scalar = fc.oneof(
      fc.nat(), fc.integer({ min: -(2 ** 32) - 5, max: -1 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), fc.uint8Array({ maxLength: 30 }), fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 8 }), fc.maxSafeNat(), fc.maxSafeInteger(),
    );
    const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 26 }));
    let encodedHere = 0;
    fc.assert(fc.property(fc.dictionary(key, value, { maxKeys: 24 }), (record) => {
      const flat = encodeFlatMap(record, 2);
      if (flat === undefined) return;
      encodedHere++;
      expect(flat.subarray(2)).toStrictEqual(encodeCbor(record));
    }), { numRuns: 3000 });
    expect(encodedHere).toBeGreaterThan(300); // the comparison ran, not only the fallback
  });

  it('encodeValue frames a flat value as it framed cbor-x\'s bytes', () => {
    const key = Buffer.from('4d0102', 'hex');
    const flat = encodeValue(key, message);
    const body = encodeCbor(message);
    expect(flat.subarray(4)).toStrictEqual(body);
    expect(decodeValue(flat, key)).toStrictEqual(message);
    expect(flat.readUInt32BE(0)).toBe(crc32(body, crc32(key)));
  });
});

describe('encodeJournalPayload', () => {
  const add = (uid: number, extra: Record<string, unknown> = {}) => ({
    op: 'message.add', id: Buffer.alloc(16, 3), uid, hash: Buffer.alloc(32, uid & 0xff), size: 4000 + uid, date: 1_733_400_000_000 + uid * 1000.5,
    flags: uid % 3 ? ['\\Seen', '$Junk'] : [], pack: 2, offset: 123_456 + uid * 4100, fresh: true, ...extra,
  });
  const cursor = { op: 'meta.set', key: 'user/import/x', value: { version: 1, source: '/srv/mail/müller.mbox', done: 500, retry: [{ position: 3, entry: 'x' }] } };

  it('writes a record of an import batch byte for byte as cbor-x, with ops it leaves to cbor-x among them', () => {
    for (const count of [1, 23, 24, 255, 256, 500, 65_536]) {
      const ops: unknown[] = Array.from({ length: count }, (_, i) => add(i + 1, i % 7 === 0 ? { envelopeFrom: 'MAILER-DAEMON', dateZone: -300, recent: true } : {}));
      ops.splice(count >> 1, 0, cursor, add(0, { body: Buffer.alloc(3000, 1) }), add(0, { envelopeFrom: 'jösé@example.org' }));
      for (const last of [true, false]) {
        const payload = last ? { ops, end: true } : { ops };
        // Buffer.equals: vitest's deep equality walks a large buffer byte by byte
        expect(encodeJournalPayload(ops, last).equals(encodeCbor(payload))).toBe(true);
      }
    }
  });

  it('writes a delivery\'s record with its inline body byte for byte as cbor-x, at every head size of the body', () => {
    for (const size of [0, 23, 24, 255, 256, 1000, 1015, 1016, 1024, 32 * 1024, 65_535, 65_536, 1024 * 1024]) {
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size) & 0xff;
      for (const extra of [{}, { envelopeFrom: 'MAILER-DAEMON', dateZone: -300, recent: true }, { flags: ['\\Seen', 'x'.repeat(600)] }]) {
        // the body first, last and between other values; then a second long byte string in the op (cbor-x's)
        for (const op of [add(9, { body: bytes, ...extra }), { body: bytes, ...add(9, extra) }, { op: 'message.add', body: bytes, uid: 9, ...extra }, add(9, { body: bytes, more: Buffer.from(bytes), ...extra })]) {
          for (const ops of [[op], [add(1), op, add(2, { body: Buffer.alloc(2000, 5) })]]) {
            for (const last of [true, false]) expect(encodeJournalPayload(ops, last).equals(encodeCbor(last ? { ops, end: true } : { ops }))).toBe(true);
          }
        }
      }
    }
  });

  it('never disagrees with cbor-x on records of op-like values', () => {
    const name = fc.oneof(fc.constantFrom('op', 'uid', 'hash', 'flags', 'offset', 'envelopeFrom'), fc.string({ maxLength: 30 }));
    const scalar = fc.oneof(
      fc.nat(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.maxSafeInteger(),
      fc.uint8Array({ maxLength: 1100 }).map((b) => Buffer.from(b)), fc.nat({ max: 70_000 }).map((n) => Buffer.alloc(n, n & 0xff)), fc.string({ maxLength: 300 }), fc.dictionary(fc.string({ maxLength: 3 }), fc.nat(), { maxKeys: 3 }),
    );
    const op = fc.dictionary(name, fc.oneof(scalar, fc.array(scalar, { maxLength: 26 })), { maxKeys: 25 });
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), fc.boolean(), (ops, last) => {
      expect(encodeJournalPayload(ops, last).equals(encodeCbor(last ? { ops, end: true } : { ops }))).toBe(true);
    }), { numRuns: 500 });
  });
});
