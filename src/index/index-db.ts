// The LevelDB index: derived, rebuildable, written with sync:false. Values carry a CRC32 of key and
// value (codec.ts) because LevelDB can hand back a flipped byte, in a value or a key, without
// noticing. Opened with createIfMissing:false once it exists: LevelDB opens without error, holding
// part of its keys, when CURRENT is lost (docs/FAULTS.md).
import { Buffer } from 'node:buffer';
import type { Level } from 'level';
import { MailstoreError, assert } from '../errors.js';
import { decodeValue, encodeValue } from './codec.js';
import { classifyLevelError, systemAdvice } from './level-errors.js';
import { levelClass } from './level-module.js';
import type { Reopenable } from './reopen.js';
import { makeLevelDirectory } from '../fs/level-directory.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';

/** Entries per LevelDB read when a raw iterator is walked with for-await. */
const RAW_ITERATOR_BATCH = 256;

/** LevelDB's iterator, its read failures as MailstoreErrors. */
export interface RawIterator extends AsyncIterable<[Buffer, Buffer]> {
  nextv(size: number): Promise<[Buffer, Buffer][]>;
  close(): Promise<void>;
}

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** A deleted key in a view's pending set (putting undefined deletes too). */
const DELETED = Symbol('deleted');

/** A key LevelDB does not hold, in IndexDb's cache of reads. */
const ABSENT = Symbol('absent');

/**
 * The key spaces whose reads IndexDb caches: mailbox names and meta entries, which every append
 * reads and almost nothing writes (not messages, blobs or changes: one read each, then a write).
 */
const CACHED_SPACES = new Set<number>([SPACE.name, SPACE.meta]);

/**
 * A view's pending values by the key's bytes as a latin1 string. Only the string is kept, not the
 * key's Buffer nor an entry object: a replay window holds tens of thousands of keys through
 * several young-generation collections, and what it holds is what they copy.
 */
export type Pending = Map<string, unknown>;

/**
 * LevelDB's getMany with the keys looked up in key order, answered in the order given. Keys in a
 * random order (blobs by hash: scrub's records, a bulk read's blobs) make each lookup open the
 * table it lands in; over an index of more tables than the table cache holds
 * (limits.indexOpenFilesMax) that was a table opened, mapped and unmapped again for most keys (a 1M
 * scrub's pack pass: 37 -> 19 s). Sorted, one group visits each table once. Keys already in order
 * (a mailbox's uids) are passed as they are; the others are ordered by their first bytes only,
 * which is all the table locality needs and costs a 20k scrub nothing measurable.
 */
function getManyInKeyOrder(level: Level<Buffer, Buffer>, keyList: Buffer[], options?: { snapshot: ReturnType<Level<Buffer, Buffer>['snapshot']> }): Promise<(Buffer | undefined)[]> {
  let sorted = true;
  for (let i = 1; i < keyList.length && sorted; i++) sorted = Buffer.compare(keyList[i - 1]!, keyList[i]!) <= 0;
  if (sorted) return options ? level.getMany(keyList, options) : level.getMany(keyList);
  // ordered by their first 6 bytes (the space byte and 5 more: a table's neighbourhood; ties keep any order)
  const place = new Float64Array(keyList.length);
  keyList.forEach((key, i) => {
    let n = 0;
    for (let b = 0; b < 6; b++) n = n * 256 + (key[b] ?? 0);
    place[i] = n;
  });
  const order = keyList.map((_, i) => i).sort((a, b) => place[a]! - place[b]!);
  const inOrder = order.map((i) => keyList[i]!);
  return (options ? level.getMany(inOrder, options) : level.getMany(inOrder)).then((values) => {
    const out: (Buffer | undefined)[] = new Array(keyList.length);
    order.forEach((i, j) => { out[i] = values[j]; });
    return out;
  });
}

/**
 * A pending set straight into a LevelDB chained batch, written (sync:false): no BatchOp array or
 * key Buffer kept per key (a replay window is tens of thousands of keys; classic-level copies what
 * put is given). Filled through classic-level's own batch methods (RawBatch) when it has them, as
 * BulkLoad is: abstract-level's public put builds an operation object per key and looks its
 * encodings up, ~3 keys a message an import or a replay writes, for buffers it passes on as they are.
 */
async function writePending(level: Level<Buffer, Buffer>, pending: Pending): Promise<void> {
  const batch = level.batch();
  const raw = rawBatch(batch);
  if (!raw) {
    for (const [name, value] of pending) {
      const key = Buffer.from(name, 'latin1');
      if (value === DELETED) batch.del(key);
      else batch.put(key, encodeValue(key, value));
    }
    return batch.write({ sync: false });
  }
  for (const [name, value] of pending) {
    const key = Buffer.from(name, 'latin1');
    if (value === DELETED) raw._del(key);
    else raw._put(key, encodeValue(key, value));
  }
  // the public write() of a batch filled through _put counts no entries and would only close it
  return pending.size === 0 ? raw.close() : writeRaw(raw);
}

/** The reads of IndexDb.snapshot(): the index as it was when the snapshot was taken. */
export interface IndexSnapshot {
  get<T>(key: Buffer): T | undefined;
  /** Many keys in one read on LevelDB's thread pool (the main thread goes on meanwhile), in order. */
  getMany<T>(keys: Buffer[]): Promise<(T | undefined)[]>;
  entryBatches<T>(range: { gte: Buffer; lt: Buffer }, batchEntries: number): AsyncGenerator<[Buffer, T][]>;
  /** Keys and stored value bytes (checksum not checked), as LevelDB returns them. */
  rawEntryBatches(range: { gte: Buffer; lt: Buffer }, batchEntries: number): AsyncGenerator<[Buffer, Buffer][]>;
  close(): Promise<void>;
}

/**
 * A batch of writeBehind: registered (point reads see it), then handed to LevelDB (`handed`; from
 * then on nothing merges into it), then landed (removed from IndexDb.behind).
 */
interface Behind {
  pending: Pending;
  handed: boolean;
  start: () => void;
  written: Promise<void>;
  landed: Promise<void>;
}

/** Bulk reads of the index or of a snapshot of it. */
export type IndexRangeReader = Pick<IndexSnapshot, 'entryBatches'>;

