// BLAKE3 on worker threads, for long sequential verification (scrub's pack pass): the reading
// thread hands over a buffer and the byte ranges to hash, and goes on reading while a worker
// hashes. The worker runs the same native binding as hashBytes, so the digests are the same
// (test/hash checks it). Without the native binding there is no pool: callers hash in-thread.
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { hashImplementation } from './blake3.js';
import { limits } from '../limits.js';
import { wholeRecordRanges } from '../blob/pack-format.js';
import { startCommonJsWorker } from '../worker-argv.js';

/**
 * CommonJS, evaluated in each worker: loads the binding by absolute path, hashes, hands the buffer
 * back. A job with an `fd` is a pack scan's chunk the worker reads itself (pread into a buffer of
 * its own: the pack's bytes never cross the reading thread) and parses it with the function the
 * reading thread uses (wholeRecordRanges of pack-format.ts, its source text evaluated here): it
 * answers with how far the whole records reach as soon as it knows (the scan reads on from there),
 * then with their header hashes and digests.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { crc32 } = require('node:zlib');
const { blake3UrlSafeBase64 } = require(workerData.addon);
// the binding's base64 digest decoded into place: its blake3() makes a Buffer over Rust memory,
// freed by a finalizer, ~1 µs more a call (blake3-core.ts, nativeDigest)
function digestInto(digests, at, bytes) {
  Buffer.from(digests.buffer, digests.byteOffset, digests.byteLength).write(blake3UrlSafeBase64(bytes), at, 'base64url');
}
const wholeRecordRanges = (${wholeRecordRanges.toString()});
let chunk;
function readAndParse(fd, position, length) {
  if (!chunk || chunk.length < length) chunk = Buffer.allocUnsafeSlow(length);
  let n = 0;
  while (n < length) {
    const k = readSync(fd, chunk, n, length - n, position + n);
    if (k === 0) break;
    n += k;
  }
  const ranges = [];
  return { parsed: wholeRecordRanges(chunk, n, crc32, ranges), ranges, length };
}
function hashParsed(scanned) {
  const { ranges } = scanned;
  const hashes = new Uint8Array(ranges.length * 16), digests = new Uint8Array(ranges.length * 16);
  for (let i = 0; i < ranges.length; i += 2) {
    hashes.set(chunk.subarray(ranges[i] - 44, ranges[i] - 12), i * 16);
    digestInto(digests, i * 16, chunk.subarray(ranges[i], ranges[i] + ranges[i + 1]));
  }
  scanned.hashes = hashes;
  scanned.digests = digests;
  return scanned;
}
// The chunks after the last one asked for, scanned before they are (job.scan): the worker does
// not wait for the reading thread to hand it each one. One chunk a turn of this worker's event
// loop, so a job that comes meanwhile waits for one chunk at most. Only for the scan that asked
// (its token: a descriptor's number is reused once its file is closed).
const ahead = { token: undefined, next: undefined, chunks: new Map(), records: 0, fd: 0, scan: undefined, stepping: false };
function dropAhead() {
  ahead.chunks.clear();
  ahead.records = 0;
}
function answer(id, { parsed, ranges, hashes, digests }) {
  parentPort.postMessage({ id, ranges, hashes, digests }, [hashes.buffer, digests.buffer]);
}
function scanChunk({ id, fd, position, length, scan }) {
  const done = scan !== undefined && scan.token === ahead.token ? ahead.chunks.get(position) : undefined;
  if (done && done.length === length) {
    ahead.chunks.delete(position);
    ahead.records -= done.ranges.length / 2;
    parentPort.postMessage({ id, parsed: done.parsed, ahead: true });
    answer(id, done);
  } else {
    ahead.token = scan && scan.token;
    dropAhead();
    const scanned = readAndParse(fd, position, length);
    parentPort.postMessage({ id, parsed: scanned.parsed });
    answer(id, hashParsed(scanned));
    ahead.next = scanned.parsed > 0 ? position + scanned.parsed : undefined;
  }
  if (scan === undefined) return;
  ahead.fd = fd;
  ahead.scan = scan;
  if (!ahead.stepping) {
    ahead.stepping = true;
    setImmediate(scanAhead);
  }
}
function scanAhead() {
  const { fd, scan: { end, chunkBytes, chunks, records }, next: p } = ahead;
  ahead.stepping = false;
  if (p === undefined || p >= end || ahead.chunks.size >= chunks || ahead.records >= records) return;
  try {
    const scanned = hashParsed(readAndParse(fd, p, Math.min(chunkBytes, end - p)));
    ahead.chunks.set(p, scanned);
    ahead.records += scanned.ranges.length / 2;
    ahead.next = scanned.parsed > 0 ? p + scanned.parsed : undefined;
  } catch {
    ahead.next = undefined; // asked for, the chunk is read again and a failure answered then
    return;
  }
  ahead.stepping = true;
  setImmediate(scanAhead);
}
parentPort.postMessage({ ready: true });
parentPort.on('message', (job) => {
  if (job.endScan !== undefined) {
    if (ahead.token === job.endScan) {
      ahead.next = undefined;
      dropAhead();
    }
    return;
  }
  if (job.fd !== undefined) {
    try {
      scanChunk(job);
    } catch (error) {
      parentPort.postMessage({ id: job.id, error: String(error && error.message || error) });
    }
    return;
  }
  const { id, buffer, ranges, at } = job;
  const bytes = Buffer.from(buffer, at);
  const digests = new Uint8Array((ranges.length / 2) * 32);
  for (let i = 0; i < ranges.length; i += 2) digestInto(digests, i * 16, bytes.subarray(ranges[i], ranges[i] + ranges[i + 1]));
  // a shared buffer stays where it is, in both threads: only the digests go back
  if (buffer instanceof SharedArrayBuffer) parentPort.postMessage({ id, digests });
  else parentPort.postMessage({ id, buffer, digests }, [buffer, digests.buffer]);
});
`;

/** A pack chunk a worker read and hashed (scanChunk): body (start, length) pairs in the chunk, header hashes and digests end to end. */
export interface ScannedChunk {
  ranges: number[];
  hashes: Uint8Array;
  digests: Uint8Array;
}

