// The store's workers are CommonJS source evaluated in a new thread (`new Worker(source, { eval:
// true })`), and a worker inherits its process's node flags: in a process started with
// `node --input-type=module -e ...` (or --experimental-default-type=module) the source was taken
// for an ES module, `require` was not defined, and every worker died at its first line. The hash
// pool and the backup's compressors then did their work on the main thread: the same results,
// slower, and nothing said why but `compressionWorkerLost` (found session 29).
//
// Only then are the flags given to the worker, less those two: node refuses an explicit execArgv
// that holds a V8 or per-process flag (`--max-old-space-size`, `--stack-size`, `--no-opt`: "invalid
// execArgv flags", ERR_WORKER_INVALID_EXEC_ARGV) that it inherits silently when none is given. The
// session-29 fix gave the list always, so `node --max-old-space-size=4096 .../main.js backup` failed
// with INTERNAL (found session 30); now a process without a module-type flag starts its workers as
// node does by default, and a refused list falls back to no flags at all (the workers' own source
// needs none).
import { createRequire } from 'node:module';
import type { Worker, WorkerOptions } from 'node:worker_threads';

// Required when a worker starts, not imported: node:worker_threads loads node's worker internals
// (~15 modules with the event-loop and performance timing they use), ~10M instructions of every
// command that imports this (an append, which starts no worker; issue 16).
const require = createRequire(import.meta.url);

/**
 * Where startCommonJsWorker takes node:worker_threads from (a require: vi.mock of the module does
 * not reach it). Tests of a worker that cannot be made replace `load` (test/helpers/failing-worker.ts).
 */
export const workerThreads = {
  load: (): typeof import('node:worker_threads') => require('node:worker_threads') as typeof import('node:worker_threads'),
};

/** Flags that decide how source given as a string is read, with their value (`--flag=v` or `--flag v`). */
const MODULE_TYPE_FLAGS = ['--input-type', '--experimental-default-type'];

/** This process's node flags, less those that would read a worker's eval'd CommonJS source as an ES module. */
export function commonJsWorkerArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (MODULE_TYPE_FLAGS.includes(arg)) {
      i++; // its value is the next argument
      continue;
    }
    if (MODULE_TYPE_FLAGS.some((flag) => arg.startsWith(`${flag}=`))) continue;
    out.push(arg);
  }
  return out;
}

/** The execArgv to start an eval'd CommonJS worker with: undefined (inherit, node's default) unless a module-type flag must go. */
export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] | undefined {
  const kept = commonJsWorkerArgv(execArgv);
  return kept.length === execArgv.length ? undefined : kept;
}

/** A worker running CommonJS `source`, started with the flags above (a list node refuses: none). */
export function startCommonJsWorker(source: string, options: Omit<WorkerOptions, 'eval' | 'execArgv' | 'stdout' | 'stderr'>, execArgv: readonly string[] = process.execArgv): Worker {
  const { Worker } = workerThreads.load();
  const argv = workerExecArgv(execArgv);
  const own = { ...options, eval: true, stdout: true, stderr: true } as const;
  if (argv === undefined) return forwardOutput(new Worker(source, own));
  try {
    return forwardOutput(new Worker(source, { ...own, execArgv: argv }));
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
    return forwardOutput(new Worker(source, { ...own, execArgv: [] }));
  }
}

/**
 * What a worker writes (a warning, a crash's stack) goes on to the process's own stdout and stderr,
 * as node's default pipe would take it, but without that pipe's 'error' listener on process.stdout
 * and process.stderr for every live worker: a process with ten workers at once (a daemon's hash
 * pool, compressors and stall watch; a test runner's many stores) had node's
 * MaxListenersExceededWarning written into its stderr, inside a command's own error output
 * (session 41's CI). Nothing is written until a worker writes, so no stream is made before.
 */
function forwardOutput(worker: Worker): Worker {
  // a test's stand-in worker (test/helpers/failing-worker.ts) may have no streams
  worker.stdout?.on('data', (chunk: Buffer) => process.stdout.write(chunk));
  worker.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  return worker;
}
