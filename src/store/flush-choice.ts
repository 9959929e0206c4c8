// Which way a lone writer's journal-only commit reaches the disk: its write and fdatasync in one
// call in this thread (FileHandle.writevDurable), or the write here and the fdatasync through
// libuv's thread pool. Neither wins everywhere, so the writer measures both as it goes.
//
// Measured on the 2-core bench VM (BENCHMARKS.md "One-sync: the flush that measures itself"): with
// the machine quiet the in-thread flush is ~1.4x faster (a lone inline delivery's p50 0.39 against
// 0.62 ms: no hand-off to a pool thread and back); with both cores busy with other processes the
// pool's flush came back sooner (in-thread p50 0.6-3.5 ms against 0.3-1.2 ms in the same process,
// alternating), and which one a machine is has nothing to do with the store. So each way keeps its
// last few commit latencies, the faster median is taken, and every `probeEvery`th commit goes the
// other way (k times rarer when it measured k times slower, so probing a way at 2.3 ms against
// 0.3 costs a few percent, not a third) so a change in the machine is seen within a few hundred
// commits.
//
// Only a lone writer's commits are chosen for (Writer.flushesInThread): while this thread blocks in
// fdatasync no other mutation waits on it, and reads already run synchronously here (NodeFileHandle
// .read), so a disk that stalls stalls them either way.

import type { JournalFlushChoice } from './types.js';

/** Latencies kept per way; the median of these decides. */
const SAMPLES = 7;
/** Probes of a way that measured k times slower come k times rarer, up to this factor. */
const PROBE_SPACING_MAX = 8;

export class FlushChoice {
  private readonly thread = new Float64Array(SAMPLES);
  private readonly pool = new Float64Array(SAMPLES);
  private readonly sorted = new Float64Array(SAMPLES);
  private threadCount = 0;
  private poolCount = 0;
  private commits = 0;
  private preferThread = true;
  /** Commits the preferred way before the next probe of the other: probeEvery, times how many times slower the other way measured (at most PROBE_SPACING_MAX). */
  private nextProbe: number;

  constructor(private readonly probeEvery = 16) {
    this.nextProbe = probeEvery;
  }

  /** Whether this commit flushes in this thread. */
  inThread(): boolean {
    if (this.threadCount < SAMPLES) return true;
    if (this.poolCount < SAMPLES) return false;
    if (++this.commits < this.nextProbe) return this.preferThread;
    this.commits = 0;
    return !this.preferThread;
  }

  /** The commit's latency (write to durable, ms), taken the way `inThread` said. */
  record(inThread: boolean, ms: number): void {
    if (inThread) this.thread[this.threadCount++ % SAMPLES] = ms;
    else this.pool[this.poolCount++ % SAMPLES] = ms;
    if (this.threadCount < SAMPLES || this.poolCount < SAMPLES) return;
    // no new array a commit
    const thread = median(this.thread, this.sorted), pool = median(this.pool, this.sorted);
    this.preferThread = thread <= pool;
    // a probe costs the slower way's latency: the slower it measured, the rarer the probes
    const faster = this.preferThread ? thread : pool, slower = this.preferThread ? pool : thread;
    const spacing = faster > 0 ? Math.round(slower / faster) : PROBE_SPACING_MAX;
    this.nextProbe = this.probeEvery * Math.min(PROBE_SPACING_MAX, Math.max(1, spacing));
  }

  /** For `stats` and tests: which way is preferred and the medians it rests on (ms; null until measured). */
  describe(): JournalFlushChoice {
    return {
      preferThread: this.preferThread,
      threadMedianMs: this.threadCount >= SAMPLES ? median(this.thread, this.sorted) : null,
      poolMedianMs: this.poolCount >= SAMPLES ? median(this.pool, this.sorted) : null,
    };
  }
}

/** The median of `values`, sorted in `scratch` (as long as `values`, overwritten). */
function median(values: Float64Array, scratch: Float64Array): number {
  scratch.set(values);
  scratch.sort();
  return scratch[scratch.length >> 1];
}
