// The daemon's look, every daemonLimits.mountCheckMs, that its store is still where it was opened.
// A file system unmounted lazily under it (`umount -l`, docs/FAULTS.md) leaves every file the
// daemon holds open working on the detached file system, so nothing it does fails until it creates
// a file (the next journal segment, 16 MiB of mail later): it went on answering 250 to LMTP into a
// store that no command could see ("no store at ..."). Seen, the store is stopped (UNMOUNTED) as a
// store that stops itself is: the daemon exits non-zero, and what it acknowledged is on the
// detached file system, durable, there again once it is mounted.
// The store's directory moved away (mv) is seen the same way, and so is another directory moved
// into its place (a restored copy swapped in): the daemon went on delivering into the old one.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileStat, FileSystem } from '../fs/filesystem.js';
import { daemonLimits } from '../limits.js';
import { LAYOUT } from '../store/identity.js';

export interface MountWatch {
  stop(): void;
}

/**
 * Starts looking at `root` (its device and inode now are the ones expected); `onGone` is told once,
 * with the UNMOUNTED error, when the root is missing, on another device, another directory, or
 * without its STORE file. One
 * look at a time: on a hung mount the look waits with it (io-stalled says so) and none piles up.
 */
export async function watchMount(fs: FileSystem, root: string, onGone: (error: MailstoreError) => void): Promise<MountWatch> {
  const opened = await fs.statIfExists(root).catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const look = async (): Promise<void> => {
    timer = undefined;
    // a look that fails (EACCES after a chmod under the daemon, EIO) proves nothing about the
    // mount: the daemon goes on, and the calls that need those files report their own errors
    const why = opened === undefined ? 'it is gone' : await rootMoved(fs, root, opened).catch(() => undefined);
    if (stopped) return;
    if (why) {
      stopped = true;
      return onGone(new MailstoreError('UNMOUNTED', `the store's file system or directory left ${root} while the daemon served it (${why}: unmounted, 'umount -l', or moved away, mv?): ` +
        `the daemon stops; what it acknowledged is in that directory: mount it, or move it back, there again and start the daemon (or start it on the directory's new path)`, { path: root }));
    }
    timer = setTimeout(() => void look(), daemonLimits.mountCheckMs);
    timer.unref();
  };
  timer = setTimeout(() => void look(), daemonLimits.mountCheckMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Why `root` is no longer the store opened on device `device`, or undefined while it is (the test
 * open.ts's mountCheck makes before creating a file, kept apart: that one is on every append's path).
 */
async function rootMoved(fs: FileSystem, root: string, opened: FileStat): Promise<string | undefined> {
  const now = await fs.statIfExists(root);
  if (!now) return 'it is gone';
  if (now.dev !== opened.dev) return `it is on device ${now.dev} now, not ${opened.dev}`;
  if (now.ino !== opened.ino) return `it is another directory now (inode ${now.ino}, not ${opened.ino})`;
  return (await fs.statIfExists(join(root, LAYOUT.identity))) ? undefined : 'its STORE file is gone';
}
