// The move of inline bodies out of the journal before a retirement (a snapshot's, explicit or
// automatic) and before a journal rewrite (docs/FORMAT.md, "Inline bodies"): released bodies past
// the grace period are forgotten, not copied into a pack (after a big delete they were all copied,
// only for a later compaction to drop them); those within it move like live ones; an identical
// message appended meanwhile keeps its fresh copy, also after a crash at every operation.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import type { SnapshotResult } from '../../src/store/snapshots.js';
import { keys } from '../../src/keys/index-keys.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { BlobRecord } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { expectScrubClean, packsBytes } from './compact-helpers.js';
import { OPTIONS, appendAtForget, bigDelete, blobEntries, body, crashWhileForgetting, expectAfterReopenAndRebuild, expectLive, journalBytes } from './inline-released-helpers.js';

/** From now on the clock reads past limits.compactGraceMs after the releases. */
const laterByGrace = () => {
  const now = Date.now();
  vi.spyOn(Date, 'now').mockImplementation(() => now + limits.compactGraceMs + 60_000);
};

/** Only the live bodies are known, none released; the packs hold at most them (and `extra` record bytes). */
async function expectOnlyLive(store: Store, dir: string, known: number, liveBytes: number, extra = 0): Promise<void> {
  const { packed, inline } = await blobEntries(store);
  expect(packed.every((b) => b.r > 0), 'every body in a pack is referenced').toBe(true);
  expect(inline.every((b) => b.r > 0)).toBe(true);
  expect(packed.length + inline.length, 'the live bodies alone are known').toBe(known);
  expect(packsBytes(dir), 'no released body copied into a pack').toBeLessThanOrEqual(liveBytes + extra + 64);
}

/**
 * The older of the two kept snapshots, then a record (a flag on a live message), so that the next
 * snapshot is a second generation and retires the journal below the first (snapshots.ts retire).
 */
async function olderGeneration(store: Store): Promise<void> {
  await store.snapshot();
  await store.setFlags('Kept', [2], { add: ['$Seen'] });
}

afterEach(() => { vi.restoreAllMocks(); });

describe('the move of inline bodies before a retirement skips released ones', () => {
  it('snapshots an hour after a mailbox delete and an expunge: none of the released bodies is copied into a pack, their segments retire, the live ones exact', async () => {
    const dir = tmpDir('snapshot-inline');
    const { store, live, liveBytes } = await bigDelete(dir, { autoSnapshot: false });
    const journalBefore = journalBytes(dir);
    laterByGrace();
    await olderGeneration(store);
    const second = await store.snapshot();
    expect(second.retired.segments.length).toBeGreaterThan(0);
    await expectOnlyLive(store, dir, live.size, liveBytes);
    await expectLive(store, live);
    await expectScrubClean(store);
    expect(journalBytes(dir), 'the segments of the released bodies retired').toBeLessThan(journalBefore / 3);
    await store.close();
    await expectAfterReopenAndRebuild(dir, live);
  });

  it('within the grace period the released bodies move like live ones: none forgotten, nothing lost', async () => {
    const dir = tmpDir('snapshot-inline');
    const { store, live, gone } = await bigDelete(dir, { autoSnapshot: false });
    await olderGeneration(store);
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    const { packed, inline } = await blobEntries(store);
    expect(packed.filter((b) => b.r === 0).length, 'released ones moved into a pack').toBeGreaterThan(0);
    expect(packed.length + inline.length).toBe(gone.length + live.size);
    await expectLive(store, live);
    await expectScrubClean(store);
    await store.close();
  });

  it('the automatic snapshots of a store whose background compactor keeps no grace (StoreOptions.autoCompact.graceMs 0) forget them too', async () => {
    const dir = tmpDir('snapshot-inline');
    const { store: setup, live, liveBytes } = await bigDelete(dir, { autoSnapshot: false });
    await setup.close();
    const results: SnapshotResult[] = [];
    const bounds = limits as { snapshotEveryRecords: number };
    const saved = bounds.snapshotEveryRecords;
    bounds.snapshotEveryRecords = 1;
    try {
      const store = await Store.open(dir, { ...OPTIONS, autoCompact: { graceMs: 0, intervalMs: 3_600_000 }, onSnapshot: (result) => { if (result) results.push(result); } });
      let added = 0;
      // deliveries go on until an automatic snapshot retired the journal (each one waits a multiple of the last one's time)
      for (let i = 0; i < 500 && !results.some((r) => r.retired.segments.length > 0); i++) {
        const bytes = Buffer.from(`Subject: new ${i}\r\n\r\n${'x'.repeat(300)}\r\n`);
        live.set((await store.append('Kept', bytes)).uid, bytes);
        added += RECORD_HEADER_BYTES + bytes.length;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(results.some((r) => r.retired.segments.length > 0), 'an automatic snapshot retired segments').toBe(true);
      await store.close();
      const reopened = await Store.open(dir, { ...OPTIONS, autoSnapshot: false });
      await expectOnlyLive(reopened, dir, live.size, liveBytes, added);
      await expectLive(reopened, live);
      await expectScrubClean(reopened);
      await reopened.close();
    } finally {
      bounds.snapshotEveryRecords = saved;
    }
  });

  it('a journal rewritten from the index forgets them too (its move takes every inline body)', async () => {
    const dir = tmpDir('snapshot-inline');
    const { store, live, liveBytes } = await bigDelete(dir, { autoSnapshot: false });
    laterByGrace();
    await store.maintenance().rewriteJournalFromIndex();
    await expectOnlyLive(store, dir, live.size, liveBytes);
    expect((await blobEntries(store)).inline, 'no body left in the journal').toEqual([]);
    await expectLive(store, live);
    await expectScrubClean(store);
    await store.close();
    await expectAfterReopenAndRebuild(dir, live);
  });

  for (const when of ['before', 'after'] as const) {
    it(`an identical message appended ${when} the forget of its released inline copy commits keeps its fresh copy: exact after the retirement, a reopen and a rebuild`, async () => {
      const dir = tmpDir('snapshot-inline');
      const { store, live, liveBytes } = await bigDelete(dir, { autoSnapshot: false });
      laterByGrace();
      await olderGeneration(store);
      const again = body(3); // a body of the deleted mailbox
      const { seen, undo } = appendAtForget(store, again, when);
      await store.snapshot();
      undo();
      const { forgets, appended } = seen;
      expect(forgets, 'the forget committed').toBeGreaterThan(0);
      expect(appended?.deduplicated, 'a released blob is never deduplicated against').toBe(false);
      const entry = await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(again)));
      expect(entry, 'the re-appended body is known, referenced once, at its fresh record').toMatchObject({ r: 1 });
      live.set(appended!.uid, again);
      await store.snapshot(); // its record is above the bound of the retirement that raced it: this one moves it
      await expectOnlyLive(store, dir, live.size, liveBytes, RECORD_HEADER_BYTES + again.length);
      await expectLive(store, live);
      await expectScrubClean(store);
      await store.close();
      await expectAfterReopenAndRebuild(dir, live);
    });
  }

  it('a crash at every operation of a retirement forgetting released inline bodies while an identical message is appended: the live and the acknowledged ones exact, scrub clean, none copied into a pack', async () => {
    await crashWhileForgetting({
      name: 'snapshot-inline-crash-', seed: 0x5a1e, options: { autoSnapshot: false },
      before: async (store) => { laterByGrace(); await olderGeneration(store); }, // the recorded snapshot retires
      run: (store) => store.snapshot(),
      again: async (store) => { await olderGeneration(store); await store.snapshot(); },
    });
  }, 300_000);
});
