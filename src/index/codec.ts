// Index values and journal payloads are CBOR. Index values also carry a CRC32 in front, because
// LevelDB returns a flipped byte inside an .ldb as a wrong value without any error (FAULTLAB.md).
import { Encoder } from 'cbor-x';
import { crc32 } from 'node:zlib';
import { MailstoreError } from '../errors.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true, tagUint8Array: false });

export function encodeCbor(value: unknown): Buffer {
  return cbor.encode(value);
}

export function decodeCbor<T>(bytes: Uint8Array): T {
  return cbor.decode(bytes) as T;
}

/** CRC-32 (the zlib polynomial), table-driven, for short values. */
const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** Below this length the JavaScript loop beats a call into zlib (most index values are 2-80 bytes). */
const CRC_JS_BYTES_MAX = 256;

function checksum(bytes: Uint8Array): number {
  if (bytes.length > CRC_JS_BYTES_MAX) return crc32(bytes);
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/**
 * cbor-x returns a view into its own growing buffer; node's crc32 of such a view costs in
 * proportion to the whole buffer (measured 26 µs a value), so a long value's checksum is taken
 * over our copy.
 */
function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.set(body, 4);
  out.writeUInt32BE(checksum(out.subarray(4)), 0);
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

export function decodeValue<T>(bytes: Uint8Array, key: Uint8Array): T {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // the framed 0 and 1 (checksum included) need no checking or decoding: most C records are one
  if (b.length === SMALL_VALUES[0].length) {
    for (let v = 0; v < SMALL_VALUES.length; v++) if (b.equals(SMALL_VALUES[v])) return v as T;
  }
  if (b.length < 4 || b.readUInt32BE(0) !== checksum(b.subarray(4))) {
    throw new MailstoreError('CORRUPT',
      `index value for key ${Buffer.from(key).toString('hex')} fails its checksum; run 'mailstore reconstruct' to rebuild the index from the journal`,
      { path: Buffer.from(key).toString('hex') });
  }
  return cbor.decode(b.subarray(4)) as T;
}
