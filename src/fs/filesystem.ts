// The one door to the disk. Everything in mailstore takes a FileSystem, so tests can pass a
// fault-injecting one (test/sim/faultfs.ts) that records every mutation and produces crash states.

export interface FileStat {
  size: number;
  /** Device id: a change under a running store means the partition was unmounted or swapped. */
  dev: number;
  ino: number;
  mode: number;
  mtimeMs: number;
  isDirectory: boolean;
  isFile: boolean;
  /** From lstat only: the path itself is a symbolic link (stat follows it and never sets this). */
  isSymbolicLink?: boolean;
}

export interface ReadOptions {
  aside?: boolean;
}

/**
 * An open file. Writes are positional and complete: `write` loops over short writes and either
 * writes every byte or throws. `sync` is fdatasync: after it resolves the bytes survive power loss.
 */
export interface FileHandle {
  readonly path: string;
  /**
   * The open file's descriptor, when it is a real file another thread may pread (a pack scan's
   * hash worker reads its chunks itself); undefined for any other handle, which is read only
   * through read().
   */
  readonly fd?: number;
  /**
   * Reads up to `length` bytes at `position` into `buffer` at `offset`; returns bytes read (0 at EOF).
   * `aside`: the caller has other work to do until the bytes arrive (a bulk read ahead), so a
   * file system that can reads them on another thread; others may ignore it.
   */
  read(buffer: Buffer, offset: number, length: number, position: number, options?: ReadOptions): Promise<number>;
  write(data: Buffer, position: number): Promise<void>;
  /** Writes the buffers back to back at `position` (no concatenating copy); complete or throws. */
  writev(parts: Buffer[], position: number): Promise<void>;
  sync(): Promise<void>;
  /**
   * writev then sync, for a small write someone waits on (a synchronous replica's pending round):
   * the real one does both in the calling thread when the write is small, one thread-pool round
   * trip fewer than awaiting sync(). `written`, when given, is called after the write and before
   * the flush (not when the write fails).
   */
  writevDurable(parts: Buffer[], position: number, written?: () => void): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  /** fstat of the open file: what was opened, whatever the path names by now. */
  stat(): Promise<FileStat>;
  /** fchown of the open file (root giving a file it wrote to the store's owner); absent where files have no owners. */
  chown?(uid: number, gid: number): Promise<void>;
  close(): Promise<void>;
}

/** A directory held open; see FileSystem.holdDirectory. */
export interface HeldDirectory {
  /** A path naming the directory that was opened, for as long as it is held (names below it resolve in it). */
  readonly path: string;
  close(): Promise<void>;
}

/**
 * How to open: `read` existing; `readWrite` existing; `createNew` fails with EEXIST; `createOrOpen` creates if missing.
 * `readNoFollow` reads input found inside an import source: a symbolic link fails (ELOOP) instead of being
 * followed, and a FIFO does not block the open; the caller checks `stat().isFile` on the handle.
 */
export type OpenMode = 'read' | 'readWrite' | 'createNew' | 'createOrOpen' | 'readNoFollow';

/** What statfs says of a file system, for the free-space reserve (FileSystem.spaceBytes). */
export interface SpaceFigures {
  freeBytes: number;
  totalBytes: number;
  freeInodes?: number;
  totalInodes?: number;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  readFile(path: string): Promise<Buffer>;
  /** Lists names in a directory (not paths), sorted by byte order. */
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<FileStat>;
  /** stat, or undefined when the path does not exist (ENOENT/ENOTDIR). */
  statIfExists(path: string): Promise<FileStat | undefined>;
  /** stat of the path itself, not following a symbolic link (isSymbolicLink tells). */
  lstat(path: string): Promise<FileStat>;
  /** lstat, or undefined when the path does not exist (ENOENT/ENOTDIR). */
  lstatIfExists(path: string): Promise<FileStat | undefined>;
  /**
   * Opens a directory and gives a path that keeps naming it whatever later happens to `path`
   * (Linux: /proc/self/fd/N, so a folder swapped for a link after it was checked leads nowhere
   * new; where there is no such path, `path` itself). `noFollow`: a link at `path` fails (ELOOP).
   */
  holdDirectory(path: string, options?: { noFollow?: boolean }): Promise<HeldDirectory>;
  /** The path with every symbolic link in it resolved (realpath); absent where there are no links. */
  realpath?(path: string): Promise<string>;
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /**
   * Moves `from` to `to` only if nothing (not even a symbolic link) is there: EEXIST otherwise (a
   * directory onto an empty directory created meanwhile may replace it; onto anything else, it fails).
   */
  renameNoReplace(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** fsync a directory, making creates, renames and unlinks inside it durable. */
  syncDir(path: string): Promise<void>;
  /** Removes a directory tree. Only for derived data this process built (a temporary index). */
  removeTree(path: string): Promise<void>;
  /** Sets a file's modification time (Maildir keeps the internal date there). */
  utimes(path: string, mtime: Date): Promise<void>;
  /**
   * The file system holding `path` (statfs): bytes an unprivileged writer may still use and its
   * size, for the free-space reserve (src/store/free-space.ts) and space taken ahead of need (the
   * journal's preallocation); absent where it cannot be known. `freeInodes`/`totalInodes`: its
   * inodes (files) free and in all, where it has a fixed number (ext4); absent where it makes them
   * as needed (btrfs says 0 of 0) or cannot say.
   */
  spaceBytes?(path: string): Promise<SpaceFigures>;
  /**
   * Why fsync on the file system holding `path` (or its nearest existing parent) makes nothing
   * durable, e.g. an overlayfs mounted `volatile`; undefined when it does, or cannot be known.
   */
  syncIgnored?(path: string): Promise<string | undefined>;
}
