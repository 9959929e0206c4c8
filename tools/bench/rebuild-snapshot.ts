// Rebuild time and memory follow live state (issue 12): N small appends, 90 % of them expunged
// (the history), then, each heavy step in a process of its own (store-task.ts) so its peak RSS is
// its own:
//   1. index/ deleted, the open that replays the whole journal timed;
//   2. a snapshot (peak RSS), index/ deleted again, the rebuild from it timed: the goal is >= 10x
//      faster than 1. at N = 1M (before any compaction);
//   3. a compaction with grace 0 (peak RSS, goal <= 256 MB at 1M) and a snapshot after it (peak RSS);
//      the first snapshot retires nothing (a lone snapshot never does: docs/FORMAT.md, "Journal
//      retirement"), the second retires the journal below the first: journal_bytes_retired;
//   4. open after a clean close, against a store that holds the same live messages without the
//      history (open time should not follow history).
//
//   node dist/tools/bench/rebuild-snapshot.js --store DIR --messages N
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { emit, parseFlags, progress, required, round, runMeasurement, type BenchResult } from '../../src/bench/common.js';

const { values } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');
const messages = Number(required(values, 'messages'));
/** Appends per appendBatch call, and UIDs per expunge call (store-task.ts churn). */
const BATCH = 500;
const TASK = join(dirname(fileURLToPath(import.meta.url)), 'store-task.js');

await runMeasurement('mailstore', 'rebuild-snapshot', async () => {
  await rm(root, { recursive: true, force: true });
  const history = await task(root, 'churn', ['--messages', String(messages), '--expunge', 'yes']);
  const full = await task(root, 'rebuild');
  if (!String(full.rebuilt_from).startsWith('the whole journal')) throw new Error(`expected a rebuild from the whole journal, got: ${full.rebuilt_from}`);
  const snapshot = await task(root, 'snapshot');
  const fromSnapshot = await task(root, 'rebuild');
  if (!String(fromSnapshot.rebuilt_from).startsWith('snapshot ')) throw new Error(`expected a rebuild from the snapshot, got: ${fromSnapshot.rebuilt_from}`);
  if (fromSnapshot.messages !== full.messages) throw new Error(`the rebuild from the snapshot found ${fromSnapshot.messages} messages, the full replay ${full.messages}`);
  const compact = await task(root, 'compact');
  const snapshotAfter = await task(root, 'snapshot');
  const open = await task(root, 'open');
  const fresh = join(`${root}-fresh`);
  await rm(fresh, { recursive: true, force: true });
  const freshChurn = await task(fresh, 'churn', ['--messages', String(messages / 10), '--expunge', 'no']);
  const freshOpen = await task(fresh, 'open');
  await rm(fresh, { recursive: true, force: true });
  const mb = (bytes: unknown) => round(Number(bytes) / 1e6, 1);
  emit({
    peer: 'mailstore', measurement: 'rebuild-snapshot', messages: Number(full.messages), seconds: Number(fromSnapshot.seconds),
    full_replay_seconds: Number(full.seconds), speedup: round(Number(full.seconds) / Number(fromSnapshot.seconds), 2),
    appended: messages, journal_records: Number(history.journal_records), journal_bytes_before: Number(history.journal_bytes),
    snapshot_bytes: Number(snapshot.snapshot_bytes), snapshot_seconds: Number(snapshot.seconds), ...rss('snapshot', snapshot),
    journal_bytes_retired: Number(snapshot.journal_bytes_retired) + Number(snapshotAfter.journal_bytes_retired), ...rss('rebuild', fromSnapshot), ...rss('full_replay', full), ...rss('churn', history),
    compact_seconds: Number(compact.seconds), ...rss('compact', compact),
    compact_bytes_before: Number(compact.bytes_before), compact_bytes_after: Number(compact.bytes_after), compact_blobs_reclaimed: Number(compact.blobs_reclaimed),
    snapshot_after_compact_bytes: Number(snapshotAfter.snapshot_bytes), ...rss('snapshot_after_compact', snapshotAfter),
    open_seconds: Number(open.seconds), fresh_open_seconds: Number(freshOpen.seconds), fresh_messages: Number(freshOpen.messages), ...rss('open', open), fresh_journal_records: freshChurn.journal_records,
    // every step's process: the churn that built the history, both rebuilds, snapshots, compaction, open
    ...Object.fromEntries(['peak_rss_bytes', 'peak_rss_anon_bytes', 'peak_rss_file_bytes'].map((field) => [field, Math.max(...[history, full, snapshot, fromSnapshot, compact, snapshotAfter, open].map((r) => Number(r[field] ?? 0)))])),
    note: `${messages} appends (batches of ${BATCH}), 90 % expunged, ${history.journal_records} journal records; index/ deleted and rebuilt: ` +
      `whole journal ${full.seconds} s, snapshot (${mb(snapshot.snapshot_bytes)} MB, written in ${snapshot.seconds} s, peak RSS ${mb(snapshot.peak_rss_bytes)} MB) + tail ${fromSnapshot.seconds} s; ` +
      `compaction (grace 0) ${compact.seconds} s, ${mb(compact.bytes_before)} -> ${mb(compact.bytes_after)} MB of packs, peak RSS ${mb(compact.peak_rss_bytes)} MB; ` +
      `snapshot after it ${mb(snapshotAfter.snapshot_bytes)} MB, peak RSS ${mb(snapshotAfter.peak_rss_bytes)} MB, ` +
      `retiring ${mb(snapshotAfter.journal_bytes_retired)} MB of journal below the first snapshot (the first retired ${mb(snapshot.journal_bytes_retired)} MB: a lone snapshot keeps the journal whole); ` +
      `open after a clean close ${open.seconds} s vs ${freshOpen.seconds} s for a store of the ${freshOpen.messages} live messages without the history; churn (appends and expunges, its own process) peak RSS ${mb(history.peak_rss_bytes)} MB`,
  });
});

/** A step's peak RSS fields: `<step>_peak_rss_bytes` (maxRSS), `_anon_bytes` and `_file_bytes` (sampled RssAnon, RssFile). */
function rss(step: string, result: BenchResult): Record<string, number> {
  return {
    [`${step}_peak_rss_bytes`]: Number(result.peak_rss_bytes),
    [`${step}_peak_rss_anon_bytes`]: Number(result.peak_rss_anon_bytes ?? 0),
    [`${step}_peak_rss_file_bytes`]: Number(result.peak_rss_file_bytes ?? 0),
  };
}

/** One store-task.js run: its JSON line (an error line is thrown). */
async function task(store: string, name: string, args: string[] = []): Promise<BenchResult> {
  progress(`rebuild-snapshot: ${name} on ${store}`);
  const { stdout } = await promisify(execFile)(process.execPath, [TASK, '--store', store, '--task', name, ...args], { maxBuffer: 1 << 20 });
  const line = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as BenchResult;
  if (line.error) throw new Error(`store-task ${name}: ${line.error}`);
  return line;
}
