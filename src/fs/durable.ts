// The one durable save sequence (after restic): write a temp file, check its length, fsync it,
// rename it over the target, fsync the directory. Used for every small file we replace whole.
import { dirname, basename, join } from 'node:path';
import type { FileSystem } from './filesystem.js';

export async function writeFileDurable(fs: FileSystem, path: string, data: Buffer): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const handle = await fs.open(temp, 'createOrOpen');
  try {
    await handle.truncate(0);
    await handle.write(data, 0);
    if ((await handle.size()) !== data.length) throw Object.assign(new Error(`length check failed for ${temp}`), { code: 'EIO' });
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, path);
  await fs.syncDir(dirname(path));
}

/** Creates a directory if missing and makes its entry durable. Returns true when it was created. */
export async function ensureDir(fs: FileSystem, path: string): Promise<boolean> {
  if (await fs.statIfExists(path)) return false;
  await fs.mkdir(path);
  await fs.syncDir(dirname(path));
  return true;
}
