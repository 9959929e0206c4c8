// node:worker_threads with a Worker whose start throws as node's does when no thread can be made
// (ERR_WORKER_INIT_FAILED: a thread limit, ulimit -u or a cgroup's pids.max, out of memory), for a
// test file's vi.mock (file-wide): `starts.failFrom` is the first start (0-based, counted from the
// test's reset) that throws.
import type * as WorkerThreads from 'node:worker_threads';

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
