// Before `mailstore backup` makes a new repository (none at --repo: a missing or empty directory):
// is this really a new backup place, or a backup disk that did not mount? An unmounted disk leaves
// its empty mount point, and a repository made there copies the whole store onto the parent file
// system (often the root disk or the store's own, which then fills under the live spool) while the
// nightly job reports success and the real repository is never written again (issue 14). Refused,
// with nothing written, when the store recorded a repository at that path (BACKUPS) or /etc/fstab
// names a mount point there with nothing mounted; docs/BACKUP.md, "A repository that is not there".
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { existingAncestor, unmountedMountPointAbove, type UnmountedMountPoint } from '../fs/mounts.js';
import type { BackupRecords } from '../store/backup-records.js';

export interface NewRepositoryCheck {
  /** --repo as the store records it: an absolute directory, or an s3: URL. */
  location: string;
  /** The directory, for a repository on this host's file systems (not an s3: one). */
  localDir?: string;
  /** The store's directory (a new repository on its file system is warned about). */
  storeRoot: string;
  records: BackupRecords;
  /** --new-repository: the admin means a new repository there. */
  allowNew: boolean;
}

const REMEDY = 'mount the backup disk (findmnt, mount) and run the backup again; to start a new repository there on purpose, add --new-repository. Nothing was written.';

/**
 * Throws (UNMOUNTED, REFUSED) when no new repository may be made at the location; else the warning
 * to give once it is made (on the store's own disk), if any.
 */
export async function checkNewRepository(fs: FileSystem, check: NewRepositoryCheck): Promise<string | undefined> {
  if (!check.allowNew) {
    refuseRecorded(check);
    if (check.localDir !== undefined) {
      const unmounted = await unmountedMountPointAbove(fs, check.localDir);
      if (unmounted) throw unmountedRepositoryError(check.localDir, unmounted, `a repository made there would fill the file system below it, not the backup disk; ${REMEDY}`);
    }
  }
  return check.localDir === undefined ? undefined : sameFileSystemWarning(fs, check.localDir, check.storeRoot);
}

/** UNMOUNTED: no repository at `dir`, at or under an /etc/fstab mount point with nothing mounted on it; `remedy` is the command's. */
export function unmountedRepositoryError(dir: string, unmounted: UnmountedMountPoint, remedy: string): MailstoreError {
  return new MailstoreError('UNMOUNTED', `no backup repository at ${dir}, and it is at or under ${unmounted.mountPoint}, a mount point in /etc/fstab (${unmounted.source}) with nothing mounted on it: ${remedy}`, { path: dir });
}

function refuseRecorded(check: NewRepositoryCheck): void {
  const { records, damaged } = check.records;
  if (damaged) {
    throw new MailstoreError('REFUSED', `no backup repository at ${check.location}, and the store's record of its backups (${damaged}) is damaged, so it cannot tell whether one was there: ${REMEDY}`, { path: damaged });
  }
  const here = records.filter((r) => r.path === check.location).sort((a, b) => b.time - a.time)[0];
  if (!here) return;
  throw new MailstoreError('UNMOUNTED', `no backup repository at ${check.location} (a missing or empty directory), but this store backed up into repository ${here.id} there, ` +
    `last snapshot ${here.snapshot.slice(0, 12)} at ${new Date(here.time).toISOString()}: is its disk mounted? ${REMEDY}`, { path: check.location });
}

async function sameFileSystemWarning(fs: FileSystem, dir: string, storeRoot: string): Promise<string | undefined> {
  const [place, store] = await Promise.all([existingAncestor(fs, dir).then((at) => fs.statIfExists(at.dir)), fs.statIfExists(storeRoot)]).catch(() => []);
  if (!place || !store || place.dev !== store.dev) return undefined;
  return `WARNING: the new backup repository ${dir} is on the same file system as the store ${storeRoot}: it is lost with that disk, and its copy of every message takes the store's free space; keep backups on another disk or host`;
}
