// Append-only blob packs: message bodies framed with their BLAKE3 hash. A batch of new blobs is
// written with one write and one fdatasync per pack (group commit step 2). Every read re-hashes;
// a mismatch is CORRUPT, never wrong bytes.
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { MailstoreError, assert, fromSystemError, isOutOfDescriptors } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { ensureDir, fileTimeStamp, unusedPath } from '../fs/durable.js';
import { HASH_BYTES, createHasher, hashBytes, hashHex, hashMatches } from '../hash/blake3.js';
import type { HashPool, ScannedChunk } from '../hash/pool.js';
import type { NumberRuns } from './number-runs.js';
import { limits } from '../limits.js';
import {
  PACK_HEADER_BYTES, PACK_RECORD_MAGIC, RECORD_HEADER_BYTES, decodePackHeader, decodeRecordHeader, recordHeaderFault,
  encodePackHeader, encodeRecordHeader, packFileName, parsePackFileName, wholeRecordRanges, PACK_NUMBER_MAX,
} from './pack-format.js';

export interface BlobLocation {
  pack: number;
  /** Offset of the record header in the pack. */
  offset: number;
  /** Body length in bytes. */
  length: number;
}

/**
 * Finds a blob's current location by hash (the index): a read whose pack was retired by compaction
 * meanwhile looks once more and reads the new copy.
 */
export type BlobLocator = (hash: Buffer) => Promise<BlobLocation | undefined>;

/**
 * The pack number of a body stored inside its journal record (docs/FORMAT.md, "Inline bodies"):
 * such a location's offset is the record's seq. No pack file has this number.
 */
export const INLINE_PACK = -1;

/** Reads inline bodies (the Store sets it: the journal). Returns the body verified against its hash, or throws CORRUPT. */
export type InlineSource = (location: BlobLocation, hash: Buffer) => Promise<Buffer>;

export interface PackOptions {
  packBytesMax: number;
  /** Called before a new pack file is created and when a pack is missing: throws UNMOUNTED when the store left its partition. */
  checkMounted: (path: string) => Promise<void>;
}

interface PendingBlob {
  location: BlobLocation;
  hash: Buffer;
  bytes: Buffer;
}

/** Bytes written to the pack being appended to and not yet synced; `writing` while writeAfter's write runs. */
interface WrittenRegion {
  start: number;
  end: number;
  path: string;
  writing?: Promise<void>;
}

/**
 * The records of `blobs`, header and body side by side for one vectored write (no concatenating
 * copy of the bodies). Checked before the write, not only when read back: each record lands where
 * the index will say it is, and its header names exactly the body that follows it. (The messages
 * are built only on failure: two hex strings a blob cost an import 3-7 µs a message.)
 */
function recordParts(pack: number, blobs: PendingBlob[]): { parts: Buffer[]; start: number; length: number } {
  const start = blobs[0].location.offset;
  const parts: Buffer[] = [];
  let length = 0;
  for (const blob of blobs) {
    if (blob.location.pack !== pack || blob.location.offset !== start + length) {
      assert(false, `pack record for ${blob.hash.toString('hex')} reserved at ${blob.location.pack}/${blob.location.offset}, written at ${pack}/${start + length}`);
    }
    assertRecordHash(blob.hash);
    parts.push(encodeRecordHeader(blob.hash, blob.bytes.length), blob.bytes);
    length += RECORD_HEADER_BYTES + blob.bytes.length;
  }
  return { parts, start, length };
}

/** Blobs reserved by one group-commit batch; written by PackStore.write, made durable by PackStore.sync. */
export class PackBatch {
  readonly blobs: PendingBlob[] = [];
  bytes = 0;
  constructor(private readonly store: PackStore) {}

  reserve(hash: Buffer, bytes: Buffer): BlobLocation {
    const location = this.store.reserve(RECORD_HEADER_BYTES + bytes.length, bytes.length);
    this.blobs.push({ location, hash, bytes });
    this.bytes += bytes.length;
    return location;
  }

  /** The bytes this batch writes, one run per pack at its offset (a synchronous replica's tentative round). */
  runs(): { pack: number; offset: number; bytes: Buffer }[] {
    const out: { pack: number; offset: number; parts: Buffer[]; end: number }[] = [];
    for (const blob of this.blobs) {
      let run = out[out.length - 1];
      if (!run || run.pack !== blob.location.pack || run.end !== blob.location.offset) {
        run = { pack: blob.location.pack, offset: blob.location.offset, parts: [], end: blob.location.offset };
        out.push(run);
      }
      run.parts.push(encodeRecordHeader(blob.hash, blob.bytes.length), blob.bytes);
      run.end += RECORD_HEADER_BYTES + blob.bytes.length;
    }
    return out.map((r) => ({ pack: r.pack, offset: r.offset, bytes: Buffer.concat(r.parts) }));
  }
}

export interface ScanOptions {
  /** Read size (default limits.scanChunkBytes). */
  chunkBytes?: number;
  /** Called with the body bytes verified so far (progress, throttling). */
  onBytes?: (n: number) => Promise<void> | void;
  /** Start here instead of at the first record (a scrub cursor). */
  from?: number;
  /**
   * Hash on these worker threads instead of this one. A function is a lease asked for only once a
   * chunk read here holds records of limits.scanPoolRecordBytesMin on average: for smaller ones a
   * worker's round trip costs more than it saves, and its isolate stays resident (issue 16).
   */
  pool?: HashPool | (() => HashPool | undefined);
  /**
   * How many chunks a pool's only worker reads on ahead of the one asked for (default
   * limits.scanChunksAhead): its reads are not throttled by `onBytes`, so only an unthrottled scan
   * asks for more.
   */
  aheadChunks?: number;
}

/**
 * `next` is where the scan goes on after the item: the end of a valid record, but for a record
 * that fails its hash the first valid record header inside it (a torn record's length reaches
 * into the records written after it) when there is one.
 */
export type ScanItem =
  | { kind: 'blob'; offset: number; hash: Buffer; length: number; valid: boolean; next: number }
  | { kind: 'damage'; offset: number; length: number; next: number };

/** A record whose header and body lie whole inside one scanned chunk. */
interface ChunkRecord {
  offset: number;
  hash: Buffer;
  length: number;
}

/** The records one chunk holds whole, and their bodies' digests end to end. */
interface HashedGroup {
  records: ChunkRecord[];
  digests: Uint8Array;
}

function usePool(scan: PackScan, pool: HashPool): void {
  scan.pool = pool;
  scan.ahead = limits.scanChunksInFlight;
}

/** One PackStore.scan in progress: its file, its chunk buffers, and the chunks being hashed. */
interface PackScan {
  handle: FileHandle;
  size: number;
  chunkBytes: number;
  onBytes: ScanOptions['onBytes'];
  pool: HashPool | undefined;
  /** The pool to ask for once this scan's records turn out big enough (ScanOptions.pool). */
  lease?: () => HashPool | undefined;
  /** Chunks read ahead of the one being yielded (while workers hash). */
  ahead: number;
  /** Chunk-sized buffers to read into again. */
  free: ArrayBuffer[];
  groups: Promise<HashedGroup>[];
  /** Chunks handed to the pool and not yet back. */
  onPool: number;
  /** A chunk read and parsed here whose hashing waits until the next chunk is handed to a worker. */
  here?: () => void;
  /** Names this scan to a worker that reads ahead (HashPool.scanChunk), and whether one did. */
  token: number;
  readAhead?: boolean;
  aheadChunks?: number;
}

let scanTokens = 0;

/**
 * A buffer to read a chunk into: no bigger than the pack, as no read of the scan is. A new one is
 * zero-filled memory outside the heap: a chunk's 4 MiB for each small pack (a scrub of 1,000 small
 * packs allocated 4 GB, and the garbage collector ran for the external memory) cost more than
 * reading and hashing the pack.
 */
function chunkBuffer(scan: PackScan): ArrayBuffer {
  return scan.free.pop() ?? new ArrayBuffer(Math.min(scan.chunkBytes, scan.size));
}

export type ScanHeader = { kind: 'header'; valid: boolean; storeId?: Buffer };

/**
 * The records lying whole in the first `n` bytes of `chunk` (read at `position`), in order, into
 * `records` and their bodies' (start, length) into `ranges`; returns the bytes they span. Stops at
 * the first header that does not decode or whose body runs past the chunk.
 */
function parseChunkRecords(chunk: Buffer, n: number, position: number, records: ChunkRecord[], ranges: number[]): number {
  const from = ranges.length;
  const parsed = wholeRecordRanges(chunk, n, crc32, ranges);
  for (let i = from; i < ranges.length; i += 2) {
    const start = ranges[i];
    records.push({ offset: position + start - RECORD_HEADER_BYTES, hash: Buffer.from(chunk.subarray(start - RECORD_HEADER_BYTES + 4, start - 12)), length: ranges[i + 1] });
  }
  return parsed;
}

/** BLAKE3 of each (start, length) range of `bytes`, digests end to end. */
function hashRanges(bytes: Buffer, ranges: number[]): Uint8Array {
  const digests = new Uint8Array((ranges.length / 2) * 32);
  for (let i = 0; i < ranges.length; i += 2) digests.set(hashBytes(bytes.subarray(ranges[i], ranges[i] + ranges[i + 1])), i * 16);
  return digests;
}

