// The held-ids table (src/backup/held-ids.ts): a run looks its new blobs up in one sorted table of
// the repository's blob ids instead of decoding every index file; the table is trusted only for
// index files still there, and a damaged one is never used.
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { mergeHeld, readHeld, tableHolds } from '../../src/backup/held-ids.js';
import type { Repository } from '../../src/backup/repository.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { backupLimits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { dump, fill, openRepo, source } from './helpers.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';

const id = (n: number) => Buffer.alloc(32, n);
const heldFiles = (repo: string) => readdirSync(join(repo, 'tips')).filter((name) => name.startsWith('held.'));

/** Counts the index files a repository decodes. */
function countIndexReads(repo: Repository): { count: number } {
  const seen = { count: 0 };
  const read = repo.readMetadata.bind(repo);
  repo.readMetadata = (async (kind, name) => {
    if (kind === 'index') seen.count++;
    return read(kind, name);
  }) as Repository['readMetadata'];
  return seen;
}

/** A new store with `count` messages in INBOX, backed up once into a new repository (closed). */
async function backedUp(count: number): Promise<{ dir: string; store: Store; repoDir: string; first: Buffer[] }> {
  const dir = tmpDir('held');
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  const first = await fill(store, 'INBOX', count);
  const repoDir = join(dir, 'repo');
  const repo = await openRepo(repoDir);
  await runBackup(source(store), repo);
  await repo.close();
  return { dir, store, repoDir, first };
}

/** The repository's table covers exactly the index files there. */
async function expectTableOfAll(repo: Repository): Promise<void> {
  const names = await repo.list('index');
  expect([...(await readHeld(repo, names))!.covered].sort()).toEqual([...names].sort());
}

