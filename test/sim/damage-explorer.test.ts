// Damage explorer (issue 10, "find the rest yourselves"): small stores of every shape, each file
// damaged in every way we enumerate — every single-bit flip, every 512-byte block zeroed, every
// truncation at a record boundary ±1, the file deleted — one case at a time on a fresh copy. After
// each: open works or refuses with a typed error (never a plain Error, never a hang); every
// acknowledged message reads back exact or fails CORRUPT (fetch and readMessages: never wrong
// bytes); scrub reports the damage unless every message reads back exact and no kept state was
// touched; a clean scrub means every message reads back exact. index/ (LevelDB) damage runs apart,
// in child processes, opened as the CLI's scrub opens (index probed, rebuilt when it fails).
//
// `npm test` runs a seeded sample (DAMAGE_SEED) of 500 cases that holds every kind of case (see
// `stratified`: 248 kinds, each at least once) and 12 index/ cases; the long form (`npm run
// test:crash` sets DAMAGE_CASES=all) runs every case and 600 index/ cases:
//   DAMAGE_CASES=all npx vitest run test/sim/damage-explorer.test.ts
// DAMAGE_CASES=N: a sample of N; DAMAGE_INDEX_CASES=N: index/ cases; DAMAGE_MINUTES=M: stop
// starting cases after M minutes (the counts say how many ran). A failing case prints as
// `shape file kind @offset`; the stores are rebuilt each run (new ids), so offsets near a record
// boundary may move by a byte or two between runs: rerun with the same seed and look nearby.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHAPES, buildShape, type Shape } from './damage-shapes.js';
import { casesForFile, damagedRange, describeCase, packBoundaries, segmentBoundaries, type DamageCase } from './damage-cases.js';
import { judge, runCase, touchesLive, type Verdict } from './damage-run.js';
import { haveDist, isIndexDataFile, observeIndexCases, DIST_STORE } from './damage-index.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { limits } from '../../src/limits.js';
import { SEGMENT_HEADER_BYTES } from '../../src/journal/journal-format.js';
import { prng } from '../helpers/prng.js';
import { skipReason } from './helpers.js';

const LONG = process.env.DAMAGE_CASES;
const SEED = Number(process.env.DAMAGE_SEED ?? 0xda3a9e);
/** Cases over all shapes (files other than index/): every one in the long form. */
// 500: every one of the 248 kinds and as many again; the 1,000 of sessions 39-40 held the same
// kinds and cost half as much CPU again (23 s, not 15 s) in one of the suite's slowest files
const SAMPLE = LONG === 'all' ? Infinity : Number(LONG ?? 500);
/** index/ cases run a child process each few cases (and a probe child each): fewer. */
const INDEX_SAMPLE = Number(process.env.DAMAGE_INDEX_CASES ?? (LONG === 'all' ? 600 : LONG ? 200 : 12));

/** The long form stops starting cases after this long (a stopped run prints how many ran). */
const BUDGET_MINUTES = Number(process.env.DAMAGE_MINUTES ?? Infinity);
/** Every how many cases the store is also used after the damage (an append, a reopen): it costs time. */
const CONTINUE_EVERY = 4;

interface KnownClass {
  name: string;
  matches: (shape: Shape, c: DamageCase, v: Verdict) => boolean;
}

const calledClean = (v: Verdict) => v.failure === 'damage-called-clean' || v.failure === 'scrub-clean-but-not-intact';
const segmentsOf = (shape: Shape) => [...shape.files.keys()].filter((p) => p.endsWith('.jnl'));

/**
 * Found by this explorer in src/scrub (and src/keys), reported to the lead, not fixed here; each has
 * a minimal reproduction in damage-regressions.test.ts (it.fails). REMOVE an entry once its fix
 * is merged.
 */
const REPORTED_TO_LEAD: KnownClass[] = [
];

/**
 * Seeded choice of `count` cases in a seeded order (so a run stopped at its time budget is still a
 * uniform sample): non-flip cases (there are few) up to `fixedShare` of the count, flips for the rest.
 */
function sample(cases: DamageCase[], count: number, seed: number, fixedShare = 1): DamageCase[] {
  const rand = prng(seed);
  const shuffle = (list: DamageCase[]) => {
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [list[i], list[j]] = [list[j], list[i]];
    }
    return list;
  };
  if (count >= cases.length) return shuffle([...cases]);
  const fixed = shuffle(cases.filter((c) => c.kind !== 'flip'));
  const flips = shuffle(cases.filter((c) => c.kind === 'flip'));
  const fromFixed = Math.min(fixed.length, Math.floor(count * fixedShare));
  return shuffle([...fixed.slice(0, fromFixed), ...flips.slice(0, count - fromFixed)]);
}