/** A chunk a worker read and hashed (HashPool.scanChunk), as the scan's group of records. */
function workerGroup(position: number, chunk: ScannedChunk): HashedGroup {
  const { ranges, hashes, digests } = chunk;
  const records: ChunkRecord[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    const hash = Buffer.from(hashes.buffer, hashes.byteOffset + i * 16, HASH_BYTES);
    records.push({ offset: position + ranges[i] - RECORD_HEADER_BYTES, hash, length: ranges[i + 1] });
  }
  return { records, digests };
}

/** Sealed packs kept elsewhere (the object-storage tier, src/objstore/remote-packs.ts), read in place. */
export interface RemotePackSource {
  has(pack: number): boolean;
  list(): number[];
  handle(pack: number): FileHandle;
  /** Deletes the pack's object and forgets it (after the journal dropped it from the tier). */
  remove(pack: number): Promise<void>;
  /**
   * Whether the object store's own checksum of the pack's object (no bytes read) is still the one
   * recorded when the move verified it; undefined when none was recorded (tier.ts, scrub).
   */
  checksumMatches(pack: number): Promise<boolean | undefined>;
  /** Forgets the bytes of the pack (all packs: none given) kept from earlier GETs. */
  dropCached(pack?: number): void;
}
/** A compaction's new pack is written under this suffix and renamed to its pack name once durable. */
const PARTIAL_SUFFIX = '.partial';
/** One record for readRun: where it is and its hash; readRun sets its body or its error. */
export interface RunItem {
  location: BlobLocation;
  hash: Buffer;
  body?: Buffer;
  /** The whole record (header + body) the body is part of: what compaction copies verbatim. */
  record?: Buffer;
  error?: unknown;
}

