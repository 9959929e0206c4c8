// The flat-map decoder must give exactly what cbor-x gives wherever it answers, and give up
// (undefined) rather than guess on anything it does not know.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeFlatMap } from '../../src/index/flat-cbor.js';
import { decodeCbor, decodeValue, encodeCbor, encodeValue } from '../../src/index/codec.js';

const scalar = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  fc.integer({ min: -(2 ** 32), max: -1 }),
  fc.integer({ min: 0, max: 23 }),
  fc.maxSafeInteger(), // above 2^32: encoded as a float64 or a 64-bit integer
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 40 }), // non-ASCII included: those go to cbor-x
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 30 }));
const record = fc.dictionary(fc.string({ minLength: 1, maxLength: 3 }), value, { maxKeys: 26 });

/** What the decoder answered, made comparable with cbor-x's result (Buffers as hex). */
const plain = (v: unknown) => JSON.parse(JSON.stringify(v, (_, x) => (x && x.type === 'Buffer' ? `hex:${Buffer.from(x.data).toString('hex')}` : x)));

describe('decodeFlatMap', () => {
  it('gives what cbor-x gives, or undefined, for random flat records', () => {
    let answered = 0;
    fc.assert(fc.property(record, (r) => {
      const bytes = encodeCbor(r);
      const fast = decodeFlatMap(bytes);
      if (fast === undefined) return;
      answered++;
      const slow = decodeCbor<Record<string, unknown>>(bytes);
      expect(Object.keys(fast)).toEqual(Object.keys(slow));
      expect(plain(fast)).toEqual(plain(slow));
      for (const k of Object.keys(slow)) {
        expect(Buffer.isBuffer(fast[k])).toBe(Buffer.isBuffer(slow[k]));
        if (typeof slow[k] === 'number') expect(Object.is(fast[k], slow[k])).toBe(true); // -0 stays -0
      }
    }), { numRuns: 3000 });
    expect(answered).toBeGreaterThan(300); // it must actually answer for the common shapes
  });

  it('answers for message and blob records, the values a bulk read decodes', () => {
    const h = Buffer.alloc(32, 9);
    const message = { h, s: 5400, d: 1700000000123, f: ['\\Seen', '$Junk'], m: 7, e: 'a@example.org', z: -300, n: true };
    const blob = { p: 3, o: 2 ** 31 + 5, l: 5400, r: 0, z: Date.now() };
    for (const r of [message, blob]) {
      const fast = decodeFlatMap(encodeCbor(r));
      expect(fast).toEqual(r);
      expect(decodeValue(encodeValue(r), Buffer.of(1))).toEqual(r);
    }
  });

  it('gives up on what it does not decode: nested maps, 64-bit integers, non-ASCII text, trailing or missing bytes', () => {
    const cases: unknown[] = [{ a: { b: 1 } }, { a: [[1]] }, { a: 2n ** 40n }, { a: 'é' }, [1, 2], 'INBOX', 7];
    for (const c of cases) expect(decodeFlatMap(encodeCbor(c)), JSON.stringify(c, (_, x) => (typeof x === 'bigint' ? String(x) : x))).toBeUndefined();
    const ok = encodeCbor({ a: 1, b: 'xyz' });
    expect(decodeFlatMap(Buffer.concat([ok, Buffer.of(0)]))).toBeUndefined();
    for (let cut = 0; cut < ok.length; cut++) expect(decodeFlatMap(ok.subarray(0, cut))).toBeUndefined();
  });
});
