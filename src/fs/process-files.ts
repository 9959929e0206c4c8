// Whether a process has a given file open, from /proc/PID/fd: for a reader that cannot take the
// kernel lock and must tell a writer of this very store from a writer of the store it was copied from.
// And whether a process runs at all: LOCK's owner, a dead read-only open's copy of the index.
import { promises as fsp } from 'node:fs';

/**
 * True when process `pid` holds `path` open (the same device and inode: a snapshot or copy of the
 * file has another), false when it holds no such file, undefined when that cannot be seen (no
 * /proc, or another user's process without the right to look).
 */
export async function processHoldsFile(pid: number, path: string): Promise<boolean | undefined> {
  const target = await fsp.stat(path).catch(() => undefined);
  const fds = await fsp.readdir(`/proc/${pid}/fd`).catch(() => undefined);
  if (!target || !fds) return undefined;
  for (const fd of fds) {
    const open = await fsp.stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
    if (open && open.dev === target.dev && open.ino === target.ino) return true;
  }
  return false;
}

/** True while a process with this pid exists (another user's too: EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by another user
  }
}
