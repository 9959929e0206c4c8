// Rebuild time and memory follow live state (issue 12): N small appends, 90 % of them expunged
// (the history), then, each heavy step in a process of its own (store-task.ts) so its peak RSS is
// its own:
//   1. index/ deleted, the open that replays the whole journal timed;
//   2. a snapshot (peak RSS), index/ deleted again, the rebuild from it timed: the goal is >= 10x
//      faster than 1. at N = 1M (before any compaction);
//   3. a compaction with grace 0 (peak RSS, goal <= 256 MB at 1M) and a snapshot after it (peak RSS);
//   4. open after a clean close, against a store that holds the same live messages without the
//      history (open time should not follow history).
//
//   node dist/tools/bench/rebuild-snapshot.js --store DIR --messages N
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Store } from '../../src/store/store.js';
import { emit, parseFlags, peakRssBytes, progress, required, round, runMeasurement, type BenchResult } from '../../src/bench/common.js';

const { values } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');
const messages = Number(required(values, 'messages'));
/** Appends per appendBatch call, and UIDs per expunge call. */
const BATCH = 500;
const TASK = join(dirname(fileURLToPath(import.meta.url)), 'store-task.js');

await runMeasurement('mailstore', 'rebuild-snapshot', async () => {
  await rm(root, { recursive: true, force: true });
  const history = await buildHistory(root, messages, (uid) => uid % 10 !== 0);
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
  await buildHistory(fresh, messages / 10, () => false);
  const freshOpen = await task(fresh, 'open');
  await rm(fresh, { recursive: true, force: true });
  const mb = (bytes: unknown) => round(Number(bytes) / 1e6, 1);
  emit({
    peer: 'mailstore', measurement: 'rebuild-snapshot', messages: Number(full.messages), seconds: Number(fromSnapshot.seconds),
    full_replay_seconds: Number(full.seconds), speedup: round(Number(full.seconds) / Number(fromSnapshot.seconds), 2),
    appended: messages, journal_records: history.records, journal_bytes_before: history.journalBytes,
    snapshot_bytes: Number(snapshot.snapshot_bytes), snapshot_seconds: Number(snapshot.seconds), snapshot_peak_rss_bytes: Number(snapshot.peak_rss_bytes), snapshot_peak_rss_anon_bytes: Number(snapshot.peak_rss_anon_bytes ?? 0),
    journal_bytes_retired: Number(snapshot.journal_bytes_retired), rebuild_peak_rss_bytes: Number(fromSnapshot.peak_rss_bytes),
    compact_seconds: Number(compact.seconds), compact_peak_rss_bytes: Number(compact.peak_rss_bytes), compact_peak_rss_anon_bytes: Number(compact.peak_rss_anon_bytes ?? 0),
    compact_bytes_before: Number(compact.bytes_before), compact_bytes_after: Number(compact.bytes_after), compact_blobs_reclaimed: Number(compact.blobs_reclaimed),
    snapshot_after_compact_bytes: Number(snapshotAfter.snapshot_bytes), snapshot_after_compact_peak_rss_bytes: Number(snapshotAfter.peak_rss_bytes), snapshot_after_compact_peak_rss_anon_bytes: Number(snapshotAfter.peak_rss_anon_bytes ?? 0),
    open_seconds: Number(open.seconds), fresh_open_seconds: Number(freshOpen.seconds), fresh_messages: Number(freshOpen.messages),
    peak_rss_bytes: Math.max(Number(snapshot.peak_rss_bytes), Number(compact.peak_rss_bytes), Number(snapshotAfter.peak_rss_bytes)),
    note: `${messages} appends (batches of ${BATCH}), 90 % expunged, ${history.records} journal records; index/ deleted and rebuilt: ` +
      `whole journal ${full.seconds} s, snapshot (${mb(snapshot.snapshot_bytes)} MB, written in ${snapshot.seconds} s, peak RSS ${mb(snapshot.peak_rss_bytes)} MB) + tail ${fromSnapshot.seconds} s; ` +
      `compaction (grace 0) ${compact.seconds} s, ${mb(compact.bytes_before)} -> ${mb(compact.bytes_after)} MB of packs, peak RSS ${mb(compact.peak_rss_bytes)} MB; ` +
      `snapshot after it ${mb(snapshotAfter.snapshot_bytes)} MB, peak RSS ${mb(snapshotAfter.peak_rss_bytes)} MB; ` +
      `open after a clean close ${open.seconds} s vs ${freshOpen.seconds} s for a store of the ${freshOpen.messages} live messages without the history; harness peak RSS ${mb(peakRssBytes())} MB`,
  });
});

/** One store-task.js run: its JSON line (an error line is thrown). */
async function task(store: string, name: string): Promise<BenchResult> {
  progress(`rebuild-snapshot: ${name} on ${store}`);
  const { stdout } = await promisify(execFile)(process.execPath, [TASK, '--store', store, '--task', name], { maxBuffer: 1 << 20 });
  const line = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as BenchResult;
  if (line.error) throw new Error(`store-task ${name}: ${line.error}`);
  return line;
}

/** The history: `count` appends to INBOX, then expunges of every uid `doomed` picks. */
async function buildHistory(dir: string, count: number, doomed: (uid: number) => boolean): Promise<{ records: number; journalBytes: number }> {
  const store = await Store.open(dir, { create: true, autoSnapshot: false });
  await store.createMailbox('INBOX');
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => ({
      bytes: Buffer.from(`From: bench@example.org\r\nSubject: message ${i + k}\r\nMessage-ID: <${i + k}@bench>\r\n\r\nbody ${i + k}\r\n`),
    }));
    await store.appendBatch('INBOX', batch);
    if ((i / BATCH) % 200 === 0) progress(`rebuild-snapshot: ${i} of ${count} appended`);
  }
  let uids: number[] = [];
  for (let uid = 1; uid <= count; uid++) {
    if (doomed(uid)) uids.push(uid);
    if (uids.length >= BATCH || (uid === count && uids.length > 0)) { await store.expunge('INBOX', uids); uids = []; }
  }
  const stats = await store.stats();
  const records = store.changes.lastSeq;
  await store.close();
  return { records, journalBytes: stats.journalBytes };
}
