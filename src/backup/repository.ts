// A backup repository on disk (docs/BACKUP.md): config, data/, index/, snapshots/, locks/.
// Every file is written whole (temp, fsync, rename, directory fsync) and named by its content, so
// a file is either absent or complete and checkable; nothing refers to a file before it is
// durable, and a snapshot is written last. This module knows the layout; backup.ts, restore.ts,
// check.ts and forget.ts decide what to write.
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { DurableStream, createFileDurable, ensureDir, refuseIgnoredSync, writeFileAtomic, writeFileDurable } from '../fs/durable.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { describeCommandLine } from '../fs/process-files.js';
import { bootId, processIdentity } from '../fs/process-start.js';
import { backupLimits, limits } from '../limits.js';
import { createHasher, hashReady, type Hasher } from '../hash/blake3.js';
import type { Op } from '../store/records.js';
import { refuseOthersMayWrite } from '../store/identity.js';
import { phase } from '../phases.js';
import { newEncryptionParams, openKeys, type EncryptionParams, type RepositoryKeys } from './crypto.js';
import { applyDelta, type SnapshotDelta } from './delta.js';
import { HASH_BYTES, compareHashes } from './tip.js';
import { indexIds, mergeHeld, readHeld, removeHeldCovering, tableHolds, writeHeld, type HeldTable } from './held-ids.js';
import { zstdAvailable } from './zstd.js';
import { openRepositoryFile, readRepositoryFile } from './repository-read.js';
import { checkSnapshotState } from './snapshot-shape.js';
import type { ScanResult } from './scan.js';
import { DATA_HEADER_BYTES, DELTA_FORMAT_VERSION, FORMAT_VERSION, METADATA_STORED_BYTES_MAX, RECORD_STORED_BYTES_MAX, REPO_VERSIONS, REPO_VERSION_NEW, contentName, decodeMetadataFile, encodeMetadataFile, isContentName, type BlobCodec, type FileKind } from './format.js';
import { monotonicMs } from '../monotonic.js';

/** `damaged`: index files `backup repair` set aside (repair.ts), kept, never read. */
export const REPO_LAYOUT = { config: 'config', data: 'data', index: 'index', snapshots: 'snapshots', locks: 'locks', tips: 'tips', damaged: 'damaged', heal: 'heal' } as const;
export const REPO_FORMAT = 'mailstore-backup';

export interface RepoConfig {
  format: typeof REPO_FORMAT;
  version: number;
  /** The repository's id (UUID). */
  id: string;
  created: string;
  encryption?: EncryptionParams;
}

/** Where one blob is: its data file, the offset of its record, the stored length after the record header. */
export interface BlobEntry {
  file: string;
  offset: number;
  length: number;
}

/** The index files a restore reads: blob id (hex) -> its places (more than one after an interrupted prune), and the files that do not read. */
export interface BlobIndex {
  places: Map<string, BlobEntry[]>;
  unreadable: string[];
  /** The data files the index files that read name: a scan (scan.ts) walks only the others. */
  named: Set<string>;
  /** The scan of the other data files, started by the first blob no index file that reads lists (once per operation). */
  scan?: Promise<ScanResult>;
  /** The blobs read where the scan found them (hex ids): a restore says how many. */
  foundByScan: Set<string>;
}

/** An index file: the records of one or more data files. */
export interface IndexFile {
  files: { file: string; blobs: [id: Buffer, offset: number, length: number][] }[];
}

export interface SnapshotCounts {
  mailboxes: number;
  messages: number;
  /** Message bytes the snapshot's messages hold (each copy counted). */
  bytes: number;
  /** Distinct blobs the snapshot refers to. */
  blobs: number;
}

/** A snapshot file: one consistent state of one store (the checkpoint ops, docs/FORMAT.md). */
export interface SnapshotFile {
  version: number;
  /** ms since the epoch */
  time: number;
  storeId: string;
  hostname: string;
  /** The journal seq the state reflects. */
  seq: number;
  /**
   * BLAKE3 (hex) of the store's journal record at `seq`, when known: an incremental run builds on
   * this snapshot only when the store's record at `seq` is the same (the same history). Absent in
   * snapshots of older mailstore; those are never built on.
   */
  journalDigest?: string;
  counts: SnapshotCounts;
  /**
   * state.begin, state.meta, state.mailbox, state.messages, state.changes (no state.blobs:
   * locations are the store's). In a delta snapshot file only state.begin, state.meta and
   * state.mailbox; readSnapshot gives the whole state.
   */
  ops: Op[];
  /** A delta snapshot (delta.ts): the snapshot it builds on, how many deltas deep it is (1 on a whole one), and what changed. */
  parent?: string;
  depth?: number;
  delta?: SnapshotDelta;
}

export interface OpenRepositoryOptions {
  /** The key file's bytes (an encrypted repository needs it; a new one is encrypted with it). */
  secret?: Buffer;
  /** Create the repository when the directory is missing or empty. */
  create?: boolean;
  /**
   * Asked before a repository is created (none is there): throws to refuse, with nothing written
   * (a backup disk that did not mount: `mailstore backup`'s checks, new-repository.ts).
   */
  beforeCreate?: () => Promise<void>;
}

export class Repository {
  private readonly handles = new Map<string, FileHandle>();
  /** The held-ids table of this run's index lookups (held-ids.ts), the files it has read added. */
  private held: HeldTable | undefined;
  /** ...and the index files the table it started from covered (written again only when it covers more). */
  private heldStored: { covered: Set<string>; ids: number } | undefined;
  /** The ids (32 bytes each, one buffer) of each index file this process wrote, by name: saveHeld adds them without reading the file again. */
  private readonly indexWritten = new Map<string, Buffer>();
  /** Index files found damaged by this process's lookups or verifyIndexFiles (a backup reports them). */
  readonly damagedIndex = new Set<string>();
  /** Bytes of data files read (restore reports it). */
  dataBytesRead = 0;
  /** Bytes of new files written (backup reports it). */
  bytesWritten = 0;

  /** `created`: this open made the repository (its first backup). */
  private constructor(readonly fs: FileSystem, readonly dir: string, readonly config: RepoConfig, readonly keys: RepositoryKeys | undefined, readonly created = false) {}

