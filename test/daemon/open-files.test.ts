// `mailstore serve` under a low open-file limit (ulimit -n) and a crowd of clients: the daemon keeps
// its connections within what the limit leaves the store (server.ts connectionsAllowed), so idle
// connections can never take the descriptor LevelDB needs for its next log file, which stopped
// the store, then the daemon (every later call UNAVAILABLE until a supervisor restarted it).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/client/client.js';
import { connectionsAllowed, lmtpConnectionsAllowed } from '../../src/daemon/server.js';
import { daemonLimits, lmtpLimits } from '../../src/limits.js';
import { requireBuilt } from '../cli/helpers.js';
import { freePort, freshStore, INBOX, serve, type Daemon } from './processes.js';

beforeAll(requireBuilt);

const daemons: Daemon[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const daemon of daemons.splice(0)) if (daemon.child.exitCode === null) { daemon.child.kill('SIGKILL'); await daemon.exited; }
});

describe('connections under the open-file limit', () => {
  it('are as many as the limit leaves room for beside the store, at least a few', () => {
    expect(connectionsAllowed(undefined)).toBe(daemonLimits.connectionsMax);
    expect(connectionsAllowed(1_048_576)).toBe(daemonLimits.connectionsMax);
    expect(connectionsAllowed(1024)).toBeLessThan(1024);
    expect(connectionsAllowed(1024)).toBeGreaterThan(daemonLimits.connectionsMin);
    expect(connectionsAllowed(64)).toBe(daemonLimits.connectionsMin);
  });

  it('as many LMTP sessions as the limit leaves room for beside the store and the socket\'s fewest, at least a few', () => {
    expect(lmtpConnectionsAllowed(undefined)).toBe(lmtpLimits.connectionsMax);
    expect(lmtpConnectionsAllowed(1024)).toBe(lmtpLimits.connectionsMax);
    expect(lmtpConnectionsAllowed(512)).toBeLessThan(lmtpLimits.connectionsMax);
    expect(lmtpConnectionsAllowed(300)).toBe(lmtpLimits.connectionsMin);
    // the two together leave the store its descriptors wherever the limit has room beyond the minimums
    for (const openFiles of [512, 1024, 4096]) expect(connectionsAllowed(openFiles) + lmtpConnectionsAllowed(openFiles) + lmtpLimits.refusedHeldMax).toBeLessThan(openFiles);
  });

  // more idle connections than the daemon has descriptors, then enough index writes that LevelDB
  // starts new log and table files. LMTP answers the sessions past its limit 421 and half-closes
  // them, and the descriptors of those whose client did not close stayed (900 idle LMTP clients
  // under ulimit -n 700 stopped the store before: CLOSED, 'IO error: .../000013.log: Too many
  // open files', and the daemon exited); LMTP's 256 sessions did not follow the limit (400 under
  // ulimit -n 300 stopped it the same way); and the replication and metrics listeners held any number
  const crowds = [
    { kind: 'socket', openFilesMax: 300, clients: 400 },
    { kind: 'LMTP', openFilesMax: 700, clients: 900 },
    { kind: 'LMTP', openFilesMax: 300, clients: 400 },
    { kind: 'replication', openFilesMax: 300, clients: 400 },
    { kind: 'metrics', openFilesMax: 300, clients: 400 },
  ] as const;
  for (const crowd of crowds) {
    it(`a crowd of ${crowd.clients} idle ${crowd.kind} clients past ulimit -n ${crowd.openFilesMax} is refused; the store keeps its descriptors, and mail goes on into the index`, { timeout: 90_000 }, async () => {
      const store = await freshStore();
      const port = await freePort();
      const key = join(store, '..', 'key');
      writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
      const listen = { socket: [], LMTP: ['--lmtp'], replication: ['--replication-key', key, '--replication-listen'], metrics: ['--metrics'] }[crowd.kind];
      const daemon = await serve(store, listen.length > 0 ? [...listen, `127.0.0.1:${port}`] : [], { openFilesMax: crowd.openFilesMax });
      daemons.push(daemon);
      const socket = join(store, 'run', 'mailstore.sock');
      const client = await Client.connect(socket);
      try {
        for (let i = 0; i < crowd.clients; i++) {
          const s = crowd.kind === 'socket' ? createConnection(socket) : createConnection(port, '127.0.0.1');
          s.on('error', () => undefined);
          sockets.push(s);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
        let appended = 0;
        for (let batch = 0; batch < 40; batch++) {
          const items = Array.from({ length: 500 }, (_, k) => ({ bytes: Buffer.from(`Subject: ${batch}-${k}\r\n\r\nbody ${batch} ${k}\r\n`) }));
          appended += (await client.appendBatch(INBOX, items)).length;
        }
        expect(appended).toBe(20_000);
        expect((await client.status(INBOX)).messages).toBe(20_000);
        expect(daemon.child.exitCode).toBeNull();
      } finally {
        await client.close();
      }
    });
  }
});
