// The report writer: the Markdown has every figure and its ratio, the JSON is the run's data, and
// each chart is an SVG that draws the figures the table beside it holds.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCharts } from '../../src/bench/charts.js';
import { END_MARKER, START_MARKER, median, rateGoal, renderReport, type TaggedResult } from '../../src/bench/report.js';
import { writeBenchmarksSection, writeRunReport } from '../../src/bench/write.js';
import { tmpDir } from '../helpers/tmp.js';
import { fixtureRun } from './fixture.js';

describe('charts', () => {
  it('one ratio chart per goal area, each drawing mailstore ÷ peer as the table computes it', async () => {
    const charts = await renderCharts(fixtureRun());
    expect(charts.map((c) => c.name)).toEqual(['ratio-import', 'ratio-deliver', 'ratio-read', 'ratio-scrub', 'ratio-rebuild', 'space']);
    const byName = Object.fromEntries(charts.map((c) => [c.name, c]));
    // import: 20000/5.123 vs 20000/6.934 messages/s
    expect(byName['ratio-import']!.values['dovecot-mdbox']).toBeCloseTo(6.934 / 5.123, 6);
    expect(byName['ratio-deliver']!.values.cyrus).toBeCloseTo(12.0 / 3.044, 6);
    // scrub: MB/s against b3sum, messages/s against Cyrus
    expect(byName['ratio-scrub']!.values['b3sum-packs']).toBeCloseTo((590 / 1.134) / (591 / 0.12), 6);
    expect(byName['ratio-scrub']!.values.cyrus).toBeCloseTo((20_000 / 1.134) / (2000 / 0.637), 6);
    for (const chart of charts) {
      expect(chart.svg.startsWith('<svg')).toBe(true);
      for (const system of Object.keys(chart.values)) expect(chart.svg).toContain(system);
    }
    expect(byName['ratio-import']!.svg).toContain('1.4×'); // the label at the bar's end
    expect(byName['ratio-deliver']!.svg).toContain('3.9×');
    expect(byName['ratio-scrub']!.svg).toContain('0.11×');
    expect(byName.space!.svg).toContain('0.98');
  });

  it('the growth curves come from the --scale steps: throughput and peak RSS at 10k, 100k and 1M', async () => {
    const growth = (await renderCharts(fixtureRun({ scale: true }))).filter((c) => c.section === 'growth');
    expect(growth.map((c) => c.name)).toEqual(['growth-throughput', 'growth-rss']);
    const [throughput, rss] = growth;
    expect(throughput!.values['import (messages/s)@10000']).toBeCloseTo(10_000 / 3.1, 6);
    expect(throughput!.values['rebuild (messages/s)@1000000']).toBeCloseTo(1_000_000 / 27, 6);
    expect(throughput!.svg).toContain('3,226'); // 10,000 / 3.1 s, labelled at its point
    expect(throughput!.svg).toContain('37,037');
    expect(rss!.values['scrub peak RSS@1000000']).toBe(308);
    expect(rss!.svg).toContain('import anonymous');
  });

  it('a run with no peer figures draws no ratio charts (nothing to compare)', async () => {
    const data = fixtureRun();
    data.results = data.results.filter((r) => r.peer === 'mailstore' && r.measurement !== 'space');
    expect(await renderCharts(data)).toEqual([]);
  });
});