describe('held-ids table', () => {
  it('merges index files into one ascending table of distinct ids, onto an earlier table; an id that is not 32 bytes makes none', () => {
    const first = mergeHeld(undefined, [{ name: 'a', ids: [id(9), id(3), id(5)] }, { name: 'b', ids: [id(5), id(1)] }])!;
    expect([...first.covered].sort()).toEqual(['a', 'b']);
    expect(first.ids).toEqual(Buffer.concat([id(1), id(3), id(5), id(9)]));
    const next = mergeHeld(first, [{ name: 'c', ids: [id(4), id(10), id(0), id(3), id(4)] }])!;
    expect([...next.covered].sort()).toEqual(['a', 'b', 'c']);
    expect(next.ids).toEqual(Buffer.concat([0, 1, 3, 4, 5, 9, 10].map(id)));
    for (const n of [0, 1, 3, 4, 5, 9, 10]) expect(tableHolds(next, id(n))).toBe(true);
    for (const n of [2, 6, 11]) expect(tableHolds(next, id(n))).toBe(false);
    expect(mergeHeld(first, [{ name: 'd', ids: [Buffer.alloc(16, 1)] }])).toBeUndefined();
  });

  it('a full backup leaves a table of every blob; the next run decodes only the index files written since, and leaves a table of all of them', async () => {
    const { store, repoDir, first } = await backedUp(20);
    const repo = await openRepo(repoDir);
    const names = await repo.list('index');
    await expectTableOfAll(repo);
    const table = (await readHeld(repo, names))!;
    for (const bytes of first) expect(tableHolds(table, hashBytes(bytes))).toBe(true);
    await fill(store, 'INBOX', 5, 100);
    const reads = countIndexReads(repo);
    const summary = await runBackup(source(store), repo);
    expect(summary.newBlobs).toBe(5);
    expect(reads.count).toBe(0); // every index file there was covered by the table
    expect((await repo.list('index')).length).toBeGreaterThan(names.length);
    await expectTableOfAll(repo);
    expect(heldFiles(repoDir)).toHaveLength(1); // the older table removed
    await repo.close();
    await store.close();
  });

  it('a run that adds few ids leaves the table there (the next decodes the index files it lacks); once they reach 1/heldRewriteShare of it, it is written again', async () => {
    const { store, repoDir } = await backedUp(40);
    const [first] = heldFiles(repoDir);
    const runs: { reads: number; held: string[] }[] = [];
    for (let run = 0; run < 3; run++) {
      await fill(store, 'INBOX', 2, 100 + 10 * run);
      const repo = await openRepo(repoDir);
      const reads = countIndexReads(repo);
      expect((await runBackup(source(store), repo)).newBlobs).toBe(2);
      runs.push({ reads: reads.count, held: heldFiles(repoDir) });
      if (run === 2) await expectTableOfAll(repo);
      await repo.close();
    }
    expect(backupLimits.heldRewriteShare).toBe(8); // 2 and 4 new ids of 40 stay below 40/8, 6 do not
    expect(runs.map((r) => r.reads)).toEqual([0, 1, 2]); // the files of the runs since the table
    expect(runs[0]!.held).toEqual([first]);
    expect(runs[1]!.held).toEqual([first]);
    expect(runs[2]!.held).toHaveLength(1);
    expect(runs[2]!.held[0]).not.toBe(first);
    await store.close();
  });

  it('the table cannot be written (ENOSPC, EIO at each step of its temp file): the run still succeeds, its snapshot restores, the earlier table stays, no temp file is left, and the next run dedups', async () => {
    for (const fault of ['ENOSPC', 'EIO'] as const) {
      for (const kind of ['create', 'write', 'rename'] as const) { // written as a cache: no fsync
        const { dir, store, repoDir } = await backedUp(8);
        const [before] = heldFiles(repoDir);
        await fill(store, 'INBOX', 8, 100); // as many new ids as the table holds: it is written again
        const fs = new FaultFileSystem();
        const repo = await openRepo(repoDir, undefined, fs);
        fs.injectAt((op) => op.kind === kind && op.path.startsWith(`${join(repoDir, 'tips')}/.held.`), fault); // its temp file
        const fired = fs.firedFaults().length;
        const summary = await runBackup(source(store), repo);
        expect(fs.firedFaults().length, `${fault} at ${kind} fired`).toBe(fired + 1);
        expect(summary.newBlobs).toBe(8);
        expect(heldFiles(repoDir), `${fault} at ${kind}: the earlier table, nothing else`).toEqual([before]);
        expect(readdirSync(join(repoDir, 'tips')).filter((name) => name.includes('tmp'))).toEqual([]);
        fs.clear();
        const expected = await dump(store);
        await restoreToNewStore(nodeFileSystem, repo, summary.snapshot, join(dir, 'r'));
        const back = await Store.open(join(dir, 'r'));
        expect(await dump(back)).toEqual(expected);
        await back.close();
        expect((await runBackup(source(store), repo)).newBlobs).toBe(0);
        expect((await checkRepository(repo, { readData: true })).findings.filter((f) => f.damage)).toEqual([]);
        await repo.close();
        await store.close();
      }
    }
  });

  it('a table naming an index file a prune removed is not used: a blob pruned since is copied again, and restores', async () => {
    const { dir, store, repoDir, first: [x] } = await backedUp(1);
    let repo = await openRepo(repoDir);
    const [stale] = heldFiles(repoDir);
    const kept = join(dir, 'held-kept');
    copyFileSync(join(repoDir, 'tips', stale!), kept); // the table that lists x
    await store.expunge('INBOX', [1]);
    await fill(store, 'INBOX', 2, 50);
    await runBackup(source(store), repo, { whole: true });
    const forgot = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(forgot.removed).toHaveLength(1);
    await repo.close();
    copyFileSync(kept, join(repoDir, 'tips', stale!)); // put back: it names index files that are gone now
    await store.appendBatch('INBOX', [{ bytes: x! }]); // the pruned message, delivered again
    repo = await openRepo(repoDir);
    expect(heldFiles(repoDir)).toEqual([stale]); // forget removed the tables (as it removes orphan tips)
    expect(await readHeld(repo, await repo.list('index'))).toBeUndefined();
    const summary = await runBackup(source(store), repo);
    expect(summary.newBlobs).toBe(1); // x copied again, not taken as held
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    const restored = await restoreToNewStore(nodeFileSystem, repo, summary.snapshot, join(dir, 'r'));
    expect(restored.messages).toBe(3);
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(await dump(store));
    await back.close();
    await repo.close();
    await store.close();
  });

  it('a damaged table is not used: every index file is decoded, dedup holds, and a good table is written in its place', async () => {
    const { store, repoDir } = await backedUp(10);
    const [name] = heldFiles(repoDir);
    const path = join(repoDir, 'tips', name!);
    const bytes = readFileSync(path);
    bytes[bytes.length - 40] ^= 0xff;
    writeFileSync(path, bytes);
    await fill(store, 'INBOX', 3, 100);
    const repo = await openRepo(repoDir);
    const reads = countIndexReads(repo);
    const summary = await runBackup(source(store), repo);
    expect(summary.newBlobs).toBe(3);
    expect(reads.count).toBeGreaterThan(0);
    await expectTableOfAll(repo);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await repo.close();
    await store.close();
  });
});
