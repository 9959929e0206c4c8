// What every command shares: where the store is, opening and always closing it, and writing
// results for people (plain lines) or scripts (--json) without losing bytes on a pipe.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { Client } from '../client/client.js';
import { defaultSocketPath } from '../client/socket-path.js';
import { isTemporaryDirectoryFailure } from '../fs/level-shadow.js';
import { socketInode, socketInodeNow } from '../fs/socket-file.js';
import { journalPrefix } from '../fs/journal-stream.js';
import { otherOwnerOfRootsStore } from '../fs/store-owner.js';
import { writeAllSync } from '../fs/stdout-file.js';
import { daemonLimits, limits } from '../limits.js';
import { jsonText, printable } from '../printable.js';
import { EXIT } from './exit-codes.js';
import { stopWaitingIfInterrupted } from './interrupt.js';
import { stdoutDirect } from './std-streams.js';
import type { MailStore } from '../store/api.js';
import type { Store, StoreOptions } from '../store/store.js';
import { normalizeDate, parseDateText } from '../store/validate.js';
import { monotonicMs } from '../monotonic.js';

export const DEFAULT_STORE_DIR = './mailstore-data';

/** --store DIR, else $MAILSTORE_DIR, else ./mailstore-data; always absolute. */
export function storeDir(command: Command): string {
  const option = command.optsWithGlobals().store as string | undefined;
  const from = option !== undefined ? '--store is empty' : 'MAILSTORE_DIR is set but empty';
  return absolutePath(option ?? process.env.MAILSTORE_DIR ?? DEFAULT_STORE_DIR, from);
}

/**
 * A path from the command line or the environment, made absolute. A relative one is read against
 * the current directory, which may have been deleted under the shell: path.resolve then threw
 * ENOENT from uv_cwd, which the CLI printed as INTERNAL (a bug) instead of saying what to do.
 */
export function absolutePath(path: string, empty = 'an empty path was given'): string {
  // resolve('') is the current directory: a script's unset variable (--store "$SPOOL") made init
  // create a store wherever the shell stood, and every other command use the store found there
  if (path === '') throw new MailstoreError('INVALID', `${empty} (an unset variable in a script?): name the directory or file`);
  try {
    return resolve(path);
  } catch (error) {
    throw new MailstoreError('NOT_FOUND', `cannot find ${JSON.stringify(path)}: it is relative and the current directory no longer exists (deleted); give an absolute path or cd into a directory that exists`, { path, cause: error });
  }
}

/** A command opens the store for one task: it takes no automatic snapshot (`mailstore snapshot` does, for cron). */
const ONE_SHOT: StoreOptions = { autoSnapshot: false };

/**
 * Store.open, with the store's modules (LevelDB's binding among them) loaded only now: a command
 * that goes through a daemon, or fails before it opens the store, never loads them (issue 16).
 */
async function openStore(dir: string, options: StoreOptions): Promise<Store> {
  if (!options.readOnly) refuseRootInOthersStore(dir); // a read-only open writes nothing in the store (its index shadow is in the system's tmpdir)
  const { Store, openNotices } = await import('../store/store.js');
  const store = await Store.open(dir, options);
  // what recovery did goes to stderr, so stdout (and --json) stays the command's own
  for (const notice of openNotices(store.health)) process.stderr.write(`${journalPrefix('warn')}mailstore: ${printable(notice)}\n`);
  return store;
}

/**
 * Runs `work` on the store and closes it whatever happened (the lock must go). When a daemon serves
 * the store (it answers on STORE/run/mailstore.sock), `work` gets a Client of it: the command goes
 * through the daemon, never LOCKED beside it. Otherwise the store is opened here, waiting for
 * another holder as --wait says (and going through a daemon that starts meanwhile).
 */
export async function withStore<T>(command: Command, work: (store: MailStore) => Promise<T>, options: StoreOptions = {}): Promise<T> {
  return withHandle(command, work, (dir, wait) => openStore(dir, { ...wait, ...ONE_SHOT, ...options }));
}

