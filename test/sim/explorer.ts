// The crash explorer: materialises crash states of a recorded workload (FaultFS), opens each with
// the real file system and checks it against the reference model. LevelDB's index/ is derived,
// so each state also loses it ('missing') or gets an older copy of it ('older').
import { expect } from 'vitest';
import { promises as fsp, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Store } from '../../src/store/store.js';
import { Rng, type CrashMode, type CrashReport, type FaultFileSystem } from './faultfs.js';
import { dumpDiff, dumpStore } from './model.js';
import { allowedStates, type WorkloadRun } from './workload.js';
import { crashPointsFromEnv, crashSpecs, pointKinds, uncoveredKinds, type SampledSpec } from './crash-sample.js';

/** A pid that is certainly not running (for LOCK files our own process wrote before the "crash"). */
const DEAD_PID = spawnSync('true').pid ?? 999_999;

/**
 * The crashed process was this one, so a LOCK it left names our pid, which open would refuse as
 * "already open in this process". After a real crash the pid is dead: make it so.
 */
export function retireOwnLock(dir: string): void {
  const lock = join(dir, 'LOCK');
  if (existsSync(lock) && readFileSync(lock, 'utf8').trim() === String(process.pid)) writeFileSync(lock, `${DEAD_PID}\n`);
}

export interface ExploreResult {
  states: number;
  byIndexMode: Record<'missing' | 'older', number>;
  byCrashMode: Record<string, number>;
  /** How many states recovered exactly what was acknowledged, and how many kept unacknowledged ops. */
  atAck: number;
  beyondAck: number;
  /** States opened with the index probe in a child process (PROBE_EVERY). */
  probed: number;
  ms: number;
}

/**
 * One state in this many (ordinal ≡ 1: an 'older' index) opens with the index probe; the others with
 * probeIndex 'never'. Every state's LOCK names a dead pid, so open would first open the index in a
 * child process (LevelDB can abort on a damaged index: src/index/probe.ts). The index a state gets
 * is never damaged (missing, or a copy taken with the store closed), so the probe passes and open
 * goes on exactly as without it, but a node start cost more than the rest of the state (~200 ms
 * against ~70 ms, loaded). The probe's failure paths are tested where the index is damaged
 * (damage-explorer's index/ cases, test/index, drills).
 */
export const PROBE_EVERY = 16;

/**
 * Explores `specs` (crashSpecs in crash-sample.ts, or FaultFileSystem.crashStates numbered in order).
 * A state's ordinal, not its place in `specs`, chooses its index mode and whether it is reopened, so a
 * sampled state is the same state the whole sweep explores at that ordinal.
 */
export async function exploreCrashes(ffs: FaultFileSystem, run: WorkloadRun, specs: readonly SampledSpec[], options: { tmpRoot: string; reopenEvery?: number }): Promise<ExploreResult> {
  const started = Date.now();
  const result: ExploreResult = { states: 0, byIndexMode: { missing: 0, older: 0 }, byCrashMode: {}, atAck: 0, beyondAck: 0, probed: 0, ms: 0 };
  for (const { spec, ordinal: i } of specs) {
    const pick = new Rng(spec.seed ^ 0x1dec);
    const eligible = run.snapshots.filter((s) => s.atLog <= spec.afterOp);
    const older = eligible.length > 0 && i % 2 === 1 ? pick.pick(eligible) : undefined;
    const dir = await fsp.mkdtemp(join(options.tmpRoot, 'crash-'));
    const report = await ffs.materializeCrash(dir, spec.afterOp, spec.seed, {
      mode: spec.mode, indexMode: older ? 'older' : 'missing', indexSource: older?.dir,
    });
    const probe = older !== undefined && i % PROBE_EVERY === 1;
    try {
      const matched = await checkCrashState(dir, run, report, { reopen: i % (options.reopenEvery ?? 8) === 0, probe });
      if (probe) result.probed++;
      if (matched === allowedStates(run, spec.afterOp).lo) result.atAck++;
      else result.beyondAck++;
    } catch (error) {
      const message = error instanceof Error ? error.stack ?? error.message : String(error);
      throw new Error(`crash state ${report.reproduce} index=${older ? `older(${older.dir})` : 'missing'}${probe ? ' probed' : ''} (faultfs seed ${ffs.seed}): ${message}\n  state kept in ${dir}\n  decisions: ${report.decisions.slice(0, 20).join('; ')}`, { cause: error });
    }
    await fsp.rm(dir, { recursive: true, force: true });
    result.states++;
    result.byIndexMode[older ? 'older' : 'missing']++;
    result.byCrashMode[spec.mode] = (result.byCrashMode[spec.mode] ?? 0) + 1;
  }
  result.ms = Date.now() - started;
  return result;
}

