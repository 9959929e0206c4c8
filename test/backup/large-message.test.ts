// A store may take messages larger than the default limit (StoreOptions.messageBytesMax, up to
// limits.messageBytesSettingMax): its backup must restore them. A record's decompression is bounded
// by the size its snapshot records for the message, not by the default limit.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
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

describe('a data file that holds one message larger than dataFileBytesMax', () => {
  // A store may take messages up to limits.messageBytesSettingMax (2 GiB), past the 1 GiB bound on
  // a data file: one incompressible message makes its data file that big. Modelled here with the
  // bound lowered below one message of 1 MiB.
  it('checks clean with --read-data: its index lists records that far', { timeout: 30_000 }, async () => {
    const dir = tmpDir('bkd');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    const big = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(1024 * 1024)]);
    await store.append('INBOX', big);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    const bound = backupLimits.dataFileBytesMax;
    backupLimits.dataFileBytesMax = 256 * 1024;
    try {
      expect((await checkRepository(repo, { readData: true })).findings.filter((f) => f.damage)).toEqual([]);
    } finally {
      backupLimits.dataFileBytesMax = bound;
      await repo.close();
    }
  });
});
