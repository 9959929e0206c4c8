// A store may take messages larger than the default limit (StoreOptions.messageBytesMax, up to
// limits.messageBytesSettingMax): its backup must restore them. A record's decompression is bounded
// by the size its snapshot records for the message, not by the default limit.
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import type { Repository } from '../../src/backup/repository.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { backupLimits, limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { openRepo, source } from './helpers.js';

describe('a message over the default size limit', () => {
  it('is backed up compressed, checks clean with --read-data, and restores exactly', { timeout: 60_000 }, async () => {
    const dir = tmpDir('bkl');
    const messageBytesMax = limits.messageBytesMax * 2;
    const store = await Store.init(join(dir, 's'), { messageBytesMax });
    await store.createMailbox('INBOX');
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(limits.messageBytesMax + 1024 * 1024, 'a line of text\r\n')]);
    const { uid } = await store.append('INBOX', big);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    expect((await checkRepository(repo, { readData: true })).findings.filter((f) => f.damage)).toEqual([]);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    await repo.close();
    const restored = await Store.open(join(dir, 'r'), { messageBytesMax });
    expect((await restored.fetch('INBOX', uid)).equals(big)).toBe(true);
    await restored.close();
  });
});

/** A repository whose one data file holds a 1 MiB incompressible message; `read` checks it with dataFileBytesMax lowered below it. */
async function checkedWithLowBound(lose: (repo: Repository) => void, read: (kinds: string[]) => void): Promise<void> {
  const dir = tmpDir('bkd');
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(1024 * 1024)]);
  await store.append('INBOX', big);
  const repo = await openRepo(join(dir, 'repo'));
  await runBackup(source(store), repo);
  await store.close();
  lose(repo);
  const bound = backupLimits.dataFileBytesMax;
  backupLimits.dataFileBytesMax = 256 * 1024;
  try {
    read((await checkRepository(repo, { readData: true })).findings.filter((f) => f.damage).map((f) => f.kind));
  } finally {
    backupLimits.dataFileBytesMax = bound;
    await repo.close();
  }
}

describe('a data file that holds one message larger than dataFileBytesMax', () => {
  // A store may take messages up to limits.messageBytesSettingMax (2 GiB), past the 1 GiB bound on
  // a data file: one incompressible message makes its data file that big. Modelled here with the
  // bound lowered below one message of 1 MiB.
  it('checks clean with --read-data: its index lists records that far', { timeout: 30_000 }, async () => {
    await checkedWithLowBound(() => undefined, (kinds) => expect(kinds).toEqual([]));
  });

  it('with its index file lost, --read-data reads it as far as the records a scan finds in it: scanned-data, not damaged-data', { timeout: 30_000 }, async () => {
    const loseIndex = (repo: Repository) => {
      for (const name of readdirSync(repo.path('index'))) rmSync(repo.path('index', name));
      rmSync(repo.path('tips'), { recursive: true, force: true });
    };
    await checkedWithLowBound(loseIndex, (kinds) => expect(kinds).toEqual(['scanned-data']));
  });
});
