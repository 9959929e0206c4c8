// The pipelined writer (src/store/writer.ts, "Pipelined"): an import's next batch is prepared
// while the batch before it syncs, over that batch's pending index changes and after its pack
// bytes, and is written only once that batch committed. These tests show that it happens (and
// does not without limits.writerPipelined), that what it prepared is what a serial writer would
// have written (uids, dedup against the batch before, bytes read back, a reopen), that a mutation
// outside the chain is never prepared ahead, and that when the batch before fails its fdatasync,
// the one prepared ahead is refused with the same error and nothing of it is written.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Store, type AppendResult } from '../../src/store/store.js';
import type { CommitChain } from '../../src/store/writer.js';
import { PACKED } from '../helpers/packed.js';
import { internalsOf } from '../helpers/internals.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { FaultFileSystem, type OpInfo } from '../sim/faultfs.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { expectCode, msg } from '../sim/helpers.js';
import { hashBytes } from '../../src/hash/blake3.js';

const saved = { ...limits };
afterEach(() => {
  Object.assign(limits, saved);
  vi.restoreAllMocks();
});

type Event = 'prepare' | 'prepare-ahead' | 'sync-start' | 'sync-end';

/** Records the writer's prepares and the pack fdatasyncs (each held back 20 ms, so a prepare can land inside one). */
function watch(store: Store): Event[] {
  const events: Event[] = [];
  const writer = (store as unknown as { writer: { prepareBatch(batch: unknown[], after?: unknown): unknown } }).writer;
  const prepareBatch = writer.prepareBatch.bind(writer);
  vi.spyOn(writer, 'prepareBatch').mockImplementation((batch, after) => {
    events.push(after === undefined ? 'prepare' : 'prepare-ahead');
    return prepareBatch(batch, after);
  });
  const packs = internalsOf(store).packs;
  const sync = packs.sync.bind(packs);
  vi.spyOn(packs, 'sync').mockImplementation(async () => {
    const pending = (packs as unknown as { pending?: unknown }).pending;
    if (!pending) return sync(); // nothing written: no fdatasync
    events.push('sync-start');
    await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      return await sync();
    } finally {
      events.push('sync-end');
    }
  });
  return events;
}

/** Three chained batches of 4 messages (batch 2 repeats one of batch 1's bodies), submitted at once as an import does. */
function batches(): Buffer[][] {
  const all = Array.from({ length: 12 }, (_, i) => msg(`pipelined-${i}`, 2000 + i * 100));
  all[5] = all[1]; // a body of the batch before: deduplicated against its not yet durable copy
  return [all.slice(0, 4), all.slice(4, 8), all.slice(8, 12)];
}

async function importChained(store: Store, groups: Buffer[][]): Promise<AppendResult[][]> {
  const chain: CommitChain = {};
  return Promise.all(groups.map((items) => store.appendBatch('INBOX', items.map((bytes) => ({ bytes })), { chain })));
}

async function bodies(store: Store): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for await (const m of store.readMessages('INBOX')) out.set(m.info.uid, m.body);
  return out;
}

async function openStore(): Promise<{ dir: string; store: Store }> {
  const dir = tmpDir('pipelined');
  const store = await Store.open(dir, { create: true, ...PACKED });
  await store.createMailbox('INBOX');
  await store.append('INBOX', msg('first'));
  return { dir, store };
}

/** A store holding one message, reopened on FaultFS (recording from now). */
async function onFaultFs(name: string): Promise<{ dir: string; ffs: FaultFileSystem; store: Store }> {
  const dir = tmpDir(name);
  const init = await Store.open(dir, { create: true, ...PACKED });
  await init.createMailbox('INBOX');
  await init.append('INBOX', msg('first'));
  await init.close();
  const ffs = new FaultFileSystem({ seed: 20 });
  await ffs.startRecording(dir, { exclude: ['index'] });
  return { dir, ffs, store: await Store.open(dir, { fs: ffs, ...PACKED }) };
}

