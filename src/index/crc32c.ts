// CRC32C (Castagnoli), as LevelDB checksums its table blocks and log records (util/crc32c.h),
// and LevelDB's masking of a stored CRC (crc32c::Mask). From hash-wasm's WebAssembly CRC32 with
// the Castagnoli polynomial: measured here at ~1.0-2.0 GB/s on 4 KiB blocks against ~0.7-0.9 GB/s
// for a table-driven (slicing-by-8) JavaScript loop; no native CRC32C is installed. Only its own
// module is loaded (~6 ms), not hash-wasm's index (~170 ms of every CLI start, src/hash/blake3.ts).

/** The reflected Castagnoli polynomial. */
const CASTAGNOLI = 0x82f63b78;
/** LevelDB's mask delta (util/crc32c.h, kMaskDelta). */
const MASK_DELTA = 0xa282ead8;

interface Crc32Hasher {
  init(): Crc32Hasher;
  update(data: Uint8Array): Crc32Hasher;
  digest(format: 'binary'): Uint8Array;
}
interface Crc32Module {
  createCRC32(polynomial: number): Promise<Crc32Hasher>;
}

/** The CRC32C of bytes, synchronously; from loadCrc32c(). */
export type Crc32c = (bytes: Uint8Array) => number;

let loaded: Promise<Crc32c> | undefined;

/**
 * Loads the WebAssembly CRC32C once per process; where WebAssembly is not available (node
 * --jitless, or a build without it) or cannot get its memory (an address space limit), the
 * table-driven one, slower but the same checksums.
 */
export function loadCrc32c(): Promise<Crc32c> {
  loaded ??= (async () => {
    if (typeof WebAssembly === 'undefined') return crc32cTable;
    // a literal specifier: tools/bundle-cli.ts routes it through the CLI's module loader
    return crc32cFrom(await import('hash-wasm/dist/crc32.umd.min.js'));
  })();
  return loaded;
}

/** hash-wasm's CRC32C, or the table's where it cannot serve (no createCRC32: seen under load, cause unknown). */
export async function crc32cFrom(imported: unknown): Promise<Crc32c> {
  const exports = imported as (Partial<Crc32Module> & { default?: Partial<Crc32Module> }) | undefined;
  const module = exports?.default ?? exports;
  if (typeof module?.createCRC32 !== 'function') return crc32cTable;
  let hasher: Crc32Hasher;
  try {
    hasher = await module.createCRC32(CASTAGNOLI);
  } catch (error) {
    // V8 reserves ~10 GiB of address space a WebAssembly memory: under ulimit -v / LimitAS= a RangeError
    if (!(error instanceof RangeError)) throw error;
    return crc32cTable;
  }
  return (bytes: Uint8Array) => {
    const digest = hasher.init().update(bytes).digest('binary');
    return ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
  };
}

let table: Uint32Array | undefined;

/** CRC32C a byte at a time from a 256-entry table: the fallback without WebAssembly. */
export function crc32cTable(bytes: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CASTAGNOLI : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** LevelDB stores CRCs masked (a CRC of data that holds CRCs is then not degenerate). */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}