  static async open(fs: FileSystem, dir: string, options: OpenRepositoryOptions = {}): Promise<Repository> {
    await hashReady; // as Store.open: only the CLI bundle without the native binding waits here
    let config = await readConfig(fs, dir);
    let keys: RepositoryKeys | undefined;
    if (!config && options.create) {
      await options.beforeCreate?.();
      await refuseIgnoredSync(fs, dir, 'the backup repository');
      const made = await initRepository(fs, dir, options.secret);
      if (made) return new Repository(fs, dir, made.config, made.keys, true);
      config = await readConfig(fs, dir); // another process created it meanwhile: open that one
    }
    if (!config) {
      if (await holdsSnapshots(fs, dir)) throw new MailstoreError('NOT_FOUND', `${dir} holds a backup repository's snapshots but no config (lost): an encrypted repository needs its copy (a backup of the repository); an unencrypted one's is written again by 'mailstore backup repair --repo ${dir} --new-config'`, { path: dir });
      throw new MailstoreError('NOT_FOUND', `no backup repository at ${dir} (no config file; 'mailstore backup' creates one)`, { path: dir });
    } else if (config.encryption) {
      if (!options.secret) throw new MailstoreError('INVALID', `the backup repository at ${dir} is encrypted: give its --key-file`, { path: dir });
      keys = openKeys(options.secret, config.encryption, dir);
    } else if (options.secret) {
      throw new MailstoreError('INVALID', `the backup repository at ${dir} is not encrypted; leave out --key-file`, { path: dir });
    }
    return new Repository(fs, dir, config, keys);
  }

  /**
   * How new blobs are compressed: deflate in a version-1 repository, Brotli in a version-2 one (so
   * the mailstore that made them reads them), zstd from version 3 where its binary loads, Brotli
   * where it does not (zstdNote; every record names its codec, so a mixed repository reads back).
   */
  get codec(): BlobCodec {
    if (this.config.version >= 3) return zstdAvailable ? 'zstd' : 'brotli';
    return this.config.version >= 2 ? 'brotli' : 'deflate';
  }

  path(area: keyof typeof REPO_LAYOUT, name = ''): string {
    return join(this.dir, REPO_LAYOUT[area], name);
  }

  /** Content names in data/, index/ or snapshots/ (temp files of interrupted writes are left out). */
  async list(area: 'data' | 'index' | 'snapshots'): Promise<string[]> {
    try {
      return (await this.fs.readdir(this.path(area))).filter(isContentName);
    } catch (error) {
      throw fromSystemError(error, 'listing', this.path(area));
    }
  }

  /** Temp files left by writes that were interrupted (prune removes them). */
  async leftovers(area: 'data' | 'index' | 'snapshots' | 'tips'): Promise<string[]> {
    return (await this.fs.readdir(this.path(area)).catch(() => [])).filter((name) => name.startsWith('.') && name.endsWith('.tmp'));
  }

  /** Writes a whole file under its content name; an existing file of that name already holds these bytes. */
  async writeContent(area: 'data' | 'index' | 'snapshots', bytes: Buffer): Promise<string> {
    const name = contentName(bytes);
    const path = this.path(area, name);
    if (await this.fs.statIfExists(path)) return name;
    try {
      await writeFileDurable(this.fs, path, bytes);
    } catch (error) {
      throw fromSystemError(error, 'writing the backup file', path);
    }
    this.bytesWritten += bytes.length;
    return name;
  }

  /**
   * A whole file under its content name in two steps: written and fsynced under a temp name now
   * (beside other files' fsyncs), made visible by `publish` (rename, directory fsync) once what it
   * refers to is durable. `abort` removes the temp file. A run killed between them leaves a temp
   * file, which no reader lists and prune removes (docs/BACKUP.md, "Invariants and write order").
   */
  async stageContent(area: 'index' | 'snapshots', bytes: Buffer): Promise<StagedFile> {
    const name = contentName(bytes);
    let stream: DurableStream;
    try {
      stream = await DurableStream.open(this.fs, this.path(area), area);
    } catch (error) {
      throw fromSystemError(error, 'writing the backup file', this.path(area));
    }
    stream.append([bytes]);
    const synced = stream.sync();
    synced.catch(() => undefined); // reported by publish
    return {
      name,
      publish: async () => {
        try {
          if (await stream.finish(name)) this.bytesWritten += bytes.length;
        } catch (error) {
          throw fromSystemError(error, 'writing the backup file', this.path(area, name));
        }
        return name;
      },
      abort: () => stream.abort(),
    };
  }

  async stageIndex(index: IndexFile): Promise<StagedFile> {
    const staged = await this.stageContent('index', encodeMetadataFile('index', index, this.keys));
    return {
      ...staged,
      publish: async () => {
        const name = await staged.publish();
        this.noteWritten(name, index); // in view: saveHeld adds its ids without reading it again
        return name;
      },
    };
  }

  /**
   * A data file from its parts (header and records), hashed and written part by part: a 16 MiB
   * Buffer.concat per data file was a tenth of a backup's main-thread time, with the garbage it made.
   */
  async writeData(parts: Buffer[]): Promise<string> {
    const hasher = await createHasher();
    let length = 0;
    for (const part of parts) { hasher.update(part); length += part.length; }
    const name = hasher.digest().toString('hex');
    const path = this.path('data', name);
    if (await this.fs.statIfExists(path)) return name;
    try {
      await writeFileDurable(this.fs, path, parts);
    } catch (error) {
      throw fromSystemError(error, 'writing the backup file', path);
    }
    this.bytesWritten += length;
    return name;
  }

  /**
   * A data file written as its records are made (backup.ts): the bytes reach the page cache while
   * the next blobs are read and compressed, so closing it costs only its fsync and rename.
   */
  async openData(): Promise<DataStream> {
    const hasher = await createHasher();
    try {
      return new DataStream(this, await DurableStream.open(this.fs, this.path('data'), 'data'), hasher);
    } catch (error) {
      throw fromSystemError(error, 'writing the backup file', this.path('data'));
    }
  }

