// A store opened through a symbolic link (/var/spool/mailstore -> /srv/disk1/mail) whose link an
// admin or a config-management run repoints (ln -sfn /srv/disk2/mail) while the store is open.
// Every file the store created after that went by the link into the other store: its new journal
// segments (acknowledged mail, bodies inline), packs, snapshots and LevelDB's files. The store it
// was opened as reopened degraded with those records missing, and the other one with foreign
// segments.
import { existsSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\n${'body '.repeat(200)} ${i}\r\n`);

describe('a store opened through a symbolic link that is repointed while it is open', () => {
  it('goes on in the directory it opened: nothing acknowledged is lost, nothing is written into the other store', async () => {
    const base = tmpDir('links');
    const [a, b, link] = [join(base, 'a'), join(base, 'b'), join(base, 'mail')];
    await (await Store.open(a, { create: true })).close();
    const other = await Store.open(b, { create: true });
    await other.createMailbox('INBOX');
    await other.close();
    symlinkSync(a, link);
    const store = await Store.open(link, { packBytesMax: 16 * 1024, journalSegmentBytesMax: 16 * 1024, inlineBodyBytesMax: 512 });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 5; i++) await store.append('INBOX', msg(i));
    symlinkSync(b, join(base, 'new'));
    renameSync(join(base, 'new'), link); // ln -sfn b mail
    for (let i = 6; i <= 60; i++) await store.append('INBOX', msg(i)); // new packs and journal segments
    await store.snapshot();
    await store.close();

    const reopened = await Store.open(a);
    try {
      expect(reopened.health.degraded, reopened.health.findings.join('; ')).toBe(false);
      for (let uid = 1; uid <= 60; uid++) expect(await reopened.fetch('INBOX', uid)).toEqual(msg(uid));
    } finally {
      await reopened.close();
    }
    const untouched = await Store.open(b);
    try {
      expect(untouched.health.degraded, untouched.health.findings.join('; ')).toBe(false);
      expect((await untouched.status('INBOX')).messages).toBe(0);
      expect(readdirSync(join(b, 'journal')).filter((name) => name.endsWith('.jnl'))).toEqual(['0000000000000001.jnl']);
      expect(existsSync(join(b, 'snapshots'))).toBe(false);
      expect(readdirSync(join(b, 'packs'))).toEqual(['STORE-ID']);
    } finally {
      await untouched.close();
    }
  }, 60_000);
});