describe('the report', () => {
  it('Markdown with the figures, their ratios, the goals and each chart under its table', () => {
    const markdown = renderReport(fixtureRun(), 'results.json', [{ section: 'import', title: 'Import ratios', path: 'charts/ratio-import.svg' }]);
    expect(markdown).toMatch(/\| mailstore \| 20,000 \| 611 \| 5\.123 \| 3,904 \|/);
    expect(markdown).toMatch(/\| dovecot-mdbox \| 20,000 \| 611 \| 6\.934 \| 2,884 \|.*\| 1\.35× \|/);
    expect(markdown).toContain('bulk import ≥ 3× Dovecot mdbox messages/s — measured 1.35×');
    expect(markdown).toContain('Cyrus has no bulk mbox import tool');
    const table = markdown.indexOf('### Bulk import'), chart = markdown.indexOf('![Import ratios](charts/ratio-import.svg)'), next = markdown.indexOf('### Durable');
    expect(table).toBeLessThan(chart);
    expect(chart).toBeLessThan(next);
  });

  it('a corpus run leaves out the sections of the generated corpus (ACL, scale, SpamAssassin)', () => {
    const markdown = renderReport(fixtureRun({ kind: 'corpus' }), 'results.json');
    expect(markdown).not.toContain('Mailboxes user u may see');
    expect(markdown).not.toContain('SpamAssassin');
    expect(markdown).not.toContain('Growth from 10k');
    expect(markdown).toContain('### Read back every message');
  });

  it('writeRunReport: report.md, results.json (the data itself) and the SVGs it refers to', async () => {
    const out = tmpDir('report-out');
    const data = fixtureRun({ scale: true, kind: 'corpus' });
    const written = await writeRunReport(data, out);
    expect(JSON.parse(readFileSync(written.json, 'utf8'))).toEqual(data);
    const markdown = readFileSync(written.markdown, 'utf8');
    expect(markdown.startsWith('# mailstore benchmark: fixture main')).toBe(true);
    const referenced = [...markdown.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]!);
    expect(referenced.sort()).toEqual(readdirSync(join(out, 'charts')).map((f) => `charts/${f}`).sort());
    expect(referenced).toContain('charts/ratio-import.svg');
    for (const file of referenced) expect(readFileSync(join(out, file), 'utf8')).toMatch(/^<svg/);
  });

  it('writeBenchmarksSection: only the text between the markers changes; charts are referenced relative to the file', async () => {
    const root = tmpDir('benchmarks-md');
    const file = join(root, 'BENCHMARKS.md');
    writeFileSync(file, `# Benchmarks\n\nAnalysis by hand.\n\n${START_MARKER}\nold results\n${END_MARKER}\n\nMore analysis.\n`);
    const written = await writeBenchmarksSection(fixtureRun({ scale: true }), file, join(root, '.bench', 'results-x.json'), join(root, 'docs', 'bench'), root);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith('# Benchmarks\n\nAnalysis by hand.\n\n')).toBe(true);
    expect(text.endsWith('\n\nMore analysis.\n')).toBe(true);
    expect(text).not.toContain('old results');
    expect(text).toContain('![Throughput from 10k to 1M messages](docs/bench/growth-throughput.svg)');
    expect(text).toContain('.bench/results-x.json');
    expect(written.charts.map((f) => f.slice(root.length))).toContain('/docs/bench/growth-rss.svg');
  });
});

