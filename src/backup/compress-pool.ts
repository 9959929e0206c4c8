// Blob compression for a backup on worker threads, a batch of blobs per message. zlib's async
// calls hand every blob to the thread pool and back (measured: ~50 % more CPU than compressing the
// same blobs in one thread, most of it on the main thread), so a backup compressed at about one
// core's speed whatever the cores; workers take a batch at a time and the main thread only reads,
// seals and writes. The worker is a few lines of CommonJS run from a string: it needs node:zlib
// and, for zstd, zstd-napi's binding by the path zstd.ts resolved, and so runs the same from dist/
// and under the test runner. The copier's read buffers are SharedArrayBuffers, and the workers
// read the blobs there: copying each batch in cost the main thread about what one-shot zstd saved,
// and moving the buffers there and back made each batch's 4 MiB new external memory to V8 every
// time they came back (17 full collections a run against 3: measured, session 19).
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { brotliCompressSync, constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { backupLimits } from '../limits.js';
import type { BlobCodec } from './format.js';
import { zstdCompress, zstdOneShotModule } from './zstd.js';
import { nativeBlakeAddon } from '../hash/pool.js';
import { startCommonJsWorker } from '../worker-argv.js';

/**
 * The worker: {id, codec, level, quality, window, buffers, places} in, where each blob is
 * places[3i..3i+2] = (index into buffers, byte offset, length) and each buffer is shared (the
 * copier's read buffers) or moved, never copied (cloning a Buffer copies its whole backing store);
 * {id, data, lengths, digests?} back: the outputs one after another in one new buffer, moved, and
 * with `digest` set (and the BLAKE3 binding loaded: workerData.blake3) each blob's BLAKE3, 32
 * bytes a blob, hashed before it is compressed, in a buffer of its own, moved. Or {id, error}.
 * zstd is one shot into that buffer (zstd.ts): a context per worker, reused, and no copy of the
 * outputs; Brotli and deflate output their own buffers, copied together.
 * With `out` (a SharedArrayBuffer of the caller's, reused batch after batch) zstd writes the
 * digests and then the outputs there when their bound fits, and answers {id, lengths, shared}
 * (`shared`: where the outputs start, the digests' bytes before them). A new buffer moved back per
 * batch was ~2 MiB of new external memory to V8 each time: a full collection every ~30 batches
 * of a full backup, on the main thread every core waits for. There, with `headroom`, each output
 * is written that many bytes after the previous one's end: room the caller fills with the
 * record's header, so a batch's records lie one after another (one write part, one hash update).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const C = zlib.constants;
if (workerData && workerData.nice !== undefined) {
  // as low as the runtime's helpers (src/thread-priority.ts): this thread's own id from /proc
  try { require('node:os').setPriority(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()), workerData.nice); } catch {}
}
const zstd = workerData && workerData.zstd ? require(workerData.zstd) : undefined;
const blake = workerData && workerData.blake3 ? require(workerData.blake3) : undefined;
let cctx;
parentPort.on('message', ({ id, codec, level, quality, window, buffers, places, digest, out, headroom }) => {
  try {
    const views = buffers.map((b) => Buffer.from(b));
    const count = places.length / 3;
    const lengths = [];
    const digestBytes = digest && blake ? count * 32 : 0;
    let bound = 0;
    if (codec === 'zstd') for (let i = 0; i < count; i++) bound += zstd.compressBound(places[3 * i + 2]);
    // zstd writes into the caller's shared output buffer when the digests, the outputs' bound and
    // the room before each output fit
    const room = headroom || 0;
    const into = out !== undefined && codec === 'zstd' && digestBytes + bound + room * count <= out.byteLength;
    let digests;
    if (digestBytes > 0) {
      digests = into ? Buffer.from(out, 0, digestBytes) : Buffer.allocUnsafeSlow(digestBytes);
      for (let i = 0; i < count; i++) {
        const at = places[3 * i + 1];
        digests.write(blake.blake3UrlSafeBase64(views[places[3 * i]].subarray(at, at + places[3 * i + 2])), i * 32, 'base64url');
      }
    }
    let result;
    if (codec === 'zstd') {
      cctx ??= new zstd.CCtx();
      result = into ? Buffer.from(out, digestBytes, bound + room * count) : Buffer.allocUnsafeSlow(bound);
      let to = 0;
      for (let i = 0; i < count; i++) {
        const at = places[3 * i + 1];
        if (into) to += room;
        const n = cctx.compress(result.subarray(to), views[places[3 * i]].subarray(at, at + places[3 * i + 2]), level);
        lengths.push(n);
        to += n;
      }
    } else {
      const output = [];
      let total = 0;
      for (let i = 0; i < count; i++) {
        const at = places[3 * i + 1], length = places[3 * i + 2];
        const b = views[places[3 * i]].subarray(at, at + length);
        const c = codec === 'brotli'
          ? zlib.brotliCompressSync(b, { params: { [C.BROTLI_PARAM_QUALITY]: quality, [C.BROTLI_PARAM_LGWIN]: window, [C.BROTLI_PARAM_SIZE_HINT]: length, [C.BROTLI_PARAM_MODE]: C.BROTLI_MODE_TEXT } })
          : zlib.deflateRawSync(b, { level });
        output.push(c);
        lengths.push(c.length);
        total += c.length;
      }
      result = Buffer.allocUnsafeSlow(total);
      let to = 0;
      for (const c of output) { c.copy(result, to); to += c.length; }
    }
    if (into) parentPort.postMessage({ id, lengths, shared: digestBytes, headroom: room });
    else reply(id, result, lengths, digests);
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.stack || error) });
  }
});
function reply(id, result, lengths, digests) {
  parentPort.postMessage({ id, data: result.buffer, lengths, digests: digests && digests.buffer }, digests ? [result.buffer, digests.buffer] : [result.buffer]);
}`;

/**
 * A batch compressed, and its blobs' BLAKE3 (32 bytes each, in order) when the worker hashed them.
 * `headroom`: the bytes before each compressed view, in its buffer, that are the caller's to write
 * (compressChecked's `headroom` when the outputs came back in `out`; absent: none).
 */
export interface Compressed { compressed: Buffer[]; digests?: Buffer; headroom?: number }

interface Pending { resolve(out: Compressed): void; reject(error: Error): void; out?: SharedArrayBuffer }

interface Slot { worker: Worker; busy: number; pending: Map<number, Pending>; dead?: Error }

export class CompressPool {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private closed: Error | undefined;
  private readonly zstd = new ZstdQueue();

  /** zstd through the older binding on libuv's thread pool (zstd.ts): where zstd-napi did not load. */
  private readonly streaming: boolean;
  /** This thread's compressor, for the batches of workers that died (see compress). */
  private fallback: InlineCompressor | undefined;
  /** The first worker death, or start that failed, for the backup's summary (`compressionWorkerLost`). */
  lost: Error | undefined;
  /** A worker could not be started: no more are tried. */
  private cannotStart: Error | undefined;

  /** Whether the workers hash what they compress (compressChecked): the native BLAKE3 binding is there for them. */
  readonly hashes: boolean;

  /**
   * `zstdModule`: the one-shot binding the workers load (zstd.ts found it here; tests name one that
   * does not load); `blakeAddon` the BLAKE3 binding they hash with ('': they do not hash); `nice`:
   * the workers lower themselves to it (src/thread-priority.ts; undefined: they keep the main thread's).
   */
  constructor(private readonly codec: BlobCodec, threads = defaultThreads(), private readonly zstdModule = zstdOneShotModule, private readonly blakeAddon = nativeBlakeAddon() ?? '', private readonly nice: number | undefined = undefined) {
    this.streaming = codec === 'zstd' && zstdModule === undefined;
    this.hashes = !this.streaming && blakeAddon !== '';
    this.grow(threads);
  }

  /** Worker threads started (dead ones included). */
  get threads(): number {
    return this.slots.length;
  }

  /**
   * Starts workers until there are `threads` (no more than the cores allow: defaultThreads): a
   * copy that turns out bigger than expected gets the rest of them then. Not after close.
   */
  grow(threads: number): void {
    const want = Math.min(threads, defaultThreads());
    while (!this.streaming && !this.closed && !this.cannotStart && this.slots.length < want) {
      let worker: Worker;
      try {
        worker = startCommonJsWorker(WORKER_SOURCE, { workerData: { zstd: this.codec === 'zstd' ? this.zstdModule : undefined, blake3: this.blakeAddon, nice: this.nice } });
      } catch (error) {
        // no thread could be made (ERR_WORKER_INIT_FAILED: ulimit -u, a cgroup's pids.max, memory):
        // the workers already started take the batches, this thread compresses when there are none
        this.cannotStart = new Error(`a compression worker could not be started: ${(error as Error).message}`, { cause: error });
        this.lost ??= this.cannotStart;
        return;
      }
      const slot: Slot = { worker, busy: 0, pending: new Map() };
      slot.worker.on('message', (m: { id: number; data?: ArrayBuffer; lengths?: number[]; digests?: ArrayBuffer; shared?: number; headroom?: number; error?: string }) => {
        const waiting = slot.pending.get(m.id);
        if (!waiting) return;
        slot.pending.delete(m.id);
        slot.busy--;
        if (m.error !== undefined || !m.lengths || (!m.data && (m.shared === undefined || !waiting.out))) waiting.reject(new Error(`compressing blobs failed: ${m.error}`));
        else if (m.data) waiting.resolve({ compressed: split(Buffer.from(m.data), m.lengths), ...(m.digests ? { digests: Buffer.from(m.digests) } : {}) });
        else waiting.resolve({ compressed: split(Buffer.from(waiting.out!, m.shared!), m.lengths, m.headroom ?? 0), ...(m.shared! > 0 ? { digests: Buffer.from(waiting.out!, 0, m.shared!) } : {}), ...(m.headroom ? { headroom: m.headroom } : {}) });
      });
      // a worker that dies (out of memory, a binding that does not load) fails what it held, which compressChecked then compresses here
      slot.worker.on('error', (error) => this.failAll(slot, error));
      slot.worker.on('exit', (code) => this.failAll(slot, new Error(`a compression worker exited (${code})`)));
      this.slots.push(slot);
    }
  }

  /**
   * The compressed bytes of each blob, in order (the least busy worker takes the batch). Blobs
   * that lie in a SharedArrayBuffer (the copier's read buffers) are read by the worker where they
   * lie; the others are copied into one buffer that is moved to it. A worker that dies (its
   * codec's binding does not load in it, out of memory) takes no more batches, and the ones it
   * held are compressed on this thread, as are all once none is left: slower, the same bytes.
   */
  async compress(list: Buffer[]): Promise<Buffer[]> {
    return (await this.compressChecked(list, false)).compressed;
  }

  /**
   * As compress, and (`digest`, when `hashes`) each blob's BLAKE3 as the worker saw it before
   * compressing it. A batch compressed in this thread (a worker died, or streaming zstd) comes back
   * without digests: the caller hashes itself. `out`: the outputs and digests may come back as
   * views into it (the worker's header says when); the caller reuses it only once it is done with them.
   * `headroom`: outputs that come back in `out` each have this many bytes before them, free for the
   * caller (a record's header: Compressed.headroom says when they do).
   */
  compressChecked(list: Buffer[], digest = true, out?: SharedArrayBuffer, headroom = 0): Promise<Compressed> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.streaming) return this.zstd.compress(list).then((compressed) => ({ compressed }));
    const live = this.slots.filter((s) => !s.dead);
    if (live.length === 0) return this.inThisThread(list);
    const slot = live.reduce((a, b) => (b.busy < a.busy ? b : a));
    return this.onWorker(slot, list, digest && this.hashes, out, headroom).catch((error: unknown) => {
      if (this.closed || !slot.dead) throw error; // closed, or the codec failed on a blob: not a death
      return this.inThisThread(list);
    });
  }

  private async inThisThread(list: Buffer[]): Promise<Compressed> {
    this.fallback ??= new InlineCompressor(this.codec);
    return { compressed: await this.fallback.compress(list) };
  }

  private onWorker(slot: Slot, list: Buffer[], digest: boolean, out: SharedArrayBuffer | undefined, headroom: number): Promise<Compressed> {
    const id = this.nextId++;
    const buffers: ArrayBufferLike[] = [];
    const places: number[] = [];
    const copied: number[] = [];
    let copyBytes = 0;
    list.forEach((b, i) => {
      if (b.buffer instanceof SharedArrayBuffer) {
        let index = buffers.indexOf(b.buffer);
        if (index < 0) index = buffers.push(b.buffer) - 1;
        places.push(index, b.byteOffset, b.length);
      } else {
        copied.push(i);
        places.push(-1, copyBytes, b.length);
        copyBytes += b.length;
      }
    });
    const transfer: ArrayBuffer[] = [];
    if (copied.length > 0) {
      const data = Buffer.allocUnsafeSlow(copyBytes);
      for (const i of copied) {
        list[i]!.copy(data, places[3 * i + 1]!);
        places[3 * i] = buffers.length;
      }
      buffers.push(data.buffer);
      transfer.push(data.buffer);
    }
    return new Promise<Compressed>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject, ...(out ? { out } : {}) });
      slot.busy++;
      const message = { id, codec: this.codec, level: this.codec === 'zstd' ? backupLimits.zstdLevel : backupLimits.deflateLevel, quality: backupLimits.brotliQuality, window: backupLimits.brotliWindowBits, buffers, places, digest, out, headroom };
      slot.worker.postMessage(message, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed ??= new Error('the compression pool was closed');
    await Promise.all(this.slots.map(async (slot) => {
      slot.worker.removeAllListeners('exit');
      await slot.worker.terminate();
      this.failAll(slot, new Error('the compression pool was closed'));
    }));
  }

  private failAll(slot: Slot, error: Error): void {
    slot.dead ??= error; // no more work goes to it
    if (!this.closed) this.lost ??= error;
    for (const waiting of slot.pending.values()) waiting.reject(error);
    slot.pending.clear();
    slot.busy = 0;
  }
}

