// BLAKE3-256 (blake3-core.ts), ready to use once imported: without the native binding the
// WebAssembly build is compiled before any importer runs. The CLI bundle takes blake3-core.ts in its
// place (no top-level await in a CommonJS bundle) and waits for hashReady in Store.open.
import { hashReady } from './blake3-core.js';

export * from './blake3-core.js';

await hashReady;