export class PackStore {
  private readHandles = new Map<number, FileHandle>();
  /** Closes of read handles closeIdleHandles let go, until they are done. */
  private readonly closing = new Set<Promise<void>>();
  private remote?: RemotePackSource;
  private readonly opening = new Map<number, Promise<FileHandle>>();
  private readonly paths = new Map<number, string>();
  private writeHandle?: FileHandle;
  private current = 0; // number of the pack being appended to; 0 = none yet
  private tail = 0; // committed end of the current pack
  private reservedTail = 0; // end including reservations of the open batch
  private reservedPack = 0;
  private mustRotate = false;
  /** The current pack was created and its directory entry is not yet durable (a failed fsync is retried). */
  private dirSyncPending = false;
  /** Bytes written by `write` (or `writeAfter`, maybe still being written) and not yet synced. */
  private pending?: WrittenRegion;
  /** Bytes `writeAfter` writes right after `pending` while it syncs: the next sync's, once it succeeded. */
  private queued?: WrittenRegion;
  /** Highest pack number handed to a side pack (compaction output); new packs go above it. */
  private allocated = 0;
  /** The side packs this process created (replication ships them as room-making: isSidePack). */
  private readonly sidePacks = new Set<number>();
  /** Readers inside each pack (read, readStream, checkLocation, scan): a retired pack is deleted at 0. */
  private readonly pins = new Map<number, number>();
  /** Retired packs being (or already) deleted: a new reader looks its blob up again instead. */
  private gone?: NumberRuns;
  private readonly unpinned = new Map<number, (() => void)[]>();
  private locator?: BlobLocator;
  private inline?: InlineSource;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    private readonly storeId: Buffer,
    private readonly options: PackOptions,
  ) {}

  static async open(fs: FileSystem, dir: string, storeId: Buffer, options: PackOptions): Promise<PackStore> {
    const store = new PackStore(fs, dir, storeId, options);
    const packs = await store.listPacks();
    if (packs.length > 0) {
      store.current = packs[packs.length - 1];
      const stat = await fs.stat(store.path(store.current));
      store.tail = stat.size;
      // A pack whose header was lost (crash right after create) is not appended to, nor a file
      // another store wrote (copied in by hand): its records are someone's mail, never ours to
      // rewrite. A header that cannot be read now (EMFILE, EIO) costs a new pack, never the open.
      if (stat.size < PACK_HEADER_BYTES || (await store.foreignPack(store.current).catch(() => 'unread')) !== undefined) store.mustRotate = true;
    }
    return store;
  }

  /**
   * Cached: every read names its pack's path (for the handle and any error), and join costs ~2 µs.
   * Not for a removed pack (a stale location's error still names it): a daemon's cache holds the
   * packs that are there, not every pack it ever made.
   */
  path(pack: number): string {
    let path = this.paths.get(pack);
    if (path === undefined) {
      path = join(this.dir, packFileName(pack));
      if (!this.gone?.has(pack)) this.paths.set(pack, path);
    }
    return path;
  }

  /** Every pack, local and (with the object-storage tier) in the bucket, by number. */
  async listPacks(): Promise<number[]> {
    const local = await this.listLocalPacks();
    if (!this.remote) return local;
    return [...new Set([...local, ...this.remote.list()])].sort((a, b) => a - b);
  }

  /** The pack files in packs/. */
  async listLocalPacks(): Promise<number[]> {
    const names = await this.fileNames();
    return names.map(parsePackFileName).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
  }
  /** The names in packs/: a failure (EMFILE, EIO) is the world's, with a code, never a bug. */
  private fileNames(): Promise<string[]> {
    return this.fs.readdir(this.dir).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') await this.options.checkMounted(this.dir); // a vanished partition: UNMOUNTED
      throw fromSystemError(error, 'listing packs', this.dir);
    });
  }


  /**
   * Reads packs missing from packs/ in the object store when it holds them. New records always go
   * to a pack numbered above every pack in the bucket.
   */
  attachRemote(remote: RemotePackSource): void {
    this.remote = remote;
    const highest = remote.list().at(-1);
    if (highest !== undefined) this.skipPackNumbersTo(highest);
  }

  /** Deletes a retired pack's object from the bucket (compaction, once the journal no longer lists it). */
  async removeRemote(pack: number): Promise<void> {
    await this.remote?.remove(pack);
  }

  /**
   * Forgets every block of the object store's packs kept in memory: a scrub verifies what the
   * bucket holds now, and a block cached before the object was damaged would pass for it.
   */
  forgetRemoteCache(): void {
    this.remote?.dropCached();
  }

  /** RemotePackSource.checksumMatches; undefined for a pack not in the object store. */
  async remoteChecksumMatches(pack: number): Promise<boolean | undefined> {
    return this.remote?.has(pack) ? this.remote.checksumMatches(pack) : undefined;
  }

  /** Whether the pack lives in the object store (its local copy may be gone). */
  isRemote(pack: number): boolean {
    return this.remote?.has(pack) ?? false;
  }

  /**
   * Seals the pack being appended to: the next batch starts a new one, so compaction may rewrite it
   * and the tier may move it. Call it while no batch is being prepared or written (inside a Writer
   * mutation); returns the highest sealed pack number.
   */
  seal(): number {
    if (this.current > 0) this.mustRotate = true;
    return this.current;
  }

  /**
   * Every pack numbered at or below this is sealed: no batch will write into it again (the next
   * rotation creates a pack above `current`). Read synchronously, so no batch can slip in between.
   */
  get sealedThrough(): number {
    return this.mustRotate ? this.current : this.current - 1;
  }

  /** Rotate packs at no more than this size from now on (the object-storage tier moves smaller packs: tier.ts). */
  limitPackBytes(bytes: number): void {
    assert(bytes > PACK_HEADER_BYTES, `pack size ${bytes} below a pack header`);
    this.options.packBytesMax = Math.min(this.options.packBytesMax, bytes);
  }

  /**
   * Removes the local file of a pack that now lives in the object store. New readers no longer find
   * the file and read the object; a reader already inside keeps its descriptor (unlink leaves it
   * valid), and the descriptor is closed once it leaves (or after `waitMs`).
   */
  async releaseLocal(pack: number, waitMs: number): Promise<void> {
    assert(this.remote?.has(pack), `pack ${pack} released locally but not recorded in the object store`);
    const handle = this.readHandles.get(pack);
    this.readHandles.delete(pack);
    const path = this.path(pack);
    try {
      await this.fs.unlink(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(error, 'removing the local copy of a moved pack', path);
    }
    if (handle && this.pins.has(pack)) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        const list = this.unpinned.get(pack) ?? [];
        list.push(resolve);
        this.unpinned.set(pack, list);
        timer = setTimeout(resolve, waitMs);
      });
      clearTimeout(timer);
    }
    await handle?.close().catch(() => undefined);
  }

  /** Drops the cached read handle of one pack (its local file is about to go). */
  async forgetReadHandle(pack: number): Promise<void> {
    const handle = this.readHandles.get(pack);
    this.readHandles.delete(pack);
    await handle?.close().catch(() => undefined);
  }

  /**
   * New records go to a pack numbered above `pack`: repair calls it when packs the index refers to
   * are missing, so a restored blob never lands in a new file under a missing pack's name.
   */
  skipPackNumbersTo(pack: number): void {
    if (pack <= this.current) return;
    this.current = pack;
    this.tail = 0;
    this.mustRotate = true;
  }

  /** The pack appends go to next, or 0 when the next batch starts a new one (sealed, or none yet). */
  get appendPack(): number {
    return this.mustRotate ? 0 : this.current;
  }

  /** How reads find a blob's new location after its pack was retired (the Store sets the index). */
  setLocator(locator: BlobLocator): void {
    this.locator = locator;
  }

  /**
   * `afterWritten`: the batch follows one that is written and not yet synced (the writer prepares
   * a chained batch while the one before it syncs): its records are placed after those bytes. It
   * is written only once they are synced (`write` asserts it), and never if they were taken back.
   */
  beginBatch(afterWritten = false): PackBatch {
    this.reservedPack = this.current;
    const written = this.queued ?? this.pending;
    this.reservedTail = afterWritten && written ? written.end : this.tail;
    return new PackBatch(this);
  }

  /**
   * Whether `writeAfter` can write this batch now: it was placed after bytes written and not yet
   * synced (beginBatch(true)), every record in the pack they are in, right after them, and nothing
   * else is waiting.
   */
  canWriteAfter(batch: PackBatch): boolean {
    const pending = this.pending;
    if (!pending || this.queued || !this.writeHandle || batch.blobs.length === 0) return false;
    return batch.blobs[0].location.offset === pending.end && batch.blobs.every((blob) => blob.location.pack === this.current);
  }

  /**
   * Writes a batch placed after the bytes being synced (canWriteAfter) while they sync: the writer
   * copies an import's next batch into the page cache during the fdatasyncs of the one before it.
   * Nothing refers to these bytes until that batch committed and this one's journal record is
   * written and synced. When the sync before fails, or `abort` is called, they are taken back
   * (once this write settled, so that a cut is never undone by a write landing after it). A write
   * that fails cuts what it wrote itself and rejects (IO or NO_SPACE, as `write`).
   */
  writeAfter(batch: PackBatch): Promise<void> {
    assert(this.canWriteAfter(batch), 'pack writeAfter without bytes being synced right before it');
    const pack = this.current;
    const { parts, start, length } = recordParts(pack, batch.blobs);
    const path = this.path(pack);
    const region: WrittenRegion = { start, end: start + length, path };
    const handle = this.writeHandle!;
    region.writing = (async () => {
      try {
        await handle.writev(parts, start);
      } catch (error) {
        if (this.queued === region) this.queued = undefined;
        if (this.pending === region) this.pending = undefined;
        await this.cut(region.start);
        throw fromSystemError(error, 'writing message bodies to pack', path);
      }
    })();
    region.writing.catch(() => undefined); // the writer awaits it; a sync or abort only waits for it
    this.queued = region;
    return region.writing;
  }

  /** Called by PackBatch: picks the pack and offset for a record of `recordBytes`. */
  reserve(recordBytes: number, length: number): BlobLocation {
    const full = this.reservedTail + recordBytes > this.options.packBytesMax && this.reservedTail > PACK_HEADER_BYTES;
    if (this.reservedPack === 0 || full || (this.mustRotate && this.reservedPack === this.current)) {
      this.reservedPack = Math.max(this.reservedPack, this.current, this.allocated) + 1;
      this.reservedTail = PACK_HEADER_BYTES;
    }
    const location = { pack: this.reservedPack, offset: this.reservedTail, length };
    this.reservedTail += recordBytes;
    return location;
  }

  /**
   * Writes every blob of the batch without making it durable (a batch that spans two packs syncs
   * the first before moving on); `sync` makes the rest durable, `abort` takes it back.
   */
  async write(batch: PackBatch): Promise<void> {
    assert(!this.pending && !this.queued, 'pack write while another is not yet synced');
    if (batch.blobs.length === 0) return;
    const byPack = new Map<number, PendingBlob[]>();
    for (const blob of batch.blobs) {
      const list = byPack.get(blob.location.pack) ?? [];
      list.push(blob);
      byPack.set(blob.location.pack, list);
    }
    for (const [pack, blobs] of byPack) {
      await this.sync();
      await this.writePack(pack, blobs);
    }
  }

  private async writePack(pack: number, blobs: PendingBlob[]): Promise<void> {
    const { parts, start, length } = recordParts(pack, blobs);
    const path = this.path(pack);
    let creating = false;
    try {
      if (pack !== this.current || !this.writeHandle) {
        if (pack !== this.current) {
          await this.options.checkMounted(path);
          creating = true;
          await this.switchTo(pack, true);
          creating = false;
        } else {
          this.writeHandle = await this.fs.open(path, 'readWrite');
        }
      }
      assert(start === this.tail, `pack ${pack} reservation at ${start} but tail is ${this.tail}`);
      this.pending = { start, end: start + length, path };
      await this.writeHandle!.writev(parts, start); // no concatenating copy of the bodies
    } catch (error) {
      this.pending = undefined;
      await this.undo(start);
      if (creating && (error as NodeJS.ErrnoException).code === 'EEXIST') {
        // a file took this pack's number behind the store's back (another store's pack copied in):
        // never written; the next reservation takes a number above it, or every delivery from
        // here on failed EXISTS until a restart
        this.allocated = Math.max(this.allocated, pack);
        this.reservedPack = 0;
      }
      throw fromSystemError(error, 'writing message bodies to pack', path);
    }
  }

  /**
   * fdatasyncs what `write` wrote (and the directory of a new pack, retried until it succeeds).
   * What `writeAfter` wrote meanwhile is the next sync's: this one may or may not have covered it.
   * When it fails, both are taken back.
   */
  async sync(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    try {
      await pending.writing; // a writeAfter region: its write first (a failed one cut itself)
      await this.writeHandle!.sync();
      if (this.dirSyncPending) {
        await this.fs.syncDir(this.dir);
        this.dirSyncPending = false;
      }
    } catch (error) {
      if (this.pending === pending) this.pending = undefined;
      await this.dropQueued();
      await this.undo(pending.start);
      throw error instanceof MailstoreError ? error : fromSystemError(error, 'writing message bodies to pack', pending.path);
    }
    this.pending = this.queued;
    this.queued = undefined;
    this.tail = pending.end;
  }

  /**
   * Takes back written, not yet synced blobs (the batch failed elsewhere): the newest of them, a
   * writeAfter region while the bytes before it sync, else those `write` wrote.
   */
  async abort(): Promise<void> {
    if (this.queued) return this.dropQueued();
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    await pending.writing?.catch(() => undefined);
    await this.undo(pending.start);
  }

  /** Takes back what writeAfter wrote, once its write settled. */
  private async dropQueued(): Promise<void> {
    const queued = this.queued;
    if (!queued) return;
    this.queued = undefined;
    await queued.writing?.catch(() => undefined);
    await this.cut(queued.start);
  }

  /** Cuts the file back to `at` (after the durable tail); if even that fails, the next batch starts a new pack. */
  private async cut(at: number): Promise<void> {
    try {
      if (this.writeHandle && this.tail <= at) await this.writeHandle.truncate(at);
    } catch {
      this.mustRotate = true;
    }
  }

  private async switchTo(pack: number, create: boolean): Promise<void> {
    await this.writeHandle?.close().catch(() => undefined);
    this.writeHandle = undefined;
    const path = this.path(pack);
    const handle = await this.fs.open(path, create ? 'createNew' : 'readWrite');
    this.writeHandle = handle;
    this.current = pack;
    this.mustRotate = false;
    this.dirSyncPending = create;
    this.tail = 0;
    await handle.write(encodePackHeader(this.storeId, pack), 0);
    this.tail = PACK_HEADER_BYTES;
  }

  /** Cuts what a failed batch wrote; if even that fails, the next batch starts a new pack. */
  private async undo(start: number): Promise<void> {
    try {
      if (this.writeHandle && this.tail <= start) await this.writeHandle.truncate(this.tail);
      if (this.tail < PACK_HEADER_BYTES) this.mustRotate = true;
    } catch {
      this.mustRotate = true;
    }
  }

  /** How inline bodies are read (the Store sets the journal's). */
  setInlineSource(source: InlineSource): void {
    this.inline = source;
  }

  private readInline(location: BlobLocation, hash: Buffer): Promise<Buffer> {
    assert(this.inline, 'an inline body read before the store set its source');
    return this.inline(location, hash);
  }

  /** Reads one blob and verifies header, length and hash. */
  async read(location: BlobLocation, expectedHash: Buffer): Promise<Buffer> {
    if (location.pack === INLINE_PACK) return this.readInline(location, expectedHash);
    if (!this.pin(location.pack)) return this.read(await this.movedFrom(location, expectedHash), expectedHash);
    try {
      const path = this.path(location.pack);
      const record = await this.readRecord(location, path);
      const body = record.subarray(RECORD_HEADER_BYTES);
      if (!hashMatches(body, expectedHash)) {
        throw this.corrupt(location, path, `body does not match its hash ${hashHex(expectedHash)}`);
      }
      return body;
    } finally {
      this.unpin(location.pack);
    }
  }

  /**
   * Reads several records of one pack with one pread and verifies each (header, length, hash) as
   * `read` does. `items` lie close together (readMessages groups them: sorted by offset, gaps of at
   * most limits.readGapBytes); each gets its body, a view into the shared buffer, or its error. One
   * pread and one buffer per run instead of one per message: for 2.7 KB messages that was ~5 µs
   * of a ~34 µs verified read (issue 16).
   */
  async readRun(pack: number, items: RunItem[], pool?: HashPool, keepRecords = true): Promise<void> {
    await this.readRuns(pack, [items], pool, keepRecords);
  }

  /**
   * Several runs of one pack (each as readRun's `items`) read into one buffer, one pread a run, and
   * verified together: on `pool`, one job for all of them. Compaction reads its live records so,
   * about compactWriteBytes at a time: one worker round trip per batch instead of one per record
   * (at 20 % live, most runs are a single record), and the next batch is read while it is hashed.
   * `into`: a buffer of the caller's to read into when it is big enough (compaction reuses the ones
   * whose records were written: a new 4 MiB buffer a batch made the collector run full cycles);
   * the records and bodies are views into the buffer used, `into` or a new one (the caller finds it
   * as their `.buffer`). A shared `into` is read into from `at` and stays with this thread while a
   * worker hashes it. `verify` false: each record's header
   * and length are checked, its body's BLAKE3 is not (a backup's copy hashes the bodies on its
   * compression workers and checks them there before it writes one; inline bodies and blobs a
   * compaction moved are read verified all the same).
   */
  async readRuns(pack: number, runs: RunItem[][], pool?: HashPool, keepRecords = true, into?: ArrayBufferLike, verify = true, at = 0, aside = false): Promise<void> {
    if (pack === INLINE_PACK) {
      for (const item of runs.flat()) item.body = await this.readInline(item.location, item.hash).catch((error: unknown) => { item.error = error; return undefined; });
      return;
    }
    // pinned like read(): a compaction that retires the pack meanwhile deletes it only after this
    // read; a pack already retired is not read, each blob is looked up again where it moved
    if (!this.pin(pack)) {
      await this.readMoved(runs.flat());
      return;
    }
    try {
      await this.readRunPinned(pack, runs, verify ? pool : undefined, keepRecords, into, verify, at, aside);
    } finally {
      this.unpin(pack);
    }
  }

  /**
   * The blobs of a run whose pack was retired, each read where the index says it is now. They get
   * no `record`: only compaction asks for records, and it never reads a pack it retired.
   */
  private async readMoved(items: RunItem[]): Promise<void> {
    for (const item of items) {
      try {
        item.body = await this.read(await this.movedFrom(item.location, item.hash), item.hash);
      } catch (error) {
        item.error = error;
      }
    }
  }

  /**
   * One pread a run into one buffer, the record headers checked here, the bodies hashed here or
   * (`pool`) on a worker while this thread goes on: an ArrayBuffer is handed over and comes back
   * with the digests, a shared one (readMessages' lent group buffers) stays where it is; only then
   * do the bodies, views into it, go out.
   */
  private async readRunPinned(pack: number, runs: RunItem[][], pool: HashPool | undefined, keepRecords: boolean, into?: ArrayBufferLike, verify = true, at = 0, aside = false): Promise<void> {
    const path = this.path(pack);
    // a loop and a comparison, not map/reduce and Math.max: the spans' fields once came out as
    // doubles and once as small integers, and the optimised code of this function was thrown away
    // and made again at each change (~30 ms of a compiler thread's CPU each time, 2 cores)
    const spans: { items: RunItem[]; start: number; end: number }[] = [];
    let total = 0;
    for (let r = 0; r < runs.length; r++) {
      const items = runs[r];
      if (items.length === 0) continue;
      const start = items[0].location.offset;
      const end = runEnd(items);
      spans.push({ items, start, end });
      total += end - start;
    }
    let bytes: Buffer, handle: FileHandle;
    try {
      handle = await this.handle(pack, path);
      // a worker takes the whole ArrayBuffer, and a caller that gave `into` may reuse the one the
      // records are in: then one of its own, never a slice of node's shared pool. A shared `into`
      // (lent by readMessages) is read into from `at`, and stays here while a worker hashes it.
      if (into !== undefined && into.byteLength - at >= total) bytes = Buffer.from(into, at, total);
      else bytes = pool || into ? Buffer.allocUnsafeSlow(total) : Buffer.allocUnsafe(total);
    } catch (error) {
      const failure = error instanceof MailstoreError ? error : fromSystemError(error, 'reading pack', path);
      for (const item of runs.flat()) item.error = failure;
      return;
    }
    const intact: RunItem[] = [];
    const ranges: number[] = []; // body start, length: what the pool hashes
    let base = 0;
    for (const { items, start, end } of spans) {
      await this.readSpan(handle, path, bytes, base, start, end, items, intact, ranges, aside);
      base += end - start;
    }
    let digests: Uint8Array | undefined;
    if (pool && intact.length > 0) {
      try {
        const done = await pool.hash(bytes.buffer, ranges, bytes.byteOffset);
        if (done.buffer !== bytes.buffer) bytes = Buffer.from(done.buffer); // an ArrayBuffer handed back
        digests = done.digests;
      } catch {
        // a failed worker: this thread hashes, after reading the runs again if the worker kept them
        if (bytes.buffer.byteLength === 0) return this.readRunPinned(pack, runs, undefined, keepRecords, into, verify, at, aside); // `into` went with it: a new buffer
      }
    }
    for (let i = 0; i < intact.length; i++) {
      const item = intact[i];
      const body = bytes.subarray(ranges[2 * i], ranges[2 * i] + ranges[2 * i + 1]);
      // unverified (`verify` false): header and length checked, the caller checks the BLAKE3 before it trusts the body
      const matches = !verify || (digests ? Buffer.from(digests.buffer, digests.byteOffset + i * HASH_BYTES, HASH_BYTES).equals(item.hash) : hashMatches(body, item.hash));
      if (matches) {
        item.body = body;
        if (keepRecords) item.record = bytes.subarray(ranges[2 * i] - RECORD_HEADER_BYTES, ranges[2 * i] + ranges[2 * i + 1]);
      } else item.error = this.corrupt(item.location, path, `body does not match its hash ${hashHex(item.hash)}`);
    }
  }

  /**
   * One run's pread into `bytes` at `base`; its records whose headers hold go to `intact` (their
   * bodies' places to `ranges`), the others get their error (a failed read: every item of the run).
   */
  private async readSpan(handle: FileHandle, path: string, bytes: Buffer, base: number, start: number, end: number, items: RunItem[], intact: RunItem[], ranges: number[], aside: boolean): Promise<void> {
    let n: number;
    try {
      n = await handle.read(bytes, base, end - start, start, { aside });
    } catch (error) {
      const failure = error instanceof MailstoreError ? error : fromSystemError(error, 'reading pack', path);
      for (const item of items) item.error = failure;
      return;
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const location = item.location;
      const at = location.offset - start;
      const length = RECORD_HEADER_BYTES + location.length;
      // checked in place (recordHeaderFault): no copy or throw on the path of a good record
      if (at + length > n) { item.error = await this.endsEarly(handle, location, path, start + n); continue; }
      const fault = recordHeaderFault(bytes, base + at, location.length);
      if (fault !== undefined) { item.error = this.corrupt(location, path, fault); continue; }
      intact.push(item);
      ranges.push(base + at + RECORD_HEADER_BYTES, location.length);
    }
  }

  /** Streams a blob after verifying it in a first pass, so no unverified byte is ever handed out. */
  async *readStream(location: BlobLocation, expectedHash: Buffer, chunkBytes: number): AsyncGenerator<Buffer> {
    if (location.pack === INLINE_PACK) {
      yield await this.readInline(location, expectedHash); // small by definition (StoreOptions.inlineBodyBytesMax)
      return;
    }
    // pinned for the whole stream, both passes: the pack is not deleted under a reader
    if (!this.pin(location.pack)) {
      location = await this.movedFrom(location, expectedHash);
      if (!this.pin(location.pack)) throw this.corrupt(location, this.path(location.pack), 'its pack was retired twice while it was looked up');
    }
    try {
      yield* this.streamPinned(location, expectedHash, chunkBytes);
    } finally {
      this.unpin(location.pack);
    }
  }

  private async *streamPinned(location: BlobLocation, expectedHash: Buffer, chunkBytes: number): AsyncGenerator<Buffer> {
    const path = this.path(location.pack);
    const handle = await this.handle(location.pack, path);
    const header = await this.readExact(handle, location.offset, RECORD_HEADER_BYTES, location, path);
    this.checkHeader(header, location, expectedHash, path);
    const bodyStart = location.offset + RECORD_HEADER_BYTES;
    const hasher = await createHasher();
    // each chunk's own hash too: the second pass reads every chunk again, and a pack in the object
    // store answers that read with a new GET (its block evicted from the cache meanwhile), whose
    // bytes the whole body's hash no longer covers; a chunk that differs from the verified one is
    // CORRUPT before any of it leaves (a changed byte on the way once went out as the message)
    const chunkHashes: Buffer[] = [];
    for (let p = 0; p < location.length; p += chunkBytes) {
      const chunk = await this.readExact(handle, bodyStart + p, Math.min(chunkBytes, location.length - p), location, path);
      hasher.update(chunk);
      chunkHashes.push(hashBytes(chunk));
    }
    if (!hasher.digest().equals(expectedHash)) throw this.corrupt(location, path, `body does not match its hash ${hashHex(expectedHash)}`);
    for (let p = 0, i = 0; p < location.length; p += chunkBytes, i++) {
      const chunk = await this.readExact(handle, bodyStart + p, Math.min(chunkBytes, location.length - p), location, path);
      if (!hashMatches(chunk, chunkHashes[i])) throw this.corrupt(location, path, `bytes ${p}-${p + chunk.length} of the body read differently the second time than when the body was verified`);
      yield chunk;
    }
  }

  /**
   * Checks that a valid record header for `expectedHash` and `location.length` starts at the
   * location (a cheap pread; scrub uses it to check every index entry). Returns why not, or undefined.
   */
  async checkLocation(location: BlobLocation, expectedHash: Buffer): Promise<string | undefined> {
    if (location.pack === INLINE_PACK) {
      return this.readInline(location, expectedHash).then(() => undefined, (error: unknown) => {
        if (error instanceof MailstoreError && error.code === 'CORRUPT') return error.message;
        throw error;
      });
    }
    const path = this.path(location.pack);
    if (!this.pin(location.pack)) return 'its pack was retired by compaction';
    try {
      const handle = await this.handle(location.pack, path);
      const header = await this.readExact(handle, location.offset, RECORD_HEADER_BYTES, location, path);
      this.checkHeader(header, location, expectedHash, path);
      const end = Buffer.alloc(1);
      if (location.length > 0 && (await handle.read(end, 0, 1, location.offset + RECORD_HEADER_BYTES + location.length - 1)) !== 1) {
        return 'the pack ends inside the record';
      }
      return undefined;
    } catch (error) {
      if (error instanceof MailstoreError && error.code === 'CORRUPT') return error.message;
      throw error;
    } finally {
      this.unpin(location.pack);
    }
  }

  /** Enters a pack; false when it was retired (deleted or being deleted). */
  private pin(pack: number): boolean {
    if (this.gone?.has(pack)) return false;
    this.pins.set(pack, (this.pins.get(pack) ?? 0) + 1);
    return true;
  }

  private unpin(pack: number): void {
    const n = (this.pins.get(pack) ?? 1) - 1;
    if (n > 0) { this.pins.set(pack, n); return; }
    this.pins.delete(pack);
    for (const wake of this.unpinned.get(pack)?.splice(0) ?? []) wake();
    // readers of many packs at once kept them all open; the last one out closes what is over the bound
    if (this.readHandles.size > limits.packReadHandlesMax) void this.closeIdleHandles(limits.packReadHandlesMax);
  }

  /** A location whose pack was retired: where the index says the blob is now (looked up once). */
  private async movedFrom(location: BlobLocation, hash: Buffer): Promise<BlobLocation> {
    const now = await this.locator?.(hash);
    if (!now || now.pack === location.pack || this.gone?.has(now.pack)) {
      throw this.corrupt(location, this.path(location.pack), 'its pack was retired by compaction and the index has no other copy');
    }
    return now;
  }

  /** Pack numbers every file in packs/ and every side pack so far lie at or below. */
  private async highestPack(): Promise<number> {
    const listed = await this.listPacks();
    return Math.max(this.current, this.allocated, this.reservedPack, listed[listed.length - 1] ?? 0);
  }

  /**
   * A new pack beside the one appends go to (compaction's output), numbered above every pack so
   * far; the appends' next pack goes above it. Written and synced by its PackWriter only.
   */
  async createSidePack(): Promise<PackWriter> {
    const pack = (await this.highestPack()) + 1;
    this.allocated = pack;
    this.sidePacks.add(pack);
    const path = this.path(pack);
    const partial = `${path}${PARTIAL_SUFFIX}`;
    await this.options.checkMounted(path);
    const handle = await this.fs.open(partial, 'createNew').catch((e) => { throw fromSystemError(e, 'creating pack', partial); });
    const writer = new PackWriter(this.fs, this.dir, pack, path, partial, handle, () => { this.packSetVersion++; });
    try {
      await writer.start(encodePackHeader(this.storeId, pack));
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  /**
   * Removes new packs a crashed compaction left half-written: they were never renamed to a pack
   * name, so nothing can refer to them. Only names this code makes (NNNNNNNN.pack.partial).
   */
  async removePartialPacks(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await this.fileNames()) {
      if (!/^\d{8}\.pack\.partial$/.test(name)) continue;
      await this.fs.unlink(join(this.dir, name)).catch((e) => { throw fromSystemError(e, 'removing a partial pack', join(this.dir, name)); });
      removed.push(name);
    }
    if (removed.length > 0) await this.syncDir();
    return removed;
  }

  /**
   * A compaction's output, written by this process: it makes room in the end, so a replica takes
   * its bytes down to its free-space floor, as it is written here (one written before a restart is
   * not known, and is held to the replica's reserve as mail is).
   */
  isSidePack(pack: number): boolean {
    return this.sidePacks.has(pack);
  }

  /** Future pack numbers go above `pack` (a retired pack's number is never used again). */
  reserveNumbersTo(pack: number): void {
    this.allocated = Math.max(this.allocated, pack);
  }

  /**
   * Deletes a retired pack once no reader is inside it; new readers look their blob up again. Waits
   * at most `waitMs` for readers: false (the file kept) when one is still inside. The directory
   * is synced by the caller after a round of removals.
   */
  async removePack(pack: number, waitMs: number): Promise<boolean> {
    assert(pack !== this.appendPack, `pack ${pack} is being appended to and cannot be removed`);
    if (!this.gone) {
      const { NumberRuns } = await import('./number-runs.js'); // not an append's to load
      this.gone ??= new NumberRuns(); // another removal may have made it meanwhile
    }
    this.gone.add(pack);
    if (this.pins.has(pack)) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        const list = this.unpinned.get(pack) ?? [];
        list.push(resolve);
        this.unpinned.set(pack, list);
        timer = setTimeout(resolve, waitMs);
      });
      clearTimeout(timer);
      if (this.pins.has(pack)) return false;
    }
    await this.readHandles.get(pack)?.close().catch(() => undefined);
    this.readHandles.delete(pack);
    const path = this.path(pack);
    this.packSetVersion++;
    try {
      await this.fs.unlink(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(error, 'removing retired pack', path);
    }
    // `gone` keeps refusing pins of it (a stale location); the path and side-pack marks go
    this.paths.delete(pack);
    this.sidePacks.delete(pack);
    return true;
  }

  /**
   * Why the local file of `pack` is not this store's own pack, from its header: it names another
   * store, or another pack number (a file copied into packs/ by hand: another store's pack, or one
   * of ours under a second name). Undefined for our own pack, a pack in the object store, and a
   * header that does not read at all (a crash right after the file was made leaves it short or
   * zeroed, with nothing committed in it: dead bytes). A foreign file is never rewritten or deleted.
   */
  async foreignPack(pack: number): Promise<string | undefined> {
    const path = this.path(pack);
    let head: Buffer;
    try {
      const handle = await this.fs.open(path, 'read');
      try {
        head = Buffer.alloc(PACK_HEADER_BYTES);
        head = head.subarray(0, await handle.read(head, 0, PACK_HEADER_BYTES, 0));
      } finally {
        await handle.close().catch(() => undefined);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // in the object store, or gone
      throw fromSystemError(error, 'reading the header of pack', path);
    }
    const header = decodePackHeader(head);
    if (!header) return undefined;
    if (!header.storeId.equals(this.storeId)) return `its header names another store (${header.storeId.toString('hex')})`;
    if (header.packNumber !== pack) return `its header names pack ${header.packNumber}, not ${pack} (a copy under another name)`;
    return undefined;
  }

  /**
   * Moves the local file of a pack no blob entry refers to into `quarantine` (foreignPack: another
   * store's, kept for the admin, never deleted); returns where it went.
   */
  async setAsidePack(pack: number, quarantine: string): Promise<string> {
    assert(pack !== this.appendPack, `pack ${pack} is being appended to and cannot be set aside`);
    await this.readHandles.get(pack)?.close().catch(() => undefined);
    this.readHandles.delete(pack);
    const path = this.path(pack);
    // quarantine/ removed by hand (RECOVERY.md: "remove by hand"): made again, not a failed compaction
    await ensureDir(this.fs, quarantine).catch((error: unknown) => { throw fromSystemError(error, 'making', quarantine); });
    const target = await unusedPath(this.fs, join(quarantine, `${packFileName(pack)}-foreign-${fileTimeStamp()}`));
    this.packSetVersion++;
    try {
      await this.fs.rename(path, target);
      await this.fs.syncDir(quarantine);
      await this.fs.syncDir(this.dir);
    } catch (error) {
      throw fromSystemError(error, 'setting aside pack', path);
    }
    return target;
  }

  /** fsync of packs/ (after removals). */
  async syncDir(): Promise<void> {
    await this.fs.syncDir(this.dir).catch((e) => { throw fromSystemError(e, 'syncing', this.dir); });
  }

  /** Size of a pack in bytes, local or in the object store (0 when it is gone). */
  async packBytes(pack: number): Promise<number> {
    const local = await this.fs.statIfExists(this.path(pack));
    if (local) return local.size;
    return this.remote?.has(pack) ? this.remote.handle(pack).size() : 0;
  }

  private async readRecord(location: BlobLocation, path: string): Promise<Buffer> {
    const handle = await this.handle(location.pack, path);
    const record = await this.readExact(handle, location.offset, RECORD_HEADER_BYTES + location.length, location, path);
    this.checkHeader(record, location, undefined, path);
    return record;
  }

  private checkHeader(record: Buffer, location: BlobLocation, expectedHash: Buffer | undefined, path: string): void {
    const header = decodeRecordHeader(record.subarray(0, RECORD_HEADER_BYTES));
    if (!header) throw this.corrupt(location, path, 'record header is damaged');
    if (header.bodyLength !== location.length) throw this.corrupt(location, path, `record length ${header.bodyLength} differs from the index's ${location.length}`);
    if (expectedHash && !header.hash.equals(expectedHash)) throw this.corrupt(location, path, 'record holds a different hash');
  }

  private async readExact(handle: FileHandle, position: number, length: number, location: BlobLocation, path: string): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let n: number;
    try {
      n = await handle.read(buf, 0, length, position);
    } catch (error) {
      throw fromSystemError(error, 'reading pack', path);
    }
    if (n < length) throw await this.endsEarly(handle, location, path, position + n);
    return buf;
  }

  /**
   * CORRUPT for a record the pack ends inside or before (a read stopped short at `readTo`), saying
   * how many bytes the pack lacks to the record's end. From the pack's size, not from the read: a
   * read that starts past the end returns nothing, and a record's header read at a pack cut
   * megabytes before it said 'ends 48 bytes early', a truncated pack looking nearly whole.
   */
  private async endsEarly(handle: FileHandle, location: BlobLocation, path: string, readTo: number): Promise<MailstoreError> {
    const size = await handle.size().catch(() => readTo);
    return this.corrupt(location, path, `pack ends ${location.offset + RECORD_HEADER_BYTES + location.length - Math.min(size, readTo)} bytes early`);
  }

  private corrupt(location: BlobLocation, path: string, why: string): MailstoreError {
    // bytes of a pack in the object store may have been changed on the way, not in the bucket: kept
    // in the block cache, they made every later read of the block CORRUPT until evicted or restarted
    if (this.remote?.has(location.pack)) this.remote.dropCached(location.pack);
    return new MailstoreError('CORRUPT',
      `blob at ${path} offset ${location.offset}: ${why}; run 'mailstore scrub' (and 'scrub --repair --source COPY' to heal it)`,
      { path: `${path}@${location.offset}` });
  }

  /** The local file, or the object when the pack moved to the bucket (ENOENT otherwise). */
  private async openForRead(pack: number, path: string): Promise<FileHandle> {
    try {
      return await this.fs.open(path, 'read');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && this.remote?.has(pack)) return this.remote.handle(pack);
      throw error;
    }
  }

  private async handle(pack: number, path: string): Promise<FileHandle> {
    const handle = this.readHandles.get(pack);
    if (handle) {
      this.readHandles.delete(pack); // the most recently used last: closeIdleHandles closes from the front
      this.readHandles.set(pack, handle);
      return handle;
    }
    // Concurrent first reads of one pack share one open: each opening its own leaked all but the
    // last (closed only by the garbage collector; found by a backup reading 8 blobs at once).
    let opening = this.opening.get(pack);
    if (!opening) {
      opening = this.openCached(pack, path).finally(() => this.opening.delete(pack));
      this.opening.set(pack, opening);
    }
    return opening;
  }

  private async openCached(pack: number, path: string): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      handle = await this.openFreeingDescriptors(pack, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.options.checkMounted(path); // a vanished partition is UNMOUNTED, not damage
        throw new MailstoreError('CORRUPT', `pack ${path} is missing; run 'mailstore scrub'`, { path, cause: error });
      }
      throw fromSystemError(error, 'opening pack', path);
    }
    this.readHandles.set(pack, handle);
    // bounded: a store of thousands of packs read over the years kept a descriptor open for each
    await this.closeIdleHandles(limits.packReadHandlesMax);
    return handle;
  }

  /**
   * Out of descriptors (EMFILE, ENFILE): the packs no reader is inside let theirs go and the open
   * is tried again, as long as one was let go (concurrent opens may take the one freed first).
   */
  private async openFreeingDescriptors(pack: number, path: string): Promise<FileHandle> {
    for (;;) {
      try {
        return await this.openForRead(pack, path);
      } catch (error) {
        if (!isOutOfDescriptors(error)) throw error;
        // another open's retry may be closing them: those closes are waited for too
        const freed = await this.closeIdleHandles(0);
        if (!freed && this.closing.size === 0) throw error;
        await Promise.all(this.closing);
      }
    }
  }

  /** Closes cached read handles, least recently used first, of packs no reader is inside, until `keep` are left; whether any was. */
  private async closeIdleHandles(keep: number): Promise<boolean> {
    const idle: FileHandle[] = [];
    for (const [pack, handle] of this.readHandles) {
      if (this.readHandles.size <= keep) break;
      if (this.pins.has(pack)) continue;
      this.readHandles.delete(pack);
      idle.push(handle);
    }
    const closes = idle.map((handle) => handle.close().catch(() => undefined));
    for (const close of closes) {
      this.closing.add(close);
      void close.then(() => this.closing.delete(close));
    }
    await Promise.all(closes);
    return idle.length > 0;
  }

  /**
   * Scans one pack sequentially: every record with whether its body matches its hash, and every
   * damaged range, in file order. Chunks are read whole and every record inside one is hashed from
   * it; with a `pool`, a worker hashes a chunk while the next ones are read (up to
   * `limits.scanChunksInFlight` ahead). Records bigger than a chunk stream through one.
   */
  async *scan(pack: number, options: ScanOptions = {}): AsyncGenerator<ScanItem | ScanHeader> {
    for await (const batch of this.scanBatches(pack, options)) yield* batch;
  }

  /**
   * scan's items a group at a time (the records of one chunk, or one record alone), in the same
   * order: a pass that checks each record synchronously (scrub) takes no promise hop per record.
   */
  async *scanBatches(pack: number, options: ScanOptions = {}): AsyncGenerator<(ScanItem | ScanHeader)[]> {
    if (!this.pin(pack)) return; // retired by compaction since it was listed: nothing the index uses is there
    try {
      yield* this.scanPinned(pack, options);
    } finally {
      this.unpin(pack);
    }
  }

  private async *scanPinned(pack: number, options: ScanOptions): AsyncGenerator<(ScanItem | ScanHeader)[]> {
    const path = this.path(pack);
    const handle = await this.openFreeingDescriptors(pack, path).catch((e) => { throw e instanceof MailstoreError ? e : fromSystemError(e, 'opening pack', path); });
    const scan: PackScan = {
      handle, size: 0, chunkBytes: Math.max(options.chunkBytes ?? limits.scanChunkBytes, 4 * RECORD_HEADER_BYTES),
      onBytes: options.onBytes, pool: undefined, ahead: 0, free: [], groups: [], onPool: 0, token: ++scanTokens,
      aheadChunks: options.aheadChunks,
    };
    if (typeof options.pool === 'function') scan.lease = options.pool;
    else if (options.pool) usePool(scan, options.pool);
    try {
      scan.size = await handle.size();
      const head = Buffer.alloc(Math.min(PACK_HEADER_BYTES, scan.size));
      await handle.read(head, 0, head.length, 0);
      const decoded = decodePackHeader(head);
      yield [{ kind: 'header', valid: !!decoded, storeId: decoded?.storeId }];
      let p = Math.max(options.from ?? PACK_HEADER_BYTES, PACK_HEADER_BYTES);
      while (p < scan.size) {
        const parsed = await this.hashChunk(scan, p, Math.min(scan.chunkBytes, scan.size - p));
        if (parsed > 0) {
          p += parsed;
          p = (yield* this.drainGroups(scan, scan.ahead)) ?? p;
          continue;
        }
        // The record at p is damaged, or too big for a chunk.
        const rewind = yield* this.drainGroups(scan, 0);
        if (rewind !== undefined) {
          p = rewind;
          continue;
        }
        const item = await this.scanRecordAlone(scan, p);
        yield [item];
        p = item.next;
      }
      yield* this.drainGroups(scan, 0);
    } finally {
      if (scan.readAhead) scan.pool?.endScan?.(scan.token); // optional: a test's stand-in pool has none
      this.hashPendingHere(scan); // its group settles only then
      await Promise.allSettled(scan.groups);
      await scan.handle.close();
    }
  }

  /**
   * Yields the hashed groups but the newest `keep`, one batch each; returns where to go on when a
   * record failed its hash and a valid record starts inside it (the groups after it were parsed
   * from its length).
   */
  private async *drainGroups(scan: PackScan, keep: number): AsyncGenerator<ScanItem[], number | undefined> {
    const { groups, onBytes } = scan;
    while (groups.length > keep) {
      if (groups.length === 1) this.hashPendingHere(scan); // the pending chunk is the last group
      const { records, digests } = await groups.shift()!;
      const batch: ScanItem[] = [];
      let bytes = 0;
      for (let i = 0; i < records.length; i++) {
        const { offset, hash, length } = records[i];
        const end = offset + RECORD_HEADER_BYTES + length;
        const valid = hash.equals(digests.subarray(i * 32, i * 32 + 32));
        const next = valid ? end : await this.resync(scan, offset, length);
        batch.push({ kind: 'blob', offset, hash, length, valid, next });
        bytes += length;
        if (next < end) {
          if (onBytes) await onBytes(bytes);
          yield batch;
          this.hashPendingHere(scan); // its group settles only then
          await Promise.allSettled(groups.splice(0));
          return next;
        }
      }
      if (onBytes) await onBytes(bytes);
      yield batch;
    }
    return undefined;
  }

  /**
   * The record at `p`, which no chunk held whole: a damaged range up to the next valid header, or
   * a record bigger than a chunk, its body streamed through a chunk buffer and hashed here.
   */
  private async scanRecordAlone(scan: PackScan, p: number): Promise<ScanItem> {
    const { handle, size, chunkBytes, onBytes } = scan;
    const header = Buffer.alloc(Math.min(RECORD_HEADER_BYTES, size - p));
    const n = await handle.read(header, 0, header.length, p);
    const rec = n >= RECORD_HEADER_BYTES ? decodeRecordHeader(header) : undefined;
    if (!rec || p + RECORD_HEADER_BYTES + rec.bodyLength > size) {
      const next = await this.findNextRecord(handle, p + 1, size, chunkBytes);
      return { kind: 'damage', offset: p, length: next - p, next };
    }
    const buffer = chunkBuffer(scan);
    const chunk = Buffer.from(buffer);
    const hasher = await createHasher();
    const bodyStart = p + RECORD_HEADER_BYTES;
    for (let r = 0; r < rec.bodyLength; r += chunkBytes) {
      const k = await handle.read(chunk, 0, Math.min(chunkBytes, rec.bodyLength - r), bodyStart + r);
      hasher.update(chunk.subarray(0, k));
      if (onBytes) await onBytes(k);
    }
    scan.free.push(buffer);
    const valid = hasher.digest().equals(rec.hash);
    const next = valid ? bodyStart + rec.bodyLength : await this.resync(scan, p, rec.bodyLength);
    return { kind: 'blob', offset: p, hash: rec.hash, length: rec.bodyLength, valid, next };
  }

  /** Where a scan goes on after a record that failed its hash: a valid header inside it, else its end. */
  private resync(scan: PackScan, offset: number, length: number): Promise<number> {
    return this.findNextRecord(scan.handle, offset + 1, scan.size, scan.chunkBytes, offset + RECORD_HEADER_BYTES + length);
  }

  /**
   * Reads and hashes the chunk of `length` bytes at `position`: its group of records goes onto
   * scan.groups (hashed or being hashed); returns the bytes they span, 0 when no record lies whole
   * at `position` (damaged, or bigger than a chunk). With a pool whose workers hold fewer than
   * limits.scanChunksPerWorker chunks each, a worker does it: from the file's descriptor when the
   * handle has one (the bytes never cross this thread: the reading thread was busy ~100 ms of
   * 590 MB copying them and ~70 ms handing them over, issue 16), else from a buffer read here and
   * handed over. Otherwise, and when a worker failed, here. It first lets the event loop run, so
   * the workers' finished chunks are counted back.
   */
  private async hashChunk(scan: PackScan, position: number, length: number): Promise<number> {
    const { pool, handle } = scan;
    if (pool) await nextTurn();
    // a worker that reads its chunk itself parses it only after the chunk it is hashing: with
    // more than one chunk each, this thread would wait on them instead of taking the next chunk
    // the only worker scans on ahead of this thread (more workers take the chunks in turn), so it
    // answers at once: this thread hashes only when it holds several chunks (it fell behind)
    const readsAhead = !!pool && pool.threads === 1 && handle.fd !== undefined;
    const perWorker = readsAhead ? limits.scanChunksInFlight : handle.fd !== undefined ? limits.scanReadChunksPerWorker : limits.scanChunksPerWorker;
    const workerFree = () => !!pool && !pool.failed && scan.onPool < perWorker * pool.threads;
    let onPool = workerFree();
    if (!onPool && scan.here) {
      // the workers are busy: hash the chunk read here before, then look again
      this.hashPendingHere(scan);
      await nextTurn();
      onPool = workerFree();
    }
    if (onPool && pool && handle.fd !== undefined) {
      const ahead = readsAhead ? { token: scan.token, end: scan.size, chunkBytes: scan.chunkBytes, chunks: scan.aheadChunks } : undefined;
      scan.readAhead ||= readsAhead;
      const job = pool.scanChunk(handle.fd, position, length, ahead);
      job.done.catch(() => undefined); // not awaited when the worker parsed nothing or failed first
      this.hashPendingHere(scan); // while the worker reads and parses
      const parsed = await job.parsed.catch(() => undefined);
      if (parsed === 0) return 0;
      if (parsed !== undefined) {
        scan.onPool++;
        const group = job.done.then((chunk) => workerGroup(position, chunk), () => this.hashHere(scan, position, parsed).then((g) => g!));
        void group.then(() => { scan.onPool--; }, () => { scan.onPool--; });
        group.catch(() => undefined); // awaited by drainGroups
        scan.groups.push(group);
        return parsed;
      }
      // the worker failed before it parsed: read and hash here
    }
    this.hashPendingHere(scan);
    const buffer = chunkBuffer(scan);
    const chunk = Buffer.from(buffer);
    const n = await handle.read(chunk, 0, length, position);
    const records: ChunkRecord[] = [];
    const ranges: number[] = [];
    const parsed = parseChunkRecords(chunk, n, position, records, ranges);
    if (records.length === 0) {
      scan.free.push(buffer);
      return 0;
    }
    if (scan.lease && parsed >= limits.scanPoolRecordBytesMin * records.length) {
      const lease = scan.lease;
      scan.lease = undefined;
      const leased = lease();
      if (leased) usePool(scan, leased); // from the next chunk on
    }
    if (!onPool && pool && handle.fd !== undefined && !pool.failed) {
      // hashed once the next chunk is handed to a worker (or the workers are still busy then),
      // so that the worker does not wait while this thread hashes
      let resolve!: (group: HashedGroup) => void;
      const group = new Promise<HashedGroup>((r) => { resolve = r; });
      scan.here = () => {
        const digests = hashRanges(chunk, ranges);
        scan.free.push(buffer);
        resolve({ records, digests });
      };
      scan.groups.push(group);
      return parsed;
    }
    if (!onPool || !pool) {
      const digests = hashRanges(chunk, ranges);
      scan.free.push(buffer);
      scan.groups.push(Promise.resolve({ records, digests }));
      return parsed;
    }
    scan.onPool++;
    const group = this.hashOnPool(scan, pool, buffer, position, parsed, ranges).then((digests) => ({ records, digests }));
    void group.then(() => { scan.onPool--; }, () => { scan.onPool--; });
    group.catch(() => undefined); // awaited by drainGroups
    scan.groups.push(group);
    return parsed;
  }

  /** Hashes the chunk read here and left for later (scan.here), if any. */
  private hashPendingHere(scan: PackScan): void {
    const here = scan.here;
    scan.here = undefined;
    here?.();
  }

  /** The chunk at `position`, `length` bytes of whole records, read and hashed in this thread (a worker failed). */
  private async hashHere(scan: PackScan, position: number, length: number): Promise<HashedGroup | undefined> {
    const again = Buffer.alloc(length);
    const n = await scan.handle.read(again, 0, length, position);
    const records: ChunkRecord[] = [];
    const ranges: number[] = [];
    parseChunkRecords(again, n, position, records, ranges);
    return { records, digests: hashRanges(again, ranges) };
  }

  /** A buffer read here, hashed on a worker; hashed here if the worker failed. */
  private async hashOnPool(scan: PackScan, pool: HashPool, buffer: ArrayBuffer, position: number, length: number, ranges: number[]): Promise<Uint8Array> {
    try {
      const done = await pool.hash(buffer, ranges);
      scan.free.push(done.buffer);
      return done.digests;
    } catch {
      // A failed worker: hash here. If it took the chunk with it (detached), read the chunk again
      // into a buffer of its own, which is not a chunk-sized one to hand back to `free`.
      if (buffer.byteLength === 0) {
        const again = Buffer.alloc(length);
        await scan.handle.read(again, 0, length, position);
        return hashRanges(again, ranges);
      }
    }
    const digests = hashRanges(Buffer.from(buffer), ranges);
    scan.free.push(buffer);
    return digests;
  }

  /**
   * The offset of the next valid record header (one that fits in the file) at or after `from` and
   * before `before`; else `before`, which defaults to the file size.
   */
  private async findNextRecord(handle: FileHandle, from: number, size: number, chunkBytes: number, before = size): Promise<number> {
    const overlap = RECORD_HEADER_BYTES;
    const limit = Math.min(before, size);
    for (let p = from; p < limit; p += chunkBytes) {
      const buf = Buffer.allocUnsafe(Math.min(chunkBytes + overlap, size - p));
      const n = await handle.read(buf, 0, buf.length, p);
      let i = buf.subarray(0, n).indexOf(PACK_RECORD_MAGIC);
      while (i !== -1 && i < chunkBytes && p + i < limit) {
        const header = Buffer.alloc(RECORD_HEADER_BYTES);
        await handle.read(header, 0, RECORD_HEADER_BYTES, p + i);
        const rec = decodeRecordHeader(header);
        if (rec && p + i + RECORD_HEADER_BYTES + rec.bodyLength <= size) return p + i;
        i = buf.indexOf(PACK_RECORD_MAGIC, i + 1);
      }
    }
    return before;
  }

  // ---- replication (src/replication): a replica's packs are byte-identical copies -----------

  /**
   * Every pack with the end of its durable bytes: the current pack's committed tail (bytes of a
   * batch being written are not included: they may still be taken back), the size of older ones.
   */
  async durableTails(): Promise<Map<number, number>> {
    const tails = new Map<number, number>();
    if (this.knownPacks === undefined || this.current !== this.knownCurrent || this.packSetVersion !== this.knownVersion) {
      // a new pack was started, a compaction named a new pack or removed an old one since
      this.knownVersion = this.packSetVersion;
      this.knownPacks = await this.listPacks();
      this.knownCurrent = this.current;
      this.completeSizes.clear();
    }
    for (const pack of this.knownPacks) {
      if (pack === this.current && this.writeHandle) tails.set(pack, this.tail);
      else if (pack < this.current && this.completeSizes.has(pack)) tails.set(pack, this.completeSizes.get(pack)!);
      else {
        // a pack that moved to the object store is shipped from there (readRange falls back to it)
        let size: number;
        if (this.remote?.has(pack)) size = await this.packBytes(pack);
        else {
          const stat = await this.fs.statIfExists(this.path(pack));
          if (!stat) continue; // removed by a compaction while this ran: no record names it any more
          size = stat.size;
        }
        if (pack < this.current) this.completeSizes.set(pack, size); // older packs are never appended to again
        tails.set(pack, size);
      }
    }
    return tails;
  }

  private knownPacks?: number[];
  private knownCurrent = 0;
  /** Bumped when a side pack is named or a pack removed (durableTails lists the packs again). */
  private packSetVersion = 0;
  private knownVersion = 0;
  private readonly completeSizes = new Map<number, number>();

  /** Raw bytes of a pack (what a replica copies); short only at the end of the file. */
  async readRange(pack: number, offset: number, length: number): Promise<Buffer> {
    const path = this.path(pack);
    this.pins.set(pack, (this.pins.get(pack) ?? 0) + 1); // inside: its handle is not closed under it
    try {
      const handle = await this.handle(pack, path);
      const buf = Buffer.allocUnsafe(length);
      const n = await handle.read(buf, 0, length, offset).catch((e) => { throw fromSystemError(e, 'reading pack', path); });
      return buf.subarray(0, n);
    } finally {
      this.unpin(pack);
    }
  }

  /**
   * A replica writes the primary's pack bytes at the primary's offsets (creating the pack when it
   * is new) without syncing; `syncReplicated` makes them durable. The tail follows, so a promoted
   * replica appends where the primary would have.
   */
  async writeReplicated(pack: number, offset: number, bytes: Buffer): Promise<void> {
    assert(!this.pending && !this.queued, 'replicated pack write while a batch is pending');
    // the primary's numbers become a file name and a position: 'x' made packs/00000NaN.pack
    if (!Number.isInteger(pack) || pack < 1 || pack > PACK_NUMBER_MAX || !Number.isSafeInteger(offset) || offset < 0) {
      throw new MailstoreError('INVALID', `the primary sent pack bytes for pack ${String(pack)} at ${String(offset)}: not a pack number and offset`);
    }
    const path = this.path(pack);
    try {
      if (pack !== this.current || !this.writeHandle) {
        await this.syncReplicated(); // the pack left behind is complete: durable before the next one
        await this.writeHandle?.close().catch(() => undefined);
        this.writeHandle = undefined;
        const existed = Boolean(await this.fs.statIfExists(path));
        if (!existed) await this.options.checkMounted(path);
        this.writeHandle = await this.fs.open(path, existed ? 'readWrite' : 'createNew');
        if (!existed) this.dirSyncPending = true;
        if (pack !== this.current) this.tail = existed ? await this.writeHandle.size() : 0;
        this.current = pack;
        this.mustRotate = false;
      }
      await this.writeHandle.write(bytes, offset);
    } catch (error) {
      throw fromSystemError(error, 'writing replicated pack bytes', path);
    }
    this.tail = Math.max(this.tail, offset + bytes.length);
    this.replicatedDirty = true;
  }

  private replicatedDirty = false;

  async syncReplicated(): Promise<void> {
    if (!this.replicatedDirty || !this.writeHandle) return;
    try {
      await this.writeHandle.sync();
      if (this.dirSyncPending) {
        await this.fs.syncDir(this.dir);
        this.dirSyncPending = false;
      }
    } catch (error) {
      throw fromSystemError(error, 'syncing replicated pack bytes', this.writeHandle.path);
    }
    this.replicatedDirty = false;
  }

  async close(): Promise<void> {
    for (const h of this.readHandles.values()) await h.close().catch(() => undefined);
    this.readHandles.clear();
    await this.writeHandle?.close().catch(() => undefined);
    this.writeHandle = undefined;
  }

  /** Drops cached read handles (after repair moved files, or to re-check the disk). */
  async forgetReadHandles(): Promise<void> {
    for (const h of this.readHandles.values()) await h.close().catch(() => undefined);
    this.readHandles.clear();
  }
}

