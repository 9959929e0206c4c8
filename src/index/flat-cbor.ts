// A decoder for the flat CBOR maps of the per-message index records (M and B values: one-letter
// keys, small integers, dates as doubles, a hash, ASCII strings, a list of flags), which a bulk
// read decodes twice a message. cbor-x's general decoder is one big function that stays slow for
// the first few thousand calls of a process (it is compiled late); a cold read of 6,000 small
// messages spent ~40 % of its index work there (issue 16). Anything outside that shape returns
// undefined and goes to cbor-x, so the result is always what cbor-x would give (test/index/flat-cbor).
import { Buffer } from 'node:buffer';
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
    // the letters of M and B records as named stores: `out[letter]` was one keyed store site for
    // every field, megamorphic within the first record (V8's generic keyed store and a lookup of
    // the name a field, ~150 instructions each: 2 % of a read's main thread, issue 16); each store
    // here sees the one or two shapes its place in a record makes. Same fields, same order.
    switch (code) {
      case 0x68: out.h = value; break;
      case 0x73: out.s = value; break;
      case 0x64: out.d = value; break;
      case 0x66: out.f = value; break;
      case 0x6d: out.m = value; break;
      case 0x65: out.e = value; break;
      case 0x7a: out.z = value; break;
      case 0x6e: out.n = value; break;
      case 0x70: out.p = value; break;
      case 0x6f: out.o = value; break;
      case 0x6c: out.l = value; break;
      case 0x72: out.r = value; break;
      default: out[String.fromCharCode(code)] = value;
    }
  }
  return position === b.length ? out : undefined;
}

/** A blob entry's fields that scrub's index pass reads (records.ts BlobRecord). */
export interface BlobCounts {
  p: number;
  l: number;
  r: number;
}

/**
 * p, l and r of a B value's body from `start` into `out`, read in place (no object, no value of the
 * fields it does not need), when the body is a flat map of unsigned integers up to 32 bits that has
 * all three: then they are what decodeFlatMap's object holds (the last of a repeated key, as there).
 * False for any other shape (a z of 64 bits, a missing field): the caller decodes it in full.
 */
