// Appends through the daemon's socket (mailstore/client) against a `mailstore serve` process: one
// client appending one message at a time (its p50 pairs with the library's, measure/deliver.ts
// --writers 1), or P client processes at once (pairs with --writers P in one process). The P
// processes connect and load their messages first, then start together on one word from here, so
// node's start-up is not in the figure; the clock runs from that word to the last acknowledgement.
//
// --warmup M: the list's M messages after the first N appended first, untimed (the cold_* fields;
// the daemon's CPU figure excludes them), as measure/deliver.ts --warmup does for the library it
// pairs with: by the one client, or shared by the P processes (each its slice, all started together
// on a first word; the timed appends start on a second one).
// --floor (with --processes P): the same P processes, messages and frames against a server that
// does no store work (floor-client-Pp: this script's --floor-server, the daemon's transport decoding
// each frame and answering it at once), so the report can say what the processes' IPC alone costs.
//
//   node dist/src/bench/measure/daemon.js --cli CLI.js --store DIR --list LIST.TXT --messages N [--processes P] [--warmup M] [--floor] [--profile DIR]
//   (a worker: --worker --socket PATH --mailbox M --list LIST.TXT --messages N --warmup M --slice W --of P)
//   (the floor's server: --floor-server --socket PATH)
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '../../client/client.js';
import { PROTOCOL_VERSION } from '../../daemon/protocol.js';
import { FrameSocket } from '../../daemon/transport.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { Store } from '../../store/store.js';
import { makeDirectories } from '../files.js';
import { freePort, groupCommits, readCpuMs, startDaemon, waitForSocket } from '../daemon-process.js';
import { coldFields, emit, parseFlags, percentile, required, round, runMeasurement, timedAndWarmup } from '../common.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const processes = Number(values.get('processes') ?? 1);
const floor = switches.has('floor');
const peer = `${floor ? 'floor' : 'mailstore'}-client${processes === 1 ? '' : `-${processes}p`}`;

/** cpuUs: the client's own CPU (user + system) while it appended, µs; systemUs: the kernel's part of it. */
interface WorkerResult { messages: number; bytes: number; latencies: number[]; cpuUs: number; systemUs: number }
interface Run { results: WorkerResult[]; seconds: number }
/** What the clients talk to: the daemon, or the floor's server. */
interface Server { socket: string; pid: number; stop(): Promise<void>; commits(): Promise<number | undefined> }

if (switches.has('worker')) await worker();
else if (switches.has('floor-server')) await floorServer(required(values, 'socket'));
else await runMeasurement(peer, 'daemon', measure);

async function measure(): Promise<void> {
  const root = required(values, 'store');
  const messages = Number(required(values, 'messages'));
  const warmup = Number(values.get('warmup') ?? 0);
  const boxes = processes === 1 ? ['INBOX'] : Array.from({ length: processes }, (_, w) => `user/w${w}/INBOX`);
  const server = floor ? await startFloorServer(root) : await daemonServer(root, boxes);
  let timed: Run, cold: Run | undefined, commits: number | undefined, daemonCpuMs: number;
  try {
    const cpu = () => readCpuMs(server.pid);
    if (processes === 1) {
      const { timed: files, warm } = await timedAndWarmup(required(values, 'list'), messages, warmup);
      const client = await Client.connect(server.socket);
      cold = await inProcess(client, boxes[0]!, warm);
      const started = await cpu();
      timed = await inProcess(client, boxes[0]!, files);
      daemonCpuMs = (await cpu()) - started;
      await client.close();
    } else {
      ({ timed, cold, daemonCpuMs } = await inProcesses(server.socket, boxes, messages, warmup, cpu));
    }
    commits = await server.commits();
  } finally {
    await server.stop();
  }
  const { results, seconds } = timed;
  const warmed = cold?.results.reduce((n, r) => n + r.messages, 0) ?? 0;
  const latencies = results.flatMap((r) => r.latencies);
  const count = results.reduce((n, r) => n + r.messages, 0);
  emit({
    peer, measurement: 'daemon', messages: count, bytes: results.reduce((n, r) => n + r.bytes, 0), seconds: round(seconds), processes,
    p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
    ...(commits === undefined ? {} : { group_commits: commits, appends_per_commit: round((count + warmed) / commits) }),
    ...coldFields(cold?.results.flatMap((r) => r.latencies) ?? [], cold?.seconds ?? 0),
    // where the CPU goes (issue 13): the server's from /proc over the timed appends, the clients' own
    daemon_cpu_us_per_message: Math.round((daemonCpuMs * 1000) / count), client_cpu_us_per_message: Math.round(results.reduce((n, r) => n + r.cpuUs, 0) / count),
    client_system_cpu_us_per_message: Math.round(results.reduce((n, r) => n + r.systemUs, 0) / count),
    ...(cold ? { cold_client_cpu_us_per_message: Math.round(cold.results.reduce((n, r) => n + r.cpuUs, 0) / warmed) } : {}),
    note: note(count, commits, warmed),
  });
}

