// Index values and journal payloads are CBOR. Index values also carry a CRC32 in front, because
// LevelDB returns a flipped byte inside an .ldb as a wrong value without any error (docs/FAULTS.md).
// 'cbor-x/encode' is cbor-x without its stream classes and its optional native string extractor
// (cbor-extract): they cost every CLI start ~8 ms, and the values here are small (issue 16).
import { Encoder } from 'cbor-x/encode';
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { MailstoreError } from '../errors.js';
import { crc32Range } from '../hash/crc32-small.js';
import { decodeFlatMap, encodeFlatMap, encodeOpsPayload } from './flat-cbor.js';

/**
 * The index's value format (docs/FORMAT.md, "Index values"), stored in the index under the meta
 * name INDEX_FORMAT_NAME: 2, the CRC32 covers key and body. An index without it is of format 1
 * (the CRC32 of the body alone) and is converted when it is opened (src/store/index-upgrade.ts).
 */
export const INDEX_FORMAT = 2;
export const INDEX_FORMAT_NAME = 'index/format';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true, tagUint8Array: false });

/**
 * Turns on cbor-x's native string extraction (cbor-extract) for every decoder in the process: the
 * full 'cbor-x' entry installs it into the decoder module codec.ts shares. For bulk decoding only
 * (a rebuild decodes every journal record: ~0.4 us a message op saved); it costs ~8 ms to load,
 * which a CLI start does not pay. Without the native binary, decoding stays in JS, as before.
 */
export async function enableNativeCborStrings(): Promise<void> {
  await import('cbor-x').catch(() => undefined);
}

export function encodeCbor(value: unknown): Buffer {
  return cbor.encode(value);
}

/**
 * A journal record's payload, `{ ops }` or (`last`) `{ ops, end: true }`: the bytes encodeCbor
 * makes of it, its flat ops (message.add) written without cbor-x (flat-cbor.ts).
 */
export function encodeJournalPayload(ops: readonly unknown[], last: boolean): Buffer {
  return encodeOpsPayload(ops, last, encodeOp);
}

function encodeOp(op: unknown): Buffer {
  return cbor.encode(op);
}

export function decodeCbor<T>(bytes: Uint8Array): T {
  return cbor.decode(bytes) as T;
}

/**
 * cbor-x returns a view into its own growing buffer; node's crc32 of such a view costs in
 * proportion to the whole buffer (measured 26 µs a value), so the checksum is taken over our
 * copy. zlib's crc32 alone (no table-driven loop for short values): measured, it is ~30 ns
 * slower on a 4-20 byte value and faster from ~50 bytes (a message record is ~60).
 *
 * Index format 2 (docs/FORMAT.md, "Index values"): the CRC32 is of the key's bytes followed by the
 * body, crc32(body, crc32(key)), so a value LevelDB hands back under a flipped key (a bit flip in a
 * table's key bytes leaves the value valid) fails as CORRUPT instead of being another key's value.
 */
const CBOR_ZERO = Buffer.of(0x00);
const CBOR_ONE = Buffer.of(0x01);

function frame(key: Uint8Array, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.set(body, 4);
  out.writeUInt32BE(crc32(out.subarray(4), crc32(key)), 0);
  return out;
}

export function encodeValue(key: Uint8Array, value: unknown): Buffer {
  // 0 and 1 (every C record, the deleting marks: a replay writes one C record a message) are
  // the one CBOR byte of their value: framed without the encoder
  if (value === 1 || Object.is(value, 0)) return frame(key, value === 1 ? CBOR_ONE : CBOR_ZERO);
  // the flat maps of M and B records (two a message an import writes) written here, after the checksum's place
  const flat = encodeFlatMap(value, 4);
  if (flat === undefined) return frame(key, cbor.encode(value));
  flat.writeUInt32BE(crc32(flat.subarray(4), crc32(key)), 0);
  return flat;
}

/** A stored value's checksum holds for its key (what decodeValue checks first), without decoding it. */
export function valueChecksumHolds(key: Uint8Array, bytes: Buffer): boolean {
  // crc32Range as decodeValue: a snapshot's load checks every entry (no view, no native call each)
  return bytes.length >= 5 && bytes.readUInt32BE(0) === crc32Range(bytes, 4, bytes.length, crc32Range(key, 0, key.length));
}

