// A mailbox named in another Unicode spelling than the store's (NFD, as macOS terminals and pasted
// names give: 'Cafe\u0301' for 'Café') is the one mailbox the store keeps in NFC (README, "The
// library"), for export and import as for every other command.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportMailbox } from '../../src/import/exporter.js';
import { cursorKey } from '../../src/import/cursor.js';
import { importMail } from '../../src/import/importer.js';
import { tmpDir } from '../helpers/tmp.js';
import { maildir, withStore } from './helpers.js';

const composed = 'Caf\u00e9';
const decomposed = 'Cafe\u0301';
const message = (i: number) => `Message-ID: <s${i}@example.org>\nSubject: ${i}\n\nbody ${i}\n`;

describe('a mailbox given in its decomposed spelling', () => {
  it('export --recursive: each child becomes its own Maildir++ folder, named whole (was cut two characters short: .Sent and .Tent both .ent)', async () => {
    await withStore(async (store) => {
      for (const name of [composed, `${composed}/Sent`, `${composed}/Tent`]) {
        await store.createMailbox(name);
        await store.append(name, Buffer.from(message(name.length)));
      }
      const out = join(tmpDir('spellings'), 'export');
      const summary = await exportMailbox(store, decomposed, { format: 'maildir', out, recursive: true });
      expect(summary.mailboxes.map((m) => [m.mailbox, m.path, m.messages])).toEqual([
        [composed, out, 1], [`${composed}/Sent`, join(out, '.Sent'), 1], [`${composed}/Tent`, join(out, '.Tent'), 1],
      ]);
      expect(readdirSync(out).filter((name) => name.startsWith('.')).sort()).toEqual(['.Sent', '.Tent']);
      for (const folder of ['.Sent', '.Tent']) expect(readdirSync(join(out, folder, 'cur'))).toHaveLength(1);
    });
  });

  it('import run again in the other spelling resumes the same import: nothing is added twice', async () => {
    await withStore(async (store) => {
      const source = maildir(join(tmpDir('spellings'), 'md'), { '1.a:2,S': message(1), '2.b:2,': message(2) });
      maildir(join(source, '.Sent'), { '3.c:2,S': message(3) });
      expect(await importMail(store, source, { mailbox: `user/jos${composed.slice(3)}` })).toMatchObject({ imported: 3 });
      const again = await importMail(store, source, { mailbox: `user/jos${decomposed.slice(3)}` });
      expect(again).toMatchObject({ imported: 0, alreadyImported: 3, created: [] });
      expect(again.mailboxes.map((m) => m.mailbox)).toEqual(['user/jos\u00e9/INBOX', 'user/jos\u00e9/Sent']);
      expect((await store.status('user/jos\u00e9/INBOX')).messages).toBe(2);
      expect((await store.status('user/jos\u00e9/Sent')).messages).toBe(1);
    });
  });

  it('an import an older mailstore ran in the decomposed spelling (its cursors kept under that spelling) is resumed when given so again', async () => {
    await withStore(async (store) => {
      const source = maildir(join(tmpDir('spellings'), 'md'), { '1.a:2,S': message(1), '2.b:2,': message(2) });
      expect(await importMail(store, source, { mailbox: composed })).toMatchObject({ imported: 2 });
      const key = cursorKey(source, composed);
      await store.setMeta(cursorKey(source, decomposed), await store.getMeta(key)); // where an older mailstore keyed it
      await store.setMeta(key, undefined);
      expect(await importMail(store, source, { mailbox: decomposed })).toMatchObject({ imported: 0, alreadyImported: 2 });
      expect((await store.status(composed)).messages).toBe(2);
    });
  });
});
