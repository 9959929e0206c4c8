// A FileSystem over one bucket prefix (s3.ts), so code written against the FileSystem interface —
// the backup repository (src/backup/repository.ts) — keeps its files in object storage unchanged.
// Paths are '/'-separated under the prefix. What S3 lacks is mapped onto what the callers rely on:
//  - durability: writeFileDurable's temp file lives in memory; its rename is one PUT of the whole
//    file under the final name, which radosgw acknowledges once the object is durable, so a file
//    is absent or complete (never half-written), as on a disk. sync() of a file that is not a
//    temp (`.NAME.tmp`) PUTs it as it stands.
//  - directories do not exist: mkdir remembers the name, a directory "exists" when remembered, when
//    it is the root, or when an object lies below it; syncDir is a no-op (PUT and DELETE are durable).
//  - a missing object is ENOENT (the callers test error codes); an unreachable endpoint, a missing
//    bucket or refused credentials stay the MailstoreErrors of s3.ts (IO, UNMOUNTED, ACCESS).
import { posix } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileHandle, FileStat, FileSystem, HeldDirectory, OpenMode } from '../fs/filesystem.js';
import { Bucket, parseBucketUrl, parseCredentials, type Credentials } from './s3.js';

const TEMP = /^\..*\.tmp$/;

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such object ${path}`), { code: 'ENOENT', path });
}

function unsupported(what: string, path: string): Error {
  return Object.assign(new Error(`${what} is not supported on an object store (${path})`), { code: 'ENOTSUP', path });
}

const fileStat = (size: number, mtimeMs = 0): FileStat => ({ size, dev: 0, ino: 0, mode: 0o644, mtimeMs, isDirectory: false, isFile: true });
const dirStat = (): FileStat => ({ size: 0, dev: 0, ino: 0, mode: 0o755, mtimeMs: 0, isDirectory: true, isFile: false });

/** Credentials as `init --object-store` takes them: a file of ACCESS_KEY:SECRET_KEY, else the environment. */
export function credentialsFrom(text: string | undefined, path: string | undefined): Credentials {
  if (text !== undefined) return parseCredentials(text, path ?? 'credentials');
  const accessKey = process.env.MAILSTORE_S3_ACCESS_KEY, secretKey = process.env.MAILSTORE_S3_SECRET_KEY;
  if (!accessKey || !secretKey) throw new MailstoreError('INVALID', 'an s3: repository needs credentials: give --repo-credentials FILE (ACCESS_KEY:SECRET_KEY) or set MAILSTORE_S3_ACCESS_KEY and MAILSTORE_S3_SECRET_KEY');
  return { accessKey, secretKey };
}

export class BucketFileSystem implements FileSystem {
  private readonly dirs = new Set<string>(['/']);
  /** Temp files being written, by path (never in the bucket). */
  private readonly pending = new Map<string, MemoryFile>();

  constructor(readonly bucket: Bucket) {}

  static async connect(url: string, credentials: Credentials): Promise<BucketFileSystem> {
    const bucket = new Bucket(parseBucketUrl(url), credentials);
    await bucket.check(); // UNMOUNTED for a missing bucket, before anything is written
    return new BucketFileSystem(bucket);
  }

  private key(path: string): string {
    const relative = posix.normalize(`/${path}`).replace(/^\/+/, '');
    return this.bucket.key(relative);
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    if (mode === 'read' || mode === 'readNoFollow') {
      const size = await this.objectSize(path);
      if (size === undefined) throw enoent(path);
      return new ObjectReadHandle(this.bucket, this.key(path), path, size);
    }
    if (mode === 'createNew' && (this.pending.has(path) || (await this.objectSize(path)) !== undefined)) {
      throw Object.assign(new Error(`EEXIST: ${path}`), { code: 'EEXIST', path });
    }
    if (mode === 'readWrite' || mode === 'createOrOpen') throw unsupported(`opening for ${mode}`, path);
    const file = new MemoryFile(path, (bytes) => this.bucket.put(this.key(path), bytes), TEMP.test(posix.basename(path)));
    this.pending.set(path, file);
    return file;
  }

  async readFile(path: string): Promise<Buffer> {
    const size = await this.objectSize(path);
    if (size === undefined) throw enoent(path);
    return size === 0 ? Buffer.alloc(0) : this.bucket.getRange(this.key(path), 0, size);
  }

  async readdir(path: string): Promise<string[]> {
    const prefix = `${this.key(path).replace(/\/+$/, '')}/`.replace(/^\//, '');
    const names = new Set<string>();
    for (const { key } of await this.bucket.list(prefix)) {
      const rest = key.slice(prefix.length);
      if (rest) names.add(rest.split('/')[0]);
    }
    for (const pending of this.pending.keys()) if (posix.dirname(pending) === posix.normalize(path)) names.add(posix.basename(pending));
    return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  async stat(path: string): Promise<FileStat> {
    const stat = await this.statIfExists(path);
    if (!stat) throw enoent(path);
    return stat;
  }

  async statIfExists(path: string): Promise<FileStat | undefined> {
    const size = await this.objectSize(path);
    if (size !== undefined) return fileStat(size);
    if (this.dirs.has(posix.normalize(`/${path}`))) return dirStat();
    return (await this.readdir(path)).length > 0 ? dirStat() : undefined;
  }

  lstat(path: string): Promise<FileStat> {
    return this.stat(path);
  }

  lstatIfExists(path: string): Promise<FileStat | undefined> {
    return this.statIfExists(path);
  }

  async holdDirectory(path: string): Promise<HeldDirectory> {
    return { path, close: async () => undefined };
  }

  async mkdir(path: string): Promise<void> {
    this.dirs.add(posix.normalize(`/${path}`));
  }

  /** A temp file written here is PUT under `to`; an object already in the bucket is copied. */
  async rename(from: string, to: string): Promise<void> {
    const file = this.pending.get(from);
    if (file) {
      const bytes = file.contents();
      await this.bucket.put(this.key(to), bytes);
      this.pending.delete(from);
      if (file.uploaded) await this.bucket.remove(this.key(from));
      return;
    }
    const size = await this.objectSize(from);
    if (size === undefined) throw enoent(from);
    const bytes = await this.readFile(from);
    await this.bucket.put(this.key(to), bytes);
    await this.bucket.remove(this.key(from));
  }

  /**
   * A bucket has no atomic create-if-absent here: the name is looked up, then renamed to. Two
   * writers racing for one name in the same instant can both pass the lookup (a repository's
   * config written by two first backups at once into one new prefix; a local repository's rename
   * is atomic). Until session 30 it threw ENOTSUP, and every backup into a new s3: repository
   * failed once the config went in with it.
   */
  async renameNoReplace(from: string, to: string): Promise<void> {
    if (await this.statIfExists(to)) {
      const error = new Error(`EEXIST: file already exists, rename '${from}' -> '${to}'`) as NodeJS.ErrnoException;
      error.code = 'EEXIST';
      throw error;
    }
    await this.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    if (this.pending.delete(path)) return;
    if ((await this.objectSize(path)) === undefined) throw enoent(path);
    await this.bucket.remove(this.key(path));
  }

  async rmdir(path: string): Promise<void> {
    this.dirs.delete(posix.normalize(`/${path}`));
  }

  async syncDir(): Promise<void> {}

  async removeTree(path: string): Promise<void> {
    const prefix = `${this.key(path).replace(/\/+$/, '')}/`;
    for (const { key } of await this.bucket.list(prefix)) await this.bucket.remove(key);
  }

  async utimes(path: string): Promise<void> {
    throw unsupported('utimes', path);
  }

  private objectSize(path: string): Promise<number | undefined> {
    const file = this.pending.get(path);
    if (file) return file.size();
    return this.bucket.size(this.key(path));
  }
}

/** A file being written: kept in memory until renamed (a temp) or synced (PUT). */
class MemoryFile implements FileHandle {
  private parts: Buffer[] = [];
  private length = 0;
  uploaded = false;

  constructor(readonly path: string, private readonly upload: (bytes: Buffer) => Promise<void>, private readonly temp: boolean) {}

  contents(): Buffer {
    if (this.parts.length !== 1) this.parts = [Buffer.concat(this.parts, this.length)];
    return this.parts[0];
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    const bytes = this.contents();
    const n = Math.max(0, Math.min(length, bytes.length - position));
    bytes.copy(buffer, offset, position, position + n);
    return n;
  }

  async write(data: Buffer, position: number): Promise<void> {
    if (position !== this.length) {
      const bytes = Buffer.alloc(Math.max(this.length, position + data.length));
      this.contents().copy(bytes);
      data.copy(bytes, position);
      this.parts = [bytes];
      this.length = bytes.length;
      return;
    }
    this.parts.push(Buffer.from(data));
    this.length += data.length;
  }

  async writev(parts: Buffer[], position: number): Promise<void> {
    for (const part of parts) {
      await this.write(part, position);
      position += part.length;
    }
  }

  async writevDurable(parts: Buffer[], position: number, written?: () => void): Promise<void> {
    await this.writev(parts, position);
    written?.();
    await this.sync();
  }

  /** A temp file becomes durable by its rename (one PUT); any other file is PUT now. */
  async sync(): Promise<void> {
    if (this.temp) return;
    await this.upload(this.contents());
    this.uploaded = true;
  }

  async truncate(length: number): Promise<void> {
    this.parts = [Buffer.from(this.contents().subarray(0, length))];
    this.length = this.parts[0].length;
  }

  async size(): Promise<number> {
    return this.length;
  }

  async stat(): Promise<FileStat> {
    return fileStat(this.length);
  }

  async close(): Promise<void> {}
}

/** An object read with ranged GETs (restore and check read one record at a time). */
class ObjectReadHandle implements FileHandle {
  constructor(private readonly bucket: Bucket, private readonly key: string, readonly path: string, private readonly bytes: number) {}

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    const n = Math.max(0, Math.min(length, this.bytes - position));
    if (n === 0) return 0;
    const got = await this.bucket.getRange(this.key, position, n);
    got.copy(buffer, offset);
    return got.length;
  }

  async size(): Promise<number> {
    return this.bytes;
  }

  async stat(): Promise<FileStat> {
    return fileStat(this.bytes);
  }

  async close(): Promise<void> {}

  private refuse(): Promise<never> {
    return Promise.reject(unsupported('writing an object in place', this.path));
  }

  write(): Promise<void> { return this.refuse(); }
  writev(): Promise<void> { return this.refuse(); }
  sync(): Promise<void> { return this.refuse(); }
  writevDurable(): Promise<void> { return this.refuse(); }
  truncate(): Promise<void> { return this.refuse(); }
}