/**
 * Writes one new pack (compaction's output) record by record, under a partial name: records are
 * gathered and written in runs of about limits.compactWriteBytes; `sync` makes it durable and
 * gives it its pack name (fdatasync, rename, fsync of packs/), so a crash never leaves a pack file
 * with a torn header or records; `abort` removes it (only this new pack, nothing else).
 */
export class PackWriter {
  /** End of what was handed to `append`. */
  size = 0;
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private written = 0;
  private inflight: Promise<void> = Promise.resolve();
  private writeFailure?: MailstoreError;
  /** End of the bytes a background sync was started for, and that sync (never rejects: writeFailure). */
  private syncedBehind = 0;
  private syncing: Promise<void> = Promise.resolve();

  private named = false;

  constructor(
    private readonly fs: FileSystem, private readonly dir: string, readonly pack: number, readonly path: string, private readonly partial: string, private readonly handle: FileHandle,
    /** Called once the pack has its name (replication lists the packs again: durableTails). */
    private readonly onNamed: () => void = () => undefined,
  ) {}

  async start(header: Buffer): Promise<void> {
    this.parts.push(header);
    this.partsBytes = this.size = header.length;
    await this.flush(true);
  }

  /** Appends a verified body; returns where its record starts. */
  async append(hash: Buffer, bytes: Buffer): Promise<BlobLocation> {
    assertRecordHash(hash);
    const location = { pack: this.pack, offset: this.size, length: bytes.length };
    this.parts.push(encodeRecordHeader(hash, bytes.length), bytes);
    this.partsBytes += RECORD_HEADER_BYTES + bytes.length;
    this.size += RECORD_HEADER_BYTES + bytes.length;
    if (this.partsBytes >= limits.compactWriteBytes) await this.flush(false);
    return location;
  }