/**
 * A value as index format 1 stored it (CRC32 of the body alone: before session 10), framed with its
 * key; undefined when its format 1 checksum fails (damage is never re-framed into a valid value).
 */
export function reframeFormat1(key: Uint8Array, bytes: Buffer): Buffer | undefined {
  if (bytes.length < 5 || bytes.readUInt32BE(0) !== crc32(bytes.subarray(4))) return undefined;
  return frame(key, bytes.subarray(4));
}

export function decodeValue<T>(bytes: Uint8Array, key: Uint8Array): T {
  // LevelDB hands back Buffers: no new view, and one for the body shared by the checksum and the
  // decoder (a bulk read decodes two values a message; each view costs ~1 µs while code is cold)
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // the key's CRC continued over the body: crc32(body, crc32(key)) (index format 2)
  if (b.length < 5 || b.readUInt32BE(0) !== crc32Range(b, 4, b.length, crc32Range(key, 0, key.length))) {
    throw new MailstoreError('CORRUPT',
      `index value for key ${Buffer.from(key).toString('hex')} fails its checksum; run 'mailstore reconstruct' to rebuild the index from the journal`,
      { path: Buffer.from(key).toString('hex') });
  }
  // the values 0 and 1 (every C record, the deleting marks) are one CBOR byte: no decoder call
  if (b.length === 5 && b[4] <= 1) return b[4] as T;
  // the flat maps of M and B records decoded in place; a view of the body only for cbor-x
  return (decodeFlatMap(b, 4) ?? cbor.decode(b.subarray(4))) as T;
}

/** Byte strings at least this long go out as parts of their own (encodeCborParts), not copied. */
const UNCOPIED_BYTES_MIN = 1024;

/**
 * `value` as CBOR, byte for byte what encodeCbor makes of it, as a list of parts in which each
 * byte string of UNCOPIED_BYTES_MIN or more is the caller's own buffer, not a copy. For a frame
 * that carries message bodies (a synchronous replica's round): copying them into the encoder's
 * buffer, which is fresh memory every few frames, cost the primary ~0.2 ms a delivery between its
 * journal write and its flush (CPU profile, loaded machine). The caller must not change those
 * buffers afterwards. Plain objects, arrays, byte strings and scalars only.
 */
export function encodeCborParts(value: unknown): Buffer[] {
  const parts: Buffer[] = [];
  let small: Buffer[] = [];
  const flush = (): void => {
    if (small.length > 0) parts.push(small.length === 1 ? small[0] : Buffer.concat(small));
    small = [];
  };
  const walk = (item: unknown): void => {
    if (!holdsLargeBytes(item)) {
      small.push(Buffer.from(cbor.encode(item))); // a copy: the encoder's buffer is reused
    } else if (item instanceof Uint8Array) {
      small.push(cborHead(2, item.length));
      flush();
      parts.push(Buffer.isBuffer(item) ? item : Buffer.from(item.buffer, item.byteOffset, item.byteLength));
    } else if (Array.isArray(item)) {
      small.push(cborHead(4, item.length));
      for (const element of item) walk(element);
    } else {
      const keys = Object.keys(item as object);
      small.push(cborHead(5, keys.length));
      for (const key of keys) {
        walk(key);
        walk((item as Record<string, unknown>)[key]);
      }
    }
  };
  walk(value);
  flush();
  return parts;
}

function holdsLargeBytes(item: unknown): boolean {
  if (item instanceof Uint8Array) return item.length >= UNCOPIED_BYTES_MIN;
  if (Array.isArray(item)) return item.some(holdsLargeBytes);
  if (item === null || typeof item !== 'object' || Object.getPrototypeOf(item) !== Object.prototype) return false;
  return Object.values(item).some(holdsLargeBytes);
}

/** The head of a CBOR item of major type `major` (2 bytes, 4 array, 5 map) and this length. */
function cborHead(major: number, length: number): Buffer {
  const type = major << 5;
  if (length < 24) return Buffer.of(type | length);
  if (length < 0x100) return Buffer.of(type | 24, length);
  if (length < 0x10000) return Buffer.of(type | 25, length >> 8, length & 0xff);
  const head = Buffer.alloc(5);
  head[0] = type | 26;
  head.writeUInt32BE(length, 1);
  return head;
}
