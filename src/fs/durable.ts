// The one durable save sequence (after restic): write a temp file, check its length, fsync it,
// rename it over the target, fsync the directory. Used for every small file we replace whole.
import { dirname, basename, join } from 'node:path';
import type { FileHandle, FileSystem } from './filesystem.js';
import { MailstoreError } from '../errors.js';

/** Temp names are unique within the process, so two saves of one path never share a temp file. */
let tempCounter = 0;

/** The pid in a temp file name replaceFile made (`.NAME.PID.N.tmp`), else undefined. */
export function durableTempPid(name: string): number | undefined {
  const match = /^\..+\.(\d+)\.\d+\.tmp$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * The temp file is created exclusively (O_EXCL never follows a link planted at its name; a stale
 * one left by a crashed process with the same pid is removed first), and removed again when any
 * step before the rename fails: a failed save leaves the old file and nothing else.
 */
export async function writeFileDurable(fs: FileSystem, path: string, data: Buffer | Buffer[], owner?: FileOwner): Promise<void> {
  await replaceFile(fs, path, data, true, false, owner);
  await fs.syncDir(dirname(path));
}

/**
 * The same sequence for a file that must not exist yet: renameNoReplace instead of rename, so of two
 * processes creating one name, one gets it and the other an EEXIST (the temp file removed): a backup
 * repository's config, a restore's claim on its target.
 */
export async function createFileDurable(fs: FileSystem, path: string, data: Buffer): Promise<void> {
  await replaceFile(fs, path, data, true, true);
  await fs.syncDir(dirname(path));
}

/** Who a file root writes into another user's directory is given to (its owner and group). */
export interface FileOwner {
  uid: number;
  gid: number;
}

/**
 * Temp file, length check, (fsync when `durable`), rename (no replace: `exclusive`); the temp file
 * removed when a step fails. `owner`: the temp file is given to that user by its descriptor before
 * the fsync (never by path: the directory's owner could swap the name for a link), so the file is
 * never seen under its name as root's.
 */
async function replaceFile(fs: FileSystem, path: string, data: Buffer | Buffer[], durable: boolean, exclusive = false, owner?: FileOwner): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tempCounter}.tmp`);
  const handle = await openExclusive(fs, temp);
  try {
    try {
      // parts: written as they are (a backup's data file), not copied into one buffer first
      const length = Array.isArray(data) ? data.reduce((sum, part) => sum + part.length, 0) : data.length;
      if (Array.isArray(data)) await handle.writev(data, 0);
      else await handle.write(data, 0);
      if ((await handle.size()) !== length) throw Object.assign(new Error(`length check failed for ${temp}`), { code: 'EIO' });
      if (owner) {
        if (!handle.chown) throw Object.assign(new Error(`${temp}: this file system cannot give a file to another owner`), { code: 'EPERM' });
        await handle.chown(owner.uid, owner.gid);
      }
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    if (exclusive) await fs.renameNoReplace(temp, path);
    else await fs.rename(temp, path);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}

async function openExclusive(fs: FileSystem, temp: string): Promise<FileHandle> {
  try {
    return await fs.open(temp, 'createNew');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    await fs.unlink(temp); // unlink removes a link itself, never its target
    return fs.open(temp, 'createNew');
  }
}

/**
 * Writes a whole file visible to other processes at once (temp, length check, rename) but NOT
 * durable: no fsync of the file or its directory. For what a crash may lose without harm and that
 * is checked when read: a backup repository's lock (no process holds it after a crash) and a
 * snapshot's tip (a cache named by its content hash).
 */
export function writeFileAtomic(fs: FileSystem, path: string, data: Buffer): Promise<void> {
  return replaceFile(fs, path, data, false);
}

/** Creates a directory if missing and makes its entry durable. Returns true when it was created. */
export async function ensureDir(fs: FileSystem, path: string): Promise<boolean> {
  if (await fs.statIfExists(path)) return false;
  let made = true;
  try {
    await fs.mkdir(path);
  } catch (error) {
    // made meanwhile by another writer (two consumers registered at once): as good, once synced here
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || !(await fs.statIfExists(path))?.isDirectory) throw error;
    made = false;
  }
  await fs.syncDir(dirname(path));
  return made;
}

/**
 * The durable save sequence for a file written as it is produced, whose name is known only at the
 * end (a backup's data file, named by its hash): parts are appended to an exclusive temp file in
 * `dir` while the caller makes the next ones (the page-cache copy overlaps its work instead of
 * following it), then `finish` checks the length, fsyncs, renames to the name and fsyncs `dir`.
 * `abort` removes the temp file. Appends are queued in order; a failed one fails `finish`.
 */
export class DurableStream {
  private written: Promise<void> = Promise.resolve();
  private synced: Promise<void> | undefined;
  private length = 0;

  private constructor(private readonly fs: FileSystem, readonly temp: string, private readonly handle: FileHandle) {}

  static async open(fs: FileSystem, dir: string, label: string): Promise<DurableStream> {
    const temp = join(dir, `.${label}.${process.pid}.${++tempCounter}.tmp`);
    return new DurableStream(fs, temp, await openExclusive(fs, temp));
  }

  get bytes(): number {
    return this.length;
  }

  /** Queues `parts` after what was appended before; resolves once they are written (the caller may then reuse their memory). */
  append(parts: Buffer[]): Promise<void> {
    const at = this.length;
    for (const part of parts) this.length += part.length;
    this.written = this.written.then(() => this.handle.writev(parts, at));
    this.written.catch(() => undefined); // reported by finish
    return this.written;
  }

  /**
   * Its bytes written and fsynced under the temp name, the handle closed; `finish` then only renames
   * and syncs the directory. Lets a caller sync a file beside others whose names must become
   * visible before its own (a backup's index and snapshot files beside its last data file).
   */
  sync(): Promise<void> {
    this.synced ??= (async () => {
      try {
        await this.written;
        if ((await this.handle.size()) !== this.length) throw Object.assign(new Error(`length check failed for ${this.temp}`), { code: 'EIO' });
        await this.handle.sync();
      } finally {
        await this.handle.close();
      }
    })();
    return this.synced;
  }

  /** Durable under `name` in the temp file's directory; false when a file of that name was there (the temp file is removed). */
  async finish(name: string): Promise<boolean> {
    const path = join(dirname(this.temp), name);
    try {
      await this.sync();
      if (await this.fs.statIfExists(path)) { await this.fs.unlink(this.temp); return false; }
      await this.fs.rename(this.temp, path);
    } catch (error) {
      await this.fs.unlink(this.temp).catch(() => undefined);
      throw error;
    }
    await this.fs.syncDir(dirname(path));
    return true;
  }

  /** Stops: the temp file is removed (what was queued is waited for first). */
  async abort(): Promise<void> {
    await this.written.catch(() => undefined);
    await (this.synced ?? this.handle.close()).catch(() => undefined);
    await this.fs.unlink(this.temp).catch(() => undefined);
  }
}

/**
 * `path`, or when something is there already `path.2`, `path.3`, ...: the name for bytes kept for
 * an admin (quarantine/, a damaged file set aside), which must never replace what an earlier
 * failure kept there (names made of the clock repeat once it steps back).
 */
/**
 * The time as a file name's part (an ISO time with its ':' and '.' made '-'): the names things set
 * aside take (quarantine/LABEL-2026-12-06T15-20-45-123Z), sortable and safe on every file system.
 */
export function fileTimeStamp(at: Date = new Date()): string {
  return at.toISOString().replace(/[:.]/g, '-');
}

export async function unusedPath(fs: FileSystem, path: string): Promise<string> {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? path : `${path}.${n}`;
    if (!(await fs.lstatIfExists(candidate))) return candidate;
  }
}

/**
 * Before a store or a backup repository (`what`) is made or opened to write: on a file system
 * where fsync does nothing (overlayfs mounted `volatile`, as containers are for speed) every
 * acknowledgement would be a lie that a power cut exposes, so none is given (ACCESS: as on a
 * read-only mount, reads open it read-only).
 */
export async function refuseIgnoredSync(fs: FileSystem, dir: string, what: string): Promise<void> {
  const why = await fs.syncIgnored?.(dir).catch(() => undefined);
  if (why) {
    throw new MailstoreError('ACCESS', `${why}: nothing written there could be acknowledged as durable, so ${what} is not opened to write (reads open it read-only). Remount without volatile, or put ${what} on a volume of its own`, { path: dir });
  }
}
