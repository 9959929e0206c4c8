// A mailbox named in another Unicode spelling than the store's (NFD, as macOS terminals and pasted
// names give: 'Cafe\u0301' for 'Café') is the one mailbox the store keeps in NFC (README, "The
// library"), for export as for every other command.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportMailbox } from '../../src/import/exporter.js';
import { tmpDir } from '../helpers/tmp.js';
import { withStore } from './helpers.js';

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
});
