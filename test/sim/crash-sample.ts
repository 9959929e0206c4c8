// Which crash points `npm test` explores. The whole sweep (every crash point in every crash mode,
// CRASH_POINTS=all) of the four explorer files took ~8 minutes of the suite's ~12; by default the
// explorers run a deterministic subset of it that still has every KIND of crash point in every mode:
//   - a kind is the boundary the log prefix ends at (the call and the file class it touched:
//     'sync journal/#.jnl', 'rename snapshots/.#.snap.#.tmp', 'syncDir packs', 'unlink LOCK', …)
//     together with each workload op in flight there ('append', 'appendBatch', 'flags', 'expunge',
//     'move', 'copy', 'acl', 'create', 'rename', 'delete', 'compact'; 'between ops' for snapshots,
//     journal retirement and the close/reopen points): every such pair the workload produced is
//     crashed in every mode at least once;
//   - acknowledgement points (a log position where some op's promise resolved) in the modes that
//     lose un-synced data ('all-lost', 'data-lost'), where "nothing acknowledged is lost" bites: the
//     first of each op kind and one in ACK_STRIDE of the rest (every one cost a quarter of the
//     explorers' states, most of them the same 'sync journal/#.jnl | append' as the one before);
//   - the empty prefix and the whole log, in every mode;
//   - one point in STRIDE, in every mode, so long runs of one kind are still visited here and there
//     (15 made a third of the states, on top of the kinds those points already had).
// A sampled state is the very state the whole sweep crashes at that position (same spec seed, same
// index mode, same reopen choice: see `ordinal`), so a failure reproduces under CRASH_POINTS=all.
import { relative } from 'node:path';
import type { CrashMode, CrashSpec, FaultFileSystem, RecordedOp } from './faultfs.js';
import type { OpTrace } from './workload.js';

export type CrashPoints = 'all' | 'sample';

/** One state to explore and its position in the whole sweep (which fixes its index mode and reopen). */
export interface SampledSpec { spec: CrashSpec; ordinal: number }

/** One point in this many, in every mode, on top of the kinds and acknowledgements. */
export const STRIDE = 40;

/** One acknowledgement point in this many, in the losing modes, after the first of each op kind. */
export const ACK_STRIDE = 2;

const LOSING_MODES: ReadonlySet<CrashMode> = new Set(['all-lost', 'data-lost']);

/** CRASH_POINTS=all: every crash point in every mode (the whole sweep); unset or 'sample': the sample. */
export function crashPointsFromEnv(env: NodeJS.ProcessEnv = process.env): CrashPoints {
  const value = env.CRASH_POINTS;
  if (value === undefined || value === '' || value === 'sample') return 'sample';
  if (value === 'all') return 'all';
  throw new Error(`CRASH_POINTS=${value}: expected 'all' (every crash point in every mode) or 'sample' (the default)`);
}

/** The boundary a log entry is: its call and the file it touched with numbers and hashes as '#'. */
export function boundaryKind(op: Pick<RecordedOp, 'kind' | 'path'>, root: string): string {
  const rel = relative(root, op.path) || '.';
  return `${op.kind} ${rel.replace(/[0-9a-f]{6,}/g, '#').replace(/[0-9]+/g, '#')}`;
}

/** The workload op kinds in flight when log entry `index` (1-based) completed; entries before any op are 'between ops'. */
export function opKindsAt(index: number, traces: readonly OpTrace[]): string[] {
  const kinds = new Set<string>();
  for (const t of traces) if (t.submittedAt < index && index <= t.ackedAt) kinds.add(t.label.split(' ')[0]);
  return kinds.size > 0 ? [...kinds].sort() : ['between ops'];
}

/** For each crash point 0..log.length: the kinds it is ('boundary | op'); point 0 is 'start'. */
export function pointKinds(log: readonly Pick<RecordedOp, 'kind' | 'path'>[], traces: readonly OpTrace[], root: string): string[][] {
  const kinds: string[][] = [['start']];
  log.forEach((op, i) => {
    const boundary = boundaryKind(op, root);
    kinds.push(opKindsAt(i + 1, traces).map((k) => `${boundary} | ${k}`));
  });
  return kinds;
}

/**
 * The sampled crash points of one mode. Covering greedily from a start that differs per mode (so a
 * kind that occurs often is crashed at different places in different modes).
 */
export function samplePointsForMode(kinds: readonly string[][], traces: readonly OpTrace[], mode: CrashMode, modeIndex: number, modeCount: number): number[] {
  const points = kinds.length;
  const chosen = new Set<number>([0, points - 1]);
  for (let p = 0; p < points; p += STRIDE) chosen.add((p + modeIndex * 5) % points);
  if (LOSING_MODES.has(mode)) {
    const kindsAcked = new Set<string>();
    traces.filter((t) => t.ackedAt >= 0).forEach((t, i) => {
      const kind = t.label.split(' ')[0];
      if (!kindsAcked.has(kind) || i % ACK_STRIDE === 0) chosen.add(t.ackedAt);
      kindsAcked.add(kind);
    });
  }
  const covered = new Set<string>();
  for (const p of chosen) for (const k of kinds[p]) covered.add(k);
  const start = Math.floor((modeIndex * points) / modeCount);
  for (let step = 0; step < points; step++) {
    const p = (start + step) % points;
    if (kinds[p].some((k) => !covered.has(k))) {
      chosen.add(p);
      for (const k of kinds[p]) covered.add(k);
    }
  }
  return [...chosen].sort((a, b) => a - b);
}

/**
 * The states to explore: the whole sweep (FaultFileSystem.crashStates over every point in every
 * mode) or its sample, each with its ordinal in the whole sweep.
 */
export function crashSpecs(ffs: FaultFileSystem, traces: readonly OpTrace[], root: string, options: { seed: number; modes: CrashMode[]; points: CrashPoints }): SampledSpec[] {
  const points = ffs.logLength + 1;
  const all = ffs.crashStates({ count: points * options.modes.length, seed: options.seed, modes: options.modes })
    .map((spec, ordinal) => ({ spec, ordinal }));
  if (options.points === 'all') return all;
  const kinds = pointKinds(ffs.ops(), traces, root);
  return options.modes.flatMap((mode, m) =>
    samplePointsForMode(kinds, traces, mode, m, options.modes.length).map((p) => all[m * points + p]));
}

/** 'mode: kind' for every kind of the log that no state in `specs` crashes at, in a mode `specs` uses. */
export function uncoveredKinds(kinds: readonly string[][], specs: readonly SampledSpec[]): string[] {
  const byMode = new Map<CrashMode, Set<string>>();
  for (const { spec } of specs) {
    const seen = byMode.get(spec.mode) ?? new Set<string>();
    for (const k of kinds[spec.afterOp]) seen.add(k);
    byMode.set(spec.mode, seen);
  }
  const all = new Set(kinds.flat());
  return [...byMode].flatMap(([mode, seen]) => [...all].filter((k) => !seen.has(k)).map((k) => `${mode}: ${k}`));
}
