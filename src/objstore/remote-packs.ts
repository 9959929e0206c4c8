// Sealed packs that moved to the bucket, read in place with ranged GETs. A remote pack is read
// through the same FileHandle interface as a local one, so the pack layer's checks (record header,
// length, BLAKE3 of every body) apply unchanged: wrong bytes from the bucket are CORRUPT, never
// handed out. Reads go through a bounded in-memory cache of aligned blocks
// (limits.objectCacheBlockBytes each, at most limits.objectCacheBytes in all, least recently used
// evicted), so messages read one by one in pack order cost one GET per block, not one per message;
// a read of two blocks or more (a pass over the pack) fetches its blocks without caching them.
import { MailstoreError, assert } from '../errors.js';
import type { FileHandle, FileStat } from '../fs/filesystem.js';
import { limits } from '../limits.js';
import type { Bucket } from './s3.js';
import type { TierPolicy } from '../store/tier-policy.js';

/** What the journal records about a pack in the bucket (meta key tier/pack/NNNNNNNN). */
export interface TieredPack {
  /** Object key. */
  k: string;
  /** Bytes. */
  b: number;
  /** BLAKE3 of the whole object, hex, verified by reading it back before the local copy went. */
  d: string;
  /**
   * MD5 of the whole object, hex: its ETag as the object store computed it on the (single-part)
   * upload. Absent for a multipart upload or a pack moved before it was recorded.
   */
  m?: string;
}

export class RemotePacks {
  private readonly packs = new Map<number, TieredPack>();
  private readonly cache = new Map<string, Buffer>(); // insertion order = recency (re-inserted on hit)
  /** Blocks being fetched for the cache: a concurrent read of one waits for its GET. */
  private readonly fetching = new Map<string, Promise<Buffer>>();
  private cacheBytes = 0;
  /** The store's move policy (OBJECT-STORE settings; tier-policy.ts), kept here for the running store. */
  policy: TierPolicy = {};

  constructor(readonly bucket: Bucket) {}

  set(pack: number, info: TieredPack): void {
    this.packs.set(pack, info);
  }

  forget(pack: number): void {
    this.packs.delete(pack);
    this.dropCached(pack);
  }

  /** Drops the pack's cached blocks, or every pack's (the next reads fetch again from the bucket). */
  dropCached(pack?: number): void {
    for (const key of [...this.cache.keys()]) if (pack === undefined || key.startsWith(`${pack}:`)) this.drop(key);
  }

  /** Deletes the pack's object and forgets it. */
  async remove(pack: number): Promise<void> {
    const info = this.packs.get(pack);
    if (!info) return;
    await this.bucket.remove(info.k);
    this.forget(pack);
  }

  /**
   * HEAD of the pack's object: same size and an ETag equal to the MD5 recorded at the move. No
   * bytes are read; a missing object or bucket is false (a full read then says what is wrong).
   */
  async checksumMatches(pack: number): Promise<boolean | undefined> {
    const info = this.packs.get(pack);
    if (!info?.m) return undefined;
    const stat = await this.bucket.stat(info.k).catch((error: unknown) => {
      if (error instanceof MailstoreError && (error.code === 'UNMOUNTED' || error.code === 'NOT_FOUND')) return undefined;
      throw error;
    });
    return stat !== undefined && stat.size === info.b && stat.etag === info.m;
  }

  has(pack: number): boolean {
    return this.packs.has(pack);
  }

  get(pack: number): TieredPack | undefined {
    return this.packs.get(pack);
  }

  list(): number[] {
    return [...this.packs.keys()].sort((a, b) => a - b);
  }

  /** Bytes held by the block cache now (at most limits.objectCacheBytes, or one block bigger). */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  get bytes(): number {
    let n = 0;
    for (const p of this.packs.values()) n += p.b;
    return n;
  }

  /** A read-only handle on the pack's object. */
  handle(pack: number): FileHandle {
    const info = this.packs.get(pack);
    assert(info, `remote handle for pack ${pack}, which is not in the bucket`);
    return new RemoteHandle(this, pack, info);
  }