/** The outputs lying one after another in `data`, each `headroom` bytes after the one before. */
function split(data: Buffer, lengths: number[], headroom = 0): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const length of lengths) { at += headroom; out.push(data.subarray(at, at + length)); at += length; }
  return out;
}

function defaultThreads(): number {
  return Math.max(1, Math.min(backupLimits.compressThreadsMax, availableParallelism()));
}

/**
 * Workers for a copy of `bytes` of blobs: one per backupLimits.compressBytesPerThread (at least
 * one), no more than the cores. A worker costs ~25-35 ms of a core to start; an incremental run's
 * few tens of MB are compressed by one while the main thread builds the state, and a second one
 * only took CPU from it (session 25: 20k store, 1,000 new messages).
 */
export function compressThreadsFor(bytes: number): number {
  return Math.max(1, Math.min(defaultThreads(), Math.ceil(bytes / backupLimits.compressBytesPerThread)));
}

/** One zstd call per core, and one more while that leaves a thread of libuv's pool free (UV_THREADPOOL_SIZE, 4 by default). */
export function zstdCallsInFlight(cores = defaultThreads(), poolThreads = Number(process.env.UV_THREADPOOL_SIZE) || 4): number {
  return Math.max(cores, Math.min(cores + 1, poolThreads - 1));
}

