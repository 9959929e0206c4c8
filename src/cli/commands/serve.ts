// `mailstore serve`: the spool daemon. Owns the store (holds its LOCK) and serves the Store API on a
// unix socket to every local process: the client library (mailstore/client), and the CLI, which
// goes through the daemon by itself when one answers. SIGTERM/SIGINT stop it cleanly (exit 0),
// SIGHUP reopens the --log file.
import type { Command } from 'commander';
import { defaultSocketPath } from '../../client/client.js';
import { Logger } from '../../daemon/log.js';
import { DaemonServer } from '../../daemon/server.js';
import { Store } from '../../store/store.js';
import { lockWaitOptions, storeDir } from '../context.js';

interface ServeOptions { socket?: string; socketGroup?: string; log?: string; lmtp?: string[]; metrics?: string }

const collect = (value: string, previous: string[] = []) => [...previous, value];

const HELP_AFTER = `
The socket (mode 0660) takes the client library (import { Client } from 'mailstore/client') and the
mailstore CLI itself: while a daemon answers on STORE/run/mailstore.sock, every command goes through
it instead of opening the store (so no LOCKED beside a running server). A stale socket file left
by a daemon that died is replaced; a live daemon's is refused (LOCKED).

Logs: one JSON object per line on stderr, or in --log FILE (SIGHUP reopens it, for logrotate).
Stop with SIGTERM: it stops accepting, lets calls in flight finish (at most 5 s), closes the store
and exits 0.`;

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the spool daemon: own the store and serve it on a unix socket to the client library and the CLI')
    .option('--socket <path>', 'the unix socket to listen on (default: STORE/run/mailstore.sock)')
    .option('--socket-group <group>', 'give the socket to this group (name or gid), so its members may connect')
    .option('--log <file>', 'append the JSON log lines to FILE instead of stderr (SIGHUP reopens it)')
    .option('--lmtp <address>', 'LMTP listener, 127.0.0.1:2424 or unix:PATH (repeatable)', collect)
    .option('--metrics <address>', 'Prometheus metrics on http://ADDRESS/metrics, e.g. 127.0.0.1:9464')
    .addHelpText('after', HELP_AFTER)
    .action(runServe);
}

async function runServe(options: ServeOptions, command: Command): Promise<void> {
  const dir = storeDir(command);
  const logger = new Logger(options.log);
  const store = await Store.open(dir, lockWaitOptions(command));
  const server = new DaemonServer(store, { socketPath: options.socket ?? defaultSocketPath(dir), socketGroup: options.socketGroup, logger });
  wirePlaceholders(server, options);
  process.once('SIGTERM', () => void server.stop('SIGTERM'));
  process.once('SIGINT', () => void server.stop('SIGINT'));
  process.on('SIGHUP', () => { logger.reopen(); logger.info('log-reopened'); });
  try {
    await server.start();
  } catch (error) {
    await server.stop('start-failed').catch(() => undefined);
    throw error;
  }
  await server.done;
  await logger.close();
  // Everything is closed; nothing should keep the process, but a stop must never hang its supervisor.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  // The store stopped itself: exit non-zero, so that a supervisor starts the daemon again (recovery mends it).
  if (server.failure) throw server.failure;
}

/**
 * Where LMTP (src/daemon/lmtp.ts) and metrics (src/daemon/metrics.ts) start once they are built:
 * each pushes an onStarted hook that listens on its address with `server.store`, and an onStopping
 * hook that closes its listener. Until then the options are accepted and say so in the log.
 */
function wirePlaceholders(server: DaemonServer, options: ServeOptions): void {
  for (const address of options.lmtp ?? []) server.onStarted.push(() => server.logger.warn('not-built-yet', { option: '--lmtp', address }));
  if (options.metrics !== undefined) server.onStarted.push(() => server.logger.warn('not-built-yet', { option: '--metrics', address: options.metrics }));
}
