// The daemon's socket file and log file: the few file operations the daemon needs beyond the
// FileSystem interface (mode and group of a socket, an append-only log that SIGHUP reopens).
import { appendFileSync, createWriteStream, promises as fsp, statSync, type WriteStream } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import { daemonLimits } from '../limits.js';
import { answeredWithin } from '../within.js';
import { journalPrefix } from './journal-stream.js';
import { monotonicMs } from '../monotonic.js';

const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;

/** What is at `path`: nothing, a socket, or something else (never replaced). */
export async function socketFileKind(path: string): Promise<'none' | 'socket' | 'other'> {
  try {
    const stat = await fsp.lstat(path);
    return (stat.mode & S_IFMT) === S_IFSOCK ? 'socket' : 'other';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'none';
    throw fromSystemError(error, 'looking at the socket path', path);
  }
}

/** What is at `path`, INVALID when it is no socket: a stale socket may be replaced, any other file never. */
export async function refuseNonSocket(path: string, instead: string): Promise<'none' | 'socket'> {
  const kind = await socketFileKind(path);
  if (kind === 'other') throw new MailstoreError('INVALID', `${path} exists and is not a socket; not replacing it (choose another ${instead})`, { path });
  return kind;
}

export async function removeSocketFile(path: string): Promise<void> {
  await fsp.unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw fromSystemError(error, 'removing the stale socket', path);
  });
}

/**
 * Creates the socket's directory (and parents) when missing. Each one it creates is 0755 whatever
 * the umask: under an admin shell's 077 they came out 0700, and the group the socket is for could
 * not reach it (the parents too: chmod of the last one alone left them 0700).
 */
export async function ensureSocketDirectory(path: string): Promise<void> {
  const created = await fsp.mkdir(path, { recursive: true, mode: 0o755 }).catch((error) => { throw fromSystemError(error, 'creating the socket directory', path); });
  if (created === undefined) return;
  // mkdir names the first one as it spelled it ('/a//b/'): compared resolved, never a directory above it
  const first = resolve(created);
  for (let dir = resolve(path); dir === first || dir.startsWith(first + sep); dir = dirname(dir)) {
    await fsp.chmod(dir, 0o755).catch((error) => { throw fromSystemError(error, 'setting the mode of the socket directory', dir); });
  }
}

/**
 * ACCESS when another user could take the place of `path` (`what`: 'the socket', 'the log'): its
 * directory is writable by others (sticky or not: /tmp, where a file of theirs made while the
 * daemon is down stays) or belongs to a user other than this process's or root. `risk` says what
 * they could then do: clients connect to whatever socket answers there, and a log is appended to
 * whatever file or link is there.
 */
export async function refuseSharedDirectory(path: string, what: string, risk: string): Promise<void> {
  const dir = dirname(path);
  const stat = await fsp.stat(dir).catch((error) => { throw fromSystemError(error, `looking at the directory of ${what}`, dir); });
  const self = process.getuid?.();
  const why = (stat.mode & 0o002) !== 0 ? `may be written by other users (mode ${(stat.mode & 0o7777).toString(8)})`
    : self !== undefined && stat.uid !== self && stat.uid !== 0 ? `belongs to another user (uid ${stat.uid})` : undefined;
  if (why === undefined) return;
  throw new MailstoreError('ACCESS', `${what}'s directory ${dir} ${why}: they could ${risk.replace('PATH', path)}; use a directory only this user (or root) may write`, { path: dir });
}

export const SOCKET_RISK = 'put a socket of their own at PATH and receive what clients send';

/**
 * Runs `listen` (which binds a unix socket before it returns) with the umask that makes the
 * socket 0660 from the first instant, whatever the process's umask: no moment in which others may
 * connect, and the group's members always may. The umask is the whole process's: it is changed
 * only around this synchronous call, never across an await (until session 30 it was, and a
 * directory the store made meanwhile, a pack's or the quarantine's, came out 0640).
 */
export function withSocketUmask<T>(listen: () => T): T {
  const umask = process.umask(0o117);
  try {
    return listen();
  } finally {
    process.umask(umask);
  }
}

/** Sets the socket's mode and, when given, its group (a name from /etc/group or a number). */
export async function setSocketAccess(path: string, mode: number, group?: string): Promise<void> {
  await fsp.chmod(path, mode).catch((error) => { throw fromSystemError(error, 'setting the mode of the socket', path); });
  if (group === undefined) return;
  const gid = await groupId(group);
  await fsp.chown(path, -1, gid).catch((error) => { throw fromSystemError(error, `giving the socket to group ${group}`, path); });
}

async function groupId(group: string): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number(group);
  const text = await fsp.readFile('/etc/group', 'utf8').catch((error) => { throw fromSystemError(error, 'reading', '/etc/group'); });
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && /^[0-9]+$/.test(gid ?? '')) return Number(gid);
  }
  throw new MailstoreError('INVALID', `--socket-group: no group named ${JSON.stringify(group)} in /etc/group`, { path: '/etc/group' });
}