  /** Counts the bytes of a new file (DataStream's, written past writeContent). */
  countWritten(bytes: number): void {
    this.bytesWritten += bytes;
  }

  async writeIndex(index: IndexFile): Promise<string> {
    const name = await this.writeContent('index', encodeMetadataFile('index', index, this.keys));
    this.noteWritten(name, index);
    return name;
  }

  writeSnapshot(snapshot: SnapshotFile): Promise<string> {
    return this.writeSnapshotBytes(this.encodeSnapshot(snapshot));
  }

  /** A snapshot file's bytes (encoded ahead of its write: backup.ts encodes it while its data files sync). */
  encodeSnapshot(snapshot: SnapshotFile): Buffer {
    const bytes = encodeMetadataFile('snapshot', snapshot, this.keys, snapshot.delta ? DELTA_FORMAT_VERSION : FORMAT_VERSION);
    phase('snapshot encoded');
    return bytes;
  }

  /** Writes a snapshot file encodeSnapshot made; the caller has written everything it refers to. */
  writeSnapshotBytes(bytes: Buffer): Promise<string> {
    return this.writeContent('snapshots', bytes);
  }

  async readMetadata<T>(kind: FileKind, name: string): Promise<T> {
    const area = kind === 'index' ? 'index' : 'snapshots';
    const path = this.path(area, name);
    let bytes: Buffer;
    try {
      bytes = await readRepositoryFile(this.fs, path, METADATA_STORED_BYTES_MAX);
    } catch (error) {
      throw fromSystemError(error, `reading the ${kind} file`, path);
    }
    const value = decodeMetadataFile<T>(kind, bytes, name, path, this.keys);
    if (kind === 'index') checkIndexFile(value, path);
    if (kind === 'snapshot') checkSnapshotFile(value, path);
    return value;
  }

  /**
   * A snapshot's whole state: a delta snapshot's parent read the same way and the delta applied
   * (delta.ts). CORRUPT naming this snapshot when a file of its chain does not read, so check
   * reports every snapshot a damaged file breaks; INVALID (a wrong key, a newer format) as it is.
   */
  async readSnapshot(id: string, cache: SnapshotCache = newSnapshotCache(), depth = 0): Promise<SnapshotFile> {
    const cached = cache.whole.get(id);
    if (cached) return cached;
    const file = cache.files?.get(id) ?? await this.readMetadata<SnapshotFile>('snapshot', id);
    if (file.parent === undefined) {
      cache.chains?.set(id, []);
      checkSnapshotState(file.ops, this.path('snapshots', id));
      return remember(cache, id, file);
    }
    const path = this.path('snapshots', id);
    if (depth >= backupLimits.deltaChainReadMax) throw new MailstoreError('CORRUPT', `${path}: its chain of delta snapshots is longer than ${backupLimits.deltaChainReadMax}`, { path });
    let parent: SnapshotFile;
    try {
      parent = await this.readSnapshot(file.parent, cache, depth + 1);
    } catch (error) {
      if (!isMailstoreError(error) || error.code === 'INVALID') throw error;
      throw new MailstoreError('CORRUPT', `${path}: the snapshot it builds on (${file.parent.slice(0, 12)}) does not read: ${error.message}`, { path, cause: error });
    }
    const below = cache.chains?.get(file.parent);
    if (below) cache.chains!.set(id, [...below, file.parent]);
    const whole = applyDelta(parent, file, path);
    checkSnapshotState(whole.ops, path);
    return remember(cache, id, whole);
  }

  /**
   * A snapshot file's bytes still match its name (read and hashed, not decoded): an incremental
   * run checks the chain under the snapshot it builds on this way when it uses that snapshot's tip.
   */
  async verifySnapshotFile(id: string): Promise<void> {
    const path = this.path('snapshots', id);
    let bytes: Buffer;
    try {
      bytes = await readRepositoryFile(this.fs, path, METADATA_STORED_BYTES_MAX);
    } catch (error) {
      throw fromSystemError(error, 'reading the snapshot file', path);
    }
    if (contentName(bytes) !== id) throw new MailstoreError('CORRUPT', `${path}: content does not match its name (damaged)`, { path });
  }

  /**
   * Every index file that reads, merged (restore). A damaged one is left out and named, not thrown:
   * check names the messages only it listed, and a restore refuses those, not every message.
   */
  async loadIndex(): Promise<BlobIndex> {
    const places = new Map<string, BlobEntry[]>();
    const unreadable: string[] = [];
    const named = new Set<string>();
    for (const name of await this.list('index')) {
      let index: IndexFile;
      try {
        index = await this.readMetadata<IndexFile>('index', name);
      } catch (error) {
        if (!isMailstoreError(error, 'CORRUPT')) throw error;
        unreadable.push(name);
        continue;
      }
      addToIndex(places, index);
      for (const { file } of index.files) named.add(file);
    }
    return { places, unreadable, named, foundByScan: new Set() };
  }

  /**
   * Which of `ids` some index file lists (what a backup needs to know, not where they are), in
   * order. The wanted ids are keyed by their first 4 bytes, so the index's ids are only read, not
   * turned into strings (a set of every id in hex was most of this on a run with a few new blobs).
   */
  async indexHolds(ids: Uint8Array[]): Promise<boolean[]> {
    const held = ids.map(() => false);
    if (ids.length === 0) return held;
    const names = await this.list('index');
    // the held-ids table (held-ids.ts) answers for the index files it covers; only the others are read
    const table = await this.heldFor(names);
    if (table) ids.forEach((id, i) => { held[i] = tableHolds(table, id); });
    const read: { name: string; index: IndexFile }[] = [];
    for (const name of names) {
      if (table?.covered.has(name)) continue;
      try {
        read.push({ name, index: await this.readMetadata<IndexFile>('index', name) });
      } catch (error) {
        // a damaged index file holds nothing for this run: its blobs are copied again (a restore
        // of this snapshot then needs no scan), the run says so and 'backup repair' mends it
        if (!isMailstoreError(error, 'CORRUPT')) throw error;
        this.damagedIndex.add(name);
      }
    }
    if (read.length === 0) return held;
    const byPrefix = new Map<number, number[]>();
    ids.forEach((id, i) => { if (!held[i]) listIn(byPrefix, prefix32(id)).push(i); });
    for (const { index } of read) {
      for (const { blobs } of index.files) {
        for (const [id] of blobs) {
          const wanted = byPrefix.get(prefix32(id));
          if (wanted) for (const i of wanted) if (id.length === ids[i]!.length && compareHashes(id, 0, ids[i]!, 0) === 0) held[i] = true;
        }
      }
    }
    this.held = mergeHeld(table, read.map(({ name, index }) => ({ name, ids: indexIds(index) })));
    return held;
  }

