// An import whose batch fails (disk full) stops with the error code; what went in before is whole,
// the cursor names exactly it, and the same import run again adds the rest, each message once.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { importMail } from '../../src/import/importer.js';
import { MailstoreError } from '../../src/errors.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

describe('import under a failing disk', () => {
  it('NO_SPACE in the middle: earlier batches kept whole, a re-run completes it with no duplicates', async () => {
    const dir = tmpDir();
    const mbox = join(tmpDir('src'), 'in.mbox');
    const bodies: string[] = [];
    let text = '';
    for (let i = 0; i < 60; i++) {
      const body = `Message-ID: <f${i}@example.org>\nSubject: ${i}\n\n${'x'.repeat(200 + i)}\n`;
      bodies.push(body);
      text += `From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n${body}\n`;
    }
    writeFileSync(mbox, text);
    const fs = new FaultFileSystem();
    let store = await Store.open(dir, { create: true, fs });
    let journalWrites = 0;
    // batches of 10: the third batch's journal write hits a full disk (the two before went in)
    fs.injectAt((op) => op.kind === 'write' && op.path.includes('journal') && ++journalWrites === 4, 'ENOSPC');
    const error = await importMail(store, mbox, { mailbox: 'INBOX', batchMessagesMax: 10 }).catch((e) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('NO_SPACE');
    const kept = (await store.status('INBOX')).messages;
    expect(kept % 10).toBe(0); // whole batches only
    expect(kept).toBeGreaterThanOrEqual(10);
    expect(kept).toBeLessThan(60);
    await store.close();
    fs.clear();
    store = await Store.open(dir, { fs });
    const summary = await importMail(store, mbox, { mailbox: 'INBOX', batchMessagesMax: 10 });
    expect(summary.alreadyImported).toBe(kept);
    const seen: string[] = [];
    for await (const m of store.messages('INBOX')) seen.push((await store.fetch('INBOX', m.uid)).toString());
    expect(seen).toEqual(bodies);
    await store.close();
  });
});
