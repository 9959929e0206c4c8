// A daemon in this process (DaemonServer over a fresh Store) and raw socket helpers, for the
// daemon's tests. Process-level tests (serve, SIGTERM, SIGKILL) use the built CLI instead.
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { Client, defaultSocketPath, type ClientOptions } from '../../src/client/client.js';
import { Logger } from '../../src/daemon/log.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { Store } from '../../src/store/store.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix = 'mailstore-daemon-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export interface Running {
  dir: string;
  socket: string;
  server: DaemonServer;
  store: Store;
  log: string;
  client(options?: ClientOptions): Promise<Client>;
}

/** A fresh store with user/alice/INBOX, served by a daemon in this process. */
export async function startDaemon(): Promise<Running> {
  const base = tempDir();
  const dir = join(base, 'store');
  const store = await Store.init(dir);
  await store.createMailbox('user/alice/INBOX');
  const log = join(base, 'daemon.log');
  const socket = defaultSocketPath(dir);
  const server = new DaemonServer(store, { socketPath: socket, logger: new Logger(log) });
  await server.start();
  return { dir, socket, server, store, log, client: (options) => Client.connect(socket, options) };
}

export function message(i: number, bodyBytes = 0): Buffer {
  const head = Buffer.from(`From: a@example.org\r\nMessage-ID: <${i}.${process.pid}@example.org>\r\nSubject: ${i}\r\n\r\n`);
  const body = Buffer.alloc(bodyBytes);
  for (let j = 0; j < bodyBytes; j++) body[j] = j % 78 === 76 ? 13 : j % 78 === 77 ? 10 : 97 + ((i * 31 + j) % 26);
  return Buffer.concat([head, body, Buffer.from('\r\n')]);
}

/** A raw connection: what a hostile or broken client can do. */
export function rawConnect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the daemon sends until it closes the connection (or `ms` pass). */
export function readUntilClosed(socket: Socket, ms = 5000): Promise<{ bytes: Buffer; closed: boolean }> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ bytes: Buffer.concat(chunks), closed: false }), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), closed: true });
    });
  });
}
