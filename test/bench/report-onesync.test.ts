// The one-sync goal rows: per-round ratios of the inline row to floor-sync-one-zeroed and to the
// two-file row, verdict on the median.
import { describe, expect, it } from 'vitest';
import { oneSyncGoals } from '../../src/bench/report-onesync.js';
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
