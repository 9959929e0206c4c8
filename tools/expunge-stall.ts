// What other clients of the daemon see while one expunges many uids of a big mailbox through it
// (session 50's scale run: `expunge 1:900000` of a 1M mailbox): a probe client fetching a message
// every 50 ms (its latencies), a new client's hello, and with --stop-after-ms a SIGTERM mid-way
// (how long the daemon took to exit, what was expunged). Not a test (timings assert nothing).
// Run: npx tsc -p . && node dist/tools/expunge-stall.js [--messages N] [--expunge K] [--template DIR]
//   [--stop-after-ms MS] [--node-flag=--cpu-prof ...]
// The store of N messages is made once in --template DIR (kept) and copied for each run.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, defaultSocketPath } from '../src/client/client.js';
import { Store } from '../src/store/store.js';
import { cpuSeconds, daemonOnCopy, quantile } from './stall-measures.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    expunge: { type: 'string', default: '100000' },
    template: { type: 'string' },
    'stop-after-ms': { type: 'string' },
    'node-flag': { type: 'string', multiple: true, default: [] },
    /** No probe nor hellos: the daemon's CPU is the expunge's alone. */
    quiet: { type: 'boolean', default: false },
  },
});
const count = Number(values.messages);
const expungeCount = Number(values.expunge);
const bin = resolve(import.meta.dirname, '../src/cli/main.cjs');
const INBOX = 'user/a/INBOX';
const message = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

async function makeTemplate(dir: string): Promise<void> {
  const store = await Store.init(dir);
  await store.createMailbox(INBOX);
  for (let at = 0; at < count; at += 5000) {
    await store.appendBatch(INBOX, Array.from({ length: Math.min(5000, count - at) }, (_, i) => ({ bytes: message(at + i) })));
  }
  await store.close();
}

const base = mkdtempSync(join(tmpdir(), 'mailstore-expunge-stall-'));
try {
  const template = values.template ?? join(base, 'template');
  const { dir, daemon, probe } = await daemonOnCopy(template, makeTemplate, base, bin, values['node-flag']);
  const cpuBefore = cpuSeconds(daemon.pid!);
  let done = values.quiet;
  const fetches: number[] = [];
  const hellos: number[] = [];
  const probing = (async () => {
    while (!done) {
      const started = performance.now();
      try { await probe.fetch(INBOX, count); } catch { break; }
      fetches.push(performance.now() - started);
      await sleep(50);
    }
  })();
  const helloing = (async () => {
    while (!done) {
      await sleep(1000);
      const started = performance.now();
      try { await (await Client.connect(defaultSocketPath(dir))).close(); } catch { break; }
      hellos.push(performance.now() - started);
    }
  })();
  const started = performance.now();
  const cli = spawn(process.execPath, [bin, '--store', dir, 'expunge', INBOX, `1:${expungeCount}`, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let cliOut = '';
  cli.stdout.on('data', (d) => { cliOut += d; });
  cli.stderr.on('data', (d) => { cliOut += d; });
  const cliExit = new Promise<number | null>((done) => cli.on('exit', (code) => done(code)));
  let stopMs: number | undefined;
  if (values['stop-after-ms'] !== undefined) {
    // counted from the first part's commit (the CLI reads the mailbox's uids first)
    while ((await probe.status(INBOX)).messages === count) await sleep(20);
    await Promise.race([sleep(Number(values['stop-after-ms'])), cliExit]);
    const cpu = cpuSeconds(daemon.pid!) - cpuBefore;
    const stopping = performance.now();
    done = true;
    daemon.kill('SIGTERM');
    await new Promise((done) => daemon.on('exit', done));
    stopMs = performance.now() - stopping;
    await cliExit;
    console.log(`daemon CPU before the stop ${cpu.toFixed(2)} s; exited ${(stopMs / 1000).toFixed(2)} s after SIGTERM`);
  } else {
    await cliExit;
  }
  const took = performance.now() - started;
  const cpu = stopMs === undefined ? cpuSeconds(daemon.pid!) - cpuBefore : NaN;
  done = true;
  await Promise.all([probing, helloing]);
  fetches.sort((a, b) => a - b);
  hellos.sort((a, b) => a - b);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const summary = cliOut.length > 300 ? `${cliOut.slice(0, 300)}…` : cliOut.trim();
  console.log(`expunge 1:${expungeCount} of ${count}: ${(took / 1000).toFixed(1)} s, daemon main thread CPU ${cpu.toFixed(2)} s; load ${load}`);
  console.log(`probe fetch ms (${fetches.length}): p50 ${quantile(fetches, 0.5)} p90 ${quantile(fetches, 0.9)} p99 ${quantile(fetches, 0.99)} max ${quantile(fetches, 1)}`);
  console.log(`new client hello ms (${hellos.length}): p50 ${quantile(hellos, 0.5)} max ${quantile(hellos, 1)}`);
  if (stopMs !== undefined) {
    console.log(`cli: ${summary}`);
    const after = execFileSync(process.execPath, [bin, '--store', dir, 'mailbox', 'status', INBOX, '--json'], { encoding: 'utf8' });
    console.log(`after the stop: ${after.trim()}`);
  } else {
    probe.close().catch(() => undefined);
    daemon.kill('SIGTERM');
    await new Promise((done) => daemon.on('exit', done));
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
