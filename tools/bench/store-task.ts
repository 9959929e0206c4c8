// One store operation in a process of its own, so its peak RSS is its own and not that of whatever
// built the store (issue 12's memory goals: compaction and snapshot at 1M messages <= 256 MB).
//
//   node dist/tools/bench/store-task.js --store DIR --task compact|snapshot|open|rebuild|churn [--messages N --expunge yes|no]
// compact: compaction with grace 0; snapshot: a snapshot (and the retirement it allows);
// open: a timed open after a clean close; rebuild: index/ deleted, the open that rebuilds it timed;
// churn: a new store, N small appends to INBOX (batches of 500), then (--expunge yes) 90 % of them
// expunged (every uid but each tenth), 500 uids a call: the history the others run on.
// Prints one JSON line: seconds, peak_rss_bytes (and peak_rss_anon_bytes), and what the task did.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { emit, parseFlags, peakRssBytes, progress, required, round, runMeasurement } from '../../src/bench/common.js';

const { values } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');
const task = required(values, 'task');
/** Appends per appendBatch call, and UIDs per expunge call (churn). */
const BATCH = 500;

await runMeasurement('mailstore', `store-${task}`, async () => {
  if (task === 'churn') {
    const started = performance.now();
    const history = await buildHistory(root, Number(required(values, 'messages')), values.get('expunge') === 'yes' ? (uid) => uid % 10 !== 0 : () => false);
    emit({ peer: 'mailstore', measurement: 'store-churn', seconds: round((performance.now() - started) / 1000, 3), peak_rss_bytes: peakRssBytes(), journal_records: history.records, journal_bytes: history.journalBytes, messages: history.messages });
    return;
  }
  if (task === 'rebuild') await rm(join(root, 'index'), { recursive: true, force: true });
  const started = performance.now();
  const store = await Store.open(root, { autoSnapshot: false });
  const opened = performance.now();
  const extra: Record<string, unknown> = {};
  try {
    if (task === 'open' || task === 'rebuild') {
      extra.rebuilt_from = store.health.rebuiltFrom;
      extra.messages = (await store.stats()).messages;
    } else if (task === 'compact') {
      const result = await store.compact({ graceMs: 0 });
      Object.assign(extra, { blobs_reclaimed: result.blobsReclaimed, blobs_copied: result.blobsCopied, bytes_before: result.bytesBefore, bytes_after: result.bytesAfter, packs_rewritten: result.packsRewritten.length });
    } else if (task === 'snapshot') {
      const result = await store.snapshot();
      Object.assign(extra, { snapshot_bytes: result.bytes, journal_bytes_retired: result.retired.bytes });
    } else {
      throw new Error(`unknown --task ${task} (compact, snapshot, open, rebuild)`);
    }
  } finally {
    await store.close();
  }
  const end = task === 'open' || task === 'rebuild' ? opened : performance.now();
  emit({ peer: 'mailstore', measurement: `store-${task}`, seconds: round((end - started) / 1000, 3), open_seconds: round((opened - started) / 1000, 3), peak_rss_bytes: peakRssBytes(), ...extra });
});

/** The history: `count` appends to INBOX, then expunges of every uid `doomed` picks. */
async function buildHistory(dir: string, count: number, doomed: (uid: number) => boolean): Promise<{ records: number; journalBytes: number; messages: number }> {
  await rm(dir, { recursive: true, force: true });
  const store = await Store.open(dir, { create: true, autoSnapshot: false });
  try {
    await store.createMailbox('INBOX');
    for (let i = 0; i < count; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => ({
        bytes: Buffer.from(`From: bench@example.org\r\nSubject: message ${i + k}\r\nMessage-ID: <${i + k}@bench>\r\n\r\nbody ${i + k}\r\n`),
      }));
      await store.appendBatch('INBOX', batch);
      if ((i / BATCH) % 200 === 0) progress(`churn: ${i} of ${count} appended`);
    }
    let uids: number[] = [];
    for (let uid = 1; uid <= count; uid++) {
      if (doomed(uid)) uids.push(uid);
      if (uids.length >= BATCH || (uid === count && uids.length > 0)) { await store.expunge('INBOX', uids); uids = []; }
    }
    const stats = await store.stats();
    return { records: store.changes.lastSeq, journalBytes: stats.journalBytes, messages: stats.messages };
  } finally {
    await store.close();
  }
}
