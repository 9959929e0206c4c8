// The real FileSystem over node:fs. The only module (with its siblings in src/fs) that touches node:fs.
import { promises as fsp, constants, fdatasyncSync, readSync, writeSync, writevSync } from 'node:fs';
import { dirname } from 'node:path';
import { limits } from '../limits.js';
import type { FileHandle, FileStat, FileSystem, HeldDirectory, OpenMode, ReadOptions, SpaceFigures } from './filesystem.js';

const FLAGS: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  readWrite: constants.O_RDWR,
  createNew: constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
  createOrOpen: constants.O_RDWR | constants.O_CREAT,
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (it has no effect on regular files).
  readNoFollow: constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
};

/**
 * The two ways a file is fdatasynced. Replaceable only so a test can make the real one fail where
 * the kernel would (EIO after a failed write-back) while everything around it is the real code:
 * test/sim/faultfs.ts raises its injected faults here, e.g. between writevDurable's write and its
 * in-thread flush, which no wrapper outside this file can reach.
 */
export interface Flushes {
  /** fdatasync in the calling thread (writevDurable of a small write). */
  inThread(fd: number, path: string): void;
  /** fdatasync through the thread pool (sync, and writevDurable of a big write). */
  inPool(handle: fsp.FileHandle, path: string): Promise<void>;
}

const KERNEL_FLUSHES: Flushes = {
  inThread: (fd) => fdatasyncSync(fd),
  inPool: (handle) => handle.datasync(),
};

class NodeFileHandle implements FileHandle {
  constructor(readonly path: string, private readonly handle: fsp.FileHandle, private readonly flushes: Flushes) {}

  get fd(): number {
    return this.handle.fd;
  }