/**
 * Seeded choice of `count` cases that holds every kind of case the enumeration has: one of each
 * shape × file class (pack, segment, STORE, each marker) × damage kind, a flip or a zeroed block
 * also by whether it touches bytes scrub must account for (Shape.live) or not, a truncation also by
 * its side of the record boundary (at -1, at, +1); then as many more as `count` allows, half of them
 * deletions, truncations and zeroed blocks (there are few: 1,348 of the 50,141 in session 39) and
 * half bit flips, each uniform within its half. In a seeded order, as `sample`.
 */
function stratified(cases: DamageCase[], count: number, seed: number, shapes: Map<string, Shape>): DamageCase[] {
  if (count >= cases.length) return sample(cases, count, seed);
  const boundaries = new Map<string, Set<number>>();
  const boundariesOf = (c: DamageCase) => {
    const key = `${c.shape} ${c.path}`;
    if (!boundaries.has(key)) {
      const bytes = shapes.get(c.shape)!.files.get(c.path)!;
      boundaries.set(key, new Set(c.path.endsWith('.pack') ? packBoundaries(bytes) : segmentBoundaries(bytes)));
    }
    return boundaries.get(key)!;
  };
  const kindOf = (c: DamageCase) => {
    const file = c.path.endsWith('.pack') ? 'pack' : c.path.endsWith('.jnl') ? 'segment' : c.path;
    let detail = '';
    if (c.kind === 'flip' || c.kind === 'zero') detail = touchesLive(shapes.get(c.shape)!, c) ? 'live' : 'unused';
    else if (c.kind === 'truncate' && (file === 'pack' || file === 'segment')) detail = boundariesOf(c).has(c.at) ? 'at' : boundariesOf(c).has(c.at + 1) ? '-1' : '+1';
    return `${c.shape} ${file} ${c.kind} ${detail}`;
  };
  const byKind = new Map<string, DamageCase[]>();
  for (const c of cases) {
    const kind = kindOf(c);
    if (!byKind.has(kind)) byKind.set(kind, []);
    byKind.get(kind)!.push(c);
  }
  const rand = prng(seed);
  const chosen = new Set<DamageCase>();
  for (const kind of [...byKind.keys()].sort()) {
    const list = byKind.get(kind)!;
    chosen.add(list[Math.floor(rand() * list.length)]);
  }
  const rest = cases.filter((c) => !chosen.has(c));
  for (const c of sample(rest, Math.max(0, count - chosen.size), seed ^ 0x5a, 0.5)) chosen.add(c);
  console.info(`damage explorer sample: ${byKind.size} kinds of case, each at least once`);
  return sample([...chosen], Infinity, seed);
}

/** Files whose damage scrub or open must notice: packs, segments, STORE, markers (not index/, lock/, quarantine/, tmp/). */
function isKeptFile(path: string): boolean {
  return path === 'STORE' || /^packs\/(\d+\.pack|STORE-ID)$/.test(path) || /^journal\/(\d+\.jnl|STORE-ID)$/.test(path);
}

const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'damage-explorer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Tally {
  cases: number;
  byKind: Record<string, number>;
  byOutcome: Record<string, number>;
  known: Record<string, number>;
  failures: string[];
}
const totals: Tally = { cases: 0, byKind: {}, byOutcome: {}, known: {}, failures: [] };

function record(tally: Tally, shape: Shape, c: DamageCase, v: Verdict): void {
  tally.cases++;
  tally.byKind[c.kind] = (tally.byKind[c.kind] ?? 0) + 1;
  let outcome = v.outcome;
  if (v.failure) {
    const known = REPORTED_TO_LEAD.map((k) => ['reported-to-lead', k] as const)
      .find(([, k]) => k.matches(shape, c, v));
    if (known) {
      outcome = `${known[0]}: ${known[1].name}`;
      tally.known[known[1].name] = (tally.known[known[1].name] ?? 0) + 1;
    } else {
      outcome = `FAIL ${v.failure}`;
      tally.failures.push(`${describeCase(c)}: ${v.failure} (${v.detail})`);
    }
  }
  tally.byOutcome[outcome] = (tally.byOutcome[outcome] ?? 0) + 1;
}

function merge(into: Tally, from: Tally): void {
  into.cases += from.cases;
  for (const [k, n] of Object.entries(from.byKind)) into.byKind[k] = (into.byKind[k] ?? 0) + n;
  for (const [k, n] of Object.entries(from.byOutcome)) into.byOutcome[k] = (into.byOutcome[k] ?? 0) + n;
  for (const [k, n] of Object.entries(from.known)) into.known[k] = (into.known[k] ?? 0) + n;
  into.failures.push(...from.failures);
}

/** CPU seconds of finished child processes (Linux /proc; 0 elsewhere). */
function childCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100; // cutime, cstime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

