// Damage in a repository (a flipped byte, a truncated or missing file) is found by check and
// refused by restore, which never writes wrong bytes; encryption hides the content and refuses a
// wrong key before anything is read or written.
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository, type BackupFindingKind } from '../../src/backup/check.js';
import type { Repository } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, source } from './helpers.js';

async function backedUp(dir: string, secret?: Buffer): Promise<{ repo: Repository; before: unknown; texts: Buffer[] }> {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await store.createMailbox('Other');
  const texts = await fill(store, 'INBOX', 20, 1, 3000);
  await fill(store, 'Other', 5, 100);
  const repo = await openRepo(join(dir, 'repo'), secret);
  await runBackup(source(store), repo);
  const before = await dump(store);
  await store.close();
  return { repo, before, texts };
}

const kinds = async (repo: Repository, readData: boolean): Promise<BackupFindingKind[]> => {
  const report = await checkRepository(repo, { readData });
  return report.findings.filter((f) => f.damage).map((f) => f.kind);
};

function only(dir: string): string {
  const names = readdirSync(dir).filter((n) => !n.startsWith('.'));
  expect(names).toHaveLength(1);
  return join(dir, names[0]);
}

describe('backup check and damage', () => {
  it('a good repository is clean, structure and every byte', async () => {
    const { repo } = await backedUp(tmpDir('bkc'));
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings).toEqual([]);
    expect(report.summary).toMatchObject({ snapshots: 1, indexFiles: 1, dataFiles: 1, blobs: 25, damage: 0 });
    expect(report.summary.bytesRead).toBeGreaterThan(0);
    await repo.close();
  });

  it('a flipped byte in a data file: check --read-data names the message; restore refuses it (CORRUPT) and installs nothing', async () => {
    const dir = tmpDir('bkc');
    const { repo } = await backedUp(dir);
    const data = only(repo.path('data'));
    const bytes = readFileSync(data);
    bytes[Math.floor(bytes.length / 2)] ^= 0x20;
    writeFileSync(data, bytes);
    expect(await kinds(repo, false)).toEqual([]); // structure alone cannot see it
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings.map((f) => f.kind)).toEqual(['damaged-data', 'damaged-blob']);
    expect(report.findings[1].message).toMatch(/(INBOX|Other) uid \d+/);
    const error = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/(INBOX|Other) uid \d+: its blob is damaged/) });
    expect(existsSync(join(dir, 'r'))).toBe(false);
    await repo.close();
  });

  it('a damaged blob later snapshots need too: the finding names the newest of them and how many, not only the oldest (whose restore the admin would not pick)', async () => {
    const dir = tmpDir('bkc');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('Subject: kept in every snapshot\r\n\r\nbody\r\n'));
    const repo = await openRepo(join(dir, 'repo'));
    const first = await runBackup(source(store), repo);
    await fill(store, 'INBOX', 1, 10);
    await runBackup(source(store), repo);
    await fill(store, 'INBOX', 1, 20);
    const newest = await runBackup(source(store), repo);
    await store.close();
    const data = join(repo.path('data'), readdirSync(repo.path('data')).sort((a, b) => statSync(join(repo.path('data'), a)).mtimeMs - statSync(join(repo.path('data'), b)).mtimeMs)[0]!);
    const bytes = readFileSync(data);
    bytes[bytes.length - 3] ^= 0x20; // the first run's only blob: the message every snapshot holds
    writeFileSync(data, bytes);
    const blobs = (await checkRepository(repo, { readData: true })).findings.filter((f) => f.kind === 'damaged-blob');
    expect(blobs).toHaveLength(1);
    expect(blobs[0]!.message).toContain(`snapshot ${newest.snapshot.slice(0, 8)} (the newest of 3 that need it, the oldest ${first.snapshot.slice(0, 8)}) INBOX uid 1: `);
    expect(blobs[0]!.message.split(data)).toHaveLength(2); // the data file named once
    await expectCode(restoreToNewStore(nodeFileSystem, repo, newest.snapshot, join(dir, 'r')), 'CORRUPT');
    await repo.close();
  });

  it('a truncated data file, a missing data file, a missing index file, a damaged snapshot', async () => {
    const dir = tmpDir('bkc');
    const { repo } = await backedUp(dir);
    const data = only(repo.path('data'));
    const saved = readFileSync(data);
    truncateSync(data, statSync(data).size - 100);
    expect(await kinds(repo, false)).toEqual(['truncated-data']);
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')), 'CORRUPT');
    unlinkSync(data);
    expect(await kinds(repo, false)).toEqual(['missing-data']);
    writeFileSync(data, saved);
    const index = only(repo.path('index'));
    const indexBytes = readFileSync(index);
    unlinkSync(index);
    // the map lost, the data there: check names the data file (scanned), restore finds every blob by scanning
    expect(new Set(await kinds(repo, false))).toEqual(new Set(['scanned-data']));
    await repo.close(); // its read handles: the data file put back is a new file
    expect((await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'scanned'))).blobsFoundByScan).toBe(25);
    unlinkSync(data);
    expect(new Set(await kinds(repo, false))).toEqual(new Set(['missing-blob']));
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')), 'CORRUPT');
    writeFileSync(data, saved);
    writeFileSync(index, indexBytes);
    const snapshot = only(repo.path('snapshots'));
    const snapshotBytes = readFileSync(snapshot);
    writeFileSync(snapshot, snapshotBytes.subarray(0, snapshotBytes.length - 1));
    expect(await kinds(repo, true)).toEqual(['damaged-snapshot']);
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')), 'CORRUPT');
    writeFileSync(snapshot, snapshotBytes);
    expect(await kinds(repo, true)).toEqual([]);
    expect(existsSync(join(dir, 'r'))).toBe(false);
    await repo.close();
  });

  it('a damaged index file and its data file lost: a restore refuses only the messages whose blobs it alone listed (those check names), and restores the rest', async () => {
    const dir = tmpDir('bkc');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('user/alice/INBOX');
    await fill(store, 'user/alice/INBOX', 10, 1, 3000);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const first = only(repo.path('index'));
    await store.createMailbox('user/bob/INBOX');
    await fill(store, 'user/bob/INBOX', 5, 100, 3000);
    await runBackup(source(store), repo); // bob's blobs go to a second index file
    const bob = await dump(store, (name) => name.startsWith('user/bob/'));
    await store.close();
    const bytes = readFileSync(first);
    const aliceData = (await repo.readMetadata<{ files: { file: string }[] }>('index', readdirSync(repo.path('index')).find((n) => !first.endsWith(n))!)).files.map((f) => f.file);
    bytes.fill(0, bytes.length >> 1, (bytes.length >> 1) + 16);
    writeFileSync(first, bytes);
    // with its data file there, a scan finds alice's blobs (repair.test.ts); here it is lost too
    for (const name of readdirSync(repo.path('data'))) if (!aliceData.includes(name)) unlinkSync(join(repo.path('data'), name));
    const report = await checkRepository(repo);
    expect(new Set(report.findings.filter((f) => f.damage).map((f) => f.kind))).toEqual(new Set(['damaged-index', 'missing-blob']));
    expect(report.findings.filter((f) => f.kind === 'missing-blob').every((f) => f.message.includes('user/alice/INBOX'))).toBe(true);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'bob'), { selection: { user: 'bob' } });
    const back = await Store.open(join(dir, 'bob'));
    expect(await dump(back)).toEqual(bob);
    await back.close();
    const refused = restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'alice'), { selection: { user: 'alice' } });
    await expect(refused).rejects.toThrow(/user\/alice\/INBOX uid 1: .*no index file that reads/);
    await expectCode(refused, 'CORRUPT');
    expect(existsSync(join(dir, 'alice'))).toBe(false);
    await repo.close();
  });
});

