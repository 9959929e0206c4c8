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

/**
 * cbor-x returns a view into its own growing buffer; node's crc32 of such a view costs in
 * proportion to the whole buffer (measured 26 µs a value), so the checksum is taken over our copy.
 */
export function encodeValue(value: unknown): Buffer {
  const body = cbor.encode(value);
  const out = Buffer.allocUnsafe(4 + body.length);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(out.subarray(4)), 0);
  return out;
}

export function decodeValue<T>(bytes: Uint8Array, key: Uint8Array): T {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 4 || b.readUInt32BE(0) !== crc32(b.subarray(4))) {
    throw new MailstoreError('CORRUPT',
      `index value for key ${Buffer.from(key).toString('hex')} fails its checksum; run 'mailstore reconstruct' to rebuild the index from the journal`,
      { path: Buffer.from(key).toString('hex') });
  }
  return cbor.decode(b.subarray(4)) as T;
}
