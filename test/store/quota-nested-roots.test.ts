// A quota root over many users who each have their own root (Cyrus: a domain-wide limit over
// per-user ones): a delivery counted against the wide root must not cost mailboxes x nested roots.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { getQuota, setQuota } from '../../src/store/quota.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';

const USERS = 5000;

describe('quota over many nested roots', () => {
  it('delivers under a root with 5000 nested user roots in milliseconds, counting only what is not below them', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    for (let at = 0; at < USERS; at += 1000) {
      await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
        await store.createMailbox(`user/u${at + i}/INBOX`, { owner: `u${at + i}` });
        await setQuota(store, `user/u${at + i}`, { messages: 100 });
      }));
    }
    for (let i = 0; i < 3; i++) await store.append('user/u7/INBOX', Buffer.from(`Subject: own root ${i}\r\n\r\nx\r\n`)); // counts against user/u7
    await store.createMailbox('user/nobody/INBOX', { owner: 'nobody' });
    await setQuota(store, 'user', { messages: 2 });
    const first = await store.append('user/nobody/INBOX', Buffer.from('Subject: 1\r\n\r\nx\r\n'));
    const second = await store.append('user/nobody/INBOX', Buffer.from('Subject: 2\r\n\r\nx\r\n'));
    expect(await codeOf(store.append('user/nobody/INBOX', Buffer.from('Subject: 3\r\n\r\nx\r\n')))).toBe('OVER_QUOTA');
    expect([first.uid, second.uid]).toEqual([1, 2]);
    expect(await getQuota(store, 'user')).toMatchObject({ usedMessages: 2 });
    expect(await getQuota(store, 'user/u7')).toMatchObject({ usedMessages: 3 });
    await store.close();
  }, 30_000); // each delivery took ~20 s before: every mailbox checked against every nested root
});
