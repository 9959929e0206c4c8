// MAILSTORE_SOCKET left set for a daemon once started with --socket (an old /etc/default/mailstore,
// a typo), naming no daemon, while the store's own daemon serves it at its default socket: every
// command waited --wait on that daemon's LOCK and then said LOCKED "stop it or wait". Loaded only
// when the variable is set.
import type { Client } from '../client/client.js';
import { defaultSocketPath } from '../client/socket-path.js';
import { absolutePath, warn } from './context.js';

/**
 * The daemon at the store's default socket when `socket` (MAILSTORE_SOCKET) gave none, with a
 * warning naming the variable; `connect` (context.ts's daemonClient) refuses another store's.
 */
export async function ownDaemonBesideEnvSocket(socket: string, dir: string, connect: (socket: string, dir: string) => Promise<Client | undefined>): Promise<Client | undefined> {
  const own = absolutePath(defaultSocketPath(dir));
  if (own === socket) return undefined;
  const client = await connect(own, dir);
  if (client) warn(`no daemon answers at MAILSTORE_SOCKET=${socket}; went through the daemon of ${dir} at ${own}: unset MAILSTORE_SOCKET, or set it to that socket`);
  return client;
}
