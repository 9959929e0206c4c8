// hash-wasm's CRC32 module on its own (src/index/crc32c.ts loads only it, not hash-wasm's index);
// the package declares types for its index only. Typed where it is used (Crc32Module).
declare module 'hash-wasm/dist/crc32.umd.min.js';
