// The object-storage tier beside the same store all-local (bench step tier; tools/bench/tier.ts
// starts Ceph and runs this once per mode, so each peak RSS is its own process's):
//   import of the mbox (time to durable); with the tier, the background mover under the default
//   policy until it rests (local share after), then `tier flush` (every sealed pack in the bucket);
//   after a reopen (an empty object cache): single-message fetches of random messages (p50/p99)
//   and a whole-mailbox readMessages (MB/s); a full scrub, and with the tier `--objects checksum`.
//   Every line after the import carries rss_so_far_bytes (maxRSS at its end): where the peak was reached.
//
//   node dist/src/bench/measure/tier.js --mode local|tier --store DIR --mbox FILE
//        [--endpoint URL --access-key K --secret-key S --bucket NAME]
import * as Minio from 'minio';
import { Store } from '../../store/store.js';
import { importMail } from '../../import/importer.js';
import { scrub } from '../../scrub/scrub.js';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { writeTierSettings } from '../../store/tier.js';
import { unopenedRoot } from '../../store/unopened-root.js';
import { removeTree } from '../files.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement, type BenchResult } from '../common.js';
import { memoryProbe } from './memory-probe.js';

const { values } = parseFlags(process.argv.slice(2));
const mode = required(values, 'mode') as 'local' | 'tier';
const peer = mode === 'tier' ? 'mailstore-tier' : 'mailstore-local';
const FETCHES = 300;

await runMeasurement(peer, 'tier', async () => {
  const root = required(values, 'store');
  await removeTree(root);
  if (mode === 'tier') await prepareBucket(root);
  // the mover's rounds: the policy rests at the first round that starts after the import and moves nothing
  const rounds: { startedMs: number; endedMs: number; moved: number }[] = [];
  let roundStart = performance.now();
  const onRound = (result?: { packsMoved: number }) => {
    const now = performance.now();
    rounds.push({ startedMs: roundStart, endedMs: now, moved: result?.packsMoved ?? -1 });
    roundStart = now;
  };
  const started = performance.now();
  let store = await Store.open(root, { create: true, ...(mode === 'tier' ? { autoTier: { intervalMs: 100, onRound } } : {}) });
  const summary = await importMail(store, required(values, 'mbox'), { mailbox: 'INBOX', format: 'mbox' });
  const durable = (performance.now() - started) / 1000;
  const importedMs = performance.now();
  await emitProbed({ peer, measurement: 'tier-import', messages: summary.imported, bytes: summary.bytes, seconds: round(durable), peak_rss_bytes: peakRssBytes(), note: `library importMail into a new store${mode === 'tier' ? ' with an object store (packs of 8 MiB; the mover runs beside the import)' : ''}; time to durable` });
  if (mode === 'tier') await settle(store, started, importedMs, rounds);
  await store.close();
  store = await Store.open(root); // an empty object cache: every moved pack comes from the bucket
  await readBack(store, summary.bytes);
  await scrubs(store);
  await store.close();
  await emitProbed({ peer, measurement: 'tier-rss', peak_rss_bytes: peakRssBytes(), note: 'peak RSS of the whole measurement process (import, moves, reads, scrubs)' });
});
// A failure leaves the store open and may leave a request to a hung radosgw pending, which kept
// the process (and the whole bench run) waiting after its error line: the lines are written
// (stdout is a pipe, written synchronously), so end here.
process.exit();

/** A result line with where the memory is now (memory-probe.ts): the peak alone does not say which phase holds what. */
async function emitProbed(result: BenchResult): Promise<void> {
  emit({ ...result, ...(await memoryProbe()) });
}

async function prepareBucket(root: string): Promise<void> {
  const endpoint = new URL(required(values, 'endpoint'));
  process.env.MAILSTORE_S3_ACCESS_KEY = required(values, 'access-key');
  process.env.MAILSTORE_S3_SECRET_KEY = required(values, 'secret-key');
  const bucket = required(values, 'bucket');
  const client = new Minio.Client({ endPoint: endpoint.hostname, port: Number(endpoint.port), useSSL: false, accessKey: process.env.MAILSTORE_S3_ACCESS_KEY, secretKey: process.env.MAILSTORE_S3_SECRET_KEY, region: 'us-east-1', pathStyle: true });
  if (!(await client.bucketExists(bucket))) await client.makeBucket(bucket);
  await (await Store.open(root, { create: true })).close();
  await writeTierSettings(unopenedRoot(nodeFileSystem, root), { url: `${endpoint.origin}/${bucket}` });
}

