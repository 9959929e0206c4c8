// The store's one hash worker pool (src/hash/shared-pool.ts): readMessages and scrub lease the same
// workers instead of each starting its own (every worker is an isolate and a malloc arena that
// stay resident), it closes with the store and after limits.hashPoolIdleMs, it never grows past
// limits.hashPoolThreadsMax, and a worker that dies mid-task changes no result.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PackedStore as Store } from '../helpers/packed.js';
import type { Store as RealStore } from '../../src/store/store.js';
import { HashPool } from '../../src/hash/pool.js';
import { limits } from '../../src/limits.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';
import { body } from './compact-helpers.js';

const saved = { ...limits };
afterEach(() => {
  Object.assign(limits, saved);
  vi.restoreAllMocks();
});

/** A store whose every readMessages uses the pool (no size thresholds), with 200 messages in INBOX. */
async function storeWithMail(): Promise<{ store: RealStore; bodies: Buffer[] }> {
  limits.readPoolMailboxBytesMin = 0;
  limits.readPoolRunBytesMin = 0;
  const store = await Store.open(tmpDir('shared-pool'), { create: true, readHashThreads: 1 });
  await store.createMailbox('INBOX');
  const bodies = Array.from({ length: 200 }, (_, i) => body(i + 1, 2500 + (i % 5) * 600));
  await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
  return { store, bodies };
}

