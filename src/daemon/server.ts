// The daemon: one process owns the Store (it holds the LOCK) and serves every other local process
// over a unix socket, so many processes append through one group-commit writer. Each connection
// is a DaemonConnection (connection.ts); this file owns the socket file, the set of connections
// and the orderly stop (SIGTERM: stop accepting, let calls in flight finish within a bound, close).
//
// Where the next layers plug in: `server.store` is the open Store, `onStarted` hooks run once the
// socket answers (LMTP, metrics, event consumers start there), `onStopping` hooks run after the
// socket stopped accepting and before the store closes, `onCall` observers hear of every call
// (method, time, error code: metrics). Commits are observed with StoreOptions.onCommit where
// `serve` opens the store.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { MailstoreError } from '../errors.js';
import { monotonicMs } from '../monotonic.js';
import { checkSocketPath } from './address.js';
import { ensureSocketDirectory, refuseNonSocket, refuseSharedDirectory, SOCKET_RISK, removeSocketFile, setSocketAccess, withSocketUmask } from '../fs/socket-file.js';
import { openFilesLimit } from '../fs/open-files-limit.js';
import { daemonLimits, limits, lmtpLimits } from '../limits.js';
import type { Store } from '../store/store.js';
import { closeSessions } from './backup-sessions.js';
import { DaemonConnection } from './connection.js';
import type { Logger } from './log.js';
import type { ProcedureName } from './procedures.js';
import { PROTOCOL_VERSION, type HelloResult } from './protocol.js';

export interface DaemonServerOptions {
  socketPath: string;
  /** The socket's group (name or number); its mode is 0660, so members of the group may connect. */
  socketGroup?: string;
  logger: Logger;
}

export type DaemonHook = (server: DaemonServer) => void | Promise<void>;

/** One call answered (or failed): for metrics (calls and errors by code, latency). */
export interface CallEvent {
  method: string;
  /** For `procedure` calls, the procedure's name. */
  procedure?: string;
  ms: number;
  /** The error's code when it failed (INTERNAL: not a MailstoreError). */
  code?: string;
}

export class DaemonServer {
  /** Run, in order, once the socket answers. */
  readonly onStarted: DaemonHook[] = [];
  /** Run, in order, when stopping: after the socket stopped accepting, before the store closes. */
  readonly onStopping: DaemonHook[] = [];
  /** Told of every call once it is answered or failed (must not throw; runs on the daemon's event loop). */
  readonly onCall: ((event: CallEvent) => void)[] = [];
  /**
   * Procedures `serve` runs its own way (procedures.ts names them; each takes the caller's
   * arguments): a replica's promote stops its replication client first, replicationStatus prefers a
   * running primary's live figures, scrub reports its result to the metrics.
   */
  readonly procedureOverrides: Partial<Record<ProcedureName, (...args: unknown[]) => unknown>> = {};
  readonly logger: Logger;
  private readonly server: Server;
  private readonly connections = new Set<DaemonConnection>();
  private stopped?: Promise<void>;
  private markDone!: () => void;
  /** Resolves once the daemon has stopped (a signal, or the store failed). */
  readonly done = new Promise<void>((resolve) => { this.markDone = resolve; });
  /** Why the daemon stopped by itself: the store stopped (HALTED, or CLOSED after a failure it could not undo). */
  failure?: MailstoreError;
  private connectionIds = 0;
  /** The socket file is ours to remove (we listened on it). */
  private listening = false;
  /** The stop could not remove the socket file (its directory hangs): a thread-pool thread still waits in that unlink. */
  socketLeftOpen = false;

  /**
   * Where the socket's store calls go: the store itself unless the owner wraps it (serve counts
   * appends and errors for its metrics with StoreMetrics.instrument). Procedures get `store`.
   */
  callStore: Store;

