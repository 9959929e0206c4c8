// LMTP delivery into `mailstore serve --lmtp`, by the very client the peers' deliveries use
// (tools/bench/peers/lmtp-client.mjs: one message at a time per connection, each waiting for its
// 250, which the daemon sends only once the append is durable). The daemon is a process of its
// own; its RSS is sampled while it works. Afterwards the store is opened and the delivered count
// checked, so a 250 that stored nothing cannot pass as a delivery. --warmup W: the client's W
// untimed deliveries first (the list's messages after the first N; the cold_* fields), as the
// peers get them, so the timed N measure a warm daemon. The daemon's CPU per delivery and the
// client's are in the line (server_cpu_us_per_message, cpu_us_per_message; cold_* for the warm-up).
//
//   node dist/src/bench/measure/lmtp.js --cli CLI.js --client lmtp-client.mjs --store DIR --list LIST.TXT
//        --messages N [--warmup W] [--connections C] [--received] [--peer NAME] [--measurement NAME] [--profile DIR]
import { join } from 'node:path';
import { nodeFileSystem } from '../../fs/node-fs.js';
import { Store } from '../../store/store.js';
import { snapshotTimes, startDaemon, thinSamples } from '../daemon-process.js';
import { runLmtpClient } from '../lmtp-client-run.js';
import { emit, parseFlags, required, round, runMeasurement, type BenchResult } from '../common.js';

const { values, switches } = parseFlags(process.argv.slice(2));
const connections = Number(values.get('connections') ?? 1);
const peer = values.get('peer') ?? (connections === 1 ? 'mailstore' : `mailstore-${connections}c`);
const measurement = values.get('measurement') ?? 'lmtp';
/** RSS samples in the result line (the sampler takes one every 250 ms). */
const SAMPLES_SHOWN = 60;

await runMeasurement(peer, measurement, async () => {
  const root = required(values, 'store');
  const messages = Number(required(values, 'messages'));
  const warmup = Number(values.get('warmup') ?? 0);
  const users = connections === 1 ? ['bench'] : Array.from({ length: connections }, (_, n) => `bench${n}`);
  const store = await Store.open(root, { create: true });
  for (const user of users) await store.createMailbox(`user/${user}/INBOX`);
  await store.close();

  const lmtpSocket = join(root, 'lmtp.sock');
  const daemon = await startDaemon({ cli: required(values, 'cli'), store: root, lmtp: `unix:${lmtpSocket}`, profileDir: values.get('profile') });
  let result: BenchResult;
  let samples;
  let samplingFrom = 0;
  try {
    samplingFrom = Date.now();
    const stopSampling = daemon.sampleRss(250);
    result = await runLmtpClient(required(values, 'client'), [
      '--socket', lmtpSocket, '--rcpt', connections === 1 ? 'bench@example.com' : 'bench{n}@example.com', '--list', required(values, 'list'),
      '--count', String(messages), '--warmup', String(warmup), '--connections', String(connections), '--peer', peer, ...(switches.has('received') ? ['--received'] : []),
      '--note', `mailstore serve --lmtp (its own process, log to a file)`,
    ], daemon.child.pid!);
    samples = stopSampling();
  } finally {
    await daemon.stop();
  }
  if (result.error) throw new Error(result.error);
  const stored = await countMessages(root, users);
  const acked = (result.messages ?? 0) + Number(result.cold_messages ?? 0);
  if (stored !== acked) throw new Error(`the client was told 250 for ${acked} deliveries (${warmup} of them warm-up) but the store holds ${stored}`);
  const peak = samples.reduce((m, s) => Math.max(m, s.rss), 0);
  const snapshots = snapshotTimes(await nodeFileSystem.readFile(join(root, 'serve.log')).then((b) => b.toString('utf8'), () => ''), samplingFrom);
  emit({
    ...result, peer, measurement, connections,
    daemon_peak_rss_bytes: peak, daemon_peak_anon_bytes: samples.reduce((m, s) => Math.max(m, s.anon), 0),
    rss_samples: thinSamples(samples, SAMPLES_SHOWN).map((s) => [round(s.t, 2), s.rss, s.anon]),
    snapshots_s: snapshots,
    note: `${result.note}; store checked afterwards: ${stored} messages; daemon peak RSS ${Math.round(peak / 1048576)} MiB`,
  });
});

async function countMessages(root: string, users: string[]): Promise<number> {
  const store = await Store.open(root);
  try {
    let n = 0;
    for (const user of users) n += (await store.status(`user/${user}/INBOX`)).messages;
    return n;
  } finally {
    await store.close();
  }
}
