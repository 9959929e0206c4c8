// FaultFS: a seeded, fault-injecting FileSystem for crash and fault tests. It exists so that every
// claim in DESIGN.md "Proving it" (acknowledged means durable, ENOSPC leaves nothing half-trusted)
// is tested against the crash states POSIX allows, not only against the ones one laptop shows.
//
// WHAT IT DOES
//   It passes every call through to a real FileSystem (NodeFileSystem by default) over a real
//   directory, so the store under test really runs on disk and LevelDB beside it works. In addition:
//   - records every mutating operation, in completion order, with its bytes (op log, `ops()`);
//   - materializes, into a fresh real directory, a state a power cut after op N could leave
//     (`materializeCrash`, `crashStates`, `forEachCrash`);
//   - injects faults: one-shot (`injectAt(seq | predicate, fault, { times })`) and persistent
//     (`failAll(kind, { pathPrefix, ops })` until `clear()`), errors shaped like node's, on
//     mutations and on reads (data, readFile, readdir, stat);
//   - damages media (`damage`, `randomDamage`): zeros, garbage or bit flips in a byte range;
//   - counts sync and syncDir calls, in total and per path (`counters()`).
//   - over its own NodeFileSystem (no `inner` given) it replaces that file system's fdatasync calls
//     (node-fs.ts Flushes), so writevDurable runs the real code and a sync fault is raised where
//     the kernel's fdatasync would fail: in the calling thread, after the real write.
//   Every random choice comes from a small seeded PRNG (mulberry32): a failure reproduces from
//   its seed, which every report and error message prints.
//
// NUMBERING
//   `seq` numbers mutating *calls* (create, write, truncate, sync, mkdir, rename, unlink, rmdir,
//   syncDir) from 1 at `startRecording`, at the moment they are called; `injectAt(n)` matches it and
//   `nextSeq` tells what the next call will get. `index` numbers *log entries* from 1 in completion
//   order; crash points are log prefixes: `afterOp = k` keeps log entries 1..k (0 = nothing
//   happened yet). For sequential code without faults the two coincide. Failed calls get a seq
//   but no log entry (except a short write, whose prefix really reached the file).
//
// CRASH MODEL (what `materializeCrash` produces)
//   The starting point is the directory as it was at `startRecording` (read into memory); all of it
//   is taken as durable. Files and directories are inodes; directory entries map names to inodes,
//   so a rename moves the data, and a write through an fd after rename lands in the renamed file.
//   - Data (write, truncate) is per inode. `sync` (fdatasync) of an inode makes every data op on it
//     that completed before the sync started durable, size included. Each data op not covered is,
//     independently (reordering across and within files): kept, lost, torn or zero-filled.
//     torn: a prefix kept, cut at a 512 B sector boundary inside the write (`tearAt: 'byte'` cuts
//           anywhere); then either the size stops at the cut or it is kept with zeros after it.
//           A write inside one sector cannot tear (sectors are atomic) and is lost instead.
//     zero-filled: the size grows to cover the write, but the new bytes read as zeros and
//           overwritten bytes keep their old value (docs/FAULTS.md: a file system that commits
//           the size before the data leaves an un-synced append that reads back as zeros).
//     An un-synced truncate is kept or lost.
//   - Namespace ops (create, mkdir, rename, unlink, rmdir) are durable once their parent directory
//     is syncDir'ed after them; for a rename, the directory of the NEW name (the source entry goes
//     with it: a rename is atomic, never half done). Fsyncing a file does not make its name
//     durable: a new file whose directory was not synced may vanish with its synced data. A new
//     directory needs its own parent synced, or everything under it is unreachable and missing.
//     Un-synced namespace ops in one directory survive as a prefix of that directory's op order;
//     directories are independent of each other.
//   - Modes: 'all-lost' keeps only durable state; 'all-kept' keeps everything (the process-crash
//     case, as on SIGKILL: no page cache is lost); 'random' makes every choice above from the seed,
//     with a per-state bias so some states keep almost everything and others almost nothing;
//     'data-lost' is a drive that loses every write it was not made to flush (each file keeps
//     exactly what its last completed fdatasync covered) while every un-synced name survives (as
//     ext4 commits metadata on its own): new files empty, renamed files without their data.
//     With 'all-lost' (names lost too) it covers both fates of the directory entries.
//   - Paths in `exclude` (e.g. 'index', LevelDB's directory, which never goes through this file
//     system) are not modelled: not snapshot, not recorded. `indexMode` says what the crash state
//     gets there: 'current' (a copy of what is on disk now, or under `indexSource`), 'missing',
//     or 'older' (a copy from `indexSource`, e.g. taken earlier with `snapshotExcluded`).
//
// LIMITS
//   - Stricter than ext4 (which commits metadata in one global order and makes a new file's name
//     durable on fsync of the file), looser than nothing: no sector is ever half-written, a kept
//     write never carries bytes other than its own or zeros, and rename is atomic. No disk lies
//     about flushes. Directories are independent; a cross-directory rename needs only the target
//     directory synced.
//   - 'current' index with `afterOp` before the end of the log gives an index from the future,
//     which no real crash produces; use 'older' or 'missing' for mid-log points.
//   - Files must enter the modelled area through this FileSystem or be there at startRecording;
//     touching anything else modelled (open for write, rename) fails loudly. Handles opened before
//     startRecording are not modelled. A real (not injected) error in the middle of a write leaves
//     the model unaware of any partial bytes. Reads (stat, readdir, readFile) see the real, live
//     directory; only the materialized crash states show lost data.
//   - Everything is held in memory and every crash state replays the log from the start: fine for
//     test-sized workloads (megabytes), not for gigabytes.
//   - This is test code, so it uses node:fs directly (STYLE rule 3 is about src/).