/** withStore for a store another option names (restore --to): through its daemon when one serves it. */
export async function withStoreAt<T>(dir: string, command: Command, work: (store: MailStore) => Promise<T>): Promise<T> {
  const handle = await openHandle(dir, lockWaitOptions(command), (d, wait) => openStore(d, { ...wait, ...ONE_SHOT }));
  try {
    stopWaitingIfInterrupted(); // as withHandle
    return await work(handle);
  } finally {
    await handle.close();
  }
}

/**
 * withStore for commands that only read (fetch, messages, search, mailbox list/status/dump, stats,
 * usage, quota get/list, acl get/list, export, backup, a check-only scrub without --time-budget).
 * When the caller may read the store but not write it (ACCESS: also a store on read-only media, a
 * squashfs image or a read-only snapshot of the spool), or the disk is full (NO_SPACE), the
 * store is opened read-only instead: nothing is written, and an index that would need recovery is
 * REFUSED rather than served stale (Store.open's readOnly; README, "Read-only open"). A writable
 * store is opened read-write, so a read after a crash still gets recovery. A scrub with
 * --time-budget or --repair is not among them: it writes its cursor, and a repair needs the writer.
 */
export async function withReadStore<T>(command: Command, work: (store: MailStore) => Promise<T>, options: StoreOptions = {}): Promise<T> {
  return withHandle(command, work, async (dir, wait) => {
    // root reading the service user's store (its daemon stopped): a read-write open would leave
    // root's files there (refused); a read-only one writes nothing, so it is what runs
    if (otherOwnerOfRootsStore(dir) && process.env.MAILSTORE_ALLOW_ROOT !== '1') return openStore(dir, { ...wait, ...ONE_SHOT, ...options, readOnly: true });
    try {
      return await openStore(dir, { ...wait, ...ONE_SHOT, ...options });
    } catch (error) {
      if (!isMailstoreError(error, 'ACCESS') && !isMailstoreError(error, 'NO_SPACE')) throw error;
      return openStore(dir, { ...wait, ...ONE_SHOT, ...options, readOnly: true }).catch((second: unknown) => {
        // REFUSED, LOCKED or CORRUPT say more than the first error; the same trouble again does not.
        const same = isMailstoreError(second) && ['ACCESS', 'NO_SPACE', 'IO'].includes(second.code) && !isTemporaryDirectoryFailure(second);
        throw same ? error : second;
      });
    }
  });
}

type LockWaitOptions = Pick<StoreOptions, 'lockWaitMs' | 'onLockWait'>;

/** Thrown from inside the lock wait to ask the daemon again (its socket appeared, or it may have a free connection now). */
class DaemonStarted extends Error {}

async function withHandle<T>(command: Command, work: (store: MailStore) => Promise<T>, open: (dir: string, wait: LockWaitOptions) => Promise<Store>): Promise<T> {
  const handle = await openHandle(storeDir(command), lockWaitOptions(command), open);
  try {
    stopWaitingIfInterrupted(); // a stop the wait had no retry left to see (sighup-ignored.test.ts)
    return await work(handle);
  } finally {
    await handle.close();
  }
}

/** Thrown by withDaemon's open: no process holds the store, so no daemon will answer for it. */
class NoDaemon extends Error {}

/**
 * withStore that never opens the store here, for a job that must not hold the store against the
 * daemon (the nightly scrub: a daemon started while it held the lock failed LOCKED until it ended):
 * `work` gets a Client of the daemon serving the store. A process that holds the store but does not
 * answer yet (a daemon recovering before it binds its socket) is waited for as --wait says; one that
 * never answers is LOCKED. Returns undefined, having opened nothing, when no process holds the store.
 */
