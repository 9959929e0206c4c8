// The report's charts, so a reader sees the answer at a glance (the tables beside them keep the
// exact figures): per goal, mailstore's ratio to each peer as diverging bars on a log scale
// (right of 1×: mailstore faster); for --scale runs, throughput and peak RSS from 10k to 1M
// messages. Vega-Lite specs rendered to SVG in node by vega (no browser, no canvas).
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { BenchResult } from './common.js';
import { firstRound, type RunData, type TaggedResult } from './report.js';

export interface Chart {
  /** File name stem (ratio-import, growth-rss) and where the report puts it (its section's key). */
  name: string;
  section: 'import' | 'deliver' | 'read' | 'scrub' | 'rebuild' | 'space' | 'growth';
  title: string;
  svg: string;
  /** The figures drawn, for a reader without images and for tests. */
  values: Record<string, number>;
}

const msgRate = (r: BenchResult) => (r.messages && r.seconds ? r.messages / r.seconds : undefined);
const mbRate = (r: BenchResult) => (r.bytes && r.seconds ? r.bytes / r.seconds / 1e6 : undefined);

interface RatioArea {
  section: Chart['section'];
  title: string;
  base: string;
  rate: (r: BenchResult) => number | undefined;
  peers: { key: string; rate?: (r: BenchResult) => number | undefined }[];
  goal?: { key: string; factor: number; text: string };
}

/** The same rows and rates as the report's tables (report.ts). */
const AREAS: RatioArea[] = [
  {
    section: 'import', title: 'Bulk import: mailstore ÷ peer (messages/s)', base: 'mailstore:import', rate: msgRate,
    peers: ['dovecot-mdbox:import', 'dovecot-sdbox:import', 'dovecot-maildir:import', 'git:import', 'git-fsync:import', 'floor-write:import'].map((key) => ({ key })),
    goal: { key: 'dovecot-mdbox:import', factor: 3, text: 'goal ≥ 3× Dovecot mdbox' },
  },
  {
    section: 'deliver', title: 'One-at-a-time delivery: mailstore ÷ peer (messages/s)', base: 'mailstore:deliver', rate: msgRate,
    peers: ['dovecot-mdbox:deliver', 'cyrus:deliver', 'floor-fsync:deliver', 'floor-sync-two:deliver', 'floor-sync-one:deliver'].map((key) => ({ key })),
    goal: { key: 'cyrus:deliver', factor: 10, text: 'goal ≥ 10× Cyrus LMTP' },
  },
  {
    section: 'read', title: 'Read every message: mailstore ÷ peer (messages/s)', base: 'mailstore:read', rate: msgRate,
    peers: ['dovecot-mdbox:read', 'dovecot-sdbox:read', 'dovecot-maildir:read', 'git:read', 'git-packed:read'].map((key) => ({ key })),
    goal: { key: 'dovecot-mdbox:read', factor: 1, text: 'goal ≥ Dovecot mdbox' },
  },
  {
    section: 'scrub', title: 'Scrub: mailstore ÷ peer (MB/s; Cyrus and git in messages/s)', base: 'mailstore:scrub', rate: mbRate,
    peers: [{ key: 'b3sum-packs:scrub' }, { key: 'b3sum-packs-1t:scrub' }, { key: 'cat-packs:scrub' }, { key: 'cyrus:scrub', rate: msgRate }, { key: 'git:scrub', rate: msgRate }, { key: 'git-packed:scrub', rate: msgRate }],
    goal: { key: 'b3sum-packs:scrub', factor: 0.8, text: 'goal ≥ 0.8× b3sum' },
  },
  {
    section: 'rebuild', title: 'Index rebuild: mailstore ÷ peer (messages/s)', base: 'mailstore:rebuild', rate: msgRate,
    peers: ['dovecot-mdbox:rebuild', 'dovecot-sdbox:rebuild', 'dovecot-maildir:rebuild', 'cyrus:rebuild'].map((key) => ({ key })),
  },
];

function pick(results: TaggedResult[], key: string): TaggedResult | undefined {
  const [peer, measurement] = key.split(':');
  return results.find((r) => r.peer === peer && r.measurement === measurement && !r.error);
}