function note(count: number, commits: number | undefined, warmed: number): string {
  const warm = warmed ? `; ${warmed.toLocaleString('en-US')} untimed warm-up appends first (the list's next messages${processes === 1 ? '' : ', each process its share, all started together'}; cold_* fields)` : '';
  if (processes === 1) return `mailstore/client over the unix socket to a \`mailstore serve\` process: one client, each awaiting client.append (acknowledged once durable)${warm}`;
  const who = `${processes} client processes at once (one mailbox each), each awaiting client.append one message at a time; clock from a common start (connected, messages in memory) to the last acknowledgement`;
  if (floor) return `floor: ${who}, against a server that does no store work (the daemon's transport decodes each frame and answers it at once)${warm}`;
  return `${who}; ${round((count + warmed) / commits!)} appends per group commit (in-process writers: see fdatasync per message)${warm}`;
}

async function daemonServer(root: string, boxes: string[]): Promise<Server> {
  const store = await Store.open(root, { create: true });
  for (const box of boxes) await store.createMailbox(box);
  await store.close();
  const metrics = `127.0.0.1:${await freePort()}`;
  const daemon = await startDaemon({ cli: required(values, 'cli'), store: root, profileDir: values.get('profile'), metrics });
  return { socket: daemon.socket, pid: daemon.child.pid!, stop: () => daemon.stop(), commits: () => groupCommits(metrics) };
}

/** One client in this process: the p50 that pairs with the library's. */
async function inProcess(client: Client, mailbox: string, files: string[]): Promise<Run> {
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
  return { messages: bodies.length, bytes, latencies, cpuUs: user + system, systemUs: system };
}

/** The messages of worker `w` of `of`: every message once, as the library's writers share them (slices differ by one at most). */
function sliceOf<T>(all: T[], w: number, of: number): T[] {
  return all.slice(Math.floor((w * all.length) / of), Math.floor(((w + 1) * all.length) / of));
}

/**
 * P worker processes: each says "ready" once connected and loaded; each "go" starts a phase in all
 * of them at once (the warm-up, when there is one, then the timed appends), each answering with its
 * result line.
 */
async function inProcesses(socket: string, boxes: string[], messages: number, warmup: number, cpu: () => Promise<number>): Promise<{ timed: Run; cold?: Run; daemonCpuMs: number }> {
  const workers = boxes.map((mailbox, w) => startWorker(w, [
    '--socket', socket, '--mailbox', mailbox, '--list', required(values, 'list'), '--messages', String(messages), '--warmup', String(warmup), '--slice', String(w), '--of', String(boxes.length),
  ]));
  try {
    await Promise.all(workers.map((w) => w.next()));
    const phase = async (): Promise<Run> => {
      const started = performance.now();
      for (const w of workers) w.child.stdin!.write('go\n');
      const results = (await Promise.all(workers.map((w) => w.next()))).map((line) => JSON.parse(line) as WorkerResult);
      return { results, seconds: (performance.now() - started) / 1000 };
    };
    const cold = warmup > 0 ? await phase() : undefined;
    const started = await cpu();
    const timed = await phase();
    return { timed, cold, daemonCpuMs: (await cpu()) - started };
  } finally {
    for (const w of workers) w.child.stdin!.end();
  }
}