/**
 * Opens a crash state and checks it: it opens without complaint (a crash is not damage), it equals
 * one model state between "everything acknowledged" and "everything submitted" (so nothing
 * acknowledged is lost, nothing never attempted appears, and each op is all or nothing), the
 * derived structures agree with the primary data, every blob reads back with its hash, and new
 * writes get UIDs and modseqs above everything seen. Returns the index of the matched state.
 */
export async function checkCrashState(dir: string, run: WorkloadRun, report: CrashReport, options: { reopen: boolean; probe?: boolean }): Promise<number> {
  retireOwnLock(dir);
  const { lo, hi } = allowedStates(run, report.afterOp);
  let store = await Store.open(dir, { ...run.storeOptions, probeIndex: options.probe === false ? 'never' : 'after-crash' });
  let after: string;
  let matched: number;
  try {
    if (store.health.degraded) throw new Error(`a crash state opened degraded: ${store.health.findings.join('; ')}`);
    const got = await dumpStore(store);
    matched = -1;
    for (let k = hi; k >= lo; k--) if (run.states[k] === got) { matched = k; break; }
    if (matched < 0) {
      const others = run.states.findIndex((s) => s === got);
      throw new Error(`recovered state matches none of the allowed model states ${lo}..${hi} (ops ${run.ops.slice(lo, hi).map((o) => o.label).join(' | ')})`
        + `${others >= 0 ? `; it equals state ${others}` : ''}; vs state ${lo}: ${dumpDiff(got, run.states[lo])}`);
    }
    await writeAfterRecovery(store, JSON.parse(got));
    after = await dumpStore(store, { fetchAll: false });
  } finally {
    await store.close();
  }
  if (options.reopen) {
    retireOwnLock(dir);
    store = await Store.open(dir, run.storeOptions);
    try {
      if (store.health.degraded) throw new Error(`second open degraded: ${store.health.findings.join('; ')}`);
      const again = await dumpStore(store);
      if (again !== after) throw new Error(`second open differs: ${dumpDiff(again, after)}`);
    } finally {
      await store.close();
    }
  }
  return matched;
}

/** A new append and flag change after recovery: the uid is uidNext, the modseqs exceed all before. */
async function writeAfterRecovery(store: Store, dump: { name?: string; uidNext: number; highestModseq: number; messages: [number, string, number, number, string, number][] }[]): Promise<void> {
  const boxes = dump.filter((b) => b.name !== undefined);
  if (boxes.length === 0) return;
  const maxModseq = Math.max(...boxes.map((b) => b.highestModseq));
  const box = boxes[0];
  const appended = await store.append(box.name!, Buffer.from(`After recovery ${Math.random()}\r\n`));
  if (appended.uid !== box.uidNext) throw new Error(`append after recovery got uid ${appended.uid}, expected uidNext ${box.uidNext}`);
  const info = await store.messageInfo(box.name!, appended.uid);
  if (info.modseq <= maxModseq) throw new Error(`append after recovery got modseq ${info.modseq}, not above ${maxModseq}`);
  const flagged = await store.setFlags(box.name!, appended.uid, { add: ['\\Flagged'] });
  if (flagged.modseq <= info.modseq) throw new Error(`flags after recovery got modseq ${flagged.modseq}, not above ${info.modseq}`);
}

/** Crash states are many small directories: on tmpfs when there is one (fsync is free there). */
export function fastTmpRoot(): string {
  return existsSync('/dev/shm') && process.env.CRASH_TMP !== 'disk' ? '/dev/shm' : tmpdir();
}