export async function withDaemon<T>(command: Command, work: (store: MailStore) => Promise<T>): Promise<{ result: T } | undefined> {
  const dir = storeDir(command);
  let handle: MailStore;
  try {
    handle = await openHandle(dir, lockWaitOptions(command), async (root, wait) => {
      const { checkNoWriter, verifyIdentity } = await import('../store/identity.js'); // they read STORE and LOCK; take nothing, write nothing
      const { stagedJournalToFinish } = await import('../store/resync.js');
      const { nodeFileSystem } = await import('../fs/node-fs.js');
      // no store there (a partition not mounted, a wrong --store): refused as an open would, never
      // "skipped", which a nightly job counts as success for as long as nobody looks
      await verifyIdentity(nodeFileSystem, root, { stagedJournal: () => stagedJournalToFinish(nodeFileSystem, root) });
      const { lockHolder } = await import('./silent-daemon.js');
      await checkNoWriter(nodeFileSystem, root, { waitMs: wait.lockWaitMs, onWaiting: wait.onLockWait }).catch((error: unknown) => {
        if (!isMailstoreError(error, 'LOCKED')) throw error;
        throw new MailstoreError('LOCKED', `the store at ${root} is in use by ${lockHolder(error)} (LOCK), and no daemon answers at ${daemonSocketPath(root)}: ` +
          `a daemon started with --socket PATH is found through MAILSTORE_SOCKET=PATH (with the package: in /etc/default/mailstore); nothing was opened here`, { path: root, cause: error });
      });
      throw new NoDaemon();
    });
  } catch (error) {
    if (error instanceof NoDaemon) return undefined;
    throw error;
  }
  try {
    return { result: await work(handle) };
  } finally {
    await handle.close();
  }
}

/** A Client when a daemon answers for `dir`; else the store opened here (the daemon's socket watched while waiting for the lock). Exported for its tests. */
export async function openHandle(dir: string, wait: LockWaitOptions, open: (dir: string, wait: LockWaitOptions) => Promise<Store>): Promise<MailStore> {
  const socket = daemonSocketPath(dir);
  // monotonic, as the lock wait's own (identity.ts): timed on the wall clock, a clock stepped back
  // while waiting stretched --wait by the step, and one stepped forward cut it to nothing
  const started = monotonicMs();
  for (let attempt = 0; ; attempt++) {
    let silent: MailstoreError | undefined;
    const client = await daemonClient(socket, dir, (e) => { silent = e; }) ??
      (process.env.MAILSTORE_SOCKET ? await (await import('./env-socket.js')).ownDaemonBesideEnvSocket(socket, dir, daemonClient) : undefined);
    if (client) return client;
    // A socket file seen now is a dead daemon's, or a live one's that closed the connection (every
    // connection it takes is taken); one with another inode later is a daemon that started.
    const seen = socketInodeNow(socket);
    const waited = monotonicMs() - started;
    const watch: LockWaitOptions = {
      ...wait,
      lockWaitMs: Math.max(0, (wait.lockWaitMs ?? 0) - waited), // --wait is for the whole command, not each try
      onLockWait: (holder, waitedMs) => {
        wait.onLockWait?.(holder, waited + waitedMs);
        const now = socketInodeNow(socket);
        if (now === undefined) return;
        if ((attempt < 3 && now !== seen) || waitedMs >= limits.cliDaemonRetryMs) throw new DaemonStarted();
      },
    };
    try {
      return await open(dir, watch);
    } catch (error) {
      if (error instanceof DaemonStarted) continue;
      if (silent && isMailstoreError(error, 'LOCKED')) throw (await import('./silent-daemon.js')).silentDaemonLocked(error, silent, socket) ?? error;
      throw error;
    }
  }
}

/** Where the CLI looks for the daemon of the store at `dir`: $MAILSTORE_SOCKET (a daemon started with --socket), else its default. */
export function daemonSocketPath(dir: string): string {
  return absolutePath(process.env.MAILSTORE_SOCKET || defaultSocketPath(dir));
}

/**
 * A command run as root that opens a store another user owns (the package's mailstore user) would
 * leave root's files in it, which that user's daemon cannot read or replace: it then fails ACCESS
 * at its next open or read. Refused before anything is touched, naming the user to run as.
 */
