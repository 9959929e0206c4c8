// Years of an admin's life compressed into cycles ("months"), through the library: deliveries
// (inline and packed), expunges, flags, mailboxes and users made, renamed and deleted, quotas
// changed, compaction and snapshots (explicit and automatic), scrub, a backup with `forget --prune`
// retention, a user moved to another host by XFER and back, a replica following (restarts now and
// then; it catches up). After each month every kind of file of the store, the replica, the other
// host and the backup repository is counted, with the index's keys by space; each must follow live
// data (bounds from what is live), never history. Limits are shortened so that a month rotates
// segments and packs, takes automatic snapshots and expires tombstones at each compaction.
// YEARS_CYCLES=N runs N months (default: seconds).
// The daemon's side (SIGKILLs, descriptors, RSS) is test/daemon/years.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/backup/repository.js';
import { runBackup } from '../../src/backup/backup.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { limits } from '../../src/limits.js';
import { startPrimary, type PrimaryHandle } from '../../src/replication/primary.js';
import { startReplica, type ReplicaHandle } from '../../src/replication/replica.js';
import { xferUser } from '../../src/replication/xfer.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { setQuota } from '../../src/store/quota.js';
import { Store } from '../../src/store/store.js';
import { source } from '../backup/helpers.js';
import { churnMessage, describeUse, expectBoundedRepository, expectBoundedStore, filesByDirectory, userMonth } from '../helpers/disk-use.js';
import { maildir } from '../import/helpers.js';
import { importMail } from '../../src/import/importer.js';
import { keyFile, quiet, until } from '../replication/helpers.js';

const CYCLES = Number(process.env.YEARS_CYCLES ?? 9);
/** Months before the bounds apply: users and mailboxes reach their steady number. */
const WARM_UP = 3;

const saved = { ...limits };
beforeAll(() => {
  Object.assign(limits, { tombstoneRetentionMs: 0, snapshotEveryRecords: 150, snapshotAutoPauseFactor: 0, journalSegmentBytesMax: 64 * 1024, journalPreallocateBytes: 4 * 1024, packBytesMax: 256 * 1024 });
});
afterAll(() => { Object.assign(limits, saved); });

const dirs: string[] = [];
afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

/** Index keys by their space byte (N, I, M, C, B, R, X). */
async function keysBySpace(store: Store, metaNames: string[] = []): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for await (const [key] of store.maintenance().index.entries({ gte: Buffer.alloc(0), lt: Buffer.from([0xff]) })) {
    const space = String.fromCharCode(key[0]!);
    counts[space] = (counts[space] ?? 0) + 1;
    if (space === 'X') metaNames.push(key.subarray(1).toString('latin1').replace(/\0.*/, ''));
  }
  return counts;
}

