// Counters scrub recomputes from the records and what --repair does when one has drifted: the
// mailboxes' highest modseqs against the store's next modseq (its seq plus the modseq offset).
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { undumpMailboxes } from '../../src/store/mailbox-list.js';
import { MODSEQ_OFFSET_NAME } from '../../src/store/apply.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { repair } from '../../src/scrub/repair.js';
import { tmpDir } from '../helpers/tmp.js';
import { recount } from '../helpers/recount.js';

const message = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);

describe('scrub and drifted counters', () => {
  it('a mailbox whose highest modseq is above the store\'s next one (the modseq offset lost) is damage; --repair raises the offset, so the next change is above it', async () => {
    const store = await Store.open(tmpDir('counters'), { create: true });
    try {
      await undumpMailboxes(store, [{ name: 'user/alice/INBOX', id: 'b1445cf8-5485-4288-bb46-f48aa6be0101', uidValidity: 7, uidNext: 1, highestModseq: 100_000, acl: {}, created: 1, owner: 'alice' }]);
      await store.append('user/alice/INBOX', message(1));
      const highest = (await store.status('user/alice/INBOX')).highestModseq;
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
      // the offset gone, as a --user restore before 3730a7b left it: the next change would get a modseq far below
      await store.administration().mutate({ prepare: async () => ({ ops: [{ op: 'meta.set', key: MODSEQ_OFFSET_NAME, value: null }], result: undefined }) });
      const before = await scrub(store);
      expect(before.findings.filter(isDamage)).toEqual([{ kind: 'modseq-ahead', mailbox: 'user/alice/INBOX', highestModseq: highest, nextModseq: expect.any(Number) }]);
      const repaired = await repair(store, before);
      expect(repaired.unrepaired).toEqual([]);
      await store.setFlags('user/alice/INBOX', 1, { add: ['\\Seen'] });
      expect((await store.messageInfo('user/alice/INBOX', 1)).modseq).toBeGreaterThan(highest);
      expect(await recount(store)).toEqual([]);
      expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
