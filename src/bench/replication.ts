// The `replication` bench step (issue 15): the peers first (tools/bench/peers/replication.sh:
// Cyrus sync_client -> sync_server, doveadm sync), then mailstore (measure/replication.ts): a copy
// of the corpus to an empty replica and one-writer delivery with one synchronous replica vs none
// in every round (goal rows), catch-up after N deliveries and `replica check` in round 1, and with
// --scale the same on a 1M-message store (100k deliveries) once.
import { join } from 'node:path';
import type { Bench } from './engine.js';
import { peers } from './engine.js';
import type { CorpusInfo } from './report.js';

export interface ReplicationStepOptions {
  /** The --scale store's corpus (an mbox of 1M small messages; 10k with --quick), made on demand. */
  scaleCorpus?: () => Promise<CorpusInfo>;
}

/** Deliveries while the replica is down: a tenth of the --scale store (100k at 1M); in the default run half the corpus, at most 10k. */
export function catchUpDeliveries(storeMessages: number, scale: boolean): number {
  return Math.max(100, scale ? Math.min(100_000, Math.floor(storeMessages / 10)) : Math.min(10_000, Math.floor(storeMessages / 2)));
}

export async function replicationMeasurements(bench: Bench, corpus: CorpusInfo, work: string, options: ReplicationStepOptions = {}): Promise<void> {
  if (!corpus.list) return; // one-message files are needed for delivery
  const dir = join(work, 'replication');
  const cli = bench.paths.cli;
  if (bench.settings.peers) await peers(bench, corpus, ['replication'], {});
  await bench.child(corpus.name, 'replication', ['--mode', 'replicate', '--cli', cli, '--dir', dir, '--mbox', corpus.mbox], { peer: 'mailstore', measurement: 'replicate' });
  await bench.child(corpus.name, 'replication', ['--mode', 'deliver', '--cli', cli, '--dir', dir, '--list', corpus.list, '--messages', String(bench.settings.deliver)], { peer: 'mailstore-sync1', measurement: 'repl-deliver' });
  // the same shapes with no store logic, right after (the floor of the latency goal on this machine)
  await bench.child(corpus.name, 'sync-repl-floor', ['--dir', join(dir, 'floor'), '--list', corpus.list, '--messages', String(bench.settings.deliver)], { peer: 'floor-repl', measurement: 'repl-deliver' });
  if (bench.round !== 1) return;
  const deliveries = catchUpDeliveries(corpus.messages, false);
  await bench.child(corpus.name, 'replication', ['--mode', 'catch-up', '--copy', '--cli', cli, '--dir', dir, '--list', corpus.list, '--deliveries', String(deliveries)], { peer: 'mailstore', measurement: 'catch-up' });
  if (!bench.settings.scale || !options.scaleCorpus) return;
  const scale = await options.scaleCorpus();
  if (!bench.corpora.some((c) => c.name === scale.name)) bench.corpora.push(scale);
  await bench.child(scale.name, 'replication', ['--mode', 'catch-up', '--cli', cli, '--dir', join(work, 'replication-scale'), '--list', corpus.list, '--mbox', scale.mbox, '--deliveries', String(catchUpDeliveries(scale.messages, true))],
    { peer: 'mailstore', measurement: 'catch-up' });
}
