// An import's resume cursor (X import/DIGEST, src/import/cursor.ts) stays after the import so that a
// re-run adds nothing; it names the mailbox it belongs to, and one of a deleted mailbox is never
// used again (a mailbox made again under the name starts over). Kept for good, a migration of many
// users left a key per folder in the index, and in every snapshot, for every user deleted since.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importMail } from '../../src/import/importer.js';
import { keys } from '../../src/keys/index-keys.js';
import type { Store } from '../../src/store/store.js';
import { deleteMailboxTree } from '../../src/store/users.js';
import { tmpDir } from '../helpers/tmp.js';
import { maildir, withStore } from './helpers.js';

async function importCursors(store: Store): Promise<number> {
  let count = 0;
  for await (const _ of store.maintenance().index.entries({ prefix: keys.meta('user/import/').subarray(0, -1) }) /* Store.setMeta's namespace */) count++;
  return count;
}

const message = (i: number) => `From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`;

describe('import cursors of deleted mailboxes', () => {
  it('go with the mailbox (user delete, recursive and single mailbox delete); those of mailboxes still there stay, and a re-run still adds nothing', async () => {
    await withStore(async (store) => {
      const sources = new Map<string, string>();
      for (const user of ['bob', 'carol', 'dave', 'erin']) {
        const root = maildir(join(tmpDir('cursors'), user), { a: message(1), b: message(2) });
        maildir(join(root, '.Sent'), { c: message(3) });
        sources.set(user, root);
        await importMail(store, root, { mailbox: `user/${user}` });
      }
      expect(await importCursors(store)).toBe(8); // INBOX and Sent each
      await store.deleteUser('bob');
      await store.deleteMailbox('user/carol/Sent');
      expect(await importCursors(store)).toBe(5);
      await store.deleteMailbox('user/carol/INBOX');
      await deleteMailboxTree(store, 'user/dave'); // mailbox delete --recursive
      expect(await importCursors(store)).toBe(2); // erin's
      expect(await importMail(store, sources.get('erin')!, { mailbox: 'user/erin' })).toMatchObject({ imported: 0, alreadyImported: 3 });
    });
  });
});
