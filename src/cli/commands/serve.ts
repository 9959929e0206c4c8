// `mailstore serve`: the spool daemon. Owns the store (holds its LOCK) and serves the Store API on a
// unix socket to every local process: the client library (mailstore/client), and the CLI, which
// goes through the daemon by itself when one answers. SIGTERM/SIGINT stop it cleanly (exit 0),
// SIGHUP reopens the --log file.
import type { Command } from 'commander';
import { totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { boundYoungGeneration } from '../../young-generation.js';
import { defaultSocketPath } from '../../client/client.js';
import { isMailstoreError, MailstoreError } from '../../errors.js';
import { setBodyBytesMax } from '../../daemon/body-budget.js';
import { Logger } from '../../daemon/log.js';
import { parseListen, socketPathFits } from '../../daemon/address.js';
import { checkLmtpTemplate } from '../../daemon/lmtp.js';
import { PROCEDURES, listScrubEvents, scrubEvents, type ScrubEvent, type ScrubListing } from '../../daemon/procedures.js';
import { ServeReplication, type ServeReplicationOptions } from '../../daemon/serve-replication.js';
import { DaemonServer } from '../../daemon/server.js';
import { watchMount } from '../../daemon/mount-watch.js';
import { prepareGiveBack } from '../../daemon/give-back.js';
import { extendStartWhileOpening, notifySystemd } from '../../daemon/systemd-notify.js';
import { serviceHooks, startServices, type ServiceHooks, type Services } from '../../daemon/services.js';
import { checkWebhookUrl, webhookForLog } from '../../events/webhook.js';
import type { ScrubOptions, ScrubReport } from '../../scrub/scrub.js';
import { openNotices, type Store } from '../../store/store.js';
import type { StoreOptions } from '../../store/types.js';
import { absolutePath, lockWaitOptions, refuseRootInOthersStore, storeDir } from '../context.js';
import { parseBytes, parseCount, parseDuration } from '../dates.js';
import { refuseSharedDirectory } from '../../fs/socket-file.js';
import { refuseUnwritableLog } from '../../fs/log-open.js';
import { daemonLimits, limits } from '../../limits.js';
import { journalPrefix } from '../../fs/journal-stream.js';
import { startStallWatch } from '../../fs/stall-watch.js';
import { endBySignal } from '../interrupt.js';
import { formatBytes } from '../progress.js';

interface ServeOptions extends ServeReplicationOptions {
  socket?: string;
  tombstoneRetention?: number;
  socketGroup?: string;
  log?: string;
  lmtp?: string[];
  lmtpTemplate?: string;
  metrics?: string;
  webhook?: string;
  bodyBytesMax?: number;
}

const MiB = 1024 * 1024;
const collect = (value: string, previous: string[] = []) => [...previous, value];

const HELP_AFTER = `
The socket (mode 0660) takes the client library (import { Client } from 'mailstore/client') and the
mailstore CLI itself: while a daemon answers on STORE/run/mailstore.sock, every command goes through
it instead of opening the store (so no LOCKED beside a running server). A stale socket file left
by a daemon that died is replaced; a live daemon's is refused (LOCKED).

Beside the socket it runs: LMTP listeners (--lmtp, RFC 2033: recipient -> mailbox by
--lmtp-template, 250 once durable, 550 unknown mailbox), Prometheus metrics (--metrics, GET
/metrics), the events webhook (--webhook: every change POSTed, at least once, resumed from its
cursor 'events-webhook'), background compaction (on a primary or a store of its own; a replica follows its primary's) and automatic index
snapshots (journal retirement).

Replication (all need --replication-key FILE, 32 random bytes as hex, the same on every node):
  primary:  --replication-listen HOST:PORT [--sync-replicas N --sync-fallback refuse|async]
  replica:  --replica-of HOST:PORT [--replication-listen HOST:PORT] in an empty directory (or a
            replica's): clients may read, every write is refused (READ_ONLY_REPLICA) until
            'mailstore promote', which the daemon runs: it stops following and, with
            --replication-listen, serves as the primary there.

Logs: one JSON object per line on stderr, or in --log FILE (SIGHUP or SIGUSR1 reopens it, for logrotate).
Stop with SIGTERM: it stops accepting, lets calls in flight finish (at most 5 s; an LMTP
transaction whose final dot comes within 10 s gets its replies), closes the store and exits 0.`;

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the spool daemon: own the store and serve it on a unix socket to the client library and the CLI')
    .option('--socket <path>', 'the unix socket to listen on (default: STORE/run/mailstore.sock)')
    .option('--socket-group <group>', 'give the socket to this group (name or gid), so its members may connect')
    .option('--log <file>', 'append the JSON log lines to FILE instead of stderr (SIGHUP reopens it)')
    .option('--lmtp <address>', 'LMTP listener, 127.0.0.1:2424 or unix:PATH (repeatable)', collect)
    .option('--lmtp-template <template>', 'LMTP recipient -> mailbox, with {local}, {domain}, {address} (default user/{local}/INBOX)')
    .option('--metrics <address>', 'Prometheus metrics on http://ADDRESS/metrics, e.g. 127.0.0.1:9464')
    .option('--webhook <url>', 'POST every change to URL as JSON ({consumer, events: [...]} in batches), at least once, with retries and backoff')
    .option('--replication-listen <address>', 'replication listener HOST:PORT (a primary: its replicas connect here; a replica: repair and check)')
    .option('--replication-key <file>', 'the replication pre-shared key file (hex, mode 0600)')
    .option('--replica-of <address>', 'be a read-only replica of the primary listening at HOST:PORT')
    .option('--tombstone-retention <duration>', "drop the change-log entries of uids expunged longer ago than this (default 30d; Cyrus's expunge_days), raising each mailbox's vanished floor (docs/FORMAT.md, \"The vanished floor\")", (text: string) => parseDuration(text, '--tombstone-retention'))
    .option('--sync-replicas <n>', 'replicas that must hold a change before it is acknowledged (primary; default 0)', (text: string) => parseCount(text, '--sync-replicas'))
    .option('--sync-fallback <mode>', 'too few synchronous replicas: refuse writes (UNAVAILABLE) or go on async (default refuse)')
    .option('--body-bytes-max <size>', `the most message bytes the daemon holds at once, LMTP DATA and socket calls together (64M, 1G; default ${formatBytes(daemonLimits.bodyBytesHeldMax)} here: an eighth of memory, at least 64M, at most 256M): past it LMTP answers 452 4.3.1 (the MTA retries) and socket calls wait`, parseBodyBytesMax)
    .addHelpText('after', HELP_AFTER)
    .action(runServe);
}

