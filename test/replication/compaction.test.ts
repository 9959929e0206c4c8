// Compaction on a replicated store: the new packs reach the replica before the relocations that
// point into them, the old packs leave the replica only after, and the replica ends byte-identical
// (same pack files) with replica check finding 0 differences, also when the replica process is
// SIGKILLed at several points of the compaction's shipping.
import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';
import { PACKS_TO_REMOVE_FILE } from '../../src/replication/pack-removal.js';
import { tmpDir } from '../helpers/tmp.js';
import { PACKED } from '../helpers/packed.js';
import { keyFile, logicalState, msg, quiet, samePacks, until } from './helpers.js';

const dist = resolve(import.meta.dirname, '../../dist/src/replication/replica.js');
const options = { packBytesMax: 256 * 1024 };

/** Appends `n` messages of ~`pad` bytes, then expunges all but every fifth of them. */
async function fillAndThin(store: Store, n: number, pad: number, base: number): Promise<void> {
  const uids: number[] = [];
  for (let i = 0; i < n; i += 10) {
    const done = await Promise.all(Array.from({ length: 10 }, (_, k) => store.append('INBOX', msg(base + i + k, pad))));
    uids.push(...done.map((d) => d.uid));
  }
  await store.expunge('INBOX', uids.filter((_, i) => i % 5 !== 0));
}