/**
 * The pool's interface on the main thread, for a run with little to compress: starting the
 * workers (tens of ms) costs more than compressing a few MB here. The same codecs and settings.
 */
export class InlineCompressor {
  constructor(private readonly codec: BlobCodec) {}

  private readonly zstd = new ZstdQueue();

  async compress(list: Buffer[]): Promise<Buffer[]> {
    if (this.codec === 'zstd') return this.zstd.compress(list);
    return list.map((bytes) => this.codec === 'brotli'
      ? brotliCompressSync(bytes, { params: {
        [zlibConstants.BROTLI_PARAM_QUALITY]: backupLimits.brotliQuality, [zlibConstants.BROTLI_PARAM_LGWIN]: backupLimits.brotliWindowBits,
        [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length, [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_TEXT,
      } })
      : deflateRawSync(bytes, { level: backupLimits.deflateLevel }));
  }

  /** As CompressPool's: no digests (the caller hashes). */
  async compressChecked(list: Buffer[]): Promise<Compressed> {
    return { compressed: await this.compress(list) };
  }

  async close(): Promise<void> {}
}

/**
 * zstd calls on libuv's thread pool, a few at a time. The pool (4 threads) also serves LevelDB and
 * the data files' writes and fsyncs: with every blob of the batches in flight queued there at once,
 * they waited behind them and the pipeline ran one stage at a time (measured: a full backup ~2.5x
 * slower than with Brotli's workers, load ~15). So at most one call per core, and one more while a
 * pool thread stays free for the rest (zstdCallsInFlight): a call is handed to the pool only when
 * the main thread takes the one before it back, so with just one per core each core waited for
 * the main thread whenever it was busy (reading, hashing, writing a batch); the call queued ahead
 * keeps it compressing meanwhile (session 18, 2 cores: full backup ~4.0 s -> ~3.5 s wall).
 */
class ZstdQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly limit = zstdCallsInFlight();

  compress(list: Buffer[]): Promise<Buffer[]> {
    return Promise.all(list.map((bytes) => this.one(bytes)));
  }

  private async one(bytes: Buffer): Promise<Buffer> {
    if (this.running >= this.limit) await new Promise<void>((go) => this.waiting.push(go));
    this.running++;
    try {
      return await zstdCompress(bytes);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
