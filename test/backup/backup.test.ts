// Backup and restore through the library: full and incremental runs, exact point-in-time
// restores of a store, a user and a mailbox, and restores into a live store.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { restoreIntoStore, restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, fill, openRepo, source } from './helpers.js';

describe('backup and restore', () => {
  it('a whole store comes back exactly: uids, uidValidity, flags, dates, modseqs, ACLs, owner', async () => {
    const dir = tmpDir('bk');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await store.createMailbox('user/alice/Sent', { owner: 'alice', acl: { bob: 'lr' } });
    await fill(store, 'INBOX', 30);
    await fill(store, 'user/alice/Sent', 10, 100);
    await store.setFlags('INBOX', [2, 3], { add: ['\\Flagged', 'custom'] });
    await store.expunge('INBOX', [5]);
    const repo = await openRepo(join(dir, 'repo'));
    const first = await runBackup(source(store), repo);
    expect(first.newBlobs).toBe(39); // the expunged message's blob is not needed
    expect(first.messages).toBe(39);
    const before = await dump(store);
    await store.close();
    const restored = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    expect(restored.messages).toBe(39);
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    await repo.close();
  });
});
