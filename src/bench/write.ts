// Writes a run's results: the raw JSON, the Markdown report and its charts (SVG). `mailstore bench`
// writes a whole report into its --out directory (report.md, results.json, charts/); `npm run
// bench` rewrites the results section of BENCHMARKS.md (between the bench:results markers), its
// charts in docs/bench/ beside it.
import { dirname, join, relative } from 'node:path';
import { renderCharts } from './charts.js';
import { readText, writeText } from './files.js';
import { renderReport, replaceResultsSection, type ChartRef, type RunData } from './report.js';

export interface WrittenReport {
  markdown: string;
  json: string;
  charts: string[];
}

/** Renders the charts into `dir`; the references are relative to the Markdown file in `markdownDir`. */
async function writeCharts(data: RunData, dir: string, markdownDir: string): Promise<{ refs: ChartRef[]; files: string[] }> {
  const refs: ChartRef[] = [];
  const files: string[] = [];
  for (const chart of await renderCharts(data)) {
    const file = join(dir, `${chart.name}.svg`);
    await writeText(file, chart.svg);
    files.push(file);
    refs.push({ section: chart.section, title: chart.title, path: relative(markdownDir, file) });
  }
  return { refs, files };
}

/** OUT/report.md (a document of its own), OUT/results.json, OUT/charts/*.svg. */
export async function writeRunReport(data: RunData, out: string): Promise<WrittenReport> {
  const json = join(out, 'results.json');
  await writeText(json, `${JSON.stringify(data, null, 2)}\n`);
  const charts = await writeCharts(data, join(out, 'charts'), out);
  const markdown = join(out, 'report.md');
  const section = renderReport(data, 'results.json', charts.refs);
  await writeText(markdown, `# mailstore benchmark: ${data.corpora[0]?.how ?? 'corpus'}\n\n${section}`);
  return { markdown, json, charts: charts.files };
}

/** The results section of `benchmarks` (the rest of the file is kept), charts in `chartsDir`, raw JSON at `rawFile`. */
export async function writeBenchmarksSection(data: RunData, benchmarks: string, rawFile: string, chartsDir: string, root: string): Promise<WrittenReport> {
  await writeText(rawFile, `${JSON.stringify(data, null, 2)}\n`);
  const charts = await writeCharts(data, chartsDir, dirname(benchmarks));
  const section = renderReport(data, relative(root, rawFile), charts.refs);
  await writeText(benchmarks, replaceResultsSection(await readText(benchmarks), section));
  return { markdown: benchmarks, json: rawFile, charts: charts.files };
}
