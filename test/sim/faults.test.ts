// Disk full, I/O errors and permissions, injected with FaultFS at every write point: the caller
// gets a typed error, nothing acknowledged is lost, the failed operation leaves nothing behind
// that a read trusts, the store keeps working once the condition clears, and a power cut right
// after all of it (every un-synced byte lost) still holds everything acknowledged.
import { describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
// every body in a pack: these scenarios count and fail the pack and journal writes of an append
// (helpers/packed.ts); the `inline` scenarios use the real default, a body inside its journal record
import { PackedStore as Store } from '../helpers/packed.js';
import { Store as InlineStore } from '../../src/store/store.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { FaultFileSystem, type Fault } from './faultfs.js';
import { retireOwnLock } from './explorer.js';
import { contents, expectCode, expectExactly, fingerprint, msg } from './helpers.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { internalsOf } from '../helpers/internals.js';
import { scrub } from '../../src/scrub/scrub.js';
import type { CommitChain } from '../../src/store/writer.js';
import { isDamage } from '../../src/scrub/findings.js';

/**
 * `chain`: an import's shape: CHAIN appendBatch calls of one chain submitted at once, each its own
 * writer batch, so the writer prepares the next while the one before syncs and writes its bodies
 * after the bytes being synced (writer.ts, "Pipelined"); a fault fails a suffix of them.
 */
type Op = 'append' | 'batch' | 'chain';

interface Scenario {
  op: Op;
  fault: 'ENOSPC' | 'shortWrite' | 'EIO';
  code: string;
  /** Tiny packs and journal segments: every commit creates files (create, header, directory fsync). */
  rotate: boolean;
  /** Inline bodies on (the default threshold): a small append writes its journal record only. */
  inline?: boolean;
  /**
   * How a lone inline append's record is flushed: `measured` (the default: FlushChoice, whose first
   * commits are in-thread, FileHandle.writevDurable) or `pool` (limits.journalInThreadFlushBytesMax 0).
   */
  flush?: 'measured' | 'pool';
}

const BATCH = 12;
const CHAIN = 3;

async function everyWritePoint(s: Scenario): Promise<{ points: number; failed: number; writtenAhead: number }> {
  const dir = tmpDir('faults');
  const init = await Store.open(dir, { create: true });
  await init.createMailbox('INBOX');
  await init.close();
  const ffs = new FaultFileSystem({ seed: 0xf00d });
  await ffs.startRecording(dir, { exclude: ['index'] });
  const options = s.rotate ? { packBytesMax: 1, journalSegmentBytesMax: 1 } : {};
  let store = await (s.inline ? InlineStore : Store).open(dir, { fs: ffs, ...options });
  // how often a batch's bodies were written while the batch before synced (chain)
  let writtenAhead = 0;
  const packs = internalsOf(store).packs;
  const writeAfter = packs.writeAfter.bind(packs);
  packs.writeAfter = (batch) => { writtenAhead++; return writeAfter(batch); };
  const acked = new Map<number, Buffer>();
  const failedHashes = new Set<string>();
  let counter = 0;
  const run = async () => {
    if (s.op === 'chain') return runChain();
    const items = Array.from({ length: s.op === 'append' ? 1 : s.rotate ? 5 : BATCH }, () => msg(`${s.op}-${counter++}`, counter % 3 === 0 ? 3000 : 10));
    try {
      const results = s.op === 'append' ? [await store.append('INBOX', items[0])] : await store.appendBatch('INBOX', items.map((bytes) => ({ bytes })));
      results.forEach((r, i) => acked.set(r.uid, items[i]));
      return undefined;
    } catch (error) {
      for (const bytes of items) failedHashes.add(hashBytes(bytes).toString('hex'));
      return error;
    }
  };
  // the batches of a chain commit in order: a fault fails the one it hits and every one after it
  const runChain = async () => {
    const groups = Array.from({ length: CHAIN }, () => Array.from({ length: s.rotate ? 2 : 4 }, () => msg(`chain-${counter++}`, counter % 3 === 0 ? 3000 : 10)));
    const chain: CommitChain = {};
    const outcomes = await Promise.allSettled(groups.map((items) => store.appendBatch('INBOX', items.map((bytes) => ({ bytes })), { chain })));
    const refused = outcomes.findIndex((o) => o.status === 'rejected');
    expect(outcomes.slice(refused < 0 ? CHAIN : refused).every((o) => o.status === 'rejected'), 'a batch after a refused one committed').toBe(true);
    outcomes.forEach((o, g) => {
      if (o.status === 'fulfilled') o.value.forEach((r, i) => acked.set(r.uid, groups[g]![i]!));
      else for (const bytes of groups[g]!) failedHashes.add(hashBytes(bytes).toString('hex'));
    });
    return refused < 0 ? undefined : (outcomes[refused] as PromiseRejectedResult).reason as unknown;
  };
  // how many mutating calls one operation makes
  const first = ffs.nextSeq;
  expect(await run()).toBeUndefined();
  const calls = ffs.nextSeq - first;
  let failed = 0;
  for (let k = 0; k < calls; k++) {
    const target = ffs.nextSeq + k;
    const fault: Fault = s.fault;
    const firedBefore = ffs.firedFaults().length;
    if (s.fault === 'shortWrite') ffs.injectAt((op) => op.seq !== undefined && op.seq >= target && op.kind === 'write', fault);
    else ffs.injectAt(target, fault);
    const error = await run();
    const fired = ffs.firedFaults().length > firedBefore;
    ffs.clear();
    if (fired) {
      failed++;
      expect(error, `${s.fault} at call ${k} of ${s.op}: ${ffs.firedFaults().at(-1)?.kind}`).toBeDefined();
      await expectCode(Promise.reject(error), s.code);
    } else {
      expect(error).toBeUndefined();
    }
    // the store keeps working: the next operation succeeds and everything acknowledged reads back
    expect(await run(), `the operation after a ${s.fault} at call ${k}`).toBeUndefined();
    if (k % 4 === 0) await expectExactly(store, 'INBOX', acked, `live after fault at call ${k}`);
  }
  await store.close();
  // a reopen with the real file system, and a power cut in which every un-synced byte is lost
  const crash = join(tmpDir('faults-crash'), 'store');
  const report = await ffs.materializeCrash(crash, ffs.logLength, 1, { mode: 'all-lost', indexMode: 'missing' });
  retireOwnLock(crash);
  for (const where of [dir, crash]) {
    store = await Store.open(where);
    try {
      expect(store.health.degraded, `${where}: ${store.health.findings.join('; ')}`).toBe(false);
      await expectExactly(store, 'INBOX', acked, `${s.op} ${s.fault} rotate=${s.rotate} after reopen of ${where === dir ? 'the live store' : `a power cut (${report.reproduce})`}`);
      for (const m of await contents(store, 'INBOX')) {
        expect(failedHashes.has(hashBytes(m[1]).toString('hex')) && !acked.has(m[0]), 'a failed operation left a message').toBe(false);
      }
      // the index and the journal agree and no message refers to damage: a failed operation left
      // no record behind that a rebuild would apply (a pack fdatasync that failed beside a good
      // journal flush once did, hidden here when the retry reused the same uids)
      const findings = (await scrub(store)).findings.filter(isDamage);
      expect(findings, `${s.op} ${s.fault} rotate=${s.rotate}: ${JSON.stringify(findings)}`).toEqual([]);
      // writes go on after recovery, above every uid acknowledged
      const after = await store.append('INBOX', msg(`after-${where}`));
      expect(after.uid).toBeGreaterThan(Math.max(0, ...acked.keys()));
    } finally {
      await store.close();
    }
  }
  return { points: calls, failed, writtenAhead };
}

describe('disk full and I/O errors at every write point', () => {
  const scenarios: Scenario[] = [];
  for (const op of ['append', 'batch', 'chain'] as const) {
    for (const rotate of [false, true]) {
      for (const inline of op === 'append' ? [false, true] : [false]) {
        for (const flush of inline ? ['measured', 'pool'] as const : [undefined]) {
          scenarios.push({ op, fault: 'ENOSPC', code: 'NO_SPACE', rotate, inline, flush });
          scenarios.push({ op, fault: 'shortWrite', code: 'NO_SPACE', rotate, inline, flush });
          scenarios.push({ op, fault: 'EIO', code: 'IO', rotate, inline, flush });
        }
      }
    }
  }
  for (const s of scenarios) {
    const what = s.op === 'append' ? `an append${s.inline ? ` with inline bodies (flush: ${s.flush})` : ''}` : s.op === 'batch' ? `a batch import of ${BATCH}` : `an import's ${CHAIN} chained batches (pipelined)`;
    it(`${s.fault} in ${what}${s.rotate ? ' that creates new packs and segments' : ''} → ${s.code}, nothing lost, writes resume`, async () => {
      const saved = { ...limits };
      if (s.flush === 'pool') limits.journalInThreadFlushBytesMax = 0;
      if (s.op === 'chain') limits.batchBlobBytesMax = 1; // one appendBatch a writer batch, as an import's 4 MiB batches
      let points: number, failed: number, writtenAhead: number;
      try {
        ({ points, failed, writtenAhead } = await everyWritePoint(s));
      } finally {
        Object.assign(limits, saved);
      }
      // an inline append writes its journal record and syncs it (a new segment: create, directory fsync too)
      expect(points).toBeGreaterThanOrEqual(s.inline ? (s.rotate ? 4 : 2) : s.rotate ? 7 : 4);
      expect(failed).toBeGreaterThan(0);
      // in one pack, the chain's batches were written ahead (with a pack a batch, never)
      if (s.op === 'chain' && !s.rotate) expect(writtenAhead).toBeGreaterThan(points);
    });
  }

  it('a failed directory fsync of a new pack is retried: a power cut after the next append keeps it', async () => {
    const dir = tmpDir('faults');
    const init = await Store.open(dir, { create: true });
    await init.createMailbox('INBOX');
    await init.close();
    for (const where of ['packs', 'journal']) {
      const ffs = new FaultFileSystem({ seed: 3 });
      await ffs.startRecording(dir, { exclude: ['index'] });
      const store = await Store.open(dir, { fs: ffs, packBytesMax: 64 * 1024 });
      const acked = new Map<number, Buffer>();
      for await (const m of store.messages('INBOX')) acked.set(m.uid, await store.fetch('INBOX', m.uid));
      // the next append needs a new pack (or, for the journal, a new segment after reopen)
      (internalsOf(store).packs as unknown as { mustRotate: boolean }).mustRotate = true;
      (internalsOf(store).journal as unknown as { startNewSegment: boolean }).startNewSegment = true;
      ffs.injectAt((op) => op.kind === 'syncDir' && op.path === join(dir, where), 'EIO');
      await expectCode(store.append('INBOX', msg(`lost-${where}`)), 'IO');
      const kept = await store.append('INBOX', msg(`kept-${where}`));
      acked.set(kept.uid, msg(`kept-${where}`));
      await store.close();
      const crash = join(tmpDir('faults-crash'), 'store');
      await ffs.materializeCrash(crash, ffs.logLength, 1, { mode: 'all-lost', indexMode: 'missing' });
      retireOwnLock(crash);
      const reopened = await Store.open(crash);
      await expectExactly(reopened, 'INBOX', acked, `power cut after a failed ${where}/ fsync and a good append`);
      await reopened.close();
    }
  });

  it('a full disk that stays full: every write fails NO_SPACE, reads work, writes resume after space is freed', async () => {
    const dir = tmpDir('faults');
    const ffs = new FaultFileSystem({ seed: 7 });
    let store = await Store.open(dir, { create: true, fs: ffs, packBytesMax: 4096, journalSegmentBytesMax: 2048 });
    await store.createMailbox('INBOX');
    const acked = new Map<number, Buffer>();
    for (let i = 0; i < 10; i++) acked.set((await store.append('INBOX', msg(i, 500))).uid, msg(i, 500));
    ffs.failAll('ENOSPC');
    for (let i = 0; i < 10; i++) await expectCode(store.append('INBOX', msg(`full-${i}`, 800)), 'NO_SPACE');
    await expectCode(store.setFlags('INBOX', [1, 2], { add: ['\\Seen'] }).then((r) => { if (r.updated.length) throw new Error('flags changed on a full disk'); }), 'NO_SPACE');
    await expectCode(store.createMailbox('Other'), 'NO_SPACE');
    await expectExactly(store, 'INBOX', acked, 'reads on a full disk');
    ffs.clear();
    for (let i = 0; i < 5; i++) acked.set((await store.append('INBOX', msg(`freed-${i}`, 800))).uid, msg(`freed-${i}`, 800));
    await store.close();
    store = await Store.open(dir);
    expect(store.health.degraded).toBe(false);
    await expectExactly(store, 'INBOX', acked, 'after reopen');
    await store.close();
  });
});

describe('permissions (EACCES)', () => {
  it('at open: STORE or LOCK unreadable/uncreatable → ACCESS naming the path; nothing changes', async () => {
    const dir = tmpDir('perm');
    const init = await Store.open(dir, { create: true });
    await init.close();
    const before = fingerprint(dir);
    for (const [ops, prefix] of [[['read'], 'STORE'], [['create'], 'LOCK'], [['read'], 'packs/STORE-ID']] as const) {
      const ffs = new FaultFileSystem();
      ffs.failAll('EACCES', { ops: [...ops], pathPrefix: join(dir, prefix) });
      const error = await expectCode(Store.open(dir, { fs: ffs }), 'ACCESS');
      expect(error.path).toBe(join(dir, prefix));
      expect(error.message).toContain(join(dir, prefix));
      expect(fingerprint(dir)).toEqual(before);
    }
  });

  for (const where of ['packs', 'journal'] as const) {
    it(`at runtime: ${where}/ loses its write bit → writes fail ACCESS, reads work, nothing lost, writes resume`, async () => {
      const dir = tmpDir('perm');
      const ffs = new FaultFileSystem();
      // tiny files so that every commit must create a new pack or segment
      let store = await Store.open(dir, { create: true, fs: ffs, packBytesMax: 1, journalSegmentBytesMax: 1 });
      await store.createMailbox('INBOX');
      const acked = new Map<number, Buffer>();
      for (let i = 0; i < 5; i++) acked.set((await store.append('INBOX', msg(i))).uid, msg(i));
      ffs.failAll('EACCES', { pathPrefix: join(dir, where) });
      for (let i = 0; i < 3; i++) await expectCode(store.append('INBOX', msg(`denied-${i}`)), 'ACCESS');
      await expectExactly(store, 'INBOX', acked, 'reads while denied');
      expect((await store.status('INBOX')).messages).toBe(5);
      ffs.clear();
      for (let i = 0; i < 3; i++) acked.set((await store.append('INBOX', msg(`back-${i}`))).uid, msg(`back-${i}`));
      await store.close();
      store = await Store.open(dir);
      expect(store.health.degraded).toBe(false);
      await expectExactly(store, 'INBOX', acked, 'after reopen');
      await store.close();
    });
  }
});

describe('permissions (EACCES) on reopening the journal tail', () => {
  it('the first append after open cannot open the segment for writing → ACCESS, and the next append works (not CLOSED)', async () => {
    const dir = tmpDir('perm');
    const init = await Store.open(dir, { create: true });
    await init.createMailbox('INBOX');
    await init.close();
    const ffs = new FaultFileSystem();
    const store = await Store.open(dir, { fs: ffs });
    ffs.failAll('EACCES', { ops: ['open'], pathPrefix: join(dir, 'journal') });
    await expectCode(store.append('INBOX', msg('denied')), 'ACCESS');
    ffs.clear();
    const ok = await store.append('INBOX', msg('ok'));
    expect(ok.uid).toBe(1);
    await store.close();
  });
});

describe('missing partition (UNMOUNTED): nothing is created, deleted or truncated', () => {
  it('the root device id changes under a running store → UNMOUNTED before any new pack or segment', async () => {
    const dir = tmpDir('unmounted');
    const ffs = new FaultFileSystem();
    let swapped = false;
    const real = ffs.stat.bind(ffs);
    const realIfExists = ffs.statIfExists.bind(ffs);
    const fakeDev = <T extends { dev: number } | undefined>(path: string, s: T): T => (swapped && path === dir && s ? { ...s, dev: s.dev + 1 } : s);
    ffs.stat = async (path) => fakeDev(path, await real(path));
    ffs.statIfExists = async (path) => fakeDev(path, await realIfExists(path));
    const store = await Store.open(dir, { create: true, fs: ffs, packBytesMax: 1, journalSegmentBytesMax: 1 });
    await store.createMailbox('INBOX');
    const first = await store.append('INBOX', msg(1));
    const before = fingerprint(dir, ['index', 'LOCK']);
    swapped = true; // as after `umount -l`: the path now resolves to another file system
    await expectCode(store.append('INBOX', msg(2)), 'UNMOUNTED');
    await expectCode(store.append('INBOX', msg(3)), 'UNMOUNTED');
    expect(fingerprint(dir, ['index', 'LOCK'])).toEqual(before);
    expect((await store.fetch('INBOX', first.uid)).equals(msg(1))).toBe(true);
    await store.close();
  });

  it('STORE missing, STORE foreign, a marker foreign, packs/ emptied while the index refers to blobs', async () => {
    const dir = tmpDir('unmounted');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.close();
    const other = tmpDir('other');
    await (await Store.open(other, { create: true })).close();
    const swap = async (rel: string, from: string, action: () => Promise<void>) => {
      const saved = join(tmpDir('saved'), 'x');
      await fsp.rename(join(dir, rel), saved).catch(() => undefined);
      await action();
      // packs/ emptied is found by asking the index, and LevelDB's open compacts its own log inside
      // index/ (derived; same content): every other byte must stay as it was
      const skip = from === 'empty' ? ['index'] : [];
      const before = fingerprint(dir, skip);
      await expectCode(Store.open(dir), 'UNMOUNTED');
      // with create: a STORE-less directory that holds data is refused too (INVALID: not empty)
      await expectCode(Store.open(dir, { create: true }), rel === 'STORE' && from === 'missing' ? 'INVALID' : 'UNMOUNTED');
      expect(fingerprint(dir, skip), `nothing changed (${rel})`).toEqual(before);
      await fsp.rm(join(dir, rel), { recursive: true, force: true });
      await fsp.rename(saved, join(dir, rel));
    };
    await swap('STORE', 'missing', async () => undefined);
    await swap('STORE', 'foreign', () => fsp.copyFile(join(other, 'STORE'), join(dir, 'STORE')));
    await swap('journal', 'foreign', () => fsp.cp(join(other, 'journal'), join(dir, 'journal'), { recursive: true }));
    // packs/ as an empty mount point with only its marker: the index still refers to blobs
    await swap('packs', 'empty', async () => {
      await fsp.mkdir(join(dir, 'packs'));
      await fsp.copyFile(join(other, 'packs', 'STORE-ID'), join(dir, 'packs', 'STORE-ID'));
      await fsp.writeFile(join(dir, 'packs', 'STORE-ID'), (await fsp.readFile(join(dir, 'journal', 'STORE-ID'))));
    });
    const reopened = await Store.open(dir);
    expect((await reopened.status('INBOX')).messages).toBe(1);
    await reopened.close();
  });
});