  /** Bytes [position, position + length) of the pack, from the cache or the bucket. */
  async read(pack: number, info: TieredPack, target: Buffer, offset: number, length: number, position: number): Promise<number> {
    const end = Math.min(position + length, info.b);
    const blockBytes = limits.objectCacheBlockBytes;
    // A read of two blocks or more is a pass over the pack (scrub's chunks, compaction's runs,
    // readMessages' runs): each byte is wanted once, so it is fetched a block at a time and not
    // cached. Cached, a scrub evicted what single fetches reuse and kept the cache full (32 MiB)
    // through the scrub and the reads (bench step tier, its RSS goal).
    const passing = end - position >= 2 * blockBytes;
    let copied = 0;
    for (let p = position; p < end;) {
      const index = Math.floor(p / blockBytes);
      const block = passing ? (this.cache.get(`${pack}:${index}`) ?? await this.fetch(pack, info, index)) : await this.block(pack, info, index);
      const from = p - index * blockBytes;
      const n = Math.min(block.length - from, end - p);
      if (n <= 0) break;
      block.copy(target, offset + copied, from, from + n);
      copied += n;
      p += n;
    }
    return copied;
  }

  private async block(pack: number, info: TieredPack, index: number): Promise<Buffer> {
    const key = `${pack}:${index}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    // Concurrent reads of one block (clients reading one message) share its GET: each of them
    // once added it to cacheBytes while the map kept one, and the count never came down again,
    // until the cache held a block or two and every read was a GET
    let fetching = this.fetching.get(key);
    if (fetching) return fetching;
    fetching = this.fetch(pack, info, index);
    this.fetching.set(key, fetching);
    let bytes: Buffer;
    try {
      bytes = await fetching;
    } finally {
      this.fetching.delete(key);
    }
    this.cache.set(key, bytes);
    this.cacheBytes += bytes.length;
    while (this.cacheBytes > limits.objectCacheBytes && this.cache.size > 1) this.drop(this.cache.keys().next().value as string);
    return bytes;
  }

  /** Block `index` of the pack from the bucket (not cached); a missing object is CORRUPT, a missing bucket UNMOUNTED. */
  private async fetch(pack: number, info: TieredPack, index: number): Promise<Buffer> {
    const start = index * limits.objectCacheBlockBytes;
    const length = Math.min(limits.objectCacheBlockBytes, info.b - start);
    try {
      return await this.bucket.getRange(info.k, start, length);
    } catch (error) {
      if (error instanceof MailstoreError && error.code === 'NOT_FOUND') {
        await this.bucket.check(); // a vanished bucket is UNMOUNTED, not damage
        throw new MailstoreError('CORRUPT', `pack ${pack} is missing from the bucket (${this.bucket.urlOf(info.k)}); run 'mailstore scrub'`, { path: this.bucket.urlOf(info.k), cause: error });
      }
      throw error;
    }
  }

  private drop(key: string): void {
    const bytes = this.cache.get(key);
    if (!bytes) return;
    this.cache.delete(key);
    this.cacheBytes -= bytes.length;
  }
}

class RemoteHandle implements FileHandle {
  readonly path: string;

  constructor(private readonly remote: RemotePacks, private readonly pack: number, private readonly info: TieredPack) {
    this.path = remote.bucket.urlOf(info.k);
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.remote.read(this.pack, this.info, buffer, offset, length, position);
  }

  async size(): Promise<number> {
    return this.info.b;
  }

  async stat(): Promise<FileStat> {
    return { size: this.info.b, dev: 0, ino: 0, mode: 0o444, mtimeMs: 0, isDirectory: false, isFile: true };
  }

  async close(): Promise<void> {}

  write(): Promise<void> {
    throw new MailstoreError('ACCESS', `${this.path} is in the object store: sealed packs are never written`);
  }

  writev(): Promise<void> {
    return this.write();
  }

  sync(): Promise<void> {
    return this.write();
  }

  writevDurable(): Promise<void> {
    return this.write();
  }

  truncate(): Promise<void> {
    return this.write();
  }
}
