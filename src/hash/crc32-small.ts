// CRC-32 (the zlib polynomial, what node:zlib's crc32 computes) of a range of a buffer, for the
// small inputs a bulk read checks per message: a record header (44 bytes) and two index values
// (~100 bytes). node:zlib's crc32 wants a view of its own (one subarray each) and crosses into
// native code with argument checks: measured ~1.5-3x slower than this loop for 44-130 bytes,
// cold and warm (loaded machine, issue 16). Bigger inputs go to zlib, whose SIMD loop wins there.
import { crc32 } from 'node:zlib';

/** Inputs up to this many bytes are summed here; longer ones by zlib. */
const SMALL_BYTES_MAX = 256;

const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/**
 * crc32 of b[start, end), as zlib's crc32(b.subarray(start, end), seed) gives it (unsigned):
 * `seed` is the CRC of what comes before (0: nothing), so crc32Range(y, …, crc32Range(x, …)) is
 * the CRC of x followed by y.
 */
export function crc32Range(b: Uint8Array, start: number, end: number, seed = 0): number {
  if (end - start > SMALL_BYTES_MAX) return crc32(b.subarray(start, end), seed);
  let c = ~seed;
  for (let i = start; i < end; i++) c = TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
