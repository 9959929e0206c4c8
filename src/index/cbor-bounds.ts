// CBOR that someone else may have written (a backup repository's metadata, a daemon client's frames) is walked before it
// is decoded: a CBOR byte can decode into ~60 bytes of heap (an empty map is one byte, a JS
// object), so a small payload of a million empty maps became a 1 GB tree, and cbor-x's extension
// tags go further (value sharing 28/29 hands one object out any number of times; a bignum, tag 2,
// costs time quadratic in its length). The walk allocates nothing and refuses, before the decoder
// runs, what would decode to more than `expansionMax` heap bytes per CBOR byte or carries a tag
// mailstore never writes.
import { MailstoreError } from '../errors.js';

/** Rough heap bytes of what cbor-x makes of one item: its slot, and an object for what is one. */
const SLOT_BYTES = 8;
const OBJECT_BYTES = 48;
const BYTE_STRING_OBJECT_BYTES = 80;
const TEXT_STRING_BYTES = 24;
/** Tags mailstore's encoder writes (codec.ts): dates (1; 0, their text form) and sets (258). */
export const CBOR_TAGS_WRITTEN: ReadonlySet<number> = new Set([0, 1, 258]);
/** Heap bytes any payload may decode to whatever its size (a few small values cost more than their bytes). */
const SLACK_BYTES = 64 * 1024;
const INDEFINITE = -1;

/** Throws CORRUPT (naming `path`) unless `bytes` is well-formed CBOR of bounded decoded size and known tags. */
export function checkCborBounds(bytes: Uint8Array, expansionMax: number, path: string): void {
  const problem = cborBoundsProblem(bytes, expansionMax);
  if (problem) throw new MailstoreError('CORRUPT', `${path}: ${problem} (not what mailstore writes)`, { path });
}

class Refusal extends Error {}

/** Why `bytes` is not well-formed CBOR of at most `expansionMax` decoded heap bytes a byte and of `tags` only, or undefined. */
export function cborBoundsProblem(bytes: Uint8Array, expansionMax: number, tags: ReadonlySet<number> = CBOR_TAGS_WRITTEN): string | undefined {
  try {
    walk(bytes, expansionMax, tags);
    return undefined;
  } catch (error) {
    if (error instanceof Refusal) return error.message;
    throw error;
  }
}

function walk(bytes: Uint8Array, expansionMax: number, tags: ReadonlySet<number>): void {
  const refuse = (why: string) => new Refusal(why);
  const budget = expansionMax * bytes.length + SLACK_BYTES;
  let weight = 0;
  let at = 0;
  /** Items still expected by each open array or map (INDEFINITE: until a break). */
  const open: number[] = [];
  /** The bytes after the initial byte that hold its argument (an integer, a length, a float). */
  const followingBytes = (info: number): number => {
    if (info < 24) return 0;
    if (info > 27) throw refuse(`a reserved CBOR additional value at byte ${at - 1}`);
    return 2 ** (info - 24);
  };
  const argument = (info: number): number => {
    if (info < 24) return info;
    const size = followingBytes(info);
    if (at + size > bytes.length) throw refuse('CBOR cut short');
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + bytes[at + i]!;
    at += size;
    if (!Number.isSafeInteger(value)) throw refuse(`a CBOR length or number of 2^53 or more at byte ${at - size - 1}`);
    return value;
  };
  const take = (bytesOfItem: number) => {
    weight += bytesOfItem;
    if (weight > budget) throw refuse(`CBOR of ${bytes.length} bytes that would decode to more than ${budget} bytes of memory`);
  };
  while (at < bytes.length || open.length > 0) {
    if (at >= bytes.length) throw refuse('CBOR cut short');
    const initial = bytes[at++]!;
    const major = initial >> 5;
    const info = initial & 31;
    if (initial === 0xff) { // a break ends the innermost indefinite array or map
      if (open.at(-1) !== INDEFINITE) throw refuse(`a CBOR break outside an indefinite item at byte ${at - 1}`);
      open.pop();
      continue;
    }
    if (open.length > 0 && open.at(-1)! > 0) open[open.length - 1]!--;
    if (major === 6) { // the tagged item follows, in the same slot
      const tag = argument(info);
      if (!tags.has(tag)) throw refuse(`CBOR tag ${tag}`);
      take(OBJECT_BYTES);
      if (open.length > 0 && open.at(-1)! >= 0) open[open.length - 1]!++;
      else if (open.length === 0) open.push(1);
      continue;
    }
    take(SLOT_BYTES);
    if (major === 2 || major === 3) {
      const object = major === 2 ? BYTE_STRING_OBJECT_BYTES : TEXT_STRING_BYTES;
      if (info === 31) { // indefinite: definite chunks of the same major type until a break
        take(object);
        for (;;) {
          if (at >= bytes.length) throw refuse('CBOR cut short');
          if (bytes[at] === 0xff) { at++; break; }
          if (bytes[at]! >> 5 !== major) throw refuse(`a CBOR string chunk of another type at byte ${at}`);
          at++;
          const length = argument(bytes[at - 1]! & 31);
          if (at + length > bytes.length) throw refuse('CBOR cut short');
          take(length);
          at += length;
        }
      } else {
        const length = argument(info);
        if (at + length > bytes.length) throw refuse('CBOR cut short');
        take(object + length);
        at += length;
      }
    } else if (major === 4 || major === 5) {
      take(OBJECT_BYTES);
      if (info === 31) open.push(INDEFINITE);
      else {
        const items = argument(info) * (major === 5 ? 2 : 1);
        if (items > bytes.length - at) throw refuse('CBOR cut short'); // every item is a byte at least
        if (items > 0) open.push(items);
      }
    } else { // an integer, a simple value or a float: its bytes
      if (major === 7 && info === 31) throw refuse(`a CBOR break outside an indefinite item at byte ${at - 1}`);
      const size = followingBytes(info);
      if (at + size > bytes.length) throw refuse('CBOR cut short');
      at += size;
    }
    while (open.length > 0 && open.at(-1) === 0) open.pop();
  }
}
