// Zstandard for the blobs of a version-3 backup repository (docs/BACKUP.md, "Versions and
// compression"). Compression is native (@mongodb-js/zstd 1.2.2: napi-rs, its binary a prebuilt
// package from the npm registry; later majors fetch their binary from elsewhere at install) and
// runs on libuv's thread pool: both cores compress while the main thread reads, hashes and writes,
// with no worker threads, no copy of each batch into a worker and none back (measured: those copies,
// postMessage and the workers' garbage were ~a fifth of a Brotli backup's CPU). Where the binary does
// not load (another platform, a broken install, MAILSTORE_ZSTD=off), a backup stores Brotli records
// instead and says so once (zstdNote); nothing else changes.
//
// Decompression is fzstd (pure JavaScript, synchronous: decodeRecord is), so every repository
// restores and checks with or without the binary.
import { createRequire } from 'node:module';
import { Decompress } from 'fzstd';
import { backupLimits, limits } from '../limits.js';

interface NativeZstd {
  compress(data: Buffer, level?: number): Promise<Buffer>;
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
      if (typeof loaded.compress === 'function') return { native: loaded as NativeZstd };
    } catch (error) {
      why = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    }
  }
  return { why };
}

const loaded = loadNative();

/** True when new blobs can be compressed with zstd here. */
export const zstdAvailable = loaded.native !== undefined;

/** Why zstd compression is not available (undefined when it is), for the one note a backup prints. */
export const zstdNote: string | undefined = loaded.native ? undefined
  : `zstd compression is not available (${loaded.why || 'no binary for this platform'}): new blobs are stored with Brotli; the repository restores as before`;

/** One blob, zstd at `backupLimits.zstdLevel`, on libuv's thread pool. */
export function zstdCompress(bytes: Buffer): Promise<Buffer> {
  if (!loaded.native) return Promise.reject(new Error(zstdNote));
  return loaded.native.compress(bytes, backupLimits.zstdLevel);
}

/**
 * A record's zstd body back to the message bytes; throws (the caller says CORRUPT) on anything
 * else. The binding's frames carry no content size, so the output is counted as it streams out and
 * refused past the largest message: a damaged or hostile record cannot make a restore allocate more.
 */
export function zstdDecompress(body: Buffer): Buffer {
  const chunks: Uint8Array[] = [];
  let total = 0, ended = false;
  const stream = new Decompress((chunk, final) => {
    total += chunk.length;
    if (total > limits.messageBytesMax) throw new Error(`the frame holds more than ${limits.messageBytesMax} bytes, more than a message may`);
    chunks.push(chunk);
    if (final) ended = true;
  });
  stream.push(body, true);
  if (!ended) throw new Error('the zstd frame ends early');
  return chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.length) : Buffer.concat(chunks, total);
}
