// What `mailstore serve` runs beside its socket, as a process: LMTP and metrics (startServices),
// the last-scrub metrics of a scrub run through it, and replication: a primary daemon and a
// replica daemon (started in an empty directory), the replica read-only until `promote` through
// its own daemon, which then takes writes.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, run as spawned, tempDir } from '../cli/helpers.js';
// the daemons are processes; the CLI's command lines run in this process (in-process.ts, a sample
// checked against the spawned command), reaching them over their sockets as a spawned one does
import { json, ok, run } from '../cli/in-process.js';
import { converse } from './lmtp-client.js';
import { INBOX, freePort, freshStore, message, serve, type Daemon } from './processes.js';

beforeAll(requireBuilt);

async function stop(daemon: Daemon): Promise<void> {
  daemon.child.kill('SIGTERM');
  expect(await daemon.exited, daemon.stderr()).toBe(0);
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

describe('serve runs LMTP and metrics', () => {
  it('an LMTP delivery is stored exactly (250 after DATA), an unknown mailbox gets 550; metrics count it, an append through the socket and the scrub run through the daemon', async () => {
    const store = await freshStore();
    const [lmtpPort, metricsPort] = [await freePort(), await freePort()];
    const daemon = await serve(store, ['--lmtp', `127.0.0.1:${lmtpPort}`, '--metrics', `127.0.0.1:${metricsPort}`]);
    try {
      for (let i = 0; i < 100 && !daemon.stderr().includes('"event":"services"'); i++) await sleep(50);
      const lmtp = await converse({ port: lmtpPort });
      lmtp.send('LHLO test\r\n');
      await lmtp.replies(1);
      lmtp.send('MAIL FROM:<s@example.org>\r\n');
      expect((await lmtp.replies(1))[0]).toMatch(/^250/);
      lmtp.send('RCPT TO:<alice@example.org>\r\n');
      expect((await lmtp.replies(1))[0]).toMatch(/^250/);
      lmtp.send('RCPT TO:<nobody@example.org>\r\n');
      expect((await lmtp.replies(1))[0]).toMatch(/^550/);
      lmtp.send('DATA\r\n');
      expect((await lmtp.replies(1))[0]).toMatch(/^354/);
      const body = message(7);
      lmtp.send(Buffer.concat([body, Buffer.from('.\r\n')]));
      expect((await lmtp.replies(1))[0]).toMatch(/^250/); // one reply: the one accepted recipient
      lmtp.send('QUIT\r\n');
      lmtp.socket.end();
      const status = await json(['mailbox', 'status', INBOX], { store });
      expect(status.messages).toBe(1);
      expect((await run(['fetch', INBOX, String(status.uidNext - 1)], { store })).stdout.equals(body)).toBe(true);

      expect(await scrape(metricsPort)).toMatch(/^mailstore_appends_total 1$/m);
      await ok(['append', INBOX, '-'], { store, input: message(8) }); // through the daemon's socket: counted too
      expect(await scrape(metricsPort)).toMatch(/^mailstore_appends_total 2$/m);
      expect((await run(['scrub'], { store })).code).toBe(0);
      const after = await scrape(metricsPort);
      expect(after).toMatch(/^mailstore_last_scrub_result 0$/m);
      expect(after).toMatch(/^mailstore_last_scrub_timestamp_seconds [1-9]\d+$/m);
    } finally {
      await stop(daemon);
    }
  });
});

describe('serve runs replication', () => {
  it('a replica daemon in an empty directory follows the primary daemon, refuses writes, and takes them once promoted through its daemon', async () => {
    const base = tempDir('mailstore-wire-');
    const key = join(base, 'key');
    writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
    const primaryDir = join(base, 'p');
    const replicaDir = join(base, 'r');
    await ok(['init'], { store: primaryDir });
    mkdirSync(join(replicaDir, 'run'), { recursive: true }); // a directory holding only run/ is accepted
    const [rp, rr] = [await freePort(), await freePort()];
    const primary = await serve(primaryDir, ['--replication-listen', `127.0.0.1:${rp}`, '--replication-key', key, '--sync-replicas', '1', '--sync-fallback', 'refuse']);
    let replica: Daemon | undefined;
    try {
      replica = await serve(replicaDir, ['--replica-of', `127.0.0.1:${rp}`, '--replication-key', key, '--replication-listen', `127.0.0.1:${rr}`]);
      await ok(['mailbox', 'create', INBOX], { store: primaryDir });
      const appended = await json(['append', INBOX, '-'], { store: primaryDir, input: message(1) });
      // synchronous: acknowledged only once the replica holds it; the replica shows what it holds
      // up to 20 ms later (README 'Replication'), so a read may come too soon on a fast machine
      // (spawned: in this process the first fetch is also spawned and compared, which the lag could fail)
      let fetched = await spawned(['fetch', INBOX, String(appended.uid)], { store: replicaDir });
      for (let tries = 0; fetched.code !== 0 && tries < 20; tries++) {
        await sleep(50);
        fetched = await spawned(['fetch', INBOX, String(appended.uid)], { store: replicaDir });
      }
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(fetched.stdout.equals(message(1))).toBe(true);

      const live = await json(['replica', 'status'], { store: primaryDir });
      expect(live).toMatchObject({ role: 'primary', port: rp, syncReplicas: 1 });
      expect(live.replicas).toHaveLength(1);
      expect(live.replicas[0].connected).toBe(true);

      const refused = await run(['append', INBOX, '-'], { store: replicaDir, input: message(2) });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/READ_ONLY_REPLICA/);

      await stop(primary); // the old primary goes away, as in a failover
      // its synchronous replica is in its REPLICATION: the CLI with no daemon cannot write around it
      const around = await run(['append', INBOX, '-'], { store: primaryDir, input: message(4) });
      expect(around.code).toBe(2);
      expect(around.stderr).toMatch(/UNAVAILABLE: .*synchronous replicas/);
      expect((await json(['mailbox', 'status', INBOX], { store: primaryDir })).messages).toBe(1);
      const promoted = await json(['promote'], { store: replicaDir });
      expect(promoted.epoch).toBe(1);
      const after = await json(['append', INBOX, '-'], { store: replicaDir, input: message(3) });
      expect(after.uid).toBe(appended.uid + 1);
      const status = await json(['replica', 'status'], { store: replicaDir });
      expect(status).toMatchObject({ role: 'primary', epoch: 1, port: rr }); // the promoted daemon now listens as the primary
      await stop(replica);
      replica = undefined;
    } finally {
      if (primary.child.exitCode === null) primary.child.kill('SIGKILL');
      replica?.child.kill('SIGKILL');
    }
  });
});
