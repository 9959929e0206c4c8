// Compaction of released inline bodies (docs/FORMAT.md, "Compaction" and "Inline bodies"): after a
// big delete of one-sync deliveries, one compaction drops their entries instead of copying them
// into a pack (it copied all 94,960 of an outside test's: the store grew 209 -> 226 MB), so the
// journal segments holding them retire; an identical message appended meanwhile keeps its fresh
// copy, also after a crash at every operation.
import { describe, expect, it } from 'vitest';
import { promises as fsp, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE, prefixEnd } from '../../src/keys/tuple.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { BlobRecord, Op } from '../../src/store/records.js';
import type { Mutation } from '../../src/store/writer.js';
import { FaultFileSystem, type CrashMode } from '../sim/faultfs.js';
import { fastTmpRoot, retireOwnLock } from '../sim/explorer.js';
import { expectCode } from '../sim/helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { expectScrubClean, packsBytes } from './compact-helpers.js';

const OPTIONS = { inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096 };
const body = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\n\r\n${`line ${i} `.repeat(40)}\r\n`);
const journalBytes = (dir: string) => readdirSync(join(dir, 'journal')).reduce((sum, n) => sum + statSync(join(dir, 'journal', n)).size, 0);

/**
 * `Gone` (40 messages) deleted, and in `Kept` (20) every odd uid expunged: 50 inline bodies released,
 * 10 live. Every body inline, in journal segments of 4 KiB.
 */
async function bigDelete(dir: string, options: { fs?: FaultFileSystem } = {}) {
  const store = await Store.open(dir, { create: true, ...OPTIONS, ...options });
  await store.createMailbox('Gone');
  await store.createMailbox('Kept');
  for (let i = 0; i < 40; i++) await store.append('Gone', body(i));
  const live = new Map<number, Buffer>();
  const gone = [...Array.from({ length: 40 }, (_, i) => body(i))];
  for (let i = 40; i < 60; i++) {
    const { uid } = await store.append('Kept', body(i));
    if (uid % 2 === 1) gone.push(body(i));
    else live.set(uid, body(i));
  }
  await store.deleteMailbox('Gone');
  await store.expunge('Kept', [...Array(20).keys()].map((i) => i + 1).filter((uid) => uid % 2 === 1));
  const liveBytes = [...live.values()].reduce((sum, b) => sum + RECORD_HEADER_BYTES + b.length, 0);
  return { store, live, gone, liveBytes };
}

/** Every B entry: those in packs (and whether referenced) and those inline. */
async function blobEntries(store: Store): Promise<{ packed: BlobRecord[]; inline: BlobRecord[] }> {
  const out = { packed: [] as BlobRecord[], inline: [] as BlobRecord[] };
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of store.maintenance().index.entryBatches<BlobRecord>(range, 1000)) {
    for (const [, blob] of batch) (blob.p === INLINE_PACK ? out.inline : out.packed).push(blob);
  }
  return out;
}

async function expectLive(store: Store, live: Map<number, Buffer>): Promise<void> {
  for (const [uid, bytes] of live) expect((await store.fetch('Kept', uid)).equals(bytes), `Kept ${uid}`).toBe(true);
  for (let uid = 1; uid <= 20; uid += 2) await expectCode(store.fetch('Kept', uid), 'NOT_FOUND');
}

type Submit = (mutation: Mutation<unknown>, maintenance?: boolean) => Promise<unknown>;

/**
 * Calls `around` with each maintenance mutation (a compaction's) before it is submitted and once
 * it committed, with the ops its prepare returned; returns the undo.
 */
function aroundMaintenance(store: Store, around: (when: 'before' | 'after', ops: Op[]) => Promise<void>): () => void {
  const internals = store as unknown as { submit: Submit };
  const submit = internals.submit.bind(store);
  internals.submit = async (mutation, maintenance) => {
    if (!maintenance) return submit(mutation, maintenance);
    await around('before', []);
    let ops: Op[] = [];
    const prepare = mutation.prepare;
    const out = await submit({ ...mutation, prepare: async (ctx) => { const prepared = await prepare(ctx); ops = prepared.ops; return prepared; } }, maintenance);
    await around('after', ops);
    return out;
  };
  return () => { internals.submit = submit; };
}

const forgetsInline = (ops: Op[]) => ops.some((op) => op.op === 'blob.forgetRun' && op.pack === INLINE_PACK);

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
    const again = await Store.open(dir, OPTIONS);
    expect(await again.compact()).toMatchObject({ blobsCopied: 0, blobsReclaimed: 0 });
    expect(again.health.findings).toEqual([]);
    await expectLive(again, live);
    await again.close();
    rmSync(join(dir, 'index'), { recursive: true });
    const rebuilt = await Store.open(dir, OPTIONS);
    expect(rebuilt.health.degraded, rebuilt.health.findings.join('; ')).toBe(false);
    await expectLive(rebuilt, live);
    await expectScrubClean(rebuilt);
    await rebuilt.close();
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
      let appended: { uid: number; deduplicated: boolean } | undefined;
      let forgets = 0;
      const undo = aroundMaintenance(store, async (at, ops) => {
        if (at === 'after' && forgetsInline(ops)) forgets++;
        if (appended || at !== when || (at === 'after' && !forgetsInline(ops))) return;
        appended = await store.append('Kept', again);
      });
      const result = await store.compact();
      undo();
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
      const reopened = await Store.open(dir, OPTIONS);
      expect((await reopened.fetch('Kept', appended!.uid)).equals(again), 'after the tidy retired the old segments').toBe(true);
      await reopened.close();
      rmSync(join(dir, 'index'), { recursive: true });
      const rebuilt = await Store.open(dir, OPTIONS);
      expect((await rebuilt.fetch('Kept', appended!.uid)).equals(again), 'and after a rebuild').toBe(true);
      await expectLive(rebuilt, live);
      await expectScrubClean(rebuilt);
      await rebuilt.close();
    });
  }

  it('a crash at every operation of a compaction dropping released inline bodies while an identical message is appended: the live and the acknowledged ones exact, scrub clean, none copied into a pack', async () => {
    const work = await fsp.mkdtemp(join(fastTmpRoot(), 'compact-inline-crash-'));
    const dir = join(work, 'store');
    const { store: setup, live, liveBytes } = await bigDelete(dir);
    await setup.close();
    const ffs = new FaultFileSystem({ seed: 0x1d1e });
    await ffs.startRecording(dir, { exclude: ['index'] });
    const older = join(work, 'index-before');
    await ffs.snapshotExcluded(older);
    const store = await Store.open(dir, { fs: ffs, ...OPTIONS });
    const opened = ffs.logLength;
    const again = body(3);
    let appending: Promise<{ uid: number }> | undefined;
    let ackedAt = Infinity;
    const undo = aroundMaintenance(store, async (at, ops) => {
      // started as the forget commits, not awaited: it races the rest of the compaction
      if (at === 'after' && forgetsInline(ops) && !appending) appending = store.append('Kept', again).then((r) => { ackedAt = ffs.logLength; return r; });
    });
    await store.compact();
    undo();
    const { uid } = await appending!;
    await store.close();
    const modes: CrashMode[] = ['all-lost', 'random', 'all-kept', 'data-lost'];
    let states = 0;
    for (let afterOp = opened; afterOp <= ffs.logLength; afterOp++) {
      const mode = modes[afterOp % modes.length]!;
      const target = join(work, `crash-${afterOp}-${mode}`);
      const indexMode = states % 2 === 0 ? 'missing' : 'older';
      const report = await ffs.materializeCrash(target, afterOp, 0x1d1e + afterOp, { mode, indexMode, indexSource: older });
      const where = `${report.reproduce} index ${indexMode}`;
      retireOwnLock(target);
      const crashed = await Store.open(target, OPTIONS);
      try {
        expect(crashed.health.degraded, `${where}: ${crashed.health.findings.join('; ')}`).toBe(false);
        await expectLive(crashed, live);
        const status = await crashed.status('Kept');
        if (afterOp >= ackedAt) expect((await crashed.fetch('Kept', uid)).equals(again), `${where}: the acknowledged append`).toBe(true);
        else if (status.uidNext > uid) expect((await crashed.fetch('Kept', uid)).equals(again), `${where}: the append, durable though not acknowledged`).toBe(true);
        await expectScrubClean(crashed);
        await crashed.compact();
        // the released bodies never reach a pack: the live ones and the re-appended one at most
        expect(packsBytes(target), `${where}: packs`).toBeLessThanOrEqual(liveBytes + RECORD_HEADER_BYTES + again.length + 64);
        await expectScrubClean(crashed);
      } catch (error) {
        throw new Error(`${where}: ${(error as Error).message}; state kept in ${target}`, { cause: error });
      } finally {
        await crashed.close();
      }
      await fsp.rm(target, { recursive: true, force: true });
      states++;
    }
    expect(ackedAt).toBeLessThanOrEqual(ffs.logLength);
    expect(states).toBeGreaterThan(20);
    await fsp.rm(work, { recursive: true, force: true });
  }, 300_000);
});