/** Vega-Lite to SVG, headless. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const ratioLabel = (x: number) => `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2)}×`;

/** One diverging bar per peer: log10 of mailstore ÷ peer, so 2× faster and 2× slower are the same length. */
async function ratioChart(area: RatioArea, results: TaggedResult[]): Promise<Chart | undefined> {
  const base = pick(results, area.base);
  const baseRate = base && area.rate(base);
  if (!baseRate) return undefined;
  const rows: { system: string; log: number; label: string; side: string; goal?: number }[] = [];
  const values: Record<string, number> = {};
  for (const peer of area.peers) {
    const r = pick(results, peer.key);
    const rate = peer.rate ?? area.rate;
    const peerRate = r && rate(r);
    const mine = rate === area.rate ? baseRate : base && rate(base);
    if (!peerRate || !mine) continue;
    const ratio = mine / peerRate;
    const system = peer.key.split(':')[0]!;
    values[system] = ratio;
    rows.push({ system, log: Math.log10(ratio), label: ratioLabel(ratio), side: ratio >= 1 ? 'mailstore faster' : 'peer faster',
      ...(area.goal?.key === peer.key ? { goal: Math.log10(area.goal.factor) } : {}) });
  }
  if (rows.length === 0) return undefined;
  const lo = Math.floor(Math.min(0, ...rows.map((r) => r.log), ...rows.map((r) => r.goal ?? 0)) - 0.05);
  const hi = Math.ceil(Math.max(0, ...rows.map((r) => r.log), ...rows.map((r) => r.goal ?? 0)) + 0.05);
  const ticks = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  const y = { field: 'system', type: 'nominal', sort: null, title: null } as const;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: area.title, subtitle: area.goal && rows.some((r) => r.goal !== undefined) ? `black tick: ${area.goal.text}; dashed line: parity (1×)` : 'dashed line: parity (1×)' },
    width: 460, height: { step: 24 }, data: { values: rows },
    encoding: { y },
    layer: [
      { mark: { type: 'bar', height: { band: 0.7 } }, encoding: {
        x: { field: 'log', type: 'quantitative', scale: { domain: [lo, hi] }, title: 'mailstore ÷ peer (log scale)', axis: { values: ticks, labelExpr: "format(pow(10, datum.value), '~g') + '×'" } },
        x2: { datum: 0 },
        color: { field: 'side', type: 'nominal', scale: { domain: ['mailstore faster', 'peer faster'], range: ['#4c78a8', '#e45756'] }, legend: { orient: 'bottom', title: null } },
      } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { x: { field: 'log', type: 'quantitative' }, text: { field: 'label' } } },
      { transform: [{ filter: 'isValid(datum.goal)' }], mark: { type: 'tick', color: 'black', thickness: 3, size: 22 }, encoding: { x: { field: 'goal', type: 'quantitative' } } },
      { mark: { type: 'rule', strokeDash: [4, 3], color: '#555' }, encoding: { x: { datum: 0 } } },
    ],
  } as unknown as vl.TopLevelSpec;
  return { name: `ratio-${area.section}`, section: area.section, title: area.title, svg: await renderSvg(spec), values };
}

/** Disk bytes per message byte, each system (lower is better). */
async function spaceChart(results: TaggedResult[]): Promise<Chart | undefined> {
  const rows = ['mailstore', 'dovecot-mdbox', 'dovecot-sdbox', 'dovecot-maildir', 'cyrus', 'git', 'git-packed']
    .map((peer) => pick(results, `${peer}:space`)).filter((r): r is TaggedResult => typeof r?.ratio === 'number')
    .map((r) => ({ system: r.peer, ratio: r.ratio as number, label: (r.ratio as number).toFixed(2) }));
  if (rows.length === 0) return undefined;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'On-disk bytes per message byte (lower is better)', subtitle: 'du of each store ÷ the message bytes it holds' },
    width: 460, height: { step: 24 }, data: { values: rows },
    encoding: { y: { field: 'system', type: 'nominal', sort: null, title: null } },
    layer: [
      { mark: { type: 'bar', height: { band: 0.7 }, color: '#4c78a8' }, encoding: { x: { field: 'ratio', type: 'quantitative', title: 'disk ÷ message bytes' } } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { x: { field: 'ratio', type: 'quantitative' }, text: { field: 'label' } } },
    ],
  } as unknown as vl.TopLevelSpec;
  return { name: 'space', section: 'space', title: 'On-disk bytes per message byte', svg: await renderSvg(spec), values: Object.fromEntries(rows.map((r) => [r.system, r.ratio])) };
}

interface GrowthPoint { messages: number; measurement: string; value: number }