  constructor(readonly store: Store, readonly options: DaemonServerOptions) {
    this.callStore = store;
    this.logger = options.logger;
    this.server = createServer({ pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server.maxConnections = connectionsAllowed(openFilesLimit());
    this.server.on('drop', () => this.connectionRefused());
  }

  /**
   * A line per refused connection let a client connecting in a loop write the log without end (a
   * disk filled by it): at most one line a refusedLogMs, with how many were refused.
   */
  private connectionRefused(): void {
    this.refusedLog.note(() => ({ reason: `more than ${this.server.maxConnections} connections` }));
  }

  private readonly refusedLog = new LogEvery(() => this.logger, 'connection-refused', 'refused');
  private readonly acceptFailedLog = new LogEvery(() => this.logger, 'accept-failed', 'failures');
  /** Connections dropped for a malformed frame (connection.ts): as refused ones, a client sending garbage in a loop is one line a refusedLogMs. */
  readonly malformedLog = new LogEvery(() => this.logger, 'malformed-frame', 'connections');
  /** Listings and streams ended at daemonLimits.parkedFlowsMax (connection.ts): one line a refusedLogMs. */
  readonly parkedRefusedLog = new LogEvery(() => this.logger, 'listing-refused', 'refused');

  get socketPath(): string {
    return this.options.socketPath;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  hello(): HelloResult {
    return { protocol: PROTOCOL_VERSION, storeId: this.store.identity.storeId, root: this.store.root, pid: process.pid };
  }

  /** Listens on the socket (replacing a dead daemon's, refusing a live one's: LOCKED), then runs onStarted. */
  async start(): Promise<void> {
    const path = this.options.socketPath;
    checkSocketPath(path, 'the socket', '--socket with a shorter path (and MAILSTORE_SOCKET=PATH for the CLI)');
    await ensureSocketDirectory(dirname(path));
    await refuseSharedDirectory(path, 'the socket', SOCKET_RISK);
    await this.clearStaleSocket(path);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        withSocketUmask(() => this.server.listen({ path, backlog: daemonLimits.listenBacklog }, () => {
          this.server.off('error', reject);
          resolve();
        }));
      });
    } catch (error) {
      throw new MailstoreError('IO', `cannot listen on ${path}: ${(error as Error).message}`, { path, cause: error });
    }
    this.listening = true;
    // an accept that fails (ENOBUFS, ENOMEM; libuv absorbs EMFILE) is emitted here: unheard, it
    // was an uncaught exception that stopped the daemon; the listener goes on accepting
    this.server.on('error', (error: NodeJS.ErrnoException) => this.acceptFailedLog.note(() => ({ error: error.code ?? error.message })));
    await setSocketAccess(path, 0o660, this.options.socketGroup);
    this.logger.info('listening', { socket: path, store: this.store.root, pid: process.pid });
    for (const hook of this.onStarted) await hook(this);
  }

  private async clearStaleSocket(path: string): Promise<void> {
    if ((await refuseNonSocket(path, '--socket')) === 'none') return;
    const answer = await probeSocket(path);
    // never this store's own daemon (this process holds its lock): another store's, whose clients
    // (an IMAP server names only the socket) would reach this store once it took the path
    if (answer === 'live') {
      throw new MailstoreError('LOCKED', `another daemon answers on ${path}: not this store's (this process holds ${this.store.root}), so it serves another store or is no mailstore; ` +
        `give this daemon a socket of its own (--socket PATH, and MAILSTORE_SOCKET=PATH for its CLI). Stopping that one to free the path would send its clients to this store`, { path });
    }
    if (answer === 'unknown') throw new MailstoreError('LOCKED', `cannot tell whether the daemon of ${path} still runs (cannot connect to it); remove the file once it does not`, { path });
    this.logger.info('stale-socket-replaced', { socket: path });
    await removeSocketFile(path);
  }

  private accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const connection = new DaemonConnection(++this.connectionIds, socket, this);
    this.connections.add(connection);
    connection.closed.then(() => this.connections.delete(connection), () => this.connections.delete(connection));
  }

  /**
   * SIGTERM: stop accepting, refuse new calls (UNAVAILABLE, not done), let the calls in flight finish (at most
   * shutdownGraceMs), run onStopping, drop the connections, close the store. Idempotent.
   */
  stop(reason = 'stop'): Promise<void> {
    this.stopped ??= this.stopNow(reason).finally(() => this.markDone());
    return this.stopped;
  }

  /**
   * A call found the store stopped (HALTED, or CLOSED after a failure it could not undo): every
   * later call would fail the same way, and only a reopen (its recovery) mends it. The daemon
   * stops, so that its supervisor (systemd Restart=on-failure) starts it again.
   */
  storeFailed(error: MailstoreError): void {
    if (this.stopped) return; // our own stop closes the store under calls in flight
    this.failure = error;
    this.logger.error('store-stopped', { code: error.code, message: error.message });
    void this.stop('store-failed');
  }

  private async stopNow(reason: string): Promise<void> {
    // a call in parts in flight (a 900k expunge) ends at its next part boundary, saying how far it
    // got: waiting for its end held the stop past the grace, and the store's close cut it anyway
    this.store.stopCallsInParts();
    this.refusedLog.flush();
    this.acceptFailedLog.flush();
    this.malformedLog.flush();
    this.parkedRefusedLog.flush();
    this.logger.info('stopping', { reason, connections: this.connections.size });
    // the file first, in the thread pool and bounded: closing the listener removes it again, in the
    // main thread, and a socket directory on a hung mount held the whole stop there. Timed on the
    // loop's free time: a SIGTERM during a long call's part saw the unlink's answer only after the
    // expired timer, and warned of a hung mount on a busy daemon
    const path = this.options.socketPath;
    const removed = !this.listening || await answeredWithinFreeTime(removeSocketFile(path).catch(() => undefined), daemonLimits.socketRemoveWaitMs);
    if (!removed) {
      this.logger.warn('socket-not-removed', { socket: path, waitedMs: daemonLimits.socketRemoveWaitMs, why: 'its directory does not answer (a hung mount?): the listener stays open, refusing, until the daemon exits; the next start replaces the file' });
      this.server.unref();
      this.socketLeftOpen = true;
    }
    const closed = this.listening && removed ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    for (const connection of this.connections) connection.stopReading();
    const idle = Promise.all([...this.connections].map((c) => c.idle()));
    const finished = await Promise.race([idle.then(() => true), sleep(daemonLimits.shutdownGraceMs, false, { ref: false })]);
    if (!finished) this.logger.warn('stop-grace-expired', { graceMs: daemonLimits.shutdownGraceMs });
    for (const hook of this.onStopping) await hook(this);
    for (const connection of this.connections) connection.destroy();
    await closed;
    await closeSessions(this.store); // a backup's snapshots let go before the store closes
    await this.store.close();
    this.logger.info('stopped', { reason });
  }
}

