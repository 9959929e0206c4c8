// Open after a crash, and a full index rebuild from the journal.
//
//   --crash:   a `mailstore import` process is killed with SIGKILL mid-import; then Store.open
//              (resolve the tail, replay what the index had not applied) is timed, and every
//              batch the import reported durable must be there.
//   --rebuild: a clean open of an existing store is timed; then two rebuilds, each in a process of
//              its own (--rebuild-once: cold code and its own peak RSS), index/ deleted before each:
//              from the whole journal (the snapshots moved aside meanwhile: row rebuild-journal),
//              then, after a snapshot is taken, from the snapshot plus the journal after it (row
//              rebuild: the path issue 16's goal names).
//
//   node dist/src/bench/measure/recover.js --crash --store DIR --mbox FILE --cli CLI.js --kill-after N
//   node dist/src/bench/measure/recover.js --rebuild --store DIR
import { execFile, spawn } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeFileSystem as fs } from '../../fs/node-fs.js';
import { join } from 'node:path';
import { Store } from '../../store/store.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement, type BenchResult } from '../common.js';

type RebuildSource = 'journal' | 'snapshot';
/** Keeps the journal whole while the bench takes its snapshot (retirement never passes a consumer). */
const KEEP_JOURNAL_CONSUMER = 'bench-rebuild';

const { values, switches } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');

if (switches.has('crash')) await runMeasurement('mailstore', 'recover', crash);
if (switches.has('rebuild')) await runMeasurement('mailstore', 'rebuild', rebuild);
if (switches.has('rebuild-once')) await runMeasurement('mailstore', 'rebuild', () => rebuildOnce(required(values, 'from') as RebuildSource));

async function crash(): Promise<void> {
  const cli = required(values, 'cli');
  const killAfter = Number(required(values, 'kill-after'));
  const child = spawn(process.execPath, [cli, '--store', root, 'import', required(values, 'mbox'), '--mailbox', 'INBOX', '--verbose', '--batch-messages', '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let acked = 0, killed = false, buffer = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const m = /(\d+) imported so far/.exec(line);
      if (m) acked = Number(m[1]);
      if (!killed && acked >= killAfter) { killed = true; child.kill('SIGKILL'); }
    }
  });
  const code = await exited;
  if (!killed) throw new Error(`the import ended (exit ${code}) before it could be killed after ${killAfter} messages`);
  const started = performance.now();
  const store = await Store.open(root);
  const seconds = (performance.now() - started) / 1000;
  const found = (await store.status('INBOX')).messages;
  const health = store.health;
  await store.close();
  if (found < acked) throw new Error(`LOST MAIL: the import reported ${acked} messages durable before SIGKILL, open found ${found}`);
  emit({
    peer: 'mailstore', measurement: 'recover', messages: found, seconds: round(seconds, 4), acked, found,
    torn_tail_bytes: health.tornTailBytes ?? 0, peak_rss_bytes: peakRssBytes(),
    note: `SIGKILL to \`mailstore import\` (batches of 100) after it reported ${acked} messages durable (a process crash, not a power cut); ` +
      `Store.open timed: ${health.tornTailBytes ? `cut a torn tail of ${health.tornTailBytes} bytes, ` : ''}replay${health.rebuilt ? ` (rebuilt: ${health.rebuilt})` : ''}; found ${found} >= ${acked} acked`,
  });
}