export class IndexDb {
  /**
   * A batch handed to LevelDB and not yet landed (writeBehind): point reads see it first, range
   * reads wait for it, so a reader never sees the index older than what was acknowledged.
   */
  private behind: Behind[] = [];
  /** The failure of a writeBehind batch: the index is behind the journal from there on (reopen). */
  private writeFailure?: unknown;
  /** LevelDB's own values of some keys (`cacheable`), ABSENT for a key it does not hold. */
  private readonly recent = new Map<string, unknown>();
  /** Writes in flight that do not go through `behind` (write, bulkLoad): while any does, nothing is cached. */
  private uncached = 0;
  /** Reads ahead not yet taken (readAhead): each is told which of its keys a write changed since. */
  private readonly aheads = new Set<ReadAhead>();
  /** A reopen under way (reopen()): what reaches LevelDB waits for it. */
  private reopening?: Promise<void>;
  /** Set by a reopen (reopen.ts): a synchronous read that meets it, a bug, stops the store. */
  private duringReopen?: (key: Buffer) => never;
  /** Reopens so far: an iterator older than the last goes on from its last key. */
  private generation = 0;
  /** Calls into LevelDB under way: a reopen waits for none. */
  private inFlight = 0;
  private onIdle?: () => void;
  /** Snapshots and raw iterators open: no reopen under them. */
  private pinned = 0;

  private constructor(readonly path: string, private db: Level<Buffer, Buffer>, private readonly options: LevelOptions) {}

  /** The index at `path` (created when `create`). */
  static async open(path: string, create: boolean, options: LevelOptions = {}): Promise<IndexDb> {
    if (create) await makeLevelDirectory(path);
    return new IndexDb(path, await openLevel(path, create, options), options);
  }

  /** LevelDB closed and opened again in place, the caller holding the Writer: reopen.ts (false: not done). */
  async reopen(broken?: (bug: Error) => void): Promise<boolean> {
    return (await import('./reopen.js')).reopenLevel(this as unknown as Reopenable, () => openLevel(this.path, false, this.options), broken);
  }

  /** Undefined when LevelDB can be called now; else a promise of the end of a reopen under way. */
  whenOpen(): Promise<void> | undefined {
    return this.reopening;
  }

  /**
   * `read` (synchronous reads: getNow) in a turn with no reopen under way (one marks itself before it
   * closes LevelDB): outside the Writer, a synchronous read goes through here (else UNAVAILABLE).
   */
  readNow<T>(read: () => T): T | Promise<T> {
    return this.reopening ? this.reopening.then(() => this.readNow(read)) : read();
  }

  private left(): void {
    if (--this.inFlight === 0 && this.onIdle) {
      const idle = this.onIdle;
      this.onIdle = undefined;
      idle();
    }
  }

  /** `call` on LevelDB after any reopen, counted (no await of its own: every delivery's getManyNow). */
  private calling<T>(call: (db: Level<Buffer, Buffer>) => Promise<T>): Promise<T> {
    if (this.reopening) return this.reopening.then(() => this.calling(call));
    this.inFlight++;
    let running: Promise<T>;
    try {
      running = call(this.db);
    } catch (error) {
      this.left();
      return Promise.reject(error);
    }
    return running.finally(() => this.left());
  }

  /**
   * Point reads are synchronous: measured here, classic-level's async get costs ~70 µs per call
   * (a thread-pool round trip) against ~2 µs for getSync on cached data (BENCHMARKS.md).
   */
  async get<T>(key: Buffer): Promise<T | undefined> {
    while (this.reopening) await this.reopening;
    return this.getNow<T>(key);
  }

