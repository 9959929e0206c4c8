// Rebuild time follows live state (issue 12): N small appends, 90 % of them expunged, then the
// index is rebuilt twice: once replaying the whole journal (no snapshot), once from a snapshot
// plus the journal after it. The goal is a >= 10x faster rebuild from the snapshot at N = 1M.
//
//   node dist/tools/bench/rebuild-snapshot.js --store DIR --messages N [--compact]
// --compact: compact (grace 0) after the expunges, so the snapshot carries no released blob entries.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { emit, parseFlags, peakRssBytes, progress, required, round, runMeasurement } from '../../src/bench/common.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');
const messages = Number(required(values, 'messages'));
/** Appends per appendBatch call, and UIDs per expunge call. */
const BATCH = 500;

await runMeasurement('mailstore', 'rebuild-snapshot', async () => {
  await rm(root, { recursive: true, force: true });
  const history = await buildHistory();
  if (switches.has('compact')) {
    const store = await Store.open(root, { autoSnapshot: false });
    try {
      progress(`rebuild-snapshot: compaction reclaimed ${(await store.compact()).blobsReclaimed} blobs`);
    } finally {
      await store.close();
    }
  }
  const full = await timedRebuild();
  if (!full.from.startsWith('the whole journal')) throw new Error(`expected a rebuild from the whole journal, got: ${full.from}`);
  let store = await Store.open(root, { autoSnapshot: false });
  const snapshot = await store.snapshot();
  await store.close();
  const fromSnapshot = await timedRebuild();
  if (!fromSnapshot.from.startsWith('snapshot ')) throw new Error(`expected a rebuild from the snapshot, got: ${fromSnapshot.from}`);
  if (fromSnapshot.messages !== full.messages) throw new Error(`the rebuild from the snapshot found ${fromSnapshot.messages} messages, the full replay ${full.messages}`);
  store = await Store.open(root, { autoSnapshot: false });
  const stats = await store.stats();
  await store.close();
  emit({
    peer: 'mailstore', measurement: 'rebuild-snapshot', messages: full.messages, seconds: round(fromSnapshot.seconds, 3),
    full_replay_seconds: round(full.seconds, 3), speedup: round(full.seconds / fromSnapshot.seconds, 2),
    appended: messages, journal_records: history.records, snapshot_bytes: snapshot.bytes, snapshot_seconds: round(snapshot.durationMs / 1000, 3),
    journal_bytes_before: history.journalBytes, journal_bytes_after: stats.journalBytesRetained, peak_rss_bytes: peakRssBytes(),
    note: `${messages} appends (batches of ${BATCH}), 90 % expunged${switches.has('compact') ? ', compacted' : ''}, ${history.records} journal records; index/ deleted and rebuilt: ` +
      `whole journal ${round(full.seconds, 2)} s, snapshot (${snapshot.bytes} bytes, written in ${round(snapshot.durationMs / 1000, 2)} s) + tail ${round(fromSnapshot.seconds, 2)} s; ` +
      `the snapshot retired the journal from ${history.journalBytes} to ${stats.journalBytesRetained} bytes`,
  });
});

/** The history: appends, then expunges of every uid not divisible by 10. */
async function buildHistory(): Promise<{ records: number; journalBytes: number }> {
  const store = await Store.open(root, { create: true, autoSnapshot: false });
  await store.createMailbox('INBOX');
  for (let i = 0; i < messages; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, messages - i) }, (_, k) => ({
      bytes: Buffer.from(`From: bench@example.org\r\nSubject: message ${i + k}\r\nMessage-ID: <${i + k}@bench>\r\n\r\nbody ${i + k}\r\n`),
    }));
    await store.appendBatch('INBOX', batch);
    if ((i / BATCH) % 200 === 0) progress(`rebuild-snapshot: ${i} of ${messages} appended`);
  }
  let doomed: number[] = [];
  for (let uid = 1; uid <= messages; uid++) {
    if (uid % 10 !== 0) doomed.push(uid);
    if (doomed.length >= BATCH || uid === messages) { await store.expunge('INBOX', doomed); doomed = []; }
  }
  const stats = await store.stats();
  const records = store.changes.lastSeq;
  await store.close();
  return { records, journalBytes: stats.journalBytes };
}

/** Deletes index/ and times the open that rebuilds it. */
async function timedRebuild(): Promise<{ seconds: number; messages: number; from: string }> {
  await rm(join(root, 'index'), { recursive: true, force: true });
  const started = performance.now();
  const store = await Store.open(root, { autoSnapshot: false });
  const seconds = (performance.now() - started) / 1000;
  const from = store.health.rebuiltFrom ?? '';
  const found = (await store.status('INBOX')).messages;
  await store.close();
  return { seconds, messages: found, from };
}
