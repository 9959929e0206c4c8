// Bench step tier: starts a throw-away Ceph (ceph.ts, as the tests do), runs
// src/bench/measure/tier.ts once all-local and once with the object store on the main corpus, and
// stops Ceph. Without Ceph it records one line saying so (the report lists it under "could not run").
// Its goal rows (local share, peak RSS) are the median of the rounds: later rounds measure the
// store with the tier again, not the all-local one (a table figure only).
import { join } from 'node:path';
import type { Bench } from '../../src/bench/engine.js';
import type { CorpusInfo } from '../../src/bench/report.js';
import { progress } from '../../src/bench/common.js';
import { cephInstalled, startCeph } from './ceph.js';

export const CEPH_MISSING = 'not run: Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)';

export async function tierMeasurement(bench: Bench, corpus: CorpusInfo, work: string): Promise<void> {
  if (!cephInstalled()) {
    progress(`tier: skipped, ${CEPH_MISSING}`);
    bench.add(corpus.name, { peer: 'mailstore-tier', measurement: 'tier', error: CEPH_MISSING });
    return;
  }
  if (bench.round === 1) await bench.child(corpus.name, 'tier', ['--mode', 'local', '--store', join(work, 'tier-local'), '--mbox', corpus.mbox], { peer: 'mailstore-local', measurement: 'tier' });
  progress('tier: starting a single-node Ceph (memstore OSD, radosgw on loopback)');
  const ceph = await startCeph();
  if (!ceph) return;
  try {
    await bench.child(corpus.name, 'tier', ['--mode', 'tier', '--store', join(work, 'tier-bucket'), '--mbox', corpus.mbox,
      '--endpoint', ceph.endpoint, '--access-key', ceph.accessKey, '--secret-key', ceph.secretKey, '--bucket', 'mailstore-bench'], { peer: 'mailstore-tier', measurement: 'tier' });
  } finally {
    await ceph.stop();
  }
}
