// The replication section of the report: its goal rows are the median of per-round figures, the
// Cyrus LMTP figure comes from the peers step, and the 1M check goals get a verdict only from a
// 1M-message run (a smaller store shows its figures and an extrapolation, no verdict).
import { describe, expect, it } from 'vitest';
import { catchUpDeliveries } from '../../src/bench/replication.js';
import { checkGoals, latencyFloor, latencyGoal } from '../../src/bench/report-replication.js';
import { renderReport, type TaggedResult } from '../../src/bench/report.js';
import { fixtureRun } from './fixture.js';

const MB = 1_000_000;
const at = (round: number, corpus: string, r: Omit<TaggedResult, 'corpus'>): TaggedResult => ({ corpus, round, ...r });

function replicationResults(): TaggedResult[] {
  const out: TaggedResult[] = [];
  // three rounds: sync p50 ÷ unreplicated p50 = 3, 1.5, 2.5 -> median 2.5 (a miss)
  for (const [round, sync, cyrusSeconds] of [[1, 3, 40], [2, 1.5, 30], [3, 2.5, 35]] as const) {
    out.push(at(round, 'main', { peer: 'mailstore', measurement: 'replicate', messages: 20_000, bytes: 600 * MB, seconds: 10 }));
    out.push(at(round, 'main', { peer: 'cyrus-sync', measurement: 'replicate', messages: 20_000, bytes: 600 * MB, seconds: cyrusSeconds }));
    out.push(at(round, 'main', { peer: 'mailstore-unreplicated', measurement: 'repl-deliver', messages: 2000, seconds: 2, p50_ms: 1, p99_ms: 5 }));
    out.push(at(round, 'main', { peer: 'mailstore-sync1', measurement: 'repl-deliver', messages: 2000, seconds: 2 * sync, p50_ms: sync, p99_ms: 10 }));
  }
  out.push(at(1, 'main', { peer: 'dovecot-dsync', measurement: 'replicate', error: 'doveadm sync failed: boom' }));
  out.push(at(1, 'main', { peer: 'mailstore', measurement: 'catch-up', messages: 10_000, bytes: 300 * MB, seconds: 6 }));
  out.push(at(1, 'main', { peer: 'mailstore', measurement: 'replica-check', messages: 30_000, seconds: 1.5, peak_rss_bytes: 100 * MB, primary_peak_rss_bytes: 150 * MB }));
  return out;
}

