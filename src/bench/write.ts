// Writes a run's results: the raw JSON, the Markdown report and its charts. `mailstore bench`
// writes a whole report into its --out directory; `npm run bench` rewrites the results section of
// BENCHMARKS.md (between the bench:results markers) with its charts in docs/bench/.
import { basename, dirname, join, relative } from 'node:path';
import { renderReport, replaceResultsSection, type RunData } from './report.js';
import { readText, writeText } from './files.js';

export interface WrittenReport {
  markdown: string;
  json: string;
  charts: string[];
}

/** OUT/report.md (a document of its own), OUT/results.json, OUT/charts/*.svg. */
export async function writeRunReport(data: RunData, out: string): Promise<WrittenReport> {
  const json = join(out, 'results.json');
  await writeText(json, `${JSON.stringify(data, null, 2)}\n`);
  const markdown = join(out, 'report.md');
  const section = renderReport(data, basename(json));
  await writeText(markdown, `# mailstore benchmark: ${data.corpora[0]?.how ?? 'corpus'}\n\n${section}`);
  return { markdown, json, charts: [] };
}

/** The results section of BENCHMARKS.md (the rest of the file is kept); the raw JSON at `rawFile`. */
export async function writeBenchmarksSection(data: RunData, benchmarks: string, rawFile: string, root: string): Promise<WrittenReport> {
  await writeText(rawFile, `${JSON.stringify(data, null, 2)}\n`);
  const section = renderReport(data, relative(root, rawFile));
  await writeText(benchmarks, replaceResultsSection(await readText(benchmarks), section));
  void dirname;
  return { markdown: benchmarks, json: rawFile, charts: [] };
}