/** Reads INBOX whole and checks every body; returns how many came back. */
async function readAll(store: RealStore, bodies: Buffer[]): Promise<number> {
  let n = 0;
  for await (const { info, body: bytes } of store.readMessages('INBOX')) {
    expect(bytes.equals(bodies[info.uid - 1]), `uid ${info.uid}`).toBe(true);
    n++;
  }
  return n;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > 10_000) throw new Error(`${what}: not within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('one hash pool per store', () => {
  it('readMessages and scrub share its workers: one pool started, grown to the most asked for, closed with the store', async () => {
    const created = vi.spyOn(HashPool, 'create');
    const { store, bodies } = await storeWithMail();
    const shared = store.maintenance().hashPool;
    expect(shared.threads, 'nothing started before a big read').toBe(0);
    await readAll(store, bodies);
    await until('the pool up', () => shared.current?.ready === true);
    const pool = shared.current!;
    expect(shared.threads).toBe(1);
    expect(await readAll(store, bodies)).toBe(200); // now hashed on the worker

    const hashed = vi.spyOn(pool, 'scanChunk'); // the scan's chunks: the worker reads them from the pack itself
    const one = await scrub(store, { hashThreads: 1 });
    expect(one.summary.damage).toBe(0);
    expect(hashed.mock.calls.length, 'the scrub hashed on the read pool').toBeGreaterThan(0);
    expect(shared.current).toBe(pool);
    expect(shared.threads, 'no second pool, no more workers').toBe(1);

    const two = await scrub(store, { hashThreads: 2 });
    expect(two.summary.blobsVerified).toBe(one.summary.blobsVerified);
    expect(shared.current).toBe(pool);
    expect(shared.threads, 'grown for the scrub that asked for two').toBe(2);
    expect(created).toHaveBeenCalledTimes(1);

    await store.close();
    expect(shared.threads).toBe(0);
    await expect(pool.hash(new ArrayBuffer(8), [0, 8])).rejects.toThrow(/closed/);
    expect(shared.acquire(1), 'a closed store leases nothing').toBeUndefined();
  });

  it('an idle pool closes after limits.hashPoolIdleMs; the next big read starts a new one', async () => {
    const { store, bodies } = await storeWithMail();
    const shared = store.maintenance().hashPool;
    await readAll(store, bodies);
    await until('the pool up', () => shared.current?.ready === true);
    const first = shared.current!;
    limits.hashPoolIdleMs = 50; // from the next lease's end (a loaded machine may take longer than that to start a worker)
    expect(await readAll(store, bodies)).toBe(200);
    await until('the idle pool closed', () => shared.threads === 0);
    expect(first.failed, 'its workers were told to end').toBe(true);
    expect(await readAll(store, bodies)).toBe(200);
    expect(shared.current).toBeDefined();
    expect(shared.current).not.toBe(first);
    await store.close();
  });

  it('never more workers than limits.hashPoolThreadsMax, whatever a scrub asks for', async () => {
    limits.hashPoolThreadsMax = 2;
    const { store } = await storeWithMail();
    const shared = store.maintenance().hashPool;
    const report = await scrub(store, { hashThreads: 16 });
    expect(report.summary.damage).toBe(0);
    expect(shared.threads).toBe(2);
    await store.close();
  });

  it('a worker killed mid-scrub: the scrub verifies the same blobs and finds no damage; the next lease gets a fresh pool', async () => {
    limits.scanChunkBytes = 64 * 1024; // a dozen chunks: some hashed before the kill, the rest after
    const { store, bodies } = await storeWithMail();
    const reference = await scrub(store, { hashThreads: 0 });
    const shared = store.maintenance().hashPool;
    const pool = shared.acquire(1)!; // started and ready before the scrub, so the kill lands mid-task
    await until('the pool up', () => pool.ready);
    shared.release();
    // The scan's chunks (the worker reads them from the pack itself). The second chunk is handed on
    // only once the first one's digests came back and the worker has been killed: the first was
    // hashed there, the second and every later one can only fail over. (Killing the worker as the
    // second chunk was handed over raced with the worker hashing the first: it answers `parsed`
    // before it hashes, and a CI run lost that race.)
    type Job = ReturnType<HashPool['scanChunk']>;
    const workers = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    const scanChunk = pool.scanChunk.bind(pool);
    let calls = 0;
    let killed = false;
    const hashed = vi.spyOn(pool, 'scanChunk').mockImplementation((...args: Parameters<HashPool['scanChunk']>): Job => {
      if (++calls !== 2) return scanChunk(...args);
      const first = hashed.mock.results[0]!.value as Job;
      const job = first.done
        .then(() => undefined, () => undefined)
        .then(() => workers[0]!.terminate())
        .then(() => {
          killed = true;
          return scanChunk(...args);
        });
      const parsed = job.then((j) => j.parsed);
      const done = job.then((j) => j.done);
      parsed.catch(() => undefined);
      done.catch(() => undefined);
      return { parsed, done };
    });
    const report = await scrub(store, { hashThreads: 1 });
    expect(killed).toBe(true);
    expect(pool.failed).toBe(true);
    const outcomes = await Promise.allSettled(hashed.mock.results.map((r) => (r.value as ReturnType<HashPool['scanChunk']>).done));
    expect(outcomes.some((o) => o.status === 'fulfilled'), 'chunks hashed on the worker before the kill').toBe(true);
    expect(outcomes.some((o) => o.status === 'rejected'), 'chunks failed over after it').toBe(true);
    expect(report.findings).toEqual(reference.findings);
    expect(report.summary.damage).toBe(0);
    expect(report.summary.blobsVerified).toBe(reference.summary.blobsVerified);
    expect(report.summary.bytesVerified).toBe(reference.summary.bytesVerified);
    // nothing holds the failed pool now: the next read leases a new one, and every body is exact
    expect(await readAll(store, bodies)).toBe(200);
    expect(shared.current).not.toBe(pool);
    expect(shared.current?.failed).toBe(false);
    await store.close();
  });

  it('scrub, not told how many threads: starts no worker for small records, leases one once a chunk holds big ones, same findings', async () => {
    limits.scrubPoolBytesMin = 0; // a pass big enough for workers
    limits.scanChunkBytes = 64 * 1024; // several chunks a pack
    const created = vi.spyOn(HashPool, 'create');
    const store = await Store.open(tmpDir('shared-pool'), { create: true });
    await store.createMailbox('INBOX');
    const small = Array.from({ length: 200 }, (_, i) => body(i + 1, 2500 + (i % 5) * 600));
    await store.appendBatch('INBOX', small.map((bytes) => ({ bytes })));
    const shared = store.maintenance().hashPool;
    const reference = await scrub(store, { hashThreads: 0 });
    const smallOnly = await scrub(store);
    expect(created, 'records of ~3 KB: no worker').not.toHaveBeenCalled();
    expect(shared.threads).toBe(0);
    expect(smallOnly.findings).toEqual(reference.findings);
    expect(smallOnly.summary.blobsVerified).toBe(200);

    // then records of 20 KB on: the chunk that holds them leases the pool, the chunks after it go to its worker
    const big = Array.from({ length: 40 }, (_, i) => body(1000 + i, 20 * 1024 + i));
    await store.appendBatch('INBOX', big.map((bytes) => ({ bytes })));
    const leased = vi.spyOn(shared, 'acquire');
    const onWorker = vi.spyOn(HashPool.prototype, 'scanChunk');
    const withBig = await scrub(store);
    expect(leased).toHaveBeenCalledTimes(1);
    expect(onWorker.mock.calls.length, 'the chunks after it hashed on the worker').toBeGreaterThan(0);
    expect(shared.current, 'a pool leased for the big records').toBeDefined();
    expect(withBig.summary.damage).toBe(0);
    expect(withBig.summary.blobsVerified).toBe(240);
    expect(withBig.findings).toEqual((await scrub(store, { hashThreads: 0 })).findings);
    await store.close();
  });
});
