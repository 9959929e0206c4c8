// The longest stall of the daemon's event loop and the worst delivery while a client copies or
// moves many uids through it (a separate daemon process, deliveries every 20 ms to another user).
// Not a test (timings assert nothing); run: npx tsc -p . && node dist/tools/copy-stall.js [copy|move] [N]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, defaultSocketPath } from '../src/client/client.js';
import { Store } from '../src/store/store.js';

const verb = process.argv[2] === 'move' ? 'move' : 'copy';
const count = Number(process.argv[3] ?? 100_000);
const bin = resolve(import.meta.dirname, '../src/cli/main.js');
const message = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

const base = mkdtempSync(join(tmpdir(), 'mailstore-copy-stall-'));
try {
  const dir = join(base, 'store');
  const store = await Store.init(dir);
  for (const name of ['user/a/INBOX', 'user/a/Archive', 'user/b/INBOX']) await store.createMailbox(name);
  for (let at = 0; at < count; at += 5000) {
    await store.appendBatch('user/a/INBOX', Array.from({ length: Math.min(5000, count - at) }, (_, i) => ({ bytes: message(at + i) })));
  }
  await store.close();
  const port = 19000 + Math.floor(Math.random() * 1000);
  const daemon = spawn(process.execPath, [bin, 'serve', '--store', dir, '--metrics', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  while (!existsSync(defaultSocketPath(dir))) await sleep(20);
  const client = await Client.connect(defaultSocketPath(dir));
  const deliverer = await Client.connect(defaultSocketPath(dir));
  await sleep(500);
  await metric(port, 'mailstore_event_loop_delay_max_seconds'); // resets it
  let done = false, worst = 0, delivered = 0;
  const deliveries = (async () => {
    while (!done) {
      const started = performance.now();
      await deliverer.append('user/b/INBOX', message(-1));
      worst = Math.max(worst, performance.now() - started);
      delivered++;
      await sleep(20);
    }
  })();
  const started = performance.now();
  const uids = Array.from({ length: count }, (_, i) => i + 1);
  const result = await client[verb]('user/a/INBOX', uids, 'user/a/Archive');
  const took = performance.now() - started;
  done = true;
  await deliveries;
  const stall = await metric(port, 'mailstore_event_loop_delay_max_seconds');
  console.log(`${verb} ${result.mapping.length} uids: ${(took / 1000).toFixed(2)} s; longest stall ${stall.toFixed(2)} s; worst delivery ${(worst / 1000).toFixed(2)} s (${delivered} deliveries)`);
  await client.close();
  await deliverer.close();
  daemon.kill('SIGTERM');
  await new Promise((done) => daemon.on('exit', done));
} finally {
  rmSync(base, { recursive: true, force: true });
}
