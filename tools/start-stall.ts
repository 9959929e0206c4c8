// What a daemon's first clients see right after it starts (session 51's outside test: 5,000
// mailboxes, 201k small messages, a first fetch that waited ~2.5 s): the time until the socket
// answers, each of a client's first calls (fetch of an old and a new message, list, status), and a
// probe's latencies while the first seconds pass. After (a) a clean stop (SIGTERM) or (b) a SIGKILL
// in the middle of deliveries. Not a test (timings assert nothing).
// Run: npx tsc -p . && node dist/tools/start-stall.js [--mailboxes N] [--messages-each K]
//   [--after clean|kill] [--template DIR] [--bin OTHER/dist/src/cli/main.cjs] [--node-flag=--cpu-prof ...]
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, defaultSocketPath } from '../src/client/client.js';
import { PROBE, cpuSeconds, makeUserStore, quantile } from './stall-measures.js';

const { values } = parseArgs({
  options: {
    mailboxes: { type: 'string', default: '5000' },
    'messages-each': { type: 'string', default: '40' },
    after: { type: 'string', default: 'clean' },
    template: { type: 'string' },
    bin: { type: 'string' },
    'probe-seconds': { type: 'string', default: '4' },
    'node-flag': { type: 'string', multiple: true, default: [] },
    /** Deliver one message at a time (makeUserStore), so that small bodies go inside their journal records. */
    inline: { type: 'boolean', default: false },
  },
});
const mailboxes = Number(values.mailboxes);
const each = Number(values['messages-each']);
const bin = values.bin ?? resolve(import.meta.dirname, '../src/cli/main.cjs');
const message = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i} ${'x'.repeat(Math.abs(i) % 400)}\r\n`);

const makeTemplate = (dir: string) => makeUserStore(dir, mailboxes, each, message, values.inline);

function startDaemon(dir: string, flags: string[]): ChildProcess {
  return spawn(process.execPath, [...flags, bin, 'serve', '--store', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function connect(dir: string): Promise<Client> {
  for (;;) {
    if (existsSync(defaultSocketPath(dir))) {
      try { return await Client.connect(defaultSocketPath(dir)); } catch { /* not yet */ }
    }
    await sleep(5);
  }
}

const exited = (daemon: ChildProcess) => new Promise((done) => daemon.on('exit', done));

/** The previous daemon's end: SIGTERM once it served, or SIGKILL while clients deliver. */
async function previousRun(dir: string): Promise<void> {
  const daemon = startDaemon(dir, []);
  const client = await connect(dir);
  if (values.after === 'clean') {
    await client.append(PROBE, message(-2));
    await client.close();
    daemon.kill('SIGTERM');
    await exited(daemon);
    return;
  }
  let delivered = 0;
  const deliveries = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; ; i++) {
      try { await client.append(`user/a/box${(w * 997 + i) % mailboxes}`, message(i)); delivered++; } catch { return; }
    }
  });
  await sleep(1500);
  daemon.kill('SIGKILL');
  await exited(daemon);
  await Promise.allSettled(deliveries);
  client.close().catch(() => undefined);
  console.log(`killed mid-delivery after ${delivered} acknowledged appends`);
}

const base = mkdtempSync(join(tmpdir(), 'mailstore-start-stall-'));
try {
  const template = values.template ?? join(base, 'template');
  if (!existsSync(join(template, 'STORE'))) await makeTemplate(template);
  const dir = join(base, 'store');
  cpSync(template, dir, { recursive: true });
  await previousRun(dir);
  const started = performance.now();
  const daemon = startDaemon(dir, values['node-flag']);
  const client = await connect(dir);
  const answered = performance.now() - started;
  const probe = await connect(dir);
  const pings: number[] = [];
  let probing = true;
  const pinging = (async () => {
    while (probing) {
      const at = performance.now();
      try { await probe.status(PROBE); } catch { break; }
      pings.push(performance.now() - at);
      await sleep(20);
    }
  })();
  // bytes the daemon read (all threads, page cache or not): what a call read of the journal shows here
  const readBytes = () => Number(/rchar: (\d+)/.exec(readFileSync(`/proc/${daemon.pid}/io`, 'utf8'))![1]);
  let readBefore = readBytes();
  const timed = async (what: string, call: () => Promise<unknown>) => {
    const at = performance.now();
    const cpuAt = cpuSeconds(daemon.pid!);
    let outcome = 'ok';
    try { await call(); } catch (error) { outcome = (error as { code?: string }).code ?? String(error); }
    const read = readBytes();
    console.log(`  ${what}: ${(performance.now() - at).toFixed(0)} ms, main thread CPU ${(cpuSeconds(daemon.pid!) - cpuAt).toFixed(2)} s, read ${((read - readBefore) / 1e6).toFixed(1)} MB, ${outcome}`);
    readBefore = read;
  };
  console.log(`socket answered ${answered.toFixed(0)} ms after the start, main thread CPU ${cpuSeconds(daemon.pid!).toFixed(2)} s, read ${(readBefore / 1e6).toFixed(1)} MB`);
  await timed('fetch of the oldest message', () => client.fetch('user/a/box0', 1));
  await timed(`fetch of a middle message`, () => client.fetch(`user/a/box${Math.floor(mailboxes / 2)}`, 1));
  await timed('list of user a', () => client.listMailboxes({ user: 'a' }));
  await timed('status', () => client.status(`user/a/box${mailboxes - 1}`));
  await sleep(Number(values['probe-seconds']) * 1000);
  probing = false;
  await pinging;
  const cpu = cpuSeconds(daemon.pid!);
  pings.sort((a, b) => a - b);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`after ${values.after}: daemon main thread CPU ${cpu.toFixed(2)} s in all; load ${load}`);
  console.log(`probe status ms (${pings.length}): p50 ${quantile(pings, 0.5)} p90 ${quantile(pings, 0.9)} p99 ${quantile(pings, 0.99)} max ${quantile(pings, 1)}`);
  await client.close().catch(() => undefined);
  await probe.close().catch(() => undefined);
  daemon.kill('SIGTERM');
  await exited(daemon);
} finally {
  rmSync(base, { recursive: true, force: true });
}