/** Throughput and peak RSS of the --scale steps against corpus size (both axes log). */
async function growthCharts(data: RunData): Promise<Chart[]> {
  const throughput: GrowthPoint[] = [], rss: GrowthPoint[] = [];
  for (const corpus of data.corpora.filter((c) => c.name.startsWith('scale-'))) {
    const rows = data.results.filter((r) => r.corpus === corpus.name && r.peer === 'mailstore' && !r.error);
    for (const [measurement, rate, unit] of [['import', msgRate, 'messages/s'], ['scrub', mbRate, 'MB/s'], ['rebuild', msgRate, 'messages/s']] as const) {
      const r = rows.find((x) => x.measurement === measurement);
      const value = r && rate(r);
      if (value) throughput.push({ messages: corpus.messages, measurement: `${measurement} (${unit})`, value });
      if (r?.peak_rss_bytes) rss.push({ messages: corpus.messages, measurement: `${measurement} peak RSS`, value: r.peak_rss_bytes / 1048576 });
      if (typeof r?.peak_rss_anon_bytes === 'number') rss.push({ messages: corpus.messages, measurement: `${measurement} anonymous`, value: r.peak_rss_anon_bytes / 1048576 });
    }
  }
  const charts: Chart[] = [];
  // a domain a little wider than 10k..1M: the first and last points (and their labels) clear of the axes
  const x = { field: 'messages', type: 'quantitative', scale: { type: 'log', domain: [6000, 1_700_000] }, title: 'messages in the store', axis: { values: [10_000, 100_000, 1_000_000], format: '~s' } };
  if (throughput.length > 0) {
    // one panel per figure, each from 0 to a little above its top point (room for the label)
    const panels = [...new Set(throughput.map((p) => p.measurement))].map((measurement) => {
      const points = throughput.filter((p) => p.measurement === measurement);
      const y = { field: 'value', type: 'quantitative', title: null, scale: { domain: [0, Math.max(...points.map((p) => p.value)) * 1.2] } };
      return {
        title: { text: measurement, fontSize: 12 }, width: 200, height: 180, data: { values: points },
        layer: [
          { mark: { type: 'line', point: true }, encoding: { x, y } },
          { mark: { type: 'text', dy: -9, fontSize: 10 }, encoding: { x, y, text: { field: 'value', format: ',.0f' } } },
        ],
      };
    });
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'Throughput as the store grows (--scale, small messages)', subtitle: 'flat lines: the cost per message does not grow with the store' },
      hconcat: panels,
    } as unknown as vl.TopLevelSpec;
    charts.push({ name: 'growth-throughput', section: 'growth', title: 'Throughput from 10k to 1M messages', svg: await renderSvg(spec), values: Object.fromEntries(throughput.map((p) => [`${p.measurement}@${p.messages}`, p.value])) });
  }
  if (rss.length > 0) {
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'Peak memory as the store grows (--scale)', subtitle: 'dashed: the 256 MB goal (244 MiB); peak RSS counts LevelDB\'s mapped tables, anonymous does not' },
      width: 460, height: 220,
      layer: [
        { data: { values: rss }, mark: { type: 'line', point: true }, encoding: { x, y: { field: 'value', type: 'quantitative', title: 'MiB' }, color: { field: 'measurement', type: 'nominal', title: null } } },
        { data: { values: [{ goal: 256e6 / 1048576 }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#e45756' }, encoding: { y: { field: 'goal', type: 'quantitative' } } },
      ],
    } as unknown as vl.TopLevelSpec;
    charts.push({ name: 'growth-rss', section: 'growth', title: 'Peak RSS from 10k to 1M messages', svg: await renderSvg(spec), values: Object.fromEntries(rss.map((p) => [`${p.measurement}@${p.messages}`, p.value])) });
  }
  return charts;
}

/** Every chart the run's data supports (a chart with no figures is left out). */
export async function renderCharts(data: RunData): Promise<Chart[]> {
  // the tables' figures: round 1 (the goal rows' medians are in the text)
  const main = firstRound(data.results).filter((r) => r.corpus === 'main');
  const charts: Chart[] = [];
  for (const area of AREAS) {
    const chart = await ratioChart(area, main);
    if (chart) charts.push(chart);
  }
  const space = await spaceChart(main);
  if (space) charts.push(space);
  if (data.kind !== 'corpus') charts.push(...(await growthCharts(data))); // a user's corpus has no --scale steps
  return charts;
}
