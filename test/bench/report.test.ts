// The report writer: the Markdown has every figure and its ratio, the JSON is the run's data, and
// each chart is an SVG that draws the figures the table beside it holds.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCharts } from '../../src/bench/charts.js';
import { END_MARKER, START_MARKER, renderReport } from '../../src/bench/report.js';
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