describe('years of churn', () => {
  it('every kind of file and index key follows live data, not history', async () => {
    const base = mkdtempSync(join(tmpdir(), 'mailstore-years-'));
    dirs.push(base);
    const dir = join(base, 'store');
    const otherDir = join(base, 'other');
    const replicaDir = join(base, 'replica');
    const repoDir = join(base, 'repo');
    const autoCompact = { graceMs: 0, intervalMs: 10, deadBytesMin: 0 };
    const open = () => Store.open(dir, { autoCompact, inlineBodyBytesMax: 4096 });
    await (await Store.init(dir)).close();
    const key = keyFile();
    const other = await Store.open(otherDir, { create: true, autoCompact });
    const otherPrimary = await startPrimary(other, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const otherAddress = `127.0.0.1:${(await otherPrimary.status()).port}`;
    let store = await open();
    let primary: PrimaryHandle = await startPrimary(store, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    const address = `127.0.0.1:${(await primary.status()).port}`;
    let replica: ReplicaHandle = await startReplica(replicaDir, { primary: address, keyFile: key, log: quiet });
    const repo = await Repository.open(nodeFileSystem, repoDir, { create: true });
    const serial = { next: 0 };
    const live = new Set<number>(); // users
    const report: unknown[] = [];
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        await store.createMailbox(`user/u${cycle}/INBOX`, { owner: `u${cycle}` });
        await store.createMailbox(`user/u${cycle}/Sent`, { owner: `u${cycle}` });
        await setQuota(store, `user/u${cycle}`, { storage: 10_000_000 + cycle, messages: 1000 + cycle });
        // the new user's old mail, migrated (its resume cursor stays while the mailbox does)
        await importMail(store, maildir(join(base, `import-${cycle}`), { a: churnMessage(cycle, 1e6, 100).toString(), b: churnMessage(cycle, 1e6 + 1, 100).toString() }), { mailbox: `user/u${cycle}/Archive`, layout: 'flat' });
        live.add(cycle);
        for (const u of live) {
          await userMonth(store, u, cycle, serial, 20_000);
          await setQuota(store, `user/u${u}`, { storage: 10_000_000 + cycle });
        }
        if (live.size > 3) {
          const gone = Math.min(...live);
          await store.deleteUser(`u${gone}`);
          live.delete(gone);
        }
        await store.compact();
        await store.snapshot();
        expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
        await runBackup(source(store), repo);
        await forgetSnapshots(repo, { last: 2 }, { prune: true });
        const moving = Math.max(...live); // to the other host and back
        await xferUser(store, { user: `u${moving}`, to: otherAddress, keyFile: key });
        await xferUser(other, { user: `u${moving}`, to: address, keyFile: key });
        if (cycle % 3 === 2) { // a restart now and then; the replica catches up after it
          await replica.close();
          await primary.close();
          await store.close();
          store = await open();
          primary = await startPrimary(store, { listen: address, keyFile: key, log: quiet });
          replica = await startReplica(replicaDir, { primary: address, keyFile: key, log: quiet });
        }
        await until(() => replica.store.changes.lastSeq === store.changes.lastSeq, 15_000, 'the replica caught up');
        // Retirement runs at snapshots and stops at the slowest consumer's durable cursor. The
        // replica's cursor here moves after its acknowledgement is durable, so on a slow disk (CI
        // beside other tests) it was still a month back at the month's snapshot and held that
        // month's segments until the next one (11 > 10). The bound is on what a snapshot leaves
        // once every consumer has caught up: wait for the cursor, then snapshot as cron would.
        const caughtUp = store.changes.lastSeq; // the background compactor may commit on meanwhile
        await until(async () => (await store.changes.consumers()).every((c) => !c.name.startsWith('replica-') || c.seq >= caughtUp), 15_000, "the replica's cursor caught up");
        await store.snapshot();
        const stats = await store.stats();
        const metaNames: string[] = [];
        const keys = await keysBySpace(store, metaNames);
        const use = { store: filesByDirectory(dir), replica: filesByDirectory(replicaDir), other: filesByDirectory(otherDir), repo: filesByDirectory(repoDir) };
        report.push({ cycle, messages: stats.messages, keys, ...Object.fromEntries(Object.entries(use).map(([k, v]) => [k, describeUse(v)])) });
        if (cycle < WARM_UP) continue;
        const liveState = { liveBytes: stats.bytesReferenced };
        const bounds = { livePids: [process.pid], packBytesMax: limits.packBytesMax, journalSegmentBytesMax: limits.journalSegmentBytesMax };
        expectBoundedStore(`month ${cycle} store`, use.store, dir, liveState.liveBytes, bounds);
        // a replica starts a segment at each of its primary's pack.removed and retires one primary retirement later (b92be859)
        expectBoundedStore(`month ${cycle} replica`, use.replica, replicaDir, liveState.liveBytes, { ...bounds, journalSegmentsMax: 14 });
        expectBoundedStore(`month ${cycle} other host`, use.other, otherDir, 0, bounds);
        expectBoundedRepository(use.repo);
        // the index: one M and at most one B a message, mailboxes' keys per live mailbox, a few change-log keys a message
        expect(keys.M ?? 0, 'M').toBe(stats.messages);
        expect((keys.B ?? 0) - stats.unreferencedBlobs, 'B').toBeLessThanOrEqual(stats.messages);
        expect(stats.unreferencedBlobs, 'released blobs the compactor has not reached yet').toBeLessThanOrEqual(60); // about a month's expunges
        for (const space of ['I', 'N', 'R']) expect(keys[space] ?? 0, space).toBeLessThanOrEqual(stats.mailboxes);
        // one change-log entry a live message: the month's tombstones expired by its compaction
        // (retention 0 here; 30 days by default), each mailbox's vanished floor raised instead
        expect(keys.C ?? 0, 'C').toBe(stats.messages);
        expect(keys.X ?? 0, metaNames.join(' ')).toBeLessThanOrEqual(12 + live.size); // an import cursor a live user
      }
    } finally {
      if (process.env.YEARS_REPORT) console.log(JSON.stringify(report, null, 1));
      await replica.close();
      await primary.close();
      await store.close();
      await otherPrimary.close();
      await other.close();
    }
  }, 600_000);
});

