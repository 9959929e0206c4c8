// Appends through the daemon's socket (mailstore/client) against a `mailstore serve` process: one
// client appending one message at a time (its p50 pairs with the library's, measure/deliver.ts
// --writers 1), or P client processes at once (pairs with --writers P in one process). The P
// processes connect and load their messages first, then start together on one word from here, so
// node's start-up is not in the figure; the clock runs from that word to the last acknowledgement.
//
// --warmup M (one client only): the list's M messages after the first N appended first by the same
// client, untimed (the cold_* fields; the daemon's CPU figure excludes them), as measure/deliver.ts
// --warmup does for the library it pairs with.
//
//   node dist/src/bench/measure/daemon.js --cli CLI.js --store DIR --list LIST.TXT --messages N [--processes P] [--warmup M] [--profile DIR]
//   (a worker: --worker --socket PATH --mailbox M --list LIST.TXT --from I --to J)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client } from '../../client/client.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { Store } from '../../store/store.js';
import { freePort, groupCommits, readCpuMs, startDaemon } from '../daemon-process.js';
import { coldFields, emit, firstListed, parseFlags, percentile, required, round, runMeasurement, timedAndWarmup } from '../common.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const processes = Number(values.get('processes') ?? 1);
const peer = processes === 1 ? 'mailstore-client' : `mailstore-client-${processes}p`;

/** cpuUs: the client's own CPU (user + system) while it appended, µs. */
interface WorkerResult { messages: number; bytes: number; latencies: number[]; cpuUs: number }

if (switches.has('worker')) await worker();
else await runMeasurement(peer, 'daemon', measure);

async function measure(): Promise<void> {
  const root = required(values, 'store');
  const list = required(values, 'list');
  const messages = Number(required(values, 'messages'));
  const boxes = processes === 1 ? ['INBOX'] : Array.from({ length: processes }, (_, w) => `user/w${w}/INBOX`);
  const store = await Store.open(root, { create: true });
  for (const box of boxes) await store.createMailbox(box);
  await store.close();
  const metrics = `127.0.0.1:${await freePort()}`;
  const daemon = await startDaemon({ cli: required(values, 'cli'), store: root, profileDir: values.get('profile'), metrics });
  let results: WorkerResult[], seconds: number, commits: number, daemonCpuMs: number;
  let cold: { results: WorkerResult[]; seconds: number } | undefined;
  try {
    if (processes === 1) {
      const { timed, warm } = await timedAndWarmup(list, messages, Number(values.get('warmup') ?? 0));
      const client = await Client.connect(daemon.socket);
      cold = await inProcess(client, boxes[0]!, warm);
      const started = await readCpuMs(daemon.child.pid!);
      ({ results, seconds } = await inProcess(client, boxes[0]!, timed));
      daemonCpuMs = (await readCpuMs(daemon.child.pid!)) - started;
      await client.close();
    } else {
      const started = await readCpuMs(daemon.child.pid!);
      ({ results, seconds } = await inProcesses(daemon.socket, boxes, list, messages));
      daemonCpuMs = (await readCpuMs(daemon.child.pid!)) - started;
    }
    commits = await groupCommits(metrics);
  } finally {
    await daemon.stop();
  }
  const warmed = cold?.results[0]?.messages ?? 0;
  const latencies = results.flatMap((r) => r.latencies);
  const count = results.reduce((n, r) => n + r.messages, 0);
  emit({
    peer, measurement: 'daemon', messages: count, bytes: results.reduce((n, r) => n + r.bytes, 0), seconds: round(seconds), processes,
    p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
    group_commits: commits, appends_per_commit: round((count + warmed) / commits), ...coldFields(cold?.results[0]?.latencies ?? [], cold?.seconds ?? 0),
    // where the CPU goes (issue 13): the daemon's from /proc (includes its clients' connecting, before the clock for P processes), the clients' own
    daemon_cpu_us_per_message: Math.round((daemonCpuMs * 1000) / count), client_cpu_us_per_message: Math.round(results.reduce((n, r) => n + r.cpuUs, 0) / count),
    note: processes === 1
      ? `mailstore/client over the unix socket to a \`mailstore serve\` process: one client, each awaiting client.append (acknowledged once durable)${warmed ? `; ${warmed.toLocaleString('en-US')} untimed warm-up appends first by the same client (the list's next messages; cold_* fields)` : ''}`
      : `${processes} client processes at once (one mailbox each), each awaiting client.append one message at a time; clock from a common start (connected, messages in memory) to the last acknowledgement; ${round(count / commits)} appends per group commit (in-process writers: see fdatasync per message)`,
  });
}

/** One client in this process: the p50 that pairs with the library's. */
async function inProcess(client: Client, mailbox: string, files: string[]): Promise<{ results: WorkerResult[]; seconds: number }> {
  const bodies = await Promise.all(files.map((f) => nodeFileSystem.readFile(f)));
  const started = performance.now();
  const result = await appendAll(client, mailbox, bodies);
  return { results: [result], seconds: (performance.now() - started) / 1000 };
}

async function appendAll(client: Client, mailbox: string, bodies: Buffer[]): Promise<WorkerResult> {
  const latencies: number[] = [];
  let bytes = 0;
  const cpu = process.cpuUsage();
  for (const body of bodies) {
    const t = performance.now();
    await client.append(mailbox, body);
    latencies.push(performance.now() - t);
    bytes += body.length;
  }
  const { user, system } = process.cpuUsage(cpu);
  return { messages: bodies.length, bytes, latencies, cpuUs: user + system };
}

/** P worker processes: each says "ready" once connected and loaded, all get "go" at once. */
async function inProcesses(socket: string, boxes: string[], list: string, messages: number): Promise<{ results: WorkerResult[]; seconds: number }> {
  // every message once, as the library's writers share them (slices differ by one at most)
  const slice = (w: number) => Math.floor((w * messages) / boxes.length);
  const workers = boxes.map((mailbox, w) => {
    const child = spawn(process.execPath, [process.argv[1]!, '--worker', '--socket', socket, '--mailbox', mailbox, '--list', list, '--from', String(slice(w)), '--to', String(slice(w + 1))],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`worker ${w}: ${line}`))));
      child.once('exit', (code) => reject(new Error(`worker ${w} exited ${code} before it was ready`)));
    });
    const done = new Promise<WorkerResult>((resolve, reject) => {
      lines.on('line', (line) => { if (line.startsWith('{')) resolve(JSON.parse(line) as WorkerResult); });
      child.once('close', (code) => reject(new Error(`worker ${w} exited ${code} without a result`)));
    });
    return { child, ready, done };
  });
  await Promise.all(workers.map((w) => w.ready));
  const started = performance.now();
  for (const w of workers) w.child.stdin!.write('go\n');
  const results = await Promise.all(workers.map((w) => w.done));
  return { results, seconds: (performance.now() - started) / 1000 };
}

/** A worker process: connect, load its slice of the list, "ready", wait for "go", append, print the result. */
async function worker(): Promise<void> {
  const files = (await firstListed(required(values, 'list'), Number(required(values, 'to')))).slice(Number(required(values, 'from')));
  const bodies = await Promise.all(files.map((f) => nodeFileSystem.readFile(f)));
  const client = await Client.connect(required(values, 'socket'));
  const go = new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
  process.stdout.write('ready\n');
  await go;
  const result = await appendAll(client, required(values, 'mailbox'), bodies);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await client.close();
  process.exit(0);
}
