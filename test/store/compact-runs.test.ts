// Compaction in bounded runs (limits.compactChunkEntries): the candidates' blob entries are copied
// and committed a run at a time so memory follows the run, not the pack. Several runs give the same
// store as one; a failure in a later run keeps what earlier runs committed (their new pack is
// never removed), the old pack keeps serving, and a retry finishes the job.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests rewrite and measure packs (helpers/packed.ts; inline bodies' compaction: inline-bodies.test.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { limits } from '../../src/limits.js';
import { meta } from '../../src/store/apply.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { body, churned, expectExact, expectExactAfterRebuild, expectScrubClean, packNames, packsBytes } from './compact-helpers.js';
import { IndexDb } from '../../src/index/index-db.js';
import { SPACE } from '../../src/keys/tuple.js';
import { expectCode } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';

const mutable = limits as { compactChunkEntries: number };
const saved = limits.compactChunkEntries;

describe('compaction in bounded runs', () => {
  beforeEach(() => { mutable.compactChunkEntries = 6; });
  afterEach(() => { mutable.compactChunkEntries = saved; });

  it('runs of 6 entries reclaim the same as one: every live message exact, also after a rebuild', async () => {
    const dir = tmpDir('compact-runs');
    const { store, bodies, gone, live } = await churned(dir);
    const progress: string[] = [];
    const result = await store.compact({ onProgress: (p) => progress.push(p.phase) });
    // the 31 forgets are committed on their own beside the copy (the planning scan has them all):
    // the runs carry the 9 records to copy
    expect(progress.filter((p) => p === 'commit').length, 'one commit a run: 9 entries to copy in runs of 6').toBe(2);
    expect(result.packsRewritten).toEqual([1]);
    expect(result.blobsReclaimed).toBe(gone.length - 1);
    expect(result.blobsCopied).toBe(bodies.size - gone.length + 1);
    expect(packNames(dir)).toEqual(['00000002.pack']);
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 1024);
    expect((await store.stats()).bytesDead).toBe(0);
    expect(await store.maintenance().index.get(meta.retiredPacks)).toBeUndefined();
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
    await expectExactAfterRebuild(dir, bodies, gone);
  });

  it('a dry run counts the blobs it would reclaim without listing them', async () => {
    const dir = tmpDir('compact-runs');
    const { store, gone } = await churned(dir);
    const dry = await store.compact({ dryRun: true });
    expect(dry.blobsReclaimed).toBe(gone.length - 1);
    expect(packNames(dir)).toEqual(['00000001.pack']);
    await store.close();
  });

  it('EIO syncing the new pack in a later run: IO, the new pack earlier runs committed into stays, nothing lost, a retry finishes', async () => {
    const dir = tmpDir('compact-runs');
    const ffs = new FaultFileSystem({ seed: 11 });
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs });
    await store.close();
    mutable.compactChunkEntries = 2; // 9 records to copy: 5 runs
    let syncs = 0;
    // the new pack's third fdatasync: runs 1 and 2 committed, run 3 fails before its commit
    ffs.injectAt((info) => info.kind === 'sync' && /packs\/0+2\.pack/.test(info.path) && ++syncs === 3, 'EIO');
    const reopened = await Store.open(dir, { fs: ffs });
    await expectCode(reopened.compact(), 'IO');
    expect(ffs.firedFaults().length, 'the fault was hit').toBe(1);
    expect(packNames(dir), 'the old pack serves; the new one holds what runs 1 and 2 committed').toEqual(['00000001.pack', '00000002.pack']);
    expect(await reopened.maintenance().index.get(meta.retiredPacks), 'nothing was retired').toBeUndefined();
    await expectExact(reopened, bodies, gone);
    ffs.clear();
    await reopened.compact();
    expect(packNames(dir)).not.toContain('00000001.pack');
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 64 * 1024);
    await expectExact(reopened, bodies, gone);
    await expectScrubClean(reopened);
    await reopened.close();
    rmSync(join(dir, 'index'), { recursive: true });
    const rebuilt = await Store.open(dir);
    try {
      await expectExact(rebuilt, bodies, gone);
    } finally {
      await rebuilt.close();
    }
  });
});

describe('the planning scan serves the copy', () => {
  /** store.compact(options), and how many scans of B (the blob entries) it made. */
  async function compactCountingScans(store: Store, options?: Parameters<Store['compact']>[0]) {
    const spy = vi.spyOn(IndexDb.prototype, 'entryBatches');
    try {
      const result = await store.compact(options);
      return { result, scans: spy.mock.calls.filter(([range]) => (range as { gte: Buffer }).gte[0] === SPACE.blob).length };
    } finally {
      spy.mockRestore();
    }
  }

  it('with nothing committed between the scan and the seal, B is scanned once to plan and copy (and once to check the retired pack is unused)', async () => {
    const dir = tmpDir('compact-runs');
    const { store, bodies, gone } = await churned(dir);
    const { result, scans } = await compactCountingScans(store);
    expect(scans).toBe(2);
    expect(result.blobsReclaimed).toBe(gone.length - 1);
    expect(result.packsRemoved).toEqual([1]);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('an append committed between the scan and the seal lands in the pack being sealed: B is scanned again, the new message is copied, the old pack goes', async () => {
    const dir = tmpDir('compact-runs');
    const { store, bodies, gone } = await churned(dir);
    const late = body(77, 1500);
    let appended: Promise<{ uid: number }> | undefined;
    const { result, scans } = await compactCountingScans(store, { onProgress: (p) => { if (p.phase === 'plan') appended = store.append('K', late); } });
    expect(result.packsRewritten).toEqual([1]);
    expect(result.packsRemoved, 'the late message was copied: nothing points into pack 1').toEqual([1]);
    expect(result.packsPending).toEqual([]);
    expect(scans, 'scan to plan, scan again to copy, scan for the retired pack').toBe(3);
    const { uid } = await appended!;
    expect((await store.fetch('K', uid)).equals(late)).toBe(true);
    expect(packNames(dir)).not.toContain('00000001.pack');
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('past limits.compactPlanEntriesMax entries the scan keeps none and the copy scans B again', async () => {
    const planMax = limits as { compactPlanEntriesMax: number };
    const savedMax = limits.compactPlanEntriesMax;
    planMax.compactPlanEntriesMax = 10;
    const dir = tmpDir('compact-runs');
    const { store, bodies, gone } = await churned(dir);
    try {
      const { result, scans } = await compactCountingScans(store);
      expect(scans).toBe(3);
      expect(result.blobsReclaimed).toBe(gone.length - 1);
      expect(result.packsRemoved).toEqual([1]);
    } finally {
      planMax.compactPlanEntriesMax = savedMax;
    }
    await expectExact(store, bodies, gone);
    await store.close();
  });
});
