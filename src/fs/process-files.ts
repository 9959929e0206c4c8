// Whether a process has a given file open, from /proc/PID/fd: for a reader that cannot take the
// kernel lock and must tell a writer of this very store from a writer of the store it was copied from.
// And whether a process runs at all: LOCK's owner, a dead read-only open's copy of the index.
import { promises as fsp } from 'node:fs';
import { limits } from '../limits.js';

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

/**
 * What a process runs, for a LOCKED message that tells the admin which command holds the store or
 * repository ("process 4711 (mailstore compact)"), from its argument vector: `mailstore ARGS` for
 * the CLI (its entry script, or the package's wrapper), else the program's name and arguments.
 * One line of at most limits.lockHolderCommandCharsMax characters, with no parentheses (it is quoted inside them)
 * and control characters shown as `?`.
 */
export function describeCommandLine(argv: readonly string[]): string | undefined {
  const charsMax = limits.lockHolderCommandCharsMax;
  const entry = argv.findIndex((arg, i) => i > 0 && /(^|\/)(mailstore|dist\/src\/cli\/main\.c?js|src\/cli\/main\.ts)$/.test(arg));
  const words = entry > 0 ? ['mailstore', ...argv.slice(entry + 1)] : [...argv.slice(0, 1).map((arg) => arg.split('/').pop() ?? arg), ...argv.slice(1)];
  const text = words.join(' ').replace(/[\x00-\x1f\x7f]/g, '?').replace(/\(/g, '[').replace(/\)/g, ']').trim();
  if (text === '') return undefined;
  return text.length > charsMax ? `${text.slice(0, charsMax - 3)}...` : text;
}

/**
 * The command line of a running process (/proc/PID/cmdline) as describeCommandLine gives it;
 * undefined where it cannot be read (no /proc, hidepid, the process gone, a kernel thread).
 */
export async function processCommand(pid: number): Promise<string | undefined> {
  const bytes = await fsp.readFile(`/proc/${pid}/cmdline`).catch(() => undefined);
  if (!bytes || bytes.length === 0) return undefined;
  const argv = bytes.toString('utf8').split('\0');
  if (argv.at(-1) === '') argv.pop();
  return describeCommandLine(argv);
}
