// LevelDB has no read-only open: every open takes its LOCK file for writing and writes a new
// MANIFEST, log and info LOG, which a caller who may read a store but not write it cannot do (and
// a read-only caller must not do anyway). A shadow is a private directory LevelDB may write in:
// the table files, which LevelDB never changes once written, are symlinked from the real index;
// the few small mutable files (CURRENT, MANIFEST, logs) are copied. Whatever LevelDB writes or
// deletes on open (a new MANIFEST, a compacted log, an unlinked symlink) stays in the shadow.
// Like the rest of LevelDB's I/O this bypasses the FileSystem interface: it is node:fs here.
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { processAlive } from './process-files.js';

/** Immutable once written (LevelDB writes a table under a new number, never in place). */
const TABLE_FILE = /^\d+\.(ldb|sst)$/;
/** Rewritten or appended by LevelDB: copied so the shadow's LevelDB may change its copy. */
const MUTABLE_FILE = /^(CURRENT|MANIFEST-\d+|\d+\.log)$/;

export interface LevelShadow {
  path: string;
  /** Removes the shadow (symlinks only: the real table files are not touched). */
  remove(): Promise<void>;
}

/** A shadow's name: the prefix, the pid of the process it belongs to, mkdtemp's random tail. */
const SHADOW_PREFIX = 'mailstore-read-only-';
const SHADOW_NAME = /^mailstore-read-only-([0-9]+)-[^/]+$/;

/** Builds a shadow of the LevelDB database at `source` under the system's temporary directory. */
export async function shadowLevelDb(given: string): Promise<LevelShadow> {
  const source = resolve(given); // a symlink's target is read relative to the shadow, not to the caller's cwd
  const parent = await shadowParent();
  if (parent !== tmpdir()) await removeDeadShadows(parent);
  const path = await fsp.mkdtemp(join(parent, `${SHADOW_PREFIX}${process.pid}-`)).catch((e) => { throw temporaryDirectoryFailure(e); });
  const remove = () => fsp.rm(path, { recursive: true, force: true });
  try {
    const names = await fsp.readdir(source).catch((e) => { throw fromSystemError(e, 'listing the index', source); });
    // CURRENT names the MANIFEST: copied first, so a MANIFEST it names is there when it is read.
    names.sort((a, b) => Number(b === 'CURRENT') - Number(a === 'CURRENT'));
    for (const name of names) {
      const from = join(source, name);
      if (TABLE_FILE.test(name)) await fsp.symlink(from, join(path, name));
      else if (MUTABLE_FILE.test(name)) await fsp.copyFile(from, join(path, name)).catch((e) => { throw fromSystemError(e, 'copying', from); });
      // LOCK, LOG and LOG.old belong to whoever opens the database: the shadow gets its own.
    }
    return { path, remove };
  } catch (error) {
    await remove().catch(() => undefined);
    if (isTemporaryDirectoryFailure(error)) throw error;
    throw fromSystemError(error, 'making a private copy of the index', source);
  }
}

/**
 * This user's directory of shadows in $TMPDIR (mailstore-read-only-uidN, mode 0700): the dead ones
 * are looked for there only, where a look at $TMPDIR itself listed every file in it (on a mail
 * host's shared /tmp, millions) at every read-only open. One that is not this user's own
 * directory, or that others may enter (made by someone else in a shared /tmp), is not trusted:
 * then $TMPDIR itself, with nothing looked for or removed.
 */
async function shadowParent(): Promise<string> {
  const uid = process.getuid?.();
  const dir = join(tmpdir(), `${SHADOW_PREFIX}uid${uid ?? 'none'}`);
  const made = await fsp.mkdir(dir, { mode: 0o700 }).then(() => true, (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw temporaryDirectoryFailure(e);
    return false;
  });
  if (made) return dir;
  const stat = await fsp.lstat(dir).catch(() => undefined);
  return stat?.isDirectory() && stat.uid === uid && (stat.mode & 0o077) === 0 ? dir : tmpdir();
}

/**
 * The shadows in `dir` of this user's processes that are gone: a read-only open killed before it
 * closed (SIGKILL, a cron job's timeout, Ctrl-C) left its copy of the index's log and MANIFEST
 * for good. Only directories (never a link) this user owns, named with a pid no process has.
 * Best effort: a directory that cannot be listed is reported by the mkdtemp that follows.
 */
async function removeDeadShadows(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = SHADOW_NAME.exec(name)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    const stat = await fsp.lstat(join(dir, name)).catch(() => undefined);
    if (!stat?.isDirectory() || stat.uid !== process.getuid?.()) continue;
    await fsp.rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined); // symlinks only: the tables they name are not touched
  }
}

/**
 * $TMPDIR missing, not writable or full: named as such, as a command that could not run (ACCESS,
 * NO_SPACE, else IO; exit 2). A missing one was NOT_FOUND, exit 4 as for a missing mailbox, about
 * "/nonexistent: ENOENT", and the reader's ACCESS on the lock was printed in its place.
 */
function temporaryDirectoryFailure(error: unknown): MailstoreError {
  const dir = tmpdir();
  const system = (error as NodeJS.ErrnoException).code ?? String(error);
  const { code } = fromSystemError(error, 'creating a directory in', dir);
  return new MailstoreError(code === 'ACCESS' || code === 'NO_SPACE' ? code : 'IO',
    `a read-only open copies the index's small files into $TMPDIR (${dir}), which failed: ${system}; set TMPDIR to a directory this user may write (nothing in the store was touched)`,
    { path: dir, cause: error });
}

/** The failure is $TMPDIR's, not the store's: it is reported as it is, never as the read-write open's error before it. */
export function isTemporaryDirectoryFailure(error: unknown): boolean {
  return isMailstoreError(error) && error.path === tmpdir() && error.message.includes('$TMPDIR');
}
