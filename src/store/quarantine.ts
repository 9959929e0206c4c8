// What quarantine/ holds: damaged or replaced data set aside (torn journal tails, damaged records
// and snapshots, old index and journal directories), never deleted automatically. It is mail or
// evidence an admin must look at and remove by hand, so `stats` and scrub report how much is there.
import { join } from 'node:path';
import { fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { LAYOUT } from './identity.js';

export interface QuarantineUse {
  /** Entries directly in quarantine/ (a file or a directory set aside is one). */
  entries: number;
  /** Bytes of every file below it. */
  bytes: number;
}

/**
 * How much quarantine/ holds; none when it is missing. Links are counted, never followed. A part
 * the caller may not read is ACCESS (IO for a failing disk) naming it, as an unreadable pack or
 * snapshots/ is: it was taken for empty, and the notice that mail waits there was never said.
 */
export async function quarantineUse(fs: FileSystem, root: string): Promise<QuarantineUse> {
  const dir = join(root, LAYOUT.quarantine);
  const names = await listQuarantined(fs, dir);
  let bytes = 0;
  for (const name of names) bytes += await treeBytes(fs, join(dir, name));
  return { entries: names.length, bytes };
}

async function treeBytes(fs: FileSystem, path: string): Promise<number> {
  const stat = await fs.lstatIfExists(path).catch((error: unknown) => { throw quarantineReadError(error, path); });
  if (!stat?.isDirectory) return stat?.isFile ? stat.size : 0;
  let bytes = 0;
  for (const name of await listQuarantined(fs, path)) bytes += await treeBytes(fs, join(path, name));
  return bytes;
}

/** The names in a directory of quarantine/; none when it is gone (removed by hand meanwhile). */
function listQuarantined(fs: FileSystem, dir: string): Promise<string[]> {
  return fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return [] as string[];
    throw quarantineReadError(error, dir);
  });
}

function quarantineReadError(error: unknown, path: string) {
  return fromSystemError(error, 'counting what quarantine/ holds (damaged or replaced data set aside, for an admin to look at): cannot read', path);
}
