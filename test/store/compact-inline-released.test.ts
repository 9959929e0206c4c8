// Compaction of released inline bodies (docs/FORMAT.md, "Compaction" and "Inline bodies"): after a
// big delete of one-sync deliveries, one compaction drops their entries instead of copying them
// into a pack (it copied all 94,960 of an outside test's: the store grew 209 -> 226 MB), so the
// journal segments holding them retire; an identical message appended meanwhile keeps its fresh
// copy, also after a crash at every operation.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import type { CompactResult } from '../../src/store/compact.js';
import { keys } from '../../src/keys/index-keys.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { BlobRecord } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';
import { limits } from '../../src/limits.js';
import { expectScrubClean, packsBytes } from './compact-helpers.js';
import { OPTIONS, aroundMaintenance, appendAtForget, bigDelete, blobEntries, body, crashWhileForgetting, expectAfterReopenAndRebuild, expectLive, forgetsInline, journalBytes } from './inline-released-helpers.js';

describe('compaction of released inline bodies', () => {
  it('one compaction after a mailbox delete and an expunge drops the released inline bodies: none is copied into a pack, the journal retires, the live ones exact', async () => {
    const dir = tmpDir('compact-inline');
    const { store, live, gone, liveBytes } = await bigDelete(dir);
    const journalBefore = journalBytes(dir);
    expect((await blobEntries(store)).inline.filter((b) => b.r === 0)).toHaveLength(gone.length);
    const result = await store.compact();
    expect(result.inlineReclaimed, 'every released inline body dropped').toBe(gone.length);
    expect(result.blobsCopied, 'no pack rewritten: nothing of them copied').toBe(0);
    const { packed, inline } = await blobEntries(store);
    expect(packed.every((b) => b.r > 0), 'every body in a pack is referenced').toBe(true);
    expect(inline.every((b) => b.r > 0)).toBe(true);
    expect(packed.length + inline.length, 'the live bodies alone are known').toBe(live.size);
    // the pack records are the moved live bodies and nothing else
    expect(packsBytes(dir)).toBeLessThanOrEqual(liveBytes + 64);
    await expectLive(store, live);
    await expectScrubClean(store);
    await store.close(); // waits for the tidy's snapshots, which retire the segments before the compaction
    expect(journalBytes(dir), 'the segments of the released bodies retired').toBeLessThan(journalBefore / 3);
    await expectAfterReopenAndRebuild(dir, live, async (again) => { expect(await again.compact()).toMatchObject({ blobsCopied: 0, blobsReclaimed: 0 }); });
  });

  it('past limits.compactPlanEntriesMax entries (the planning scan keeps none) a second scan of B finds them, in runs of limits.compactChunkEntries', async () => {
    const dir = tmpDir('compact-inline');
    const { store, live, gone } = await bigDelete(dir);
    const bounds = limits as { compactPlanEntriesMax: number; compactChunkEntries: number };
    const saved = { ...bounds };
    bounds.compactPlanEntriesMax = 10;
    bounds.compactChunkEntries = 7;
    let forgets = 0;
    const undo = aroundMaintenance(store, async (at, ops) => { if (at === 'after' && forgetsInline(ops)) forgets++; });
    try {
      expect((await store.compact()).inlineReclaimed).toBe(gone.length);
    } finally {
      undo();
      bounds.compactPlanEntriesMax = saved.compactPlanEntriesMax;
      bounds.compactChunkEntries = saved.compactChunkEntries;
    }
    expect(forgets, 'one commit a run').toBeGreaterThan(5);
    expect((await blobEntries(store)).packed.every((b) => b.r > 0)).toBe(true);
    await expectLive(store, live);
    await expectScrubClean(store);
    await store.close();
  });

  it('a dry run counts the released inline bodies and changes nothing', async () => {
    const dir = tmpDir('compact-inline');
    const { store, gone } = await bigDelete(dir);
    expect(await store.compact({ dryRun: true })).toMatchObject({ inlineReclaimed: gone.length, blobsReclaimed: 0 });
    expect((await blobEntries(store)).inline.filter((b) => b.r === 0)).toHaveLength(gone.length);
    await store.close();
  });

  it('keeps released inline bodies for the grace period (moved out of old segments like live ones)', async () => {
    const dir = tmpDir('compact-inline');
    const { store, gone } = await bigDelete(dir);
    const kept = await store.compact({ graceMs: 3_600_000 });
    expect(kept.inlineReclaimed).toBeUndefined();
    const { packed, inline } = await blobEntries(store);
    expect(packed.filter((b) => b.r === 0).length).toBeGreaterThan(0);
    expect(packed.length + inline.length).toBe(gone.length + 10);
    await store.close();
  });

  for (const when of ['before', 'after'] as const) {
    it(`an identical message appended ${when} the forget of its released inline copy commits keeps its fresh copy: exact after the compaction, a reopen and a rebuild`, async () => {
      const dir = tmpDir('compact-inline');
      const { store, live, gone } = await bigDelete(dir);
      const again = body(3); // a body of the deleted mailbox
      const { seen, undo } = appendAtForget(store, again, when);
      const result = await store.compact();
      undo();
      const { forgets, appended } = seen;
      expect(forgets, 'the forget committed').toBeGreaterThan(0);
      expect(appended?.deduplicated, 'a released blob is never deduplicated against').toBe(false);
      // before: the forget finds the entry at the fresh copy and leaves it; after: it was dropped, the append made a new one
      expect(result.inlineReclaimed).toBe(when === 'before' ? gone.length - 1 : gone.length);
      const entry = await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(again)));
      expect(entry, 'the re-appended body is known, referenced once, at its fresh record').toMatchObject({ r: 1 });
      expect((await store.fetch('Kept', appended!.uid)).equals(again)).toBe(true);
      await expectLive(store, live);
      await expectScrubClean(store);
      await store.close();
      // after the tidy retired the old segments, and after a rebuild
      await expectAfterReopenAndRebuild(dir, live.set(appended!.uid, again));
    });
  }

  it('the background compactor counts released inline bodies in its dead bytes: a store whose dead bytes are all in the journal compacts by itself after a big delete', async () => {
    const dir = tmpDir('compact-inline');
    const { store: setup, live, gone, liveBytes } = await bigDelete(dir);
    const releasedBytes = gone.reduce((sum, b) => sum + b.length, 0);
    expect(await setup.stats()).toMatchObject({ bytesDead: 0, bytesDeadInline: releasedBytes });
    await setup.close();
    const journalBefore = journalBytes(dir);
    const compacted: CompactResult[] = [];
    // a threshold the released inline bytes pass and the packs' (none) do not
    const auto = await Store.open(dir, { ...OPTIONS, autoCompact: { graceMs: 0, intervalMs: 20, deadBytesMin: releasedBytes / 2, onCompacted: (r) => compacted.push(r) } });
    try {
      await until(() => compacted.some((r) => r.inlineReclaimed === gone.length), 'the background compactor dropped the released inline bodies', 60_000);
      expect((await auto.stats()).bytesDeadInline).toBe(0);
      expect((await blobEntries(auto)).packed.every((b) => b.r > 0), 'none of them copied into a pack').toBe(true);
      expect(packsBytes(dir)).toBeLessThanOrEqual(liveBytes + 64);
      await expectLive(auto, live);
      await expectScrubClean(auto);
    } finally {
      await auto.close(); // waits for the tidy's snapshots
    }
    expect(journalBytes(dir), 'the segments of the released bodies retired').toBeLessThan(journalBefore / 3);
    await expectAfterReopenAndRebuild(dir, live);
  });

  it('a crash at every operation of a compaction dropping released inline bodies while an identical message is appended: the live and the acknowledged ones exact, scrub clean, none copied into a pack', async () => {
    await crashWhileForgetting({ name: 'compact-inline-crash-', seed: 0x1d1e, run: (store) => store.compact(), again: (store) => store.compact() });
  }, 300_000);
});
