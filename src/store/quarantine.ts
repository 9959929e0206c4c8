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
  /**
   * Set-aside files in the store's root, counted in entries and bytes too: a damaged
   * REPLICATION-PENDING that `promote --quarantine-damaged-pending` kept there as
   * REPLICATION-PENDING.damaged[.N] before session 49 (since, it goes into quarantine/). Absent: none.
   */
  outside?: string[];
}

/** What a promotion before session 49 left in the root beside the file it set aside (promote --quarantine-damaged-pending). */
const OLD_ROOT_QUARANTINE = /^REPLICATION-PENDING\.damaged(\.\d+)?$/;

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
  const outside = (await listQuarantined(fs, root)).filter((name) => OLD_ROOT_QUARANTINE.test(name)).sort();
  for (const name of outside) bytes += await treeBytes(fs, join(root, name));
  return { entries: names.length + outside.length, bytes, ...(outside.length > 0 ? { outside } : {}) };
}

/** Set-aside files in the store's root counted with quarantine/ (an older promotion's), by name, as stats and scrub say it; "" when none. */
export function outsideNote(held: QuarantineUse): string {
  return held.outside?.length ? `, with ${held.outside.join(', ')} in the store's root` : '';
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