  /**
   * The held-ids table a lookup uses: this process's (the files it read since added) while every
   * index file it covers is still listed, else the newest one there (`heldStored` then says what
   * that one covers, so saveHeld writes a table only when it would cover much more).
   */
  private async heldFor(names: string[]): Promise<HeldTable | undefined> {
    const listed = new Set(names);
    if (this.held && [...this.held.covered].every((name) => listed.has(name))) return this.held;
    this.held = await readHeld(this, names);
    this.heldStored = this.held && { covered: this.held.covered, ids: this.held.ids.length / HASH_BYTES };
    return this.held;
  }

  private noteWritten(name: string, index: IndexFile): void {
    const ids = indexIds(index);
    if (ids.every((id) => id.length === HASH_BYTES)) this.indexWritten.set(name, Buffer.concat(ids));
  }

  /**
   * Writes the held-ids table (held-ids.ts) for the next run: the one this run used, or the newest
   * there, with this run's own index files added (not read again). A backup calls it once its
   * snapshot is published; best effort (a cache), and without a table to build on, none is
   * written unless every index file is this run's (a new repository).
   */
  async saveHeld(): Promise<void> {
    try {
      if (this.damagedIndex.size > 0) return removeHeldCovering(this, this.damagedIndex); // no table over a damaged file: the next runs read the others
      const names = await this.list('index');
      const table = await this.heldFor(names);
      const stored = this.heldStored;
      // this run's own index files are added; one another run wrote is read by the next run
      const own = names.filter((name) => !table?.covered.has(name) && this.indexWritten.has(name));
      if (!table && own.length < names.length) return; // no table to build on: the next lookup reads them all and makes one
      const next = own.length > 0 ? mergeHeld(table, own.map((name) => ({ name, ids: idsIn(this.indexWritten.get(name)!) }))) : table;
      if (!next || (stored && next.covered.size === stored.covered.size)) return; // a table covers no other files than the one there
      // a few ids beyond the table there: the next runs decode their index files (~2 µs an id)
      // rather than this one writing the whole table again (~0.35 µs an id of it)
      if (stored && (next.ids.length / HASH_BYTES - stored.ids) * backupLimits.heldRewriteShare < stored.ids) return;
      await writeHeld(this, next);
    } catch (error) {
      if (!isMailstoreError(error)) throw error;
    }
  }

  /**
   * Every index file still matches its name (read and hashed, not decoded; ~1 MB at 20k messages):
   * a backup's lookups trust the held-ids table and its parent snapshot, which name index files
   * without reading them, so damage there would go unseen run after run. The damaged ones are
   * added to `damagedIndex` and returned.
   */
  async verifyIndexFiles(): Promise<string[]> {
    for (const name of await this.list('index')) {
      if (this.damagedIndex.has(name)) continue;
      const bytes = await readRepositoryFile(this.fs, this.path('index', name), METADATA_STORED_BYTES_MAX).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined; // pruned meanwhile (forget waits for our lock: not by a prune)
        throw fromSystemError(error, 'reading the index file', this.path('index', name));
      });
      if (bytes && contentName(bytes) !== name) this.damagedIndex.add(name);
    }
    return [...this.damagedIndex];
  }

  /** Snapshots, oldest first (a snapshot that does not read throws: check lists them one by one). */
  async snapshots(): Promise<{ id: string; snapshot: SnapshotFile }[]> {
    const files = new Map<string, SnapshotFile>();
    for (const id of await this.list('snapshots')) files.set(id, await this.readMetadata<SnapshotFile>('snapshot', id));
    // oldest first: a delta's parent is older, so it was just applied and is in the cache (one
    // delta applied per snapshot, not its whole chain)
    const cache: SnapshotCache = { whole: new Map(), files };
    const all: { id: string; snapshot: SnapshotFile }[] = [];
    for (const id of byTime(files)) all.push({ id, snapshot: await this.readSnapshot(id, cache) });
    return all;
  }

  /**
   * A snapshot by id, unique id prefix, or 'latest': the newest by time, unless a snapshot of the
   * same store is further on in its journal (a higher seq): then a clock stepped back (or the store
   * was rolled back) and 'latest' is ambiguous (INVALID, naming both), never silently the older state.
   */
  async findSnapshot(wanted: string): Promise<{ id: string; snapshot: SnapshotFile }> {
    if (wanted === 'latest') {
      const all = await this.snapshots();
      if (all.length === 0) throw new MailstoreError('NOT_FOUND', `the backup repository at ${this.dir} holds no snapshot`, { path: this.dir });
      const latest = all[all.length - 1];
      const further = all.filter((s) => s.snapshot.storeId === latest.snapshot.storeId && s.snapshot.seq > latest.snapshot.seq);
      if (further.length > 0) {
        const ahead = further.reduce((a, b) => (b.snapshot.seq > a.snapshot.seq ? b : a));
        const when = (s: { snapshot: SnapshotFile }) => `${new Date(s.snapshot.time).toISOString()}, seq ${s.snapshot.seq}`;
        throw new MailstoreError('INVALID', `'latest' is ambiguous: snapshot ${latest.id.slice(0, 12)} is the newest by its time (${when(latest)}), but ${ahead.id.slice(0, 12)} of the same store is further on in its journal (${when(ahead)}): a clock stepped back, or the store was rolled back. Give the id of the one to restore (mailstore backups lists them)`, { path: this.dir });
      }
      return latest;
    }
    if (!/^[0-9a-f]{4,64}$/.test(wanted)) throw new MailstoreError('INVALID', `a snapshot is 'latest' or a hex id (at least 4 digits), got ${JSON.stringify(wanted)}`);
    const matches = (await this.list('snapshots')).filter((id) => id.startsWith(wanted));
    if (matches.length === 0) throw new MailstoreError('NOT_FOUND', `no snapshot ${wanted} in ${this.dir}`, { path: this.dir });
    if (matches.length > 1) throw new MailstoreError('INVALID', `snapshot id ${wanted} is ambiguous (${matches.length} match); give more digits`);
    return { id: matches[0], snapshot: await this.readSnapshot(matches[0]) };
  }

  /** The raw record (header and stored bytes) at an index entry. */
  async readRecord(entry: BlobEntry, recordLength: number): Promise<Buffer> {
    const path = this.path('data', entry.file);
    const handle = await this.dataHandle(entry.file, path);
    const buffer = Buffer.alloc(recordLength);
    let got = 0;
    try {
      while (got < recordLength) {
        const n = await handle.read(buffer, got, recordLength - got, entry.offset + got);
        if (n === 0) break;
        got += n;
      }
    } catch (error) {
      throw fromSystemError(error, 'reading the data file', path);
    }
    this.dataBytesRead += got;
    if (got < recordLength) throw new MailstoreError('CORRUPT', `${path}: ends before the record at ${entry.offset} (truncated)`, { path });
    return buffer;
  }

  /** Callers read one record at a time (restore, prune are sequential), so an open is never raced. */
  private async dataHandle(file: string, path: string): Promise<FileHandle> {
    let handle = this.handles.get(file);
    if (handle) return handle;
    if (this.handles.size >= backupLimits.openDataFilesMax) {
      const [oldest, old] = this.handles.entries().next().value as [string, FileHandle];
      this.handles.delete(oldest);
      await old.close().catch(() => undefined);
    }
    try {
      handle = await openRepositoryFile(this.fs, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new MailstoreError('CORRUPT', `${path}: the data file is missing`, { path, cause: error });
      throw fromSystemError(error, 'opening the data file', path);
    }
    this.handles.set(file, handle);
    return handle;
  }

  async close(): Promise<void> {
    for (const handle of this.handles.values()) await handle.close().catch(() => undefined);
    this.handles.clear();
  }

  /** Removes a file of the repository (forget and prune only), its directory synced after. */
  async remove(area: 'data' | 'index' | 'snapshots', name: string): Promise<void> {
    const path = this.path(area, name);
    await this.fs.unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw fromSystemError(error, 'removing', path);
    });
  }

  async syncArea(area: 'data' | 'index' | 'snapshots'): Promise<void> {
    await this.fs.syncDir(this.path(area)).catch((error) => { throw fromSystemError(error, 'syncing', this.path(area)); });
  }
}

