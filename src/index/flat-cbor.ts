// A decoder for the one shape nearly every index value has: a small CBOR map of short ASCII keys
// to numbers, byte strings, ASCII text, booleans and arrays of those. cbor-x's general decoder
// costs ~2 µs a value in a fresh process (most of a cold bulk read's index time: issue 16), this
// one a fraction of that. It gives up (undefined) on anything else, and the caller decodes with
// cbor-x, so it never has to be complete, only identical where it answers (test/index/flat-cbor).

/** A map header's entry count up to this (CBOR "small" lengths): bigger maps go to cbor-x. */
const SMALL_LENGTH_MAX = 23;

/** One decoded item and where the next begins; undefined: not a shape decoded here. */
type Step = { value: unknown; next: number } | undefined;

/** The value the bytes encode when it is a flat map this decoder knows, else undefined. */
export function decodeFlatMap(b: Buffer): Record<string, unknown> | undefined {
  if (b.length === 0) return undefined;
  const head = b[0];
  if (head < 0xa0 || head > 0xa0 + SMALL_LENGTH_MAX) return undefined;
  const out: Record<string, unknown> = {};
  let at = 1;
  for (let i = head - 0xa0; i > 0; i--) {
    const key = asciiText(b, at);
    if (key === undefined || key.value === '__proto__') return undefined;
    const value = item(b, key.next, true);
    if (value === undefined) return undefined;
    out[key.value as string] = value.value;
    at = value.next;
  }
  return at === b.length ? out : undefined; // trailing bytes: let cbor-x say what they are
}

/** A scalar, or (when `arrays`) an array of scalars. */
function item(b: Buffer, at: number, arrays: boolean): Step {
  if (at >= b.length) return undefined;
  const head = b[at];
  const major = head >> 5;
  if (major === 0 || major === 1) return integer(b, at, major);
  if (major === 2) return bytes(b, at);
  if (major === 3) return asciiText(b, at);
  if (major === 4 && arrays) return array(b, at);
  if (head === 0xf4) return { value: false, next: at + 1 };
  if (head === 0xf5) return { value: true, next: at + 1 };
  if (head === 0xf6) return { value: null, next: at + 1 };
  if (head === 0xfb && at + 9 <= b.length) return { value: b.readDoubleBE(at + 1), next: at + 9 };
  return undefined; // float16/32 (cbor-x rounds those), tags, maps, indefinite lengths
}

/** Unsigned (major 0) or negative (major 1) integers up to 32 bits; 64-bit ones go to cbor-x. */
function integer(b: Buffer, at: number, major: number): Step {
  const n = length(b, at);
  if (n === undefined) return undefined;
  return { value: major === 0 ? n.value : -1 - n.value, next: n.next };
}

/** The argument of a head byte (a length or an integer) up to 32 bits. */
function length(b: Buffer, at: number): { value: number; next: number } | undefined {
  const info = b[at] & 0x1f;
  if (info < 24) return { value: info, next: at + 1 };
  if (info === 24 && at + 2 <= b.length) return { value: b[at + 1], next: at + 2 };
  if (info === 25 && at + 3 <= b.length) return { value: b.readUInt16BE(at + 1), next: at + 3 };
  if (info === 26 && at + 5 <= b.length) return { value: b.readUInt32BE(at + 1), next: at + 5 };
  return undefined;
}

/** A byte string, as cbor-x gives it: a Buffer over the input's bytes. */
function bytes(b: Buffer, at: number): Step {
  const n = length(b, at);
  if (n === undefined || n.next + n.value > b.length) return undefined;
  return { value: b.subarray(n.next, n.next + n.value), next: n.next + n.value };
}

/** A text string of ASCII only: any other byte leaves the UTF-8 rules to cbor-x. */
function asciiText(b: Buffer, at: number): Step {
  if (at >= b.length || b[at] >> 5 !== 3) return undefined;
  const n = length(b, at);
  if (n === undefined) return undefined;
  const end = n.next + n.value;
  if (end > b.length) return undefined;
  for (let i = n.next; i < end; i++) if (b[i] > 0x7f) return undefined;
  return { value: b.toString('latin1', n.next, end), next: end };
}

function array(b: Buffer, at: number): Step {
  const n = length(b, at);
  if (n === undefined || n.value > SMALL_LENGTH_MAX) return undefined;
  const out: unknown[] = [];
  let next = n.next;
  for (let i = 0; i < n.value; i++) {
    const element = item(b, next, false);
    if (element === undefined) return undefined;
    out.push(element.value);
    next = element.next;
  }
  return { value: out, next };
}
