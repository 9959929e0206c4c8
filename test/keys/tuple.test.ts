import { describe, expect, it } from 'vitest';
import { keys } from '../../src/keys/index-keys.js';
import { decodeComponents, encodeComponents } from '../../src/keys/tuple.js';
import { prng } from '../helpers/prng.js';

const ALPHABET = ['a', 'b', 'z', 'A', '.', '-', ' ', '/', '\u0000', '\u0001', 'é', 'ß', '日', '😀', '\u007f', '0', '~'];

function randomComponent(rand: () => number): string {
  const n = 1 + Math.floor(rand() * 4);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

function randomTuple(rand: () => number): string[] {
  const n = 1 + Math.floor(rand() * 4);
  return Array.from({ length: n }, () => randomComponent(rand));
}

/** Logical order: component-wise by UTF-8 bytes (code point order), a prefix tuple first. */
function compareTuples(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = Buffer.compare(Buffer.from(a[i]), Buffer.from(b[i]));
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

describe('tuple key encoding', () => {
  it('byte order equals logical order for random tuples (seeded)', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      const rand = prng(seed);
      const tuples = Array.from({ length: 2000 }, () => randomTuple(rand));
      for (let i = 0; i + 1 < tuples.length; i++) {
        const a = tuples[i], b = tuples[i + 1];
        const byBytes = Math.sign(Buffer.compare(encodeComponents(a), encodeComponents(b)));
        expect(byBytes, `seed ${seed}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(Math.sign(compareTuples(a, b)));
      }
    }
  });

  it('round-trips components including NUL and non-ASCII', () => {
    const rand = prng(7);
    for (let i = 0; i < 1000; i++) {
      const t = randomTuple(rand);
      expect(decodeComponents(encodeComponents(t), 0)).toEqual(t);
    }
  });

  it('a mailbox is immediately followed by all its descendants', () => {
    const rand = prng(99);
    const names: string[][] = [['a'], ['a', 'b'], ['a', 'b', 'c'], ['a b'], ['a.b'], ['a-b'], ['a\u0000'], ['a', '\u0001'], ['b'], ['a', 'z z']];
    for (let i = 0; i < 500; i++) names.push(randomTuple(rand));
    const sorted = [...names].sort((x, y) => Buffer.compare(keys.name(x), keys.name(y)));
    for (let i = 0; i < sorted.length; i++) {
      const parent = sorted[i];
      const isDescendant = (t: string[]) => t.length > parent.length && parent.every((c, k) => c === t[k]);
      // all descendants form one contiguous run right after the parent (and its duplicates)
      let j = i + 1;
      while (j < sorted.length && compareTuples(sorted[j], parent) === 0) j++;
      while (j < sorted.length && isDescendant(sorted[j])) j++;
      for (let k = j; k < sorted.length; k++) {
        expect(isDescendant(sorted[k]), `${JSON.stringify(sorted[k])} after the run of ${JSON.stringify(parent)}`).toBe(false);
      }
    }
  });

  it('a/b never interleaves with "a b"', () => {
    const list = [['a', 'b'], ['a b'], ['a'], ['a', 'b', 'c'], ['a.b']].map((t) => keys.name(t));
    list.sort(Buffer.compare);
    expect(list.map((k) => decodeComponents(k, 1))).toEqual([['a'], ['a', 'b'], ['a', 'b', 'c'], ['a b'], ['a.b']]);
  });
});