async function runServe(options: ServeOptions, command: Command): Promise<void> {
  // A long-lived process whose every delivery allocates its message's buffers: fewer, later full
  // collections (V8 reads the factor at each one, so setting it now takes effect; daemonLimits.heapGrowingPercent).
  setFlagsFromString(`--heap-growing-percent=${daemonLimits.heapGrowingPercent}`);
  // and a young generation that stays small through a pass over a whole mailbox (young-generation.ts)
  boundYoungGeneration();
  const dir = storeDir(command);
  // first: a store (or log) on a hung mount blocks the calls below, the main thread's too, and the
  // daemon is silent unless a thread of its own says which call waits on which file (io-stalled)
  const stalls = startStallWatch({ format: 'json', logPath: options.log, prefixes: { error: journalPrefix('error'), warn: journalPrefix('warn') } });
  refuseRootInOthersStore(dir);
  if (options.webhook !== undefined) checkWebhookUrl(options.webhook); // before the store is served: a daemon that can never post is no daemon to start
  // likewise a typo in --lmtp or --lmtp-template: found only once the lock (--wait on a running daemon) and the open were done
  for (const listen of options.lmtp ?? []) parseListen(listen, 'LMTP', { unix: true });
  if (options.lmtpTemplate !== undefined) checkLmtpTemplate(options.lmtpTemplate);
  // From here, not once the store is open: node's default for SIGHUP ends the process, so a reload
  // (systemctl reload, logrotate) during a long recovery or lock wait stopped the daemon, and systemd
  // counts an end by SIGHUP as clean: it was not started again. Before the log check below, which
  // creates the log file: one sent once the file was there, before the handler, ended serve
  // (packaging/reload.test.ts, now and then on a loaded machine); until the logger exists it does nothing.
  let reopenLog = () => undefined as void;
  const onReload = () => reopenLog();
  process.on('SIGHUP', onReload);
  process.on('SIGUSR1', onReload); // logrotate recipes of nginx and Dovecot send it (program.ts: never node's inspector)
  if (options.log !== undefined) {
    await refuseSharedDirectory(absolutePath(options.log), 'the log', 'put a file or link of their own at PATH and read or redirect what the daemon logs');
    await refuseUnwritableLog(absolutePath(options.log));
  }
  const logger = new Logger(options.log);
  if (options.bodyBytesMax !== undefined) setBodyBytesMax(options.bodyBytesMax);
  reopenLog = () => { logger.reopen(); logger.info('log-reopened'); };
  // V8's gc() for the give-back after a burst: from --expose-gc (the unit's NODE_OPTIONS), else made now; none: said once
  prepareGiveBack((why) => logger.warn('give-back-unavailable', { message: why }));
  const replication = new ServeReplication(options, logger);
  const hooks = serviceHooks();
  hooks.metrics.watchStalls(() => stalls?.ongoing() ?? []);
  // The store stopping itself is seen here whoever met it (an LMTP delivery, a background
  // compaction, a socket call): the daemon stops, non-zero, so that its supervisor reopens it.
  let server: DaemonServer | undefined;
  let stoppedEarly: MailstoreError | undefined;
  const onStop = (error: MailstoreError) => {
    if (server) server.storeFailed(error);
    else stoppedEarly ??= error;
  };
  const notifyFailed = (assignments: string[], error: Error) => logger.error('systemd-notify-failed', { assignments, message: error.message });
  const stopExtending = extendStartWhileOpening(`opening the store at ${dir}`, notifyFailed);
  const store = await replication.open(dir, { ...daemonStoreOptions(command, hooks, logger), onStop }).finally(stopExtending);
  for (const notice of openNotices(store.health)) logger.warn('store-opened', { notice });
  // the store's resolved root: by a link repointed meanwhile, the socket's removal at the stop took
  // another daemon's; the path as given where the resolved one is too long for a socket (a short
  // link to a deep mount, which served there before: refused, the daemon did not start)
  const resolvedSocket = defaultSocketPath(store.root);
  const socketPath = options.socket ?? (socketPathFits(resolvedSocket) ? resolvedSocket : defaultSocketPath(dir));
  server = new DaemonServer(store, { socketPath, socketGroup: options.socketGroup, logger });
  if (stoppedEarly) {
    await store.close().catch(() => undefined);
    throw stoppedEarly;
  }
  server.callStore = hooks.metrics.instrument(store); // appends and errors through the socket are counted too
  replication.wire(server);
  wireServices(server, hooks, options);
  // a store unmounted under the daemon (umount -l) stops it, as a store that stops itself does
  const mounted = await watchMount(store.fs, store.root, (error) => server?.storeFailed(error));
  server.onStopping.push(() => mounted.stop());
  process.once('SIGTERM', () => void server.stop('SIGTERM'));
  process.once('SIGINT', () => void server.stop('SIGINT'));
  try {
    // before the socket answers: no client write may commit without its synchronous replicas
    await replication.startPrimary(store);
    await server.start();
  } catch (error) {
    await server.stop('start-failed').catch(() => undefined);
    throw error;
  }
  // only now: the socket answers and LMTP, metrics and the webhook run (server.start ran onStarted)
  await notifySystemd(['READY=1', `STATUS=serving ${dir}`], notifyFailed);
  await server.done;
  await logger.close();
  // a socket whose directory hangs: a thread-pool thread still waits in its unlink, and node's exit
  // waits for every pool thread, so the daemon never ended; a signal ends that wait with the process:
  // SIGTERM's own (systemd counts it a clean stop), SIGKILL for a store that failed (restarted)
  if (server.socketLeftOpen) endBySignal(server.failure ? 'SIGKILL' : 'SIGTERM');
  // Everything is closed; nothing should keep the process, but a stop must never hang its supervisor.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  // The store stopped itself: exit non-zero, so that a supervisor starts the daemon again (recovery mends it).
  if (server.failure) throw server.failure;
}

