// Repository versions (docs/BACKUP.md, "Versions"): a new repository is version 3 (blobs stored
// with zstd); a version-1 (deflate) or version-2 (Brotli) repository is still read and still written
// with its own codec, so the mailstore that made it reads it too; an unknown version is refused
// before anything is read.
import { join } from 'node:path';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { Repository } from '../../src/backup/repository.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { writeNewConfig } from '../../src/backup/new-config.js';
import { requireBuilt } from '../cli/helpers.js';
import { json } from '../cli/in-process.js';
import { expectCode, expectRestoresExactly, fill, openRepo, recordFlags, source } from './helpers.js';

/** Rewrites the repository's config with another version (its CRC line recomputed). */
function setVersion(repo: string, version: number): void {
  const path = join(repo, 'config');
  const body = JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8').split('\n')[0]!), version });
  writeFileSync(path, `${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

/** A repository of an older `version` keeps its codec (`flag` on every record) across two runs, and restores exactly. */
async function keepsItsCodec(version: number, codec: string, flag: number): Promise<void> {
  const dir = tmpDir('bkv');
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await fill(store, 'INBOX', 5, 1, 20_000);
  await (await openRepo(join(dir, 'repo'))).close();
  setVersion(join(dir, 'repo'), version);
  const repo = await Repository.open(nodeFileSystem, join(dir, 'repo'));
  expect(repo.codec).toBe(codec);
  await runBackup(source(store), repo);
  await fill(store, 'INBOX', 5, 100, 20_000);
  await runBackup(source(store), repo);
  expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([flag]));
  expect(repo.config.version).toBe(version);
  await expectRestoresExactly(store, repo, join(dir, 'r'));
}

describe('repository versions', () => {
  it('a new repository is version 3 and stores compressible blobs with zstd (flag 4); they restore exactly', async () => {
    const dir = tmpDir('bkv');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 12, 1, 20_000);
    const repo = await openRepo(join(dir, 'repo'));
    expect(repo.config.version).toBe(3);
    expect(repo.codec).toBe('zstd');
    await runBackup(source(store), repo);
    expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([4]));
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });

  it('a version-2 repository (written by older mailstore: Brotli) restores, and is written with Brotli (flag 2) so older mailstore still reads it', () => keepsItsCodec(2, 'brotli', 2));

  it('a version-1 repository is read, and written with deflate (flag 1) so older mailstore still reads it', () => keepsItsCodec(1, 'deflate', 1));

  it('a repository of an unknown version is refused (INVALID, naming the version) before anything is read or written', async () => {
    const dir = tmpDir('bkv');
    await (await openRepo(join(dir, 'repo'))).close();
    setVersion(join(dir, 'repo'), 4);
    const refused = Repository.open(nodeFileSystem, join(dir, 'repo'));
    await expectCode(refused, 'INVALID');
    await expect(Repository.open(nodeFileSystem, join(dir, 'repo'))).rejects.toThrow(/repository version 4 is not supported/);
    expect(readdirSync(join(dir, 'repo', 'locks'))).toEqual([]);
  });

  // issue 14 (an outside tester): --new-config wrote version 3 whatever the repository was, so its
  // next backup stored zstd records the mailstore that made a version-1 or -2 repository cannot read
  for (const [version, flag] of [[1, 1], [2, 2], [3, 4]] as const) {
    it(`backup repair --new-config on a version-${version} repository, its config damaged or lost, writes version ${version} (its records say it); later backups keep its codec (flag ${flag}) and it restores exactly`, { timeout: 60_000 }, async () => {
      requireBuilt();
      const dir = tmpDir('bkv');
      const repoDir = join(dir, 'repo');
      const store = await Store.init(join(dir, 's'));
      await store.createMailbox('INBOX');
      await fill(store, 'INBOX', 4, 1, 20_000);
      await (await openRepo(repoDir)).close();
      setVersion(repoDir, version);
      let repo = await Repository.open(nodeFileSystem, repoDir);
      await runBackup(source(store), repo);
      await repo.close();
      const config = readFileSync(join(repoDir, 'config'));
      config[12] ^= 0x01; // damaged
      writeFileSync(join(repoDir, 'config'), config);
      expect(await json(['backup', 'repair', '--repo', repoDir, '--new-config'])).toMatchObject({ version, versionFrom: 'records' });
      rmSync(join(repoDir, 'config')); // lost
      expect(await writeNewConfig(nodeFileSystem, repoDir)).toMatchObject({ version, versionFrom: 'records' });
      repo = await Repository.open(nodeFileSystem, repoDir);
      expect(repo.config.version).toBe(version);
      await fill(store, 'INBOX', 4, 100, 20_000);
      await runBackup(source(store), repo);
      expect(new Set(recordFlags(repoDir))).toEqual(new Set([flag]));
      await expectRestoresExactly(store, repo, join(dir, 'r'));
    });
  }

  it('--new-config on a repository with no compressed record (only small messages, stored as they are) writes version 1, which every mailstore reads', async () => {
    const dir = tmpDir('bkv');
    const repoDir = join(dir, 'repo');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await store.append('INBOX', Buffer.from('Subject: a\r\n\r\nb\r\n'));
    const repo = await openRepo(repoDir);
    await runBackup(source(store), repo);
    await repo.close();
    expect(new Set(recordFlags(repoDir))).toEqual(new Set([0]));
    rmSync(join(repoDir, 'config'));
    expect(await writeNewConfig(nodeFileSystem, repoDir)).toMatchObject({ version: 1, versionFrom: 'none' });
    await expectRestoresExactly(store, await Repository.open(nodeFileSystem, repoDir), join(dir, 'r'));
  });
});
