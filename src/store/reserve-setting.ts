// The store's own free-space reserve (src/store/free-space.ts), so that every process opening the
// store (serve, the CLI, a library caller that passes no option) holds the same one. A small
// checksummed file beside STORE, like INLINE-BODIES; absent: the default (the smaller of
// limits.freeSpaceReserveBytesMax and limits.freeSpaceReservePercent of the file system).
// StoreOptions.freeSpaceReserveBytes still wins for one open.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { readSetting, writeSetting, type StoreRoot } from './setting-file.js';

/** The setting's file in the store root (absent: the default reserve). */
export const FREE_SPACE_RESERVE_FILE = 'FREE-SPACE-RESERVE';

/** A reserve a store accepts: a whole number of bytes, 0 (off) or more. */
export function checkReserveBytes(value: unknown, what = 'free space reserve bytes'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new MailstoreError('INVALID', `${what} must be a whole number of bytes, 0 (off) or more, got ${String(value)}`);
  }
  return value;
}

/** The stored reserve, or undefined when the store has none (the default applies). */
export async function readReserveBytes(fs: FileSystem, root: string): Promise<number | undefined> {
  const stored = await readSetting(fs, root, FREE_SPACE_RESERVE_FILE, 'the free space reserve setting');
  if (!stored) return undefined;
  const match = /^free-space-reserve (\d+)$/.exec(stored.text);
  const value = match ? Number(match[1]) : NaN;
  if (!match || !stored.intact || !Number.isSafeInteger(value)) {
    const path = join(root, FREE_SPACE_RESERVE_FILE);
    throw new MailstoreError('CORRUPT', `${path} (the free space reserve setting) is damaged; set it again with 'mailstore config --free-space-reserve N' (or 'default')`, { path });
  }
  return value;
}

/** Stores a reserve (durably), or with undefined removes the setting (the default applies again). */
export async function writeReserveBytes(store: StoreRoot, value: number | undefined): Promise<void> {
  await writeSetting(store, FREE_SPACE_RESERVE_FILE, value === undefined ? undefined : `free-space-reserve ${checkReserveBytes(value)}`, 'the free space reserve setting');
}
