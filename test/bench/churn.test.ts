// The churn step's pieces (src/bench/churn.ts, report-churn.ts): the seeded UID choice both sides
// expunge, its file format, and the goal verdicts (median over rounds, pass/miss/not measured).
import { describe, expect, it } from 'vitest';
import { churnUids, formatUidList, parseUidList } from '../../src/bench/churn.js';
import { churnGoals, compactionFloorLine, rebuildGoals, scaleRssGoal } from '../../src/bench/report-churn.js';
import type { TaggedResult } from '../../src/bench/report.js';

const row = (peer: string, round: number, seconds: number, extra: Record<string, number>): TaggedResult =>
  ({ corpus: 'main', peer, measurement: 'churn', round, seconds, messages: 4000, bytes: 1e8, ...extra });

describe('churn step', () => {
  it('chooses exactly the share of UIDs, ascending, distinct, the same for the same seed', () => {
    const uids = churnUids(20_000, 0.8, 'bench');
    expect(uids).toHaveLength(16_000);
    expect(new Set(uids).size).toBe(16_000);
    expect(uids.every((u, i) => u >= 1 && u <= 20_000 && (i === 0 || u > uids[i - 1]!))).toBe(true);
    expect(churnUids(20_000, 0.8, 'bench')).toEqual(uids);
    expect(churnUids(20_000, 0.8, 'other')).not.toEqual(uids);
    // random, not a block: both halves lose about 80 %
    expect(uids.filter((u) => u <= 10_000).length).toBeGreaterThan(7_600);
    expect(uids.filter((u) => u <= 10_000).length).toBeLessThan(8_400);
  });

  it('writes and reads the UID file; refuses what is not a UID', () => {
    expect(parseUidList(formatUidList([1, 5, 9]))).toEqual([1, 5, 9]);
    expect(() => parseUidList('1\nx\n')).toThrow(/not a UID/);
    expect(() => parseUidList('0\n')).toThrow(/not a UID/);
  });

  it('churn goals: the verdict is on the median round; a bigger mailstore store misses the speed goal', () => {
    const rows = [
      row('mailstore', 1, 2, { ratio: 1.05, disk_bytes: 100 }), row('dovecot-mdbox', 1, 5, { disk_bytes: 110 }),
      row('mailstore', 2, 4, { ratio: 1.2, disk_bytes: 100 }), row('dovecot-mdbox', 2, 5, { disk_bytes: 110 }),
      row('mailstore', 3, 2, { ratio: 1.06, disk_bytes: 100 }), row('dovecot-mdbox', 3, 6, { disk_bytes: 110 }),
    ];
    const [size, speed] = churnGoals(rows);
    expect(size!.pass).toBe(true);
    expect(size!.measured).toContain('1.060');
    expect(speed!.pass).toBe(true);
    expect(speed!.measured).toMatch(/^2\.50×/);
    const bigger = rows.map((r) => (r.peer === 'mailstore' ? { ...r, disk_bytes: 200 } : r));
    expect(churnGoals(bigger)[1]!.pass).toBe(false);
    expect(churnGoals([])[0]!.pass).toBeUndefined();
  });

  it('the floor diagnostic compares the floor with half of doveadm purge, on medians of the rounds', () => {
    const rows = [
      row('mailstore', 1, 1.2, {}), row('dovecot-mdbox', 1, 0.7, {}), row('floor-compact', 1, 0.5, {}),
      row('mailstore', 2, 1.0, {}), row('dovecot-mdbox', 2, 0.8, {}), row('floor-compact', 2, 0.4, {}),
      row('mailstore', 3, 1.1, {}), row('dovecot-mdbox', 3, 0.9, {}), row('floor-compact', 3, 0.45, {}),
    ];
    const line = compactionFloorLine(rows)!;
    expect(line).toContain('took 0.450 s');
    expect(line).toContain('≤ 0.400 s (half of doveadm purge\'s 0.800 s)');
    expect(line).toContain('out of reach on this disk');
    const fast = rows.map((r) => (r.peer === 'floor-compact' ? { ...r, seconds: 0.2 } : r));
    expect(compactionFloorLine(fast)).toContain('within reach of the floor');
    // the goal rows ignore the floor row
    expect(churnGoals(rows)[1]!.measured).toMatch(/^0\.80×/);
    expect(compactionFloorLine(rows.filter((r) => r.peer !== 'floor-compact'))).toBeUndefined();
  });

  it('rebuild goals judge only a 1M row; a smaller one is shown, not judged', () => {
    const r = (appended: number): TaggedResult => ({
      corpus: `scale-${appended}`, peer: 'mailstore', measurement: 'rebuild-snapshot', appended, seconds: 6, full_replay_seconds: 74, speedup: 12.3,
      compact_peak_rss_bytes: 200e6, snapshot_peak_rss_bytes: 150e6, snapshot_after_compact_peak_rss_bytes: 120e6, open_seconds: 0.5, fresh_open_seconds: 0.4,
    });
    expect(rebuildGoals([r(10_000), r(1_000_000)]).map((g) => g.pass)).toEqual([true, true, true]);
    expect(rebuildGoals([r(100_000)]).map((g) => g.pass)).toEqual([undefined, undefined, undefined]);
    expect(rebuildGoals([{ ...r(1_000_000), compact_peak_rss_bytes: 300e6 }])[1]!.pass).toBe(false);
  });

  it('the scale RSS goal judges every step of the 1M run; one step over, or one missing, is a miss', () => {
    const step = (n: number, measurement: string, rss: number): TaggedResult => ({ corpus: `scale-${n}`, peer: 'mailstore', measurement, peak_rss_bytes: rss, peak_rss_anon_bytes: rss / 2, peak_rss_file_bytes: rss / 2 });
    const growth = (n: number, rss: number): TaggedResult => ({
      ...step(n, 'rebuild-snapshot', rss),
      ...Object.fromEntries(['churn', 'full_replay', 'snapshot', 'rebuild', 'compact', 'snapshot_after_compact', 'open'].map((p) => [`${p}_peak_rss_bytes`, rss])),
    });
    const run = (n: number, rss: number) => [step(n, 'import', rss), step(n, 'scrub', rss), step(n, 'rebuild', rss), step(n, 'acl-list', rss), growth(n, rss)];
    expect(scaleRssGoal([...run(100_000, 300e6), ...run(1_000_000, 250e6)]).pass).toBe(true);
    expect(scaleRssGoal(run(100_000, 100e6)).pass).toBeUndefined();
    const compactOver = run(1_000_000, 250e6).map((r) => (r.measurement === 'rebuild-snapshot' ? { ...r, compact_peak_rss_bytes: 257e6 } : r));
    const goal = scaleRssGoal(compactOver);
    expect(goal.pass).toBe(false);
    expect(goal.measured).toContain('compaction 257');
    expect(scaleRssGoal(run(1_000_000, 250e6).filter((r) => r.measurement !== 'scrub')).pass).toBe(false);
  });
});

