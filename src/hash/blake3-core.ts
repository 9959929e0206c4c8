// BLAKE3-256, the identity of every stored message. Native (@napi-rs/blake-hash) where its binary
// loads, else hash-wasm's WebAssembly build; test/hash compares the two on the same inputs.
// Everything imports it through blake3.ts, which waits for the WebAssembly build at load; this module
// has no top-level await, so the CLI's CommonJS bundle (tools/bundle-cli.ts) can take it instead and
// wait in Store.open (hashReady).
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import type { IHasher } from 'hash-wasm';
import { hexOf, writeBase64url } from '../buffer-slices.js';
import { MailstoreError, assert } from '../errors.js';

export const HASH_BYTES = 32;

export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

interface NativeBlake {
  blake3(input: Uint8Array): Buffer;
  blake3UrlSafeBase64(input: Uint8Array): string;
  Blake3Hasher: new () => { update(input: Buffer): unknown; digestBuffer(): Buffer };
}

/** Why the native binding is not used, for the error when hash-wasm does not load either. */
let nativeMissing = 'MAILSTORE_HASH=wasm';

function loadNative(): NativeBlake | undefined {
  if (process.env.MAILSTORE_HASH === 'wasm') return undefined;
  const require = createRequire(import.meta.url);
  // On glibc Linux the binary's own package first: the main package's loader tries a missing file
  // and reads /usr/bin/ldd to tell glibc from musl, a few ms of every CLI start (issue 16). On musl
  // this binary does not load and the main package picks the right one.
  if (process.platform === 'linux') {
    try {
      return require(`@napi-rs/blake-hash-linux-${process.arch}-gnu`) as NativeBlake;
    } catch {
      // not installed here, or not loadable (musl): the main package decides
    }
  }
  try {
    return require('@napi-rs/blake-hash') as NativeBlake;
  } catch (error) {
    nativeMissing = firstLine(error);
    return undefined;
  }
}

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0]!;

const native = loadNative();

/** hash-wasm is loaded only when needed: it adds ~170 ms to every CLI start. */
async function createWasm(): Promise<IHasher> {
  const { createBLAKE3 } = await import('hash-wasm');
  return createBLAKE3(256);
}

let wasm: IHasher | undefined;

/**
 * Settled once hashBytes can run: at once with the native binding, after hash-wasm's compile without.
 * With neither (a broken install) every store open fails IO saying so, not as a bug (exit 70).
 */
export const hashReady: Promise<void> = native ? Promise.resolve() : createWasm().then((hasher) => { wasm ??= hasher; }, (error: unknown) => {
  throw new MailstoreError('IO', `no BLAKE3 loads in node ${process.version} on ${process.platform}-${process.arch}: neither the native module (@napi-rs/blake-hash: ${nativeMissing}) nor hash-wasm (${firstLine(error)}); reinstall mailstore's dependencies ('npm ci' where mailstore is installed, or install mailstore again)`, { cause: error });
});
hashReady.catch(() => undefined); // whoever awaits it sees the failure; no unhandled rejection without one

/** Which implementation is in use: 'native' or 'wasm'. */
export const hashImplementation: 'native' | 'wasm' = native ? 'native' : 'wasm';

export async function wasmHash(data: Uint8Array): Promise<Buffer> {
  wasm ??= await createWasm();
  wasm.init();
  wasm.update(data);
  return Buffer.from(wasm.digest('binary'));
}

export function nativeHash(data: Uint8Array): Buffer | undefined {
  return native ? nativeDigest(native, data) : undefined;
}

/**
 * The binding's blake3() returns a Buffer over Rust memory, freed by a finalizer: measured ~1.6 µs
 * of CPU a call against ~0.55 µs for its base64 digest turned back into bytes (a pooled Buffer),
 * which is most of the cost of hashing a small message (issue 16: ~5 KB SpamAssassin reads).
 */
function nativeDigest(binding: NativeBlake, data: Uint8Array): Buffer {
  return Buffer.from(binding.blake3UrlSafeBase64(data), 'base64url');
}

export function hashBytes(data: Uint8Array): Buffer {
  if (native) return nativeDigest(native, data);
  assert(wasm, 'hashBytes before the WebAssembly BLAKE3 is ready (await hashReady first)');
  wasm.init();
  wasm.update(data);
  return Buffer.from(wasm.digest('binary'));
}

/** hashMatches' digest, decoded from the binding's base64 text: one buffer for the thread, reused. */
const digestScratch = Buffer.alloc(HASH_BYTES);

/**
 * Whether `data` hashes to `expected`. Natively the binding's base64url digest is decoded into one
 * reused buffer and compared as bytes: no Buffer is made from the digest (Buffer.from of base64 was
 * ~7 % of a cold read of small messages), and no text from `expected` (its toString('base64url')
 * was ~10 % of a cold SpamAssassin read's profile, issue 16).
 */
export function hashMatches(data: Uint8Array, expected: Uint8Array): boolean {
  if (expected.length !== HASH_BYTES) return false;
  if (native) {
    // padded ('=') by this binding; node's decoder takes either alphabet and the padding
    return writeBase64url(digestScratch, native.blake3UrlSafeBase64(data)) === HASH_BYTES && digestScratch.equals(expected);
  }
  return hashBytes(data).equals(expected);
}

export async function createHasher(): Promise<Hasher> {
  if (native) {
    const h = new native.Blake3Hasher();
    return {
      update: (data) => { h.update(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)); },
      digest: () => h.digestBuffer(),
    };
  }
  const h = await createWasm();
  h.init();
  return { update: (data) => { h.update(data); }, digest: () => Buffer.from(h.digest('binary')) };
}

export function hashHex(hash: Uint8Array): string {
  // a view, not Buffer.from(hash)'s copy: every message a read yields names its hash in hex
  return hexOf(Buffer.isBuffer(hash) ? hash : Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength));
}
