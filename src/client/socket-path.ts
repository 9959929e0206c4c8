// Where a daemon listens by default, apart from client.ts: the CLI asks this on every command and
// loads the client (its protocol and cbor-x) only when a socket is there (issue 16: start-up).
import { join } from 'node:path';

/** The socket a daemon of the store at `storeDir` listens on unless started with --socket. */
export function defaultSocketPath(storeDir: string): string {
  return join(storeDir, 'run', 'mailstore.sock');
}
