// BLAKE3-256, the identity of every stored message. Native (@napi-rs/blake-hash) where its binary
// loads, else hash-wasm's WebAssembly build; test/hash compares the two on the same inputs.
import { createRequire } from 'node:module';
import { createBLAKE3, type IHasher } from 'hash-wasm';

export const HASH_BYTES = 32;

export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

interface NativeBlake {
  blake3(input: Uint8Array): Buffer;
  Blake3Hasher: new () => { update(input: Buffer): unknown; digestBuffer(): Buffer };
}

function loadNative(): NativeBlake | undefined {
  if (process.env.MAILSTORE_HASH === 'wasm') return undefined;
  try {
    return createRequire(import.meta.url)('@napi-rs/blake-hash') as NativeBlake;
  } catch {
    return undefined;
  }
}

const native = loadNative();
const wasm: IHasher = await createBLAKE3(256);

/** Which implementation is in use: 'native' or 'wasm'. */
export const hashImplementation: 'native' | 'wasm' = native ? 'native' : 'wasm';

export function wasmHash(data: Uint8Array): Buffer {
  wasm.init();
  wasm.update(data);
  return Buffer.from(wasm.digest('binary'));
}

export function nativeHash(data: Uint8Array): Buffer | undefined {
  return native?.blake3(data);
}

export function hashBytes(data: Uint8Array): Buffer {
  return native ? native.blake3(data) : wasmHash(data);
}

export async function createHasher(): Promise<Hasher> {
  if (native) {
    const h = new native.Blake3Hasher();
    return {
      update: (data) => { h.update(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)); },
      digest: () => h.digestBuffer(),
    };
  }
  const h = await createBLAKE3(256);
  h.init();
  return { update: (data) => { h.update(data); }, digest: () => Buffer.from(h.digest('binary')) };
}

export function hashHex(hash: Uint8Array): string {
  return Buffer.from(hash).toString('hex');
}
