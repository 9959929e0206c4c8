// Pack compaction (src/store/compact.ts): dead bytes come back, every live message stays exact
// (also after a rebuild of the index from the journal), the grace period holds, a dry run changes
// nothing, and a store whose index does not add up is refused.
import { describe, expect, it, vi } from 'vitest';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these tests rewrite and measure packs (helpers/packed.ts; inline bodies' compaction: inline-bodies.test.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { hashBytes } from '../../src/hash/blake3.js';
import type { MailstoreError } from '../../src/errors.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { keys } from '../../src/keys/index-keys.js';
import { encodeValue } from '../../src/index/codec.js';
import { meta } from '../../src/store/apply.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import type { BlobRecord } from '../../src/store/records.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { body, churned, expectExact, expectExactAfterRebuild, expectScrubClean, packNames, packsBytes } from './compact-helpers.js';
import { expectCode, fingerprint } from '../sim/helpers.js';
import { rawLevelOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { until as untilHolds } from '../helpers/until.js';

describe('compaction', () => {
  it('reclaims expunged bytes from the pack being appended to; every live message exact, also after a rebuild from the journal', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone, live } = await churned(dir);
    expect(packNames(dir), 'one pack, the one appends go to').toHaveLength(1);
    const before = await store.stats();
    expect(before.bytesDead).toBeGreaterThan(live * 3);
    const result = await store.compact();
    expect(result.packsRewritten).toEqual([1]);
    expect(result.blobsReclaimed).toBe(gone.length - 1); // uid 1's body lives on in K
    expect(result.bytesBefore).toBe(before.packBytes);
    expect(result.bytesAfter).toBe(packsBytes(dir));
    expect(packNames(dir)).toEqual(['00000002.pack']);
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 1024);
    const after = await store.stats();
    expect(after.bytesDead).toBe(0);
    expect(after.bytesLive).toBe(before.bytesLive);
    expect(after.unreferencedBlobs).toBe(0);
    expect(await store.maintenance().index.get(meta.retiredPacks), 'the retire intent is cleared').toBeUndefined();
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    // appends go on, into a new pack above the compacted one
    const next = await store.append('M', body(99, 500));
    expect((await store.fetch('M', next.uid)).equals(body(99, 500))).toBe(true);
    await store.close();
    await expectExactAfterRebuild(dir, bodies, gone, async (rebuilt) => {
      expect((await rebuilt.stats()).bytesDead).toBe(0);
    });
  });

  it('a second compaction with nothing dead changes nothing', async () => {
    const dir = tmpDir('compact');
    const { store } = await churned(dir);
    await store.compact();
    // the first compaction removed a pack, so its tidy (LevelDB compaction, a snapshot retiring the
    // journal before it) runs in the background; a snapshot queues behind it
    await store.snapshot();
    const print = fingerprint(dir, ['index', 'journal']);
    const again = await store.compact();
    expect(again.packsRewritten).toEqual([]);
    expect(fingerprint(dir, ['index', 'journal'])).toEqual(print);
    await store.close();
  });

  it('--dry-run reports what it would reclaim and changes nothing', async () => {
    const dir = tmpDir('compact');
    const { store, gone } = await churned(dir);
    await store.close();
    const reopened = await Store.open(dir);
    const print = fingerprint(dir, ['index']);
    const dry = await reopened.compact({ dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.packsRewritten).toEqual([1]);
    expect(dry.blobsReclaimed).toBe(gone.length - 1);
    expect(dry.bytesAfter).toBeLessThan(dry.bytesBefore / 3);
    expect(fingerprint(dir, ['index']), 'nothing written by a dry run').toEqual(print);
    await reopened.close();
  });

  it('keeps released blobs for the grace period, relocated with their pack; reclaims them after it', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const kept = await store.compact({ graceMs: 3_600_000 });
    expect(kept.blobsReclaimed).toBe(0);
    const hash = hashBytes(bodies.get(2)!);
    const blob = await store.maintenance().index.get<BlobRecord>(keys.blob(hash));
    expect(blob, 'released within the grace period: still known').toMatchObject({ r: 0 });
    expect(blob!.z).toBeGreaterThan(Date.now() - 60_000);
    expect((await store.fetchBlob(hash)).equals(bodies.get(2)!), 'its bytes were copied, exact').toBe(true);
    const reclaimed = await store.compact({ graceMs: 0 });
    expect(reclaimed.blobsReclaimed).toBe(gone.length - 1);
    expect(await store.maintenance().index.get(keys.blob(hash))).toBeUndefined();
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('blobs released while the clock was a year ahead (dated in the future) are reclaimed by compact, with or without a grace, not kept until that date; a rebuild from the journal agrees', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churnedWithClockAhead(dir, 365 * 86_400_000);
    // the background compactor's grace: their age cannot be told, and waiting for their date kept
    // the dead bytes for a year with nothing an admin could see to do about it
    const reclaimed = await store.compact({ graceMs: 3_600_000 });
    expect(reclaimed.blobsReclaimed).toBe(gone.length - 1);
    expect(reclaimed.bytesAfter).toBeLessThan(reclaimed.bytesBefore / 2);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    const rebuilt = await store.maintenance().reconstructIndex({ check: true });
    expect(rebuilt.differences, 'a replay of the forgets, which knows no clock, decides alike').toBe(0);
    await store.close();
  });

  it('a release dated ahead of the clock by less than the grace keeps its grace', async () => {
    const dir = tmpDir('compact');
    const { store, gone } = await churnedWithClockAhead(dir, 10 * 60_000);
    expect(await store.compact({ graceMs: 3_600_000 })).toMatchObject({ blobsReclaimed: 0 });
    expect((await store.compact()).blobsReclaimed).toBe(gone.length - 1);
    await store.close();
  });

  it('an append of an expunged body while compaction runs writes a fresh copy that survives (dedup vs reclaim)', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const again = bodies.get(3)!;
    let appended: Promise<{ uid: number; deduplicated: boolean }> | undefined;
    const result = await store.compact({
      onProgress: (p) => { if (p.phase === 'copy' && !appended) appended = store.append('K', again); },
    });
    expect(appended, 'the append started during the copy').toBeDefined();
    const { uid, deduplicated } = await appended!;
    expect(deduplicated, 'a released blob is never deduplicated against').toBe(false);
    // The forgets commit beside the copy (compact.ts rewrite): the append lands after them (its
    // blob was forgotten, the append wrote a new one) or before (the forget skips the moved entry).
    expect([gone.length - 2, gone.length - 1], 'the re-appended blob is forgotten at most before the append').toContain(result.blobsReclaimed);
    const entry = await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(again)));
    expect(entry?.r, 'the re-appended blob is known, referenced once').toBe(1);
    expect(result.packsRewritten, 'and its copy is not in a pack the compaction removed').not.toContain(entry!.p);
    expect((await store.fetch('K', uid)).equals(again)).toBe(true);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true });
    const rebuilt = await Store.open(dir);
    expect((await rebuilt.fetch('K', uid)).equals(again), 'and after a rebuild from the journal').toBe(true);
    await expectScrubClean(rebuilt);
    await rebuilt.close();
  });

  it('the forgets and relocations take the planning scan\'s entries without reading them again when nothing else committed since the scan', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const released = new Set(gone.filter((u) => u !== 1).map((u) => keys.blob(hashBytes(bodies.get(u)!)).toString('hex')));
    const kept = new Set([...bodies].filter(([u]) => !released.has(keys.blob(hashBytes(bodies.get(u)!)).toString('hex'))).map(([, b]) => keys.blob(hashBytes(b)).toString('hex')));
    const read = vi.spyOn(store.maintenance().index, 'getManyNow');
    const result = await store.compact();
    const readAgain = (set: Set<string>) => read.mock.calls.flatMap(([keyList]) => keyList.filter((key) => set.has(key.toString('hex')))).length;
    const [releasedRead, keptRead] = [readAgain(released), readAgain(kept)];
    read.mockRestore();
    expect(result.blobsReclaimed, 'every released blob forgotten').toBe(released.size);
    expect(result.blobsCopied, 'every live blob copied').toBe(kept.size);
    expect(releasedRead, 'no released entry read again after the scan').toBe(0);
    expect(keptRead, 'no relocated entry read again after the scan').toBe(0);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('an append of an expunged body that commits between the planning scan and the forgets keeps its fresh copy: the forgets read the entries again', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const again = bodies.get(3)!;
    let appended: { uid: number; deduplicated: boolean } | undefined;
    // the append commits right after the seal (the plan keeps its scan: nothing committed before the
    // seal), before the forgets are prepared
    const internals = store as unknown as { submit(mutation: { exclusive?: boolean }, ...rest: unknown[]): Promise<unknown> };
    const submit = internals.submit.bind(store);
    internals.submit = async (mutation, ...rest) => {
      const out = await submit(mutation, ...rest);
      if (mutation.exclusive && !appended) appended = await store.append('K', again);
      return out;
    };
    const result = await store.compact();
    expect(appended?.deduplicated, 'the append ran, a fresh copy').toBe(false);
    expect(result.blobsReclaimed, 'every released blob but the re-appended one forgotten').toBe(gone.length - 2);
    const entry = await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(again)));
    expect(entry?.r, 'the re-appended blob is known, referenced once').toBe(1);
    expect((await store.fetch('K', appended!.uid)).equals(again)).toBe(true);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('an expunge of a live message committed while its blob is copied leaves the relocated entry released: the relocations read their entries again', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    let expunged: Promise<void> | undefined;
    const result = await store.compact({ onProgress: (p) => { if (p.phase === 'copy' && !expunged) expunged = store.expunge('M', [5]); } });
    await expunged;
    expect(result.packsRewritten.length, 'the pack was rewritten').toBeGreaterThan(0);
    const entry = await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bodies.get(5)!)));
    expect(entry?.r, 'the expunged message\'s blob is released at its new copy').toBe(0);
    expect(result.packsWritten, 'and the entry points into the new pack').toContain(entry!.p);
    await expectExact(store, bodies, [...gone, 5]);
    await expectScrubClean(store);
    await store.close();
  });

  it('an append deduplicating onto a live blob of a pack being rewritten keeps it', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const shared = bodies.get(5)!;
    let appended: Promise<{ uid: number; deduplicated: boolean }> | undefined;
    await store.compact({ onProgress: (p) => { if (p.phase === 'copy' && !appended) appended = store.append('K', shared); } });
    const { uid, deduplicated } = await appended!;
    expect(deduplicated).toBe(true);
    expect((await store.fetch('K', uid)).equals(shared)).toBe(true);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('a reader streaming a message from a pack being rewritten gets the exact bytes; the pack goes once it is done', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const big = body(500, 3 * 1024 * 1024 + 17);
    const { uid } = await store.append('M', big);
    await store.expunge('M', [10]);
    bodies.delete(10);
    const stream = await store.fetchStream('M', uid);
    const chunks: Buffer[] = [];
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    chunks.push(first.value as Buffer);
    const compaction = store.compact({ deadRatio: 0.01 }); // the big message is most of the pack
    // the commit lands while the reader is inside the old pack: the file stays until it leaves
    await new Promise((r) => setTimeout(r, 200));
    expect(packNames(dir)).toContain('00000001.pack');
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(next.value as Buffer);
    expect(Buffer.concat(chunks).equals(big), 'the streamed bytes are exact').toBe(true);
    const result = await compaction;
    expect(result.packsRemoved, JSON.stringify(result)).toContain(1);
    expect(packNames(dir)).not.toContain('00000001.pack');
    expect((await store.fetch('M', uid)).equals(big)).toBe(true);
    await expectExact(store, bodies, gone);
    await store.close();
  });

  it('a stream opened before another client expunged its message and compaction reclaimed it is NOT_FOUND when read, not damage', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const stream = await store.fetchStream('M', 5); // a slow IMAP client: opened, not read yet
    await store.expunge('M', [5]);
    bodies.delete(5);
    const result = await store.compact({ deadRatio: 0.01 });
    expect(result.packsRemoved, JSON.stringify(result)).toContain(1);
    const error = await (async () => { for await (const _ of stream); })().then(() => undefined, (e: unknown) => e);
    expect((error as { code?: string }).code, String(error)).toBe('NOT_FOUND');
    expect(stream.destroyed).toBe(true);
    await expectExact(store, bodies, gone); // every other message exact
    await expectScrubClean(store);
    await store.close();
  });

  it('a compaction waiting for another when the store is closed is CLOSED, not run against the closing store; nothing damaged', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const first = store.compact({ deadRatio: 0.01 });
    const waiting = store.compact({ deadRatio: 0.01 }).then(() => 'ran', (error: unknown) => (error as { code?: string }).code);
    await store.close();
    await first;
    expect(await waiting).toBe('CLOSED');
    const reopened = await Store.open(dir);
    await expectExact(reopened, bodies, gone);
    await expectScrubClean(reopened);
    await reopened.close();
  });

  it('a read that looked its blob up before the commit and reads after the old pack is gone reads the new copy', async () => {
    const dir = tmpDir('compact');
    const { store, bodies } = await churned(dir);
    const hash = hashBytes(bodies.get(5)!);
    const old = (await store.maintenance().index.get<BlobRecord>(keys.blob(hash)))!;
    await store.compact();
    expect(packNames(dir)).not.toContain('00000001.pack');
    const bytes = await store.maintenance().packs.read({ pack: old.p, offset: old.o, length: old.l }, hash);
    expect(bytes.equals(bodies.get(5)!)).toBe(true);
    await store.close();
  });

  it('open finishes deleting packs a compaction left retired, and never one a blob entry still points into', async () => {
    const dir = tmpDir('compact');
    const ffs = new FaultFileSystem();
    const { store, bodies, gone } = await churned(dir, { packBytesMax: 16 * 1024, fs: ffs });
    const before = packNames(dir);
    expect(before.length).toBeGreaterThan(3);
    // the commit lands, then removing the old files fails: they stay listed as retired
    ffs.failAll('EIO', { pathPrefix: join(dir, 'packs'), ops: ['unlink'] });
    const failure = await expectCode(store.compact(), 'IO');
    ffs.clear();
    expect(failure.message).toMatch(/removing retired pack/);
    const retired = (await store.maintenance().index.get<number[]>(meta.retiredPacks))!;
    expect(retired.length).toBeGreaterThan(0);
    for (const p of retired) expect(packNames(dir)).toContain(`${String(p).padStart(8, '0')}.pack`);
    await expectExact(store, bodies, gone);
    const report = await scrub(store);
    expect(report.findings.filter((f) => f.kind === 'retired-pack-present').length, 'scrub lists them, as informational').toBe(retired.length);
    expect(report.findings.filter(isDamage)).toEqual([]);
    // and a pack the index still uses is listed as retired too (a plan gone wrong)
    const live = (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bodies.get(5)!))))!;
    await store.administration().mutate({ prepare: async () => ({ ops: [{ op: 'pack.retire', packs: [live.p] }], result: undefined }) });
    await store.close();
    const reopened = await Store.open(dir);
    try {
      for (const p of retired) expect(packNames(dir)).not.toContain(`${String(p).padStart(8, '0')}.pack`);
      expect(packNames(dir)).toContain(`${String(live.p).padStart(8, '0')}.pack`);
      expect(reopened.health.findings.join(' ')).toMatch(/still point into it/);
      expect(await reopened.maintenance().index.get(meta.retiredPacks)).toEqual([live.p]);
      await expectExact(reopened, bodies, gone);
      const after = await scrub(reopened);
      expect(after.findings.some((f) => f.kind === 'blob-in-retired-pack'), 'scrub reports it as damage').toBe(true);
    } finally {
      await reopened.close();
    }
  });

  it('refuses (REFUSED) when the refcounts do not add up, and changes nothing', async () => {
    const dir = tmpDir('compact');
    const { store, bodies } = await churned(dir);
    const hash = hashBytes(bodies.get(5)!);
    const blob = (await store.maintenance().index.get<BlobRecord>(keys.blob(hash)))!;
    // index damage: a live message's blob says nobody uses it
    await rawLevelOf(store).put(keys.blob(hash), encodeValue(keys.blob(hash), { ...blob, r: 0 }));
    await expectRefusedUnchanged(dir, store, bodies, /does not add up/);
  });

  it('refuses (REFUSED) when the refcounts add up in total but name the wrong blobs (the digest of hash x refs), and changes nothing', async () => {
    const dir = tmpDir('compact');
    const { store, bodies } = await churned(dir);
    const index = store.maintenance().index;
    const liveHash = hashBytes(bodies.get(5)!);
    const deadHash = hashBytes(bodies.get(2)!);
    const live = (await index.get<BlobRecord>(keys.blob(liveHash)))!;
    const dead = (await index.get<BlobRecord>(keys.blob(deadHash)))!;
    expect([live.r, dead.r]).toEqual([1, 0]);
    // index damage that keeps the sum of refs: the live blob says nobody uses it, an expunged one says one message does
    await rawLevelOf(store).put(keys.blob(liveHash), encodeValue(keys.blob(liveHash), { ...live, r: 0 }));
    await rawLevelOf(store).put(keys.blob(deadHash), encodeValue(keys.blob(deadHash), { p: dead.p, o: dead.o, l: dead.l, r: 1 }));
    await expectRefusedUnchanged(dir, store, bodies, /disagree with the messages/);
  });

  it('refuses (REFUSED) when a blob entry points into a pack that does not exist', async () => {
    const dir = tmpDir('compact');
    const { store } = await churned(dir);
    const stray = Buffer.alloc(32, 7);
    await rawLevelOf(store).put(keys.blob(stray), encodeValue(keys.blob(stray), { p: 99, o: 32, l: 10, r: 0 }));
    const error = await expectCode(store.compact(), 'REFUSED');
    expect(error.message).toMatch(/packs that do not exist/);
    await store.close();
  });

  it('relocate with `from` and forget apply only to the blob as planned (replay decides the same)', async () => {
    const dir = tmpDir('compact');
    const { store, bodies } = await churned(dir);
    const liveHash = hashBytes(bodies.get(5)!);
    const deadHash = hashBytes(bodies.get(2)!);
    const live = (await store.maintenance().index.get<BlobRecord>(keys.blob(liveHash)))!;
    const dead = (await store.maintenance().index.get<BlobRecord>(keys.blob(deadHash)))!;
    await store.administration().mutate({ prepare: async () => ({ ops: [
      { op: 'blob.relocate', hash: liveHash, pack: 7, offset: 32, size: live.l, from: [live.p, live.o + 1] }, // moved meanwhile: ignored
      { op: 'blob.forget', hash: liveHash, pack: live.p, offset: live.o }, // still used: ignored
      { op: 'blob.forget', hash: deadHash, pack: dead.p, offset: dead.o + 1 }, // another copy: ignored
      { op: 'blob.relocate', hash: Buffer.alloc(32, 1), pack: 7, offset: 32, size: 5, from: [1, 32] }, // forgotten meanwhile: nothing
    ], result: undefined }) });
    expect(await store.maintenance().index.get(keys.blob(liveHash))).toEqual(live);
    expect(await store.maintenance().index.get(keys.blob(deadHash))).toEqual(dead);
    await store.administration().mutate({ prepare: async () => ({ ops: [{ op: 'blob.forget', hash: deadHash, pack: dead.p, offset: dead.o }], result: undefined }) });
    expect(await store.maintenance().index.get(keys.blob(deadHash))).toBeUndefined();
    const rebuilt = await store.maintenance().reconstructIndex({ check: true });
    expect(rebuilt.differences, 'a rebuild from the journal gives the same index').toBe(0);
    await store.close();
  });

  it('a checkpoint (journal written from the index) keeps when each blob was released', async () => {
    const dir = tmpDir('compact');
    const { store, bodies } = await churned(dir);
    const hash = hashBytes(bodies.get(2)!);
    const before = (await store.maintenance().index.get<BlobRecord>(keys.blob(hash)))!;
    expect(before.z).toBeGreaterThan(0);
    await store.maintenance().rewriteJournalFromIndex();
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true });
    const rebuilt = await Store.open(dir);
    expect(await rebuilt.maintenance().index.get(keys.blob(hash))).toEqual(before);
    await rebuilt.close();
  });

  it('rejects bad options (INVALID)', async () => {
    const dir = tmpDir('compact');
    const store = await Store.open(dir, { create: true });
    await expectCode(store.compact({ graceMs: -1 }), 'INVALID');
    await expectCode(store.compact({ deadRatio: 2 }), 'INVALID');
    await expectCode(store.compact({ bogus: 1 } as never), 'INVALID');
    await store.close();
  });

  it('compacts by itself in the background when autoCompact is on', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    await store.close();
    const auto = await Store.open(dir, { autoCompact: { graceMs: 0, intervalMs: 20, deadBytesMin: 1 } });
    try {
      // polled 2 s, then asserted: the background round (open, its first look, a rewrite) took longer under load; the bound is a hang guard
      await untilHolds(() => !packNames(dir).includes('00000001.pack'), 'the background compactor rewrote pack 1', 60_000);
      await expectExact(auto, bodies, gone);
    } finally {
      await auto.close();
    }
  });

  it('the background compactor is the change-log consumer `compact`: it learns of new expunges from the journal after its cursor, and its cursor follows', async () => {
    const dir = tmpDir('compact');
    const { store } = await churned(dir);
    await store.close();
    const compacted: number[][] = [];
    const auto = await Store.open(dir, { autoCompact: { graceMs: 0, intervalMs: 20, deadBytesMin: 1, onCompacted: (r) => compacted.push(r.packsRewritten) } });
    // done the first time `what` holds: asked again after, a cursor equal to the last seq could be
    // one record behind already (the compactor's next round or its tidy wrote one; CI, session 42)
    const until = async (what: () => Promise<boolean> | boolean) => {
      const deadline = Date.now() + 60_000; // a hang guard
      while (!(await what())) {
        expect(Date.now(), 'waited 60 s').toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await until(() => compacted.some((p) => p.length > 0)); // the start-up look at the index's dead bytes
      const cursorOf = async () => (await auto.changes.consumers()).find((c) => c.name === 'compact');
      await until(async () => (await cursorOf())?.seq === auto.changes.lastSeq);
      // new mail, then an expunge: only the journal tells the compactor
      const fresh = [];
      for (let i = 0; i < 10; i++) fresh.push((await auto.append('M', body(200 + i, 3000))).uid);
      const rounds = compacted.length;
      await auto.expunge('M', fresh.slice(0, 9));
      await until(() => compacted.slice(rounds).some((p) => p.length > 0));
      expect((await auto.stats()).bytesDead).toBe(0);
      await until(async () => (await cursorOf())!.seq === auto.changes.lastSeq);
      expect((await cursorOf())!.behind).toBe(false);
      expect((await auto.fetch('M', fresh[9]!)).equals(body(209, 3000))).toBe(true);
    } finally {
      await auto.close();
    }
    // an explicit compaction in a store opened without autoCompact moves the cursor: it does not pin the journal
    const plain = await Store.open(dir);
    try {
      await plain.append('M', body(300, 100));
      await plain.compact();
      const cursor = (await plain.changes.consumers()).find((c) => c.name === 'compact')!;
      expect(cursor.seq).toBeGreaterThanOrEqual(plain.changes.lastSeq - 2);
    } finally {
      await plain.close();
    }
  });

  it('an explicit compaction (mailstore compact through the daemon) whose start the background compactor\'s cursor passed meanwhile succeeds, not INVALID', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    try {
      const feed = store.changes;
      await feed.register('compact', 1); // as the daemon's background compactor left it, behind
      // the background round moves the cursor past more records between the explicit one's read of it and its advance
      const cursor = feed.cursor.bind(feed);
      let raced = false;
      feed.cursor = async (name) => {
        const found = await cursor(name);
        if (name === 'compact' && !raced) {
          raced = true;
          await feed.advance('compact', feed.lastSeq);
        }
        return found;
      };
      const result = await store.compact();
      expect(raced).toBe(true);
      expect(result.packsRewritten.length).toBeGreaterThan(0);
      expect((await cursor('compact'))!.seq).toBe(feed.lastSeq);
      await expectExact(store, bodies, gone);
    } finally {
      await store.close();
    }
  });

  it('compactions that each leave a small pack of survivors merge the small packs: their number follows live data, not the number of compactions', async () => {
    const store = await Store.open(tmpDir('compact'), { create: true });
    try {
      await store.createMailbox('M');
      const kept = new Map<number, Buffer>();
      for (let round = 0, n = 0; round < 8; round++) { // a day's mail, most of it expunged, then a compaction
        const uids: number[] = [];
        for (let i = 0; i < 20; i++, n++) {
          const bytes = body(n, 3000);
          const { uid } = await store.append('M', bytes);
          uids.push(uid);
          if (i >= 18) kept.set(uid, bytes);
        }
        await store.expunge('M', uids.slice(0, 18));
        await store.compact();
      }
      const stats = await store.stats();
      expect(stats.packs, 'packs: the survivors merged, and the pack appends go to').toBeLessThanOrEqual(2);
      expect(stats.bytesDead).toBe(0);
      for (const [uid, bytes] of kept) expect((await store.fetch('M', uid)).equals(bytes), `M ${uid}`).toBe(true);
      expect((await store.status('M')).messages).toBe(16);
    } finally {
      await store.close();
    }
  });

  it("another store's pack file copied into packs/ (and one of ours under a second name) is never appended to, rewritten or deleted: compaction moves it to quarantine/, byte for byte", async () => {
    const { other, foreignBytes } = await otherStorePack(3);
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    await store.close();
    // an admin's mix-up: another store's pack restored into this one, and a copy of ours under a new number
    copyFileSync(join(other, 'packs', '00000001.pack'), join(dir, 'packs', '00000009.pack'));
    copyFileSync(join(dir, 'packs', '00000001.pack'), join(dir, 'packs', '00000008.pack'));
    const ownCopy = readFileSync(join(dir, 'packs', '00000008.pack'));
    rmSync(join(dir, 'quarantine'), { recursive: true }); // emptied by hand the wrong way: made again
    const reopened = await Store.open(dir);
    const added = body(99, 2500);
    const uid = (await reopened.append('M', added)).uid;
    bodies.set(uid, added);
    expect(readFileSync(join(dir, 'packs', '00000009.pack')).equals(foreignBytes), 'nothing appended to the foreign pack').toBe(true);
    const dry = await reopened.compact({ dryRun: true });
    expect(dry.packsRewritten).not.toContain(9);
    expect(dry.foreignPacks?.map((f) => f.pack)).toEqual([8, 9]);
    const result = await reopened.compact();
    expect(result.bytesAfter, 'the dry run estimated without the files set aside').toBe(dry.bytesAfter);
    expect(result.packsRewritten).toEqual([1]);
    expect(result.packsRemoved).not.toContain(9);
    expect(result.foreignPacks?.map((f) => [f.pack, f.why.includes(f.pack === 9 ? 'another store' : 'names pack 1')])).toEqual([[8, true], [9, true]]);
    expect(packNames(dir)).not.toContain('00000009.pack');
    const set = result.foreignPacks!.map((f) => f.setAsideTo!);
    expect(set.every((path) => path.startsWith(join(dir, 'quarantine')))).toBe(true);
    expect(readFileSync(set[1]).equals(foreignBytes), "the other store's pack kept byte for byte").toBe(true);
    expect(readFileSync(set[0]).equals(ownCopy)).toBe(true);
    await expectExact(reopened, bodies, gone);
    await expectScrubClean(reopened);
    await reopened.close();
  });

  it("another store's pack file copied into packs/ of a running store under the number its next pack would take: appends go on in a pack above it, the file is never written", async () => {
    const { other, foreignBytes } = await otherStorePack(1);
    const dir = tmpDir('compact');
    const store = await Store.open(dir, { create: true, packBytesMax: 16 * 1024 });
    await store.createMailbox('M');
    await store.append('M', body(1, 3000));
    copyFileSync(join(other, 'packs', '00000001.pack'), join(dir, 'packs', '00000002.pack'));
    const bodies = new Map<number, Buffer>();
    const failures: string[] = [];
    for (let i = 2; i <= 12; i++) {
      const bytes = body(i, 3000);
      try {
        bodies.set((await store.append('M', bytes)).uid, bytes);
      } catch (error) {
        failures.push((error as MailstoreError).code);
      }
    }
    expect(failures.length, `appends refused: ${failures.join(', ')}`).toBeLessThanOrEqual(1);
    expect(bodies.size).toBeGreaterThanOrEqual(10);
    expect(readFileSync(join(dir, 'packs', '00000002.pack')).equals(foreignBytes), 'the foreign file untouched').toBe(true);
    for (const [uid, bytes] of bodies) expect((await store.fetch('M', uid)).equals(bytes), `M ${uid}`).toBe(true);
    await store.close();
  });

  it("a pack whose header names another store but which messages of this one point into (an older mailstore appended to it) is skipped, never rewritten or deleted", async () => {
    const { other } = await otherStorePack(1);
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    await store.close();
    const path = join(dir, 'packs', '00000001.pack');
    const pack = readFileSync(path);
    readFileSync(join(other, 'packs', '00000001.pack')).copy(pack, 0, 0, PACK_HEADER_BYTES); // the other store's header, the same pack number
    writeFileSync(path, pack);
    const reopened = await Store.open(dir);
    const result = await reopened.compact();
    expect(result.packsRewritten).toEqual([]);
    expect(result.skipped.map((s) => [s.pack, s.why.includes('another store')])).toEqual([[1, true]]);
    expect(readFileSync(path).equals(pack), 'the file is as it was').toBe(true);
    await expectExact(reopened, bodies, gone);
    await reopened.close();
  });

  it('a live record whose body fails its hash leaves its pack alone (skipped, exit 1 in the CLI); the other live messages stay exact', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const damaged = bodies.get(10)!;
    const blob = (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(damaged))))!;
    const [name] = packNames(dir);
    const path = join(dir, 'packs', name!);
    const bytes = readFileSync(path);
    bytes[blob.o + RECORD_HEADER_BYTES + 5] ^= 0xff; // one flipped body byte of a live record
    writeFileSync(path, bytes);
    await store.maintenance().packs.forgetReadHandles();
    const result = await store.compact();
    expect(result.skipped.map((s) => s.pack)).toEqual([blob.p]);
    expect(result.skipped[0]!.why).toMatch(/does not match its hash/);
    expect(result.packsRewritten, 'the damaged pack is not retired').toEqual([]);
    expect(packNames(dir)).toContain(name);
    await expectCode(store.fetch('M', 10), 'CORRUPT');
    for (const [uid, b] of bodies) if (uid !== 10 && !gone.includes(uid)) expect((await store.fetch('M', uid)).equals(b), `M ${uid}`).toBe(true);
    await store.close();
  });

  it('a live record on a bad sector (EIO reading it) leaves only its pack alone: the other packs are compacted, nothing lost; once the sector reads again a retry takes that pack too', async () => {
    const dir = tmpDir('compact');
    const ffs = new FaultFileSystem({ seed: 3 });
    const { store, bodies, gone, live } = await churned(dir, { fs: ffs, packBytesMax: 24 * 1024 });
    const packs = packNames(dir);
    expect(packs.length, 'several packs').toBeGreaterThan(3);
    const bad = (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bodies.get(10)!))))!;
    const sector = bad.o + RECORD_HEADER_BYTES + 100;
    const badName = `${String(bad.p).padStart(8, '0')}.pack`;
    // every read of that pack covering the sector fails, as a disk's unreadable sector does
    ffs.injectAt((info) => info.kind === 'read' && info.path.endsWith(`/${badName}`) && info.position! <= sector && sector < info.position! + info.length!, 'EIO', { times: 1e9 });
    await store.maintenance().packs.forgetReadHandles();
    const result = await store.compact();
    expect(result.skipped.map((s) => s.pack)).toEqual([bad.p]);
    expect(result.skipped[0]!.why).toMatch(/EIO/);
    expect(result.packsRewritten.length, 'the other candidates were rewritten').toBeGreaterThan(0);
    expect(result.packsRewritten).not.toContain(bad.p);
    expect(packNames(dir)).toContain(badName);
    await expectCode(store.fetch('M', 10), 'IO');
    for (const [uid, b] of bodies) if (uid !== 10 && !gone.includes(uid)) expect((await store.fetch('M', uid)).equals(b), `M ${uid}`).toBe(true);
    ffs.clear(); // the disk remapped the sector
    const retried = await store.compact();
    expect(retried.packsRewritten).toContain(bad.p);
    expect(packsBytes(dir)).toBeLessThanOrEqual(1.1 * live + 24 * 1024);
    await expectExact(store, bodies, gone);
    await expectScrubClean(store);
    await store.close();
  });

  it('after a compaction that removed packs, the tidy\'s two snapshots retire the journal before its last record and the index files shrink; reopen, a rebuild and a rebuild past a damaged newest snapshot stay exact', async () => {
    const dir = tmpDir('compact');
    const { store, bodies, gone } = await churned(dir);
    const journalBefore = readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'));
    expect(journalBefore).toHaveLength(1);
    const result = await store.compact();
    expect(result.packsRemoved).toEqual([1]);
    await store.close(); // waits for the background tidy (index files, snapshots, retirement)
    const jnl = () => readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'));
    const snaps = () => readdirSync(join(dir, 'snapshots')).filter((n) => n.endsWith('.snap')).sort();
    // no earlier snapshot: the tidy takes two (a record that changes nothing between them), so the
    // history goes now and still no file is the only copy of the metadata (failed before: one
    // snapshot, the history's segment kept until a later snapshot)
    expect(snaps()).toHaveLength(2);
    expect(jnl(), 'the segment holding the history is retired; pack.removed\'s segment stays').toHaveLength(1);
    expect(jnl()[0], 'pack.removed started the segment left').not.toBe(journalBefore[0]);
    const [older, newer] = snaps().map((n) => Number(n.split('.')[0]));
    expect(older, 'the older snapshot covers the new segment\'s first record').toBeGreaterThanOrEqual(Number(jnl()[0]!.split('.')[0]));
    expect(newer).toBeGreaterThan(older!);
    const reopened = await Store.open(dir);
    expect(reopened.health.degraded, reopened.health.findings.join('; ')).toBe(false);
    await expectExact(reopened, bodies, gone);
    await reopened.close();
    await expectExactAfterRebuild(dir, bodies, gone);
    // the newest snapshot damaged: the rebuild falls back to the older one and the journal after it
    const newest = join(dir, 'snapshots', snaps()[1]!);
    const bytes = readFileSync(newest);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(newest, bytes);
    rmSync(join(dir, 'index'), { recursive: true });
    const fallback = await Store.open(dir);
    try {
      expect(fallback.health.findings.join('; ')).toMatch(/rebuilt from the older snapshot/);
      await expectExact(fallback, bodies, gone);
    } finally {
      await fallback.close();
    }
  });

  it('with autoSnapshot off, a compaction leaves the journal alone', async () => {
    const dir = tmpDir('compact');
    const { store } = await churned(dir);
    await store.close();
    const quiet = await Store.open(dir, { autoSnapshot: false });
    const before = readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'));
    expect((await quiet.compact()).packsRemoved).toEqual([1]);
    await quiet.close();
    expect(readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl'))).toEqual(expect.arrayContaining(before));
    expect(existsSync(join(dir, 'snapshots')), 'no snapshot was taken').toBe(false);
  });
});