  /** The value a batch not yet landed holds for `key` (the newest batch first), DELETED, or undefined. */
  private behindValue(key: Buffer): unknown {
    if (this.behind.length === 0) return undefined;
    const name = key.toString('latin1');
    for (let i = this.behind.length - 1; i >= 0; i--) { // the newest value first
      const hit = this.behind[i].pending.get(name);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  getNow<T>(key: Buffer): T | undefined {
    if (this.reopening) this.duringReopen?.(key);
    const hit = this.behindValue(key);
    if (hit !== undefined) return (hit === DELETED ? undefined : hit) as T | undefined;
    const cacheable = this.uncached === 0 && CACHED_SPACES.has(key[0]);
    const name = cacheable ? key.toString('latin1') : '';
    if (cacheable) {
      const known = this.recent.get(name);
      if (known !== undefined) return (known === ABSENT ? undefined : known instanceof Uint8Array ? Buffer.from(known) : known) as T | undefined;
    }
    let raw: Buffer | undefined;
    try {
      raw = this.db.getSync(key);
    } catch (error) {
      throw this.readError(error);
    }
    const value = raw === undefined ? undefined : decodeValue<T>(raw, key);
    if (cacheable) this.remember(name, value);
    return value;
  }

  /**
   * Keeps what LevelDB returned for a key of CACHED_SPACES, if it is a value no caller can change
   * in place: nothing, a primitive, or bytes (handed out as a copy each time). A delivery reads the
   * same few such keys every time (its mailbox's name, the quota entries of the mailbox and its
   * parents, which are absent unless a quota is set, and meta counters), each a synchronous
   * LevelDB read of ~5 µs otherwise (BENCHMARKS.md "64 LMTP connections (session 18)").
   */
  private remember(name: string, value: unknown): void {
    const kept = value === undefined ? ABSENT : value instanceof Uint8Array ? Buffer.from(value) : typeof value === 'object' || typeof value === 'function' ? undefined : value;
    if (kept === undefined) return;
    if (this.recent.size >= limits.indexReadCacheEntries) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(name, kept);
  }

  /** Forgets the cached values of keys a batch in `behind` now holds (read through it until it lands, then from LevelDB). */
  private forget(pending: Pending): void {
    if (this.recent.size === 0) return;
    for (const name of pending.keys()) if (CACHED_SPACES.has(name.charCodeAt(0))) this.recent.delete(name);
  }

  /**
   * Runs a write that bypasses `behind`: nothing is cached from before it (cleared) or while it is
   * in flight (a read then may see LevelDB either side of it), and what was cached meanwhile by no
   * one is cleared again once it settled.
   */
  private async bypassing<T>(write: () => Promise<T>): Promise<T> {
    this.uncached++;
    this.recent.clear();
    try {
      return await write();
    } finally {
      this.recent.clear();
      this.uncached--;
    }
  }

  /**
   * Entries whose keys start with `prefix` (or lie in [gte, lt)), decoded, in key order, one at a
   * time. Read one, then 2, 4, ... up to limits.indexEntriesBatchMax per round trip to LevelDB's
   * thread pool: a caller that takes one entry or a few reads no more than before, and a walk over
   * a whole space (stats over 1M blob entries) makes a round trip per batch, not per entry (it made
   * one per entry: 31 s for `mailstore stats` on a 1M-message store).
   */
  async *entries<T>(range: { prefix?: Buffer; gte?: Buffer; lt?: Buffer; limit?: number; reverse?: boolean }): AsyncGenerator<[Buffer, T]> {
    const gte = range.gte ?? range.prefix!;
    const lt = range.lt ?? prefixEnd(range.prefix!);
    for await (const batch of this.rawBatches({ gte, lt, limit: range.limit ?? -1, reverse: range.reverse ?? false }, 1, limits.indexEntriesBatchMax)) {
      for (const entry of batch) yield [entry[0], decodeValue<T>(entry[1], entry[0])];
    }
  }

  /**
   * Entries in [gte, lt), decoded, in key order, up to `batchEntries` at a time: one round trip to
   * LevelDB's thread pool a batch instead of an await an entry (bulk reads). A batch also ends once
   * it holds more than `batchBytes` of keys and values (classic-level's highWaterMarkBytes, 16 KiB
   * unless given: ~130 message records, not the 256 readMessages asks for).
   */
  entryBatches<T>(range: { gte: Buffer; lt: Buffer }, batchEntries: number, batchBytes?: number): AsyncGenerator<[Buffer, T][]> {
    return this.decodedBatches<T>(this.rawBatches(batchBytes === undefined ? range : { ...range, highWaterMarkBytes: batchBytes }, batchEntries));
  }

  private async *decodedBatches<T>(batches: AsyncGenerator<[Buffer, Buffer][]>): AsyncGenerator<[Buffer, T][]> {
    for await (const batch of batches) {
      // each value decoded in its own entry: the batch is LevelDB's fresh array, not one more a message
      const entries = batch as unknown as [Buffer, Buffer | T][];
      for (let i = 0; i < entries.length; i++) entries[i][1] = decodeValue<T>(entries[i][1] as Buffer, entries[i][0]);
      yield entries as [Buffer, T][];
    }
  }

  /**
   * Raw entries after any batch still landing (or as a LevelDB snapshot holds them), `size` per
   * read, doubling after each read up to `growTo` (default: `size` throughout); read errors as
   * MailstoreErrors; the iterator always closed.
   */
  private async *rawBatches(options: RangeOptions, size: number, growTo = size): AsyncGenerator<[Buffer, Buffer][]> {
    if (!options.snapshot) await this.settle(); // a snapshot was taken after settling (and pins the handle)
    let left = options.limit ?? -1;
    let last: Buffer | undefined;
    let generation = -1;
    let iterator: Pick<RawIterator, 'nextv' | 'close'> | undefined;
    try {
      for (;;) {
        // a reopen under way or since the last batch (this iterator closed): reopen.ts
        while (!options.snapshot && (this.reopening || generation !== this.generation)) {
          if (!this.reopening && !iterator) {
            iterator = this.db.iterator(options);
            generation = this.generation;
          } else {
            [iterator, generation] = await (await import('./reopen.js')).resumed(this as unknown as Reopenable, iterator, options, last, left);
            if (!iterator) return;
          }
        }
        iterator ??= this.db.iterator(options);
        let batch: [Buffer, Buffer][];
        this.inFlight++;
        try {
          batch = await iterator.nextv(size);
        } catch (error) {
          throw this.readError(error);
        } finally {
          this.left();
        }
        if (batch.length === 0) return;
        last = batch[batch.length - 1]![0];
        if (left > 0) left = Math.max(0, left - batch.length);
        size = Math.min(size * 2, growTo);
        yield batch;
      }
    } finally {
      await iterator?.close().catch(() => undefined);
    }
  }

  /**
   * Several point reads in one round trip to LevelDB's thread pool, so the caller's thread goes on
   * working meanwhile (bulk reads fetch the next batch's records this way). A value that fails its
   * checksum comes back as its CORRUPT error, in its place: one damaged value hides no other.
   */
  async getMany<T>(keyList: Buffer[]): Promise<(T | MailstoreError | undefined)[]> {
    let raws: (Buffer | undefined)[];
    await this.settle();
    try {
      raws = await this.calling((db) => getManyInKeyOrder(db, keyList));
    } catch (error) {
      throw this.readError(error);
    }
    return raws.map((raw, i) => {
      if (raw === undefined) return undefined;
      try {
        return decodeValue<T>(raw, keyList[i]);
      } catch (error) {
        return this.readError(error);
      }
    });
  }

  /**
   * getNow for many keys: a batch still landing first (as getNow, without waiting for it: a key it
   * does not hold reads the same before and after it lands), the rest in one round trip to
   * LevelDB's thread pool instead of one synchronous call a key (a compaction's commit reads 20k
   * entries). A value that fails its checksum comes back as its CORRUPT error, in its place.
   */
  async getManyNow<T>(keyList: Buffer[]): Promise<(T | MailstoreError | undefined)[]> {
    const out: (T | MailstoreError | undefined)[] = new Array(keyList.length);
    const misses: number[] = [];
    keyList.forEach((key, i) => {
      const hit = this.behindValue(key);
      if (hit === undefined) misses.push(i);
      else out[i] = (hit === DELETED ? undefined : hit) as T;
    });
    if (misses.length === 0) return out;
    let raws: (Buffer | undefined)[];
    try {
      raws = await this.calling((db) => getManyInKeyOrder(db, misses.map((i) => keyList[i]!)));
    } catch (error) {
      throw this.readError(error);
    }
    misses.forEach((i, j) => {
      const raw = raws[j];
      if (raw === undefined) return void (out[i] = undefined);
      try {
        out[i] = decodeValue<T>(raw, keyList[i]);
      } catch (error) {
        out[i] = this.readError(error);
      }
    });
    return out;
  }

  /**
   * getManyNow of keys a mutation will read once the writer prepares it, started before it is
   * submitted (an import's next batch, while the one before it is written and synced), so the
   * writer does not wait for the thread-pool round trip on its way from one commit to the next:
   * that wait was ~1.8 ms of every 20k-corpus batch and 3-4 ms of every 250-message SpamAssassin
   * one (docs/bench/import-2026-12-03-s19.md). Every write from here on tells it which of its keys
   * it changed (writeBehind), or that it may have changed any (write, bulkLoad); IndexView.adopt
   * keeps only the values no write changed, so what a prepare reads is what getShared would read.
   */
  readAhead(keyList: Buffer[]): ReadAhead {
    const ahead: ReadAhead = new ReadAhead(this, keyList, this.getManyNow(keyList), () => this.aheads.delete(ahead));
    this.aheads.add(ahead);
    return ahead;
  }

  /** Tells the reads ahead that `pending` (undefined: any key) is about to change in the index. */
  private changing(pending: Pending | undefined): void {
    for (const ahead of this.aheads) ahead.changed(pending);
  }

  /** LevelDB reports a damaged table or block while reading ("Corruption: ..."): that is CORRUPT, with advice. */
  private readError(error: unknown): MailstoreError {
    if (error instanceof MailstoreError) return error;
    // a read in flight when the store closed (a daemon stopping under its clients' reads) or a
    // repair swapped the index meets LevelDB's "not open": nothing is wrong with the disk, so not
    // IO; and not CLOSED either, on which a daemon stops itself (a swap is over in a moment)
    if (this.db.status === 'closing' || this.db.status === 'closed') {
      return new MailstoreError('UNAVAILABLE', `the index at ${this.path} was closed while this read was under way (the store is closing, a repair is replacing its index, or it is being reopened to roll its LOG); nothing was changed: retry`, { path: this.path, cause: error, mayHaveCommitted: false });
    }
    const text = `${(error as Error)?.message ?? error} ${(error as { cause?: Error })?.cause?.message ?? ''}`.trim();
    // The same reading of LevelDB's text as at open: damage (Corruption, a table truncated or gone)
    // is CORRUPT and rebuildable; a full disk, a refused permission or an I/O error is not.
    const failure = classifyLevelError(error);
    const corrupt = /corrupt/i.test(text) || (failure.kind === 'damage' && /Corruption|IO error/i.test(failure.text));
    return new MailstoreError(corrupt ? 'CORRUPT' : failure.kind === 'system' ? failure.code : 'IO',
      `reading the index at ${this.path}: ${text}${corrupt ? "; run 'mailstore reconstruct' to rebuild it from the journal" : ''}`, { path: this.path, cause: error });
  }

  /**
   * A point-in-time view of the index (a LevelDB snapshot) taken after any batch still landing: its
   * reads see exactly the batches applied before it, whatever commits meanwhile. Index snapshots
   * and backups read the whole state through one, beside live writers. Close it when done.
   */
  async snapshot(): Promise<IndexSnapshot> {
    await this.settle();
    while (this.reopening) await this.reopening;
    const snapshot = this.db.snapshot();
    this.pinned++;
    let closed = false;
    const read = this.readError.bind(this);
    const db = this.db;
    return {
      get<T>(key: Buffer): T | undefined {
        let raw: Buffer | undefined;
        try {
          raw = db.getSync(key, { snapshot });
        } catch (error) {
          throw read(error);
        }
        return raw === undefined ? undefined : decodeValue<T>(raw, key);
      },
      async getMany<T>(keyList: Buffer[]): Promise<(T | undefined)[]> {
        let raws: (Buffer | undefined)[];
        try {
          raws = await getManyInKeyOrder(db, keyList, { snapshot });
        } catch (error) {
          throw read(error);
        }
        return raws.map((raw, i) => (raw === undefined ? undefined : decodeValue<T>(raw, keyList[i]!)));
      },
      entryBatches: <T>(range: { gte: Buffer; lt: Buffer }, batchEntries: number) => this.decodedBatches<T>(this.rawBatches({ ...range, snapshot }, batchEntries)),
      rawEntryBatches: (range: { gte: Buffer; lt: Buffer }, batchEntries: number) => this.rawBatches({ ...range, snapshot }, batchEntries),
      close: () => {
        if (!closed) this.pinned--;
        closed = true;
        return snapshot.close().catch(() => undefined);
      },
    };
  }

  /**
   * Raw keys and values: scrub checks the checksums itself. Call settle() first, with the Writer
   * held (as scrub does: a reopen holds it too, and would close one made meanwhile). A read LevelDB
   * fails (a damaged block: "Corruption: ...") is a MailstoreError (CORRUPT, IO, ...) as from
   * every other read here, never a plain Error.
   */
  rawIterator(range: { gte: Buffer; lt: Buffer }): RawIterator {
    const iterator = this.db.iterator({ gte: range.gte, lt: range.lt });
    this.pinned++;
    let open = true;
    const close = () => {
      if (open) this.pinned--;
      open = false;
      return iterator.close();
    };
    const mapped = <T>(read: Promise<T>): Promise<T> => read.catch((error: unknown) => { throw this.readError(error); });
    return {
      nextv: (size: number) => mapped(iterator.nextv(size)),
      close,
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const batch = await mapped(iterator.nextv(RAW_ITERATOR_BATCH));
            if (batch.length === 0) return;
            yield* batch;
          }
        } finally {
          await close().catch(() => undefined);
        }
      },
    };
  }

  /** A bulk loader into this index (empty, with no other writer: a rebuild). */
  bulkLoad(batchKeys: number, written?: WrittenKeys): BulkLoad {
    this.changing(undefined);
    // no read is cached until the load has finished (one never finished leaves the cache off)
    this.uncached++;
    this.recent.clear();
    let finished = false;
    return new BulkLoad(this.db, this.path, batchKeys, written, () => {
      if (finished) return;
      finished = true;
      this.recent.clear();
      this.uncached--;
    });
  }

  /** One atomic LevelDB batch, sync:false. The chained form: ~4 µs an op against ~20 for the array form here. */
  async write(ops: BatchOp[]): Promise<void> {
    if (ops.length === 0) return;
    this.changing(undefined);
    await this.bypassing(() => this.calling(async () => {
      const batch = this.db.batch();
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      await batch.write({ sync: false });
    }));
  }

  /**
   * Starts writing a view's pending set (IndexView.takePending) as one batch and returns once it
   * is handed to LevelDB (after the previous such batch has landed: LevelDB does not keep the
   * order of concurrent writes). Until it lands, getNow reads through it and range reads wait for
   * it. The returned promise `landed` rejects when the write fails.
   *
   * `deferred`: the batch is only registered (point reads see it at once) and returns without
   * waiting for anything: it is merged into a registered batch not yet handed to LevelDB (later
   * values win, as they would in LevelDB), else queued behind the one being written. It is handed
   * to LevelDB once startBehind (the writer calls it when the next commit's thread-pool fdatasyncs
   * start, so that CPU work overlaps the wait), settle() or limits.indexBehindMs asked for it, or
   * once it holds limits.indexBehindHandOverKeys keys, and the batch before it has landed. A commit thus never waits for the previous commit's index write (with
   * the in-thread journal flush it would: that write's completion needs this thread); at most
   * limits.indexBehindKeysMax keys wait merged, beyond that the caller waits for them to land.
   */
  async writeBehind(pending: Pending, options: { deferred?: boolean } = {}): Promise<{ landed: Promise<void> }> {
    if (options.deferred) {
      const landed = this.registerBehind(pending);
      if (landed) return { landed };
    }
    if (this.writeFailure) throw this.writeFailure;
    this.changing(pending); // before any read can see it (registered below)
    await this.settle();
    if (this.writeFailure) throw this.writeFailure;
    return { landed: this.queueBehindStarted(pending, options.deferred === true) };
  }

  /**
   * writeBehind({ deferred: true }) where it need not wait, as for nearly every commit: `pending`
   * merged into the registered batch not yet handed to LevelDB, or queued behind the one being
   * written; returns when that batch lands, with nothing to await and no frame suspended. Undefined
   * (nothing done) when it must first wait for earlier batches to land: call writeBehind then.
   * Throws the failure of an earlier batch, as writeBehind does.
   */
  registerBehind(pending: Pending): Promise<void> | undefined {
    if (this.writeFailure) throw this.writeFailure;
    const last = this.behind[this.behind.length - 1];
    if (last && !last.handed) {
      if (last.pending.size + pending.size > limits.indexBehindKeysMax) return undefined;
      this.changing(pending); // before any read can see it
      for (const [name, value] of pending) last.pending.set(name, value);
      this.forget(pending);
      if (last.pending.size >= limits.indexBehindHandOverKeys) last.start();
      return last.landed;
    }
    if (this.behind.length > 1) return undefined;
    this.changing(pending);
    return this.queueBehindStarted(pending, true);
  }

  /** queueBehind after the last batch, handed over now or (`deferred`, a small batch) within limits.indexBehindMs; its `landed`. */
  private queueBehindStarted(pending: Pending, deferred: boolean): Promise<void> {
    const behind = this.queueBehind(pending, this.behind[this.behind.length - 1]?.written);
    // at the latest: no commit came to start it (unref: an exit without close replays it from the journal)
    if (deferred && pending.size < limits.indexBehindHandOverKeys) setTimeout(behind.start, limits.indexBehindMs).unref();
    else behind.start(); // an empty batch only closes
    return behind.landed;
  }

  /**
   * A batch written once started and once `before` has landed. A failed batch stays in place and
   * fails every later one (unwritten): a later batch written over it would carry a newer
   * appliedSeq, and the next open would not replay the one that failed.
   */
  private queueBehind(pending: Pending, before: Promise<void> | undefined): Behind {
    let start!: () => void;
    const started = new Promise<void>((resolve) => { start = resolve; });
    const behind: Behind = { pending, handed: false, start, written: undefined as unknown as Promise<void>, landed: undefined as unknown as Promise<void> };
    behind.written = (async () => {
      await started;
      await before;
      while (this.reopening) await this.reopening;
      behind.handed = true; // built now, in this turn: nothing merges into it any more
      await writePending(this.db, behind.pending);
    })();
    behind.landed = behind.written.then(() => {
      const at = this.behind.indexOf(behind);
      if (at >= 0) this.behind.splice(at, 1);
    }, (error: unknown) => {
      this.writeFailure ??= error;
      throw error;
    });
    behind.landed.catch(() => undefined); // reported to whoever awaits `landed` or settle()
    this.behind.push(behind);
    // forgotten when the batch becomes visible to reads, not before: a read in between (writeBehind
    // may first wait for earlier batches) still sees LevelDB's value and may cache it
    this.forget(pending);
    return behind;
  }

  /** Hands the registered writeBehind batches to LevelDB now (without waiting for them to land). */
  startBehind(): void {
    for (const behind of this.behind) behind.start();
  }

  /** Waits until every writeBehind batch has landed (rethrows a failure, every time). */
  async settle(): Promise<void> {
    while (this.behind.length > 0) {
      const batches = this.behind.slice();
      for (const behind of batches) behind.start();
      for (const behind of batches) await behind.written; // a failure is rethrown here every time (writeFailure)
      this.behind = this.behind.filter((b) => !batches.includes(b));
    }
  }

  /**
   * Has LevelDB rewrite its files without what was overwritten or deleted (after a compaction
   * forgot most blob entries, the index holds their tombstones and old values: 6 MB for 0.6 MB of
   * live entries at 20k messages, 80 % expunged).
   */
  async compactFiles(): Promise<void> {
    await this.settle();
    try {
      // `level` is classic-level under Node; its type leaves compactRange out
      await this.calling((db) => (db as unknown as { compactRange(start: Buffer, end: Buffer): Promise<void> }).compactRange(Buffer.alloc(1, 0), Buffer.alloc(16, 0xff)));
    } catch (error) {
      throw this.readError(error);
    }
  }

  /**
   * Writes LevelDB's memtable into a table now (a compaction of a range no key is in does only
   * that). A bulk-loaded index is closed and opened again to be installed: flushed first, the
   * reopen reads an empty log instead of parsing the whole load from it into a memtable again
   * (measured: ~40 ms of CPU for 60k keys, against ~15 for the flush).
   */
  async flushMemtable(): Promise<void> {
    await this.settle();
    try {
      await this.calling((db) => (db as unknown as { compactRange(start: Buffer, end: Buffer): Promise<void> }).compactRange(Buffer.of(0), Buffer.of(0)));
    } catch (error) {
      throw this.readError(error);
    }
  }

  async close(): Promise<void> {
    while (this.reopening) await this.reopening;
    await this.settle().catch(() => undefined);
    this.recent.clear();
    await this.db.close();
  }
}