/** A failed write of the log, on stderr with the code its cause has (ACCESS, NO_SPACE, IO…), as every other error says it. */
function reportLogFailure(error: unknown, path: string): void {
  // mail goes on: what the full disk costs is log lines, counted once the log takes them again
  const outcome = 'the daemon goes on serving, and the lines lost meanwhile are counted in the log once it writes again (log-lines-lost)';
  const failure = fromSystemError(error, 'writing the log', path, outcome);
  const said = failure.message.includes(outcome) ? '' : `; ${outcome}`; // ACCESS and IO have no outcome of their own: read as the end
  process.stderr.write(`${journalPrefix('error')}mailstore: ${failure.code}: ${failure.message}${said}\n`);
}

/** An append-only log file; reopen() after logrotate moved it (SIGHUP). */
export class LogFile {
  private stream: WriteStream;
  /**
   * monotonicMs() when the stream failed (ENOSPC, EIO): node destroyed it, and every later
   * write went nowhere until a SIGHUP, also once the disk had room again.
   */
  private failedAt?: number;
  /** Writes dropped since the failure, told in the first line after the reopen. */
  private dropped = 0;

  constructor(readonly path: string) {
    this.stream = this.open();
  }

  /** The texts given to the stream whose write has not called back yet, in order (for writeNow). */
  private unwritten: string[] = [];

  private open(): WriteStream {
    const stream = createWriteStream(this.path, { flags: 'a', mode: 0o640 });
    this.unwritten = [];
    stream.on('error', (error) => {
      if (stream === this.stream) this.failedAt ??= monotonicMs();
      reportLogFailure(error, this.path);
    });
    return stream;
  }

  /** Writes dropped because the file took none of the logPendingBytesMax handed to it (a hung mount). */
  private held = 0;

  write(text: string): void {
    if (this.failedAt === undefined && this.stream.writableLength >= daemonLimits.logPendingBytesMax) {
      this.held++;
      return;
    }
    if (this.held > 0) {
      const note = JSON.stringify({ time: new Date().toISOString(), level: 'warn', event: 'log-lines-lost', writesDropped: this.held, why: `the log file took no lines for a while (a hung mount?): the daemon holds at most ${daemonLimits.logPendingBytesMax} bytes of them` });
      this.held = 0;
      text = `${note}\n${text}`;
    }
    if (this.failedAt !== undefined) {
      if (monotonicMs() - this.failedAt < daemonLimits.logReopenMs) {
        this.dropped++;
        return;
      }
      const note = JSON.stringify({ time: new Date().toISOString(), level: 'warn', event: 'log-lines-lost', writesDropped: this.dropped, why: 'writing the log failed (see stderr); lines written as it failed may be lost too' });
      this.failedAt = undefined;
      this.dropped = 0;
      this.stream = this.open();
      // the failed write may have left half a line: the line break ends it, the note says why
      text = `\n${note}\n${text}`;
    }
    const unwritten = this.unwritten;
    unwritten.push(text);
    this.stream.write(text, () => unwritten.shift()); // a stream writes in order
  }

  /**
   * Appends synchronously, for the process's 'exit' (no callback runs after it), after the text the
   * stream was given and still holds: it never wrote that once the process exited, so a daemon that
   * logged an error and exited at once (before the stream had even opened the file) lost the line.
   * Only a write already in flight may land after it; a line that cannot be written is reported on
   * stderr.
   */
  writeNow(text: string): void {
    // the first of those may be in a write already, once the file is open
    const held = this.unwritten.slice(this.stream.pending ? 0 : 1).join('');
    this.stream.destroy(); // what it held is written here, never twice
    if (held.length + text.length === 0) return;
    try {
      appendFileSync(this.path, held + text, { mode: 0o640 });
    } catch (error) {
      reportLogFailure(error, this.path);
    }
  }

  /** Streams replaced by a reopen, still writing what they were given before it (close waits for them). */
  private ending: Promise<void>[] = [];

  reopen(): void {
    const old = this.stream;
    this.failedAt = undefined;
    this.stream = this.open();
    const ended: Promise<void> = new Promise<void>((resolve) => old.end(resolve)).then(() => { this.ending = this.ending.filter((e) => e !== ended); });
    this.ending.push(ended);
  }

  /** Ends the stream, after the lines given to streams a reopen replaced reached their (renamed) files. */
  async close(): Promise<void> {
    const ended = Promise.all(this.ending).then(() => new Promise<void>((resolve) => this.stream.end(resolve)));
    const done = await answeredWithin(ended, daemonLimits.logCloseWaitMs);
    // a hung mount: waiting for it held the daemon's exit until systemd killed it (TimeoutStopSec)
    if (!done) process.stderr.write(`${journalPrefix('error')}mailstore: IO: the log ${this.path} took no lines for ${daemonLimits.logCloseWaitMs / 1000} s (a hung mount?): its last lines are lost\n`);
  }
}

/**
 * The inode of the socket at `path`, or undefined: looked at in the thread pool, so that on a hung
 * mount the main thread stays free to start the stall watch (stall-watch.ts), which says so.
 */
export function socketInode(path: string): Promise<number | undefined> {
  return fsp.stat(path).then((stat) => stat.ino, () => undefined);
}

/** The inode of the socket at `path` now, or undefined (synchronous: asked from inside a lock-wait callback). */
export function socketInodeNow(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
