// `mailbox undump` of a big server's list: 200k mailboxes (a few thousand users' folders) come
// back whole, modseqs going on above the highest listed, not a RangeError before the first one.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { undumpMailboxes, type DumpedMailbox } from '../../src/store/mailbox-list.js';
import { tmpDir } from '../helpers/tmp.js';

const MAILBOXES = 200_000;

describe('undump of a very long mailbox list', () => {
  it('creates 200k listed mailboxes', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const list: DumpedMailbox[] = Array.from({ length: MAILBOXES }, (_, i) => ({
      name: `user/u${i >> 6}/f${i & 63}`,
      id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
      uidValidity: 1000 + i,
      uidNext: 5,
      highestModseq: i === 123_456 ? 9_000_000 : 7,
      acl: {},
      created: 1_700_000_000_000,
    }));
    expect(await undumpMailboxes(store, list)).toEqual({ created: MAILBOXES });
    expect((await store.listMailboxes({ pattern: 'user/u3124/*' })).map((m) => m.name)).toHaveLength(64);
    await store.createMailbox('new');
    await store.append('new', Buffer.from('Subject: x\r\n\r\nx\r\n'));
    expect((await store.status('new')).highestModseq).toBeGreaterThan(9_000_000);
    await store.close();
  }, 300_000); // 14 s on a quiet CI; over 60 s (the bound before) at load 18
});