type LevelOptions = { writeBufferBytes?: number; compression?: boolean };

/** The options of a range read in rawBatches. */
type RangeOptions = { gte: Buffer; lt: Buffer; limit?: number; reverse?: boolean; highWaterMarkBytes?: number; snapshot?: ReturnType<Level<Buffer, Buffer>['snapshot']> };

/**
 * `writeBufferBytes`: LevelDB's memtable size (default 4 MiB); a rebuild's bulk load sets it larger
 * so that LevelDB writes no level-0 tables and compacts nothing while the load runs.
 * `compression: false`: the tables this open writes are not Snappy-compressed (a rebuild; LevelDB
 * marks each block's compression, so any later open reads them, and its compactions compress).
 */
async function openLevel(path: string, create: boolean, options: LevelOptions): Promise<Level<Buffer, Buffer>> {
  const db = new (await levelClass())<Buffer, Buffer>(path, {
    keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: create, errorIfExists: create,
    ...(options.writeBufferBytes ? { writeBufferSize: options.writeBufferBytes } : {}),
    ...(options.compression === false ? { compression: false } : {}),
    // a bound on the mapped table bytes a scan leaves in RSS (limits.indexOpenFilesMax)
    maxOpenFiles: limits.indexOpenFilesMax, maxFileSize: limits.indexTableFileBytes,
  });
  try {
    await db.open();
  } catch (error) {
    throw openError(error, path);
  }
  return db;
}