describe('the pipelined writer', () => {
  for (const pipelined of [true, false]) {
    it(`${pipelined ? 'prepares an import\'s next batch while the one before it syncs' : 'limits.writerPipelined false: one batch after the other'}; uids, dedup and bytes as a serial writer's, also after a reopen`, async () => {
      limits.writerPipelined = pipelined;
      limits.batchBlobBytesMax = 1; // one appendBatch a writer batch, as an import's 4 MiB batches
      const { dir, store } = await openStore();
      const events = watch(store);
      const groups = batches();
      const results = await importChained(store, groups);
      const firstEnd = events.indexOf('sync-end');
      if (pipelined) {
        expect(events.filter((e) => e === 'prepare-ahead')).toHaveLength(2);
        // batch 2 was prepared after batch 1's fdatasync started and before it ended
        expect(events.indexOf('prepare-ahead')).toBeGreaterThan(events.indexOf('sync-start'));
        expect(events.indexOf('prepare-ahead')).toBeLessThan(firstEnd);
      } else {
        expect(events).not.toContain('prepare-ahead');
        expect(events.indexOf('prepare', firstEnd)).toBeGreaterThan(firstEnd);
      }
      expect(results.flat().map((r) => r.uid)).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
      expect(results[1][1].deduplicated).toBe(true);
      expect(results[1][1].hash).toBe(results[0][1].hash);
      expect(results.flat().filter((r) => r.deduplicated)).toHaveLength(1);
      const expected = new Map(groups.flat().map((bytes, i) => [i + 2, bytes]));
      expected.set(1, msg('first'));
      expect(await bodies(store)).toEqual(expected);
      const status = await store.status('INBOX');
      expect(status.messages).toBe(13);
      expect(status.uidNext).toBe(14);
      await store.close();
      const reopened = await Store.open(dir);
      expect(await bodies(reopened)).toEqual(expected);
      const after = await reopened.append('INBOX', groups[0][1]); // the blob entry of batch 1 landed: dedup
      expect(after).toMatchObject({ uid: 14, deduplicated: true });
      await reopened.close();
    });
  }

  it('a mutation outside the chain queued next is not prepared ahead; it commits after the batch before, in order', async () => {
    limits.batchBlobBytesMax = 1;
    const { store } = await openStore();
    const events = watch(store);
    const chain: CommitChain = {};
    const [one, plain, two] = batches();
    const results = await Promise.all([
      store.appendBatch('INBOX', one.map((bytes) => ({ bytes })), { chain }),
      store.appendBatch('INBOX', plain.map((bytes) => ({ bytes }))),
      store.appendBatch('INBOX', two.map((bytes) => ({ bytes })), { chain }),
    ]);
    expect(events).not.toContain('prepare-ahead');
    expect(results.flat().map((r) => r.uid)).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
    await store.close();
  });

  const faults = [
    { where: "batch 1's pack fdatasync", fault: 'EIO', code: 'IO', kept: 0, match: (op: OpInfo) => op.kind === 'sync' && op.path.includes('/packs/') },
    { where: "batch 1's journal fdatasync", fault: 'EIO', code: 'IO', kept: 0, match: (op: OpInfo) => op.kind === 'sync' && op.path.includes('/journal/') },
    { where: "batch 2's pack write while batch 1 syncs", fault: 'ENOSPC', code: 'NO_SPACE', kept: 1, match: (op: OpInfo, writes: number) => op.kind === 'write' && op.path.includes('/packs/') && writes === 2 },
  ] as const;
  for (const f of faults) {
    it(`${f.fault} in ${f.where}: ${f.kept ? 'batch 1 commits, ' : ''}the batches after are refused with the same error, none of their bodies stays in the pack, writes resume`, async () => {
      limits.batchBlobBytesMax = 1;
      const { dir, ffs, store } = await onFaultFs('pipelined-fault');
      const events = watch(store);
      const packs = internalsOf(store).packs;
      const writeAfter = vi.spyOn(packs, 'writeAfter');
      let packWrites = 0;
      ffs.injectAt((op) => {
        if (op.kind === 'write' && op.path.includes('/packs/')) packWrites++;
        return f.match(op, packWrites);
      }, f.fault);
      const groups = batches();
      const chain: CommitChain = {};
      const outcomes = await Promise.allSettled(groups.map((items) => store.appendBatch('INBOX', items.map((bytes) => ({ bytes })), { chain })));
      expect(ffs.firedFaults()).toHaveLength(1);
      expect(events).toContain('prepare-ahead'); // batch 2 was prepared while batch 1 synced
      expect(writeAfter).toHaveBeenCalled(); // and its bodies written after batch 1's bytes meanwhile
      expect(outcomes.slice(0, f.kept).every((o) => o.status === 'fulfilled')).toBe(true);
      const errors = outcomes.slice(f.kept).map((o) => (o.status === 'rejected' ? o.reason : undefined));
      for (const error of errors) await expectCode(Promise.reject(error), f.code);
      for (const error of errors) expect(error).toBe(errors[0]);
      ffs.clear();
      // nothing of the refused batches is there; the next append takes the next uid and reads back
      const kept = await store.append('INBOX', msg('kept', 3000));
      const expected = new Map([[1, msg('first')]]);
      groups.slice(0, f.kept).flat().forEach((bytes, i) => expected.set(i + 2, bytes));
      expect(kept.uid).toBe(expected.size + 1);
      expected.set(kept.uid, msg('kept', 3000));
      expect(await bodies(store)).toEqual(expected);
      await store.close();
      // the bodies only the refused batches held are not in any pack (a refused batch's own were cut)
      const packBytes = Buffer.concat(readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).map((n) => readFileSync(join(dir, 'packs', n))));
      for (const bytes of groups.slice(Math.max(1, f.kept)).flat().filter((b) => !groups[0].includes(b))) {
        expect(packBytes.includes(bytes), 'a refused batch body left in a pack').toBe(false);
      }
      const reopened = await Store.open(dir);
      expect(await bodies(reopened)).toEqual(expected);
      // no blob entry of the refused batches survived: their bodies are written anew, not deduplicated
      const again = await reopened.appendBatch('INBOX', [groups[1][0], groups[2][3]].map((bytes) => ({ bytes })));
      expect(again.map((r) => r.deduplicated)).toEqual([false, false]);
      expect(again[0].hash).toBe(hashBytes(groups[1][0]).toString('hex'));
      // the index and the journal agree (a batch whose pack flush failed left no record behind);
      // bodies a failed batch had synced before its journal failed are dead bytes, nothing more
      const findings = (await scrub(reopened)).findings.filter((x) => x.kind !== 'unreferenced-pack-record');
      expect(findings, JSON.stringify(findings)).toEqual([]);
      await reopened.close();
    });
  }

  const cutFails = [
    { where: "batch 1's pack fdatasync (EIO)", fault: 'EIO', code: 'IO', kept: 0, truncates: 2, match: (op: OpInfo) => op.kind === 'sync' && op.path.includes('/packs/') },
    { where: "batch 2's pack write while batch 1 syncs (ENOSPC)", fault: 'ENOSPC', code: 'NO_SPACE', kept: 1, truncates: 1, match: (op: OpInfo, writes: number) => op.kind === 'write' && op.path.includes('/packs/') && writes === 2 },
  ] as const;
  for (const f of cutFails) {
    it(`${f.where}, and every pack truncate after it failing (EIO): the bytes that could not be cut are never written over, the next batch starts a new pack; nothing refused reads back, nothing acknowledged is lost`, async () => {
      limits.batchBlobBytesMax = 1;
      const { dir, ffs, store } = await onFaultFs('pipelined-cut-fails');
      const events = watch(store);
      const writeAfter = vi.spyOn(internalsOf(store).packs, 'writeAfter');
      const packFiles = () => readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).sort();
      const before = packFiles();
      let packWrites = 0;
      ffs.injectAt((op) => {
        if (op.kind === 'write' && op.path.includes('/packs/')) packWrites++;
        return f.match(op, packWrites);
      }, f.fault);
      ffs.injectAt((op) => op.kind === 'truncate' && op.path.includes('/packs/'), 'EIO', { times: 100 });
      const groups = batches();
      const chain: CommitChain = {};
      const outcomes = await Promise.allSettled(groups.map((items) => store.appendBatch('INBOX', items.map((bytes) => ({ bytes })), { chain })));
      expect(events).toContain('prepare-ahead');
      expect(writeAfter).toHaveBeenCalled();
      // the cuts failed: of batch 1's bytes and of what batch 2 wrote ahead, or of batch 2's alone
      expect(ffs.firedFaults().filter((x) => x.kind === 'truncate')).toHaveLength(f.truncates);
      expect(outcomes.slice(0, f.kept).every((o) => o.status === 'fulfilled')).toBe(true);
      for (const o of outcomes.slice(f.kept)) await expectCode(o.status === 'rejected' ? Promise.reject(o.reason) : Promise.resolve(o.value), f.code);
      ffs.clear();
      const expected = new Map([[1, msg('first')]]);
      groups.slice(0, f.kept).flat().forEach((bytes, i) => expected.set(i + 2, bytes));
      const kept = await store.appendBatch('INBOX', [msg('kept-1', 3000), msg('kept-2', 3100)].map((bytes) => ({ bytes })));
      expect(kept.map((r) => r.uid)).toEqual([expected.size + 1, expected.size + 2]);
      expect(packFiles()).toHaveLength(before.length + 1);
      expected.set(kept[0].uid, msg('kept-1', 3000)).set(kept[1].uid, msg('kept-2', 3100));
      expect(await bodies(store)).toEqual(expected);
      await store.close();
      for (const [reopen, refused] of [['index kept', groups[1][0]], ['index lost', groups[2][0]]] as const) {
        if (reopen === 'index lost') rmSync(join(dir, 'index'), { recursive: true, force: true });
        const reopened = await Store.open(dir);
        expect(await bodies(reopened), reopen).toEqual(expected);
        // no blob entry of a refused batch: its bodies are written anew, not deduplicated against dead bytes
        const again = await reopened.append('INBOX', refused);
        expect(again.deduplicated, reopen).toBe(false);
        const damage = (await scrub(reopened)).findings.filter((x) => isDamage(x));
        expect(damage, `${reopen}: ${JSON.stringify(damage)}`).toEqual([]);
        await reopened.close();
        expected.set(again.uid, refused);
      }
    });
  }

  it('one batch, no pipeline: EIO on the pack fdatasync while the journal flush succeeds takes the record back; a rebuild from the journal (index lost) finds nothing of it', async () => {
    const { dir, ffs, store } = await onFaultFs('pack-eio-journal-ok');
    ffs.injectAt((op) => op.kind === 'sync' && op.path.includes('/packs/'), 'EIO');
    const lost = batches()[0];
    await expectCode(store.appendBatch('INBOX', lost.map((bytes) => ({ bytes }))), 'IO');
    expect(ffs.firedFaults()).toHaveLength(1);
    ffs.clear();
    const kept = await store.append('INBOX', msg('kept', 3000));
    expect(kept.uid).toBe(2);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(dir);
    expect(await bodies(rebuilt)).toEqual(new Map([[1, msg('first')], [2, msg('kept', 3000)]]));
    const findings = (await scrub(rebuilt)).findings;
    expect(findings, JSON.stringify(findings)).toEqual([]);
    await rebuilt.close();
  });
});