/** A file written and fsynced under a temp name (Repository.stageContent), not yet visible. */
export interface StagedFile {
  readonly name: string;
  /** Renamed to its content name, its directory fsynced; returns the name. */
  publish(): Promise<string>;
  /** The temp file removed (after a failure before publish). */
  abort(): Promise<void>;
}

/** One data file being written: parts appended and hashed as they come, named by the hash when finished. */
export class DataStream {
  constructor(private readonly repo: Repository, private readonly stream: DurableStream, private readonly hasher: Hasher) {}

  get bytes(): number {
    return this.stream.bytes;
  }

  /** Resolves once `parts` are written (DurableStream.append). */
  append(parts: Buffer[]): Promise<void> {
    for (const part of parts) this.hasher.update(part);
    return this.stream.append(parts);
  }

  private named: string | undefined;

  /** Its content name (every part appended: nothing may be appended after this). */
  name(): string {
    this.named ??= this.hasher.digest().toString('hex');
    return this.named;
  }

  /** Durable under its content name (invariant 1: before any index file names it); returns the name. */
  async finish(): Promise<string> {
    const name = this.name();
    const bytes = this.stream.bytes;
    try {
      if (await this.stream.finish(name)) this.repo.countWritten(bytes);
    } catch (error) {
      throw fromSystemError(error, 'writing the backup file', this.repo.path('data', name));
    }
    return name;
  }

  abort(): Promise<void> {
    return this.stream.abort();
  }
}

/**
 * Snapshots read whole by one operation (a listing, a check), least recently used first, and the
 * files it has read already (decoded, deltas not applied): a chain's parent is read once, not once
 * per child. Per operation, so every operation reads the files as they are now (check finds damage
 * done since the last one).
 */
export interface SnapshotCache {
  whole: Map<string, SnapshotFile>;
  files?: Map<string, SnapshotFile>;
  /** When present, filled by readSnapshot: each snapshot's chain, the ids it builds on (its whole one first). */
  chains?: Map<string, string[]>;
}

export function newSnapshotCache(): SnapshotCache {
  return { whole: new Map() };
}

/** Snapshot ids by their files' time, oldest first (then by id): parents before the deltas on them. */
export function byTime(files: Map<string, SnapshotFile>): string[] {
  return [...files].sort(([a, x], [b, y]) => x.time - y.time || a.localeCompare(b)).map(([id]) => id);
}

function remember(cache: SnapshotCache, id: string, snapshot: SnapshotFile): SnapshotFile {
  cache.whole.delete(id);
  cache.whole.set(id, snapshot);
  if (cache.whole.size > backupLimits.snapshotCacheMax) cache.whole.delete(cache.whole.keys().next().value!);
  return snapshot;
}

/** 32-byte ids packed one after another, as views. */
function idsIn(packed: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < packed.length; at += HASH_BYTES) out.push(packed.subarray(at, at + HASH_BYTES));
  return out;
}

/** The first 4 bytes of an id as a number (a map key without a string per id). */
function prefix32(id: Uint8Array): number {
  return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
}

/** The list under `key`, created empty when missing (appending in place: no copy per entry). */
export function listIn<K, V>(map: Map<K, V[]>, key: K): V[] {
  let list = map.get(key);
  if (!list) {
    list = [];
    map.set(key, list);
  }
  return list;
}

