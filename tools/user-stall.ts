// What other clients of the daemon see while one renames or deletes a user of many mailboxes
// through it (session 51's outside test: 5,000 mailboxes, 10k messages): a probe client fetching a
// message of another user every 50 ms (its latencies). Not a test (timings assert nothing).
// Run: npx tsc -p . && node dist/tools/user-stall.js [--mailboxes N] [--messages-each K]
//   [--op rename|delete] [--template DIR] [--bin OTHER/dist/src/cli/main.cjs] [--node-flag=--cpu-prof ...]
// The store is made once in --template DIR (kept) and copied for each run.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROBE, cpuSeconds, daemonOnCopy, makeUserStore, quantile } from './stall-measures.js';

const { values } = parseArgs({
  options: {
    mailboxes: { type: 'string', default: '5000' },
    'messages-each': { type: 'string', default: '2' },
    op: { type: 'string', default: 'rename' },
    template: { type: 'string' },
    /** Another build's bin (dist/src/cli/main.cjs) for the daemon and the CLI: before/after runs. */
    bin: { type: 'string' },
    'node-flag': { type: 'string', multiple: true, default: [] },
  },
});
const mailboxes = Number(values.mailboxes);
const each = Number(values['messages-each']);
const bin = values.bin ?? resolve(import.meta.dirname, '../src/cli/main.cjs');
const message = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

const makeTemplate = (dir: string) => makeUserStore(dir, mailboxes, each, message);

const base = mkdtempSync(join(tmpdir(), 'mailstore-user-stall-'));
try {
  const template = values.template ?? join(base, 'template');
  const { dir, daemon, probe } = await daemonOnCopy(template, makeTemplate, base, bin, values['node-flag']);
  const cpuBefore = cpuSeconds(daemon.pid!);
  let done = false;
  const fetches: number[] = [];
  const probing = (async () => {
    while (!done) {
      const started = performance.now();
      try { await probe.fetch(PROBE, 1); } catch { break; }
      fetches.push(performance.now() - started);
      await sleep(50);
    }
  })();
  const started = performance.now();
  const args = values.op === 'rename' ? ['user', 'rename', 'a', 'c', '--json'] : ['user', 'delete', 'a', '--force', '--json'];
  const cli = spawn(process.execPath, [bin, '--store', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let cliOut = '';
  cli.stdout.on('data', (d) => { cliOut += d; });
  cli.stderr.on('data', (d) => { cliOut += d; });
  const code = await new Promise<number | null>((done) => cli.on('exit', (c) => done(c)));
  const took = performance.now() - started;
  const cpu = cpuSeconds(daemon.pid!) - cpuBefore;
  done = true;
  await probing;
  fetches.sort((a, b) => a - b);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`user ${values.op} of ${mailboxes} mailboxes × ${each}: exit ${code} ${cliOut.trim().slice(0, 200)}`);
  console.log(`${(took / 1000).toFixed(1)} s, daemon main thread CPU ${cpu.toFixed(2)} s; load ${load}`);
  console.log(`probe fetch ms (${fetches.length}): p50 ${quantile(fetches, 0.5)} p90 ${quantile(fetches, 0.9)} p99 ${quantile(fetches, 0.99)} max ${quantile(fetches, 1)}`);
  probe.close().catch(() => undefined);
  daemon.kill('SIGTERM');
  await new Promise((done) => daemon.on('exit', done));
} finally {
  rmSync(base, { recursive: true, force: true });
}
