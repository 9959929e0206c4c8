// Snapshots and journal retirement under crashes and faults (FaultFS): every crash point inside a
// snapshot (temp file, rename, cursor, pruning an older snapshot) and the retirement after it, in
// all-lost mode and one other mode in turn, with the index lost, reopens to exactly the store's state, not degraded, scrub
// clean; ENOSPC or EIO at any step of a snapshot fails it with its code and leaves the store
// whole (nothing retired that no durable snapshot covers).
import { describe, expect, it } from 'vitest';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { FaultFileSystem, type CrashMode } from './faultfs.js';
import { fastTmpRoot, retireOwnLock } from './explorer.js';
import { dumpStore } from './model.js';

// Bodies in packs: a crash state of the last snapshot may keep the index at close, which holds only
// if the snapshot writes no journal record; with inline bodies its retirement first moves them into
// a pack (one record, after the crash points before it): crash-explorer-inline covers that.
const OPTIONS = { journalSegmentBytesMax: 1024, packBytesMax: 16 * 1024, autoSnapshot: false, inlineBodyBytesMax: 0 } as const;
const msg = (i: number) => Buffer.from(`From: s@example.org\r\nSubject: ${i}\r\n\r\n${'body '.repeat(10 + (i % 40))}\r\n`);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function churn(store: Store, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const { uid } = await store.append(i % 2 ? 'INBOX' : 'Sent', msg(i), { flags: i % 3 ? [] : ['\\Seen'] });
    if (i % 3 !== 0) await store.expunge(i % 2 ? 'INBOX' : 'Sent', [uid]);
  }
}

/** A store on FaultFS with history, one snapshot taken; recording from before the second. */
async function prepared(work: string, seed: number): Promise<{ ffs: FaultFileSystem; dir: string; store: Store }> {
  const dir = join(work, 'store');
  const ffs = new FaultFileSystem({ seed });
  const init = await Store.open(dir, { create: true, ...OPTIONS });
  await init.createMailbox('INBOX');
  await init.createMailbox('Sent');
  await churn(init, 1, 30);
  await init.snapshot();
  await churn(init, 100, 30);
  await init.close();
  await ffs.startRecording(dir, { exclude: ['index'] });
  return { ffs, dir, store: await Store.open(dir, { fs: ffs, ...OPTIONS }) };
}

describe('snapshots and retirement under crashes', () => {
  it('every crash point of a snapshot with pruning and retirement recovers the exact state, index lost or kept', async () => {
    const work = await fsp.mkdtemp(join(fastTmpRoot(), 'snapshot-crash-'));
    try {
      const { ffs, dir, store } = await prepared(work, 0x5a9);
      const expected = await dumpStore(store);
      const firstFrom = ffs.logLength;
      const first = await store.snapshot(); // the second generation: retires below the first
      const second = await store.snapshot(); // same seq: reused, verified, nothing new
      expect(second.reused).toBe(true);
      const firstTo = ffs.logLength;
      await churn(store, 200, 20);
      const expectedAfter = await dumpStore(store);
      const thirdFrom = ffs.logLength;
      const third = await store.snapshot(); // prunes the oldest, retires up to `first`
      expect(third.removedSnapshots.length).toBe(1);
      expect(first.retired.segments.length + third.retired.segments.length).toBeGreaterThan(0);
      await store.close();
      const modes: CrashMode[] = ['all-lost', 'all-kept', 'data-lost', 'random'];
      const points = [...range(firstFrom, firstTo).map((p) => [p, expected] as const), ...range(thirdFrom, ffs.logLength).map((p) => [p, expectedAfter] as const)];
      let states = 0;
      for (const [i, [afterOp, want]] of points.entries()) {
        // 'all-lost' (every un-synced write and name gone) at every point, and one other mode in turn
        for (const mode of ['all-lost', modes[1 + (i % 3)]] as CrashMode[]) {
          const target = await fsp.mkdtemp(join(work, 'state-'));
          // The index at close is the state after the last op: a crash state of the last snapshot may keep it.
          const indexMode = afterOp >= thirdFrom && states % 2 === 1 ? 'current' : 'missing';
          const report = await ffs.materializeCrash(target, afterOp, 0x77 + afterOp, { mode, indexMode, indexSource: dir });
          retireOwnLock(target);
          const reopened = await Store.open(target, OPTIONS);
          try {
            const where = `${report.reproduce} index=${indexMode}`;
            expect(reopened.health.degraded, `${where}: ${reopened.health.findings.join('; ')}`).toBe(false);
            expect(await dumpStore(reopened), where).toBe(want);
            const found = (await scrub(reopened)).findings.filter((f) => f.kind !== 'unreferenced-blob' && f.kind !== 'unreferenced-pack-record');
            expect(found, where).toEqual([]);
          } finally {
            await reopened.close();
          }
          await fsp.rm(target, { recursive: true, force: true });
          states++;
        }
      }
      console.info(`snapshot crash points: ${points.length} (${firstTo - firstFrom + 1} in the first snapshots, ${ffs.logLength - thirdFrom + 1} in the pruning one), ${states} states`);
      expect(states).toBe(points.length * 2);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }, 600_000);

  it('ENOSPC or EIO at each step of a snapshot fails it with that code; the store stays whole and the next snapshot succeeds', async () => {
    const work = await fsp.mkdtemp(join(fastTmpRoot(), 'snapshot-fault-'));
    try {
      const { ffs, dir, store } = await prepared(work, 0x5aa);
      await churn(store, 300, 30);
      const expected = await dumpStore(store);
      // How many mutating calls one snapshot makes: a dry run on a copy of the same store.
      const start = ffs.nextSeq;
      await store.snapshot();
      const calls = ffs.nextSeq - start;
      expect(calls).toBeGreaterThan(4);
      await store.close();
      let failures = 0;
      for (let k = 0; k < calls; k++) {
        for (const fault of ['ENOSPC', 'EIO'] as const) {
          const copy = await fsp.mkdtemp(join(work, 'copy-'));
          await fsp.cp(dir, copy, { recursive: true });
          const local = new FaultFileSystem({ seed: 1 });
          const s = await Store.open(copy, { fs: local, ...OPTIONS });
          await churn(s, 400 + k, 1);
          const want = await dumpStore(s);
          local.injectAt(local.nextSeq + k, fault);
          let code: string | undefined;
          try {
            await s.snapshot();
          } catch (error) {
            expect(error).toBeInstanceOf(MailstoreError);
            code = (error as MailstoreError).code;
          }
          if (code !== undefined) {
            failures++;
            expect(code, `fault ${fault} at call ${k}`).toBe(fault === 'ENOSPC' ? 'NO_SPACE' : 'IO');
          }
          local.clear();
          expect(await dumpStore(s)).toBe(want);
          await s.snapshot();
          await s.close();
          const reopened = await Store.open(copy, OPTIONS);
          expect(reopened.health.degraded).toBe(false);
          expect(await dumpStore(reopened)).toBe(want);
          await reopened.close();
          await fsp.rm(copy, { recursive: true, force: true });
        }
      }
      console.info(`snapshot faults: ${calls} mutating calls, ${failures} of ${calls * 2} injected faults failed the snapshot`);
      expect(failures).toBeGreaterThan(calls / 2);
      expect(expected).toBeTruthy();
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }, 600_000);
});
