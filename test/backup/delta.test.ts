// Delta snapshots (src/backup/delta.ts, docs/BACKUP.md "Delta snapshots"): an incremental run
// records only what changed on its parent. A chain restores exactly what a whole snapshot of the
// same state restores; forget keeps the snapshots a kept one builds on; damage in a parent is
// reported for every snapshot built on it; a chain is capped; encryption covers deltas.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup, type BackupSummary } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { DELTA_FORMAT_VERSION, FORMAT_VERSION } from '../../src/backup/format.js';
import type { Repository, SnapshotFile } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { backupLimits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, restoredDump, source } from './helpers.js';

async function storeWithMail(dir: string): Promise<Store> {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await store.createMailbox('user/alice/Sent', { owner: 'alice', acl: { bob: 'lr' } });
  await store.createMailbox('Trash');
  await fill(store, 'INBOX', 30);
  await fill(store, 'user/alice/Sent', 10, 100);
  await fill(store, 'Trash', 5, 200);
  return store;
}

/** Changes of every kind, a different set each round. */
async function change(store: Store, round: number): Promise<void> {
  await fill(store, 'INBOX', 3, 1000 + round * 10);
  await store.setFlags('INBOX', [1 + round, 10 + round], { add: ['\\Seen', `k${round}`] });
  await store.expunge('INBOX', [20 + round]);
  await store.setAcl('user/alice/Sent', `u${round}`, 'lrs');
  if (round === 1) await store.createMailbox('Fresh');
  if (round === 1) await fill(store, 'Fresh', 2, 3000);
  if (round === 2) await store.deleteMailbox('Trash');
}

const raw = (repo: Repository, id: string) => repo.readMetadata<SnapshotFile>('snapshot', id);
const normalised = (snapshot: SnapshotFile) => JSON.stringify(snapshot.ops, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));

/** A store with mail, a whole backup of it, a change, and a delta backup on top (two tests start so). */
async function wholeThenDelta() {
  const dir = tmpDir('bkd');
  const store = await storeWithMail(dir);
  const repo = await openRepo(join(dir, 'repo'));
  const first = await runBackup(source(store), repo);
  await change(store, 1);
  const second = await runBackup(source(store), repo);
  return { dir, store, repo, first, second };
}

