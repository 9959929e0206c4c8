// reconstruct beside another process holding the store: the repairs it makes before opening (a lost
// journal/ started afresh, an interrupted journal swap finished) are made only under the store's
// lock. A journal/ missing while a repair holds the store is that repair's swap in progress (the old
// journal moved aside, the rebuilt one not yet renamed in): reconstruct made an empty journal/ there,
// and the repair's swap then found one and left its rebuilt journal out.
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { kernelLockHolder, releaseHolder } from '../helpers/lock-holder.js';

describe('reconstruct beside a process holding the store', () => {
  it('journal/ missing for a moment (a repair swapping journals): LOCKED, and nothing is made or moved; once the holder is done, it runs', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const { uid } = await store.append('INBOX', Buffer.from('Subject: kept\r\n\r\nbody\r\n'), { flags: ['\\Flagged'] });
    await store.close();
    const holder = await kernelLockHolder(dir);
    renameSync(join(dir, 'journal'), join(dir, 'journal.moving')); // the swap's first rename done, its second not yet
    const before = readdirSync(dir).sort();
    expect(await codeOf(reconstruct(dir, { lockWaitMs: 0 }))).toBe('LOCKED');
    expect(existsSync(join(dir, 'journal')), 'no empty journal/ made in the swap\'s place').toBe(false);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(existsSync(join(dir, 'quarantine')) ? readdirSync(join(dir, 'quarantine')) : []).toEqual([]);
    renameSync(join(dir, 'journal.moving'), join(dir, 'journal')); // the swap finished
    const waited = reconstruct(dir, { lockWaitMs: 10_000 });
    await releaseHolder(holder);
    expect((await waited).source).toBe('journal');
    const reopened = await Store.open(dir);
    try {
      expect((await reopened.messageInfo('INBOX', uid)).flags).toEqual(['\\Flagged']);
    } finally {
      await reopened.close();
    }
  });
});
