// The crash explorer: materialises crash states of a recorded workload (FaultFS), opens each with
// the real file system and checks it against the reference model. LevelDB's index/ is derived,
// so each state also loses it ('missing') or gets an older copy of it ('older').
import { promises as fsp, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Store } from '../../src/store/store.js';
import { Rng, type CrashMode, type CrashReport, type FaultFileSystem } from './faultfs.js';
import { dumpDiff, dumpStore } from './model.js';
import { allowedStates, type WorkloadRun } from './workload.js';

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
  ms: number;
}

export async function exploreCrashes(ffs: FaultFileSystem, run: WorkloadRun, options: { count: number; seed: number; tmpRoot: string; reopenEvery?: number; modes?: CrashMode[] }): Promise<ExploreResult> {
  const started = Date.now();
  const specs = ffs.crashStates({ count: options.count, seed: options.seed, modes: options.modes });
  const result: ExploreResult = { states: 0, byIndexMode: { missing: 0, older: 0 }, byCrashMode: {}, atAck: 0, beyondAck: 0, ms: 0 };
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i];
    const pick = new Rng(spec.seed ^ 0x1dec);
    const eligible = run.snapshots.filter((s) => s.atLog <= spec.afterOp);
    const older = eligible.length > 0 && i % 2 === 1 ? pick.pick(eligible) : undefined;
    const dir = await fsp.mkdtemp(join(options.tmpRoot, 'crash-'));
    const report = await ffs.materializeCrash(dir, spec.afterOp, spec.seed, {
      mode: spec.mode, indexMode: older ? 'older' : 'missing', indexSource: older?.dir,
    });
    try {
      const matched = await checkCrashState(dir, run, report, { reopen: i % (options.reopenEvery ?? 8) === 0 });
      if (matched === allowedStates(run, spec.afterOp).lo) result.atAck++;
      else result.beyondAck++;
    } catch (error) {
      const message = error instanceof Error ? error.stack ?? error.message : String(error);
      throw new Error(`crash state ${report.reproduce} index=${older ? `older(${older.dir})` : 'missing'} (faultfs seed ${ffs.seed}): ${message}\n  state kept in ${dir}\n  decisions: ${report.decisions.slice(0, 20).join('; ')}`, { cause: error });
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
export async function checkCrashState(dir: string, run: WorkloadRun, report: CrashReport, options: { reopen: boolean }): Promise<number> {
  retireOwnLock(dir);
  const { lo, hi } = allowedStates(run, report.afterOp);
  let store = await Store.open(dir, run.storeOptions);
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

/** Records one workload and explores `share` of CRASH_STATES (default total `fallbackTotal`) of its crash states. */
export async function recordAndExplore(label: string, options: { seed: number; steps: number; share: number; fallbackTotal: number; packBytesMax?: number; journalSegmentBytesMax?: number; inlineBodyBytesMax?: number; modes?: CrashMode[]; everyPoint?: boolean; compact?: boolean }): Promise<ExploreResult & { ops: number; logLength: number; snapshots: number; indexSnapshots: number }> {
  const { FaultFileSystem } = await import('./faultfs.js');
  const { runWorkload } = await import('./workload.js');
  const work = await fsp.mkdtemp(join(fastTmpRoot(), 'crash-explorer-'));
  try {
    const ffs = new FaultFileSystem({ seed: options.seed });
    const run = await runWorkload({
      dir: join(work, 'store'), ffs, seed: options.seed, steps: options.steps, snapshotRoot: join(work, 'snapshots'), verifyLive: true,
      packBytesMax: options.packBytesMax, journalSegmentBytesMax: options.journalSegmentBytesMax, compact: options.compact,
      inlineBodyBytesMax: options.inlineBodyBytesMax,
    });
    // everyPoint: each crash point once in each of `modes`, whatever CRASH_STATES says
    const count = options.everyPoint ? (run.logLength + 1) * (options.modes?.length ?? 3) : Math.ceil(crashStatesFromEnv(options.fallbackTotal) * options.share);
    const result = await exploreCrashes(ffs, run, { count, seed: options.seed, tmpRoot: work, modes: options.modes });
    console.info(`${label} (seed ${options.seed}): ${run.ops.length} ops, ${run.logLength} log entries, ${run.snapshots.length} index copies, ${run.indexSnapshots} store snapshots (with retirement); `
      + `${result.states} crash states in ${(result.ms / 1000).toFixed(1)} s `
      + `(index missing ${result.byIndexMode.missing}, older ${result.byIndexMode.older}; ${JSON.stringify(result.byCrashMode)}; `
      + `recovered exactly the acknowledged state ${result.atAck}, with unacknowledged ops kept ${result.beyondAck})`);
    await fsp.rm(work, { recursive: true, force: true });
    return { ...result, ops: run.ops.length, logLength: run.logLength, snapshots: run.snapshots.length, indexSnapshots: run.indexSnapshots };
  } catch (error) {
    console.error(`${label}: failed; work directory kept: ${work}`);
    throw error;
  }
}