describe('delta snapshots', () => {
  it('a chain restores byte-exact what a whole snapshot of the same state restores (uids, flags, modseqs, ACLs, mailboxes made and deleted)', async () => {
    const dir = tmpDir('bkd');
    const store = await storeWithMail(dir);
    const repo = await openRepo(join(dir, 'repo'));
    const whole0 = await runBackup(source(store), repo);
    expect(whole0.deltaDepth).toBeUndefined();
    let last: BackupSummary = whole0;
    for (let round = 1; round <= 3; round++) {
      await change(store, round);
      last = await runBackup(source(store), repo);
      expect(last.deltaDepth).toBe(round);
      const file = await raw(repo, last.snapshot);
      expect(file.delta?.boxes.length).toBeGreaterThan(0);
      expect(file.ops.some((op) => op.op === 'state.messages' || op.op === 'state.changes')).toBe(false); // only what changed is written
      expect(readFileSync(repo.path('snapshots', last.snapshot))[4]).toBe(DELTA_FORMAT_VERSION); // older mailstore refuses it
    }
    const whole = await runBackup(source(store), repo, { whole: true }); // the same state, whole
    expect(whole.deltaDepth).toBeUndefined();
    expect(readFileSync(repo.path('snapshots', whole.snapshot))[4]).toBe(FORMAT_VERSION);
    expect(whole.seq).toBe(last.seq);
    expect(normalised(await repo.readSnapshot(last.snapshot))).toBe(normalised(await repo.readSnapshot(whole.snapshot)));
    expect(last).toMatchObject({ messages: whole.messages, blobs: whole.blobs, mailboxes: whole.mailboxes });
    const expected = await dump(store);
    await store.close();
    const fromChain = await restoredDump(repo, last.snapshot, join(dir, 'r1'));
    expect(fromChain).toEqual(expected);
    expect(await restoredDump(repo, whole.snapshot, join(dir, 'r2'))).toEqual(fromChain);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await repo.close();
  });

  it('forget keeps the snapshots a kept delta builds on (reason parent); after a whole snapshot they go, and prune reclaims', async () => {
    const { dir, store, repo, first, second } = await wholeThenDelta();
    expect(second.deltaDepth).toBe(1);
    const forgot = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(forgot.removed).toEqual([]);
    expect(forgot.kept.find((k) => k.id === first.snapshot)?.reasons).toEqual(['parent']);
    expect(forgot.prune?.blobsRemoved).toBe(0);
    const expected = await dump(store);
    expect(await restoredDump(repo, second.snapshot, join(dir, 'r1'))).toEqual(expected);
    await change(store, 2); // expunges INBOX uid 22 and deletes Trash: their blobs only the older snapshots hold
    const third = await runBackup(source(store), repo, { whole: true });
    const later = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(later.removed.map((s) => s.id).sort()).toEqual([first.snapshot, second.snapshot].sort());
    expect(later.prune?.blobsRemoved).toBeGreaterThan(0);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    const now = await dump(store);
    await store.close();
    expect(await restoredDump(repo, third.snapshot, join(dir, 'r2'))).toEqual(now);
    await repo.close();
  });

  it('a damaged parent: check reports it and every snapshot built on it; a restore of a child is refused (CORRUPT); forget changes nothing', async () => {
    const { dir, store, repo, first, second } = await wholeThenDelta();
    await change(store, 2);
    const third = await runBackup(source(store), repo);
    expect(third.deltaDepth).toBe(2);
    await store.close();
    const path = repo.path('snapshots', first.snapshot);
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] ^= 0x10;
    writeFileSync(path, bytes);
    const damaged = (await checkRepository(repo)).findings.filter((f) => f.kind === 'damaged-snapshot').map((f) => f.path).sort();
    expect(damaged).toEqual([first, second, third].map((s) => repo.path('snapshots', s.snapshot)).sort());
    await expectCode(restoreToNewStore(nodeFileSystem, repo, third.snapshot, join(dir, 'r')), 'CORRUPT');
    await expectCode(forgetSnapshots(repo, { last: 1 }, { prune: true }), 'REFUSED');
    expect((await repo.list('snapshots')).length).toBe(3);
    await repo.close();
  });

  it('a chain reaches its cap, then the next run writes a whole snapshot and a new chain starts on it', async () => {
    const dir = tmpDir('bkd');
    const store = await storeWithMail(dir);
    const repo = await openRepo(join(dir, 'repo'));
    const limits = backupLimits as { deltaChainMax: number };
    const saved = limits.deltaChainMax;
    limits.deltaChainMax = 2;
    try {
      const depths: (number | undefined)[] = [];
      let last: BackupSummary | undefined;
      for (let round = 0; round < 6; round++) {
        if (round > 0) await fill(store, 'INBOX', 1, 5000 + round);
        last = await runBackup(source(store), repo);
        depths.push(last.deltaDepth);
      }
      expect(depths).toEqual([undefined, 1, 2, undefined, 1, 2]);
      // a listing reads each file once (oldest first, so a delta's parent is at hand), not its chain per snapshot
      let reads = 0;
      const readMetadata = repo.readMetadata.bind(repo);
      repo.readMetadata = (async (kind: 'index' | 'snapshot', name: string) => { if (kind === 'snapshot') reads++; return readMetadata(kind, name); }) as typeof repo.readMetadata;
      expect((await repo.snapshots()).map((s) => s.snapshot.depth)).toEqual([undefined, 1, 2, undefined, 1, 2]);
      expect(reads).toBe(6);
      repo.readMetadata = readMetadata;
      const expected = await dump(store);
      await store.close();
      expect(await restoredDump(repo, last!.snapshot, join(dir, 'r'))).toEqual(expected);
      expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    } finally {
      limits.deltaChainMax = saved;
    }
    await repo.close();
  });

  it('the index is read only when a message names a blob the parent does not hold (its tip\'s hash table, no blob set of the parent decoded)', async () => {
    const dir = tmpDir('bkd');
    const store = await storeWithMail(dir);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    let indexReads = 0;
    const indexHolds = repo.indexHolds.bind(repo);
    repo.indexHolds = async (ids) => { indexReads++; return indexHolds(ids); };
    await store.setFlags('INBOX', [1, 2], { add: ['\\Seen'] });
    await store.expunge('INBOX', [3]);
    const flagsOnly = await runBackup(source(store), repo);
    expect(flagsOnly).toMatchObject({ newBlobs: 0, deltaDepth: 1 });
    expect(indexReads).toBe(0);
    await store.copy('INBOX', [4], 'Trash'); // a new uid, a blob the parent holds (its tip says so)
    const copied = await runBackup(source(store), repo);
    expect(copied).toMatchObject({ newBlobs: 0, deltaDepth: 2 });
    expect(indexReads).toBe(0);
    await fill(store, 'INBOX', 2, 7000);
    expect(await runBackup(source(store), repo)).toMatchObject({ newBlobs: 2, deltaDepth: 3 });
    expect(indexReads).toBe(1);
    const expected = await dump(store);
    await store.close();
    expect(await restoredDump(repo, 'latest', join(dir, 'r'))).toEqual(expected);
    await repo.close();
  });

  it('encrypted: a delta is sealed like every metadata file, and restores exactly with the key', async () => {
    const dir = tmpDir('bkd');
    const store = await storeWithMail(dir);
    const secret = Buffer.alloc(32, 7);
    const repo = await openRepo(join(dir, 'repo'), secret);
    await runBackup(source(store), repo);
    await change(store, 1);
    const second = await runBackup(source(store), repo);
    expect(second.deltaDepth).toBe(1);
    const file = readFileSync(repo.path('snapshots', second.snapshot));
    expect(file[6]).toBe(1); // the encrypted flag
    expect(file.includes(Buffer.from('alice'))).toBe(false);
    const expected = await dump(store);
    await store.close();
    expect(await restoredDump(repo, second.snapshot, join(dir, 'r'))).toEqual(expected);
    await repo.close();
  });
});
