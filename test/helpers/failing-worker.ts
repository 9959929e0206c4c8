// node:worker_threads with a Worker whose start throws as node's does when no thread can be made
// (ERR_WORKER_INIT_FAILED: a thread limit, ulimit -u or a cgroup's pids.max, out of memory), put
// where the store's workers are started from (worker-argv.ts `workerThreads.load`, which requires
// the module when a worker starts: vi.mock does not reach a require): `starts.failFrom` is the
// first start (0-based, counted from the test's reset) that throws.
import * as realWorkerThreads from 'node:worker_threads';
import type * as WorkerThreads from 'node:worker_threads';
import { vi } from 'vitest';
import { workerThreads } from '../../src/worker-argv.js';

export interface WorkerStarts {
  failFrom: number;
  made: number;
  terminated: number;
}

export function failingWorkerThreads(original: typeof WorkerThreads, starts: WorkerStarts): typeof WorkerThreads {
  class FailingWorker extends original.Worker {
    constructor(...args: ConstructorParameters<typeof original.Worker>) {
      if (starts.made >= starts.failFrom) {
        throw Object.assign(new Error('EAGAIN'), { code: 'ERR_WORKER_INIT_FAILED' });
      }
      super(...args);
      starts.made++;
    }

    override terminate(): Promise<number> {
      starts.terminated++;
      return super.terminate();
    }
  }
  return { ...original, Worker: FailingWorker };
}

/** Every worker the store starts from now on is failingWorkerThreads' (undone by vi.restoreAllMocks). */
export function failWorkerStarts(starts: WorkerStarts): void {
  const failing = failingWorkerThreads(realWorkerThreads, starts);
  vi.spyOn(workerThreads, 'load').mockReturnValue(failing);
}