export function addToIndex(map: Map<string, BlobEntry[]>, index: IndexFile): void {
  for (const { file, blobs } of index.files) {
    for (const [id, offset, length] of blobs) {
      const key = Buffer.from(id).toString('hex');
      const list = map.get(key);
      const entry = { file, offset, length };
      if (list) list.push(entry);
      else map.set(key, [entry]);
    }
  }
}

/**
 * An index file's value has the shape of one (docs/BACKUP.md): its names and numbers become paths,
 * read positions and buffer sizes, so one written by someone else (unencrypted, a file of the right
 * name and checksums holds anything) is CORRUPT unless each data file is a content name, each id a
 * hash and each record lies inside what a data file can hold. It stopped commands with a bug's
 * message (INTERNAL), or made a check or restore read a path outside the repository.
 */
function checkIndexFile(value: unknown, path: string): asserts value is IndexFile {
  const bad = (why: string) => new MailstoreError('CORRUPT', `${path}: not an index file mailstore wrote (${why})`, { path });
  const files = (value as Partial<IndexFile> | null)?.files;
  if (!Array.isArray(files)) throw bad('no list of data files');
  for (const entry of files as unknown[]) {
    const { file, blobs } = (entry ?? {}) as Partial<IndexFile['files'][number]>;
    if (typeof file !== 'string' || !isContentName(file)) throw bad(`a data file named ${JSON.stringify(file)?.slice(0, 80)}`);
    if (!Array.isArray(blobs)) throw bad(`no list of blobs for data file ${file}`);
    for (const blob of blobs as unknown[]) {
      const [id, offset, length] = Array.isArray(blob) ? blob as unknown[] : [];
      if (!(id instanceof Uint8Array) || id.length !== HASH_BYTES || !Number.isSafeInteger(offset) || (offset as number) < DATA_HEADER_BYTES
        || !Number.isSafeInteger(length) || (length as number) < 0 || (length as number) > RECORD_STORED_BYTES_MAX) {
        throw bad(`a blob entry of data file ${file} that is no id, record offset and stored length`);
      }
    }
  }
}

/** A snapshot's parent becomes a path: a content name, or none (the rest of the state is checked as it is applied). */
function checkSnapshotFile(value: unknown, path: string): asserts value is SnapshotFile {
  const snapshot = value as Partial<SnapshotFile> | null;
  if (typeof snapshot !== 'object' || snapshot === null || !Array.isArray(snapshot.ops)) throw new MailstoreError('CORRUPT', `${path}: not a snapshot file mailstore wrote (no ops)`, { path });
  if (snapshot.parent !== undefined && !(typeof snapshot.parent === 'string' && isContentName(snapshot.parent))) {
    throw new MailstoreError('CORRUPT', `${path}: not a snapshot file mailstore wrote (its parent is not a snapshot id)`, { path });
  }
}

export function encodeConfig(config: RepoConfig): Buffer {
  const body = JSON.stringify(config);
  return Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

export async function readConfig(fs: FileSystem, dir: string): Promise<RepoConfig | undefined> {
  const path = join(dir, REPO_LAYOUT.config);
  let bytes: Buffer;
  try {
    bytes = await readRepositoryFile(fs, path, backupLimits.configFileBytesMax);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw fromSystemError(error, 'reading the repository config', path);
  }
  const m = /^(\{.*\})\ncrc32 ([0-9a-f]{8})\n$/s.exec(bytes.toString('utf8'));
  if (!m || crc32(Buffer.from(m[1])).toString(16).padStart(8, '0') !== m[2]) {
    throw new MailstoreError('CORRUPT', `${path}: the repository config is damaged: an encrypted repository needs its copy (a backup of the repository); an unencrypted one's is written again by 'mailstore backup repair --repo ${dir} --new-config'`, { path });
  }
  const config = JSON.parse(m[1]) as RepoConfig;
  if (config.format !== REPO_FORMAT) throw new MailstoreError('INVALID', `${dir} is not a mailstore backup repository`, { path });
  if (!(REPO_VERSIONS as readonly number[]).includes(config.version)) {
    throw new MailstoreError('INVALID', `${path}: repository version ${config.version} is not supported by this mailstore (it reads versions ${REPO_VERSIONS.join(', ')}); use a newer mailstore`, { path });
  }
  return config;
}

/**
 * Creates the layout, config last: a directory without config is no repository yet. Undefined when
 * another process created the repository meanwhile (two first backups onto a new disk): the config
 * is put in place without replacing one, since the data another run seals with its config's keys
 * would never read again under another config's salt.
 */
async function initRepository(fs: FileSystem, dir: string, secret: Buffer | undefined): Promise<{ config: RepoConfig; keys?: RepositoryKeys } | undefined> {
  const stat = await fs.statIfExists(dir);
  if (stat) {
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `${dir} exists and is not a directory`, { path: dir });
    // unencrypted, a snapshot and data files put in their place would be restored as this store's mail
    refuseOthersMayWrite(stat, dir, 'the repository\'s files');
    for (const name of await fs.readdir(dir)) {
      if (name === REPO_LAYOUT.config) return undefined;
      if (isTempName(name)) continue; // another creator's config being written
      const ours = (Object.values(REPO_LAYOUT) as string[]).includes(name);
      const sub = ours ? await fs.statIfExists(join(dir, name)) : undefined;
      if (sub?.isDirectory) refuseOthersMayWrite(sub, join(dir, name), 'the repository\'s files');
      if (!ours || (await fs.readdir(join(dir, name)).catch(() => ['?'])).some((entry) => !entry.endsWith('.tmp'))) {
        if (await fs.statIfExists(join(dir, REPO_LAYOUT.config))) return undefined; // another creator finished meanwhile and its run went on
        throw new MailstoreError('INVALID', `${dir} is not empty and holds no backup repository config (found ${name}); refusing to create one over it`, { path: dir });
      }
    }
  }
  const encryption = secret ? newEncryptionParams(secret) : undefined;
  const config: RepoConfig = { format: REPO_FORMAT, version: REPO_VERSION_NEW, id: randomUUID(), created: new Date().toISOString() };
  if (encryption) config.encryption = encryption.params;
  try {
    if (!stat) {
      await mkdirShared(fs, dir);
      await refuseModesIgnored(fs, dir);
    }
    for (const area of [REPO_LAYOUT.data, REPO_LAYOUT.index, REPO_LAYOUT.snapshots, REPO_LAYOUT.locks]) await mkdirShared(fs, join(dir, area));
    await createFileDurable(fs, join(dir, REPO_LAYOUT.config), encodeConfig(config));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw fromSystemError(error, 'creating the backup repository', dir);
  }
  return { config, keys: encryption?.keys };
}

