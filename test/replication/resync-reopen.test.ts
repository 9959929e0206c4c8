// A replica's resync swap (Store.installResync: the index closed, replaced by the staged one, opened)
// and an index reopen in place (index-log.ts: the same directory closed and opened to roll LevelDB's
// LOG) both close the index: the swap starting while a reopen waits inside LevelDB's close must
// wait for it, then swap, and the replica follows its primary with nothing lost.
import { describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { IndexDb } from '../../src/index/index-db.js';
import { levelClass } from '../../src/index/level-module.js';
import { limits } from '../../src/limits.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { closeReplication, keyFile, logicalState, msg, quiet, until } from './helpers.js';

const small = { packBytesMax: 256 * 1024, journalSegmentBytesMax: 16 * 1024, autoSnapshot: false };

type Internals = { maybeRollIndexLog(): void; installResync(staged: unknown): Promise<void>; failure?: unknown; db: IndexDb };

/** A primary whose journal's start is retired (two snapshots), listening: a new replica of it resyncs. */
async function primaryToResyncFrom() {
  const key = keyFile();
  const primaryStore = await Store.open(tmpDir('primary'), { create: true, ...small });
  await primaryStore.createMailbox('INBOX');
  for (let i = 0; i < 60; i++) await primaryStore.append('INBOX', msg(i, 300));
  await primaryStore.snapshot();
  await primaryStore.append('INBOX', msg(-1));
  await primaryStore.snapshot();
  expect(primaryStore.changes.firstSeq).toBeGreaterThan(1);
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  return { key, primaryStore, primary };
}

/** Rounds go on after the resync and the reopen: the replica takes one more and is its primary's copy, unstopped and clean. */
async function expectFollowing(replica: Store, primaryStore: Store): Promise<void> {
  await primaryStore.append('INBOX', msg(9999));
  await until(() => replica.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'a round after the resync');
  expect((replica as unknown as Internals).failure).toBeUndefined();
  expect(replica.health.findings).toEqual([]);
  expect(await logicalState(replica)).toEqual(await logicalState(primaryStore));
  expect((await replica.fetch('INBOX', 1)).equals(msg(0, 300))).toBe(true);
}

describe('a resync swap and an index reopen', () => {
  it('a resync whose swap starts while the replica\'s index reopen waits in LevelDB\'s close: the swap waits, then installs; the replica follows its primary, identical, with no failure', async () => {
    const { key, primaryStore, primary } = await primaryToResyncFrom();
    const r = join(tmpDir('replica'), 'r');
    const Level = await levelClass();
    const close = Level.prototype.close;
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const order: string[] = [];
    // the replica's reopen waits inside LevelDB's close until the swap has started
    const closing = vi.spyOn(Level.prototype, 'close').mockImplementation(async function (this: InstanceType<typeof Level>, ...args: unknown[]) {
      if (this.location === join(r, 'index') && order.length === 0) {
        order.push('reopen waits in close');
        await released;
      }
      return (close as (...a: unknown[]) => Promise<void>).apply(this, args);
    } as typeof close);
    const install = (Store.prototype as unknown as Internals).installResync;
    const installing = vi.spyOn(Store.prototype as unknown as Internals, 'installResync').mockImplementation(async function (this: Store, staged: unknown) {
      const store = this as unknown as Internals;
      if (this.root === r && !order.includes('swap started')) {
        Object.assign(limits, { indexLogBytesMax: 0, indexLogCheckMs: 0 });
        store.maybeRollIndexLog();
        await until(() => order.includes('reopen waits in close'), 10_000, 'the reopen in LevelDB\'s close');
        order.push('swap started');
        const swapped = install.call(this, staged); // queued behind the reopen (snapshots paused, the Writer held)
        release();
        await swapped;
        order.push('swapped');
        return;
      }
      return install.call(this, staged);
    });
    const saved = { indexLogBytesMax: limits.indexLogBytesMax, indexLogCheckMs: limits.indexLogCheckMs };
    const replica = await startReplica(r, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet, storeOptions: small });
    try {
      await until(() => order.includes('swapped') && replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'the resync');
      expect(order).toEqual(['reopen waits in close', 'swap started', 'swapped']);
      Object.assign(limits, saved);
      await expectFollowing(replica.store, primaryStore);
    } finally {
      Object.assign(limits, saved);
      closing.mockRestore();
      installing.mockRestore();
      await closeReplication(replica, primary, primaryStore);
    }
  }, 60_000);

  it('a reopen asked for just as the swap starts runs after it, on the swapped-in index; the replica follows, identical', async () => {
    const { key, primaryStore, primary } = await primaryToResyncFrom();
    const r = join(tmpDir('replica'), 'r');
    const reopened: IndexDb[] = [];
    const reopen = IndexDb.prototype.reopen;
    const reopening = vi.spyOn(IndexDb.prototype, 'reopen').mockImplementation(async function (this: IndexDb, ...args: Parameters<IndexDb['reopen']>) {
      const done = await reopen.apply(this, args);
      if (this.path === join(r, 'index') && done) reopened.push(this);
      return done;
    });
    let before: IndexDb | undefined;
    const install = (Store.prototype as unknown as Internals).installResync;
    const installing = vi.spyOn(Store.prototype as unknown as Internals, 'installResync').mockImplementation(async function (this: Store, staged: unknown) {
      const store = this as unknown as Internals;
      if (this.root === r && !before) {
        before = store.db;
        Object.assign(limits, { indexLogBytesMax: 0, indexLogCheckMs: 0 });
        store.maybeRollIndexLog(); // measures first (an await): the swap is queued ahead of it
        await install.call(this, staged);
        Object.assign(limits, saved);
        return;
      }
      return install.call(this, staged);
    });
    const saved = { indexLogBytesMax: limits.indexLogBytesMax, indexLogCheckMs: limits.indexLogCheckMs };
    const replica = await startReplica(r, { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet, storeOptions: small });
    try {
      await until(() => reopened.length > 0 && replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 30_000, 'the resync and the reopen');
      expect(before).toBeDefined();
      expect(reopened[0]).not.toBe(before); // the index the swap installed
      expect(reopened[0]).toBe((replica.store as unknown as Internals).db);
      await expectFollowing(replica.store, primaryStore);
    } finally {
      Object.assign(limits, saved);
      reopening.mockRestore();
      installing.mockRestore();
      await closeReplication(replica, primary, primaryStore);
    }
  }, 60_000);
});
