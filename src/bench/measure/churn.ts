// Issue 12's churn row, mailstore side: import the corpus, expunge the UIDs listed in a file (80 %
// at random, the same list Dovecot gets: tools/bench/peers/churn-dovecot.sh), then compact (grace
// 0). Timed: the compaction alone (what `doveadm purge` is compared with). Reported: disk bytes of
// the whole store directory after (packs, journal, index, snapshots: du's allocated blocks) over
// the bytes of the live messages. The clock runs around compact() in an open store (a running
// store or daemon compacts by itself); open + compact + close is reported beside it.
//
//   node dist/src/bench/measure/churn.js --store DIR --mbox FILE --expunge UIDFILE
import { Store } from '../../store/store.js';
import { importMail } from '../../import/importer.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { emit, parseFlags, peakRssBytes, progress, required, round, runMeasurement } from '../common.js';
import { diskBytes, parseUidList } from '../churn.js';
import { compactionFloor } from '../compact-floor.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('mailstore', 'churn', async () => {
  const root = required(values, 'store');
  const uids = parseUidList((await nodeFileSystem.readFile(required(values, 'expunge'))).toString('utf8'));
  let store = await Store.open(root, { create: true });
  const imported = await importMail(store, required(values, 'mbox'), { mailbox: 'INBOX', format: 'mbox' });
  for (let i = 0; i < uids.length; i += 1000) await store.expunge('INBOX', uids.slice(i, i + 1000));
  const status = await store.status('INBOX');
  await store.close();
  progress(`mailstore churn: ${imported.imported} imported, ${uids.length} expunged, ${status.messages} left; the I/O floor, then compacting`);
  const floor = await compactionFloor(root, `${root}-floor`);
  emit({
    peer: 'floor-compact', measurement: 'churn', messages: floor.records, bytes: floor.bytesCopied, seconds: round(floor.seconds), pack_bytes: floor.packBytes, runs: floor.runs,
    note: `no store logic: the ${floor.records} live records (${floor.bytesCopied} bytes) copied from copies of the packs into a new file, ` +
      `one pread and one write per run of adjacent records (${floor.runs} runs, at most 4 MiB), synchronous calls; fdatasync, directory fsync, ` +
      `the ${floor.packBytes} bytes of old pack files unlinked, directory fsync: the I/O any compaction of this shape does on this disk`,
  });
  const before = await diskBytes(root);
  const opening = performance.now();
  store = await Store.open(root);
  const started = performance.now();
  const result = await store.compact({ graceMs: 0 });
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  const withOpen = (performance.now() - opening) / 1000;
  const after = await diskBytes(root);
  const live = status.bytes;
  emit({
    peer: 'mailstore', measurement: 'churn', messages: status.messages, bytes: live, seconds: round(seconds),
    disk_bytes: after, disk_bytes_before: before, ratio: round(after / live, 4), peak_rss_bytes: peakRssBytes(),
    open_compact_close_seconds: round(withOpen), expunged: uids.length, blobs_reclaimed: result.blobsReclaimed, packs_rewritten: result.packsRewritten.length, phases_ms: result.phases, phases_cpu_ms: result.phasesCpu,
    note: `${imported.imported} imported, ${uids.length} expunged at random (seeded), then open + compact (grace 0) + close timed: ` +
      `${result.packsRewritten.length} packs rewritten, ${result.blobsCopied} blobs copied, ${result.blobsReclaimed} reclaimed ` +
      `(wall ms by phase: ${Object.entries(result.phases).map(([phase, ms]) => `${phase} ${Math.round(ms)}`).join(', ')}); ` +
      `the whole store directory ${before} -> ${after} bytes (du), live messages ${live} bytes`,
  });
});