async function rebuild(): Promise<void> {
  const started = performance.now();
  const store = await Store.open(root);
  const cleanSeconds = (performance.now() - started) / 1000;
  const stats = await store.stats();
  await store.close();
  emit({
    peer: 'mailstore', measurement: 'resync', messages: stats.messages, bytes: stats.bytesReferenced, seconds: round(cleanSeconds, 4),
    note: 'Store.open of a cleanly closed store (identity, lock, journal tail check, nothing to replay)',
  });
  if (stats.journalFirstSeq > 1) {
    emit({ peer: 'mailstore', measurement: 'rebuild-journal', error: `the journal was retired up to seq ${stats.journalFirstSeq - 1}: no whole-journal rebuild to time` });
  } else {
    // the snapshots aside: a rebuild finds none and replays the whole journal
    const snapshots = join(root, 'snapshots');
    const aside = join(root, 'snapshots.bench-aside');
    const moved = await rename(snapshots, aside).then(() => true, () => false);
    try {
      emitRebuild(await rebuildChild('journal'), stats.messages);
    } finally {
      if (moved) await rename(aside, snapshots);
    }
  }
  const taken = await takeSnapshot();
  emitRebuild(await rebuildChild('snapshot'), stats.messages, taken);
}

/** A snapshot as `mailstore snapshot` takes it, the journal kept whole (a bench consumer at seq 0 while it runs). */
async function takeSnapshot(): Promise<string> {
  const store = await Store.open(root);
  try {
    await store.changes.register(KEEP_JOURNAL_CONSUMER, 0);
    const started = performance.now();
    const result = await store.snapshot();
    const seconds = (performance.now() - started) / 1000;
    const what = `snapshot ${result.name} (format ${result.format}, ${round(result.bytes / 1e6, 1)} MB, ${result.records} records`;
    return result.reused ? `\`mailstore snapshot\` first (it kept the ${what}, already there at this seq)` : `\`mailstore snapshot\` first (${what}, written in ${round(seconds, 2)} s)`;
  } finally {
    await store.changes.remove(KEEP_JOURNAL_CONSUMER);
    await store.close();
  }
}

async function rebuildChild(from: RebuildSource): Promise<BenchResult> {
  const script = fileURLToPath(import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, [script, '--rebuild-once', '--from', from, '--store', root], { maxBuffer: 16 * 1024 * 1024 });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`the rebuild (from the ${from}) printed no result`);
  return JSON.parse(line) as BenchResult;
}

/** The child's line, renamed and noted (written as is: emit() would put this process's peak RssAnon over the child's). */
function emitRebuild(result: BenchResult, expected: number, snapshot?: string): void {
  const line = (r: BenchResult) => process.stdout.write(`${JSON.stringify(r)}\n`);
  if (result.error) { line({ ...result, measurement: snapshot ? 'rebuild' : 'rebuild-journal' }); return; }
  if (result.found !== expected) throw new Error(`the rebuild from ${result.rebuilt_from} found ${result.found} messages, expected ${expected}`);
  line({
    ...result, measurement: snapshot ? 'rebuild' : 'rebuild-journal', expected,
    note: snapshot
      ? `${snapshot}; index/ deleted, then Store.open (a fresh process) rebuilds it from ${result.rebuilt_from}; no message bodies read; found ${result.found} of ${expected}`
      : `snapshots moved aside; index/ deleted, then Store.open (a fresh process) rebuilds it from ${result.rebuilt_from} (${result.journal_bytes} journal bytes; no message bodies read); found ${result.found} of ${expected}`,
  });
}

/** One timed rebuild (index/ deleted), from what the store holds: `from` is what it must have used. */
async function rebuildOnce(from: RebuildSource): Promise<void> {
  await fs.removeTree(join(root, 'index'));
  const started = performance.now();
  const store = await Store.open(root);
  const seconds = (performance.now() - started) / 1000;
  const rebuiltFrom = store.health.rebuiltFrom ?? 'not rebuilt';
  const after = await store.stats();
  await store.close();
  const used: RebuildSource = rebuiltFrom.startsWith('snapshot ') ? 'snapshot' : 'journal';
  if (used !== from) throw new Error(`expected a rebuild from the ${from}, got: ${rebuiltFrom}`);
  emit({
    peer: 'mailstore', measurement: 'rebuild', messages: after.messages, bytes: after.bytesReferenced, seconds: round(seconds, 3),
    found: after.messages, journal_bytes: after.journalBytes, peak_rss_bytes: peakRssBytes(), rebuilt_from: rebuiltFrom,
  });
}