  /**
   * Appends a record read from another pack and verified there (readRun: header, length, hash), as
   * it is: the header of a record depends only on its hash and length, so the bytes are the same a
   * fresh append would write, and are not copied again. Returns where it starts.
   */
  async appendRecord(record: Buffer): Promise<BlobLocation> {
    const bodyLength = record.length - RECORD_HEADER_BYTES;
    // checked in place (no copy of the hash a record: a compaction appends thousands)
    assert(recordHeaderFault(record, 0, bodyLength) === undefined, `pack ${this.pack}: a record to copy with a damaged header`);
    const location = { pack: this.pack, offset: this.size, length: bodyLength };
    this.parts.push(record);
    this.partsBytes += record.length;
    this.size += record.length;
    if (this.partsBytes >= limits.compactWriteBytes) await this.flush(false);
    return location;
  }

  /**
   * Hands what was gathered to the file, with at most one write in flight: the caller goes on
   * reading and verifying the next records while the kernel copies these (a compaction's 4 MiB
   * writes go to the thread pool). A failed write is thrown by the next flush or sync.
   */
  private async flush(wait: boolean): Promise<void> {
    await this.settle();
    if (this.parts.length > 0) {
      const parts = this.parts;
      const at = this.written;
      this.parts = [];
      this.partsBytes = 0;
      this.written = this.size;
      this.inflight = this.handle.writev(parts, at).catch((error: unknown) => {
        this.writeFailure ??= fromSystemError(error, 'writing compacted pack', this.partial);
      });
      this.syncBehind();
    }
    if (wait) await this.settle();
  }

