// Read back every message with hash verification (Store.fetch re-hashes; CORRUPT otherwise).
//
//   node dist/tools/bench/mailstore-read.js --store DIR
import { Store } from '../../src/store/store.js';
import { emit, parseFlags, peakRssBytes, required, round, runMeasurement } from './common.js';

const { values } = parseFlags(process.argv.slice(2));
await runMeasurement('mailstore', 'read', async () => {
  const store = await Store.open(required(values, 'store'));
  let messages = 0, bytes = 0;
  const started = performance.now();
  for (const box of await store.listMailboxes()) {
    for await (const info of store.messages(box.name)) {
      const body = await store.fetch(box.name, info.uid);
      messages++;
      bytes += body.length;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  emit({
    peer: 'mailstore', measurement: 'read', messages, bytes, seconds: round(seconds), peak_rss_bytes: peakRssBytes(),
    note: 'library: messages() of every mailbox, then fetch() of each (BLAKE3 re-hash and compare before returning); warm page cache',
  });
});
