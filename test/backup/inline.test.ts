// Backup of a store whose messages are inline bodies (docs/FORMAT.md, "Inline bodies"): the
// backup reads them through the store API (verified) and a restore brings every message back.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, message, openRepo, source } from './helpers.js';

describe('backup of inline bodies', () => {
  it('backs up and restores a store of inline deliveries exactly', async () => {
    const dir = tmpDir('bk');
    const store = await Store.open(join(dir, 's'), { create: true, inlineBodyBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    await store.createMailbox('Archive');
    for (let i = 1; i <= 12; i++) await store.append('INBOX', message(i), { flags: i % 2 ? ['\\Seen'] : [] });
    await store.copy('INBOX', [1, 2], 'Archive');
    await store.expunge('INBOX', [3]);
    const repo = await openRepo(join(dir, 'repo'));
    const first = await runBackup(source(store), repo);
    expect(first.newBlobs).toBe(11);
    const before = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    await repo.close();
  });
});
