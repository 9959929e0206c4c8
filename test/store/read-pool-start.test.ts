// A hash worker thread that cannot be made at all (`new Worker` throws: ERR_WORKER_INIT_FAILED,
// out of memory, a thread limit): HashPool.create gives no pool and ends the workers it made, and
// readMessages verifies every body in the reading thread instead of failing with a raw Error.
// The store's worker starts fail by test/helpers/failing-worker.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { failWorkerStarts } from '../helpers/failing-worker.js';
import { HashPool } from '../../src/hash/pool.js';
import { limits } from '../../src/limits.js';
import { expectExactBodies, poolStore, twoHundred } from './read-pool-helpers.js';

/** Which `new Worker` calls throw (0-based, counted from the last reset), and the workers that were made. */
const workerStarts = { failFrom: Infinity, made: 0, terminated: 0 };

beforeEach(() => failWorkerStarts(workerStarts));

const saved = { ...limits };
afterEach(() => {
  Object.assign(limits, saved);
  Object.assign(workerStarts, { failFrom: Infinity, made: 0, terminated: 0 });
  vi.restoreAllMocks();
});

describe('a hash worker that cannot be made', () => {
  it('HashPool.create: the second of two workers throws; no pool, the first worker ended', () => {
    workerStarts.failFrom = 1;
    expect(HashPool.create(2)).toBeUndefined();
    expect(workerStarts.made).toBe(1);
    expect(workerStarts.terminated, 'the worker made before the failure does not linger').toBe(1);
  });

  it('readMessages: every body verified in the reading thread, and the start is not tried on every run', async () => {
    const bodies = twoHundred();
    const { store } = await poolStore(bodies);
    workerStarts.failFrom = 0;
    const create = vi.spyOn(HashPool, 'create');
    for (let pass = 0; pass < 2; pass++) { // the second read after the failed start is known
      const out = new Map<number, Buffer>();
      for await (const { info, body: bytes } of store.readMessages('INBOX')) out.set(info.uid, bytes);
      expectExactBodies(out, bodies);
    }
    expect(create).toHaveBeenCalledTimes(1);
    expect(create.mock.results[0].value, 'no pool').toBeUndefined();
    expect(workerStarts.made).toBe(0);
    await store.close();
  });
});