export function readBlobCounts(b: Buffer, start: number, out: BlobCounts): boolean {
  const head = b[start];
  if (head === undefined || head < 0xa0 || head > 0xa0 + SMALL_COUNT_MAX) return false;
  src = b;
  position = start + 1;
  let seen = 0;
  for (let i = head - 0xa0; i > 0; i--) {
    const code = b[position + 1];
    if (b[position] !== 0x61 || !((code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a))) return false;
    position += 2;
    const initial = b[position++];
    if (initial === undefined || initial >> 5 !== 0) return false;
    const value = readArgument(initial & 0x1f);
    if (value < 0) return false;
    if (code === 0x70) { out.p = value; seen |= 1; }
    else if (code === 0x6c) { out.l = value; seen |= 2; }
    else if (code === 0x72) { out.r = value; seen |= 4; }
  }
  return seen === 7 && position === b.length;
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

// ---- encoding -------------------------------------------------------------------------------------

/**
 * Where encodeFlatMap writes before it copies out: a flat value is small (a message record ~90
 * bytes, its flags aside); one that does not fit goes to cbor-x.
 */
const scratch = Buffer.allocUnsafeSlow(1024);
let end = 0;

/**
 * A journal op's one byte string too long for the scratch buffer (an inline body, up to the
 * store's inline limit), its head written in scratch before `bodyAt`: encodeOpsPayload copies it
 * once, straight into the record. Through cbor-x a delivery's body was copied twice (cbor-x's
 * buffer, then the record) and its op encoded by the general encoder.
 */
let body: Uint8Array | undefined;
let bodyAt = 0;
/** Whether writeValue may leave a long byte string to encodeOpsPayload (a journal op's top-level value; never an index value). */
let bodyAllowed = false;

/**
 * `value` as cbor-x encodes it (codec.ts's encoder: mapsAsObjects, variableMapSize, no Uint8Array
 * tag), byte for byte, in a new Buffer after `reserve` bytes left for the caller; or undefined for
 * any value outside the shapes decodeFlatMap reads (then cbor-x). An import encodes two such values
 * a message (its M and B records): through cbor-x's general encoder (its set-up a call, the map's
 * key and value arrays, every key and value through one big function) that was ~12,000
 * instructions each, warm (issue 16).
 */
export function encodeFlatMap(value: unknown, reserve: number): Buffer | undefined {
  end = 0;
  bodyAllowed = false;
  if (!writeFlatMap(value, false)) return undefined;
  const out = Buffer.allocUnsafe(reserve + end);
  scratch.copy(out, reserve, 0, end);
  return out;
}

/**
 * A journal record's payload, `{ ops }` or (`last`) `{ ops, end: true }`, as codec.ts's cbor-x
 * encoder writes it, byte for byte: each op that is a flat map (ASCII keys, the values
 * encodeFlatMap writes: a message.add, with an inline body among them) written here, any other by
 * `other` (cbor-x; it keeps no records or shared strings, so an op encodes alone to what it is
 * inside a record). cbor-x's
 * general encoder was ~33,000 instructions an op of an import's record of 500, warm (issue 16).
 */
export function encodeOpsPayload(ops: readonly unknown[], last: boolean, other: (op: unknown) => Uint8Array): Buffer {
  let out = Buffer.allocUnsafe(16 + ops.length * OP_BYTES_GUESS);
  out[0] = last ? 0xa2 : 0xa1;
  out.set(OPS_KEY, 1);
  let at = 1 + OPS_KEY.length;
  end = 0;
  writeHead(4, ops.length); // the array's head, as cbor-x writes it (writeArrayHeader: the shortest)
  scratch.copy(out, at, 0, end);
  at += end;
  for (const op of ops) {
    end = 0;
    bodyAllowed = true;
    const flat = writeFlatMap(op, true);
    bodyAllowed = false;
    const long = takeBody(); // also of an op left to cbor-x part way: not held past the call
    const bytes = flat ? undefined : other(op);
    const length = bytes === undefined ? end + (long?.length ?? 0) : bytes.length;
    if (at + length + END_BYTES > out.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * out.length, at + length + END_BYTES));
      out.copy(grown, 0, 0, at);
      out = grown;
    }
    if (bytes !== undefined) out.set(bytes, at);
    else if (long === undefined) scratch.copy(out, at, 0, end);
    else {
      scratch.copy(out, at, 0, bodyAt);
      out.set(long, at + bodyAt);
      scratch.copy(out, at + bodyAt + long.length, bodyAt, end);
    }
    at += length;
  }
  if (last) {
    out.set(END_KEY, at);
    out[at + END_KEY.length] = 0xf5;
    at += END_BYTES;
  }
  // a guess far off (inline bodies, long flags) is not kept as slack for as long as the record lives
  return at * 4 < out.length * 3 ? Buffer.from(out.subarray(0, at)) : out.subarray(0, at);
}

/** The long byte string writeFlatMap left to encodeOpsPayload, if any; not held past the call. */
function takeBody(): Uint8Array | undefined {
  const taken = body;
  body = undefined;
  return taken;
}

/** Bytes a message.add op encodes to, about: the first guess of a record's size. */
const OP_BYTES_GUESS = 128;
/** The text keys of a record's map, with their heads. */
const OPS_KEY = Buffer.from([0x63, ...Buffer.from('ops', 'latin1')]);
const END_KEY = Buffer.from([0x63, ...Buffer.from('end', 'latin1')]);
/** `end: true` at the end of a batch's last record. */
const END_BYTES = END_KEY.length + 1;

/**
 * A flat map into the scratch buffer from `end` on, or false for a shape left to cbor-x. Keys: one
 * ASCII letter (the index records), or (`anyKeys`) any ASCII text (a journal op's field names).
 */
