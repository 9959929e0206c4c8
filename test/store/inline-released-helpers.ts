// Shared by the tests of released inline bodies (compact-inline-released, snapshot-inline-released):
// a big delete of one-sync deliveries, what the index holds of their blobs, and a hook on the
// maintenance mutations (a compaction's, a retirement's move and forget) to race an append with.
import { expect } from 'vitest';
import { promises as fsp, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import type { StoreOptions } from '../../src/store/types.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE, prefixEnd } from '../../src/keys/tuple.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import type { BlobRecord, Op } from '../../src/store/records.js';
import type { Mutation } from '../../src/store/writer.js';
import { expectCode } from '../sim/helpers.js';
import { FaultFileSystem, type CrashMode } from '../sim/faultfs.js';
import { fastTmpRoot, retireOwnLock } from '../sim/explorer.js';
import { expectScrubClean, packsBytes } from './compact-helpers.js';

export const OPTIONS = { inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096 };
export const body = (i: number) => Buffer.from(`From: a${i}@example.org\r\nSubject: m ${i}\r\n\r\n${`line ${i} `.repeat(40)}\r\n`);
export const journalBytes = (dir: string) => readdirSync(join(dir, 'journal')).reduce((sum, n) => sum + statSync(join(dir, 'journal', n)).size, 0);

/**
 * `Gone` (40 messages) deleted, and in `Kept` (20) every odd uid expunged: 50 inline bodies released,
 * 10 live. Every body inline, in journal segments of 4 KiB.
 */
export async function bigDelete(dir: string, options: StoreOptions = {}) {
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
export async function blobEntries(store: Store): Promise<{ packed: BlobRecord[]; inline: BlobRecord[] }> {
  const out = { packed: [] as BlobRecord[], inline: [] as BlobRecord[] };
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of store.maintenance().index.entryBatches<BlobRecord>(range, 1000)) {
    for (const [, blob] of batch) (blob.p === INLINE_PACK ? out.inline : out.packed).push(blob);
  }
  return out;
}

export async function expectLive(store: Store, live: Map<number, Buffer>): Promise<void> {
  for (const [uid, bytes] of live) expect((await store.fetch('Kept', uid)).equals(bytes), `Kept ${uid}`).toBe(true);
  for (let uid = 1; uid <= 20; uid += 2) await expectCode(store.fetch('Kept', uid), 'NOT_FOUND');
}

type Submit = (mutation: Mutation<unknown>, maintenance?: boolean) => Promise<unknown>;

/**
 * Calls `around` with each maintenance mutation (a compaction's) before it is submitted and once
 * it committed, with the ops its prepare returned; returns the undo.
 */
export function aroundMaintenance(store: Store, around: (when: 'before' | 'after', ops: Op[]) => Promise<void>): () => void {
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

export const forgetsInline = (ops: Op[]) => ops.some((op) => op.op === 'blob.forgetRun' && op.pack === INLINE_PACK);

/**
 * Appends `again` to Kept `when` the first forget of released inline bodies is submitted or has
 * committed (a maintenance mutation: aroundMaintenance); counts the forgets committed.
 */
export function appendAtForget(store: Store, again: Buffer, when: 'before' | 'after') {
  const seen = { forgets: 0, appended: undefined as { uid: number; deduplicated: boolean } | undefined };
  const undo = aroundMaintenance(store, async (at, ops) => {
    if (at === 'after' && forgetsInline(ops)) seen.forgets++;
    if (seen.appended || at !== when || (at === 'after' && !forgetsInline(ops))) return;
    seen.appended = await store.append('Kept', again);
  });
  return { seen, undo };
}

/** Reopened (`reopened` runs first), then rebuilt without its index: the live messages exact, scrub clean. */
export async function expectAfterReopenAndRebuild(dir: string, live: Map<number, Buffer>, reopened?: (store: Store) => Promise<void>): Promise<void> {
  const again = await Store.open(dir, OPTIONS);
  await reopened?.(again);
  expect(again.health.findings).toEqual([]);
  await expectLive(again, live);
  await again.close();
  rmSync(join(dir, 'index'), { recursive: true });
  const rebuilt = await Store.open(dir, OPTIONS);
  expect(rebuilt.health.degraded, rebuilt.health.findings.join('; ')).toBe(false);
  await expectLive(rebuilt, live);
  await expectScrubClean(rebuilt);
  await rebuilt.close();
}

/**
 * Records `run` (a compaction, a retirement: something that forgets released inline bodies) on the
 * store bigDelete left, an identical message appended as its first forget commits (not awaited:
 * it races the rest), then opens every crash state of it, the index missing or older: the live
 * and the acknowledged messages exact, scrub clean; after `again` on each, no released body is in
 * a pack.
 */
export async function crashWhileForgetting(test: {
  name: string;
  seed: number;
  options?: StoreOptions;
  /** On the store bigDelete left, before the recording. */
  before?: (store: Store) => Promise<unknown>;
  run: (store: Store) => Promise<unknown>;
  again: (store: Store) => Promise<unknown>;
}): Promise<void> {
  const work = await fsp.mkdtemp(join(fastTmpRoot(), test.name));
  const dir = join(work, 'store');
  const { store: setup, live, liveBytes } = await bigDelete(dir, test.options);
  await test.before?.(setup);
  await setup.close();
  const ffs = new FaultFileSystem({ seed: test.seed });
  await ffs.startRecording(dir, { exclude: ['index'] });
  const older = join(work, 'index-before');
  await ffs.snapshotExcluded(older);
  const store = await Store.open(dir, { fs: ffs, ...OPTIONS, ...test.options });
  const opened = ffs.logLength;
  const again = body(3);
  let appending: Promise<{ uid: number }> | undefined;
  let ackedAt = Infinity;
  const undo = aroundMaintenance(store, async (at, ops) => {
    // started as the forget commits, not awaited: it races the rest of the run
    if (at === 'after' && forgetsInline(ops) && !appending) appending = store.append('Kept', again).then((r) => { ackedAt = ffs.logLength; return r; });
  });
  await test.run(store);
  undo();
  const { uid } = await appending!;
  await store.close();
  const modes: CrashMode[] = ['all-lost', 'random', 'all-kept', 'data-lost'];
  let states = 0;
  for (let afterOp = opened; afterOp <= ffs.logLength; afterOp++) {
    const mode = modes[afterOp % modes.length]!;
    const target = join(work, `crash-${afterOp}-${mode}`);
    const indexMode = states % 2 === 0 ? 'missing' : 'older';
    const report = await ffs.materializeCrash(target, afterOp, test.seed + afterOp, { mode, indexMode, indexSource: older });
    const where = `${report.reproduce} index ${indexMode}`;
    retireOwnLock(target);
    const crashed = await Store.open(target, { ...OPTIONS, ...test.options });
    try {
      expect(crashed.health.degraded, `${where}: ${crashed.health.findings.join('; ')}`).toBe(false);
      await expectLive(crashed, live);
      const status = await crashed.status('Kept');
      if (afterOp >= ackedAt) expect((await crashed.fetch('Kept', uid)).equals(again), `${where}: the acknowledged append`).toBe(true);
      else if (status.uidNext > uid) expect((await crashed.fetch('Kept', uid)).equals(again), `${where}: the append, durable though not acknowledged`).toBe(true);
      await expectScrubClean(crashed);
      await test.again(crashed);
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
}
