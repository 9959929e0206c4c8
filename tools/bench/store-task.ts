// One store operation in a process of its own, so its peak RSS is its own and not that of whatever
// built the store (issue 12's memory goals: compaction and snapshot at 1M messages <= 256 MB).
//
//   node dist/tools/bench/store-task.js --store DIR --task compact|snapshot|open|rebuild
// compact: compaction with grace 0; snapshot: a snapshot (and the retirement it allows);
// open: a timed open after a clean close; rebuild: index/ deleted, the open that rebuilds it timed.
// Prints one JSON line: seconds, peak_rss_bytes (and peak_rss_anon_bytes), and what the task did.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from '../../src/bench/common.js';

const { values } = parseFlags(process.argv.slice(2));
const root = required(values, 'store');
const task = required(values, 'task');

await runMeasurement('mailstore', `store-${task}`, async () => {
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