/**
 * --body-bytes-max: a byte count (64M, 1G) that holds one message of the size limit (LMTP takes a
 * body's bytes from the budget as they come, so a budget smaller than a message the store accepts
 * would answer that message 452 at every try, until its MTA bounced it) and no more than the
 * machine's memory (the kernel's OOM killer would stop the daemon before the budget did).
 */
export function parseBodyBytesMax(text: string): number {
  const bytes = parseBytes(text, '--body-bytes-max');
  if (bytes < limits.messageBytesMax) {
    throw new MailstoreError('INVALID', `--body-bytes-max ${text} is below the largest message the daemon accepts (${formatBytes(limits.messageBytesMax)}, messageBytesMax): ` +
      `LMTP would answer every message bigger than ${text} 452 4.3.1 at each try, until the MTA bounced it. Give at least ${limits.messageBytesMax / MiB}M`);
  }
  if (bytes > totalmem()) {
    throw new MailstoreError('INVALID', `--body-bytes-max ${text} is more than this machine's memory (${formatBytes(totalmem())}): the kernel's OOM killer would stop the daemon, and every delivery with it, before the budget refused anything. ` +
      `Give at most ${Math.floor(totalmem() / MiB)}M (the default is ${formatBytes(daemonLimits.bodyBytesHeldMax)})`);
  }
  return bytes;
}