import { promises as fsp, fdatasyncSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';
import type { FileHandle, FileStat, FileSystem, HeldDirectory, OpenMode, ReadOptions } from '../../src/fs/filesystem.js';
import { NodeFileSystem } from '../../src/fs/node-fs.js';

// ---------------------------------------------------------------------------------------------
// Public types

export type CrashMode = 'all-lost' | 'all-kept' | 'random' | 'data-lost';
export type IndexMode = 'current' | 'missing' | 'older';

/**
 * 'open' is opening an existing file for writing; 'read' is any data read, or opening to read;
 * 'readdir' and 'stat' (stat and statIfExists) are the metadata reads, never recorded, only failed.
 */
export type OpKind =
  | 'create' | 'open' | 'write' | 'truncate' | 'sync'
  | 'mkdir' | 'rename' | 'unlink' | 'rmdir' | 'syncDir' | 'read' | 'readdir' | 'stat';

export type FaultKind = 'ENOSPC' | 'EDQUOT' | 'EFBIG' | 'EIO' | 'EACCES' | 'EPERM' | 'EROFS' | 'EMFILE' | 'ENFILE' | 'shortWrite';
/** A short write writes `bytes` (default: a seeded length below the full size), then throws ENOSPC. */
export type Fault = FaultKind | { kind: FaultKind; bytes?: number };

/** What a fault predicate sees. `path` is as the caller passed it; `relPath` relative to the root. */
export interface OpInfo {
  /** Mutating calls only: the call number since startRecording (what injectAt(n) matches). */
  seq: number | undefined;
  kind: OpKind;
  path: string;
  relPath: string | undefined;
  /** rename: the new name. */
  to?: string;
  position?: number;
  length?: number;
}

export interface FiredFault {
  seq: number | undefined;
  kind: OpKind;
  path: string;
  code: string;
  bytesWritten?: number;
}

export interface FailAllOptions {
  /** Only paths (relative to the root, or absolute) starting with this; a rename matches on either name. */
  pathPrefix?: string;
  /** Which operations fail; the default depends on the kind (see DEFAULT_FAIL_OPS). */
  ops?: OpKind[];
}

interface OpBase {
  /** 1-based position in the log (completion order). */
  index: number;
  seq: number | undefined;
  path: string;
}
/** One entry of the op log. Inode numbers: 0 is the root; others are assigned as files appear. */
export type RecordedOp =
  | (OpBase & { kind: 'create' | 'mkdir' | 'unlink' | 'rmdir'; parent: number; name: string; ino: number })
  | (OpBase & { kind: 'rename'; to: string; fromParent: number; fromName: string; toParent: number; toName: string; ino: number })
  | (OpBase & { kind: 'write'; ino: number; position: number; data: Buffer })
  | (OpBase & { kind: 'truncate'; ino: number; length: number })
  /** Makes durable every op on `ino` (data for sync, entries for syncDir) with index <= coversUpTo. */
  | (OpBase & { kind: 'sync' | 'syncDir'; ino: number; coversUpTo: number })
  /** Media damage: always durable; `data` is the bytes the range now holds. */
  | (OpBase & { kind: 'damage'; ino: number; position: number; data: Buffer });

export interface FaultCounters {
  sync: number;
  syncDir: number;
  writes: number;
  creates: number;
  renames: number;
  unlinks: number;
  /** Keyed by path relative to the root ('.' for the root itself; absolute for paths outside it). */
  syncByPath: Map<string, number>;
  syncDirByPath: Map<string, number>;
}

export interface CrashSpec {
  afterOp: number;
  seed: number;
  mode: CrashMode;
}

export interface CrashStatesOptions {
  /** How many states; default every crash point in every mode (log length + 1, times modes). */
  count?: number;
  /** Default: the FaultFS seed. */
  seed?: number;
  /** Default ['all-lost', 'random', 'all-kept']. */
  modes?: CrashMode[];
}

export interface MaterializeOptions {
  mode?: CrashMode;
  /** What excluded paths (LevelDB's index/) get. Default 'current'. */
  indexMode?: IndexMode;
  /** A directory laid out like the store root holding the excluded paths to copy. Required for 'older'. */
  indexSource?: string;
  /** Torn writes cut at 512 B sector boundaries (default) or at any byte. */
  tearAt?: 'sector' | 'byte';
}

export interface CrashReport extends CrashSpec {
  /** One line per op whose fate was a choice (not durable): what the crash did to it. */
  decisions: string[];
  counts: Record<'kept' | 'lost' | 'torn' | 'zeroed' | 'namespaceKept' | 'namespaceLost', number>;
  /** Excluded paths and what the state got for each. */
  excluded: string[];
  /** "afterOp=12 seed=99 mode=random": put it in every assertion message. */
  reproduce: string;
}

export interface DamageSpec {
  kind: 'zeros' | 'garbage' | 'bitflip';
  offset: number;
  length: number;
  /** Seeds garbage and bit choice; default derived from the FaultFS seed. */
  seed?: number;
}

export interface FaultFsOptions {
  /** Seeds short-write lengths, damage and the default crash-state seed. Default 1. */
  seed?: number;
  /** The file system passed through to. Default a NodeFileSystem. */
  inner?: FileSystem;
}

export interface RecordingOptions {
  /** Paths relative to the root that are not modelled (LevelDB's 'index'). */
  exclude?: string[];
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: tiny, fast, good enough to pick crash states; the same seed gives the same stream. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

/** A seed for sub-stream `salt` of `seed` (one per crash state, per damage, ...). */
export function deriveSeed(seed: number, salt: number): number {
  let h = (seed ^ Math.imul((salt + 0x9e3779b9) >>> 0, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** FAULTFS_SEED from the environment, else a fresh random seed. Print it with every failure. */
export function seedFromEnv(): number {
  const fromEnv = process.env.FAULTFS_SEED;
  return fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) >>> 0 : randomBytes(4).readUInt32LE(0);
}

// ---------------------------------------------------------------------------------------------
// Errors shaped like node's

const ERRNO: Record<Exclude<FaultKind, 'shortWrite'>, { errno: number; text: string }> = {
  ENOSPC: { errno: -28, text: 'no space left on device' },
  EDQUOT: { errno: -122, text: 'disk quota exceeded' },
  EFBIG: { errno: -27, text: 'file too large' },
  EPERM: { errno: -1, text: 'operation not permitted' },
  EIO: { errno: -5, text: 'i/o error' },
  EACCES: { errno: -13, text: 'permission denied' },
  EROFS: { errno: -30, text: 'read-only file system' },
  EMFILE: { errno: -24, text: 'too many open files' },
  ENFILE: { errno: -23, text: 'file table overflow' },
};

const SYSCALL: Record<OpKind, string> = {
  create: 'open', open: 'open', write: 'write', truncate: 'ftruncate', sync: 'fdatasync',
  mkdir: 'mkdir', rename: 'rename', unlink: 'unlink', rmdir: 'rmdir', syncDir: 'fsync', read: 'read',
  readdir: 'scandir', stat: 'stat',
};

/** Syscalls on an fd: node's message names no path for these. */
const FD_SYSCALLS = new Set(['write', 'ftruncate', 'fdatasync', 'fsync', 'read']);

/** An Error as node:fs throws it: code, errno, syscall, path (and dest for rename). */
export function systemError(
  code: Exclude<FaultKind, 'shortWrite'>, syscall: string, path: string, dest?: string,
): NodeJS.ErrnoException {
  const where = FD_SYSCALLS.has(syscall) ? '' : ` '${path}'${dest === undefined ? '' : ` -> '${dest}'`}`;
  const error = new Error(`${code}: ${ERRNO[code].text}, ${syscall}${where}`);
  return Object.assign(error, { code, errno: ERRNO[code].errno, syscall, path, ...(dest === undefined ? {} : { dest }) });
}

const ALL_MUTATING: OpKind[] = ['create', 'open', 'write', 'truncate', 'sync', 'mkdir', 'rename', 'unlink', 'rmdir', 'syncDir'];

/** What `failAll(kind)` hits when no `ops` are given: what the real condition hits (docs/FAULTS.md). */
export const DEFAULT_FAIL_OPS: Record<FaultKind, OpKind[]> = {
  // A full disk refuses new blocks and inodes; truncate, rename and unlink still work.
  ENOSPC: ['create', 'write', 'mkdir'],
  // A user's quota runs out like a disk; a file meets its size limit only when it grows.
  EDQUOT: ['create', 'write', 'mkdir'],
  EFBIG: ['write'],
  shortWrite: ['write'],
  EIO: ['write', 'truncate', 'sync', 'syncDir', 'read'],
  // A directory losing its write bit: fds opened before keep writing; creates, renames, reopens fail.
  EACCES: ['create', 'open', 'rename', 'unlink', 'mkdir', 'rmdir'],
  // An immutable or append-only attribute (chattr), or a security module saying no.
  EPERM: ['create', 'open', 'rename', 'unlink', 'mkdir', 'rmdir'],
  // errors=remount-ro: everything that writes fails, on files already open too.
  EROFS: ALL_MUTATING,
  // Out of descriptors (the process's ulimit -n, or the system's table): whatever opens one.
  EMFILE: ['create', 'open', 'readdir', 'syncDir'],
  ENFILE: ['create', 'open', 'readdir', 'syncDir'],
};

// ---------------------------------------------------------------------------------------------
// File contents: a growable buffer whose bytes past `length` are always zero

class Bytes {
  private buffer: Buffer;
  length: number;

  constructor(initial?: Buffer) {
    this.buffer = Buffer.alloc(Math.max(64, initial?.length ?? 0));
    initial?.copy(this.buffer);
    this.length = initial?.length ?? 0;
  }

  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  write(position: number, data: Buffer): void {
    this.grow(position + data.length);
    data.copy(this.buffer, position);
  }

  /** The size grows to `end`; the new bytes read as zeros. */
  extendTo(end: number): void {
    this.grow(end);
  }

  truncate(length: number): void {
    if (length < this.length) this.buffer.fill(0, length, this.length);
    this.grow(length);
    this.length = length;
  }

  private grow(end: number): void {
    if (end > this.buffer.length) {
      const bigger = Buffer.alloc(Math.max(end, this.buffer.length * 2));
      this.buffer.copy(bigger, 0, 0, this.length);
      this.buffer = bigger;
    }
    if (end > this.length) this.length = end;
  }
}

// ---------------------------------------------------------------------------------------------
// The namespace model, shared by the live tracking and the crash replay

type Entries = Map<number, Map<string, number>>;
type NamespaceOp = Extract<RecordedOp, { kind: 'create' | 'mkdir' | 'unlink' | 'rmdir' | 'rename' }>;
type DataOp = Extract<RecordedOp, { kind: 'write' | 'truncate' | 'damage' }>;

const ROOT = 0;

function isNamespaceOp(op: RecordedOp): op is NamespaceOp {
  return op.kind === 'create' || op.kind === 'mkdir' || op.kind === 'unlink' || op.kind === 'rmdir' || op.kind === 'rename';
}

function isDataOp(op: RecordedOp): op is DataOp {
  return op.kind === 'write' || op.kind === 'truncate' || op.kind === 'damage';
}

function directory(entries: Entries, ino: number): Map<string, number> {
  let dir = entries.get(ino);
  if (dir === undefined) entries.set(ino, (dir = new Map()));
  return dir;
}

/** Applies a namespace op; removals only remove the entry if it still names the op's inode. */
function applyNamespaceOp(entries: Entries, op: NamespaceOp): void {
  if (op.kind === 'rename') {
    const from = entries.get(op.fromParent);
    if (from?.get(op.fromName) === op.ino) from.delete(op.fromName);
    directory(entries, op.toParent).set(op.toName, op.ino);
  } else if (op.kind === 'create' || op.kind === 'mkdir') {
    directory(entries, op.parent).set(op.name, op.ino);
  } else {
    const dir = entries.get(op.parent);
    if (dir?.get(op.name) === op.ino) dir.delete(op.name);
  }
}

/** The directory whose syncDir makes the op durable. */
function durabilityDir(op: NamespaceOp): number {
  return op.kind === 'rename' ? op.toParent : op.parent;
}

function touchedDirs(op: NamespaceOp): number[] {
  return op.kind === 'rename' ? [op.fromParent, op.toParent] : [op.parent];
}

function cloneEntries(entries: Entries): Entries {
  return new Map([...entries].map(([ino, dir]) => [ino, new Map(dir)]));
}

function describeOp(op: RecordedOp): string {
  switch (op.kind) {
    case 'rename': return `#${op.index} rename ${op.path} -> ${op.to}`;
    case 'write': return `#${op.index} write ${op.path} @${op.position}+${op.data.length}`;
    case 'truncate': return `#${op.index} truncate ${op.path} to ${op.length}`;
    default: return `#${op.index} ${op.kind} ${op.path}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Crash planning: a pure function of (initial state, log prefix, mode, seed)

interface Initial {
  entries: Entries;
  contents: Map<number, Buffer>;
}

interface CrashPlan {
  entries: Entries;
  contents: Map<number, Bytes>;
  report: CrashReport;
}

type WriteFate = 'kept' | 'lost' | 'torn' | 'zeroed';

class CrashPlanner {
  private readonly rng: Rng;
  /** In 'random' mode: the chance that any one un-synced op survives, drawn per state. */
  private readonly keepBias: number;
  private readonly fileHorizon = new Map<number, number>();
  private readonly dirHorizon = new Map<number, number>();
  /** Directories where an un-synced op was dropped: later un-synced ops there drop too (prefix). */
  private readonly closedDirs = new Set<number>();
  private readonly report: CrashReport;

  constructor(
    private readonly ops: readonly RecordedOp[],
    private readonly spec: CrashSpec,
    private readonly sectorBytes: number,
  ) {
    this.rng = new Rng(deriveSeed(spec.seed, spec.afterOp));
    this.keepBias = spec.mode === 'random' ? this.rng.next() : 0;
    const reproduce = `afterOp=${spec.afterOp} seed=${spec.seed} mode=${spec.mode}`;
    this.report = {
      ...spec, decisions: [], excluded: [], reproduce,
      counts: { kept: 0, lost: 0, torn: 0, zeroed: 0, namespaceKept: 0, namespaceLost: 0 },
    };
    for (const op of ops) {
      if (op.kind === 'sync') this.raise(this.fileHorizon, op.ino, op.coversUpTo);
      if (op.kind === 'syncDir') this.raise(this.dirHorizon, op.ino, op.coversUpTo);
    }
  }

  plan(initial: Initial): CrashPlan {
    const entries = cloneEntries(initial.entries);
    const contents = new Map([...initial.contents].map(([ino, bytes]) => [ino, new Bytes(bytes)]));
    for (const op of this.ops) {
      if (isNamespaceOp(op) && this.keepNamespaceOp(op)) applyNamespaceOp(entries, op);
      if (isDataOp(op)) this.applyDataOp(contents, op);
    }
    return { entries, contents, report: this.report };
  }

  private raise(horizon: Map<number, number>, ino: number, upTo: number): void {
    horizon.set(ino, Math.max(horizon.get(ino) ?? 0, upTo));
  }

  private keepNamespaceOp(op: NamespaceOp): boolean {
    if (op.index <= (this.dirHorizon.get(durabilityDir(op)) ?? 0)) return true;
    const dirs = touchedDirs(op);
    const keep =
      this.spec.mode === 'all-kept' || this.spec.mode === 'data-lost' ? true :
      this.spec.mode === 'all-lost' ? false :
      !dirs.some((dir) => this.closedDirs.has(dir)) && this.rng.chance(this.keepBias);
    if (!keep) for (const dir of dirs) this.closedDirs.add(dir);
    this.report.counts[keep ? 'namespaceKept' : 'namespaceLost'] += 1;
    this.report.decisions.push(`${describeOp(op)}: ${keep ? 'kept' : 'lost'}`);
    return keep;
  }

  private applyDataOp(contents: Map<number, Bytes>, op: DataOp): void {
    let bytes = contents.get(op.ino);
    if (bytes === undefined) contents.set(op.ino, (bytes = new Bytes()));
    const durable = op.kind === 'damage' || op.index <= (this.fileHorizon.get(op.ino) ?? 0);
    if (op.kind === 'truncate') return this.applyTruncate(bytes, op, durable);
    // Damage hits only bytes this state has; it never makes a file longer.
    if (op.kind === 'damage') return bytes.write(op.position, op.data.subarray(0, Math.max(0, bytes.length - op.position)));
    if (durable) return bytes.write(op.position, op.data);
    this.applyUnsyncedWrite(bytes, op as Extract<DataOp, { kind: 'write' }>);
  }

  private applyTruncate(bytes: Bytes, op: Extract<DataOp, { kind: 'truncate' }>, durable: boolean): void {
    if (durable) return bytes.truncate(op.length);
    const keep = this.spec.mode === 'all-kept' || (this.spec.mode === 'random' && this.rng.chance(this.keepBias));
    if (keep) bytes.truncate(op.length);
    this.report.counts[keep ? 'kept' : 'lost'] += 1;
    this.report.decisions.push(`${describeOp(op)}: ${keep ? 'kept' : 'lost'}`);
  }

  private applyUnsyncedWrite(bytes: Bytes, op: Extract<DataOp, { kind: 'write' }>): void {
    let fate = this.writeFate();
    let detail = '';
    if (fate === 'kept') bytes.write(op.position, op.data);
    if (fate === 'zeroed') bytes.extendTo(op.position + op.data.length);
    if (fate === 'torn') {
      const cut = this.tornLength(op.position, op.data.length);
      if (cut === 0) {
        fate = 'lost';
        detail = ' (too small to tear)';
      } else {
        bytes.write(op.position, op.data.subarray(0, cut));
        const zerosAfter = this.rng.chance(0.5);
        if (zerosAfter) bytes.extendTo(op.position + op.data.length);
        detail = ` at ${op.position + cut}${zerosAfter ? ', size kept, zeros after' : ''}`;
      }
    }
    this.report.counts[fate] += 1;
    this.report.decisions.push(`${describeOp(op)}: ${fate}${detail}`);
  }

  private writeFate(): WriteFate {
    if (this.spec.mode === 'all-kept') return 'kept';
    if (this.spec.mode === 'all-lost' || this.spec.mode === 'data-lost') return 'lost';
    if (this.rng.chance(this.keepBias)) return 'kept';
    return this.rng.pick(['lost', 'torn', 'zeroed'] as const);
  }

  /** Bytes of the write that survive a tear: a sector boundary strictly inside it, or 0 if none. */
  private tornLength(position: number, length: number): number {
    if (this.sectorBytes <= 1) return length >= 2 ? 1 + this.rng.int(length - 1) : 0;
    const sector = this.sectorBytes;
    const boundaries = Math.floor((position + length - 1) / sector) - Math.floor(position / sector);
    if (boundaries <= 0) return 0;
    const first = (Math.floor(position / sector) + 1) * sector;
    return first + this.rng.int(boundaries) * sector - position;
  }
}

// ---------------------------------------------------------------------------------------------
// Real-directory helpers

async function snapshotInto(
  absDir: string, relDir: string, dirIno: number, isExcluded: (rel: string) => boolean,
  state: { entries: Entries; contents: Map<number, Buffer>; kinds: Map<number, 'file' | 'dir'>; nextIno: () => number },
): Promise<void> {
  const dir = directory(state.entries, dirIno);
  const names = (await fsp.readdir(absDir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const dirent of names) {
    const rel = relDir === '' ? dirent.name : `${relDir}/${dirent.name}`;
    if (isExcluded(rel)) continue;
    const ino = state.nextIno();
    dir.set(dirent.name, ino);
    if (dirent.isDirectory()) {
      state.kinds.set(ino, 'dir');
      directory(state.entries, ino);
      await snapshotInto(nodePath.join(absDir, dirent.name), rel, ino, isExcluded, state);
    } else if (dirent.isFile()) {
      state.kinds.set(ino, 'file');
      state.contents.set(ino, await fsp.readFile(nodePath.join(absDir, dirent.name)));
    } else {
      throw new Error(`faultfs: ${rel} is neither a file nor a directory; cannot model it (exclude it)`);
    }
  }
}

async function writeTree(
  target: string, entries: Entries, contents: Map<number, Bytes>, kinds: Map<number, 'file' | 'dir'>,
): Promise<void> {
  const walk = async (dirIno: number, dirPath: string, ancestors: Set<number>): Promise<void> => {
    const dir = entries.get(dirIno);
    if (dir === undefined) return;
    for (const name of [...dir.keys()].sort()) {
      const ino = dir.get(name) as number;
      const path = nodePath.join(dirPath, name);
      if (kinds.get(ino) !== 'dir') {
        await fsp.writeFile(path, contents.get(ino)?.view() ?? Buffer.alloc(0));
      } else if (!ancestors.has(ino)) {
        await fsp.mkdir(path);
        await walk(ino, path, new Set([...ancestors, ino]));
      }
    }
  };
  await walk(ROOT, target, new Set([ROOT]));
}

async function pathExists(path: string): Promise<boolean> {
  return (await fsp.stat(path).catch(() => undefined)) !== undefined;
}

/** Reads a directory tree: relative path -> bytes, or 'dir'. For comparing states in tests. */
export async function readTree(root: string, exclude: string[] = []): Promise<Map<string, Buffer | 'dir'>> {
  const tree = new Map<string, Buffer | 'dir'>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (exclude.some((ex) => childRel === ex || childRel.startsWith(`${ex}/`))) continue;
      const abs = nodePath.join(dir, name);
      if ((await fsp.stat(abs)).isDirectory()) {
        tree.set(childRel, 'dir');
        await walk(abs, childRel);
      } else {
        tree.set(childRel, await fsp.readFile(abs));
      }
    }
  };
  await walk(root, '');
  return tree;
}

function damagedBytes(old: Buffer, kind: DamageSpec['kind'], rng: Rng): Buffer {
  const fresh = Buffer.alloc(old.length);
  for (let i = 0; i < old.length; i += 1) {
    const before = old[i] as number;
    if (kind === 'bitflip') fresh[i] = before ^ (1 << rng.int(8));
    if (kind === 'garbage') {
      const byte = rng.int(256);
      fresh[i] = byte === before ? byte ^ (1 + rng.int(255)) : byte;
    }
  }
  return fresh;
}

/**
 * Damages bytes [offset, offset+length) of a real file in place (zeros, garbage that differs from
 * every original byte, or one flipped bit per byte). Never changes the size. Returns the new bytes.
 */
export async function damageFile(path: string, spec: DamageSpec): Promise<Buffer> {
  const handle = await fsp.open(path, 'r+');
  try {
    const size = (await handle.stat()).size;
    if (spec.offset < 0 || spec.length < 0 || spec.offset + spec.length > size) {
      throw new RangeError(`faultfs: damage ${spec.offset}+${spec.length} is outside ${path} (${size} bytes)`);
    }
    const old = Buffer.alloc(spec.length);
    await handle.read(old, 0, spec.length, spec.offset);
    const fresh = damagedBytes(old, spec.kind, new Rng(spec.seed ?? 1));
    await handle.write(fresh, 0, fresh.length, spec.offset);
    return fresh;
  } finally {
    await handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The file system

interface FaultRule {
  fault: { kind: FaultKind; bytes?: number };
  match: (info: OpInfo) => boolean;
  /** One-shot rules: how many more calls fail. */
  remaining?: number;
}

class FaultFileHandle implements FileHandle {
  constructor(
    private readonly owner: FaultFileSystem,
    private readonly inner: FileHandle,
    readonly path: string,
    /** The modelled inode, or undefined for unmodelled files. */
    private readonly ino: number | undefined,
  ) {}

  async read(buffer: Buffer, offset: number, length: number, position: number, options?: ReadOptions): Promise<number> {
    this.owner.checkFault({ kind: 'read', path: this.path, position, length });
    return this.inner.read(buffer, offset, length, position, options);
  }

  /** Modelled as one write of the concatenation (what a vectored write is). */
  writev(parts: Buffer[], position: number): Promise<void> {
    return this.write(Buffer.concat(parts), position);
  }

  async write(data: Buffer, position: number): Promise<void> {
    const info = this.owner.beginMutation({ kind: 'write', path: this.path, position, length: data.length });
    const fault = this.owner.faultFor(info);
    if (fault !== undefined) return this.failWrite(info, fault, data, position);
    await this.inner.write(data, position);
    this.owner.recordData(this.ino, info, { kind: 'write', position, data: Buffer.from(data) });
  }

  /**
   * The two calls it stands for (a write, then a sync), each with its own faults. Over the default
   * inner NodeFileSystem the real writevDurable runs: a sync fault is raised by the real flush it
   * calls (in the calling thread for a small write), after the real write, so the real code meets
   * it as it would the kernel's EIO. Over another inner, the write and sync are made as two calls.
   */
  async writevDurable(parts: Buffer[], position: number, written?: () => void): Promise<void> {
    if (!this.owner.flushesReachable) {
      await this.writev(parts, position);
      written?.();
      await this.sync();
      return;
    }
    const data = Buffer.concat(parts);
    const write = this.owner.beginMutation({ kind: 'write', path: this.path, position, length: data.length });
    const fault = this.owner.faultFor(write);
    if (fault !== undefined) return this.failWrite(write, fault, data, position);
    let synced: { info: OpInfo; coversUpTo: number } | undefined;
    await this.owner.duringFlush(this.path, () => {
      // the write is done (the real flush is next): recorded first, so the sync covers it
      this.owner.recordData(this.ino, write, { kind: 'write', position, data });
      const info = this.owner.beginMutation({ kind: 'sync', path: this.path });
      this.owner.throwIfFault(info);
      synced = { info, coversUpTo: this.owner.logLength };
    }, () => this.inner.writevDurable(parts, position, written));
    if (synced) this.owner.recordData(this.ino, synced.info, { kind: 'sync', coversUpTo: synced.coversUpTo });
  }

  async sync(): Promise<void> {
    const info = this.owner.beginMutation({ kind: 'sync', path: this.path });
    this.owner.throwIfFault(info);
    const coversUpTo = this.owner.logLength;
    await this.inner.sync();
    this.owner.recordData(this.ino, info, { kind: 'sync', coversUpTo });
  }

  async truncate(length: number): Promise<void> {
    const info = this.owner.beginMutation({ kind: 'truncate', path: this.path, length });
    this.owner.throwIfFault(info);
    await this.inner.truncate(length);
    this.owner.recordData(this.ino, info, { kind: 'truncate', length });
  }

  size(): Promise<number> {
    return this.inner.size();
  }

  stat(): Promise<FileStat> {
    return this.inner.stat();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** A short write really writes its prefix (as a full disk does), then throws ENOSPC. */
  private async failWrite(info: OpInfo, fault: FaultRule['fault'], data: Buffer, position: number): Promise<never> {
    if (fault.kind !== 'shortWrite') throw this.owner.errorFor(info, fault.kind);
    const prefix = Math.max(0, Math.min(data.length - 1, fault.bytes ?? this.owner.rng.int(data.length)));
    if (prefix > 0) {
      await this.inner.write(data.subarray(0, prefix), position);
      this.owner.recordData(this.ino, info, { kind: 'write', position, data: Buffer.from(data.subarray(0, prefix)) });
    }
    this.owner.noteShortWrite(prefix);
    throw this.owner.errorFor(info, 'ENOSPC');
  }
}

type DataRecord =
  | { kind: 'write'; position: number; data: Buffer }
  | { kind: 'truncate'; length: number }
  | { kind: 'sync'; coversUpTo: number };

/** Distributes Omit over a union, so each op kind keeps its own fields. */
type WithoutIndex<T> = T extends unknown ? Omit<T, 'index'> : never;

/**
 * A FileSystem that passes everything through to a real one, records mutations for crash
 * states, injects faults and counts syncs. See the top of this file.
 */
export class FaultFileSystem implements FileSystem {
  readonly seed: number;
  /** Short-write lengths and default damage seeds. */
  readonly rng: Rng;
  private readonly inner: FileSystem;

  private root: string | undefined;
  private exclude: string[] = [];
  private seqCounter = 0;
  private log: RecordedOp[] = [];
  private initial: Initial = { entries: new Map(), contents: new Map() };
  private live: Entries = new Map();
  private kinds = new Map<number, 'file' | 'dir'>();
  private inoCounter = ROOT;

  private oneShots: FaultRule[] = [];
  private persistent: FaultRule[] = [];
  private fired: FiredFault[] = [];
  private counts: FaultCounters = FaultFileSystem.zeroCounters();
  private damageCounter = 0;
  /** Per path: what runs inside the real flush of a writevDurable under way (duringFlush). */
  private readonly flushHooks = new Map<string, () => void>();
  /** The inner file system is this FaultFS's own NodeFileSystem, whose flushes call flushing(). */
  readonly flushesReachable: boolean;

  constructor(options: FaultFsOptions = {}) {
    this.seed = (options.seed ?? 1) >>> 0;
    this.rng = new Rng(this.seed);
    this.flushesReachable = options.inner === undefined;
    this.inner = options.inner ?? new NodeFileSystem({
      inThread: (fd, path) => { this.flushing(path); fdatasyncSync(fd); },
      inPool: async (handle, path) => { this.flushing(path); await handle.datasync(); },
    });
  }

  // --- recording --------------------------------------------------------------------------

  /**
   * Starts (or restarts) modelling `root`: its current content, minus `exclude`, becomes the
   * durable initial state; the log, seq numbering and damage numbering start afresh.
   */
  async startRecording(root: string, options: RecordingOptions = {}): Promise<void> {
    this.root = nodePath.resolve(root);
    this.exclude = (options.exclude ?? []).map((ex) => ex.replace(/^\.?\/+|\/+$/g, ''));
    this.seqCounter = 0;
    this.damageCounter = 0;
    this.log = [];
    this.kinds = new Map([[ROOT, 'dir']]);
    this.inoCounter = ROOT;
    const state = { entries: new Map() as Entries, contents: new Map<number, Buffer>(), kinds: this.kinds, nextIno: () => ++this.inoCounter };
    directory(state.entries, ROOT);
    await snapshotInto(this.root, '', ROOT, (rel) => this.isExcluded(rel), state);
    this.initial = { entries: state.entries, contents: state.contents };
    this.live = cloneEntries(state.entries);
  }

  /** The op log so far, in completion order. */
  ops(): readonly RecordedOp[] {
    return this.log;
  }

  get logLength(): number {
    return this.log.length;
  }

  /** The seq the next mutating call will get (for injectAt). */
  get nextSeq(): number {
    return this.seqCounter + 1;
  }

  // --- crash states -----------------------------------------------------------------------

  /**
   * Crash points to try. With a count of at least log length + 1 every point is covered, first
   * in each mode in turn, then in 'random' with fresh seeds; with fewer, points are sampled.
   */
  crashStates(options: CrashStatesOptions = {}): CrashSpec[] {
    const points = this.log.length + 1;
    const modes = options.modes ?? ['all-lost', 'random', 'all-kept'];
    const seed = options.seed ?? this.seed;
    const count = options.count ?? points * modes.length;
    const sampler = new Rng(deriveSeed(seed, 0xc0ffee));
    const specs: CrashSpec[] = [];
    for (let i = 0; i < count; i += 1) {
      const pass = Math.floor(i / points);
      const afterOp = count >= points ? i % points : sampler.int(points);
      const mode = count >= points ? (modes[pass] ?? 'random') : (modes[i % modes.length] as CrashMode);
      specs.push({ afterOp, seed: deriveSeed(seed, i + 1), mode });
    }
    return specs;
  }

  /**
   * Writes into `targetDir` (created; must be empty) the state a power cut after log entry
   * `afterOp` could leave, chosen by `seed`. The same (log, afterOp, seed, mode) gives the same state.
   */
  async materializeCrash(targetDir: string, afterOp: number, seed: number, options: MaterializeOptions = {}): Promise<CrashReport> {
    const root = this.requireRoot();
    if (!Number.isInteger(afterOp) || afterOp < 0 || afterOp > this.log.length) {
      throw new RangeError(`faultfs: afterOp ${afterOp} is outside 0..${this.log.length}`);
    }
    await fsp.mkdir(targetDir, { recursive: true });
    if ((await fsp.readdir(targetDir)).length > 0) throw new Error(`faultfs: ${targetDir} is not empty`);
    const spec = { afterOp, seed: seed >>> 0, mode: options.mode ?? 'random' };
    const sectorBytes = (options.tearAt ?? 'sector') === 'sector' ? 512 : 1;
    const plan = new CrashPlanner(this.log.slice(0, afterOp), spec, sectorBytes).plan(this.initial);
    await writeTree(targetDir, plan.entries, plan.contents, this.kinds);
    await this.copyExcluded(root, targetDir, options, plan.report);
    return plan.report;
  }

  /**
   * Materializes each crash state into a temporary directory and runs `check` on it. A failing
   * check is rethrown with the state's reproduce line, and its directory is kept for inspection.
   * Returns the number of states checked.
   */
  async forEachCrash(
    check: (dir: string, report: CrashReport) => Promise<void>,
    options: CrashStatesOptions & Omit<MaterializeOptions, 'mode'> & { tmpRoot?: string } = {},
  ): Promise<number> {
    const specs = this.crashStates(options);
    for (const spec of specs) {
      const dir = await fsp.mkdtemp(nodePath.join(options.tmpRoot ?? tmpdir(), 'faultfs-crash-'));
      const report = await this.materializeCrash(dir, spec.afterOp, spec.seed, { ...options, mode: spec.mode });
      try {
        await check(dir, report);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`crash state ${report.reproduce} (faultfs seed ${this.seed}): ${message}; state kept in ${dir}`, { cause: error });
      }
      await fsp.rm(dir, { recursive: true, force: true });
    }
    return specs.length;
  }

  /** Copies the excluded paths as they are now into `destRoot` (for a later indexMode 'older'). */
  async snapshotExcluded(destRoot: string): Promise<void> {
    const root = this.requireRoot();
    for (const rel of this.exclude) {
      const source = nodePath.join(root, rel);
      if (!(await pathExists(source))) continue;
      await fsp.mkdir(nodePath.dirname(nodePath.join(destRoot, rel)), { recursive: true });
      await fsp.cp(source, nodePath.join(destRoot, rel), { recursive: true });
    }
  }

  private async copyExcluded(root: string, target: string, options: MaterializeOptions, report: CrashReport): Promise<void> {
    const mode = options.indexMode ?? 'current';
    if (mode === 'older' && options.indexSource === undefined) throw new Error("faultfs: indexMode 'older' needs indexSource");
    const sourceRoot = options.indexSource ?? root;
    for (const rel of this.exclude) {
      const source = nodePath.join(sourceRoot, rel);
      const destination = nodePath.join(target, rel);
      if (mode === 'missing' || !(await pathExists(source))) {
        report.excluded.push(`${rel}: missing`);
      } else if (!(await pathExists(nodePath.dirname(destination)))) {
        report.excluded.push(`${rel}: missing (its parent directory did not survive)`);
      } else {
        await fsp.cp(source, destination, { recursive: true });
        report.excluded.push(`${rel}: ${mode} copy from ${sourceRoot}`);
      }
    }
  }

  // --- fault injection --------------------------------------------------------------------

  /**
   * Fails, once, the mutating call numbered `seq`, or the first call (of any kind) the predicate
   * accepts; with `times`, the first `times` calls it accepts. The predicate sees each call once,
   * so it may count calls itself (fail the third journal write, ...).
   */
  injectAt(target: number | ((op: OpInfo) => boolean), fault: Fault, options: { times?: number } = {}): void {
    const match = typeof target === 'number' ? (info: OpInfo) => info.seq === target : target;
    this.oneShots.push({ fault: typeof fault === 'string' ? { kind: fault } : fault, match, remaining: options.times ?? 1 });
  }

  /** Fails every matching call until clear(): a full disk, a directory that lost its write bit, ... */
  failAll(kind: FaultKind, options: FailAllOptions = {}): void {
    const ops = new Set(options.ops ?? DEFAULT_FAIL_OPS[kind]);
    const prefix = options.pathPrefix;
    const onPath = (path: string | undefined): boolean => {
      if (path === undefined) return false;
      if (prefix === undefined) return true;
      if (nodePath.isAbsolute(prefix)) return nodePath.resolve(path).startsWith(prefix);
      return (this.root === undefined ? path : this.relOf(path))?.startsWith(prefix) ?? false;
    };
    this.persistent.push({ fault: { kind }, match: (info) => ops.has(info.kind) && (onPath(info.path) || onPath(info.to)) });
  }

  /** Removes every pending injection and persistent condition ("space was freed"). */
  clear(): void {
    this.oneShots = [];
    this.persistent = [];
  }

  /** Faults that fired, in order. */
  firedFaults(): readonly FiredFault[] {
    return this.fired;
  }

  // --- media damage -----------------------------------------------------------------------

  /** Damages a real file in place; on a modelled file the damage is durable in every crash state. */
  async damage(path: string, spec: DamageSpec): Promise<Buffer> {
    const seed = spec.seed ?? deriveSeed(this.seed, 0xda000000 + ++this.damageCounter);
    const data = await damageFile(path, { ...spec, seed });
    const rel = this.modelledRel(path);
    const ino = rel === undefined ? undefined : this.lookup(rel);
    if (ino !== undefined) this.append({ kind: 'damage', seq: undefined, path, ino, position: spec.offset, data });
    return data;
  }

  /** Damages a seeded random range (1 B to 4 KiB) of a non-empty file with a seeded kind. */
  async randomDamage(path: string, seed: number): Promise<Required<DamageSpec>> {
    const size = (await fsp.stat(path)).size;
    if (size === 0) throw new Error(`faultfs: cannot damage empty file ${path} (seed ${seed})`);
    const rng = new Rng(seed);
    const kind = rng.pick(['zeros', 'garbage', 'bitflip'] as const);
    const length = 1 + rng.int(Math.min(size, 4096));
    const spec = { kind, offset: rng.int(size - length + 1), length, seed: deriveSeed(seed, 1) };
    await this.damage(path, spec);
    return spec;
  }

  // --- counters ---------------------------------------------------------------------------

  /** A copy of the counters (calls, including failed ones). */
  counters(): FaultCounters {
    return { ...this.counts, syncByPath: new Map(this.counts.syncByPath), syncDirByPath: new Map(this.counts.syncDirByPath) };
  }

  resetCounters(): void {
    this.counts = FaultFileSystem.zeroCounters();
  }

  private static zeroCounters(): FaultCounters {
    return { sync: 0, syncDir: 0, writes: 0, creates: 0, renames: 0, unlinks: 0, syncByPath: new Map(), syncDirByPath: new Map() };
  }

  private count(kind: OpKind, path: string): void {
    const key = this.relOrAbsolute(path);
    if (kind === 'sync') this.bump(this.counts.syncByPath, key, 'sync');
    if (kind === 'syncDir') this.bump(this.counts.syncDirByPath, key, 'syncDir');
    if (kind === 'write') this.counts.writes += 1;
    if (kind === 'create') this.counts.creates += 1;
    if (kind === 'rename') this.counts.renames += 1;
    if (kind === 'unlink') this.counts.unlinks += 1;
  }

  private bump(byPath: Map<string, number>, key: string, total: 'sync' | 'syncDir'): void {
    byPath.set(key, (byPath.get(key) ?? 0) + 1);
    this.counts[total] += 1;
  }

  // --- FileSystem -------------------------------------------------------------------------

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const rel = this.modelledRel(path);
    const creating = await this.isCreate(path, rel, mode);
    const reading = mode === 'read' || mode === 'readNoFollow';
    const kind: OpKind = creating ? 'create' : reading ? 'read' : 'open';
    const info = creating ? this.beginMutation({ kind, path }) : this.describe({ kind, path });
    this.throwIfFault(info);
    const handle = await this.inner.open(path, mode);
    if (rel === undefined || reading) return new FaultFileHandle(this, handle, path, undefined);
    let ino = this.lookup(rel);
    if (ino === undefined && creating) ino = this.recordCreate(info, rel, 'create');
    if (ino === undefined) {
      await handle.close();
      throw this.unknown(rel, info);
    }
    return new FaultFileHandle(this, handle, path, ino);
  }

  async readFile(path: string): Promise<Buffer> {
    this.checkFault({ kind: 'read', path });
    return this.inner.readFile(path);
  }

  async readdir(path: string): Promise<string[]> {
    this.checkFault({ kind: 'readdir', path });
    return this.inner.readdir(path);
  }

  async stat(path: string): Promise<FileStat> {
    this.checkFault({ kind: 'stat', path });
    return this.inner.stat(path);
  }

  async statIfExists(path: string): Promise<FileStat | undefined> {
    this.checkFault({ kind: 'stat', path });
    return this.inner.statIfExists(path);
  }

  lstat(path: string): Promise<FileStat> {
    return this.inner.lstat(path);
  }

  realpath(path: string): Promise<string> {
    return this.inner.realpath?.(path) ?? Promise.resolve(path);
  }

  holdDirectory(path: string, options?: { noFollow?: boolean }): Promise<HeldDirectory> {
    return this.inner.holdDirectory(path, options);
  }

  lstatIfExists(path: string): Promise<FileStat | undefined> {
    return this.inner.lstatIfExists(path);
  }

  async mkdir(path: string): Promise<void> {
    const info = this.beginMutation({ kind: 'mkdir', path });
    this.throwIfFault(info);
    await this.inner.mkdir(path);
    const rel = this.modelledRel(path);
    if (rel !== undefined) this.recordCreate(info, rel, 'mkdir');
  }

  async rename(from: string, to: string): Promise<void> {
    const info = this.beginMutation({ kind: 'rename', path: from, to });
    this.throwIfFault(info);
    await this.inner.rename(from, to);
    const relFrom = this.modelledRel(from);
    const relTo = this.modelledRel(to);
    if (relFrom !== undefined && relTo !== undefined) this.recordRename(info, relFrom, relTo);
    else if (relFrom !== undefined) this.recordRemoval(info, relFrom, 'unlink');
    else if (relTo !== undefined) await this.adopt({ ...info, path: to }, relTo, to);
  }

  /** Modelled as a rename after checking that nothing is at `to` (the real one links, atomically). */
  async renameNoReplace(from: string, to: string): Promise<void> {
    if (await this.inner.lstatIfExists(to)) throw Object.assign(new Error(`EEXIST: file already exists, rename '${from}' -> '${to}'`), { code: 'EEXIST', path: to });
    return this.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    const info = this.beginMutation({ kind: 'unlink', path });
    this.throwIfFault(info);
    await this.inner.unlink(path);
    const rel = this.modelledRel(path);
    if (rel !== undefined) this.recordRemoval(info, rel, 'unlink');
  }

  async rmdir(path: string): Promise<void> {
    const info = this.beginMutation({ kind: 'rmdir', path });
    this.throwIfFault(info);
    await this.inner.rmdir(path);
    const rel = this.modelledRel(path);
    if (rel !== undefined) this.recordRemoval(info, rel, 'rmdir');
  }

  /** Only for derived trees outside the model (a temporary index); not modelled. */
  removeTree(path: string): Promise<void> {
    return this.inner.removeTree(path);
  }

  /** Metadata only, not modelled: a crash state keeps whatever mtime materialisation gives. */
  utimes(path: string, mtime: Date): Promise<void> {
    return this.inner.utimes(path, mtime);
  }

  async syncDir(path: string): Promise<void> {
    const info = this.beginMutation({ kind: 'syncDir', path });
    this.throwIfFault(info);
    const coversUpTo = this.log.length;
    await this.inner.syncDir(path);
    const rel = this.modelledRel(path);
    const ino = rel === undefined ? undefined : this.lookup(rel);
    if (ino !== undefined) this.append({ kind: 'syncDir', seq: info.seq, path, ino, coversUpTo });
  }

  // --- plumbing used by handles -----------------------------------------------------------
  // Internal: public only so FaultFileHandle can reach them. Tests should not call these.

  /** Runs `run` (a real writevDurable of `path`) with `hook` called in place of the start of its flush. */
  async duringFlush(path: string, hook: () => void, run: () => Promise<void>): Promise<void> {
    const key = nodePath.resolve(path);
    if (this.flushHooks.has(key)) throw new Error(`faultfs: two writevDurable calls on ${path} at once`);
    this.flushHooks.set(key, hook);
    try {
      await run();
    } finally {
      this.flushHooks.delete(key);
    }
  }

  /** Called by the inner NodeFileSystem right before each real fdatasync; a hook's throw is that fdatasync failing. */
  private flushing(path: string): void {
    const key = nodePath.resolve(path);
    const hook = this.flushHooks.get(key);
    if (hook === undefined) return;
    this.flushHooks.delete(key);
    hook();
  }

  /** Numbers and counts a mutating call. */
  beginMutation(init: Omit<OpInfo, 'seq' | 'relPath'>): OpInfo {
    this.count(init.kind, init.path);
    return { ...this.describe(init), seq: ++this.seqCounter };
  }

  /** For non-mutating calls: throws if a fault matches. */
  checkFault(init: Omit<OpInfo, 'seq' | 'relPath'>): void {
    this.throwIfFault(this.describe(init));
  }

  throwIfFault(info: OpInfo): void {
    const fault = this.faultFor(info);
    if (fault !== undefined) throw this.errorFor(info, fault.kind === 'shortWrite' ? 'ENOSPC' : fault.kind);
  }

  faultFor(info: OpInfo): FaultRule['fault'] | undefined {
    const shot = this.oneShots.find((rule) => rule.match(info));
    if (shot !== undefined && --shot.remaining! === 0) this.oneShots.splice(this.oneShots.indexOf(shot), 1);
    const rule = shot ?? this.persistent.find((r) => r.match(info));
    if (rule === undefined) return undefined;
    this.fired.push({ seq: info.seq, kind: info.kind, path: info.path, code: rule.fault.kind === 'shortWrite' ? 'ENOSPC' : rule.fault.kind });
    return rule.fault;
  }

  errorFor(info: OpInfo, code: Exclude<FaultKind, 'shortWrite'>): NodeJS.ErrnoException {
    return systemError(code, SYSCALL[info.kind], info.path, info.to);
  }

  noteShortWrite(bytesWritten: number): void {
    const last = this.fired[this.fired.length - 1];
    if (last !== undefined) last.bytesWritten = bytesWritten;
  }

  recordData(ino: number | undefined, info: OpInfo, record: DataRecord): void {
    if (ino === undefined || this.root === undefined) return;
    this.append({ ...record, seq: info.seq, path: info.path, ino });
  }

  // --- the live namespace model -----------------------------------------------------------

  private describe(init: Omit<OpInfo, 'seq' | 'relPath'>): OpInfo {
    return { ...init, seq: undefined, relPath: this.root === undefined ? undefined : this.relOf(init.path) };
  }

  private append(op: WithoutIndex<RecordedOp>): void {
    this.log.push({ ...op, index: this.log.length + 1 } as RecordedOp);
  }

  private async isCreate(path: string, rel: string | undefined, mode: OpenMode): Promise<boolean> {
    if (mode === 'createNew') return true;
    if (mode !== 'createOrOpen') return false;
    const onDisk = (await this.inner.statIfExists(path)) !== undefined;
    if (rel === undefined) return !onDisk;
    const modelled = this.lookup(rel) !== undefined;
    if (onDisk && !modelled) throw this.unknown(rel, this.describe({ kind: 'open', path }));
    return !modelled;
  }

  private recordCreate(info: OpInfo, rel: string, kind: 'create' | 'mkdir'): number {
    const { parent, name } = this.parentOf(rel, info);
    const ino = ++this.inoCounter;
    this.kinds.set(ino, kind === 'mkdir' ? 'dir' : 'file');
    const op = { kind, seq: info.seq, path: info.path, parent, name, ino } as const;
    this.append(op);
    applyNamespaceOp(this.live, { ...op, index: 0 });
    return ino;
  }

  private recordRename(info: OpInfo, relFrom: string, relTo: string): void {
    const from = this.parentOf(relFrom, info);
    const to = this.parentOf(relTo, info);
    const ino = this.lookup(relFrom);
    if (ino === undefined) throw this.unknown(relFrom, info);
    const op = {
      kind: 'rename', seq: info.seq, path: info.path, to: info.to as string,
      fromParent: from.parent, fromName: from.name, toParent: to.parent, toName: to.name, ino,
    } as const;
    this.append(op);
    applyNamespaceOp(this.live, { ...op, index: 0 });
  }

  private recordRemoval(info: OpInfo, rel: string, kind: 'unlink' | 'rmdir'): void {
    const ino = this.lookup(rel);
    if (ino === undefined) return; // nothing modelled was there
    const { parent, name } = this.parentOf(rel, info);
    const op = { kind, seq: info.seq, path: info.path, parent, name, ino } as const;
    this.append(op);
    applyNamespaceOp(this.live, { ...op, index: 0 });
  }

  /** Something renamed from an unmodelled path into the model: it enters as new, un-synced files. */
  private async adopt(info: OpInfo, rel: string, absolute: string): Promise<void> {
    const stat = await fsp.stat(absolute);
    const ino = this.recordCreate(info, rel, stat.isDirectory() ? 'mkdir' : 'create');
    if (!stat.isDirectory()) {
      this.append({ kind: 'write', seq: info.seq, path: absolute, ino, position: 0, data: await fsp.readFile(absolute) });
      return;
    }
    for (const name of (await fsp.readdir(absolute)).sort()) {
      await this.adopt({ ...info, path: nodePath.join(absolute, name) }, `${rel}/${name}`, nodePath.join(absolute, name));
    }
  }

  private lookup(rel: string): number | undefined {
    let ino: number | undefined = ROOT;
    for (const name of rel === '' ? [] : rel.split('/')) {
      ino = this.live.get(ino)?.get(name);
      if (ino === undefined) return undefined;
    }
    return ino;
  }

  private parentOf(rel: string, info: OpInfo): { parent: number; name: string } {
    const slash = rel.lastIndexOf('/');
    const parentRel = slash < 0 ? '' : rel.slice(0, slash);
    const parent = this.lookup(parentRel);
    if (parent === undefined) throw this.unknown(parentRel, info);
    return { parent, name: rel.slice(slash + 1) };
  }

  private unknown(rel: string, info: OpInfo): Error {
    return new Error(
      `faultfs: ${rel} (during ${info.kind} ${info.path}) exists on disk but was neither there at startRecording ` +
      `nor made through this FaultFS; create it through the FaultFS or add it to exclude (seed ${this.seed})`,
    );
  }

  // --- paths ------------------------------------------------------------------------------

  private requireRoot(): string {
    if (this.root === undefined) throw new Error('faultfs: call startRecording(root) first');
    return this.root;
  }

  /** Path relative to the root ('' for the root), or undefined if outside it. */
  private relOf(path: string): string | undefined {
    if (this.root === undefined) return undefined;
    const rel = nodePath.relative(this.root, nodePath.resolve(path));
    if (rel === '..' || rel.startsWith(`..${nodePath.sep}`) || nodePath.isAbsolute(rel)) return undefined;
    return rel.split(nodePath.sep).join('/');
  }

  private isExcluded(rel: string): boolean {
    return this.exclude.some((ex) => rel === ex || rel.startsWith(`${ex}/`));
  }

  /** Relative path of a modelled path: recording, under the root, not excluded. */
  private modelledRel(path: string): string | undefined {
    const rel = this.relOf(path);
    return rel === undefined || this.isExcluded(rel) ? undefined : rel;
  }

  /** Counter keys: relative to the root ('.' for the root itself), absolute outside it. */
  private relOrAbsolute(path: string): string {
    const rel = this.relOf(path);
    return rel === undefined ? nodePath.resolve(path) : rel === '' ? '.' : rel;
  }

}
