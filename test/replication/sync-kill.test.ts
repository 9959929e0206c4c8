// The acceptance's core, with processes: a primary in a child process with one synchronous replica
// takes concurrent appends and is SIGKILLed mid-burst; the replica is promoted, every append the
// primary acknowledged is on it with the same uid and bytes, and it takes writes, never giving a uid
// a reader of the old primary saw under the same uidValidity.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js';
import { keyFile, msg, quiet, until } from './helpers.js';

const dist = resolve(import.meta.dirname, '../../dist/src');

describe('synchronous replica, primary SIGKILLed', () => {
  it.each([false, true])('every append the killed primary acknowledged is on the replica (the link cut just before: %s)', async (cut) => {
    expect(existsSync(join(dist, 'replication/primary.js')), 'build first: npx tsc -p .').toBe(true);
    const key = keyFile();
    const p = tmpDir('primary');
    const script = `
      import { Store } from ${JSON.stringify(join(dist, 'store/store.js'))};
      import { startPrimary } from ${JSON.stringify(join(dist, 'replication/primary.js'))};
      const store = await Store.open(${JSON.stringify(p)}, { create: true });
      await store.createMailbox('INBOX');
      const primary = await startPrimary(store, { listen: '127.0.0.1:0', keyFile: ${JSON.stringify(key)}, syncReplicas: 1, syncFallback: 'refuse', syncWaitMs: 500, log: () => {} });
      process.stdout.write('port ' + (await primary.status()).port + '\\n');
      process.stdin.once('data', () => {
        // an IMAP client reading the primary: what it saw may be ahead of what the replica acknowledged
        setInterval(async () => { const s = await store.status('INBOX'); process.stdout.write('seen ' + s.uidValidity + ' ' + s.uidNext + '\\n'); }, 1);
        for (let w = 0; w < 4; w++) (async () => {
          for (let i = 0; ; i++) {
            const n = w * 100000 + i;
            const body = Buffer.from('From: a@example.org\\r\\nSubject: ' + n + '\\r\\n\\r\\nbody ' + n + ' ' + 'x'.repeat(n % 3000) + '\\r\\n');
            try { const r = await store.append('INBOX', body); process.stdout.write('ack ' + r.uid + ' ' + n + '\\n'); }
            catch (e) { await new Promise((r) => setTimeout(r, 5)); }
          }
        })();
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    await until(() => /port \d+/.test(out), 20_000, 'the primary child');
    const port = Number(/port (\d+)/.exec(out)![1]);
    const proxy = await TcpFaultProxy.start(port);
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: proxy.address, keyFile: key, log: quiet });
    try {
      await until(() => replica.status().connected, 10_000, 'the replica to connect');
      child.stdin!.write('go\n');
      await until(() => (out.match(/^ack /gm) ?? []).length >= 200, 30_000, '200 acknowledgements');
      if (cut) {
        // batches go on landing on the primary, shown to its reader, while their acks never come
        // (the batches in flight may reach the replica first; the appends retried once their wait
        // for it expires land here only)
        proxy.blackhole();
        const uidNextSeen = () => Math.max(0, ...[...out.matchAll(/^seen \d+ (\d+)$/gm)].map((m) => Number(m[1])));
        const cutAt = uidNextSeen();
        await until(() => uidNextSeen() > cutAt + 8, 20_000, 'batches shown on the primary past the cut');
      }
      child.kill('SIGKILL');
      await new Promise((done) => child.once('exit', done));
      const acks = [...out.matchAll(/^ack (\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
      expect(acks.length).toBeGreaterThanOrEqual(200);
      // on the promoted replica: the newest acknowledged ones may still be tentative rounds (durable
      // in REPLICATION-PENDING) until the replica commits them, which promote does first
      const promoted = await replica.promote();
      expect(promoted.epoch).toBe(1);
      for (const [uid, n] of acks) {
        const expected = Buffer.from(`From: a@example.org\r\nSubject: ${n}\r\n\r\nbody ${n} ${'x'.repeat(n % 3000)}\r\n`);
        expect((await replica.store.fetch('INBOX', uid)).equals(expected), `uid ${uid}`).toBe(true);
      }
      const { uid, uidValidity } = await replica.store.append('INBOX', msg(1));
      expect(uid).toBeGreaterThan(Math.max(...acks.map(([u]) => u)));
      // no uid a reader of the old primary saw is given again under its uidValidity (docs/REPLICATION.md)
      const seen = [...out.matchAll(/^seen (\d+) (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
      expect(seen.length).toBeGreaterThan(0);
      for (const [seenValidity, seenNext] of seen) if (seenValidity === uidValidity) expect(uid).toBeGreaterThanOrEqual(seenNext);
    } finally {
      child.kill('SIGKILL');
      await replica.close();
      await proxy.close();
    }
  }, 60_000);
});