  /**
   * Every limits.compactSyncBehindBytes written, an fdatasync starts once the write in flight has
   * landed, beside the next writes: the disk writes the pack back while the copy goes on, and the
   * sync that makes it durable (`sync`) has only the tail left. Only a shortcut: `sync` still
   * syncs the whole file before the pack is named and referred to; a failure here is kept as the
   * write failure (the next flush or sync throws it).
   */
  private syncBehind(): void {
    if (this.written - this.syncedBehind < limits.compactSyncBehindBytes) return;
    this.syncedBehind = this.written;
    const landed = this.inflight;
    this.syncing = this.syncing.then(() => landed).then(() => this.writeFailure === undefined ? this.handle.sync() : undefined).catch((error: unknown) => {
      this.writeFailure ??= fromSystemError(error, 'syncing compacted pack', this.partial);
    });
  }

  /** NewPack.writeBehind: what was appended goes out, with at most this one write in flight. */
  writeBehind(): Promise<void> {
    return this.flush(false);
  }

  /** Waits for the write in flight; throws its failure (and every later call does: the file has a hole). */
  private async settle(): Promise<void> {
    await this.inflight;
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  async sync(): Promise<void> {
    await this.flush(true);
    await this.syncing; // a background sync's failure is the write failure, thrown by the settle below
    await this.settle();
    try {
      await this.handle.sync();
      if (!this.named) {
        await this.fs.rename(this.partial, this.path);
        this.named = true;
        this.onNamed();
      }
      await this.fs.syncDir(this.dir);
    } catch (error) {
      throw fromSystemError(error, 'writing compacted pack', this.path);
    }
  }

  async close(): Promise<void> {
    await this.inflight; // never rejects: a failure is kept in writeFailure
    await this.syncing; // nor does this
    await this.handle.close().catch(() => undefined);
  }

  /** Removes this partial pack (nothing refers to it); a failure leaves it for the next compaction. */
  async abort(): Promise<void> {
    await this.close();
    await this.fs.unlink(this.named ? this.path : this.partial).catch(() => undefined);
    await this.fs.syncDir(this.dir).catch(() => undefined);
  }
}

/** A record's hash is HASH_BYTES long (checked once a blob written: the message is built only on failure). */
function assertRecordHash(hash: Buffer): void {
  if (hash.length !== HASH_BYTES) assert(false, `pack record for ${hash.toString('hex')}: a hash of ${hash.length} bytes`);
}

/**
 * Where a run's records end in their pack: the furthest end of any of them (a comparison, not
 * Math.max: readRunPinned keeps the result in an object, whose field must not flip between a small
 * integer and a double, PackStore.readRunPinned).
 */
export function runEnd(items: readonly { location: BlobLocation }[]): number {
  let end = 0;
  for (let i = 0; i < items.length; i++) {
    const last = items[i].location.offset + RECORD_HEADER_BYTES + items[i].location.length;
    if (last > end) end = last;
  }
  return end;
}
