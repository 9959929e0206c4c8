// The per-mailbox digest of `replica check` is a wire format (both sides must compute the same
// value) and is kept by apply: the kept value must equal the one a scan of the messages computes
// after adds, flag changes, expunges, copies and a rebuild; a message's mix depends on each of
// uid, hash, flags and modseq, and XOR makes the set's digest independent of order.
import { describe, expect, it } from 'vitest';
import { digestHex, emptyDigest, toggleMessage } from '../../src/store/mailbox-digest.js';
import type { MailboxInfo, MessageRecord } from '../../src/store/records.js';
import { mailboxDigests, rangeDigest, UID_MAX } from '../../src/replication/digest.js';
import { keys } from '../../src/keys/index-keys.js';
import { IndexView } from '../../src/index/index-db.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg } from './helpers.js';

const record = (fill: number, f: string[], m: number): MessageRecord => ({ h: Buffer.alloc(32, fill), s: 10, d: 0, f, m });
const hexOf = (entries: [number, MessageRecord][]) => {
  const d = emptyDigest();
  for (const [uid, r] of entries) toggleMessage(d, uid, r);
  return digestHex(d);
};

describe('message mix', () => {
  it('is pinned (a wire format), depends on every field, and XORs out again', () => {
    expect(hexOf([[1, record(1, ['\\Seen', 'Ünïcode'], 2 ** 40 + 5)]])).toMatchInlineSnapshot(`"a7372d3986b7cd7476cf08c0d685177e"`);
    const base = hexOf([[4, record(4, ['a'], 7)]]);
    for (const other of [hexOf([[5, record(4, ['a'], 7)]]), hexOf([[4, record(5, ['a'], 7)]]), hexOf([[4, record(4, ['b'], 7)]]), hexOf([[4, record(4, ['a'], 8)]]), hexOf([[4, record(4, ['a', ''], 7)]])]) {
      expect(other).not.toBe(base);
    }
    const set: [number, MessageRecord][] = [[1, record(1, [], 1)], [2, record(2, ['x'], 2)], [3, record(3, ['y', 'z'], 3)]];
    expect(hexOf(set)).toBe(hexOf([...set].reverse()));
    expect(hexOf([...set, set[1]])).toBe(hexOf([set[0], set[2]]));
    expect(hexOf([])).toBe('0'.repeat(32));
  });
});

describe('kept mailbox digests', () => {
  it('equal a scan of the messages through adds, flags, expunges and copies, and after a rebuild', async () => {
    const store = await Store.open(tmpDir('digest'), { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Other');
      for (let i = 1; i <= 40; i++) await store.append('INBOX', msg(i), { flags: i % 3 === 0 ? ['\\Seen'] : [] });
      await store.setFlags('INBOX', [2, 5, 9], { add: ['\\Flagged', 'Keyword'] });
      await store.expunge('INBOX', [3, 4, 30]);
      await store.copy('INBOX', [1, 2, 5], 'Other');
      const agree = async () => {
        const db = store.replication().db; // a rebuild swaps the index in
        const kept = await mailboxDigests(db);
        const scanned = await mailboxDigests(db, true);
        expect(kept).toEqual(scanned);
        return kept;
      };
      const kept = await agree();
      expect(kept.find((m) => m.name === 'INBOX')).toMatchObject({ count: 37 });
      expect(new Set(kept.map((m) => m.digest)).size).toBe(2);
      await store.maintenance().reconstructIndex();
      expect(await agree()).toEqual(kept);
    } finally {
      await store.close();
    }
  });

  it('a mailbox without a kept digest (made before digests existed) is scanned', async () => {
    const store = await Store.open(tmpDir('digest-legacy'), { create: true });
    try {
      await store.createMailbox('INBOX');
      for (let i = 1; i <= 5; i++) await store.append('INBOX', msg(i));
      const db = store.replication().db;
      const [before] = await mailboxDigests(db);
      const id = Buffer.from(before.id, 'hex');
      const view = new IndexView(db);
      const { digest: _kept, ...legacy } = db.getNow<MailboxInfo>(keys.info(id))!;
      view.put(keys.info(id), legacy);
      await view.flush();
      expect(db.getNow<MailboxInfo>(keys.info(id))!.digest).toBeUndefined();
      expect(await mailboxDigests(db)).toEqual([before]);
      expect((await rangeDigest(db, id, 1, UID_MAX)).digest).toBe(before.digest);
    } finally {
      await store.close();
    }
  });
});