/** Waits for the mover to rest (a round begun after the import that moved nothing), then flushes the rest; emits both times and the local shares. */
async function settle(store: Store, started: number, importedMs: number, rounds: { startedMs: number; endedMs: number; moved: number }[]): Promise<void> {
  const rested = () => rounds.some((r) => r.startedMs >= importedMs && r.moved === 0);
  while (!rested() && performance.now() - importedMs < 600_000) await new Promise((r) => setTimeout(r, 100));
  const lastMove = Math.max(importedMs, ...rounds.filter((r) => r.moved > 0).map((r) => r.endedMs));
  const policy = await store.tierStatus();
  await emitProbed({
    peer, measurement: 'tier-policy', rss_so_far_bytes: peakRssBytes(), seconds: round((lastMove - started) / 1000), ratio: round(policy.localShare, 4),
    local_bytes: policy.localBytes, remote_bytes: policy.remoteBytes, remote_packs: policy.remotePacks,
    note: `the background mover under the default policy (10 % of all pack bytes local, the open pack included): seconds from the start of the import to its last move; ratio = local ÷ all pack bytes after it`,
  });
  const flushed = await store.tierFlush();
  const after = await store.tierStatus();
  await emitProbed({
    peer, measurement: 'tier-flush', rss_so_far_bytes: peakRssBytes(), seconds: round((performance.now() - started) / 1000), ratio: round(after.localShare, 4), bytes_moved: flushed.bytesMoved,
    note: `then tier flush (seals the open pack, moves every sealed pack: ${flushed.packsMoved} more, ${flushed.seconds.toFixed(1)} s): seconds from the start of the import until every sealed pack is in the bucket`,
  });
}

async function readBack(store: Store, bytes: number): Promise<void> {
  const { messages } = await store.status('INBOX');
  const latencies: number[] = [];
  let seed = 12345;
  for (let i = 0; i < Math.min(FETCHES, messages); i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const uid = 1 + (seed % messages);
    const t = performance.now();
    await store.fetch('INBOX', uid);
    latencies.push((performance.now() - t) * 1000);
  }
  latencies.sort((a, b) => a - b);
  const at = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!, 0);
  await emitProbed({ peer, measurement: 'tier-read-message', rss_so_far_bytes: peakRssBytes(), messages: latencies.length, p50_us: at(0.5), p99_us: at(0.99), note: `fetch of ${latencies.length} random messages after a reopen (object cache empty at the start, ${mode === 'tier' ? 'every pack in the bucket' : 'warm page cache'})` });
  const started = performance.now();
  let read = 0, n = 0;
  for await (const m of store.readMessages('INBOX')) { read += m.body.length; n++; }
  const seconds = (performance.now() - started) / 1000;
  await emitProbed({ peer, measurement: 'tier-read-mailbox', rss_so_far_bytes: peakRssBytes(), messages: n, bytes: read, seconds: round(seconds), note: `readMessages of the whole mailbox (${bytes} bytes imported), after the single fetches` });
}

async function scrubs(store: Store): Promise<void> {
  const full = await scrub(store);
  await emitProbed({ peer, measurement: 'tier-scrub', rss_so_far_bytes: peakRssBytes(), bytes: full.summary.bytesVerified, seconds: round(full.summary.seconds), damage: full.summary.damage, note: `full scrub: every record re-hashed${mode === 'tier' ? `, ${full.summary.objectBytesRead} bytes from the bucket` : ''}` });
  if (mode !== 'tier') return;
  const light = await scrub(store, { objects: 'checksum' });
  await emitProbed({ peer, measurement: 'tier-scrub-checksum', rss_so_far_bytes: peakRssBytes(), bytes: light.summary.bytesVerified, seconds: round(light.summary.seconds), damage: light.summary.damage, note: `scrub --objects checksum: ${light.summary.objectsByChecksum} objects checked by HEAD (size and MD5 ETag), not read` });
}