/**
 * scanChunk's chunks read ahead: the worker goes on to the chunks after it (of `chunkBytes`, up to
 * `end`) before they are asked for, while it waits. `token` names the scan (one per scan: a
 * descriptor's number is reused once its file is closed).
 */
export interface ScanAhead {
  token: number;
  end: number;
  chunkBytes: number;
  /** How many chunks past the one asked for (default limits.scanChunksAhead); never more than limits.scanRecordsAhead records held. */
  chunks?: number;
}

interface ScanWaiting {
  parsed: { resolve: (parsed: number) => void; reject: (error: Error) => void };
  done: { resolve: (chunk: ScannedChunk) => void; reject: (error: Error) => void };
}

interface Waiting {
  /** What the job hashes: a shared one is never handed over, and the answer is the digests alone. */
  buffer: ArrayBufferLike;
  resolve: (result: { buffer: ArrayBufferLike; digests: Uint8Array }) => void;
  reject: (error: Error) => void;
}

/**
 * The path of the native BLAKE3 binding a worker loads (its `blake3UrlSafeBase64`), or undefined
 * when this thread does not hash with it (the wasm fallback: the workers would not either).
 */
export function nativeBlakeAddon(): string | undefined {
  if (hashImplementation !== 'native') return undefined;
  try {
    return createRequire(import.meta.url).resolve('@napi-rs/blake-hash');
  } catch {
    return undefined;
  }
}

export class HashPool {
  private readonly waiting = new Map<number, Waiting>();
  private readonly scans = new Map<number, ScanWaiting>();
  private nextId = 1;
  private turn = 0;
  private failure?: Error;
  private started = 0;
  /** Chunks a worker had scanned before they were asked for (scanChunk's `ahead`): tests, the bench. */
  scannedAhead = 0;

  /** `workers`: already running (tests hand in their own); `addon`: the binding's path, for the workers `grow` starts. */
  private constructor(private readonly workers: Worker[], private readonly addon = '') {
    for (const worker of workers) this.watch(worker);
  }

  /** Starts a worker (see `watch`); throws when no thread can be made. */
  private startWorker(): void {
    // a worker keeps few objects (its buffers are the caller's, transferred): a small young
    // generation, or it grows to V8's default and stays resident as long as the worker
    const worker = startCommonJsWorker(WORKER_SOURCE, { workerData: { addon: this.addon }, resourceLimits: { maxYoungGenerationSizeMb: limits.hashWorkerYoungGenerationMb } });
    this.workers.push(worker);
    this.watch(worker);
  }

  /** Its answers resolve jobs; its end other than through close() fails the pool (see `fail`). */
  private watch(worker: Worker): void {
    worker.on('message', (m: { id: number; buffer?: ArrayBuffer; digests: Uint8Array; ready?: true; parsed?: number; ranges?: number[]; hashes?: Uint8Array; error?: string; ahead?: true }) => {
      if (m.ready) { this.started++; return; }
      const scan = this.scans.get(m.id);
      if (scan) {
        if (m.error !== undefined) {
          this.scans.delete(m.id);
          this.idle();
          const error = new Error(`hash worker: ${m.error}`);
          scan.parsed.reject(error);
          scan.done.reject(error);
        } else if (m.parsed !== undefined) {
          if (m.ahead) this.scannedAhead++;
          scan.parsed.resolve(m.parsed);
        } else {
          this.scans.delete(m.id);
          this.idle();
          scan.done.resolve({ ranges: m.ranges!, hashes: m.hashes!, digests: m.digests });
        }
        return;
      }
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      w?.resolve({ buffer: m.buffer ?? w.buffer, digests: m.digests });
    });
    worker.on('error', (error) => this.fail(error));
    // A worker only ends through close(); any other end (a crash, or terminate(), which may
    // report code 0) fails the jobs it holds, which their callers then hash themselves.
    worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
    worker.unref();
  }

