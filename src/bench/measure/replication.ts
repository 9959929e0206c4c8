// Replication figures (issue 15), mailstore's side: a primary in this process (the library, like
// the deliver measurement) and its replica as a real `mailstore serve --replica-of` process over
// loopback TLS-PSK, so the two sides have a core each as on two machines.
//
//   node dist/src/bench/measure/replication.js --mode replicate --cli CLI.js --dir WORK --mbox FILE
//     A primary holding the corpus (imported once into WORK/primary, reused by later rounds), a
//     replica starting from an empty directory: time from its connection to the primary's seeing
//     every record durable there (MB/s, messages/s over the corpus's message bytes).
//   ... --mode deliver --cli CLI.js --dir WORK --list LIST --messages N
//     One writer awaiting each append: a fresh store alone, then a fresh store with one
//     synchronous replica (--sync-replicas 1): p50 / p99 of each, messages/s.
//   ... --mode catch-up --cli CLI.js --dir WORK --list LIST --deliveries N (--copy | --mbox FILE)
//     A primary of its own (--copy: a cold copy of replicate mode's primary and replica; --mbox: FILE
//     imported, the --scale store, and a replica copying it from empty, also reported), the replica stopped, N deliveries (16 writers, each message of LIST made
//     unique by a header, so nothing deduplicates), the replica started again: its catch-up time;
//     then `mailstore replica check --json` on the stopped replica against the primary, as a process
//     under /usr/bin/time (its seconds and peak RSS), the primary's peak RSS while it answered.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { importMail } from '../../import/importer.js';
import { startPrimary, type PrimaryHandle } from '../../replication/primary.js';
import { Store } from '../../store/store.js';
import { readCpuMs } from '../daemon-process.js';
import { emit, firstListed, parseFlags, percentile, progress, required, round, runMeasurement } from '../common.js';
import { exists, makeDirectories, readText, removeTree, writeText } from '../files.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const mode = required(values, 'mode');
const cli = required(values, 'cli');
const work = required(values, 'dir');
const measurement = mode === 'deliver' ? 'repl-deliver' : mode;
const quiet = (): void => undefined;

await runMeasurement('mailstore', measurement, async () => {
  await makeDirectories(work);
  const key = await keyFile(join(work, 'replication.key'));
  if (mode === 'replicate') await replicate(key);
  else if (mode === 'deliver') await deliver(key);
  else if (mode === 'catch-up') await catchUp(key);
  else throw new Error(`unknown --mode ${mode} (replicate, deliver, catch-up)`);
});

/** A 32-byte secret, mode 0600 (the key reader refuses anything others may read). */
async function keyFile(path: string): Promise<string> {
  if (await exists(path)) return path;
  const made = spawnSync('sh', ['-c', 'umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d " \\n" > "$1"', 'sh', path]);
  if (made.status !== 0) throw new Error(`could not write the replication key ${path}: ${made.stderr}`);
  return path;
}

// ---- the replica process ----------------------------------------------------------------------

interface ReplicaProcess { child: ChildProcess; exited: Promise<number> }