/** A write LevelDB refused (a full disk: NO_SPACE, not IO 'LEVEL_IO_ERROR'), read as at open. */
export function indexWriteError(error: unknown, path: string): MailstoreError {
  if (error instanceof MailstoreError) return error;
  const failure = classifyLevelError(error);
  const code = failure.kind === 'system' ? failure.code : 'IO';
  return new MailstoreError(code, `writing the index at ${path}: ${failure.text}${systemAdvice(code)}`, { path, cause: error });
}

/**
 * Why the index did not open, as the code a caller acts on: LOCKED, CORRUPT (damage: the rebuild
 * path) or the operating system's NO_SPACE, ACCESS or IO, for which nothing may be rebuilt.
 */
export function openError(error: unknown, path: string): MailstoreError {
  const failure = classifyLevelError(error);
  if (failure.kind === 'locked') return new MailstoreError('LOCKED', `the index at ${path} is held by another process`, { path, cause: error });
  if (failure.kind === 'damage') return new MailstoreError('CORRUPT', `the index at ${path} cannot be opened: ${failure.text}`, { path, cause: error });
  return new MailstoreError(failure.code, `opening the index at ${path}: ${failure.text}${systemAdvice(failure.code)}`, { path, cause: error });
}

/**
 * The keys a view has put into an index that was empty when the view began: a Bloom filter (no
 * false negatives), so a rebuild asks LevelDB only about keys it may have written. Without it every
 * new blob's refcount lookup is a LevelDB miss (~10 µs, the largest single cost of a rebuild).
 * Memory is fixed; past its capacity it answers "maybe" more often, which costs time, not truth.
 * Blocked: a key's four bits lie in one 64-byte block, so adding or asking touches one cache line
 * of the filter instead of four (4 random probes into 8 MiB were ~25 ms of a 20k-message rebuild
 * from a snapshot, 60k keys: issue 16).
 */