export function refuseRootInOthersStore(dir: string): void {
  const owner = otherOwnerOfRootsStore(dir);
  if (!owner || process.env.MAILSTORE_ALLOW_ROOT === '1') return;
  throw new MailstoreError('REFUSED',
    `the store at ${dir} belongs to ${owner.name} (uid ${owner.uid}), and this runs as root: the files it would write there ` +
    `(a new pack, journal segment, snapshot or index) would be root's, and ${owner.name}'s daemon could not read them. ` +
    `Nothing was changed. Run it as ${owner.name}: runuser -u ${owner.name} -- mailstore ... (MAILSTORE_ALLOW_ROOT=1 runs it as root anyway; then chown -R ${owner.name}: ${dir})`,
    { path: dir });
}

/**
 * For the commands that need the store to themselves (reconstruct rebuilds the index or journal
 * under it): LOCKED while a daemon serves it, before anything is touched.
 */
export async function refuseBesideDaemon(dir: string, what: string): Promise<void> {
  const client = await daemonClient(daemonSocketPath(dir), dir);
  if (!client) return;
  const pid = client.daemon?.pid;
  await client.close();
  throw new MailstoreError('LOCKED', `the daemon (process ${pid}) serves the store at ${dir}; ${what} needs the store to itself: stop the daemon (mailstore serve), run it, start the daemon again`, { path: dir });
}

/**
 * A Client of the daemon serving the store, or undefined when none answers (no socket, or a dead
 * daemon's). A daemon this user may not talk to is ACCESS, not a reason to open the store beside it.
 */
async function daemonClient(socket: string, dir: string, unanswered?: (error: MailstoreError) => void): Promise<Client | undefined> {
  if ((await socketInode(socket)) === undefined) return undefined; // a command's first look at the store: a hung one holds a pool thread, not the main one
  const { Client } = await import('../client/client.js'); // only with a socket there: its protocol loads cbor-x
  let client: Client;
  try {
    client = await Client.connect(socket, { reconnectWaitMs: 0, connectTimeoutMs: daemonLimits.cliConnectTimeoutMs });
  } catch (error) {
    if (!isMailstoreError(error, 'UNAVAILABLE')) throw error;
    unanswered?.(error);
    return undefined;
  }
  await refuseAnotherStoresDaemon(client, socket, dir).catch(async (error: unknown) => {
    await client.close();
    throw error;
  });
  return client;
}

/**
 * With several stores on a host, the daemon found for `dir` may serve another one: MAILSTORE_SOCKET
 * left set for one daemon, or a daemon given --socket at another store's default path, took every
 * command of `--store B` into store A. Refused on what shows it here: `dir` holds another store
 * id than the daemon's, or the daemon's root is, on this host, another directory (by device and
 * inode: a link to the same store goes through) holding its store (a copy of it, same id), or
 * `dir` is not there. A daemon in a container, whose root names nothing here, is not second-guessed.
 */
async function refuseAnotherStoresDaemon(client: Client, socket: string, dir: string): Promise<void> {
  const root = client.daemon?.root;
  if (root === undefined) return;
  const { nodeFileSystem: fs } = await import('../fs/node-fs.js');
  const { storeIdAt } = await import('../store/identity.js');
  const [here, there] = await Promise.all([dir, root].map((path) => fs.statIfExists(path).catch(() => null)));
  if (here === null || (here && there && here.dev === there.dev && here.ino === there.ino)) return; // null: not ours to look at
  const [ours, theirs] = await Promise.all([storeIdAt(fs, dir), there ? storeIdAt(fs, root) : undefined]);
  const another = (ours !== undefined && ours !== client.daemon!.storeId) || theirs === client.daemon!.storeId || (here === undefined && there);
  if (!another) return;
  const fix = process.env.MAILSTORE_SOCKET
    ? `unset MAILSTORE_SOCKET, or set it to the socket of ${dir}'s own daemon`
    : `give the daemon of ${root} another --socket: ${socket} is ${dir}'s own`;
  throw new MailstoreError('INVALID', `the daemon at ${socket} serves the store at ${root}, not ${dir}; nothing was done: give --store ${root} for that store, or ${fix}`, { path: dir });
}

