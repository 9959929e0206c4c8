// The report section of bench step tier: rows beside each other, the goal verdicts on the local
// share and the RSS, and a clear "not measured" when Ceph was missing.
import { describe, expect, it } from 'vitest';
import { tierSection } from '../../src/bench/report-tier.js';
import type { Goal, TaggedResult } from '../../src/bench/report.js';

const r = (peer: string, measurement: string, fields: Partial<TaggedResult> = {}): TaggedResult => ({ corpus: 'main', peer, measurement, ...fields } as TaggedResult);

describe('tier report section', () => {
  it('shows both stores and judges the share and RSS goals', () => {
    const out: string[] = [], goals: Goal[] = [];
    tierSection(out, goals, [
      r('mailstore-local', 'tier-import', { seconds: 4.2 }), r('mailstore-tier', 'tier-import', { seconds: 5.1 }),
      r('mailstore-tier', 'tier-policy', { seconds: 9, ratio: 0.12 }), r('mailstore-tier', 'tier-flush', { seconds: 11, ratio: 0.01 }),
      r('mailstore-tier', 'tier-read-message', { p50_us: 900, p99_us: 40000 }), r('mailstore-local', 'tier-read-message', { p50_us: 60, p99_us: 300 }),
      r('mailstore-tier', 'tier-read-mailbox', { bytes: 100e6, seconds: 4 }),
      r('mailstore-tier', 'tier-rss', { peak_rss_bytes: 300 * 1024 * 1024 }),
    ]);
    const text = out.join('\n');
    expect(text).toContain('| import: seconds to durable | 4.20 | 5.10 |');
    expect(text).toContain('900 / 40000');
    expect(text).toContain('| whole mailbox (readMessages), MB/s | – | 25.0 |');
    expect(text).toContain('| peak RSS (anonymous), MiB, the whole process | – (–) | 300 (–) |');
    expect(goals.map((g) => g.pass)).toEqual([true, false]); // 0.12 <= 0.15; 300 MiB > 256 MB
  });

  it('judges RSS in the unit the goal states (256 MB = 256,000,000 bytes), on the median of the rounds', () => {
    const MiB = 1024 * 1024;
    const rounds = (rss: number[]) => rss.flatMap((mib, i) => [
      r('mailstore-tier', 'tier-policy', { ratio: 0.09, round: i + 1 }),
      r('mailstore-tier', 'tier-rss', { peak_rss_bytes: mib * MiB, peak_rss_anon_bytes: 150 * MiB, round: i + 1 }),
    ]);
    // 250 MiB is 262 MB: within 256 MiB but over 256 MB, so a miss
    const strict: Goal[] = [];
    tierSection([], strict, rounds([250]));
    expect(strict[1]!.text).toContain('256,000,000 bytes (244.1 MiB)');
    expect(strict[1]!.measured).toContain('262 MB');
    expect(strict[1]!.pass).toBe(false);
    // three rounds: the verdict is on the median (230 MiB = 241 MB), one slow round aside
    const goals: Goal[] = [], out: string[] = [];
    tierSection(out, goals, rounds([230, 260, 220]));
    expect(goals[1]!.measured).toContain('241 MB (230 MiB, anonymous 150 MiB, median of 3 rounds, spread 231–273 MB)');
    expect(goals[1]!.pass).toBe(true);
    expect(goals[0]!.measured).toContain('median of 3 rounds');
    expect(goals[0]!.pass).toBe(true);
    // the table shows round 1 only
    expect(out.join('\n')).toContain('| peak RSS (anonymous), MiB, the whole process | – (–) | 230 (150) |');
  });

  it('says why when the step could not run', () => {
    const out: string[] = [], goals: Goal[] = [];
    tierSection(out, goals, [r('mailstore-tier', 'tier', { error: 'not run: Ceph is not installed' })]);
    expect(out.join('\n')).toContain('Not measured: not run: Ceph is not installed');
    expect(goals[0]!.pass).toBeUndefined();
    const none: string[] = [];
    tierSection(none, [], []);
    expect(none).toEqual([]);
  });
});