/**
 * The repository's directory, just made 0750, that group or others may write: its file system
 * gives modes of its own (exFAT through exfat-fuse gives 0777 to everything and its chmod changes
 * nothing), so the rule for a directory made beforehand (refuseOthersMayWrite) holds here too;
 * until session 50 only a directory made beforehand was refused, and a missing one went through.
 * The directory is removed again (if still empty).
 */
async function refuseModesIgnored(fs: FileSystem, dir: string): Promise<void> {
  const made = await fs.stat(dir);
  if ((made.mode & 0o022) === 0) return;
  await fs.rmdir(dir).catch(() => undefined);
  throw new MailstoreError('ACCESS', `${dir}: the file system there gave the repository's directory, made 0750, mode ${(made.mode & 0o7777).toString(8)}: its modes come from the mount (exFAT and FAT: umask=, dmask=, fmask=; a CIFS share: dir_mode=) and chmod changes nothing, so any user of this host could rename or replace the repository's files. Remount it with umask=022 (exFAT, FAT) or dir_mode=0755 (CIFS) and run it again. Nothing was written`, { path: dir });
}

/** A directory with snapshot files in its snapshots/: a repository, whatever its config. */
export async function holdsSnapshots(fs: FileSystem, dir: string): Promise<boolean> {
  const names = await fs.readdir(join(dir, REPO_LAYOUT.snapshots)).catch(() => [] as string[]);
  return names.some(isContentName);
}