/** The daemon's store: commits feed the services; compaction and snapshots run in the background, logged. */
function daemonStoreOptions(command: Command, hooks: ServiceHooks, logger: Logger): StoreOptions {
  const retention = command.opts<ServeOptions>().tombstoneRetention;
  const wait = lockWaitOptions(command);
  let told = false;
  return {
    ...wait,
    // a daemon's stderr is a log (the journal, --log), not a terminal: its wait for the store's lock
    // went unsaid there, a start that looked hung for up to --wait seconds; logged once, as a warning
    onLockWait: (holder, waitedMs) => {
      wait.onLockWait?.(holder, waitedMs);
      if (told || waitedMs < limits.lockNoticeMs || (process.stderr.isTTY && command.opts<ServeOptions>().log === undefined)) return; // a terminal had the line above
      told = true;
      logger.warn('waiting-for-lock', { holder, waitSeconds: (wait.lockWaitMs ?? 0) / 1000, message: `the store is in use by ${holder}; waiting for it before serving` });
    },
    onCommit: hooks.onCommit,
    // Store.open starts it on a primary or standalone store (a replica follows its primary's compactions)
    autoCompact: retention === undefined ? true : { tombstoneRetentionMs: retention },
    autoSnapshot: true,
    autoTier: { onMoved: (result) => logger.info('tier-moved', { ...result }) }, // only with an object store
    onBackgroundError: (error) => {
      hooks.metrics.failed(error);
      logger.warn('background-error', { code: isMailstoreError(error) ? error.code : 'INTERNAL', message: (error as Error).message });
    },
    // once when deliveries start being refused for the free-space reserve, once when they go in again
    onFreeSpace: (refusing, state) => logger.warn(refusing ? 'free-space-low' : 'free-space-ok', { ...state }),
    onSnapshot: (result, error) => {
      if (error) logger.warn('snapshot-failed', { message: (error as Error).message });
      else if (result) logger.info('snapshot', { ...result });
      // the journal archive unmounted (or inside the store): nothing is retired and the journal grows
      // at every snapshot until it is fixed, which an info line alone hid from an admin's alerts
      const notRetired = result?.retired.skipped ?? result?.retired.damagedFile?.why;
      if (notRetired) logger.warn('journal-not-retired', { why: notRetired });
      // issue 12: a consumer that fell too far behind is reported (stats, consumers, and this event
      // at each automatic snapshot while it lasts), never skipped; the info line alone hid it
      const heldBy = result?.retired.heldBy;
      if (heldBy && heldBy.lagRecords > limits.consumerLagRecordsWarn) logger.warn('consumer-behind', { ...heldBy, warnRecords: limits.consumerLagRecordsWarn });
    },
  };
}

/** LMTP, metrics and the webhook start once the socket answers and stop before the store closes. */
function wireServices(server: DaemonServer, hooks: ServiceHooks, options: ServeOptions): void {
  let services: Services | undefined;
  server.onStarted.push(async () => {
    services = await startServices(server.store, hooks, {
      lmtp: options.lmtp, lmtpTemplate: options.lmtpTemplate, metrics: options.metrics,
      webhook: options.webhook === undefined ? undefined : { url: options.webhook },
      // the server's own trouble (mail deferred) at warn, ordinary traffic at info
      log: ({ event, level, ...fields }) => (level === 'warn' ? server.logger.warn(event, fields) : server.logger.info(event, fields)),
    });
    server.logger.info('services', { lmtp: services.lmtp, metrics: services.metrics, webhook: options.webhook === undefined ? undefined : webhookForLog(options.webhook) });
  });
  server.onStopping.unshift(async () => { await services?.close(); });
  reportScrubs(server, hooks);
}

/** Scrubs the daemon runs set the last-scrub metrics (result and time). */
function reportScrubs(server: DaemonServer, hooks: ServiceHooks): void {
  const record = (report: ScrubReport) => hooks.metrics.scrubbed(report.findings.length === 0 ? 'clean' : 'findings');
  server.procedureOverrides.scrub = async (options?: unknown) => {
    try {
      const report = await PROCEDURES.scrub(server.store, options as ScrubOptions | undefined);
      record(report);
      return report;
    } catch (error) {
      hooks.metrics.scrubbed('failed');
      throw error;
    }
  };
  // recorded whole, then listed as the caller takes it (findings in pieces since session 50)
  server.procedureOverrides.scrubEvents = (options?: unknown, listing?: unknown) =>
    listScrubEvents(scrubEventsRecorded(server.store, options as ScrubOptions | undefined, record, () => hooks.metrics.scrubbed('failed')), listing as ScrubListing | undefined);
}

async function* scrubEventsRecorded(store: Store, options: ScrubOptions | undefined, record: (report: ScrubReport) => void, failed: () => void): AsyncGenerator<ScrubEvent> {
  try {
    for await (const event of scrubEvents(store, options)) {
      if (event.report) record(event.report);
      yield event;
    }
  } catch (error) {
    failed();
    throw error;
  }
}
