// What quarantine/ holds: damaged or replaced data set aside (torn journal tails, damaged records
// and snapshots, old index and journal directories), never deleted automatically. It is mail or
// evidence an admin must look at and remove by hand, so `stats` and scrub report how much is there.
import { join } from 'node:path';
import type { FileSystem } from '../fs/filesystem.js';
import { LAYOUT } from './identity.js';

export interface QuarantineUse {
  /** Entries directly in quarantine/ (a file or a directory set aside is one). */
  entries: number;
  /** Bytes of every file below it. */
  bytes: number;
}

/** How much quarantine/ holds; none when it is missing. Links are counted, never followed. */
export async function quarantineUse(fs: FileSystem, root: string): Promise<QuarantineUse> {
  const dir = join(root, LAYOUT.quarantine);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  let bytes = 0;
  for (const name of names) bytes += await treeBytes(fs, join(dir, name));
  return { entries: names.length, bytes };
}

async function treeBytes(fs: FileSystem, path: string): Promise<number> {
  const stat = await fs.lstatIfExists(path).catch(() => undefined);
  if (!stat?.isDirectory) return stat?.isFile ? stat.size : 0;
  let bytes = 0;
  for (const name of await fs.readdir(path).catch(() => [] as string[])) bytes += await treeBytes(fs, join(path, name));
  return bytes;
}
