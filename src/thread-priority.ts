// The main thread before the runtime's helpers: a process that serves mail (the CLI, the daemon,
// the bench's measurements, a server embedding the library that asks for it) lowers the
// scheduling priority of V8's platform threads and libuv's thread pool below its main thread's.
// On Linux the nice value belongs to each thread (setpriority(2), NOTES): a thread id given to
// setpriority lowers that thread alone, and a thread starts with the nice value of the thread
// that created it.
//
// Why (issue 16; BENCHMARKS.md, "The main thread before V8's compiler"): on a machine with 2 cores
// a fresh node process runs V8's four platform threads (TurboFan compiling the hot functions, GC
// helpers) and the thread pool (LevelDB, files) beside its main thread, the one every answer waits
// for. A cold SpamAssassin read spent ~100 ms of the platform threads' CPU in a pass of ~130, and
// its main thread waited 10-30 ms runnable while they held both cores; an incremental backup's main
// thread waited ~140 ms of ~650. Lowered, they keep every idle cycle and the second core, and the
// main thread gets its own when both want it (CFS weights: nice 0 is 1024, nice 10 is 110).
//
// Which threads: those that exist when favourMainThread runs, after it has started the thread pool
// (libuv makes all its threads at the first job). Threads made later keep the priority of the
// thread that made them: LevelDB's compaction thread, made by a pool thread, is low too; the
// store's hash workers, made by the main thread, are not: they do the work a scrub waits for (its
// pack pass ran 15 % slower with its hash worker lowered). The backup's compressors lower
// themselves (helperNice): an incremental run waits on its main thread. It changes no result, and
// never raises a priority.
//
// Opt-in: V8's and libuv's threads are the whole process's, and an unprivileged process cannot
// take a lowered priority back, so the library never does it on its own.
import { readdirSync, readlinkSync, stat } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { MailstoreError } from './errors.js';

/** How far below the main thread's priority the helpers go (nice steps; 19 is the lowest there is). */
export const HELPER_NICE_STEPS = 10;

const NICE_LOWEST = 19;

/** The nice value favourMainThread gave the helpers (undefined: not called, or nothing done). */
let lowered: number | undefined;

/**
 * The nice value favourMainThread gave the helpers, for a worker that should go as low (the
 * backup's compressors: an incremental run's main thread is the one it waits for, and a full
 * run's compression measured no slower lowered); undefined when it was not called here.
 */
export function helperNice(): number | undefined {
  return lowered;
}

/**
 * Whether this is the process's main thread: its thread id is the process id (/proc/thread-self
 * names "PID/task/TID"). Read from /proc rather than node:worker_threads' isMainThread, whose
 * module loads node's worker internals, ~10M instructions of every CLI command's start (issue 16).
 */
function onMainThread(): boolean {
  return readlinkSync('/proc/thread-self') === `${process.pid}/task/${process.pid}`;
}

/**
 * Lowers V8's platform threads, libuv's thread pool and every other thread of this process that
 * exists now to `steps` nice values below the main thread (at most 19). Call it first thing, from
 * the main thread, before starting worker threads of your own (they would be lowered too). Returns
 * how many threads it lowered, or undefined where it does nothing: not Linux, not the main thread,
 * no /proc.
 */
export function favourMainThread(steps = HELPER_NICE_STEPS): number | undefined {
  if (!Number.isInteger(steps) || steps < 1 || steps > NICE_LOWEST) throw new MailstoreError('INVALID', `favourMainThread: steps must be an integer from 1 to ${NICE_LOWEST}, not ${String(steps)}`);
  if (process.platform !== 'linux') return undefined;
  let ids: string[];
  let nice: number;
  try {
    if (!onMainThread()) return undefined;
    // the thread pool's threads are made (and started) within its first job's submission
    stat('/', () => undefined);
    ids = readdirSync('/proc/self/task');
    nice = Math.min(NICE_LOWEST, getPriority(process.pid) + steps); // the main thread's id is the process id
  } catch {
    return undefined;
  }
  lowered = nice;
  let count = 0;
  for (const name of ids) {
    const id = Number(name);
    if (id === process.pid || !Number.isInteger(id)) continue;
    try {
      if (getPriority(id) >= nice) continue; // as low already
      setPriority(id, nice);
      count++;
    } catch {
      // exited between the listing and here
    }
  }
  return count;
}
