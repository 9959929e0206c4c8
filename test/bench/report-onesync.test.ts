// The one-sync goal rows: per-round ratios of the inline row to floor-sync-one-zeroed and to the
// two-file row, verdict on the median; on the warm figures when the rows were warmed, with the cold
// ratio beside them.
import { describe, expect, it } from 'vitest';
import { oneSyncGoals, oneSyncTailText } from '../../src/bench/report-onesync.js';
import { renderReport, type TaggedResult } from '../../src/bench/report.js';
import { fixtureRun } from './fixture.js';

const row = (peer: string, round: number, perSecond: number): TaggedResult =>
  ({ corpus: 'c', peer, measurement: 'deliver', round, messages: 1000, seconds: 1000 / perSecond }) as TaggedResult;

describe('oneSyncGoals', () => {
  it('judges the median of the per-round ratios and says what it is made of', () => {
    const results = [1, 2, 3].flatMap((round) => [
      row('mailstore-two-file', round, 600), row('mailstore-inline', round, [1150, 1250, 900][round - 1]!), row('floor-sync-one-zeroed', round, 1300),
    ]);
    const [floor, twoFile] = oneSyncGoals(results);
    expect(floor.pass).toBe(false); // median round: 1150 / 1300 = 0.88 < 0.9
    expect(floor.measured).toMatch(/^0\.88/);
    expect(twoFile.pass).toBe(true); // 1150 / 600 = 1.92 ≥ 1.8
    expect(twoFile.measured).toContain('median of 3 rounds');
    // no warm-up (a run from before it, or --warmup 0): the goal lines as they were
    expect(floor.text).toBe('one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages/s');
    expect(floor.measured).not.toContain('cold');
  });

  /** The rows of `warmRun` with their warm-up: 2,000 untimed deliveries at `cold` messages/s. */
  const warmed = (r: TaggedResult, cold: number): TaggedResult => ({ ...r, warmup: 2000, cold_messages: 2000, cold_seconds: 2000 / cold, cold_p50_ms: 1000 / cold, cold_p99_ms: 9 });
  /**
   * Three rounds in which the warm rows say the opposite of the cold ones: warm, inline 1,300/s
   * against the floor's 1,400 (0.93×, pass) and two-file's 800 (1.63×, MISS); cold, inline 700
   * against 1,000 (0.70×, MISS) and 350 (2.00×, pass).
   */
  const warmRun = () => [1, 2, 3].flatMap((round) => [
    warmed(row('mailstore-two-file', round, 800), 350), warmed(row('mailstore-inline', round, 1300), 700), warmed(row('floor-sync-one-zeroed', round, 1400), 1000),
  ]);

  it('with a warm-up: the verdicts are on the warm (timed) rates of all three rows, the cold ratios beside them', () => {
    const [floor, twoFile] = oneSyncGoals(warmRun());
    expect(floor.pass).toBe(true);
    expect(floor.ratio).toBeCloseTo(1300 / 1400, 6);
    expect(floor.text).toBe('one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages/s, warm (after 2,000 untimed deliveries, the floor after 2,000 untimed writes into its own preallocated file)');
    expect(floor.measured).toBe('0.93× (1,300 vs 1,400 in the median round, median of 3 rounds, spread 0.93–0.93×); cold, the first 2,000 of a freshly started process, same run: 0.70× (700 vs 1,000 in the median round, median of 3 rounds, spread 0.70–0.70×)');
    expect(twoFile.pass).toBe(false);
    expect(twoFile.text).toBe('one-sync delivery: inline bodies ≥ 1.8× the two-file commit (same writer, inline off) messages/s, warm (each after 2,000 untimed deliveries)');
    expect(twoFile.measured).toMatch(/^1\.63× .*; cold, the first 2,000 of a freshly started process, same run: 2\.00× \(700 vs 350 /);
  });

  it('the report: the goal lines keep their form (Goal: TEXT — measured … → verdict), the delivery table says which rows are warm', () => {
    const data = fixtureRun();
    data.results.push(...warmRun().map((r) => ({ ...r, corpus: 'main', p50_ms: 0.5, p99_ms: 2 })));
    const markdown = renderReport(data, 'results.json');
    expect(markdown).toMatch(/^Goal: one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages\/s, warm \(after 2,000 untimed deliveries, .*\) — measured 0\.93× .*; cold, .*: 0\.70× .* → \*\*pass\*\*$/m);
    expect(markdown).toMatch(/^Goal: one-sync delivery: inline bodies ≥ 1\.8× the two-file commit .*, warm \(each after 2,000 untimed deliveries\) — measured 1\.63× .*; cold, .*: 2\.00× .* → \*\*MISS\*\*$/m);
    expect(markdown).toMatch(/\| one-sync delivery: inline bodies ≥ 1\.8× .*, warm \(each after 2,000 untimed deliveries\) \| 1\.63× .* \| \*\*MISS\*\* \|/);
    expect(markdown).toContain('| system | messages | s | messages/s | p50 / p99 ms | fdatasync/msg | warm-up | cold messages/s | cold p50 / p99 ms | mailstore ÷ this (messages/s) | note |');
    expect(markdown).toContain('| mailstore-inline | 1,000 | 0.769 | 1,300 | 0.50 / 2.00 |  | 2,000 untimed first: warm | 700 | 1.43 / 9.00 |');
    expect(markdown).toContain('| cyrus | 2,000 | 12.0 | 167 | 5.24 / 21.1 |  | none: cold |  |  |');
    expect(markdown).toContain('the rows the one-sync goals compare (mailstore-two-file, mailstore-inline, floor-sync-one-zeroed; the other floor-sync rows alike) first deliver 2,000 messages untimed');
    // the library goal against Cyrus stays cold on both sides, as it was
    expect(markdown).toMatch(/^Goal: library delivery ≥ 10× Cyrus LMTP messages\/s — measured [^;]* → /m);
  });

  it('the report without a warm-up: no warm-up column, no warm and cold words', () => {
    const data = fixtureRun();
    data.results.push(...[1, 2, 3].flatMap((round) => [row('mailstore-two-file', round, 800), row('mailstore-inline', round, 1300), row('floor-sync-one-zeroed', round, 1400)]).map((r) => ({ ...r, corpus: 'main' })));
    const markdown = renderReport(data, 'results.json');
    expect(markdown).not.toMatch(/warm-up|untimed|cold messages\/s/);
    expect(markdown).toContain('Goal: one-sync delivery: library delivery with inline bodies ≥ 90 % of floor-sync-one-zeroed messages/s — measured 0.93×');
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
