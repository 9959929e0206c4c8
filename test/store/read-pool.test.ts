// readMessages' two newer paths: bodies verified on a worker thread (StoreOptions.readHashThreads)
// while the reading thread reads on, and runs whose pack compaction retires during the read.
// Either way every body is verified before it comes out, and damage costs only its own message.
// A worker that dies, fails while starting or never starts: the reading thread hashes instead
// (one that cannot be made at all: read-pool-start.test.ts).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Store as RealStore } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { HashPool } from '../../src/hash/pool.js';
import { limits } from '../../src/limits.js';
import { internalsOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { body, churned, packNames } from './compact-helpers.js';
import { expectExactBodies, poolStore, readyPool, twoHundred } from './read-pool-helpers.js';

const saved = { ...limits };
afterEach(() => {
  Object.assign(limits, saved);
  vi.restoreAllMocks();
});

async function collect(store: RealStore, mailbox: string, onCorrupt?: (uid: number, code: string) => void) {
  const out = new Map<number, Buffer>();
  for await (const { info, body: bytes } of store.readMessages(mailbox, onCorrupt ? { onCorrupt: (i, e) => onCorrupt(i.uid, e.code) } : {})) out.set(info.uid, bytes);
  return out;
}

/** Flips one byte of the body holding `marker` in the store's only pack. */
async function flipBody(store: RealStore, dir: string, marker: string): Promise<void> {
  const [name] = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));
  const path = join(dir, 'packs', name);
  const pack = readFileSync(path);
  const at = pack.indexOf(marker);
  expect(at).toBeGreaterThan(0);
  pack[at + marker.length + 3] ^= 0x01;
  writeFileSync(path, pack);
  await internalsOf(store).packs.forgetReadHandles();
}

