// Zstandard for the blobs of a version-3 backup repository (docs/BACKUP.md, "Versions and
// compression"). Two native bindings, each where it does best:
//
// - zstd-napi (an optional dependency, built from its bundled zstd sources by node-gyp at install
//   where no prebuilt binary can be fetched) compresses: ZSTD_compressCCtx, one shot, into a
//   buffer of ZSTD_compressBound's size, with one context reused per thread. Its calls are
//   synchronous, so a backup runs them on its compression workers (compress-pool.ts), which read
//   the blobs in the copier's shared read buffers. Measured over the bench's 20k messages fed as a
//   backup feeds them (session 19, 2 cores, loaded): ~3.0-3.3 s of process CPU against ~3.8-4.6 s
//   for the binding below; a whole full backup of the bench store 2.70 s wall against 3.35 s and
//   ~0.3 s less CPU (quiet, 10 pairs: docs/BACKUP.md, session 19), and its frames are ~1 % smaller
//   (they carry the content size, so zstd sizes its tables to the blob).
// - @mongodb-js/zstd 1.2.2 (napi-rs, its binary a prebuilt package from the npm registry; later
//   majors fetch their binary from elsewhere at install) decompresses, on libuv's thread pool, and
//   compresses where zstd-napi did not build. Its compression streams each blob through an 8 KiB
//   copy loop into a Vec grown by doubling (the Rust crate's encode_all): ~0.8 s of CPU around
//   zstd's own over the bench corpus, which is why it no longer compresses where the other loads.
//
// Where neither loads (another platform, a broken install, MAILSTORE_ZSTD=off), a backup stores
// Brotli records instead and says so once (zstdNote); nothing else changes.
//
// Decompression is native where the binary loads (fzstd, pure JavaScript, where it does not:
// ~3x Brotli's CPU, measured), so every repository restores and checks with or without it. Frames
// need not carry a content size (the older binding's do not), and its decoder grows without bound,
// so a record's output is bounded before it is decoded by walking the frame's block headers
// (zstdOutputBound).
import { createRequire } from 'node:module';
import { Decompress } from 'fzstd';
import { backupLimits, limits } from '../limits.js';

