// The LOCKED of a store whose holder is a daemon that took the CLI's connection and said nothing
// (stopped, waiting on a hung disk, overloaded): "stop it or wait", the words for a command busy
// with the store, sent the admin to wait for it. Loaded only on that path (an append's start-up).
import { MailstoreError } from '../errors.js';

/** The holder a LOCKED error names: "process 4711 (mailstore serve)". */
export function lockHolder(error: MailstoreError): string {
  return /process \d+(?: \([^)]*\))?/.exec(error.message)?.[0] ?? 'another process';
}

/**
 * `locked` (the lock wait's end) said of a daemon whose socket took the connection and did not
 * answer (`unanswered`, the connect's UNAVAILABLE); undefined when nothing listens there (a dead
 * daemon's socket file: refused, or gone).
 */
export function silentDaemonLocked(locked: MailstoreError, unanswered: MailstoreError, socket: string): MailstoreError | undefined {
  if (/^E(CONNREFUSED|NOENT)$/.test((unanswered.cause as NodeJS.ErrnoException | undefined)?.code ?? '')) return undefined;
  const root = /^the store at (.*?) is in use by /.exec(locked.message)?.[1] ?? locked.path;
  return new MailstoreError('LOCKED', `the store at ${root} is in use by ${lockHolder(locked)} (LOCK), a daemon whose socket ${socket} does not answer (${unanswered.message}): ` +
    `it is stopped (SIGSTOP, a debugger), waits on a hung disk (its log's io-stalled line names the file) or is overloaded; nothing was opened here`, { path: locked.path, cause: locked });
}
