// The one-sync goal rows: per-round ratios of the inline row to floor-sync-one-zeroed and to the
// two-file row, verdict on the median.
import { describe, expect, it } from 'vitest';
import { oneSyncGoals, oneSyncTailText } from '../../src/bench/report-onesync.js';
import type { TaggedResult } from '../../src/bench/report.js';

const row = (peer: string, round: number, perSecond: number): TaggedResult =>
  ({ corpus: 'c', peer, measurement: 'deliver', round, messages: 1000, seconds: 1000 / perSecond }) as TaggedResult;
const rate = (r: { messages?: number; seconds?: number }) => (r.messages && r.seconds ? r.messages / r.seconds : undefined);

describe('oneSyncGoals', () => {
  it('judges the median of the per-round ratios and says what it is made of', () => {
    const results = [1, 2, 3].flatMap((round) => [
      row('mailstore-two-file', round, 600), row('mailstore-inline', round, [1150, 1250, 900][round - 1]!), row('floor-sync-one-zeroed', round, 1300),
    ]);
    const [floor, twoFile] = oneSyncGoals(results, rate);
    expect(floor.pass).toBe(false); // median round: 1150 / 1300 = 0.88 < 0.9
    expect(floor.measured).toMatch(/^0\.88/);
    expect(twoFile.pass).toBe(true); // 1150 / 600 = 1.92 ≥ 1.8
    expect(twoFile.measured).toContain('median of 3 rounds');
  });
});

describe('oneSyncTailText', () => {
  const group = (messages: number, seconds: number, p50: number) => ({ messages, seconds, mean_ms: seconds * 1000 / messages, p50_ms: p50, over_1ms: 0 });
  it('says where the inline row\'s and the floor\'s time goes, and nothing for results from before the tail was reported', () => {
    const inline = { ...row('mailstore-inline', 1, 1744), p50_ms: 0.29, mean_ms: 0.49, over_1ms: 120,
      tail: { inline_bytes_max: 32768, over_inline: group(52, 0.2, 3), journal_extension: group(16, 0.05, 2.5), rest: group(932, 0.25, 0.27) } };
    const floor = { ...row('floor-sync-one-zeroed', 1, 3118), p50_ms: 0.2, mean_ms: 0.29, over_1ms: 40,
      tail: { inline_bytes_max: 32768, over_inline: group(52, 0.1, 1.5), journal_extension: group(0, 0, 0), rest: group(948, 0.2, 0.2) } };
    const text = oneSyncTailText([inline, floor] as TaggedResult[])!;
    expect(text).toContain('mailstore-inline mean 0.490 / p50 0.290 ms, 120 over 1 ms: 0.200 s in the 52 bodies over 32 KiB, 0.050 s in 16 commits that extended the journal, 0.250 s in the other 932 (p50 0.270 ms)');
    expect(text).toContain('floor-sync-one-zeroed mean 0.290 / p50 0.200 ms, 40 over 1 ms: 0.100 s in the 52 bodies over 32 KiB, 0.200 s in the other 948');
    expect(text).not.toContain('0 commits');
    expect(oneSyncTailText([row('mailstore-inline', 1, 1744), row('floor-sync-one-zeroed', 1, 3118)])).toBeUndefined();
  });
});
