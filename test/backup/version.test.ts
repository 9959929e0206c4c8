// Repository versions (docs/BACKUP.md, "Versions"): a new repository is version 3 (blobs stored
// with zstd); a version-1 (deflate) or version-2 (Brotli) repository is still read and still written
// with its own codec, so the mailstore that made it reads it too; an unknown version is refused
// before anything is read.
import { join } from 'node:path';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { RECORD_HEADER_BYTES, DATA_HEADER_BYTES } from '../../src/backup/format.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { Repository } from '../../src/backup/repository.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, source } from './helpers.js';

/** Rewrites the repository's config with another version (its CRC line recomputed). */
function setVersion(repo: string, version: number): void {
  const path = join(repo, 'config');
  const body = JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8').split('\n')[0]!), version });
  writeFileSync(path, `${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

/** The flags byte of every record of every data file. */
function recordFlags(repo: string): number[] {
  const flags: number[] = [];
  for (const name of readdirSync(join(repo, 'data')).filter((n) => !n.startsWith('.'))) {
    const bytes = readFileSync(join(repo, 'data', name));
    for (let at = DATA_HEADER_BYTES; at < bytes.length; at += RECORD_HEADER_BYTES + bytes.readUInt32BE(at + 40)) flags.push(bytes[at + 36]!);
  }
  return flags;
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
    const before = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    await repo.close();
  });

  it('a version-2 repository (written by older mailstore: Brotli) restores, and is written with Brotli (flag 2) so older mailstore still reads it', async () => {
    const dir = tmpDir('bkv');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 6, 1, 20_000);
    await (await openRepo(join(dir, 'repo'))).close();
    setVersion(join(dir, 'repo'), 2);
    const repo = await Repository.open(nodeFileSystem, join(dir, 'repo'));
    expect(repo.codec).toBe('brotli');
    await runBackup(source(store), repo);
    await fill(store, 'INBOX', 6, 100, 20_000);
    await runBackup(source(store), repo);
    expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([2]));
    expect(repo.config.version).toBe(2);
    const before = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    await repo.close();
  });

  it('a version-1 repository is read, and written with deflate (flag 1) so older mailstore still reads it', async () => {
    const dir = tmpDir('bkv');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 5, 1, 20_000);
    await (await openRepo(join(dir, 'repo'))).close();
    setVersion(join(dir, 'repo'), 1);
    const repo = await Repository.open(nodeFileSystem, join(dir, 'repo'));
    expect(repo.codec).toBe('deflate');
    await runBackup(source(store), repo);
    await fill(store, 'INBOX', 5, 100, 20_000);
    await runBackup(source(store), repo);
    expect(new Set(recordFlags(join(dir, 'repo')))).toEqual(new Set([1]));
    expect(repo.config.version).toBe(1);
    const before = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    await repo.close();
  });

  it('a repository of an unknown version is refused (INVALID, naming the version) before anything is read or written', async () => {
    const dir = tmpDir('bkv');
    await (await openRepo(join(dir, 'repo'))).close();
    setVersion(join(dir, 'repo'), 4);
    const refused = Repository.open(nodeFileSystem, join(dir, 'repo'));
    await expectCode(refused, 'INVALID');
    await expect(Repository.open(nodeFileSystem, join(dir, 'repo'))).rejects.toThrow(/repository version 4 is not supported/);
    expect(readdirSync(join(dir, 'repo', 'locks'))).toEqual([]);
  });
});
