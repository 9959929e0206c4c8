// Read back every message with hash verification (Store.readMessages re-hashes each body before
// yielding it; CORRUPT otherwise).
//
//   node dist/src/bench/measure/read.js --store DIR [--hash-threads N]
//
// --hash-threads: StoreOptions.readHashThreads (0: every body hashed in the reading thread; A/B runs).
import { Store } from '../../store/store.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from '../common.js';
import { warmPageCache } from '../files.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('mailstore', 'read', async () => {
  const threads = values.get('hash-threads');
  await warmPageCache(required(values, 'store')); // as Dovecot's files, which its import wrote just before its read
  const store = await Store.open(required(values, 'store'), threads === undefined ? {} : { readHashThreads: Number(threads) });
  let messages = 0, bytes = 0;
  const started = performance.now();
  for (const box of await store.listMailboxes()) {
    for await (const { body } of store.readMessages(box.name, { lendBodies: true })) {
      messages++;
      bytes += body.length;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  emit({
    peer: 'mailstore', measurement: 'read', messages, bytes, seconds: round(seconds), peak_rss_bytes: peakRssBytes(),
    note: 'library: readMessages(box, { lendBodies: true }) of every mailbox (each body valid until the next, as a server writing it out; index read in batches, bodies in pack order, each BLAKE3 re-hashed and compared before it is yielded; a group\'s bodies read into one shared buffer the hash worker reads in place; in a mailbox of 64 MiB or more on that worker beside the reads once it is up, the runs of one pack a job, and in the reading thread while the worker holds 2 jobs: StoreOptions.readHashThreads); bodies dropped, no output written; open + close not timed; warm page cache (the store\'s files read once before)',
  });
});