/** `--wait 0.5` (seconds, fractions allowed, at most a day). */
export function parseWaitSeconds(text: string): number {
  const seconds = Number(text);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || seconds > 86_400) throw new MailstoreError('INVALID', `--wait takes seconds (0 to 86400), got ${JSON.stringify(text)}`);
  return seconds;
}

/**
 * How long to wait for another holder of the store: --wait SECONDS, --no-wait, else the default.
 * A person at a terminal (or a log, with --verbose) is told once that the command is waiting, and
 * for whom. Ctrl-C during an import's or export's wait ends the wait (StoppedWaiting).
 */
export function lockWaitOptions(command: Command): Pick<StoreOptions, 'lockWaitMs' | 'onLockWait'> {
  const { wait: option, verbose } = command.optsWithGlobals() as { wait?: number | false; verbose?: boolean };
  const seconds = option === false ? 0 : option ?? limits.cliLockWaitSeconds;
  let told = false;
  return {
    lockWaitMs: seconds * 1000,
    onLockWait: (holder, waitedMs) => {
      stopWaitingIfInterrupted();
      if (told || waitedMs < limits.lockNoticeMs || !(process.stderr.isTTY || verbose)) return;
      told = true;
      warn(`the store is in use by ${holder}; waiting up to ${seconds} s for it (--no-wait to fail at once)`);
    },
  };
}

export function wantsJson(command: Command): boolean {
  return Boolean(command.optsWithGlobals().json);
}

/** --json or --jsonl among the arguments (before a `--`), also when the command line did not parse. */
export function jsonWanted(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((arg) => arg === '--json' || arg === '--jsonl');
}

/**
 * A failure under --json: one line {"error": {code, message, path?, exitCode}} on stdout besides the
 * stderr line, so a script parsing stdout learns what went wrong instead of finding nothing to
 * parse. Only while stdout is empty: after a whole document (export's summary, then CORRUPT) two
 * would parse as none, and a stream's reader (events --json) takes every line for one of its own.
 */
export async function printJsonError(error: unknown, exitCode: number): Promise<void> {
  if (stdoutWritten) return;
  const described = isMailstoreError(error)
    ? { code: error.code, message: error.message, ...(error.path !== undefined ? { path: error.path } : {}) }
    : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
  await writeStdout(Buffer.from(jsonText({ error: { ...described, exitCode } }) + '\n')).catch(() => {}); // stdout gone: the stderr line and exit code remain
}

/**
 * One JSON document on stdout (Dates as ISO strings). What a terminal would obey in its strings (a
 * C1 control, a bidi override) is written \uXXXX: the same document to a parser (jsonText).
 */
export function printJson(value: unknown): Promise<void> {
  return writeStdout(Buffer.from(jsonText(value, 2) + '\n'));
}

/** One JSON value on a line of its own (--jsonl). */
export function printJsonLine(value: unknown): Promise<void> {
  return writeStdout(Buffer.from(jsonText(value) + '\n'));
}

/**
 * One line of a command's human output. Names in it may come from the world (a folder of an
 * imported Maildir): what a terminal would obey in them is shown escaped (printable), a tab kept
 * as the column separator it is in listings.
 */
export function printLine(text: string): Promise<void> {
  return writeStdout(Buffer.from(printable(text, '\t') + '\n'));
}

/** Set by the command's first output: a failure after it adds no JSON error (printJsonError). */
let stdoutWritten = false;

/**
 * A write to stdout that failed outside writeStdout (commander's help and --version write on their
 * own), for main to report: swallowed by the stream's error listener, help to a full disk exited 0.
 */
let stdoutFailedAside: MailstoreError | undefined;

/** A command line starts (main): what one before it in this process wrote is not its output. */
export function startOutput(): void {
  stdoutWritten = false;
  stdoutFailedAside = undefined;
}

/** stdout's error event: EPIPE ends the process (exitOnBrokenPipe); any other failure is kept for unreportedStdoutFailure. */
export function noteStdoutFailure(error: NodeJS.ErrnoException): void {
  stdoutFailedAside ??= stdoutFailure(error);
}