export class WrittenKeys {
  private readonly bits: Int32Array;
  /** Which block (of BLOCK_WORDS words) a hash picks: the number of blocks minus one. */
  private readonly blockMask: number;

  constructor(bytes: number) {
    let words = BLOCK_WORDS;
    while (words * 4 < bytes) words *= 2;
    this.bits = new Int32Array(words);
    this.blockMask = words / BLOCK_WORDS - 1;
  }

  add(name: string): void {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    this.set(h);
  }

  /** The same as add(key.toString('latin1')), without making the string. */
  addBytes(key: Uint8Array): void {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
    this.set(h);
  }

  mayHave(name: string): boolean {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    const base = (h & this.blockMask) * BLOCK_WORDS;
    const h2 = second(h);
    for (let k = 0; k < 4; k++) {
      const bit = blockBit(h, h2, k);
      if ((this.bits[base + (bit >>> 5)] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }

  /**
   * FNV-1a over the key's latin1 bytes picks the block (its low bits); four bits in it come from a
   * finalising mix of it (one multiply a byte, not two hashes: the filter is asked ~6 times a message).
   */
  private set(h: number): void {
    const base = (h & this.blockMask) * BLOCK_WORDS;
    const h2 = second(h);
    for (let k = 0; k < 4; k++) {
      const bit = blockBit(h, h2, k);
      this.bits[base + (bit >>> 5)] |= 1 << (bit & 31);
    }
  }
}

/** Words (32 bits) in a WrittenKeys block: 64 bytes, one cache line. */
const BLOCK_WORDS = 16;

/** The k-th (0-3) of a key's bits in its 512-bit block: nine bits of the mix each, the fourth from FNV's top bits. */
function blockBit(h: number, h2: number, k: number): number {
  return (k === 3 ? h >>> 23 : h2 >>> (9 * k)) & 511;
}

/** The mix of FNV-1a's hash the bits in a block come from: murmur3's finaliser. */
function second(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * A LevelDB batch as abstract-level's implementations see it (its "private API": classic-level's
 * ChainedBatch `_put` is one native batch_put). The public put() checks the key and value, looks up
 * both encodings and builds an operation object for every entry: ~0.7 µs of the ~3.3 µs of CPU a
 * rebuild from a snapshot spends an entry (60k entries for 20k messages, issue 16). A bulk load's
 * keys and values are Buffers already, the encodings 'buffer' (identity).
 */
interface RawBatch {
  _put(key: Uint8Array, value: Uint8Array): void;
  _del(key: Uint8Array): void;
  _write(options: { sync: boolean }): Promise<void>;
  close(): Promise<void>;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function rawBatch(batch: ReturnType<Level<Buffer, Buffer>['batch']>): RawBatch | undefined {
  const raw = batch as unknown as Partial<RawBatch>;
  // another abstract-level implementation (or version) without them: the public API, as before
  return typeof raw._put === 'function' && typeof raw._del === 'function' && typeof raw._write === 'function' ? raw as RawBatch : undefined;
}

/**
 * Puts into a fresh index straight into LevelDB batches of `batchKeys`, one batch in flight: a
 * rebuild loading a snapshot (millions of unique keys, never read back while loading) skips a
 * view's pending set, which costs a latin1 string, a map entry and a young-generation copy a key.
 * The batches are filled and written through classic-level's own batch methods (RawBatch) when it
 * has them.
 */
export class BulkLoad {
  private batch: ReturnType<Level<Buffer, Buffer>['batch']>;
  private raw: RawBatch | undefined;
  private count = 0;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(
    private readonly level: Level<Buffer, Buffer>, private readonly path: string, private readonly batchKeys: number, private readonly written?: WrittenKeys,
    private readonly finished: () => void = () => {},
  ) {
    this.batch = level.batch();
    this.raw = rawBatch(this.batch);
  }

  put(key: Buffer, value: unknown): void {
    assert(value !== undefined, 'a bulk load only puts'); // state ops never delete
    this.putRaw(key, encodeValue(key, value));
  }

  /** A stored value as is (checksum of key and body in front): a snapshot's entries. */
  putRaw(key: Uint8Array, value: Uint8Array): void {
    assert(key instanceof Uint8Array && value instanceof Uint8Array, 'a bulk load puts bytes'); // what public put() would have refused
    this.written?.addBytes(key);
    if (this.raw) this.raw._put(key, value);
    else this.batch.put(asBuffer(key), asBuffer(value));
    this.count++;
  }

  /** Starts writing the batch once it is full (after the one before has landed). */
  async maybeFlush(): Promise<void> {
    if (this.count >= this.batchKeys) await this.flush();
  }

  /** Everything put has landed. */
  async finish(): Promise<void> {
    await this.flush();
    await this.inFlight;
    this.finished();
  }

  private async flush(): Promise<void> {
    await this.inFlight;
    const full = this.batch, raw = this.raw, count = this.count;
    this.batch = this.level.batch();
    this.raw = rawBatch(this.batch);
    this.count = 0;
    // the public write() of a batch filled through _put counts no entries and would only close it
    const written = !raw ? full.write({ sync: false }) : count === 0 ? raw.close() : writeRaw(raw);
    this.inFlight = written.catch((e: unknown) => { throw indexWriteError(e, this.path); });
  }
}

/** A RawBatch written (sync:false) and then closed, as write() does; closed on a failure too. */
async function writeRaw(raw: RawBatch): Promise<void> {
  try {
    await raw._write({ sync: false });
  } finally {
    await raw.close();
  }
}

/**
 * Index values read ahead of the mutation that needs them (IndexDb.readAhead), with the keys a
 * write changed since the read began: those are read again when they are needed.
 */
export class ReadAhead {
  private readonly names: Set<string>;
  /** Keys a write changed since the read began; `all` after a write that does not say which. */
  private readonly stale = new Set<string>();
  private all = false;
  private done = false;

  constructor(
    readonly db: IndexDb, private readonly keyList: Buffer[],
    private readonly values: Promise<unknown[]>, private readonly unwatch: () => void,
  ) {
    this.names = new Set(keyList.map((key) => key.toString('latin1')));
    values.catch(() => undefined); // a failed read keeps nothing: the keys are read when needed, and fail there
  }

  /** Called by IndexDb before `pending` (undefined: any key) changes in the index. */
  changed(pending: Pending | undefined): void {
    if (pending === undefined) {
      this.all = true;
      return;
    }
    if (pending.size <= this.names.size) {
      for (const name of pending.keys()) if (this.names.has(name)) this.stale.add(name);
    } else {
      for (const name of this.names) if (pending.has(name)) this.stale.add(name);
    }
  }

  /**
   * The values no write changed since the read began, by key (latin1; undefined for a key the
   * index does not hold); a damaged value or a failed read is left out. Ends the watch: called
   * once, right before the values are used.
   */
  async take(): Promise<Map<string, unknown>> {
    const current = new Map<string, unknown>();
    let values: unknown[] | undefined;
    try {
      values = await this.values;
    } catch {
      values = undefined;
    }
    // from here to the caller's use nothing awaits: no write can come between this check and that use
    const all = this.all;
    this.release();
    if (values === undefined || all) return current;
    this.keyList.forEach((key, i) => {
      const name = key.toString('latin1');
      const value = values[i];
      if (!(value instanceof MailstoreError) && !this.stale.has(name)) current.set(name, value);
    });
    return current;
  }

  /** Stops watching (the mutation was refused before it was prepared); a take() after it keeps nothing. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.all = true;
    this.unwatch();
  }
}

/** A pending write set over the index: reads see it first; commit turns it into one LevelDB batch. */
export class IndexView {
  private overlay: Pending = new Map();
  /** getShared's reads of the index since the pending set was last handed over. */
  private memo = new Map<string, unknown>();

  /**
   * `written`: the index was empty when this view began and only this view writes to it (a
   * rebuild): a key the filter never saw is not in LevelDB, so reading it costs no round trip.
   */
  constructor(readonly db: IndexDb, private readonly written?: WrittenKeys, private readonly below?: Pending) {}

  /**
   * A view of what this one holds plus what is written to it next: the writer prepares a chained
   * batch while the batch before it syncs (Writer, "pipelined"), over that batch's pending set,
   * which is not in the index yet. Its reads look at its own pending set, then at this one's (the
   * same Map: when this view hands it to the index, the new view still reads it there, and the
   * index holds the same values), then the index. Nothing else writes to the index meanwhile.
   */
  stacked(): IndexView {
    assert(!this.written, 'a stacked view over a rebuild');
    return new IndexView(this.db, undefined, this.overlay);
  }

  async get<T>(key: Buffer): Promise<T | undefined> {
    return this.getNow<T>(key);
  }

  /** The pending set, then the index (a synchronous point read). */
  getNow<T>(key: Buffer): T | undefined {
    const name = key.toString('latin1');
    let value = this.overlay.get(name); // never undefined for a key it holds (DELETED)
    if (value === undefined && this.below !== undefined) value = this.below.get(name);
    if (value !== undefined) return (value === DELETED ? undefined : value) as T | undefined;
    if (this.written && !this.written.mayHave(name)) return undefined;
    return this.db.getNow<T>(key); // through a batch still landing (writeBehind), then LevelDB
  }

  /**
   * getNow, remembering what the index returned until the pending set is handed over: for a key
   * read twice in one batch, once by a mutation's prepare and again by its op's apply (a
   * compaction's conditional forgets: 16k entries, each read and decoded twice). The pending set
   * still comes first, and nothing but this view's batches changes the index while it is open
   * (the Writer, replay). The value is shared: callers only read it.
   */
  getShared<T>(key: Buffer): T | undefined {
    return this.sharedByName<T>(key.toString('latin1'), key);
  }

  /**
   * getShared, then del when `test` holds for the value read, with one latin1 name for both (a
   * compaction's forgets apply 16k of them in a batch).
   */
  delIfShared<T>(key: Buffer, test: (value: T | undefined) => boolean): void {
    const name = key.toString('latin1');
    if (test(this.sharedByName<T>(name, key))) this.overlay.set(name, DELETED);
  }

  private sharedByName<T>(name: string, key: Buffer): T | undefined {
    let value = this.overlay.get(name); // never undefined for a key it holds (DELETED)
    if (value === undefined && this.below !== undefined) value = this.below.get(name);
    if (value !== undefined) return (value === DELETED ? undefined : value) as T | undefined;
    const remembered = this.memo.get(name); // one lookup for a value; has() only for a remembered absence
    if (remembered !== undefined || this.memo.has(name)) return remembered as T | undefined;
    const read = this.written && !this.written.mayHave(name) ? undefined : this.db.getNow<T>(key);
    this.memo.set(name, read);
    return read;
  }

  /**
   * Reads the keys getShared would read from the index in one round trip (IndexDb.getManyNow) and
   * remembers them as getShared does: a mutation's prepare that will read thousands of entries
   * (a compaction's forgets and relocations) calls it first. A damaged value is not remembered, so
   * getShared reads it again and throws.
   */
  async prefetch(keyList: Buffer[]): Promise<void> {
    const wanted = keyList.filter((key) => {
      const name = key.toString('latin1');
      return !this.overlay.has(name) && !this.below?.has(name) && !this.memo.has(name) && !(this.written && !this.written.mayHave(name));
    });
    if (wanted.length === 0) return;
    const values = await this.db.getManyNow(wanted);
    wanted.forEach((key, i) => {
      const value = values[i];
      if (!(value instanceof MailstoreError)) this.memo.set(key.toString('latin1'), value);
    });
  }

  /**
   * prefetch with values the caller read from this index itself and knows unchanged since (a
   * compaction's planning scan, no record committed after it): remembered as getShared's reads,
   * for keys the pending sets do not hold. A value that is not the index's is a bug of the caller.
   * Returns what getShared would read of each key right after.
   */
  remember<T>(keyList: Buffer[], values: T[]): (T | undefined)[] {
    assert(keyList.length === values.length, `${keyList.length} keys remembered with ${values.length} values`);
    assert(!this.written, 'remembered values over a rebuild');
    // what getShared reads of each key from now on, with one latin1 name a key (not one here and
    // another in a getShared after). A callback a key, not a loop here: V8 compiled a 16k-key loop
    // on the stack (OSR) and then again whole, more compiler work than the names saved.
    return keyList.map((key, i) => this.rememberOne(key.toString('latin1'), values[i]));
  }

  /** The pending sets first, then the memo, as getShared looks; else `value`, remembered. */
  private rememberOne<T>(name: string, value: T): T | undefined {
    let pending = this.overlay.get(name);
    if (pending === undefined && this.below !== undefined) pending = this.below.get(name);
    if (pending !== undefined) return (pending === DELETED ? undefined : pending) as T | undefined;
    const remembered = this.memo.get(name);
    if (remembered !== undefined || this.memo.has(name)) return remembered as T | undefined;
    this.memo.set(name, value);
    return value;
  }

  /**
   * prefetch with values read ahead (IndexDb.readAhead): getShared answers from those no write
   * changed since they were read, and reads the others when asked. A read ahead of an index this
   * view does not read (replaced by a rebuild since) is not used.
   */
  async adopt(ahead: ReadAhead): Promise<void> {
    if (ahead.db !== this.db) {
      ahead.release();
      return;
    }
    const current = await ahead.take();
    for (const [name, value] of current) {
      if (!this.overlay.has(name) && !this.below?.has(name) && !this.memo.has(name) && !(this.written && !this.written.mayHave(name))) this.memo.set(name, value);
    }
  }

  /**
   * The keys under `prefix` that this view's pending sets hold (deleted ones too), as latin1
   * strings: a range read of the index misses what the batch being prepared changed.
   */
  pendingKeys(prefix: Buffer): string[] {
    const start = prefix.toString('latin1');
    const out = new Set<string>();
    for (const set of this.below ? [this.below, this.overlay] : [this.overlay]) {
      for (const name of set.keys()) if (name.startsWith(start)) out.add(name);
    }
    return [...out];
  }

  put(key: Buffer, value: unknown): void {
    const name = key.toString('latin1');
    // a key put in this window is in the filter already (a mailbox's info is put once a message)
    if (this.written) {
      const pending = this.overlay.get(name);
      if (pending === undefined || pending === DELETED) this.written.add(name);
    }
    this.overlay.set(name, value === undefined ? DELETED : value);
  }

  del(key: Buffer): void {
    this.overlay.set(key.toString('latin1'), DELETED);
  }

  get size(): number {
    return this.overlay.size;
  }

  /** Hands the pending set over (to IndexDb.writeBehind) and starts a new, empty one. */
  takePending(): Pending {
    const pending = this.overlay;
    this.overlay = new Map();
    this.memo.clear(); // the index changes once the pending set lands
    return pending;
  }

  /** Writes the pending set as one batch and waits for it to land. */
  async flush(): Promise<void> {
    const { landed } = await this.db.writeBehind(this.takePending());
    await landed;
  }

  /**
   * Replay: hands the pending set to LevelDB (IndexDb.writeBehind, which reads through it until it
   * lands) and goes on applying while it is written; at most one batch is in flight.
   */
  async flushBehind(): Promise<void> {
    await this.db.writeBehind(this.takePending());
  }
}