/** Wall time and CPU time (this process with LevelDB's threads, and its children): the machine is shared. */
function clock(): () => string {
  const wall = Date.now();
  const cpu = process.cpuUsage();
  const children = childCpuSeconds();
  return () => {
    const used = process.cpuUsage(cpu);
    return `${((Date.now() - wall) / 1000).toFixed(1)} s wall, ${((used.user + used.system) / 1e6 + childCpuSeconds() - children).toFixed(1)} s CPU`;
  };
}

function report(label: string, tally: Tally, time: string): void {
  const outcomes = Object.entries(tally.byOutcome).sort((a, b) => b[1] - a[1]).map(([k, n]) => `    ${n}  ${k}`).join('\n');
  console.info(`damage explorer ${label}: ${tally.cases} cases (${JSON.stringify(tally.byKind)}) in ${time}\n${outcomes}`);
}

describe('damage explorer', () => {
  const shapes = new Map<string, Shape>();
  const allCases = async () => {
    const out: DamageCase[] = [];
    for (const spec of SHAPES) {
      const shape = await buildShape(spec, join(root, `pristine-${spec.name}`));
      shapes.set(spec.name, shape);
      for (const [path, bytes] of shape.files) {
        if (bytes && isKeptFile(path)) out.push(...casesForFile(spec.name, path, bytes));
      }
    }
    return out;
  };

  it(`packs, journal segments, STORE and markers: ${LONG ? `long form (${LONG})` : `a seeded sample of ${SAMPLE}`}`, async () => {
    const elapsed = clock();
    const cases = await allCases();
    const chosen = stratified(cases, SAMPLE, SEED, shapes);
    const tally: Tally = { cases: 0, byKind: {}, byOutcome: {}, known: {}, failures: [] };
    const continued: Record<string, number> = {};
    const deadline = Date.now() + BUDGET_MINUTES * 60_000;
    for (const [i, c] of chosen.entries()) {
      if (Date.now() > deadline) {
        console.info(`damage explorer: stopped at the time budget (DAMAGE_MINUTES=${BUDGET_MINUTES}) after ${i} of ${chosen.length} cases`);
        break;
      }
      if (LONG && i > 0 && i % 2500 === 0) report(`progress (${i} of ${chosen.length})`, tally, elapsed());
      const shape = shapes.get(c.shape)!;
      const { verdict, obs } = await runCase(shape, c, root, { continueAfter: i % CONTINUE_EVERY === 0 });
      record(tally, shape, c, verdict);
      if (obs?.after) continued[obs.after.split(':')[0]] = (continued[obs.after.split(':')[0]] ?? 0) + 1;
    }
    report(`(of ${cases.length} enumerated, seed ${SEED.toString(16)})`, tally, elapsed());
    console.info(`damage explorer: of these, ${Object.values(continued).reduce((a, b) => a + b, 0)} kept on being used (an append, a reopen, every exact message re-read): ${JSON.stringify(continued)}`);
    merge(totals, tally);
    expect(tally.failures.slice(0, 30), `${tally.failures.length} failing cases`).toEqual([]);
  }, 4 * 3_600_000);

  it.skipIf(skipReason(!haveDist, `index damage runs the store in child processes from dist/ (${DIST_STORE} missing: run \`npm run build\`)`))(
    `index/ LevelDB files (in child processes): ${INDEX_SAMPLE} cases`, async () => {
    const elapsed = clock();
    if (shapes.size === 0) await allCases();
    const cases: DamageCase[] = [];
    for (const shape of shapes.values()) {
      for (const [path, bytes] of shape.files) if (bytes && isIndexDataFile(path)) cases.push(...casesForFile(shape.name, path, bytes));
    }
    const chosen = sample(cases, INDEX_SAMPLE, SEED ^ 0x1de, 0.5);
    const tally: Tally = { cases: 0, byKind: {}, byOutcome: {}, known: {}, failures: [] };
    for (const shape of shapes.values()) {
      const mine = chosen.filter((c) => c.shape === shape.name);
      const observed = observeIndexCases(shape, mine, root);
      mine.forEach((c, k) => {
        const obs = observed[k];
        const verdict: Verdict = obs.died ? { outcome: 'FAIL', failure: 'child-died', detail: obs.died } : judge(shape, c, obs, { index: true });
        if (!verdict.failure && obs.rebuilt) verdict.outcome += ' (index rebuilt on open)';
        record(tally, shape, c, verdict);
      });
    }
    report(`index/ (of ${cases.length} enumerated)`, tally, elapsed());
    merge(totals, tally);
    expect(tally.failures.slice(0, 30), `${tally.failures.length} failing cases`).toEqual([]);
  }, 4 * 3_600_000);

  afterAll(() => {
    const known = Object.entries(totals.known).map(([k, n]) => `    ${n}  ${k}`).join('\n');
    console.info(`damage explorer total: ${totals.cases} cases, ${totals.failures.length} failures${known ? `; known classes (not failures until their fix is merged):\n${known}` : ''}`);
  });
});
