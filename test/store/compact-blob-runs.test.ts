// `blob.forgetRun` and `blob.relocateRun` (docs/FORMAT.md, "Compaction"): a compaction's
// conditional forgets of one pack, and its relocations from one pack into another, each as one op
// holding a buffer of fixed-size entries. The forget drops exactly the entries still released past
// the cutoff at that pack and offset, the relocation moves exactly those still at their old copy;
// a replay and a rebuild from the journal decide alike (an index that already applied them is
// unchanged by them again); IndexView.getShared, which the forget and the compaction's prepare
// read through, never hides the view's own writes.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { keys } from '../../src/keys/index-keys.js';
import { applyOpsNow } from '../../src/store/apply.js';
import { FORGET_ENTRY_BYTES, RELOCATE_ENTRY_BYTES, encodeForgetEntries, encodeRelocateEntries, forEachForgetEntry, forEachRelocateEntry, type RelocateEntry } from '../../src/store/blob-runs.js';
import { decodeCbor, encodeCbor } from '../../src/index/codec.js';
import type { BlobRecord, JournalPayload, Op } from '../../src/store/records.js';
import { AssertionFailure } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { churned, expectExactAfterRebuild } from './compact-helpers.js';

const hash = (b: number) => Buffer.alloc(32, b);

async function viewWith(blobs: [Buffer, BlobRecord][]): Promise<{ db: IndexDb; view: IndexView }> {
  const db = await IndexDb.open(join(tmpDir('blob-runs'), 'index'), true);
  const view = new IndexView(db);
  for (const [h, blob] of blobs) view.put(keys.blob(h), blob);
  await view.flush();
  return { db, view };
}

describe('blob.relocateRun', () => {
  it('entries round-trip through the buffer and CBOR', () => {
    const entries: RelocateEntry[] = [{ hash: hash(1), from: 32, to: 2 ** 35, size: 10 }, { hash: hash(2), from: Number.MAX_SAFE_INTEGER, to: 0, size: 2 ** 33 }];
    const back = decodeCbor<{ entries: Uint8Array }>(encodeCbor({ op: 'blob.relocateRun', from: 1, to: 2, entries: encodeRelocateEntries(entries) }));
    expect(back.entries.length).toBe(2 * RELOCATE_ENTRY_BYTES);
    const seen: RelocateEntry[] = [];
    forEachRelocateEntry(back.entries, (e) => seen.push({ ...e, hash: Buffer.from(e.hash) }));
    expect(seen).toEqual(entries);
    expect(() => forEachRelocateEntry(back.entries.subarray(0, RELOCATE_ENTRY_BYTES + 3), () => undefined)).toThrow(AssertionFailure);
  });

  it('moves only entries still at their old copy; applied again it changes nothing', async () => {
    const { db, view } = await viewWith([
      [hash(1), { p: 1, o: 32, l: 10, r: 1 }], // moved
      [hash(2), { p: 1, o: 99, l: 10, r: 1 }], // re-written meanwhile at another offset: kept
      [hash(3), { p: 4, o: 64, l: 10, r: 0, z: 5 }], // in another pack: kept
      [hash(4), { p: 1, o: 128, l: 10, r: 0, z: 5 }], // released: moved with its release time
    ]);
    const op: Op = { op: 'blob.relocateRun', from: 1, to: 9, entries: encodeRelocateEntries([
      { hash: hash(1), from: 32, to: 32, size: 10 }, { hash: hash(2), from: 64, to: 74, size: 10 },
      { hash: hash(3), from: 64, to: 116, size: 10 }, { hash: hash(4), from: 128, to: 158, size: 10 }, { hash: hash(5), from: 200, to: 200, size: 10 }, // 5: forgotten meanwhile
    ]) };
    const problems: string[] = [];
    applyOpsNow(view, 10, [op], (p) => problems.push(p));
    await view.flush();
    expect(problems).toEqual([]);
    const now = (b: number) => db.getNow<BlobRecord>(keys.blob(hash(b)));
    expect([1, 2, 3, 4, 5].map(now)).toEqual([
      { p: 9, o: 32, l: 10, r: 1 }, { p: 1, o: 99, l: 10, r: 1 }, { p: 4, o: 64, l: 10, r: 0, z: 5 }, { p: 9, o: 158, l: 10, r: 0, z: 5 }, undefined,
    ]);
    applyOpsNow(view, 11, [op], (p) => problems.push(p));
    expect(view.size).toBe(0);
    await db.close();
  });
});

