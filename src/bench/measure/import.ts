// Bulk import of an mbox through the library (importMail: batched appendBatch, crash-safe
// throughout, everything durable when it returns), in its own process so peak RSS is its own.
//
//   node dist/src/bench/measure/import.js --store DIR --mbox FILE [--mailbox INBOX] [--peer NAME]
import { Store } from '../../store/store.js';
import { importMail } from '../../import/importer.js';
import { countingFileSystem, emit, parseFlags, peakRssBytes, progress, required, round, runMeasurement } from '../common.js';
import { warmPageCache } from '../files.js';

const { values } = parseFlags(process.argv.slice(2));
const peer = values.get('peer') ?? 'mailstore';
await runMeasurement(peer, 'import', async () => {
  const root = required(values, 'store');
  const mbox = required(values, 'mbox');
  await warmPageCache(mbox); // as dovecot.sh before its import (tools/bench/README.md, "The page cache here")
  const { fs, counts } = countingFileSystem();
  const started = performance.now();
  const store = await Store.open(root, { create: true, fs });
  let lastReport = started;
  const summary = await importMail(store, mbox, {
    mailbox: values.get('mailbox') ?? 'INBOX',
    format: 'mbox',
    onBatch: (batch) => {
      const now = performance.now();
      if (now - lastReport > 10_000) { lastReport = now; progress(`mailstore import: ${batch.importedTotal} messages durable, RSS ${Math.round(peakRssBytes() / 1048576)} MiB`); }
    },
  });
  await store.close();
  const seconds = (performance.now() - started) / 1000;
  emit({
    peer, measurement: 'import', messages: summary.imported, bytes: summary.bytes, seconds: round(seconds),
    peak_rss_bytes: peakRssBytes(), fsyncs: counts.fileSyncs, dir_fsyncs: counts.dirSyncs, batches: summary.batches,
    deduplicated: summary.deduplicated, skipped: summary.skipped,
    note: `library importMail (mbox) into a new store: ${summary.batches} batches (appendBatch, one journal record each), ` +
      `${counts.fileSyncs} fdatasync + ${counts.dirSyncs} dir fsync; ${summary.deduplicated} deduplicated; open + import + close timed; the mbox read once before (warm page cache)`,
  });
});
