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
  const phases = new Map<string, number>();
  let phase = 'packs', phaseStart = performance.now();
  const started = performance.now();
  const report = await scrub(store, {
    onProgress: (p) => {
      if (p.phase === phase) return;
      const now = performance.now();
      phases.set(phase, (now - phaseStart) / 1000);
      phase = p.phase; phaseStart = now;
    },
  });
  const seconds = (performance.now() - started) / 1000;
  phases.set(phase, (performance.now() - phaseStart) / 1000);
  await store.close();
  const s = report.summary;
  emit({
    peer: 'mailstore', measurement: 'scrub', messages: stats.messages, bytes: s.bytesVerified, seconds: round(seconds),
    peak_rss_bytes: peakRssBytes(), blobs: s.blobsVerified, journal_records: s.journalRecords, index_keys: s.indexKeys,
    damage: s.damage, pack_seconds: round(phases.get('packs') ?? 0), journal_seconds: round(phases.get('journal') ?? 0),
    index_seconds: round(phases.get('index') ?? 0),
    note: `library scrub(): ${s.blobsVerified} blobs in ${s.packs} packs re-hashed (${round(phases.get('packs') ?? 0, 2)} s), ` +
      `${s.journalRecords} journal records (${round(phases.get('journal') ?? 0, 2)} s), ${s.indexKeys} index keys (${round(phases.get('index') ?? 0, 2)} s); ` +
      `${s.damage} damage findings; bytes = pack bytes read; warm page cache`,
  });
});