describe('blob.forgetRun', () => {
  it('entries round-trip through the buffer and CBOR, offsets above 2^32 included; a torn list is a bug', () => {
    const entries = [{ hash: hash(1), offset: 32 }, { hash: hash(2), offset: 2 ** 40 + 7 }, { hash: hash(3), offset: Number.MAX_SAFE_INTEGER }];
    const op: Op = { op: 'blob.forgetRun', pack: 3, cutoff: 1000, entries: encodeForgetEntries(entries) };
    const back = decodeCbor<{ entries: Uint8Array }>(encodeCbor(op));
    expect(back.entries.length).toBe(3 * FORGET_ENTRY_BYTES);
    const seen: { hash: Buffer; offset: number }[] = [];
    forEachForgetEntry(back.entries, (h, offset) => seen.push({ hash: Buffer.from(h), offset }));
    expect(seen).toEqual(entries);
    expect(() => forEachForgetEntry(back.entries.subarray(1), () => undefined)).toThrow(AssertionFailure);
    expect(() => encodeForgetEntries([{ hash: Buffer.alloc(31), offset: 0 }])).toThrow(AssertionFailure);
  });

  it('drops only entries still released past the cutoff at that pack and offset', async () => {
    const { db, view } = await viewWith([
      [hash(1), { p: 1, o: 32, l: 10, r: 0, z: 500 }], // forgotten
      [hash(2), { p: 1, o: 64, l: 10, r: 1 }], // referenced again meanwhile: kept
      [hash(3), { p: 1, o: 99, l: 10, r: 0, z: 500 }], // another copy than the one listed: kept
      [hash(4), { p: 2, o: 96, l: 10, r: 0, z: 500 }], // in another pack (moved meanwhile): kept
      [hash(5), { p: 1, o: 128, l: 10, r: 0, z: 1500 }], // released after the cutoff (grace): kept
      [hash(6), { p: 1, o: 160, l: 10, r: 0 }], // released before release times were kept: forgotten
    ]);
    const listed = [[1, 32], [2, 64], [3, 96], [4, 96], [5, 128], [6, 160], [7, 192]] as const; // 7: no entry at all
    const op: Op = { op: 'blob.forgetRun', pack: 1, cutoff: 1000, entries: encodeForgetEntries(listed.map(([b, offset]) => ({ hash: hash(b), offset }))) };
    const problems: string[] = [];
    applyOpsNow(view, 10, [op], (p) => problems.push(p));
    expect(problems).toEqual([]);
    await view.flush();
    const left = [1, 2, 3, 4, 5, 6, 7].filter((b) => db.getNow(keys.blob(hash(b))) !== undefined);
    expect(left).toEqual([2, 3, 4, 5]);
    applyOpsNow(view, 11, [op], (p) => problems.push(p)); // applied again (a replay over an index that has it): nothing changes
    expect(view.size).toBe(0);
    await db.close();
  });

  it('getShared sees the view\'s own puts and deletes first, and the index again once the pending set was handed over', async () => {
    const { db, view } = await viewWith([[hash(1), { p: 1, o: 32, l: 10, r: 0 }]]);
    const key = keys.blob(hash(1));
    expect(view.getShared<BlobRecord>(key)).toMatchObject({ r: 0 });
    view.put(key, { p: 1, o: 32, l: 10, r: 1 });
    expect(view.getShared<BlobRecord>(key)).toMatchObject({ r: 1 });
    view.del(key);
    expect(view.getShared(key)).toBeUndefined();
    const other = new IndexView(db);
    other.put(key, { p: 9, o: 32, l: 10, r: 2 });
    await other.flush();
    const fresh = new IndexView(db);
    expect(fresh.getShared<BlobRecord>(key)).toMatchObject({ p: 9 });
    fresh.put(keys.blob(hash(2)), 1);
    await fresh.flush(); // hands the pending set over: what getShared remembered is forgotten
    const again = new IndexView(db);
    again.put(key, { p: 10, o: 32, l: 10, r: 2 });
    await again.flush();
    expect(fresh.getShared<BlobRecord>(key)).toMatchObject({ p: 10 });
    await db.close();
  });

  it('a compaction commits its relocations and forgets as relocateRun and forgetRun ops (no op per blob); a rebuild from the journal gives the same index, and so does a reopen without the index', async () => {
    const dir = tmpDir('blob-runs');
    const { store, bodies, gone } = await churned(dir);
    const result = await store.compact();
    expect(result.blobsReclaimed).toBe(gone.length - 1);
    const ops: Op[] = [];
    for await (const record of store.maintenance().journal.read(0, (damage) => { throw new Error(`journal damage: ${JSON.stringify(damage)}`); })) ops.push(...decodeCbor<JournalPayload>(record.payload).ops);
    const runs = ops.filter((op): op is Extract<Op, { op: 'blob.forgetRun' }> => op.op === 'blob.forgetRun');
    expect(ops.filter((op) => op.op === 'blob.forget' || op.op === 'blob.relocate')).toEqual([]);
    const moved = ops.filter((op): op is Extract<Op, { op: 'blob.relocateRun' }> => op.op === 'blob.relocateRun');
    expect(moved.reduce((sum, op) => sum + op.entries.length / RELOCATE_ENTRY_BYTES, 0)).toBe(result.blobsCopied);
    expect(runs.reduce((sum, op) => sum + op.entries.length / FORGET_ENTRY_BYTES, 0)).toBe(gone.length - 1);
    const rebuilt = await store.maintenance().reconstructIndex({ check: true });
    expect(rebuilt.differences, 'a rebuild from the journal gives the same index').toBe(0);
    await store.close();
    await expectExactAfterRebuild(dir, bodies, gone, async (reopened) => {
      expect((await reopened.stats()).unreferencedBlobs).toBe(0);
    });
  });
});
