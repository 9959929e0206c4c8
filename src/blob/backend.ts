// What compaction (and, later, a remote blob store) needs of the place message bodies live: packs
// named by number, read by location and verified, written as whole new packs, removed once retired.
// PackStore (local files) implements it; an S3-compatible backend would map a pack to an object
// (write = multipart upload made visible at `sync`, remove = DeleteObject once no reader holds it).
import type { HashPool } from '../hash/pool.js';
import type { BlobLocation, PackWriter, RunItem } from './pack-store.js';

export interface NewPack {
  readonly pack: number;
  /** Bytes handed to `append` so far, header included. */
  readonly size: number;
  append(hash: Buffer, bytes: Buffer): Promise<BlobLocation>;
  /** Appends a verified record (header + body) read from another pack, byte for byte. */
  appendRecord(record: Buffer): Promise<BlobLocation>;
  /**
   * Starts writing what was appended, after the write before it finished: when it returns, no
   * write still reads a buffer appended before the previous call (the caller may reuse those).
   */
  writeBehind(): Promise<void>;
  /** Everything appended is durable and the pack is visible under its name. */
  sync(): Promise<void>;
  close(): Promise<void>;
  /** Removes this pack (never synced into use): nothing refers to it. */
  abort(): Promise<void>;
}

export interface BlobBackend {
  listPacks(): Promise<number[]>;
  /** Bytes a pack takes (0 when it is gone). */
  packBytes(pack: number): Promise<number>;
  /** A blob's bytes, verified against its hash (CORRUPT otherwise). */
  read(location: BlobLocation, hash: Buffer): Promise<Buffer>;
  readStream(location: BlobLocation, hash: Buffer, chunkBytes: number): AsyncGenerator<Buffer>;
  /**
   * Neighbouring records of one pack with one read, each verified; sets each item's body and
   * (keepRecords, the default) record, or its error.
   */
  readRun(pack: number, items: RunItem[], pool?: HashPool, keepRecords?: boolean): Promise<void>;
  /**
   * readRun for several runs of one pack at once: one buffer (`into` when big enough; a shared one
   * from `at`, never handed over), one pread a run, one hashing job (compaction's copy,
   * readMessages). `verify` false: headers and lengths checked, the caller checks each body's hash.
   * `aside`: read on the thread pool (ReadOptions.aside).
   */
  readRuns(pack: number, runs: RunItem[][], pool?: HashPool, keepRecords?: boolean, into?: ArrayBufferLike, verify?: boolean, at?: number, aside?: boolean): Promise<void>;
  /** The pack new appends go to (0: the next append starts a new one). */
  readonly appendPack: number;
  /** The next append starts a new pack (only while the Writer is held). */
  seal(): void;
  /** A new pack numbered above every pack so far; it gets its name (becomes listed) at its first `sync`. */
  createSidePack(): Promise<NewPack>;
  /** Removes new packs a crashed compaction left unnamed. */
  removePartialPacks(): Promise<string[]>;
  /** New packs are numbered above `pack`. */
  reserveNumbersTo(pack: number): void;
  /** Removes a retired pack once no reader holds it (waits up to waitMs; false when one still does). */
  removePack(pack: number, waitMs: number): Promise<boolean>;
  /**
   * Why a local pack file is not this store's own (its header names another store or pack number),
   * undefined when it is ours, in the object store, or its header does not read (PackStore.foreignPack).
   */
  foreignPack(pack: number): Promise<string | undefined>;
  /** Moves a pack file no entry refers to into the `quarantine` directory; returns its new path. */
  setAsidePack(pack: number, quarantine: string): Promise<string>;
  /** Makes removals durable. */
  syncDir(): Promise<void>;
  /** The pack lives in the object store (tier.ts): its removal also deletes its object. */
  isRemote(pack: number): boolean;
  /** Deletes a removed pack's object, once the journal no longer lists it in the tier. */
  removeRemote(pack: number): Promise<void>;
}

// PackStore satisfies BlobBackend; checked here so the two cannot drift apart.
export type PackWriterIsNewPack = PackWriter extends NewPack ? true : never;
