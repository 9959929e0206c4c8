// Scrub of the whole store through the library: every pack record re-hashed, journal checksums,
// index cross-check. Peak RSS is the process's own.
//
//   node dist/src/bench/measure/scrub.js --store DIR
import { Store } from '../../store/store.js';
import { scrub } from '../../scrub/scrub.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from '../common.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('mailstore', 'scrub', async () => {
  const store = await Store.open(required(values, 'store'));
  const stats = await store.stats();
  const started = performance.now();
  const report = await scrub(store);
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  const s = report.summary;
  // wall seconds of each pass: the pack pass runs beside the journal and index passes
  const pass = s.passSeconds ?? { packs: 0, journal: 0, index: 0 };
  emit({
    peer: 'mailstore', measurement: 'scrub', messages: stats.messages, bytes: s.bytesVerified, seconds: round(seconds),
    peak_rss_bytes: peakRssBytes(), blobs: s.blobsVerified, journal_records: s.journalRecords, index_keys: s.indexKeys,
    damage: s.damage, pack_seconds: round(pass.packs), journal_seconds: round(pass.journal), index_seconds: round(pass.index),
    note: `library scrub(): ${s.blobsVerified} blobs in ${s.packs} packs re-hashed (${round(pass.packs, 2)} s), ` +
      `beside it ${s.journalRecords} journal records (${round(pass.journal, 2)} s) and ${s.indexKeys} index keys (${round(pass.index, 2)} s); ` +
      `${s.damage} damage findings; bytes = pack bytes read; warm page cache`,
  });
});