describe('readMessages on a hash worker', () => {
  it('a damaged body in the middle of a run hashed on the worker: only it is CORRUPT, every other body comes back exact', async () => {
    const bodies = Array.from({ length: 300 }, (_, i) => body(i + 1, 1500 + (i % 9) * 700));
    const { dir, store } = await poolStore(bodies, 50);
    await flipBody(store, dir, 'Subject: m 150\r\n');
    const pool = await readyPool(store);
    const hashed = vi.spyOn(pool, 'hash');

    const reported: [number, string][] = [];
    const out = await collect(store, 'INBOX', (uid, code) => reported.push([uid, code]));
    expect(hashed.mock.calls.length, 'runs went to the worker').toBeGreaterThan(0);
    expect(reported).toEqual([[150, 'CORRUPT']]);
    expect(out.size).toBe(299);
    for (const [uid, bytes] of out) expect(bytes.equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);

    // without onCorrupt: CORRUPT, as fetch says, after the 149 before it
    const fetchError = await store.fetch('INBOX', 150).catch((e: unknown) => e);
    let seen = 0;
    const error = await (async () => { for await (const _ of store.readMessages('INBOX')) seen++; })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('CORRUPT');
    expect((error as MailstoreError).message).toBe((fetchError as MailstoreError).message);
    expect(seen).toBe(149);
    await store.close();
  });

  it('runs beyond limits.readRunsHashing are hashed in the reading thread: both threads verify, damage on either side costs only its message, uid order across groups', async () => {
    const bodies = Array.from({ length: 240 }, (_, i) => body(i + 1, 900 + (i % 7) * 400));
    const { dir, store } = await poolStore(bodies, 40);
    for (const uid of [17, 118, 203]) await flipBody(store, dir, `Subject: m ${uid}\r\n`);
    const pool = await readyPool(store);
    const hashed = vi.spyOn(pool, 'hash');
    limits.readTurnMessages = 8; // runs of 8 messages: 30 of them
    limits.readRunsHashing = 1; // one run of this read on the worker at a time, the others here
    limits.readBatchBytes = 64 * 1024; // several groups, the next read while one goes out

    const reported: [number, string][] = [];
    const order: number[] = [];
    const out = new Map<number, Buffer>();
    for await (const { info, body: bytes } of store.readMessages('INBOX', { onCorrupt: (i, e) => reported.push([i.uid, e.code]) })) {
      order.push(info.uid);
      out.set(info.uid, bytes);
    }
    expect(hashed.mock.calls.length, 'some runs went to the worker').toBeGreaterThan(0);
    expect(hashed.mock.calls.length, 'and some were hashed here').toBeLessThan(30);
    expect(reported).toEqual([[17, 'CORRUPT'], [118, 'CORRUPT'], [203, 'CORRUPT']]);
    expect(order).toEqual(bodies.map((_, i) => i + 1).filter((uid) => ![17, 118, 203].includes(uid)));
    for (const [uid, bytes] of out) expect(bytes.equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);
    await store.close();
  });

  it('the runs of one pack go to the worker as one job (limits.readPoolBatchBytes; lending, readLentBatchBytes), lent bodies included: damage costs only its message', async () => {
    const bodies = Array.from({ length: 240 }, (_, i) => body(i + 1, 900 + (i % 7) * 400));
    const { dir, store } = await poolStore(bodies, 40);
    for (const uid of [9, 130]) await flipBody(store, dir, `Subject: m ${uid}\r\n`);
    const pool = await readyPool(store);
    const hashed = vi.spyOn(pool, 'hash');
    limits.readTurnMessages = 8; // runs of 8 messages: 30 of them, in one pack
    limits.readRunsHashing = 100; // every job on the worker
    limits.readBatchMessages = 128; // two groups of the 240
    const read = async (lendBodies: boolean) => {
      hashed.mockClear();
      const reported: number[] = [];
      const out = new Map<number, Buffer>();
      for await (const { info, body: bytes } of store.readMessages('INBOX', { lendBodies, onCorrupt: (i) => reported.push(i.uid) })) out.set(info.uid, Buffer.from(bytes));
      expect(reported).toEqual([9, 130]);
      expect(out.size).toBe(238);
      for (const [uid, bytes] of out) expect(bytes.equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);
      return hashed.mock.calls.length;
    };
    // two groups, one pack: a job each, each of its runs one pread
    expect(await read(false)).toBe(2);
    expect(await read(true)).toBe(2);
    expect(hashed.mock.calls.map(([, ranges]) => ranges.length / 2), 'every body of a group in its job (the damaged ones too: their headers hold)').toEqual([128, 112]);
    limits.readPoolBatchBytes = 1; // a job a run, as before batches (and the check above fails so)
    expect(await read(false)).toBe(30);
    limits.readLentBatchBytes = 1; // lending: a group, and so a job, a message
    expect(await read(true)).toBe(240);
    await store.close();
  });

  it('a worker that dies mid-read: its runs are read again and hashed in the reading thread, nothing lost', async () => {
    const bodies = twoHundred();
    const { store } = await poolStore(bodies);
    const pool = await readyPool(store);
    const workers = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    const out = new Map<number, Buffer>();
    for await (const { info, body: bytes } of store.readMessages('INBOX')) {
      if (info.uid === 3) await workers[0].terminate(); // runs on it (or sent later) fail over
      out.set(info.uid, bytes);
    }
    expect(pool.ready).toBe(false);
    expectExactBodies(out, bodies);
    await store.close();
  });

  it('lent: a worker that dies mid-read leaves the shared buffers where they are; this thread hashes them, every lent body exact', async () => {
    const bodies = Array.from({ length: 600 }, (_, i) => body(i + 1, 2000 + (i % 13) * 900));
    const { store } = await poolStore(bodies, 100);
    limits.readLentBatchBytes = 256 * 1024; // many groups: some on the worker when it dies, the rest after
    limits.readLentBytes = 320 * 1024;
    limits.readRunsHashing = 100;
    const pool = await readyPool(store);
    const hashed = vi.spyOn(pool, 'hash');
    const workers = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    let read = 0;
    for await (const { info, body: lent } of store.readMessages('INBOX', { lendBodies: true })) {
      if (info.uid === 50) await workers[0].terminate();
      expect(lent.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(lent.equals(bodies[info.uid - 1]), `uid ${info.uid}`).toBe(true);
      read++;
    }
    expect(read).toBe(bodies.length);
    expect(hashed).toHaveBeenCalled(); // the worker had jobs before it died
    expect(pool.ready).toBe(false);
    await store.close();
  });
});

describe('readMessages when the hash worker fails to start', () => {
  /**
   * A pool store whose pool, once made, is one worker running `source` instead of the hashing code
   * (HashPool's constructor is private); `hashed` spies on what is sent to it.
   */
  async function withWorkerRunning(source: string) {
    const bodies = twoHundred();
    const { store } = await poolStore(bodies);
    const make = HashPool as unknown as new (workers: Worker[]) => HashPool;
    const pool = new make([new Worker(source, { eval: true })]);
    vi.spyOn(HashPool, 'create').mockReturnValue(pool);
    return { store, bodies, pool, hashed: vi.spyOn(pool, 'hash') };
  }

  async function expectAllExact(store: RealStore, bodies: Buffer[]): Promise<void> {
    expectExactBodies(await collect(store, 'INBOX'), bodies);
  }

  it('the worker fails while starting (its code throws before it is ready): every body verified in the reading thread', async () => {
    const { store, bodies, pool, hashed } = await withWorkerRunning("throw new Error('the BLAKE3 binding failed to load')");
    await expectAllExact(store, bodies);
    for (let waited = 0; !(pool as unknown as { failure?: Error }).failure; waited += 10) {
      if (waited > 10_000) throw new Error('the failing worker never reported');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(pool.ready).toBe(false);
    await expectAllExact(store, bodies); // after the failure is known too
    expect(hashed, 'nothing goes to a pool that never became ready').not.toHaveBeenCalled();
    await store.close();
  });

  it('a worker that never says ready: reads do not wait for it, every body verified in the reading thread; close ends it', async () => {
    const { store, bodies, hashed } = await withWorkerRunning('setInterval(() => undefined, 60_000)');
    await expectAllExact(store, bodies);
    expect(hashed).not.toHaveBeenCalled();
    await store.close(); // terminates it (a hang here fails the test by its timeout)
  });
});

describe('readMessages while compaction rewrites its pack', () => {
  it('runs located before compaction retired the pack are read where the blobs moved: every live body exact, the old pack gone', async () => {
    // small batches, so that batches located before the compaction are read after it
    limits.readBatchMessages = 2;
    limits.readAheadBatches = 2;
    const dir = tmpDir('read-compact');
    const { store, bodies, gone } = await churned(dir);
    const live = [...bodies.keys()].filter((uid) => !gone.includes(uid));
    expect(live.length).toBe(8);
    const out = new Map<number, Buffer>();
    let compacted = false;
    for await (const { info, body: bytes } of store.readMessages('M')) {
      out.set(info.uid, bytes);
      if (!compacted) {
        compacted = true;
        const result = await store.compact();
        expect(result.packsRewritten).toEqual([1]);
        expect(packNames(dir)).toEqual(['00000002.pack']);
      }
    }
    expect([...out.keys()]).toEqual(live);
    for (const [uid, bytes] of out) expect(bytes.equals(bodies.get(uid)!), `M ${uid}`).toBe(true);
    await store.close();
  });
});