  /**
   * Reads synchronously: a message read is small and usually in the page cache, where a libuv
   * thread-pool round trip (measured ~60 µs here) costs more than the read itself. A read `aside`
   * goes to the thread pool: an import's 1 MiB mbox chunks, whose copy out of the page cache was
   * ~8% of the import's JS thread (238 ms of the 20k corpus) while the next chunk is parsed.
   */
  async read(buffer: Buffer, offset: number, length: number, position: number, options?: ReadOptions): Promise<number> {
    let total = 0;
    while (total < length) {
      const bytesRead = options?.aside
        ? (await this.handle.read(buffer, offset + total, length - total, position + total)).bytesRead
        : readSync(this.handle.fd, buffer, offset + total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  /**
   * Small writes are synchronous too: they only copy into the page cache, and the thread-pool
   * round trip would cost more (a delivery makes two). Big ones (an import batch) go to the
   * thread pool, so the copy overlaps the JS work on the next batch.
   */
  async write(data: Buffer, position: number): Promise<void> {
    if (data.length <= limits.syncWriteBytesMax) return this.writeNow(data, position);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      if (bytesWritten === 0) throw shortWrite(this.path);
      done += bytesWritten;
    }
  }

  /** `write` of at most limits.syncWriteBytesMax, in this thread. */
  private writeNow(data: Buffer, position: number): void {
    let done = 0;
    while (done < data.length) {
      const bytesWritten = writeSync(this.handle.fd, data, done, data.length - done, position + done);
      if (bytesWritten === 0) throw shortWrite(this.path);
      done += bytesWritten;
    }
  }

  async writev(parts: Buffer[], position: number): Promise<void> {
    let at = position;
    for (let index = 0; index < parts.length; index += limits.writevPartsMax) {
      const batch = parts.slice(index, index + limits.writevPartsMax);
      const bytes = totalBytes(batch);
      if (bytes <= limits.syncWriteBytesMax) {
        this.writevNow(batch, at);
      } else {
        let skip = (await this.handle.writev(batch, at)).bytesWritten; // a short vectored write: the rest goes with plain writes
        for (const part of batch) {
          if (skip < part.length) await this.write(part.subarray(skip), at + skip);
          skip = Math.max(0, skip - part.length);
          at += part.length;
        }
        continue;
      }
      at += bytes;
    }
  }

  /** A vectored write of at most limits.syncWriteBytesMax bytes (and limits.writevPartsMax parts), in this thread; a short one finished with plain writes. */
  private writevNow(parts: Buffer[], position: number): void {
    let skip = writevSync(this.handle.fd, parts, position);
    let at = position;
    for (const part of parts) {
      if (skip < part.length) this.writeNow(part.subarray(skip), at + skip);
      skip = Math.max(0, skip - part.length);
      at += part.length;
    }
  }

  sync(): Promise<void> {
    return this.flushes.inPool(this.handle, this.path);
  }

  /**
   * Up to limits.syncWriteBytesMax, the fdatasync too runs in the calling thread (blocking it for
   * the flush): a synchronous replica's acknowledgement waits on exactly this, and the thread-pool
   * hop cost more than the flush of a few KiB of overwritten blocks (loaded 2-core machine: write +
   * fdatasync 143-165 µs in-thread, 232-263 µs with both awaited). Bigger writes sync in the pool.
   */
  writevDurable(parts: Buffer[], position: number, written?: () => void): Promise<void> {
    const bytes = totalBytes(parts);
    if (bytes > limits.syncWriteBytesMax || parts.length > limits.writevPartsMax) return this.writevDurableInParts(parts, position, bytes, written);
    // one vectored write and its flush in this thread (a delivery's record): nothing to wait on
    try {
      this.writevNow(parts, position);
      written?.();
      this.flushes.inThread(this.handle.fd, this.path);
    } catch (error) {
      return Promise.reject(error);
    }
    return DONE;
  }

  /** writevDurable of a big write (flushed through the pool) or of more parts than one writev takes. */
  private async writevDurableInParts(parts: Buffer[], position: number, bytes: number, written?: () => void): Promise<void> {
    await this.writev(parts, position);
    written?.();
    if (bytes <= limits.syncWriteBytesMax) this.flushes.inThread(this.handle.fd, this.path);
    else await this.sync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async stat(): Promise<FileStat> {
    return toStat(await this.handle.stat());
  }

  chown(uid: number, gid: number): Promise<void> {
    return this.handle.chown(uid, gid);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** What writevDurable returns when it finished in this thread (one settled promise, shared). */
const DONE: Promise<void> = Promise.resolve();

function totalBytes(parts: Buffer[]): number {
  let bytes = 0;
  for (const part of parts) bytes += part.length;
  return bytes;
}

function shortWrite(path: string): Error {
  return Object.assign(new Error(`short write to ${path}`), { code: 'EIO' });
}

function toStat(s: import('node:fs').Stats): FileStat {
  return {
    size: s.size, dev: s.dev, ino: s.ino, mode: s.mode, mtimeMs: s.mtimeMs,
    isDirectory: s.isDirectory(), isFile: s.isFile(), ...(s.isSymbolicLink() ? { isSymbolicLink: true } : {}),
  };
}

export class NodeFileSystem implements FileSystem {
  /** `flushes`: the kernel's, unless a test replaces them (see Flushes). */
  constructor(private readonly flushes: Flushes = KERNEL_FLUSHES) {}

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    return new NodeFileHandle(path, await fsp.open(path, FLAGS[mode], 0o640), this.flushes);
  }

  readFile(path: string): Promise<Buffer> {
    return fsp.readFile(path);
  }

  async readdir(path: string): Promise<string[]> {
    return (await fsp.readdir(path)).sort();
  }

  async stat(path: string): Promise<FileStat> {
    return toStat(await fsp.stat(path));
  }

  statIfExists(path: string): Promise<FileStat | undefined> {
    return ifExists(() => this.stat(path));
  }

  async lstat(path: string): Promise<FileStat> {
    return toStat(await fsp.lstat(path));
  }

  lstatIfExists(path: string): Promise<FileStat | undefined> {
    return ifExists(() => this.lstat(path));
  }

  realpath(path: string): Promise<string> {
    return fsp.realpath(path);
  }

  async holdDirectory(path: string, options: { noFollow?: boolean } = {}): Promise<HeldDirectory> {
    const flags = constants.O_RDONLY | constants.O_DIRECTORY | (options.noFollow ? constants.O_NOFOLLOW : 0);
    const handle = await fsp.open(path, flags);
    const byFd = `/proc/self/fd/${handle.fd}`;
    const held = await fsp.stat(byFd).then((stat) => stat.isDirectory(), () => false);
    return { path: held ? byFd : path, close: () => handle.close() };
  }

  async mkdir(path: string): Promise<void> {
    await fsp.mkdir(path, { mode: 0o750 });
  }

  rename(from: string, to: string): Promise<void> {
    return fsp.rename(from, to);
  }

  /**
   * A file is hard-linked to its new name (link fails with EEXIST when anything is there, atomically)
   * and then unlinked; where links are not supported, and for directories, a checked rename.
   */
  async renameNoReplace(from: string, to: string): Promise<void> {
    if (!(await fsp.lstat(from)).isDirectory()) {
      try {
        await fsp.link(from, to);
        await fsp.unlink(from);
        return;
      } catch (error) {
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
      }
    }
    if (await this.lstatIfExists(to)) throw Object.assign(new Error(`EEXIST: file already exists, rename '${from}' -> '${to}'`), { code: 'EEXIST', path: to });
    await fsp.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return fsp.unlink(path);
  }

  rmdir(path: string): Promise<void> {
    return fsp.rmdir(path);
  }

  removeTree(path: string): Promise<void> {
    return fsp.rm(path, { recursive: true, force: true });
  }

  async spaceBytes(path: string): Promise<SpaceFigures> {
    const stats = await fsp.statfs(path);
    const inodes = stats.files > 0 ? { freeInodes: stats.ffree, totalInodes: stats.files } : {}; // 0 of 0: made as needed (btrfs)
    return { freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize, ...inodes };
  }

  /**
   * By /proc/self/mountinfo: the mount whose device is the path's (an overlay's directories carry
   * the overlay's own), with `volatile` among its options (shown as fsync=volatile), where fsync
   * and syncfs return at once and a crash loses what they "made durable".
   */
  async syncIgnored(path: string): Promise<string | undefined> {
    let at = path;
    let stat = await this.statIfExists(at);
    while (!stat && dirname(at) !== at) stat = await this.statIfExists((at = dirname(at)));
    const mounts = stat && (await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => undefined));
    if (!stat || !mounts) return undefined;
    const device = deviceNumbers(stat.dev);
    for (const line of mounts.split('\n')) {
      const [fields, tail] = line.split(' - ');
      const [fsType, , superOptions = ''] = tail?.split(' ') ?? [];
      if (fields?.split(' ')[2] !== device) continue;
      if (superOptions.split(',').some((option) => option === 'volatile' || option === 'fsync=volatile')) {
        return `${at} is on the ${fsType} mounted volatile at ${fields.split(' ')[4]}, where fsync does nothing`;
      }
    }
    return undefined;
  }

  utimes(path: string, mtime: Date): Promise<void> {
    return fsp.utimes(path, mtime, mtime);
  }

  async syncDir(path: string): Promise<void> {
    const handle = await fsp.open(path, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/**
 * Reads a file the user named (append FILE) from its start, sequentially, so pipes and devices work
 * (`/dev/stdin`, `<(command)`), stopping after `bytesMax` bytes: a caller that must refuse more asks
 * for one byte over its limit and checks the length, and `/dev/zero` costs no more than that.
 */
export async function readFileUpTo(path: string, bytesMax: number): Promise<Buffer> {
  const handle = await fsp.open(path, constants.O_RDONLY);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < bytesMax) {
      const chunk = Buffer.allocUnsafe(Math.min(bytesMax - total, limits.readChunkBytes));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

export const nodeFileSystem: FileSystem = new NodeFileSystem();

/** glibc's gnu_dev_major and gnu_dev_minor of a stat's dev, as /proc/self/mountinfo writes them. */
function deviceNumbers(dev: number): string {
  const d = BigInt(dev);
  return `${((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)}:${(d & 0xffn) | ((d >> 12n) & ~0xffn)}`;
}

/** The stat, or undefined when the path (or a directory on it) does not exist. */
async function ifExists(stat: () => Promise<FileStat>): Promise<FileStat | undefined> {
  try {
    return await stat();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
