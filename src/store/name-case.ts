// Whether a store's directory is on a file system whose names ignore case (exFAT and FAT, as on a
// USB disk; SMB shares; ext4's casefold directories), where `LOCK` (the owner's pid) and `lock/`
// (the kernel lock) are one name. Loaded only by init (before the modes are checked: on exFAT every
// directory is 0777 and chmod changes nothing) and by a lock that failed EISDIR.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { LAYOUT } from './identity.js';

/** `name` in upper case, or in lower case when it has no lower-case letter; undefined when case does not change it. */
function otherCase(name: string): string | undefined {
  const upper = name.toUpperCase();
  const other = upper !== name ? upper : name.toLowerCase();
  return other !== name ? other : undefined;
}

/**
 * Whether the file system holding `dir` ignores case in names: `name`, an entry of `dir`, is found
 * under another case that the listing lacks. Told by the name, not by the inode: exfat-fuse gives
 * each spelling its own inode number.
 */
export async function namesIgnoreCase(fs: FileSystem, dir: string, name: string): Promise<boolean> {
  const other = otherCase(name);
  if (!other || !(await fs.lstatIfExists(join(dir, other)).catch(() => undefined))) return false;
  return !(await fs.readdir(dir).catch(() => [other])).includes(other);
}

/** Until session 50 taking the lock there failed IO EISDIR, after init had written STORE. */
function namesFoldedError(root: string, doing: 'init' | 'open'): MailstoreError {
  const remedy = doing === 'init'
    ? 'Nothing was written. Keep the store on a file system that tells case apart (ext4, XFS, btrfs); a backup repository (mailstore backup --repo) works on exFAT'
    : 'Nothing was changed. Copy the store back onto a file system that tells case apart (ext4, XFS, btrfs) and open it there; to carry a store on such a disk, back it up there (mailstore backup --repo) and restore it';
  return new MailstoreError('INVALID', `${root} is on a file system whose names ignore upper and lower case (exFAT or FAT, as on a USB disk; an SMB share; an ext4 casefold directory): a store needs ${LAYOUT.lock} and ${LAYOUT.lockDb}/ to be two names, so it cannot ${doing === 'init' ? 'be made' : 'be opened'} there. ${remedy}`, { path: root });
}

/** At init of `root`: INVALID when `name` in `dir` is found under another case (`undo` first removes what init made). */
export async function refuseNamesIgnoringCase(fs: FileSystem, dir: string, name: string, root: string, undo?: () => Promise<void>): Promise<void> {
  if (!(await namesIgnoreCase(fs, dir, name))) return;
  await undo?.();
  throw namesFoldedError(root, 'init');
}

/** LOCK found to be a directory (EISDIR): where names ignore case, it is lock/. */
export async function refuseFoldedLock(fs: FileSystem, root: string): Promise<void> {
  if (await namesIgnoreCase(fs, root, LAYOUT.lockDb)) throw namesFoldedError(root, 'open');
}