/** `churned` while the clock is `aheadMs` ahead; then NTP steps it back to the right time. */
/** compact() refuses (REFUSED, `why`), the index files are as they were and message 5 of M reads back; closes the store. */
async function expectRefusedUnchanged(dir: string, store: Store, bodies: Map<number, Buffer>, why: RegExp): Promise<void> {
  const print = fingerprint(dir, ['index']);
  const error = await expectCode(store.compact(), 'REFUSED');
  expect(error.message).toMatch(why);
  expect(fingerprint(dir, ['index'])).toEqual(print);
  expect((await store.fetch('M', 5)).equals(bodies.get(5)!)).toBe(true);
  await store.close();
}

async function churnedWithClockAhead(dir: string, aheadMs: number): Promise<Awaited<ReturnType<typeof churned>>> {
  const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + aheadMs);
  try {
    return await churned(dir);
  } finally {
    clock.mockRestore();
  }
}

/** Another store with `messages` messages in its pack 1, closed; that pack's bytes. */
async function otherStorePack(messages: number): Promise<{ other: string; foreignBytes: Buffer }> {
  const other = tmpDir('compact-other');
  const store = await Store.open(other, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 1; i <= messages; i++) await store.append('INBOX', body(100 + i, 3000, 9));
  await store.close();
  return { other, foreignBytes: readFileSync(join(other, 'packs', '00000001.pack')) };
}
