// A listening server emits 'error' when an accept fails (node 20: libuv absorbs EMFILE/ENFILE, not
// ENOBUFS, ENOMEM, EPERM from a firewall...): with no listener that is an uncaught exception, which
// stopped the daemon. Each listener logs it and keeps serving.
import { existsSync, readFileSync } from 'node:fs';
import { Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Registry, startMetrics } from '../../src/daemon/metrics.js';
import { connect, listen } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { keyFile, until } from '../replication/helpers.js';
import { message, startDaemon } from './helpers.js';

/** Each net.Server (tls and http ones too) that starts listening while `run` goes. */
async function listening<T>(run: () => Promise<T>): Promise<[T, Server[]]> {
  const servers: Server[] = [];
  const original = Server.prototype.listen;
  const spy = vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args: unknown[]) {
    servers.push(this);
    return (original as (...a: unknown[]) => Server).apply(this, args);
  });
  try {
    return [await run(), servers];
  } finally {
    spy.mockRestore();
  }
}

function acceptError(): NodeJS.ErrnoException {
  return Object.assign(new Error('accept ENOBUFS'), { code: 'ENOBUFS', syscall: 'accept' });
}

/** Emits two accept failures: a once() listener left from listen() took only the first. */
function emitTwice(server: Server): void {
  expect(server.listenerCount('error')).toBeGreaterThan(0);
  server.emit('error', acceptError());
  expect(server.listenerCount('error')).toBeGreaterThan(0);
  server.emit('error', acceptError());
}

afterEach(() => vi.restoreAllMocks());

describe('an accept failure on a listening server', () => {
  it('the daemon socket logs it and keeps serving; nothing acknowledged is lost', async () => {
    const [daemon, servers] = await listening(() => startDaemon());
    try {
      const client = await daemon.client();
      const { uid } = await client.append('user/alice/INBOX', message(1));
      emitTwice(servers[0]);
      const again = await daemon.client();
      expect(await again.fetch('user/alice/INBOX', uid)).toEqual(message(1));
      await until(() => existsSync(daemon.log) && /accept-failed.*ENOBUFS/.test(readFileSync(daemon.log, 'utf8')));
      await client.close();
      await again.close();
    } finally {
      await daemon.server.stop('test');
    }
  }, 30_000);

  it('the metrics endpoint logs it and keeps serving', async () => {
    const lines: unknown[] = [];
    const [metrics, servers] = await listening(() => startMetrics({ listen: '127.0.0.1:0', registry: new Registry(), log: (entry) => lines.push(entry) }));
    try {
      emitTwice(servers[0]);
      expect((await fetch(`http://${metrics.address}/metrics`)).status).toBe(200);
      expect(JSON.stringify(lines)).toMatch(/ENOBUFS/);
    } finally {
      await metrics.close();
    }
  });

  it('the replication listener logs it and keeps serving', async () => {
    const key = keyFile();
    const psk = await readKeyFile(nodeFileSystem, key);
    const lines: string[] = [];
    const [listener, servers] = await listening(() => listen('127.0.0.1:0', psk, () => undefined, (line) => lines.push(line)));
    try {
      emitTwice(servers[0]);
      const connection = await connect(`127.0.0.1:${listener.port}`, psk);
      connection.close();
      expect(lines.join('\n')).toMatch(/ENOBUFS/);
    } finally {
      await listener.close();
    }
  });
});