describe('encryption', () => {
  it('nothing of the messages in clear; the right key restores exactly; a wrong or missing key is refused before anything is written', async () => {
    const dir = tmpDir('bke');
    const key = randomBytes(32);
    const { repo, before, texts } = await backedUp(dir, key);
    await repo.close();
    const needles = [texts[0].subarray(0, 40), texts[7].subarray(80, 120), Buffer.from('INBOX'), Buffer.from('Other')];
    for (const area of ['data', 'index', 'snapshots']) {
      for (const name of readdirSync(join(dir, 'repo', area))) {
        const bytes = readFileSync(join(dir, 'repo', area, name));
        for (const needle of needles) expect(bytes.includes(needle), `${area}/${name} holds ${needle.toString()}`).toBe(false);
      }
    }
    await expectCode(openRepo(join(dir, 'repo'), randomBytes(32)), 'INVALID');
    await expectCode(openRepo(join(dir, 'repo')), 'INVALID');
    expect(existsSync(join(dir, 'r'))).toBe(false);
    const right = await openRepo(join(dir, 'repo'), key);
    expect(await kinds(right, true)).toEqual([]);
    await restoreToNewStore(nodeFileSystem, right, 'latest', join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    // a sealed blob is authenticated: a flipped byte is damage, never different bytes
    const data = only(right.path('data'));
    const bytes = readFileSync(data);
    bytes[bytes.length - 30] ^= 1;
    writeFileSync(data, bytes);
    expect(await kinds(right, true)).toEqual(['damaged-data', 'damaged-blob']);
    await expectCode(restoreToNewStore(nodeFileSystem, right, 'latest', join(dir, 'r2')), 'CORRUPT');
    await right.close();
    // a key on an unencrypted repository is a mistake, said as such
    const other = tmpDir('bke');
    const plain = await backedUp(other);
    await plain.repo.close();
    await expectCode(openRepo(join(other, 'repo'), key), 'INVALID');
  });
});