describe('replication report', () => {
  it('the latency goal is the median of the per-round p50 ratios, a verdict of ≤ 2×', () => {
    const goal = latencyGoal(replicationResults());
    expect(goal.measured).toMatch(/^2\.50× \(p50 2\.50 vs 1\.00 ms, p99 10\.0 vs 5\.00 ms, median of 3 rounds, spread 1\.50–3\.00×\)/);
    expect(goal.pass).toBe(false);
    const quick = latencyGoal(replicationResults().filter((r) => r.round === 2));
    expect(quick.pass).toBe(true);
    expect(latencyGoal([]).pass).toBeUndefined();
  });

  it("the floor line: the no-store-logic shapes' ratio and the latency a replica adds, beside mailstore's", () => {
    expect(latencyFloor(replicationResults())).toBeUndefined();
    const withFloor = [...replicationResults()];
    // floor p50 0.2 vs 0.5, 0.2 vs 0.4, 0.25 vs 0.55 -> ratios 2.5, 2, 2.2 -> median 2.2; added 0.3, 0.2, 0.3 -> 0.3
    for (const [round, alone, sync] of [[1, 0.2, 0.5], [2, 0.2, 0.4], [3, 0.25, 0.55]] as const) {
      withFloor.push(at(round, 'main', { peer: 'floor-repl-alone', measurement: 'repl-deliver', messages: 1000, seconds: 1, p50_ms: alone }));
      withFloor.push(at(round, 'main', { peer: 'floor-repl-sync1', measurement: 'repl-deliver', messages: 1000, seconds: 1, p50_ms: sync }));
    }
    const line = latencyFloor(withFloor)!;
    expect(line).toContain('makes the p50 2.20× (median of 3 rounds, spread 2.00–2.50×) and adds 0.300 ms to it');
    // mailstore adds 2, 0.5, 1.5 ms in the fixture's rounds -> median 1.5
    expect(line).toContain('to mailstore it adds 1.500 ms');
  });

  it('the check goals: no verdict below 1M messages, a verdict from a 1M run', () => {
    const small = checkGoals(replicationResults());
    expect(small.map((g) => g.pass)).toEqual([undefined, undefined]);
    expect(small[0]!.measured).toContain('1.50 s for 30,000 messages');
    expect(small[1]!.measured).toBe('100 MB at 30,000 messages');
    // a --quick --scale run also checks a 10k-message store (after the main corpus's): its figures, the larger one
    const quickScale = checkGoals([...replicationResults(), at(1, 'scale-10000', { peer: 'mailstore', measurement: 'replica-check', messages: 41_000, seconds: 2, peak_rss_bytes: 90 * MB })]);
    expect(quickScale.map((g) => g.pass)).toEqual([undefined, undefined]);
    expect(quickScale[1]!.measured).toBe('90 MB at 41,000 messages');
    const big = checkGoals([...replicationResults(), at(1, 'scale-1000000', { peer: 'mailstore', measurement: 'replica-check', messages: 1_100_000, seconds: 12, peak_rss_bytes: 200 * MB })]);
    expect(big.map((g) => g.pass)).toEqual([false, true]);
    expect(big[0]!.measured).toContain('1,100,000 messages');
  });

  it('renders the section with the Cyrus ratio goal and the peers that could not run', () => {
    const run = fixtureRun();
    run.results.push(...replicationResults());
    const text = renderReport(run, '.bench/results.json');
    const section = text.slice(text.indexOf('### Replication (issue 15)'), text.indexOf('### Goals'));
    // mailstore 60 MB/s vs Cyrus 15, 20, 17.1 MB/s -> 4, 3, 3.5 -> median 3.5
    expect(section).toContain('Goal: replication ≥ 3× Cyrus sync_client → sync_server (MB/s, same corpus) — measured 3.50×');
    expect(section).toContain('**could not run**: doveadm sync failed: boom');
    // sync-replicated 2000 msgs / 6, 3, 5 s vs Cyrus LMTP (fixture, round 1 only) 2000 / 12 s
    expect(section).toMatch(/delivery with 1 synchronous replica ≥ 2× Cyrus unreplicated LMTP messages\/s — measured 2\.00× .* → \*\*pass\*\*/);
    expect(section).toContain('| main | replica-check | 30,000 |');
    expect(text).toMatch(/\| `replica check` of a 1M-message store ≤ 10 s \(1M only with --scale\) \| 1\.50 s for 30,000 messages .* \| not measured \|/);
  });

  it('the delivery table shows the CPU a delivery of both processes when the measurement has it', () => {
    const deliverTable = (results: TaggedResult[]) => {
      const run = fixtureRun();
      run.results.push(...results);
      const text = renderReport(run, '.bench/results.json');
      return text.slice(text.indexOf('**One writer, each delivery awaited'), text.indexOf('Goal: delivery with 1 synchronous replica'));
    };
    expect(deliverTable(replicationResults())).not.toContain('CPU µs a delivery');
    const withCpu = replicationResults().map((r) => r.measurement !== 'repl-deliver' ? r
      : r.peer === 'mailstore-sync1' ? { ...r, cpu_us_per_message: 1234, replica_cpu_us_per_message: 567 } : { ...r, cpu_us_per_message: 489 });
    const table = deliverTable(withCpu);
    expect(table).toContain('| CPU µs a delivery: primary / replica |');
    expect(table).toMatch(/\| mailstore-sync1 repl-deliver \|.*\| 1,234 \/ 567 \|/);
    expect(table).toMatch(/\| mailstore-unreplicated repl-deliver \|.*\| 489 \|/);
  });

  it('catch-up deliveries: 100k at 1M with --scale, half the corpus up to 10k by default', () => {
    expect(catchUpDeliveries(1_000_000, true)).toBe(100_000);
    expect(catchUpDeliveries(10_000, true)).toBe(1000);
    expect(catchUpDeliveries(20_000, false)).toBe(10_000);
    expect(catchUpDeliveries(2000, false)).toBe(1000);
  });
});