/** A worker process and its lines in order ("ready", then one result per phase); rejects once it exits without the line. */
function startWorker(w: number, args: string[]): { child: ChildProcess; next(): Promise<string> } {
  // with --profile, the first worker runs under node --cpu-prof too (one client process's profile beside the daemon's)
  const profile = values.has('profile') && w === 0 ? ['--cpu-prof', '--cpu-prof-dir', values.get('profile')!, '--cpu-prof-name', `client-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...profile, process.argv[1]!, '--worker', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: { resolve(line: string): void; reject(error: Error): void }[] = [];
  let exited: Error | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter.resolve(line);
    else lines.push(line);
  });
  child.once('close', (code) => {
    exited = new Error(`worker ${w} exited ${code} before its next line`);
    for (const waiter of waiting.splice(0)) waiter.reject(exited);
  });
  return {
    child,
    next: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (exited) return Promise.reject(exited);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}

/** A worker process: connect, load its slices of the list, "ready"; on each "go" the next phase (warm-up, timed), its result printed. */
async function worker(): Promise<void> {
  const slice = Number(required(values, 'slice')), of = Number(required(values, 'of'));
  const { timed, warm } = await timedAndWarmup(required(values, 'list'), Number(required(values, 'messages')), Number(required(values, 'warmup')));
  const load = (files: string[]) => Promise.all(sliceOf(files, slice, of).map((f) => nodeFileSystem.readFile(f)));
  const phases = [...(warm.length > 0 ? [await load(warm)] : []), await load(timed)];
  const client = await Client.connect(required(values, 'socket'));
  const mailbox = required(values, 'mailbox');
  const go = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  process.stdout.write('ready\n');
  for (const bodies of phases) {
    if ((await go.next()).done) throw new Error('stdin closed before the go word');
    process.stdout.write(`${JSON.stringify(await appendAll(client, mailbox, bodies))}\n`);
  }
  await client.close();
  process.exit(0);
}

// ---- the floor: a server that does no store work -------------------------------------------------

async function startFloorServer(root: string): Promise<Server> {
  const socket = join(root, 'floor.sock');
  await makeDirectories(root);
  const nodeArgs = values.has('profile') ? ['--cpu-prof', '--cpu-prof-dir', values.get('profile')!, '--cpu-prof-name', `floor-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...nodeArgs, process.argv[1]!, '--floor-server', '--socket', socket], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  if (!(await Promise.race([waitForSocket(socket, 30_000), exited.then(() => false)]))) {
    child.kill('SIGKILL');
    throw new Error(`the floor server did not answer on ${socket}`);
  }
  return {
    socket, pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
    commits: async () => undefined,
  };
}

/**
 * The floor's server: each connection read by the daemon's own transport (frames cut and CBOR
 * decoded as `mailstore serve` does) and each call answered at once, an append with a result of
 * the daemon's shape; nothing stored.
 */
async function floorServer(path: string): Promise<void> {
  let uid = 0;
  const server = createServer((socket: Socket) => {
    const transport: FrameSocket = new FrameSocket(socket, {
      frame: (frame) => {
        if (frame.t !== 'call') return;
        const value = frame.m === 'hello'
          ? { protocol: PROTOCOL_VERSION, storeId: 'floor', root: '', pid: process.pid }
          : { uid: ++uid, uidValidity: 1, hash: '0'.repeat(64), size: (frame.a[1] as Uint8Array | undefined)?.length ?? 0, deduplicated: false };
        transport.sendValueSoon({ t: 'res', id: frame.id }, value);
      },
      malformed: () => socket.destroy(),
      closed: () => undefined,
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  process.once('SIGTERM', () => process.exit(0));
}