// Issue 16: every goal row is the median of alternating rounds with its spread; a verdict flips
// only on the median. Made-up rounds whose ratios are known.
describe('rounds', () => {
  const msgRate = (r: { messages?: number; seconds?: number }) => (r.messages && r.seconds ? r.messages / r.seconds : undefined);
  /** Round `round` of the import goal: mailstore and Dovecot mdbox import 1,000 messages in the given seconds. */
  const importRound = (round: number | undefined, mailstoreS: number, dovecotS: number): TaggedResult[] => [
    { corpus: 'main', peer: 'dovecot-mdbox', measurement: 'import', messages: 1000, seconds: dovecotS, ...(round === undefined ? {} : { round }) },
    { corpus: 'main', peer: 'mailstore', measurement: 'import', messages: 1000, seconds: mailstoreS, ...(round === undefined ? {} : { round }) },
  ];
  const goal = (results: TaggedResult[]) => rateGoal(results, 'import ≥ 3×', ['mailstore', 'import'], ['dovecot-mdbox', 'import'], 3, msgRate);

  it('median and spread: odd and even counts', () => {
    expect(median([3.1, 2.5, 4])).toEqual({ median: 3.1, min: 2.5, max: 4, n: 3 });
    expect(median([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(median([7])).toEqual({ median: 7, min: 7, max: 7, n: 1 });
  });

  it('a goal row is the median of the per-round ratios, with the spread and the median round\'s figures', () => {
    // ratios 2.5×, 4×, 3.2× (dovecot seconds ÷ mailstore seconds): median 3.2, spread 2.5–4
    const g = goal([...importRound(1, 1, 2.5), ...importRound(2, 1, 4), ...importRound(3, 1, 3.2)]);
    expect(g.pass).toBe(true);
    expect(g.measured).toBe('3.20× (1,000 vs 313 in the median round, median of 3 rounds, spread 2.50–4.00×)');
  });

  it('the verdict flips only on the median: one good round does not pass a goal, one bad round does not fail it', () => {
    // round 1 passes (3.5×), the other two miss: median 2.9× → MISS
    const oneGood = goal([...importRound(1, 1, 3.5), ...importRound(2, 1, 2.9), ...importRound(3, 1, 2.8)]);
    expect(oneGood.pass).toBe(false);
    expect(oneGood.measured).toMatch(/^2\.90×/);
    // round 1 misses (1.5×, a busy minute), the other two pass: median 3.1× → pass
    const oneBad = goal([...importRound(1, 1, 1.5), ...importRound(2, 1, 3.1), ...importRound(3, 1, 3.3)]);
    expect(oneBad.pass).toBe(true);
    expect(oneBad.measured).toContain('spread 1.50–3.30×');
  });

  it('a round where one side failed is left out of the median, not counted as zero', () => {
    const results = [...importRound(1, 1, 3.5), ...importRound(2, 1, 2.0), ...importRound(3, 1, 3.3)];
    results[2] = { corpus: 'main', peer: 'dovecot-mdbox', measurement: 'import', error: 'doveadm exited 75', round: 2 };
    const g = goal(results);
    expect(g.measured).toContain('median of 2 rounds, spread 3.30–3.50×');
    expect(g.pass).toBe(true);
  });

  it('results without a round (a run from before rounds, --report-from) count as round 1', () => {
    const g = goal(importRound(undefined, 1, 3.2));
    expect(g.measured).toBe('3.20× (1,000 vs 313, 1 round)');
    expect(goal([...importRound(undefined, 1, 2), ...importRound(2, 1, 4), ...importRound(3, 1, 3.5)]).measured).toContain('median of 3 rounds, spread 2.00–4.00×');
  });

  it('the report: tables show round 1, goal rows the medians (rebuild and SpamAssassin too), the opening says how', () => {
    const data = fixtureRun();
    const later = (round: number, factor: number): TaggedResult[] => data.results
      .filter((r) => ['import', 'rebuild'].includes(r.measurement) && ['mailstore', 'dovecot-mdbox'].includes(r.peer) && !r.error)
      .map((r) => ({ ...r, round, seconds: r.peer === 'mailstore' ? r.seconds! * factor : r.seconds }));
    // round 1: 1.35× import, 26,008 msg/s rebuild; rounds 2 and 3: mailstore takes 1/2 and 1/3 of the time
    data.results = [...data.results.map((r) => ({ ...r, round: 1 })), ...later(2, 1 / 2), ...later(3, 1 / 3)];
    data.results.push(
      { corpus: 'spamassassin', peer: 'mailstore', measurement: 'read', messages: 6000, seconds: 1, round: 1 },
      { corpus: 'spamassassin', peer: 'dovecot-mdbox', measurement: 'read', messages: 6000, seconds: 0.7, round: 1 },
      { corpus: 'spamassassin', peer: 'mailstore', measurement: 'read', messages: 6000, seconds: 1, round: 2 },
      { corpus: 'spamassassin', peer: 'dovecot-mdbox', measurement: 'read', messages: 6000, seconds: 0.9, round: 2 },
    );
    const markdown = renderReport(data, 'results.json');
    // the table: round 1's figures only, one mailstore row
    expect(markdown).toMatch(/\| mailstore \| 20,000 \| 611 \| 5\.123 \| 3,904 \|/);
    expect(markdown.match(/^\| mailstore \| 20,000 \| 611 \|/gm)).toHaveLength(2); // import and read, not three imports
    // the goal: ratios 1.35, 2.71, 4.06 → median 2.71× (round 2), still a miss of 3×
    expect(markdown).toContain('bulk import ≥ 3× Dovecot mdbox messages/s — measured 2.71× (7,808 vs 2,884 in the median round, median of 3 rounds, spread 1.35–4.06×) → **MISS**');
    expect(markdown).toContain('rebuild ≥ 100,000 messages/s (from a snapshot taken first, plus the journal after it; row mailstore rebuild) — measured 52,016 messages/s, median of 3 rounds, spread 26,008–78,023 messages/s → **MISS**');
    // SpamAssassin read: 0.7× and 0.9× → median 0.8× → pass at ≥ 0.8×
    expect(markdown).toMatch(/SpamAssassin \(small messages\): read ≥ 0\.8× .* — measured 0\.80× .*median of 2 rounds, spread 0\.70–0\.90×\) → \*\*pass\*\*/);
    expect(markdown).toContain('The goal steps ran in 3 rounds');
    expect(renderReport(fixtureRun(), 'results.json')).toContain('One round: each goal row rests on a single pair');
  });
  it('the CLI start-up goal: append p50 against a bare `node -e 0` measured alternately, median of the rounds', () => {
    const data = fixtureRun();
    const pair = (round: number, cli: number, bare: number): TaggedResult[] => [
      { corpus: 'main', peer: 'mailstore-cli', measurement: 'deliver', messages: 200, seconds: 50, p50_ms: cli, round },
      { corpus: 'main', peer: 'node-start', measurement: 'deliver', messages: 200, seconds: 16, p50_ms: bare, round },
    ];
    data.results = [...data.results.map((r) => ({ ...r, round: 1 })), ...pair(1, 230, 80), ...pair(2, 150, 80), ...pair(3, 170, 80)];
    // ratios 2.875, 1.875, 2.125 → median 2.125: a miss of 2×
    expect(renderReport(data, 'results.json')).toContain('`mailstore append FILE` p50 ≤ 2× `node -e 0` p50 — measured 2.13× (p50 170 vs 80 ms, median of 3 rounds, spread 1.88–2.88×) → **MISS**');
    data.results = [...data.results.filter((r) => r.peer !== 'mailstore-cli'), ...[1, 2, 3].map((round) => ({ corpus: 'main', peer: 'mailstore-cli', measurement: 'deliver', messages: 200, seconds: 30, p50_ms: 150, round }))];
    expect(renderReport(data, 'results.json')).toMatch(/`mailstore append FILE` p50 ≤ 2× `node -e 0` p50 — measured 1\.88× .* → \*\*pass\*\*/);
  });
  it('scrub: the goal is 50 % of b3sum-packs-1t; the per-message floor of the same run is a goal row of its own; the 80 % rows are diagnostics', () => {
    const data = fixtureRun();
    const round = (n: number, scrubS: number): TaggedResult[] => [
      { corpus: 'main', peer: 'mailstore', measurement: 'scrub', messages: 20_000, bytes: 600e6, seconds: scrubS, round: n },
      { corpus: 'main', peer: 'floor-blake3-blobs', measurement: 'scrub', messages: 18_956, bytes: 600e6, seconds: 0.4, round: n },
      { corpus: 'main', peer: 'b3sum-packs-1t', measurement: 'scrub', messages: 20_000, bytes: 600e6, seconds: 0.15, round: n },
    ];
    // scrub 1,500, 1,200, 2,000 MB/s; floor 1,500; b3sum-1t 4,000 → median 0.375× of b3sum-1t, 1.0× of the floor
    data.results = [...data.results.filter((r) => r.measurement !== 'scrub').map((r) => ({ ...r, round: 1 })), ...round(1, 0.4), ...round(2, 0.5), ...round(3, 0.3)];
    const markdown = renderReport(data, 'results.json');
    expect(markdown).toContain('Goal: scrub ≥ 50 % of single-threaded b3sum MB/s over the same pack bytes (b3sum-packs-1t) — measured 0.38× (1,500 vs 4,000 in the median round, median of 3 rounds, spread 0.30–0.50×) → **MISS**');
    expect(markdown).toMatch(/Goal: scrub ≥ 50 % of the per-message BLAKE3 floor .* — measured 1\.00× \(1,500 vs 1,500 in the median round, median of 3 rounds, spread 0\.80–1\.33×\); the floor itself is 0\.38× \(1,500 vs 4,000 in the median round, median of 3 rounds, spread 0\.38–0\.38×\) of b3sum-packs-1t: .* → \*\*pass\*\*/);
    // below half the floor misses (0.44×)
    data.results = [...data.results.filter((r) => r.measurement !== 'scrub'), ...round(1, 0.9), ...round(2, 0.9), ...round(3, 0.9)];
    expect(renderReport(data, 'results.json')).toMatch(/Goal: scrub ≥ 50 % of the per-message BLAKE3 floor .* — measured 0\.44×.* → \*\*MISS\*\*/);
    expect(markdown).toMatch(/^Diagnostic \(no goal of issue 16\): scrub ≥ 80% of single-threaded b3sum MB\/s \(b3sum-packs-1t\) — measured 0\.38×/m);
    expect(markdown).not.toMatch(/\| scrub ≥ 80%/); // not in the goals table
    expect(markdown).toMatch(/\| scrub ≥ 50 % of single-threaded b3sum .* \| \*\*MISS\*\* \|/);
    expect(markdown).toMatch(/^\| floor-blake3-blobs \| 18,956 \| 600 \|/m);
  });

  it('says the raw JSON is not committed only when it is not kept under docs/', () => {
    const data = fixtureRun();
    expect(renderReport(data, '.bench/results-1.json')).toContain('raw JSON in `.bench/results-1.json` (not committed).');
    expect(renderReport(data, 'docs/bench/results-1.json')).toContain('raw JSON in `docs/bench/results-1.json`. ');
  });

  it('the import against the write floor: its ratio per round to the one floor run, and whether 3× mdbox lies beyond it', () => {
    const data = fixtureRun();
    const imports = (floorS: number): TaggedResult[] => [
      { corpus: 'main', peer: 'floor-write', measurement: 'import', messages: 20_000, bytes: 600e6, seconds: floorS, round: 1 },
      { corpus: 'main', peer: 'dovecot-mdbox', measurement: 'import', messages: 20_000, bytes: 600e6, seconds: 3, round: 1 },
      { corpus: 'main', peer: 'mailstore', measurement: 'import', messages: 20_000, bytes: 600e6, seconds: 2, round: 1 },
      { corpus: 'main', peer: 'mailstore', measurement: 'import', messages: 20_000, bytes: 600e6, seconds: 1.6, round: 2 },
      { corpus: 'main', peer: 'mailstore', measurement: 'import', messages: 20_000, bytes: 600e6, seconds: 1.5, round: 3 },
    ];
    data.results = [...data.results.filter((r) => r.measurement !== 'import'), ...imports(1.2)];
    // the floor 16,667/s; mailstore 10,000, 12,500, 13,333/s; 3× mdbox 20,000/s = 1.2× the floor
    expect(renderReport(data, 'results.json')).toContain('mailstore imports at 0.75× its rate (median of 3 rounds, spread 0.60–0.80×); 3× Dovecot mdbox would be 1.20× the floor\'s rate — beyond what writing each message once allows on this machine.');
    data.results = [...data.results.filter((r) => r.measurement !== 'import'), ...imports(0.5)];
    const within = renderReport(data, 'results.json');
    expect(within).toContain('3× Dovecot mdbox would be 0.50× the floor\'s rate.');
    data.results = data.results.filter((r) => r.peer !== 'floor-write');
    expect(renderReport(data, 'results.json')).not.toContain('against the write floor');
  });

  it('a read goal against the read floor: where the floor lies against Dovecot, mailstore against the floor, and whether the goal is within its reach', () => {
    const data = fixtureRun();
    const reads = (floorS: number): TaggedResult[] => [1, 2, 3].flatMap((round) => [
      { corpus: 'spamassassin', peer: 'dovecot-mdbox', measurement: 'read', messages: 6000, bytes: 32e6, seconds: 0.05, round },
      { corpus: 'spamassassin', peer: 'mailstore', measurement: 'read', messages: 6000, bytes: 32e6, seconds: [0.08, 0.09, 0.1][round - 1], round },
      { corpus: 'spamassassin', peer: 'floor-read', measurement: 'read', messages: 6000, bytes: 32e6, seconds: floorS, round },
    ]);
    const spamFree = data.results.filter((r) => r.corpus !== 'spamassassin');
    // the floor at 0.045 s: 1.11x Dovecot; 0.8x Dovecot is 0.72x the floor's rate (within reach); mailstore 0.50-0.56x the floor
    data.results = [...spamFree, ...reads(0.045)];
    const within = renderReport(data, 'results.json');
    expect(within).toContain('the floor\'s messages/s are 1.11× (133,333 vs 120,000 in the median round, median of 3 rounds, spread 1.11–1.11×) Dovecot mdbox\'s');
    expect(within).toContain('mailstore\'s are 0.50× (66,667 vs 133,333 in the median round, median of 3 rounds, spread 0.45–0.56×) the floor\'s');
    expect(within).toContain('the goal (0.80× Dovecot) is 0.72× the floor\'s rate: within its reach, so what misses is mailstore\'s own work a message above the floor.');
    // mailstore at the goal: the floor's reach is said, no miss is explained
    data.results = [...spamFree, ...reads(0.045).map((r) => (r.peer === 'mailstore' ? { ...r, seconds: 0.055 } : r))];
    const passing = renderReport(data, 'results.json');
    expect(passing).toContain('the goal (0.80× Dovecot) is 0.72× the floor\'s rate: within its reach.');
    expect(passing).not.toContain('so what misses');
    // a floor slower than the goal: out of reach of this design
    data.results = [...spamFree, ...reads(0.07)];
    expect(renderReport(data, 'results.json')).toContain('the goal (0.80× Dovecot) would be 1.12× the floor\'s rate — beyond what this design\'s least work allows on this machine.');
    // no floor rows (an older run): no line
    data.results = [...spamFree, ...reads(0.045).filter((r) => r.peer !== 'floor-read')];
    expect(renderReport(data, 'results.json')).not.toContain('against the read floor');
  });
});