/** Descriptors the store keeps beside every connection: LevelDB's tables, packs, journal segments, a spare. */
const storeDescriptors = limits.indexOpenFilesMax + limits.packReadHandlesMax + limits.journalReadHandlesMax + daemonLimits.descriptorsSpare;

/**
 * The connections the daemon keeps at once: daemonLimits.connectionsMax, fewer under an open-file
 * limit (`openFiles`, undefined: unknown) that would not leave the store its descriptors, and LMTP
 * its connections (lmtpConnectionsAllowed, refusedHeldMax), beside them.
 */
export function connectionsAllowed(openFiles: number | undefined): number {
  if (openFiles === undefined) return daemonLimits.connectionsMax;
  const reserved = storeDescriptors + lmtpConnectionsAllowed(openFiles) + lmtpLimits.refusedHeldMax;
  return Math.max(daemonLimits.connectionsMin, Math.min(daemonLimits.connectionsMax, openFiles - reserved));
}

/**
 * The sessions an LMTP listener serves at once: lmtpLimits.connectionsMax, fewer under an open-file
 * limit that would not leave the store its descriptors and the socket its fewest connections beside
 * them (an MTA's 256 sessions under LimitNOFILE=256 took every descriptor, LevelDB could not open
 * its next log file, and the store and the daemon stopped); more are answered 421 and retried.
 */
export function lmtpConnectionsAllowed(openFiles: number | undefined): number {
  if (openFiles === undefined) return lmtpLimits.connectionsMax;
  const reserved = storeDescriptors + daemonLimits.connectionsMin + lmtpLimits.refusedHeldMax;
  return Math.max(lmtpLimits.connectionsMin, Math.min(lmtpLimits.connectionsMax, openFiles - reserved));
}

/** Whether something answers on a unix socket: live, dead (ECONNREFUSED: a daemon died), or unknown. */
export function probeSocket(path: string): Promise<'live' | 'dead' | 'unknown'> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? 'dead' : 'unknown');
    });
  });
}

/**
 * One warning line per `daemonLimits.refusedLogMs` at most for an event that a client in a loop
 * repeats: the first at once, then one at the end of each window with how many happened
 * (`countField`) and the fields of the last.
 */
export class LogEvery {
  private count = 0;
  private fields: Record<string, unknown> = {};
  private timer?: NodeJS.Timeout;

  constructor(private readonly logger: () => Logger, private readonly event: string, private readonly countField: string) {}

  note(fields: () => Record<string, unknown>): void {
    this.count++;
    this.fields = fields();
    if (this.timer) return;
    this.write();
    this.timer = setTimeout(() => { this.timer = undefined; this.write(); }, daemonLimits.refusedLogMs);
    this.timer.unref();
  }

  /** Writes what the window holds now (the daemon is stopping). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.write();
  }

  private write(): void {
    if (this.count === 0) return;
    this.logger().warn(this.event, { ...this.fields, [this.countField]: this.count });
    this.count = 0;
  }
}

/**
 * answeredWithin counting only the time the event loop was free to see the answer: `ms` in ticks
 * of at most `tickMs`, where a tick that ended later than twice its length (the loop held by other
 * work: a big expunge's part at SIGTERM) counts nothing, and the answer is looked for after each
 * tick in the poll phase of the turn (an answer that came while the loop was held is seen then;
 * the expired timer, which runs first, no longer wins). At most `capMs` whatever the loop did.
 */
export async function answeredWithinFreeTime(work: Promise<unknown>, ms: number, capMs = 10 * ms, tickMs = 100): Promise<boolean> {
  let outcome: { error?: unknown } | undefined;
  const settled = work.then(() => { outcome = {}; }, (error: unknown) => { outcome = { error }; });
  const started = monotonicMs();
  let free = 0;
  while (outcome === undefined && free < ms && monotonicMs() - started < capMs) {
    const tick = Math.min(tickMs, ms - free);
    const before = monotonicMs();
    // an answer ends the wait at once (a stop goes on to refuse calls then, not a tick later)
    const timer = new AbortController();
    await Promise.race([settled, sleep(tick, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    if (outcome === undefined) await nextTurn(); // past the poll phase: the work's callback, ready meanwhile, has run
    if (monotonicMs() - before <= 2 * tick) free += tick;
  }
  if (outcome?.error !== undefined) throw outcome.error;
  return outcome !== undefined;
}
