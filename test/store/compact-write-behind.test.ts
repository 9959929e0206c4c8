// Compaction writes its new pack with one write in flight while it reads and verifies the next
// records (PackWriter.flush). With compactWriteBytes lowered to a few KiB, the churned store's copy
// takes many such writes: the copies must land at the offsets the index is switched to, and a write
// failing while in flight must fail the compaction (typed), remove the partial pack and lose nothing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { expectCode } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { churned, expectExact, expectScrubClean, packNames, packsBytes } from './compact-helpers.js';

const tunable = limits as { compactWriteBytes: number; compactSyncBehindBytes: number; compactHashWorkerBytesMin: number };
const saved = limits.compactWriteBytes;
const savedSyncBehind = limits.compactSyncBehindBytes;
const savedWorkerMin = limits.compactHashWorkerBytesMin;

describe('compaction writes behind its reads', () => {
  // the hash worker takes the read batches as it does for a big copy (these stores copy a few KiB)
  beforeEach(() => { tunable.compactWriteBytes = 4 * 1024; tunable.compactHashWorkerBytesMin = 0; });
  afterEach(() => { tunable.compactWriteBytes = saved; tunable.compactSyncBehindBytes = savedSyncBehind; tunable.compactHashWorkerBytesMin = savedWorkerMin; });

  it('copies every live record where the index says, across many overlapped writes', async () => {
    const dir = tmpDir('compact-behind');
    const ffs = new FaultFileSystem({ seed: 11 });
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
    const writes: number[] = [];
    ffs.injectAt((info) => { if (info.kind === 'write' && /\.pack\.partial$/.test(info.path)) writes.push(info.position ?? 0); return false; }, 'EIO');
    const result = await store.compact();
    ffs.clear();
    expect(writes.length, 'the new pack took several writes').toBeGreaterThan(3);
    expect(result.packsRewritten).toEqual([1]);
    expect(result.blobsCopied).toBeGreaterThan(0);
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 1024);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
    const reopened = await Store.open(dir);
    await expectExact(reopened, bodies, gone);
    await reopened.close();
  });

  it('reuses a read buffer only once no write still reads it: writes that take their bytes late still copy exact records', async () => {
    const dir = tmpDir('compact-behind');
    const ffs = new FaultFileSystem({ seed: 13 });
    tunable.compactWriteBytes = 16 * 1024; // several records a read batch: each batch's buffer is reused
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
    // node's writev hands the buffers to a thread that reads them later; the fault file system
    // copies them at the call: here it waits first, as the thread would, so a buffer reused too
    // early would put the next batch's bytes into this write
    const probe = await ffs.open(join(dir, 'probe'), 'createNew');
    const proto = Object.getPrototypeOf(probe) as { writev(parts: Buffer[], position: number): Promise<void> };
    await probe.close();
    const writev = proto.writev;
    let late = 0;
    proto.writev = async function (this: { path: string }, parts: Buffer[], position: number) {
      if (this.path.endsWith('.pack.partial')) {
        late++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return writev.call(this, parts, position);
    };
    try {
      const result = await store.compact();
      expect(late, 'writes taken late').toBeGreaterThan(3);
      expect(result.packsRewritten).toEqual([1]);
    } finally {
      proto.writev = writev;
    }
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 1024);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  for (const [fault, code] of [['ENOSPC', 'NO_SPACE'], ['EIO', 'IO']] as const) {
    it(`${fault} on a write in flight: ${code}, the partial pack removed, the old pack serves, a retry succeeds`, async () => {
      const dir = tmpDir('compact-behind');
      const ffs = new FaultFileSystem({ seed: 7 });
      const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
      const before = packNames(dir);
      let calls = 0;
      // the header write waits; the third write is one handed over while the copy goes on
      ffs.injectAt((info) => info.kind === 'write' && /\.pack\.partial$/.test(info.path) && ++calls === 3, fault);
      await expectCode(store.compact(), code);
      expect(ffs.firedFaults().length, 'the fault was hit').toBe(1);
      await expectServedThenRetried({ dir, ffs, store, bodies, gone, live, before });
    });
  }
  it('syncs the new pack in the background every compactSyncBehindBytes while the copy goes on; the copies are exact', async () => {
    tunable.compactSyncBehindBytes = 8 * 1024;
    const dir = tmpDir('compact-behind');
    const ffs = new FaultFileSystem({ seed: 17 });
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
    const events: string[] = [];
    ffs.injectAt((info) => { if (/\.pack\.partial$/.test(info.path) && (info.kind === 'write' || info.kind === 'sync')) events.push(info.kind); return false; }, 'EIO');
    const result = await store.compact();
    ffs.clear();
    expect(result.packsRewritten).toEqual([1]);
    const firstSync = events.indexOf('sync');
    expect(firstSync, 'a sync of the partial pack').toBeGreaterThan(0);
    expect(events.slice(firstSync + 1), 'writes went on after a background sync started').toContain('write');
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 1024);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('EIO on a background sync: IO, the partial pack removed, the old pack serves, a retry succeeds', async () => {
    tunable.compactSyncBehindBytes = 8 * 1024;
    const dir = tmpDir('compact-behind');
    const ffs = new FaultFileSystem({ seed: 19 });
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
    const before = packNames(dir);
    ffs.injectAt((info) => info.kind === 'sync' && /\.pack\.partial$/.test(info.path), 'EIO');
    await expectCode(store.compact(), 'IO');
    expect(ffs.firedFaults().length, 'the fault was hit').toBeGreaterThan(0);
    await expectServedThenRetried({ dir, ffs, store, bodies, gone, live, before });
  });

  // the worker's start (~37 M instructions) fell inside the copy, whose first batches were hashed
  // on the calling thread meanwhile; now it starts before the planning scans
  it.skipIf(availableParallelism() < 2)('starts the hash worker before planning when the packs hold enough to copy, and not for a small store', async () => {
    for (const big of [true, false]) {
      const dir = tmpDir('compact-behind');
      const { store, bodies, gone } = await churned(dir);
      tunable.compactHashWorkerBytesMin = big ? 1024 : 1024 * 1024 * 1024; // the store's packs hold ~100 KiB
      const shared = store.maintenance().hashPool;
      expect(shared.threads, 'no worker before the compaction').toBe(0);
      const atPlan: number[] = [];
      const result = await store.compact({ onProgress: (p) => { if (p.phase === 'plan') atPlan.push(shared.threads); } });
      expect(result.packsRewritten).toEqual([1]);
      expect(atPlan, big ? 'the worker runs while the plan is made' : 'no worker for a copy below compactHashWorkerBytesMin').toEqual([big ? 1 : 0]);
      await expectExact(store, bodies, gone);
      await store.close();
    }
  });
});

/**
 * After a compaction failed on a fault: only its partial pack is gone, the old pack serves every
 * message exact; with the fault cleared a retry rewrites the pack, the store is back to its live
 * bytes, exact and scrub-clean. Closes the store.
 */
async function expectServedThenRetried(t: { dir: string; ffs: FaultFileSystem; store: Awaited<ReturnType<typeof churned>>['store']; bodies: Awaited<ReturnType<typeof churned>>['bodies']; gone: Awaited<ReturnType<typeof churned>>['gone']; live: number; before: string[] }): Promise<void> {
  expect(packNames(t.dir), 'only the partial new pack was removed').toEqual(t.before);
  await expectExact(t.store, t.bodies, t.gone);
  t.ffs.clear();
  const retried = await t.store.compact();
  expect(retried.packsRewritten).toEqual([1]);
  expect(packsBytes(t.dir)).toBeLessThanOrEqual(1.1 * t.live + 1024);
  await expectExact(t.store, t.bodies, t.gone);
  await expectScrubClean(t.store);
  await t.store.close();
}