function startReplicaProcess(dir: string, primary: string, key: string): ReplicaProcess {
  const child = spawn(process.execPath, [cli, '--store', dir, 'serve', '--replica-of', primary, '--replication-key', key, '--log', `${dir}.log`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const exited = new Promise<number>((resolve) => child.on('close', (code) => {
    if (code !== 0 && code !== null) progress(`replica process exited ${code}: ${stderr.trim().split('\n').pop()}`);
    resolve(code ?? -1);
  }));
  return { child, exited };
}

/** The replica process's peak RSS (VmHWM), read before it stops. */
async function peakRssOf(pid: number | undefined): Promise<number | undefined> {
  const status = await readText(`/proc/${pid}/status`).catch(() => undefined);
  const kib = /VmHWM:\s+(\d+)/.exec(status ?? '')?.[1];
  return kib === undefined ? undefined : Number(kib) * 1024;
}

async function stopReplicaProcess(replica: ReplicaProcess): Promise<number | undefined> {
  const rss = await peakRssOf(replica.child.pid);
  replica.child.kill('SIGTERM');
  await replica.exited;
  return rss;
}

/** The primary's listener, and when its replica's session began (its "connected" log line). */
async function listeningPrimary(store: Store, key: string, syncReplicas = 0): Promise<{ primary: PrimaryHandle; address: string; connectedAt: () => number | undefined }> {
  let connectedAt: number | undefined;
  const log = (line: string) => { if (/replica \w+ connected from/.test(line)) connectedAt = performance.now(); };
  const primary = await startPrimary(store, { listen: '127.0.0.1:0', keyFile: key, syncReplicas, syncFallback: 'refuse', log });
  return { primary, address: `127.0.0.1:${(await primary.status()).port}`, connectedAt: () => connectedAt };
}

/** Waits until a connected replica holds `seq` durable (the primary has its ack), or the replica process exits. */
async function caughtUp(primary: PrimaryHandle, seq: number, replica: ReplicaProcess, timeoutMs = 3_600_000): Promise<number> {
  let exited = false;
  void replica.exited.then(() => { exited = true; });
  const end = performance.now() + timeoutMs;
  for (;;) {
    const status = await primary.status();
    if (status.replicas.some((r) => r.connected && r.seq >= seq)) return performance.now();
    if (exited) throw new Error('the replica process exited before it caught up');
    if (performance.now() > end) throw new Error(`the replica did not reach seq ${seq} in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---- replicate: an empty replica of the corpus ------------------------------------------------

interface PrimaryInfo { messages: number; bytes: number }

/** WORK/primary holding the corpus (imported once; later rounds reuse it), with its figures. */
async function corpusPrimary(mbox: string): Promise<{ store: Store; info: PrimaryInfo }> {
  const root = join(work, 'primary');
  const infoFile = join(work, 'primary.json');
  const saved = await readText(infoFile);
  if (saved && (await exists(join(root, 'STORE')))) return { store: await Store.open(root), info: JSON.parse(saved) as PrimaryInfo };
  await removeTree(root);
  await removeTree(join(work, 'replica'));
  progress(`replication: importing ${mbox} into the primary`);
  const store = await Store.open(root, { create: true });
  const summary = await importMail(store, mbox, { mailbox: 'INBOX', format: 'mbox' });
  const info = { messages: summary.imported, bytes: summary.bytes };
  await writeText(infoFile, JSON.stringify(info));
  return { store, info };
}

async function replicate(key: string): Promise<void> {
  const { store, info } = await corpusPrimary(required(values, 'mbox'));
  const replicaDir = join(work, 'replica');
  await removeTree(replicaDir);
  await removeTree(`${replicaDir}.log`);
  const { primary, address, connectedAt } = await listeningPrimary(store, key);
  const spawned = performance.now();
  const replica = startReplicaProcess(replicaDir, address, key);
  const done = await caughtUp(primary, store.changes.lastSeq, replica);
  const connected = connectedAt() ?? spawned;
  const rss = await stopReplicaProcess(replica);
  const packBytes = await packBytesOf(join(replicaDir, 'packs'));
  await primary.close();
  await store.close();
  const seconds = (done - connected) / 1000;
  emit({
    peer: 'mailstore', measurement: 'replicate', messages: info.messages, bytes: info.bytes, seconds: round(seconds),
    seconds_with_start: round((done - spawned) / 1000), pack_bytes: packBytes, peak_rss_bytes: rss,
    note: `an empty replica (\`mailstore serve --replica-of\`, its own process) of a library primary holding the corpus, loopback TLS-PSK; ` +
      `timed from its session's start to the primary's holding its ack of the last record (${round((done - spawned) / 1000, 2)} s from the process start); ` +
      `${Math.round(packBytes / 1e6)} MB of packs crossed; replica peak RSS`,
  });
}

async function packBytesOf(dir: string): Promise<number> {
  let total = 0;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) total += (await fs.stat(join(dir, name))).size;
  return total;
}

// ---- deliver: one writer, no replica vs one synchronous replica --------------------------------

async function deliver(key: string): Promise<void> {
  const files = await firstListed(required(values, 'list'), Number(required(values, 'messages')));
  const messages = await Promise.all(files.map((file) => fs.readFile(file)));
  const bytes = messages.reduce((sum, m) => sum + m.length, 0);
  for (const replicas of [0, 1]) {
    const root = join(work, `deliver-${replicas}`);
    await removeTree(root);
    await removeTree(`${root}-replica`);
    const store = await Store.open(root, { create: true });
    await store.createMailbox('INBOX');
    const primary = replicas > 0 ? await listeningPrimary(store, key, replicas) : undefined;
    const replica = primary && startReplicaProcess(`${root}-replica`, primary.address, key);
    if (primary && replica) await caughtUp(primary.primary, store.changes.lastSeq, replica, 60_000);
    const latencies: number[] = [];
    const replicaCpuFrom = replica ? await readCpuMs(replica.child.pid!) : 0;
    const cpuFrom = process.cpuUsage();
    const started = performance.now();
    for (const message of messages) {
      const t = performance.now();
      await store.append('INBOX', message);
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuFrom);
    // the replica's commit of the last rounds (limits.replicaTentativeCommitDelayMs) counts too
    await new Promise((resolve) => setTimeout(resolve, 100));
    const replicaCpuMs = replica ? (await readCpuMs(replica.child.pid!)) - replicaCpuFrom : 0;
    if (replica) await stopReplicaProcess(replica);
    await primary?.primary.close();
    await store.close();
    await removeTree(root);
    await removeTree(`${root}-replica`);
    emit({
      peer: replicas ? 'mailstore-sync1' : 'mailstore-unreplicated', measurement: 'repl-deliver', messages: messages.length, bytes, seconds: round(seconds), writers: 1,
      p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
      // CPU a delivery (user + system): this process's, all threads; the replica process's (10 ms clock ticks)
      cpu_us_per_message: Math.round((cpu.user + cpu.system) / messages.length),
      ...(replica ? { replica_cpu_us_per_message: Math.round((replicaCpuMs * 1000) / messages.length) } : {}),
      note: replicas
        ? 'library store.append, one writer, --sync-replicas 1 (acknowledged once the replica process has it durable), loopback TLS-PSK'
        : 'library store.append, one writer, no replication (acknowledged after fdatasync)',
    });
  }
}

// ---- catch-up and replica check ----------------------------------------------------------------

/**
 * The primary for catch-up, a store of its own (the replicate primary is reused by later rounds, so
 * deliveries must not land there): with --copy, a cold copy of WORK/primary and its caught-up
 * WORK/replica (replicate mode's, this round); else the --mbox (the --scale one) imported.
 */
async function catchUpPrimary(): Promise<{ store: Store; root: string; replicaDir: string; messages: number }> {
  const root = join(work, 'primary-catch-up');
  const replicaDir = join(work, 'replica-catch-up');
  await removeTree(root);
  await removeTree(replicaDir);
  const saved = await readText(join(work, 'primary.json'));
  if (switches.has('copy')) {
    if (!saved || !(await exists(join(work, 'replica', 'STORE')))) throw new Error('--copy needs replicate mode\'s primary and replica in WORK');
    for (const [from, to] of [['primary', root], ['replica', replicaDir]]) {
      const copied = spawnSync('cp', ['-a', join(work, from!), to!]);
      if (copied.status !== 0) throw new Error(`cp -a ${from} failed: ${copied.stderr}`);
    }
    return { store: await Store.open(root), root, replicaDir, messages: (JSON.parse(saved) as PrimaryInfo).messages };
  }
  const mbox = required(values, 'mbox');
  progress(`replication: importing ${mbox} into the catch-up primary`);
  const store = await Store.open(root, { create: true });
  const summary = await importMail(store, mbox, { mailbox: 'INBOX', format: 'mbox' });
  return { store, root, replicaDir, messages: summary.imported };
}

async function catchUp(key: string): Promise<void> {
  const deliveries = Number(required(values, 'deliveries'));
  const source = await firstListed(required(values, 'list'), deliveries);
  const { store, root, replicaDir, messages } = await catchUpPrimary();
  const copied = switches.has('copy');
  const { primary, address, connectedAt } = await listeningPrimary(store, key);
  try {
    // the replica as it was when it went down: caught up (from empty when there is none yet)
    let replica = startReplicaProcess(replicaDir, address, key);
    const initial = performance.now();
    await caughtUp(primary, store.changes.lastSeq, replica);
    const initialSeconds = (performance.now() - initial) / 1000;
    await stopReplicaProcess(replica);
    const bytes = await deliverWhileDown(store, source, deliveries);
    const spawned = performance.now();
    replica = startReplicaProcess(replicaDir, address, key);
    const done = await caughtUp(primary, store.changes.lastSeq, replica);
    const rss = await stopReplicaProcess(replica);
    const seconds = (done - (connectedAt() ?? spawned)) / 1000;
    emit({
      peer: 'mailstore', measurement: 'catch-up', messages: deliveries, bytes, seconds: round(seconds), seconds_with_start: round((done - spawned) / 1000),
      store_messages: messages + deliveries, peak_rss_bytes: rss,
      initial_seconds: copied ? undefined : round(initialSeconds),
      note: `replica process stopped, ${deliveries} deliveries to the primary (16 writers, unique messages), replica started again: from its session's start ` +
        `to the primary's holding its ack (${round((done - spawned) / 1000, 2)} s from the process start); the primary held ${messages} messages before` +
        (copied ? ' (a cold copy of the replicate step\'s pair)' : ` (the replica's first copy of those, from empty: ${round(initialSeconds, 1)} s)`),
    });
    await check(replicaDir, address, messages + deliveries);
  } finally {
    await primary.close();
    await store.close();
    await removeTree(root);
    await removeTree(replicaDir);
  }
}

/** N deliveries from `source` (cycled), each made unique by a header, by 16 writers into 16 mailboxes. */
async function deliverWhileDown(store: Store, source: string[], deliveries: number): Promise<number> {
  const writers = 16;
  const boxes = Array.from({ length: writers }, (_, w) => `user/catchup${w}/INBOX`);
  for (const box of boxes) await store.createMailbox(box);
  let next = 0, bytes = 0;
  const started = performance.now();
  await Promise.all(boxes.map(async (box) => {
    for (let i = next++; i < deliveries; i = next++) {
      const message = Buffer.concat([Buffer.from(`X-Bench-Delivery: ${i} ${started}\r\n`), await fs.readFile(source[i % source.length]!)]);
      bytes += message.length;
      await store.append(box, message);
      if (i % 10_000 === 9_999) progress(`replication: ${i + 1} of ${deliveries} deliveries while the replica is down`);
    }
  }));
  return bytes;
}

/** `mailstore replica check --json` on the stopped replica, under /usr/bin/time; the primary answers from this process. */
async function check(replicaDir: string, address: string, messages: number): Promise<void> {
  const timeFile = join(work, 'check.time');
  resetPeakRss();
  const started = performance.now();
  const ran = await runProcess('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, process.execPath, cli, '--store', replicaDir, 'replica', 'check', '--primary', address, '--json']);
  const seconds = (performance.now() - started) / 1000;
  const kib = Number(((await readText(timeFile)) ?? '0 0').trim().split(/\s+/)[1] ?? 0);
  const result = JSON.parse(ran.stdout || '{}') as { identical?: boolean; differences?: unknown[] };
  if (ran.code !== 0 || !result.identical) throw new Error(`replica check exited ${ran.code} (${result.differences?.length ?? '?'} differences): ${ran.stderr.trim().split('\n').pop()}`);
  emit({
    peer: 'mailstore', measurement: 'replica-check', messages, seconds: round(seconds), peak_rss_bytes: kib * 1024, primary_peak_rss_bytes: await peakRssOf(process.pid),
    note: '`mailstore replica check --json` on the stopped replica (its own process, store open included; /usr/bin/time: wall and peak RSS), ' +
      'the primary answering digests from the bench process (primary_peak_rss_bytes: its VmHWM after a reset to the RSS it had, so an upper bound that includes the import before); 0 differences',
  });
}

/** Clears this process's VmHWM, so the peak read after the check is the check's (Linux; ignored elsewhere). */
function resetPeakRss(): void {
  spawnSync('sh', ['-c', `echo 5 > /proc/${process.pid}/clear_refs`]);
}

function runProcess(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
