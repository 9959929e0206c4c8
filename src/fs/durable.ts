// The one durable save sequence (after restic): write a temp file, check its length, fsync it,
// rename it over the target, fsync the directory. Used for every small file we replace whole.
import { dirname, basename, join } from 'node:path';
import type { FileHandle, FileSystem } from './filesystem.js';

/** Temp names are unique within the process, so two saves of one path never share a temp file. */
let tempCounter = 0;

/**
 * The temp file is created exclusively (O_EXCL never follows a link planted at its name; a stale
 * one left by a crashed process with the same pid is removed first), and removed again when any
 * step before the rename fails: a failed save leaves the old file and nothing else.
 */
export async function writeFileDurable(fs: FileSystem, path: string, data: Buffer | Buffer[]): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tempCounter}.tmp`);
  const handle = await openExclusive(fs, temp);
  try {
    try {
      // parts: written as they are (a backup's data file), not copied into one buffer first
      const length = Array.isArray(data) ? data.reduce((sum, part) => sum + part.length, 0) : data.length;
      if (Array.isArray(data)) await handle.writev(data, 0);
      else await handle.write(data, 0);
      if ((await handle.size()) !== length) throw Object.assign(new Error(`length check failed for ${temp}`), { code: 'EIO' });
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, path);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
  await fs.syncDir(dirname(path));
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

/** Creates a directory if missing and makes its entry durable. Returns true when it was created. */
export async function ensureDir(fs: FileSystem, path: string): Promise<boolean> {
  if (await fs.statIfExists(path)) return false;
  await fs.mkdir(path);
  await fs.syncDir(dirname(path));
  return true;
}
