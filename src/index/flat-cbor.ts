// A decoder for the flat CBOR maps of the per-message index records (M and B values: one-letter
// keys, small integers, dates as doubles, a hash, ASCII strings, a list of flags), which a bulk
// read decodes twice a message. cbor-x's general decoder is one big function that stays slow for
// the first few thousand calls of a process (it is compiled late); a cold read of 6,000 small
// messages spent ~40 % of its index work there (issue 16). Anything outside that shape returns
// undefined and goes to cbor-x, so the result is always what cbor-x would give (test/index/flat-cbor).
import type { Buffer } from 'node:buffer';
import { latin1Of } from '../buffer-slices.js';

/** Entries at most in a map or array handled here (one-byte header: 0-23). */
const SMALL_COUNT_MAX = 23;

/** What a reader returns for a shape it leaves to cbor-x. */
const OTHER = Symbol('other');

// The buffer and position of the decode under way: one cursor instead of a result object a value.
let src: Buffer;
let position = 0;

/**
 * The map that is all of `b` from `start` on as cbor-x decodes it (mapsAsObjects), or undefined to
 * let cbor-x do it. `start`: an index value's body follows its checksum, read in place (no view a value).
 */
export function decodeFlatMap(b: Buffer, start = 0): Record<string, unknown> | undefined {
  const head = b[start];
  if (head === undefined || head < 0xa0 || head > 0xa0 + SMALL_COUNT_MAX) return undefined;
  src = b;
  position = start + 1;
  const out: Record<string, unknown> = {};
  for (let i = head - 0xa0; i > 0; i--) {
    // a one-letter ASCII key: no __proto__ or other name an object treats specially
    const code = b[position + 1];
    if (b[position] !== 0x61 || !((code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a))) return undefined;
    position += 2;
    const value = readValue(true);
    if (value === OTHER) return undefined;
    out[String.fromCharCode(code)] = value;
  }
  return position === b.length ? out : undefined;
}

/** One value: unsigned and small negative integers, a double, true, false, bytes, ASCII text, and (`nest`) an array of those. */
function readValue(nest: boolean): unknown {
  const head = src[position++];
  if (head === undefined) return OTHER;
  const major = head >> 5;
  const info = head & 0x1f;
  if (major === 7) return readSimple(info);
  const arg = readArgument(info);
  if (arg < 0) return OTHER;
  switch (major) {
    case 0: return arg;
    case 1: return -1 - arg;
    case 2: return position + arg <= src.length ? src.subarray(position, position += arg) : OTHER;
    case 3: return readAscii(arg);
    case 4: return nest && arg <= SMALL_COUNT_MAX ? readArray(arg) : OTHER;
    default: return OTHER; // maps, tags: cbor-x
  }
}

/** The argument of a head, up to 32 bits; -1 for a 64-bit one (a BigInt in cbor-x) or one cut short. */
function readArgument(info: number): number {
  const at = position;
  if (info < 0x18) return info;
  if (info === 0x18 && at + 1 <= src.length) { position += 1; return src[at]; }
  if (info === 0x19 && at + 2 <= src.length) { position += 2; return src.readUInt16BE(at); }
  if (info === 0x1a && at + 4 <= src.length) { position += 4; return src.readUInt32BE(at); }
  return -1;
}

function readSimple(info: number): unknown {
  if (info === 0x14) return false;
  if (info === 0x15) return true;
  if (info === 0x1b && position + 8 <= src.length) {
    const value = src.readDoubleBE(position);
    position += 8;
    return value;
  }
  return OTHER; // null, undefined and the shorter floats: cbor-x's own rules
}

/** Text of ASCII bytes only: any other byte leaves UTF-8 decoding, and its errors, to cbor-x. */
function readAscii(length: number): unknown {
  const start = position;
  const end = start + length;
  if (end > src.length) return OTHER;
  for (let i = start; i < end; i++) if (src[i] >= 0x80) return OTHER;
  position = end;
  return latin1Of(src, start, end);
}

function readArray(count: number): unknown {
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const value = readValue(false);
    if (value === OTHER) return OTHER;
    out.push(value);
  }
  return out;
}