/** A directory made durable, or one another process made meanwhile. */
async function mkdirShared(fs: FileSystem, path: string): Promise<void> {
  try {
    await ensureDir(fs, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

// ---- locks -----------------------------------------------------------------------------------

interface LockRecord {
  pid: number;
  hostname: string;
  time: number;
  exclusive: boolean;
  /** The holder's command line (describeCommandLine), for the LOCKED message; absent in locks of a mailstore before session 38. */
  command?: string;
  /** The holder's boot id and start (process-start.ts): on its host, whether it still runs, with no clock; absent before session 39 or without /proc. */
  boot?: string;
  started?: number;
}

export interface RepoLock {
  release(): Promise<void>;
  /**
   * Before a run's point of no return (a backup's snapshot made visible, a prune's removals):
   * LOCKED when the lock may no longer be this run's. Its refreshes failed for so long that
   * another run may take it for stale (an object store or a disk away for most of lockStaleMs),
   * or its file is gone (another run did). Nothing of the run is published then: a prune that
   * took the lock for stale could have removed data files this run's snapshot names.
   */
  held(): Promise<void>;
}

/**
 * restic's locks: a file per holder in locks/. Backup, restore and check share; forget and prune
 * are exclusive. A lock of this host is stale when its process is gone (its boot id and start
 * time, or for a lock of a mailstore before session 39 its age, then its pid); another host's when
 * it was not refreshed for lockStaleMs, or is dated far ahead. A stale lock is removed.
 */
export async function lockRepository(repo: Repository, exclusive: boolean, options: { readOnly?: boolean } = {}): Promise<RepoLock> {
  const fs = repo.fs;
  const dir = join(repo.dir, REPO_LAYOUT.locks);
  const name = randomBytes(16).toString('hex');
  const path = join(dir, name);
  // Visible whole to other processes (rename), not synced: after a crash no process holds a lock,
  // and a lost or torn lock file only lets in what a stale one would (docs/BACKUP.md, invariant 6).
  const command = describeCommandLine(process.argv);
  const self = await processIdentity(process.pid);
  let time = 0;
  const write = () => {
    time = Date.now();
    return writeFileAtomic(fs, path, Buffer.from(JSON.stringify({ pid: process.pid, hostname: hostname(), time, exclusive, command, ...self } satisfies LockRecord)));
  };
  if (!options.readOnly) await refuseIgnoredSync(fs, repo.dir, 'the backup repository'); // a snapshot "saved" there would not be
  try {
    await ensureDir(fs, dir);
    await write();
  } catch (error) {
    const failure = fromSystemError(error, 'writing the repository lock', path);
    // A repository on read-only media (a mounted snapshot, a write-protected disk) is read without
    // a lock: nobody can change it underneath, and a disaster restore must not need a writable copy.
    if (options.readOnly && failure.code === 'ACCESS') return { release: async () => undefined, held: async () => undefined };
    throw failure;
  }
  try {
    const clockAgrees = await agreesWithFileTimes(fs, path);
    for (const other of await fs.readdir(dir)) {
      if (other === name || other.startsWith('.')) continue;
      const record = await readLock(fs, join(dir, other));
      if (!record) continue;
      if (await isStale(record, clockAgrees)) { await fs.unlink(join(dir, other)).catch(() => undefined); continue; }
      if (exclusive || record.exclusive) {
        // both written at the same moment: the first by (time, name) waits for the other to go
        const first = record.time > time || (record.time === time && other > name);
        if (first && (await lockGoes(fs, join(dir, other)))) continue;
        throw new MailstoreError('LOCKED', `the backup repository ${repo.dir} is in use by pid ${record.pid} on ${record.hostname} since ${new Date(record.time).toISOString()}${holderCommand(record)}; try again when it is done${clockAgrees ? '' : ` (this host's clock, ${new Date().toISOString()}, disagrees with the repository's file times, so no lock is judged stale by its age: set the clock right)`}`, { path: join(dir, other) });
      }
    }
  } catch (error) {
    await fs.unlink(path).catch(() => undefined);
    throw isMailstoreError(error) ? error : fromSystemError(error, 'reading the repository locks', dir);
  }
  // Once the lock may have been another run's (too long without a refresh, or its file gone), it
  // stays lost: a later refresh that wrote it again would hide what that run did meanwhile.
  // Others judge the file's wall-clock time (across hosts nothing else is shared); this run
  // measures its own silence on the monotonic clock: a wall clock stepped back hid half an hour
  // of failed refreshes, and one stepped forward lost a lock that was refreshed on time.
  let written = monotonicMs();
  let lost: string | undefined;
  const stillOurs = async (): Promise<boolean> => {
    // the margin: a refresh interval before another run may judge it stale
    const silentMs = monotonicMs() - written;
    if (!lost && silentMs > backupLimits.lockStaleMs - backupLimits.lockRefreshMs) lost = `went ${Math.round(silentMs / 1000)} s without a refresh (the repository could not be written)`;
    if (!lost && !(await readLock(fs, path))) lost = 'is gone';
    return !lost;
  };
  const refresh = async () => {
    const at = monotonicMs();
    if (!(await stillOurs())) return;
    await write();
    written = at;
  };
  const timer = setInterval(() => { refresh().catch(() => undefined); }, backupLimits.lockRefreshMs);
  timer.unref();
  return {
    release: async () => {
      clearInterval(timer);
      await fs.unlink(path).catch(() => undefined);
    },
    held: async () => {
      if (await stillOurs()) return;
      throw new MailstoreError('LOCKED', `this run's lock on the backup repository ${repo.dir} ${lost}: another run may have taken it for stale (forget --prune removes data files), so this run stops here and publishes nothing; run it again`, { path });
    },
  };
}

/** ' (mailstore backup --repo ...)': what holds a lock, as its record says; a lock of an older mailstore says only whether it is exclusive. */
function holderCommand(record: LockRecord): string {
  // another host's file, read as it is: one line, as long as ours at most
  if (typeof record.command === 'string' && record.command !== '') return ` (${record.command.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, limits.lockHolderCommandCharsMax)})`;
  return record.exclusive ? ' (forget/prune)' : '';
}

/**
 * Whether the lock at `path` goes within backupLimits.lockContendMs: a run that wrote its lock at
 * the same moment as this one, and was refused, takes it away at once.
 */
async function lockGoes(fs: FileSystem, path: string): Promise<boolean> {
  const until = monotonicMs() + backupLimits.lockContendMs;
  while (await readLock(fs, path)) {
    if (monotonicMs() >= until) return false;
    await new Promise((done) => setTimeout(done, backupLimits.lockContendPollMs));
  }
  return true;
}

async function readLock(fs: FileSystem, path: string): Promise<LockRecord | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readRepositoryFile(fs, path, backupLimits.configFileBytesMax);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // gone meanwhile: not a holder
    if (isMailstoreError(error, 'CORRUPT')) return undefined; // a link or FIFO: no lock this or another mailstore wrote
    // A lock that does not read (an object store's 503, a disk's EIO) is not "no lock": a prune
    // that took it for none removed data files a running backup was about to name
    const failure = fromSystemError(error, 'reading the repository lock', path);
    throw new MailstoreError(failure.code, `${failure.message} (another run's lock; nothing was changed, try again)`, { path, cause: error });
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as LockRecord;
  } catch {
    return undefined; // not a lock written whole (locks are written by rename): not a holder
  }
}

async function isStale(record: LockRecord, clockAgrees: boolean): Promise<boolean> {
  // this host's own, of a holder that recorded its boot and start: exact, with no clock. By age
  // first, a clock stepped forward by lockStaleMs between two refreshes (NTP after a bad boot, a
  // VM resumed) made a running backup's lock stale, and a prune removed data files it was naming
  if (record.hostname === hostname() && typeof record.boot === 'string' && typeof record.started === 'number') {
    const boot = await bootId();
    if (boot !== undefined) {
      if (record.boot !== boot) return true; // written in an earlier boot of this host
      const now = await processIdentity(record.pid);
      if (now?.started !== record.started) return true; // gone, or its pid given to another process
      return processGone(record.pid, record.hostname); // a zombie
    }
  }
  // A clock that disagrees with the repository's (a step here, a bad boot) tells no lock's age:
  // another host's is then kept, and this host's older ones are judged by their pid alone
  const ageMs = Date.now() - record.time;
  if (clockAgrees && ageMs > backupLimits.lockStaleMs) return true;
  // this host's own: its pid says (this clock stepped back under a live run is no reason)
  if (record.hostname === hostname()) return processGone(record.pid, record.hostname);
  return clockAgrees && -ageMs > backupLimits.clockAheadMaxMs;
}

/**
 * Whether this process's wall clock agrees, within lockRefreshMs, with the time the repository's
 * file system gave the lock file just written (an NFS server's clock; this host's kernel's on a
 * local disk). Across hosts, locks are judged by their age on this clock: stepped forward it made
 * another host's running backup stale, stepped back a day it made every live lock "dated ahead".
 * A store that gives no file times (an object store's, 0) is taken to agree, as before.
 */
async function agreesWithFileTimes(fs: FileSystem, path: string): Promise<boolean> {
  const stat = await fs.stat(path).catch(() => undefined);
  if (!stat || !(stat.mtimeMs > 0)) return true;
  return Math.abs(Date.now() - stat.mtimeMs) <= backupLimits.lockRefreshMs;
}

/**
 * Whether the process that wrote a lock or mark is known to be gone: on this host, a pid that is
 * dead or a zombie. One on another host cannot be asked (false), nor this process (false: another
 * operation of ours holds it).
 */
export async function processGone(pid: number, host: string): Promise<boolean> {
  if (host !== hostname()) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  return isZombie(pid);
}

/**
 * A process that was killed but not yet reaped by its parent (a zombie: state Z in Linux's
 * /proc/PID/stat) still answers kill(pid, 0), but it runs no more and holds nothing: its lock is
 * stale. A killed backup whose parent was killed with it stayed a zombie where PID 1 does not reap,
 * and its lock kept `forget` out (LOCKED). Elsewhere (no /proc) the pid counts as alive, as before.
 */
async function isZombie(pid: number): Promise<boolean> {
  try {
    const stat = (await nodeFileSystem.readFile(`/proc/${pid}/stat`)).toString('latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}