  /**
   * Starts workers until there are `threads` (never fewer): the store's shared pool grows to the
   * most any of its users asked for. A failed or closed pool does not grow, and a worker thread
   * that cannot be made ends the growth there. Returns the workers it has.
   */
  grow(threads: number): number {
    try {
      while (!this.failure && this.workers.length < threads) this.startWorker();
    } catch {
      // `new Worker` threw (no thread could be made): the pool keeps the workers it has
    }
    return this.workers.length;
  }

  /**
   * A pool of `threads` workers (default: one fewer than the cores, at least one), or undefined
   * when hashing cannot leave this thread (no native binding, `threads` is 0, or a worker thread
   * could not be made).
   */
  static create(threads = Math.max(1, os.availableParallelism() - 1)): HashPool | undefined {
    const addon = threads < 1 ? undefined : nativeBlakeAddon();
    if (addon === undefined) return undefined;
    const pool = new HashPool([], addon);
    if (pool.grow(threads) < threads) {
      // a thread that cannot be made (ERR_WORKER_INIT_FAILED, out of memory): the caller hashes in
      // its own thread, as without the binding; the workers already made are ended
      void pool.close();
      return undefined;
    }
    return pool;
  }

  /**
   * Every worker has loaded the binding and hashes at once: a caller that must not wait ~30 ms for
   * a start (a read of a few thousand small messages) hashes in its own thread until then.
   */
  get ready(): boolean {
    return this.started === this.workers.length && !this.failure;
  }

  get threads(): number {
    return this.workers.length;
  }

  /**
   * Hashes `ranges` (start, length pairs, counted from `at`) of `buffer`. An ArrayBuffer is handed
   * to a worker and unusable until the promise gives it back; a SharedArrayBuffer is only shared
   * (its bytes must not change until the promise settles) and detaches nothing. The first buffer
   * a thread transfers out invalidates V8's ArrayBufferDetaching protector there: every optimised
   * function that touches a typed array is thrown away and compiled again with checks for it (a
   * dozen of the read path's, in the middle of the first pass). Rejects if a worker failed;
   * callers then hash in-thread.
   */
  hash<B extends ArrayBufferLike>(buffer: B, ranges: number[], at = 0): Promise<{ buffer: B; digests: Uint8Array }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const worker = this.workers[this.turn++ % this.workers.length];
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { buffer, resolve, reject });
      worker.ref();
      if (buffer instanceof SharedArrayBuffer) worker.postMessage({ id, buffer, ranges, at });
      else worker.postMessage({ id, buffer, ranges, at }, [buffer as ArrayBuffer]);
    }).finally(() => this.idle()) as Promise<{ buffer: B; digests: Uint8Array }>;
  }

  /**
   * A pack scan's chunk: `length` bytes at `position` of the open file `fd`, read, parsed and
   * hashed on a worker (see WORKER_SOURCE). `parsed` is how far the records lying whole in it
   * reach (0: none starts at `position`), known before they are hashed; `done` their hashes and
   * digests. Both reject if the read or a worker failed; callers then read and hash in-thread.
   * With `ahead`, the worker then scans up to `ahead.chunks` chunks past it (and chunks holding up
   * to limits.scanRecordsAhead records) before they are asked for, and answers them at once when they are.
   */
  scanChunk(fd: number, position: number, length: number, ahead?: ScanAhead): { parsed: Promise<number>; done: Promise<ScannedChunk> } {
    if (this.failure) {
      const failed = Promise.reject(this.failure);
      failed.catch(() => undefined);
      return { parsed: failed, done: failed as Promise<never> };
    }
    const id = this.nextId++;
    const worker = this.workers[this.turn++ % this.workers.length];
    let waiting!: ScanWaiting;
    const parsed = new Promise<number>((resolve, reject) => { waiting = { parsed: { resolve, reject }, done: undefined! }; });
    const done = new Promise<ScannedChunk>((resolve, reject) => { waiting.done = { resolve, reject }; });
    parsed.catch(() => undefined); // both are the caller's to await; a failure is not unhandled meanwhile
    done.catch(() => undefined);
    this.scans.set(id, waiting);
    worker.ref();
    worker.postMessage({ id, fd, position, length, scan: ahead && { ...ahead, chunks: ahead.chunks ?? limits.scanChunksAhead, records: limits.scanRecordsAhead } });
    return { parsed, done };
  }

  /** The scan `token` read ahead for is over: its worker stops reading on and drops what it read (its descriptor is closed next). */
  endScan(token: number): void {
    if (this.failure) return;
    for (const worker of this.workers) worker.postMessage({ endScan: token });
  }

  /** No job left: the workers no longer keep the process alive. */
  private idle(): void {
    if (this.waiting.size === 0 && this.scans.size === 0) for (const w of this.workers) w.unref();
  }

  /** Whether a worker failed (or the pool was closed): every hash() rejects, callers hash in their own thread. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
    for (const w of this.scans.values()) {
      w.parsed.reject(this.failure);
      w.done.reject(this.failure);
    }
    this.scans.clear();
  }

  async close(): Promise<void> {
    this.fail(new Error('hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
