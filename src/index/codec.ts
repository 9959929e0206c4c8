// Index values and journal payloads are CBOR. Index values also carry a CRC32 in front, because
// LevelDB returns a flipped byte inside an .ldb as a wrong value without any error (docs/FAULTS.md).
// 'cbor-x/encode' is cbor-x without its stream classes and its optional native string extractor
// (cbor-extract): they cost every CLI start ~8 ms, and the values here are small (issue 16).
import { Encoder } from 'cbor-x/encode';
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { MailstoreError } from '../errors.js';
import { crc32Range } from '../hash/crc32-small.js';
import { decodeFlatMap } from './flat-cbor.js';

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

export function decodeCbor<T>(bytes: Uint8Array): T {
  return cbor.decode(bytes) as T;
}

/**
 * cbor-x returns a view into its own growing buffer; node's crc32 of such a view costs in
 * proportion to the whole buffer (measured 26 µs a value), so the checksum is taken over our
 * copy. zlib's crc32 alone (no table-driven loop for short values): measured, it is ~30 ns
 * slower on a 4-20 byte value and faster from ~50 bytes (a message record is ~60).
 */
function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.set(body, 4);
  out.writeUInt32BE(crc32(out.subarray(4)), 0);
  return out;
}

/**
 * The values 0 and 1 (every C record, the deleting marks) framed once: a replay writes one C
 * record per message. The shared buffers are only ever read (LevelDB copies what it is given).
 */
const SMALL_VALUES = [frame(cbor.encode(0)), frame(cbor.encode(1))];

export function encodeValue(value: unknown): Buffer {
  if (value === 1 || Object.is(value, 0)) return SMALL_VALUES[value as number];
  return frame(cbor.encode(value));
}

/** A stored value's checksum holds (what decodeValue checks first), without decoding it. */
export function valueChecksumHolds(bytes: Buffer): boolean {
  return bytes.length >= 5 && bytes.readUInt32BE(0) === crc32(bytes.subarray(4));
}

export function decodeValue<T>(bytes: Uint8Array, key: Uint8Array): T {
  // LevelDB hands back Buffers: no new view, and one for the body shared by the checksum and the
  // decoder (a bulk read decodes two values a message; each view costs ~1 µs while code is cold)
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // the framed 0 and 1 (checksum included) need no checking or decoding: most C records are one
  if (b.length === SMALL_VALUES[0].length) {
    for (let v = 0; v < SMALL_VALUES.length; v++) if (b.equals(SMALL_VALUES[v])) return v as T;
  }
  if (b.length < 4 || b.readUInt32BE(0) !== crc32Range(b, 4, b.length)) {
    throw new MailstoreError('CORRUPT',
      `index value for key ${Buffer.from(key).toString('hex')} fails its checksum; run 'mailstore reconstruct' to rebuild the index from the journal`,
      { path: Buffer.from(key).toString('hex') });
  }
  const body = b.subarray(4);
  return (decodeFlatMap(body) ?? cbor.decode(body)) as T;
}