interface NativeZstd {
  compress(data: Buffer, level?: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

function loadNative(): { native?: NativeZstd; why?: string } {
  if (process.env.MAILSTORE_ZSTD === 'off') return { why: 'MAILSTORE_ZSTD=off' };
  const require = createRequire(import.meta.url);
  // the binary's own package (its loader's index drops the level argument); on glibc Linux first, as blake3-core.ts
  const candidates = process.platform === 'linux' ? [`@mongodb-js/zstd-linux-${process.arch}-gnu`, `@mongodb-js/zstd-linux-${process.arch}-musl`] : [];
  candidates.push('@mongodb-js/zstd/bindings.js');
  let why = '';
  for (const name of candidates) {
    try {
      const loaded = require(name) as Partial<NativeZstd>;
      if (typeof loaded.compress === 'function' && typeof loaded.decompress === 'function') return { native: loaded as NativeZstd };
    } catch (error) {
      why = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    }
  }
  return { why };
}

const loaded = loadNative();

/** zstd-napi's low-level binding: a compression context and the bound of a frame's size. */
export interface OneShotZstd {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  compressBound(size: number): number;
}

function loadOneShot(): { oneShot?: OneShotZstd; path?: string } {
  if (process.env.MAILSTORE_ZSTD === 'off' || process.env.MAILSTORE_ZSTD === 'streaming') return {};
  const require = createRequire(import.meta.url);
  try {
    const path = require.resolve('zstd-napi/binding.js');
    const oneShot = require(path) as Partial<OneShotZstd>;
    if (typeof oneShot.CCtx === 'function' && typeof oneShot.compressBound === 'function') return { oneShot: oneShot as OneShotZstd, path };
  } catch {
    // not built here (no compiler at install, another platform): the streaming binding compresses
  }
  return {};
}

const oneShot = loadOneShot();

/**
 * The module the compression workers load for one-shot zstd (compress-pool.ts), undefined where
 * it did not load: then zstd runs through the older binding on libuv's thread pool.
 * MAILSTORE_ZSTD=streaming chooses that path on purpose (tests, and A/B measurements).
 */
export const zstdOneShotModule: string | undefined = oneShot.path;

let context: InstanceType<OneShotZstd['CCtx']> | undefined;

/** One blob at `level`, one shot with this thread's reused context (the main thread's here; each worker has its own). */
export function zstdCompressOneShot(binding: OneShotZstd, cctx: InstanceType<OneShotZstd['CCtx']>, bytes: Uint8Array, level: number): Buffer {
  const out = Buffer.allocUnsafe(binding.compressBound(bytes.length));
  return out.subarray(0, cctx.compress(out, bytes, level));
}

/** True when new blobs can be compressed with zstd here. */
export const zstdAvailable = loaded.native !== undefined || oneShot.oneShot !== undefined;

/** Why zstd compression is not available (undefined when it is), for the one note a backup prints. */
export const zstdNote: string | undefined = zstdAvailable ? undefined
  : `zstd compression is not available (${loaded.why || 'no binary for this platform'}): new blobs are stored with Brotli; the repository restores as before`;

/**
 * One blob, zstd at `backupLimits.zstdLevel`: one shot on this thread where zstd-napi loads (a
 * single blob, or an inline batch of a small run: no worker to start), else on libuv's thread pool.
 */
export function zstdCompress(bytes: Buffer): Promise<Buffer> {
  if (oneShot.oneShot) {
    context ??= new oneShot.oneShot.CCtx();
    return Promise.resolve(zstdCompressOneShot(oneShot.oneShot, context, bytes, backupLimits.zstdLevel));
  }
  return zstdCompressStreaming(bytes);
}

/** One blob through the older, streaming binding (libuv's thread pool), whatever else loads: for tests of repositories it wrote. */
export function zstdCompressStreaming(bytes: Buffer): Promise<Buffer> {
  if (!loaded.native) return Promise.reject(new Error(zstdNote));
  return loaded.native.compress(bytes, backupLimits.zstdLevel);
}

/**
 * The most bytes a single zstd frame can decode to, from its block headers alone (RFC 8878 3.1.1):
 * a raw or RLE block gives its Block_Size, a compressed one at most Block_Maximum_Size (128 KiB, or
 * the window when that is smaller); the frame must end exactly at the body's end (a checksum after
 * the last block when the frame says so). Throws on anything else, past `bytesMax`, for a content
 * size its blocks cannot hold, or for a window past ZSTD_WINDOW_MAX: a damaged or hostile record
 * cannot make a restore allocate more than it claims.
 */
export function zstdOutputBound(frame: Buffer, bytesMax: number = limits.messageBytesSettingMax): number {
  return frameLayout(frame, bytesMax).bound;
}

function frameLayout(frame: Buffer, bytesMax: number): { bound: number; contentSize?: number } {
  if (frame.length < 6 || frame.readUInt32LE(0) !== 0xfd2fb528) throw new Error('not a zstd frame');
  const descriptor = frame[4]!;
  const fcsFlag = descriptor >> 6, single = (descriptor >> 5) & 1, checksum = (descriptor >> 2) & 1, dictFlag = descriptor & 3;
  if ((descriptor & 0x08) !== 0) throw new Error('zstd frame header: reserved bit set');
  const sizeAt = 5 + (single ? 0 : 1) + [0, 1, 2, 4][dictFlag]!;
  let at = sizeAt + [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (at > frame.length) throw new Error('the zstd frame ends early');
  // fzstd allocates a frame's content size, and its window, before decoding: a 17-byte frame saying
  // 1 GB cost 1 GB, as did a 10-byte one asking for a 1 GiB window
  const contentSize = fcsFlag === 0 ? (single ? frame[sizeAt] : undefined) : fcsFlag === 1 ? frame.readUInt16LE(sizeAt) + 256
    : fcsFlag === 2 ? frame.readUInt32LE(sizeAt) : Number(frame.readBigUInt64LE(sizeAt));
  const windowBytes = single ? contentSize! : windowSize(frame[5]!);
  if (windowBytes > ZSTD_WINDOW_MAX) throw new Error(`the zstd frame asks for a window of ${windowBytes} bytes, more than a decoder grants (${ZSTD_WINDOW_MAX})`);
  const blockMax = Math.min(ZSTD_BLOCK_MAX, windowBytes);
  let bound = 0;
  for (;;) {
    if (at + 3 > frame.length) throw new Error('the zstd frame ends early');
    const header = frame[at]! | (frame[at + 1]! << 8) | (frame[at + 2]! << 16);
    const last = header & 1, type = (header >> 1) & 3, size = header >>> 3;
    at += 3;
    if (type === 3) throw new Error('zstd block of a reserved type');
    bound += type === 2 ? blockMax : size;
    at += type === 1 ? 1 : size;
    if (bound > bytesMax) throw new Error(`the zstd frame may hold more than ${bytesMax} bytes, more than its message`);
    if (last) break;
  }
  if (at + (checksum ? 4 : 0) !== frame.length) throw new Error('the zstd frame does not end where its record does');
  if (contentSize !== undefined && contentSize > bound) throw new Error(`the zstd frame's content size (${contentSize} bytes) is more than its blocks can hold (${bound})`);
  return { bound, contentSize };
}

/** Window_Size from a frame's Window_Descriptor (RFC 8878 3.1.1.1.2). */
function windowSize(descriptor: number): number {
  const base = 2 ** (10 + (descriptor >> 3));
  return base + (base / 8) * (descriptor & 7);
}

const ZSTD_BLOCK_MAX = 128 * 1024;
/** libzstd's decoder refuses a larger window unless told otherwise (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 2^27); fzstd now does too. */
const ZSTD_WINDOW_MAX = 2 ** 27;

/**
 * A record's zstd body back to the message bytes, at most `bytesMax` (the size its snapshot
 * records, when known); throws (the caller says CORRUPT) on anything else. The native decoder
 * grows its output to whatever the frame holds, so it decodes only frames whose blocks hold about
 * that much (ours: full blocks but the last); any other streams through fzstd, cut at `bytesMax`.
 */
export async function zstdDecompress(body: Buffer, bytesMax: number = limits.messageBytesSettingMax): Promise<Buffer> {
  const { bound, contentSize } = frameLayout(body, limits.messageBytesSettingMax);
  const outMax = Math.min(bound, bytesMax);
  if (contentSize !== undefined && contentSize > outMax) throw new Error(`the zstd frame's content size (${contentSize} bytes) is more than its message (${outMax})`);
  const native = loaded.native && bound <= bytesMax + ZSTD_BLOCK_MAX ? loaded.native : undefined;
  const out = native ? await native.decompress(body) : decompressPortable(body, outMax);
  if (out.length > outMax) throw new Error('the zstd frame decoded to more than its blocks or its message allow');
  return out;
}

/** fzstd, counting the output as it streams out (the bound holds here too). */
function decompressPortable(body: Buffer, bytesMax: number): Buffer {
  const chunks: Uint8Array[] = [];
  let total = 0, ended = false;
  const stream = new Decompress((chunk, final) => {
    total += chunk.length;
    if (total > bytesMax) throw new Error(`the frame holds more than ${bytesMax} bytes, more than its blocks allow`);
    chunks.push(chunk);
    if (final) ended = true;
  });
  stream.push(body, true);
  if (!ended) throw new Error('the zstd frame ends early');
  return chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.length) : Buffer.concat(chunks, total);
}