/** The failure noted by noteStdoutFailure, if any (a command's own writes also fail through writeStdout). */
export function unreportedStdoutFailure(): MailstoreError | undefined {
  return stdoutFailedAside;
}

/**
 * Resolves once the bytes are handed to the OS, so exiting afterwards cannot cut them off. A write
 * that fails (a full disk: `> /dev/full`, EIO) rejects with its code (NO_SPACE, IO), so the command
 * fails as for any other trouble; a reader gone away (EPIPE) ends the process (exitOnBrokenPipe).
 */
export function writeStdout(bytes: Buffer): Promise<void> {
  if (bytes.length > 0) stdoutWritten = true;
  if (stdoutDirect()) {
    try {
      writeAllSync(1, bytes);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(stdoutFailure(error as NodeJS.ErrnoException));
    }
  }
  return new Promise((done, failed) => {
    process.stdout.write(bytes, (error) => (error ? failed(stdoutFailure(error)) : done()));
  });
}

function stdoutFailure(error: NodeJS.ErrnoException): MailstoreError {
  if (error.code === 'EPIPE') exitOnBrokenPipe();
  const { code } = fromSystemError(error, 'writing to', 'standard output');
  return new MailstoreError(code, `cannot write to standard output: ${error.code ?? String(error)} (what the command did before is done; its output is incomplete)`, { path: 'standard output', cause: error });
}

/**
 * stdout's reader went away (`| head`, `| true`): there is nowhere to say more, so the process ends
 * at once and quietly (the store is crash-safe: it is closed as by any exit), with the exit code
 * the command had set before it printed (append: 0, its message is durable), else 141: what it
 * still had to say (scrub's verdict) is lost.
 */
export function exitOnBrokenPipe(): never {
  process.exit(process.exitCode ?? EXIT.brokenPipe);
}

/**
 * A warning for the person at the terminal; never on stdout, which scripts read. One line: control
 * and formatting characters (a file name with a newline or an escape sequence in it, from a mail
 * folder anyone could write) are escaped, so no name can end the line, make up one of its own or
 * drive the terminal.
 */
export function warn(text: string): void {
  process.stderr.write(`${journalPrefix('warn')}mailstore: ${printable(text)}\n`);
}

/** Reads all of stdin (append -), refusing more than the message limit rather than buffering without end. */
export async function readStdin(bytesMax: number = limits.messageBytesMax): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const piece = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += piece.length;
    if (total > bytesMax) throw new MailstoreError('TOO_LARGE', `message on stdin exceeds the limit of ${bytesMax} bytes`);
    chunks.push(piece);
  }
  return Buffer.concat(chunks, total);
}

/** `--flags '\Seen,\Flagged'` or `--flags '\Seen \Flagged'`: a list of flags (validated by the store). */
export function parseFlagList(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text.split(/[\s,]+/).filter((flag) => flag.length > 0);
}

/**
 * `--date`: ISO 8601, RFC 5322 or seconds since the epoch; a real calendar date within the store's
 * bounds (the library's own reader: Date.parse turned 2024-02-30 into March 1 and -1 into 2001).
 */
export function parseDateOption(text: string | undefined, option = '--date', forms = 'ISO 8601, RFC 5322 or epoch seconds'): Date | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d{1,15}$/.test(text) ? Number(text) * 1000 : parseDateText(text);
  if (!Number.isFinite(ms)) throw new MailstoreError('INVALID', `cannot read the date ${JSON.stringify(text)} given to ${option} (use ${forms}; a real calendar date)`);
  return new Date(normalizeDate(ms));
}

/** A positive integer option (`--batch-messages 500`). */
export function parsePositiveInteger(name: string): (text: string) => number {
  return (text: string) => {
    if (!/^[1-9][0-9]*$/.test(text)) throw new MailstoreError('INVALID', `${name} must be a positive integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
}

/** A UID argument: 1..2^32-1. */
export function parseUid(text: string): number {
  if (!/^[1-9][0-9]*$/.test(text) || Number(text) > 0xffffffff) throw new MailstoreError('INVALID', `not a UID: ${JSON.stringify(text)}`);
  return Number(text);
}
