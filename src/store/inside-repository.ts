// A new store (init, restore --to) inside a backup repository: restore --to REPO/restored made a
// whole live store in the repository it came from, lost with it (a new one made in its place, its
// disk) and copied off-site with it. Apart from identity.ts: only init and restore load it.
import { basename, dirname, join, resolve } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';

/** INVALID when `real` (the resolved `dir`) is inside a backup repository, naming it; nothing is made. */
export async function refuseStoreInsideRepository(fs: FileSystem, dir: string, real: string): Promise<void> {
  const repository = await enclosingRepository(fs, real);
  if (!repository) return;
  throw new MailstoreError('INVALID', `${dir} is inside the backup repository at ${repository.root} (under its ${repository.entry}/): a store goes in a directory of its own, ` +
    `outside the repository it is restored from (give --to a new directory beside it, on the disk the store is to live on). Nothing was made.`, { path: dir });
}

/** The backup repository that `path` is inside (its `config`, whose first line names the format: docs/BACKUP.md), and the entry of its directory on the way. */
async function enclosingRepository(fs: FileSystem, path: string): Promise<{ root: string; entry: string } | undefined> {
  for (let below = resolve(path), at = dirname(below); at !== below; below = at, at = dirname(at)) {
    const config = await fs.readFile(join(at, 'config')).catch(() => undefined);
    if (config?.subarray(0, 200).toString('latin1').startsWith('{"format":"mailstore-backup"')) return { root: at, entry: basename(below) };
  }
  return undefined;
}
