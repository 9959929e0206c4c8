// mailstore.service is Type=notify: `serve` tells systemd it is ready only once the store is open
// and its socket and LMTP listener take connections. As Type=simple, units ordered after it
// (Postfix's, a replica's) started before either existed. No systemd runs here as PID 1: a fake
// NOTIFY_SOCKET (a unix datagram socket, in python3: node cannot bind one) records what arrives.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { finish, newStore, repoRoot, requireBuilt, start, tempDir } from '../cli/helpers.js';
import { freePort } from '../daemon/processes.js';
import { until } from '../helpers/until.js';
import { which } from '../daemon/tools.js';

const python = which('python3');
const systemdNotify = which('systemd-notify');

/** Receives datagrams at `socket`, each written to `out` followed by a line `--`; closes the fds systemd-notify's barrier passes. */
const LISTENER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], 'ab', buffering=0) as out:
    while True:
        data, ancillary, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(payload) - len(payload) % 4, 4):
                    os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
        out.write(data + b'\\n--\\n')
`;

function accepts(connect: () => ReturnType<typeof createConnection>): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect().once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}

describe.skipIf(!python || !systemdNotify)('serve under Type=notify', () => {
  requireBuilt();

  it('says READY=1 only once the store is open and the socket and LMTP take connections; while it waits to open, it pushes the start timeout on', async () => {
    const dir = tempDir('notify-');
    const notifySocket = join(dir, 'notify.sock');
    const received = join(dir, 'received');
    const listener: ChildProcess = spawn(python!, ['-c', LISTENER, notifySocket, received], { stdio: 'ignore' });
    const store = await newStore(['user/alice/INBOX']);
    const holder = await Store.open(store); // serve waits for the lock, as it would during another's recovery
    let released = false;
    const port = await freePort();
    let daemon: ChildProcess | undefined;
    try {
      await until(() => existsSync(notifySocket), 'the fake NOTIFY_SOCKET bound (a datagram socket: bound is ready)', 60_000);
      daemon = start(['--store', store, '--wait', '60', 'serve', '--lmtp', `127.0.0.1:${port}`], { env: { NOTIFY_SOCKET: notifySocket } });
      const ended = finish(daemon);
      const messages = () => (existsSync(received) ? readFileSync(received, 'utf8') : '');
      await until(() => messages().includes('EXTEND_TIMEOUT_USEC=') || daemon!.exitCode !== null, 'EXTEND_TIMEOUT_USEC while serve waits for the lock', 60_000);
      expect(messages()).toMatch(/^STATUS=opening the store at .*\nEXTEND_TIMEOUT_USEC=\d+$/m);
      expect(messages()).not.toContain('READY=1');
      await holder.close();
      released = true;
      await until(() => messages().includes('READY=1') || daemon!.exitCode !== null, 'READY=1', 60_000);
      expect(messages()).toMatch(/^READY=1\nSTATUS=serving /m);
      // at once, as Postfix started after it would: both take a connection
      expect(await accepts(() => createConnection(join(store, 'run/mailstore.sock')))).toBe(true);
      expect(await accepts(() => createConnection(port, '127.0.0.1'))).toBe(true);
      daemon.kill('SIGTERM');
      const result = await ended;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toContain('systemd-notify-failed');
    } finally {
      if (!released) await holder.close();
      daemon?.kill('SIGKILL');
      listener.kill();
    }
  });

  it('the unit waits for it (Type=notify; the notice comes from systemd-notify, a child: NotifyAccess=all) and gives a start time', () => {
    const service = readFileSync(join(repoRoot, 'packaging/mailstore.service'), 'utf8');
    expect(service).toMatch(/^Type=notify$/m);
    expect(service).toMatch(/^NotifyAccess=all$/m);
    expect(service).toMatch(/^TimeoutStartSec=\d+min$/m);
  });
});
if (!python || !systemdNotify) it('python3 or systemd-notify is missing: the readiness test skipped', () => console.log('skip: needs python3 (the fake NOTIFY_SOCKET) and systemd-notify'));
