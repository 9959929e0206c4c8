// Durable single-message delivery: W writers in one process, each awaiting one `append` at a time
// (acknowledged after the journal fdatasync); W > 1 exercises group commit. With --cli, one
// `mailstore append` process per message instead (what a delivery agent spawning the CLI gets).
//
// --warmup M: the list's M messages after the first N appended first by the same writers, untimed
// (their figures are the cold_* fields), so the timed N measure warm code (the daemon step's pair).
//
//   node dist/src/bench/measure/deliver.js --store DIR --list LIST.TXT --messages N [--writers W] [--warmup M] [--cli CLI.js]
import { spawn } from 'node:child_process';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { Store } from '../../store/store.js';
import { limits } from '../../limits.js';
import { coldFields, countingFileSystem, emit, firstListed, latencyTail, parseFlags, peakRssBytes, percentile, progress, required, round, runMeasurement, timedAndWarmup, type SyncCounts } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
const writers = Number(values.get('writers') ?? 1);
const cli = values.get('cli');
// --inline BYTES: StoreOptions.inlineBodyBytesMax (0: every body to a pack, the two-file commit);
// --peer NAME names the row (the one-sync comparison runs the same writer with both settings)
const inline = values.has('inline') ? Number(values.get('inline')) : undefined;
/** More than a message's own bytes that its journal record may take (frame header, CBOR of the op): beyond it, filler was written. */
const RECORD_OVERHEAD_BYTES_MAX = 4096;

const peer = values.get('peer') ?? (cli ? 'mailstore-cli' : writers === 1 ? 'mailstore' : `mailstore-${writers}w`);

await runMeasurement(peer, 'deliver', async () => {
  const root = required(values, 'store');
  const warmup = Number(values.get('warmup') ?? 0);
  if (cli) return deliverThroughCli(root, cli, await firstListed(required(values, 'list'), Number(required(values, 'messages'))));
  const { timed: files, warm } = await timedAndWarmup(required(values, 'list'), Number(required(values, 'messages')), warmup);
  const messages = await Promise.all(files.map((file) => nodeFileSystem.readFile(file)));
  const warmMessages = await Promise.all(warm.map((file) => nodeFileSystem.readFile(file)));
  const bytes = messages.reduce((sum, m) => sum + m.length, 0);
  const { fs, counts } = countingFileSystem();
  const store = await Store.open(root, { create: true, fs, ...(inline === undefined ? {} : { inlineBodyBytesMax: inline }) });
  const boxes = Array.from({ length: writers }, (_, w) => (writers === 1 ? 'INBOX' : `user/w${w}/INBOX`));
  for (const box of boxes) await store.createMailbox(box);
  const cold = await appendAll(store, boxes, warmMessages, counts);
  const syncsBefore = counts.fileSyncs;
  const { latencies, seconds, extended } = await appendAll(store, boxes, messages, counts);
  const fsyncs = counts.fileSyncs - syncsBefore;
  const journalFlush = store.journalFlush();
  await store.close();
  emit({
    peer, measurement: 'deliver', messages: messages.length, bytes, seconds: round(seconds), writers,
    p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
    fsyncs, fsyncs_per_message: round(fsyncs / messages.length), peak_rss_bytes: peakRssBytes(), journal_flush: journalFlush, ...coldFields(cold.latencies, cold.seconds),
    ...latencyTail(latencies, messages.map((m) => m.length), inline ?? limits.inlineBodyBytesDefault, extended),
    note: `library: ${writers} async writer${writers === 1 ? '' : 's'} in one process (${writers === 1 ? 'one mailbox' : 'one mailbox each'}), ` +
      `each awaiting store.append (acknowledged after fdatasync); ${round(fsyncs / messages.length, 2)} fdatasync per message` +
      (inline === undefined ? '' : inline === 0 ? '; inline bodies off (body to a pack, record to the journal: two files)' : `; bodies up to ${inline} bytes inside their journal record (one file)`) +
      (warmMessages.length ? `; ${warmMessages.length.toLocaleString('en-US')} untimed warm-up appends first (the list's next messages; cold_* fields)` : ''),
  });
});

/**
 * The writers, one per box, each awaiting one append at a time, taking the next message when done.
 * latencies[i] is message i's; extended[i] says that its commit also wrote the journal's next filler
 * (more bytes to the journal than its record: told apart only with one writer).
 */
async function appendAll(store: Store, boxes: string[], messages: Buffer[], counts: SyncCounts): Promise<{ latencies: number[]; seconds: number; extended: boolean[] }> {
  const latencies: number[] = new Array(messages.length);
  const extended: boolean[] = new Array(messages.length).fill(false);
  let next = 0;
  const started = performance.now();
  await Promise.all(boxes.map(async (box) => {
    for (let i = next++; i < messages.length; i = next++) {
      const t = performance.now();
      const journalBytes = counts.journalBytes;
      await store.append(box, messages[i]!);
      latencies[i] = performance.now() - t;
      extended[i] = boxes.length === 1 && counts.journalBytes - journalBytes > messages[i]!.length + RECORD_OVERHEAD_BYTES_MAX;
    }
  }));
  return { latencies, seconds: (performance.now() - started) / 1000, extended };
}

async function deliverThroughCli(root: string, cliPath: string, files: string[]): Promise<void> {
  const init = await run(process.execPath, [cliPath, '--store', root, 'init']);
  if (init.code !== 0) throw new Error(`mailstore init failed: ${init.stderr}`);
  const created = await run(process.execPath, [cliPath, '--store', root, 'mailbox', 'create', 'INBOX']);
  if (created.code !== 0) throw new Error(`mailstore mailbox create failed: ${created.stderr}`);
  const latencies: number[] = [];
  const bare: number[] = []; // `node -e 0` before each append: the start-up floor, alternating with it
  let bytes = 0;
  let bareMs = 0;
  const started = performance.now();
  for (const [i, file] of files.entries()) {
    const b = performance.now();
    const empty = await run(process.execPath, ['-e', '0']);
    if (empty.code !== 0) throw new Error(`node -e 0 failed (exit ${empty.code}): ${empty.stderr.trim()}`);
    bare.push(performance.now() - b);
    bareMs += bare[bare.length - 1]!;
    const t = performance.now();
    const result = await run(process.execPath, [cliPath, '--store', root, 'append', 'INBOX', file]);
    if (result.code !== 0) throw new Error(`mailstore append ${file} failed (exit ${result.code}): ${result.stderr.trim()}`);
    latencies.push(performance.now() - t);
    bytes += (await nodeFileSystem.readFile(file)).length;
    if (i % 100 === 99) progress(`mailstore CLI append: ${i + 1} of ${files.length}`);
  }
  const seconds = (performance.now() - started - bareMs) / 1000;
  emit({
    peer: 'node-start', measurement: 'deliver', messages: bare.length, seconds: round(bareMs / 1000),
    p50_ms: round(percentile(bare, 0.5)), p99_ms: round(percentile(bare, 0.99)),
    note: '`node -e 0` as its own process, run before each CLI append (alternating with it): the start-up floor of any node command',
  });
  emit({
    peer: 'mailstore-cli', measurement: 'deliver', messages: files.length, bytes, seconds: round(seconds),
    p50_ms: round(percentile(latencies, 0.5)), p99_ms: round(percentile(latencies, 0.99)), max_ms: round(Math.max(...latencies)),
    note: 'one `mailstore append INBOX FILE` process per message (node start, store open, append, fdatasync, close)',
    command: `node ${cliPath} --store STORE append INBOX FILE`,
  });
}

function run(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}
