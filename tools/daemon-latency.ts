// Append latency through the daemon's socket against the library in-process, same messages, one
// append at a time (each waiting for its durable answer): the p50 the daemon issue asks about.
// Not a test (timings assert nothing); run: npx tsc -p . && node dist/tools/daemon-latency.js [N]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, defaultSocketPath } from '../src/client/client.js';
import type { MailStore } from '../src/store/api.js';
import { Store } from '../src/store/store.js';

const count = Number(process.argv[2] ?? 400);
const bin = resolve(import.meta.dirname, '../src/cli/main.js');

function message(i: number): Buffer {
  return Buffer.from(`From: a@example.org\r\nMessage-ID: <${i}.${Date.now()}@example.org>\r\nSubject: ${i}\r\n\r\n${'line of a message body\r\n'.repeat(150)}`);
}

async function percentiles(store: MailStore, label: string): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = message(i);
    const started = process.hrtime.bigint();
    await store.append('INBOX', bytes);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(3);
  console.log(`${label.padEnd(24)} p50 ${at(0.5)} ms   p90 ${at(0.9)} ms   p99 ${at(0.99)} ms   (${count} appends of ${message(0).length} bytes)`);
}

const base = mkdtempSync(join(tmpdir(), 'mailstore-latency-'));
try {
  const library = await Store.init(join(base, 'library'));
  await library.createMailbox('INBOX');
  await percentiles(library, 'library (in-process)');
  await library.close();

  const dir = join(base, 'daemon');
  const init = await Store.init(dir);
  await init.createMailbox('INBOX');
  await init.close();
  const daemon = spawn(process.execPath, [bin, 'serve', '--store', dir], { stdio: ['ignore', 'ignore', 'ignore'] });
  while (!existsSync(defaultSocketPath(dir))) await sleep(20);
  const client = await Client.connect(defaultSocketPath(dir));
  await percentiles(client, 'client (unix socket)');
  await client.close();
  daemon.kill('SIGTERM');
  await new Promise((done) => daemon.on('exit', done));
} finally {
  rmSync(base, { recursive: true, force: true });
}
