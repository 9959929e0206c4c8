// Shared by the read hash worker tests (read-pool.test.ts, and read-pool-start.test.ts, which mocks
// node:worker_threads and so stands in a file of its own): a store whose reads go to the worker.
import { expect } from 'vitest';
import { PackedStore as Store } from '../helpers/packed.js';
import type { Store as RealStore } from '../../src/store/store.js';
import type { HashPool } from '../../src/hash/pool.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { body } from './compact-helpers.js';

/**
 * A store whose readMessages go to a worker (every pool threshold 0), holding `bodies` in INBOX
 * appended `batchSize` at a time.
 */
export async function poolStore(bodies: Buffer[], batchSize = bodies.length): Promise<{ dir: string; store: RealStore }> {
  limits.readPoolMailboxBytesMin = 0;
  limits.readPoolRunBytesMin = 0;
  const dir = tmpDir('read-pool');
  const store = await Store.open(dir, { create: true, readHashThreads: 1 });
  await store.createMailbox('INBOX');
  for (let i = 0; i < bodies.length; i += batchSize) await store.appendBatch('INBOX', bodies.slice(i, i + batchSize).map((bytes) => ({ bytes })));
  return { dir, store };
}

/** 200 bodies of about 3000 bytes. */
export const twoHundred = () => Array.from({ length: 200 }, (_, i) => body(i + 1, 3000));

/** `out` holds every one of `bodies` (uid i + 1), exact. */
export function expectExactBodies(out: Map<number, Buffer>, bodies: Buffer[]): void {
  expect(out.size).toBe(bodies.length);
  for (const [uid, bytes] of out) expect(bytes.equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);
}

/** The store's shared hash pool, once its workers are up (the first big readMessages starts it). */
export async function readyPool(store: RealStore): Promise<HashPool> {
  const shared = store.maintenance().hashPool;
  for await (const _ of store.readMessages('INBOX')) break; // starts the pool
  for (let waited = 0; !shared.current?.ready; waited += 10) {
    if (waited > 10_000) throw new Error('the hash pool did not start');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return shared.current;
}