function childReplica(root: string, primary: string, key: string): { child: ChildProcess; seq: () => number; exited: Promise<unknown> } {
  const script = `import { startReplica } from ${JSON.stringify(dist)};
    const r = await startReplica(${JSON.stringify(root)}, { primary: ${JSON.stringify(primary)}, keyFile: ${JSON.stringify(key)}, log: () => {}, storeOptions: ${JSON.stringify(options)} });
    setInterval(() => process.stdout.write(r.status().seq + '\\n'), 2);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let seq = 0;
  child.stdout!.on('data', (b: Buffer) => { const lines = b.toString().trim().split('\n'); seq = Number(lines[lines.length - 1]) || seq; });
  return { child, seq: () => seq, exited: new Promise((done) => child.once('exit', done)) };
}

/** Every message on the replica is on the primary, same metadata, and reads back with its bytes. */
async function readsBack(replica: Store, primary: Store): Promise<number> {
  let n = 0;
  for await (const m of replica.messages('INBOX')) {
    const bytes = await replica.fetch('INBOX', m.uid);
    expect(bytes.equals(await primary.fetch('INBOX', m.uid).catch(() => bytes)), `uid ${m.uid}`).toBe(true);
    n++;
  }
  return n;
}

describe('compaction on a replicated store', () => {
  it('ships the new packs, removes the old ones on the replica after the relocations, and check finds 0 differences', async () => {
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...PACKED, ...options }); // compaction rewrites packs
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: options });
    try {
      await fillAndThin(primaryStore, 400, 3000, 0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up before compaction');
      const packsBefore = await primaryStore.replication().packs.listPacks();
      const result = await primaryStore.compact();
      expect(result.packsRewritten.length).toBeGreaterThan(0);
      expect(result.packsRemoved.length).toBeGreaterThan(0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up after compaction');
      await until(() => !existsSync(join(r, PACKS_TO_REMOVE_FILE)), 10_000, 'the replica to remove the old packs');
      const packsAfter = await replica.store.replication().packs.listPacks();
      for (const pack of result.packsRemoved) expect(packsAfter).not.toContain(pack);
      for (const pack of result.packsWritten) expect(packsAfter).toContain(pack);
      expect(packsAfter).not.toEqual(packsBefore);
      expect(await checkReplica(replica.store, { primary: address, keyFile: key })).toMatchObject({ identical: true, differences: [] });
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      // appends after the compaction go on replicating
      await primaryStore.append('INBOX', msg(99_999));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'an append after compaction');
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
  }, 60_000);

  // A primary snapshots after each compaction (its tidy) and its pack.removed record starts a new
  // journal segment, so its journal retires as it goes; its replica compacts nothing itself: its
  // journal stayed one segment and took a snapshot only every limits.snapshotEveryRecords (last
  // session's soak: 83 MB of journal on the replica, 124 KB on its primary).
  it("a replica's journal retires as its primary's does: a segment at each compaction's record, a snapshot once the primary retired past its own", async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true, ...PACKED, ...options });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet, storeOptions: options });
    try {
      let retiredAt = 0;
      for (let cycle = 0; cycle < 6 && replica.store.changes.firstSeq === 1; cycle++) {
        await fillAndThin(primaryStore, 100, 3000, cycle * 1000);
        expect((await primaryStore.compact()).packsRemoved.length).toBeGreaterThan(0);
        // the primary's tidy retires its journal in the background; the rounds after it tell the replica (kept)
        await until(() => primaryStore.changes.firstSeq > retiredAt, 20_000, "the primary's retirement");
        retiredAt = primaryStore.changes.firstSeq;
        await primaryStore.append('INBOX', msg(cycle * 1000 + 999));
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the replica caught up');
      }
      await until(() => replica.store.changes.firstSeq > 1, 20_000, "the replica's retirement"); // before: 1 for good (100k records)
      expect(replica.store.changes.firstSeq).toBeLessThanOrEqual(primaryStore.changes.firstSeq); // never past what its primary keeps
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 90_000);

  it('a replica SIGKILLed at several points of a compaction\'s shipping recovers whole and ends identical', async () => {
    expect(existsSync(dist), 'build first: npx tsc -p .').toBe(true);
    const key = keyFile();
    const p = tmpDir('primary');
    const primaryStore = await Store.open(p, { create: true, ...PACKED, ...options }); // compaction rewrites packs
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    // when to kill, counted from the compaction's start: at once, when it returns on the primary
    // (its rounds in flight), when the replica applied its first record, when it caught up
    const triggers: ((c: { compacting: Promise<unknown>; before: number; seq: () => number }) => Promise<unknown>)[] = [
      async () => undefined,
      async (c) => c.compacting,
      async (c) => until(() => c.seq() > c.before, 20_000, 'the first compaction record on the replica'),
      async (c) => { await c.compacting; await until(() => c.seq() >= primaryStore.changes.lastSeq, 20_000, 'the replica to catch up'); },
    ];
    try {
      for (let round = 0; round < triggers.length; round++) {
        const { child, seq, exited } = childReplica(r, address, key);
        await fillAndThin(primaryStore, 300, 3000, round * 1000);
        await until(() => seq() === primaryStore.changes.lastSeq, 20_000, 'catch-up before compaction');
        const before = primaryStore.changes.lastSeq;
        const compacting = primaryStore.compact();
        await triggers[round]({ compacting, before, seq });
        child.kill('SIGKILL');
        await exited;
        expect((await compacting).packsRewritten.length).toBeGreaterThan(0);
        const replica = await Store.open(r, options); // the killed replica's recovery: every message it holds reads back
        try {
          if (process.env.COMPACT_VERBOSE) console.log(`kill ${round}: replica at ${replica.changes.lastSeq}, compaction records ${before + 1}..${primaryStore.changes.lastSeq}, packs to remove noted: ${existsSync(join(r, PACKS_TO_REMOVE_FILE))}`);
          expect(replica.health.degraded).toBe(false);
          expect(await readsBack(replica, primaryStore)).toBeGreaterThan(0);
        } finally {
          await replica.close();
        }
      }
      const replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: options });
      try {
        await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the final catch-up');
        await until(() => !existsSync(join(r, PACKS_TO_REMOVE_FILE)), 10_000, 'the replica to remove the old packs');
        expect(await checkReplica(replica.store, { primary: address, keyFile: key })).toMatchObject({ identical: true, differences: [] });
        expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      } finally {
        await replica.close();
      }
    } finally {
      await primary.close();
      await primaryStore.close();
    }
    samePacks(p, r);
  }, 120_000);

  it('is shipped to a replica below its free-space reserve: compaction makes room there too, as on the primary', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true, ...PACKED, ...options });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    const r = join(tmpDir('replica'), 'r');
    let replica = await startReplica(r, { primary: address, keyFile: key, log: quiet, storeOptions: options });
    const lines: string[] = [];
    try {
      await fillAndThin(primaryStore, 200, 3000, 0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up before compaction');
      await replica.close();
      // the replica's disk below its reserve (twice what is free) and above its floor (an eighth of it)
      const free = statfsSync(r).bavail * statfsSync(r).bsize;
      replica = await startReplica(r, { primary: address, keyFile: key, log: (l) => lines.push(l), storeOptions: { ...options, freeSpaceReserveBytes: 2 * free } });
      const result = await primaryStore.compact();
      expect(result.packsWritten.length).toBeGreaterThan(0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'the compaction on the replica');
      await until(() => !existsSync(join(r, PACKS_TO_REMOVE_FILE)), 10_000, 'the replica to remove the old packs');
      expect(lines.filter((l) => /NO_SPACE/.test(l))).toEqual([]);
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      // mail is still held to the replica's reserve: it stays a prefix, saying why
      await primaryStore.append('INBOX', msg(99_999, 3000));
      await until(() => lines.some((l) => /NO_SPACE/.test(l) && /free-space reserve/.test(l)), 20_000, 'mail refused at the reserve');
      expect(replica.store.changes.lastSeq).toBeLessThan(primaryStore.changes.lastSeq);
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 60_000);
});