export function crashStatesFromEnv(fallback: number): number {
  const n = Number(process.env.CRASH_STATES);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** What a recordAndExplore run crashed at, so a test can assert the coverage its header promises. */
export interface ExploreCoverage {
  /** 'sample' and 'all': crash points (crash-sample.ts); 'random': CRASH_STATES seeded random states. */
  points: 'all' | 'sample' | 'random';
  modes: CrashMode[];
  /** Distinct crash-point kinds in the log ('sync journal/#.jnl | append', …). */
  kinds: number;
  /** 'mode: kind' pairs no explored state crashed at (empty for 'all' and 'sample'). */
  uncovered: string[];
  /** States the whole sweep has: (log length + 1) × modes. */
  wholeSweep: number;
}

/**
 * Records one workload and explores its crash states: with `everyPoint`, crash points in each of
 * `modes` (the covering sample, or every one with CRASH_POINTS=all: crash-sample.ts) whatever
 * CRASH_STATES says; without, `share` of CRASH_STATES (default total `fallbackTotal`) seeded random states.
 */
export async function recordAndExplore(label: string, options: { seed: number; steps: number; share: number; fallbackTotal: number; packBytesMax?: number; journalSegmentBytesMax?: number; inlineBodyBytesMax?: number; modes?: CrashMode[]; everyPoint?: boolean; compact?: boolean }): Promise<ExploreResult & { ops: number; logLength: number; snapshots: number; indexSnapshots: number; coverage: ExploreCoverage }> {
  const { FaultFileSystem } = await import('./faultfs.js');
  const { runWorkload } = await import('./workload.js');
  const work = await fsp.mkdtemp(join(fastTmpRoot(), 'crash-explorer-'));
  try {
    const ffs = new FaultFileSystem({ seed: options.seed });
    const root = join(work, 'store');
    const run = await runWorkload({
      dir: root, ffs, seed: options.seed, steps: options.steps, snapshotRoot: join(work, 'snapshots'), verifyLive: true,
      packBytesMax: options.packBytesMax, journalSegmentBytesMax: options.journalSegmentBytesMax, compact: options.compact,
      inlineBodyBytesMax: options.inlineBodyBytesMax,
    });
    const modes = options.modes ?? ['all-lost', 'random', 'all-kept'];
    const points = options.everyPoint ? crashPointsFromEnv() : 'random';
    const specs = points !== 'random'
      ? crashSpecs(ffs, run.ops, root, { seed: options.seed, modes, points })
      : ffs.crashStates({ count: Math.ceil(crashStatesFromEnv(options.fallbackTotal) * options.share), seed: options.seed, modes }).map((spec, ordinal) => ({ spec, ordinal }));
    const kinds = pointKinds(ffs.ops(), run.ops, root);
    const coverage: ExploreCoverage = {
      points, modes, kinds: new Set(kinds.flat()).size, uncovered: uncoveredKinds(kinds, specs), wholeSweep: (run.logLength + 1) * modes.length,
    };
    const result = await exploreCrashes(ffs, run, specs, { tmpRoot: work });
    console.info(`${label} (seed ${options.seed}): ${run.ops.length} ops, ${run.logLength} log entries, ${run.snapshots.length} index copies, ${run.indexSnapshots} store snapshots (with retirement); `
      + `${result.states} crash states (${points}: ${coverage.kinds} kinds of crash point, whole sweep ${coverage.wholeSweep}) in ${(result.ms / 1000).toFixed(1)} s `
      + `(index missing ${result.byIndexMode.missing}, older ${result.byIndexMode.older}; ${JSON.stringify(result.byCrashMode)}; `
      + `recovered exactly the acknowledged state ${result.atAck}, with unacknowledged ops kept ${result.beyondAck}; index probed in ${result.probed})`);
    await fsp.rm(work, { recursive: true, force: true });
    return { ...result, ops: run.ops.length, logLength: run.logLength, snapshots: run.snapshots.length, indexSnapshots: run.indexSnapshots, coverage };
  } catch (error) {
    console.error(`${label}: failed; work directory kept: ${work}`);
    throw error;
  }
}

/**
 * The coverage a crash explorer test promises: the whole sweep has every state; the sample every kind
 * of crash point in every mode (and fewer states, or it would not be a sample).
 */
export function expectCrashPointCoverage(result: { states: number; probed: number; coverage: ExploreCoverage }): void {
  const { coverage } = result;
  if (coverage.points === 'random') return;
  expect(coverage.uncovered, 'kinds of crash point never crashed at, by mode').toEqual([]);
  expect(result.probed, 'states opened with the index probe').toBeGreaterThan(0);
  if (coverage.points === 'all') expect(result.states).toBe(coverage.wholeSweep);
  else expect(result.states).toBeLessThan(coverage.wholeSweep);
}