function writeFlatMap(value: unknown, anyKeys: boolean): boolean {
  if (typeof value !== 'object' || value === null || value.constructor !== Object) return false;
  const keys = Object.keys(value);
  if (keys.length > SMALL_COUNT_MAX) return false;
  scratch[end++] = 0xa0 | keys.length;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (anyKeys) {
      if (!writeAscii(key)) return false;
    } else {
      const code = key.charCodeAt(0);
      if (key.length !== 1 || !((code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a))) return false;
      scratch[end] = 0x61;
      scratch[end + 1] = code;
      end += 2;
    }
    if (!writeValue((value as Record<string, unknown>)[key], true)) return false;
  }
  return true;
}

/** Bytes left in the scratch buffer for one more item of `bytes` (its head at most 9). */
function fits(bytes: number): boolean {
  return end + 9 + bytes <= scratch.length;
}

/** One value as cbor-x writes it, or false for one it leaves to cbor-x; `nest`: an array of such values allowed. */
function writeValue(item: unknown, nest: boolean): boolean {
  switch (typeof item) {
    case 'number': return fits(0) && writeNumber(item);
    case 'boolean':
      if (!fits(0)) return false;
      scratch[end++] = item ? 0xf5 : 0xf4;
      return true;
    case 'string': return writeAscii(item);
    case 'object': {
      if (item === null) return false;
      if (item instanceof Uint8Array) {
        if (!fits(item.byteLength)) {
          // cbor-x's head for it is CBOR's shortest (up to 32 bits), as writeHead's
          if (!bodyAllowed || !nest || body !== undefined || item.byteLength > 0xffffffff || !fits(0)) return false;
          writeHead(2, item.byteLength);
          body = item;
          bodyAt = end;
          return true;
        }
        writeHead(2, item.byteLength);
        scratch.set(item, end);
        end += item.byteLength;
        return true;
      }
      if (!nest || item.constructor !== Array) return false;
      const array = item as unknown[];
      if (array.length > SMALL_COUNT_MAX || !fits(0)) return false;
      scratch[end++] = 0x80 | array.length;
      for (let i = 0; i < array.length; i++) if (!writeValue(array[i], false)) return false;
      return true;
    }
    default: return false; // undefined, functions, symbols, BigInts: cbor-x
  }
}

/** A number by cbor-x's rules (its encode(), 'number'): 32-bit integers as such, any other as a double. */
function writeNumber(value: number): boolean {
  if (value >>> 0 === value) writeHead(0, value);
  else if (value >> 0 === value) writeHead(1, ~value);
  else if (value < 0 && value >= -0x100000000 && Math.floor(value) === value) {
    scratch[end] = 0x3a;
    scratch.writeUInt32BE(-1 - value, end + 1);
    end += 5;
  } else {
    scratch[end] = 0xfb;
    scratch.writeDoubleBE(value, end + 1);
    end += 9;
  }
  return true;
}

/** ASCII text up to 255 bytes (cbor-x writes its characters one by one, as these); anything else: cbor-x. */
function writeAscii(text: string): boolean {
  if (text.length > 0xff || !fits(text.length)) return false;
  const at = end + (text.length < 24 ? 1 : 2);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return false;
    scratch[at + i] = code;
  }
  writeHead(3, text.length);
  end += text.length;
  return true;
}

/** A head of major type `major` and argument `arg` (at most 32 bits), CBOR's shortest, as cbor-x writes it. */
function writeHead(major: number, arg: number): void {
  const type = major << 5;
  if (arg < 0x18) scratch[end++] = type | arg;
  else if (arg < 0x100) {
    scratch[end] = type | 0x18;
    scratch[end + 1] = arg;
    end += 2;
  } else if (arg < 0x10000) {
    scratch[end] = type | 0x19;
    scratch.writeUInt16BE(arg, end + 1);
    end += 3;
  } else {
    scratch[end] = type | 0x1a;
    scratch.writeUInt32BE(arg, end + 1);
    end += 5;
  }
}
