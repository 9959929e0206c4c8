// The files a store directory holds before any open takes it (a replica being made writes
// REPLICATION beside the STORE it just wrote or found; rebuild-from-bucket its OBJECT-STORE beside
// the REBUILDING it wrote first): written through setting-file.ts as an open store's are, with the
// one mount check possible without an open. Apart so that an open does not load it.
import { join, resolve } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { unmountedMountPointAbove } from '../fs/mounts.js';
import { LAYOUT } from './identity.js';
import type { StoreRoot } from './setting-file.js';

/** UNMOUNTED unless the directory still holds `marker` (its STORE; a store being assembled: the file it wrote first). */
export function unopenedRoot(fs: FileSystem, root: string, marker: string = LAYOUT.identity): StoreRoot {
  return {
    fs, root, checkMounted: async (path) => {
      if (!(await fs.statIfExists(join(root, marker)).catch(() => undefined))) {
        throw new MailstoreError('UNMOUNTED', `${path}: ${root} holds no ${marker} any more (unmounted?); nothing was written: mount it there again`, { path });
      }
    },
  };
}

/**
 * UNMOUNTED when `root` is at or under a mount point /etc/fstab names with nothing mounted on it: the
 * store's partition did not mount, and a store made in the empty mount point (on the file system
 * below) would take mail that the mount hides later (README, "Upgrading"): init and a new replica ask.
 */
export async function refuseUnmountedMountPoint(fs: FileSystem, root: string): Promise<void> {
  const unmounted = await unmountedMountPointAbove(fs, resolve(root));
  if (!unmounted) return;
  throw new MailstoreError('UNMOUNTED', `${root} is at or under ${unmounted.mountPoint}, a mount point in /etc/fstab (${unmounted.source}) with nothing mounted on it: ` +
    `a store made there would be hidden, with its mail, once the partition mounts. Mount it (findmnt, mount ${unmounted.mountPoint}) and run init again; ` +
    `for a store on the file system below, take that line out of /etc/fstab. Nothing was created.`, { path: root });
}
