// Applying journal ops to the index (src/store/apply.ts): what each op kind does to an IndexView;
// that the same log applied live (a flush per record) or as one replay gives the same index bytes;
// and that an op referring to something missing reports a problem instead of inventing it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { keys } from '../../src/keys/index-keys.js';
import { SEEN, applyOpsNow, meta } from '../../src/store/apply.js';
import type { BlobRecord, ChangeRecord, MailboxInfo, MessageRecord, Op, RightsRecord } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';

const inbox = Buffer.alloc(16, 1);
const other = Buffer.alloc(16, 2);
const hashA = Buffer.alloc(32, 0xaa);
const hashB = Buffer.alloc(32, 0xbb);

const create = (id: Buffer, name: string[], uidValidity: number, acl: Record<string, string> = {}): Op =>
  ({ op: 'mailbox.create', id, name, uidValidity, acl, owner: 'alice', created: 1_700_000_000_000 });
const add = (id: Buffer, uid: number, hash: Buffer, size: number, flags: string[] = [], fresh = true): Op =>
  ({ op: 'message.add', id, uid, hash, size, date: 1_700_000_000_000 + uid, flags, pack: 1, offset: 32 * uid, ...(fresh ? { fresh: true as const } : {}) });

/** A log of (seq, ops) touching every op kind. */
const LOG: [number, Op[]][] = [
  [1, [create(inbox, ['INBOX'], 100, { bob: 'lr' })]],
  [2, [create(other, ['Archive'], 101)]],
  [3, [add(inbox, 1, hashA, 10), add(inbox, 2, hashB, 20, [SEEN])]],
  [4, [add(other, 1, hashA, 10, [], false)]],
  [5, [{ op: 'message.flags', id: inbox, set: [[1, [SEEN, '\\Flagged']]] }]],
  [6, [{ op: 'message.expunge', id: inbox, uids: [2] }]],
  [7, [{ op: 'acl.set', id: inbox, identifier: 'carol', rights: 'lrs' }, { op: 'acl.set', id: inbox, identifier: 'bob', rights: '' }]],
  [8, [{ op: 'mailbox.rename', id: other, to: ['Old', 'Archive'] }]],
  [9, [{ op: 'blob.relocate', hash: hashA, pack: 2, offset: 32, size: 10 }]],
  [10, [{ op: 'change.purge', id: inbox, entries: [[6, 2]] }, { op: 'meta.set', key: 'note', value: 'kept' }]],
  [11, [{ op: 'mailbox.deleteBegin', id: other }]],
  [12, [{ op: 'mailbox.deleteEnd', id: other }]],
];

async function freshView(): Promise<{ db: IndexDb; view: IndexView }> {
  const db = await IndexDb.open(join(tmpDir('apply'), 'index'), true);
  return { db, view: new IndexView(db) };
}

function applyLog(view: IndexView, upTo: number, problems: string[] = []): string[] {
  for (const [seq, ops] of LOG) if (seq <= upTo) applyOpsNow(view, seq, ops, (m) => problems.push(m));
  return problems;
}

async function dump(db: IndexDb): Promise<string[]> {
  const out: string[] = [];
  for await (const [key, value] of db.rawIterator({ gte: Buffer.alloc(0), lt: Buffer.from([0xff, 0xff]) })) {
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`);
  }
  return out;
}

describe('applyOpsNow: each op kind', () => {
  it('mailbox.create: name, info, rights and the uidvalidity high-water mark', async () => {
    const { db, view } = await freshView();
    applyLog(view, 2);
    expect(view.getNow<Buffer>(keys.name(['INBOX']))?.equals(inbox)).toBe(true);
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({
      name: ['INBOX'], pastNames: [], uidValidity: 100, uidNext: 1, highestModseq: 1, messages: 0, unseen: 0, bytes: 0, owner: 'alice',
    });
    expect(view.getNow<RightsRecord>(keys.rights('bob', ['INBOX']))).toMatchObject({ rights: 'lr' });
    expect(view.getNow<number>(meta.uidValidityLast)).toBe(101);
    await db.close();
  });

  it('message.add: blob refs (dedup), the message, a change entry and the mailbox counters', async () => {
    const { db, view } = await freshView();
    applyLog(view, 4);
    expect(view.getNow<BlobRecord>(keys.blob(hashA))).toEqual({ p: 1, o: 32, l: 10, r: 2 });
    expect(view.getNow<BlobRecord>(keys.blob(hashB))).toEqual({ p: 1, o: 64, l: 20, r: 1 });
    expect(view.getNow<MessageRecord>(keys.message(inbox, 2))).toMatchObject({ s: 20, f: [SEEN], m: 3 });
    expect(view.getNow<ChangeRecord>(keys.change(inbox, 3, 1))).toBe(0);
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ uidNext: 3, highestModseq: 3, messages: 2, unseen: 1, bytes: 30 });
    await db.close();
  });

  it('message.add: many adds to one mailbox in one record count as one record each would, and never change an info a view below holds', async () => {
    // apply.ts changes its own copy of the info in place within one call (ownedInfo); a stacked
    // view (the writer's pipelined batch) reads the batch below's info object: copied, not changed
    const { db, view } = await freshView();
    applyLog(view, 2);
    applyOpsNow(view, 3, [add(inbox, 1, hashA, 10), add(inbox, 2, hashB, 20, [SEEN]), add(other, 1, hashA, 10, [], false), add(inbox, 3, Buffer.alloc(32, 0xcc), 5)], () => undefined);
    const below = view.getNow<MailboxInfo>(keys.info(inbox))!;
    const belowBefore = JSON.stringify(below);
    expect(below).toMatchObject({ uidNext: 4, highestModseq: 3, messages: 3, unseen: 2, bytes: 35 });
    const stacked = view.stacked();
    applyOpsNow(stacked, 4, [add(inbox, 4, Buffer.alloc(32, 0xdd), 7), add(inbox, 5, Buffer.alloc(32, 0xee), 8, [SEEN])], () => undefined);
    expect(JSON.stringify(view.getNow<MailboxInfo>(keys.info(inbox)))).toBe(belowBefore);
    expect(stacked.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ uidNext: 6, highestModseq: 4, messages: 5, unseen: 3, bytes: 50 });

    // the same adds one record each: the same info, digest included
    const { db: db2, view: one } = await freshView();
    applyLog(one, 2);
    const each: Op[] = [add(inbox, 1, hashA, 10), add(inbox, 2, hashB, 20, [SEEN]), add(other, 1, hashA, 10, [], false), add(inbox, 3, Buffer.alloc(32, 0xcc), 5)];
    each.forEach((op) => applyOpsNow(one, 3, [op], () => undefined));
    applyOpsNow(one, 4, [add(inbox, 4, Buffer.alloc(32, 0xdd), 7)], () => undefined);
    applyOpsNow(one, 4, [add(inbox, 5, Buffer.alloc(32, 0xee), 8, [SEEN])], () => undefined);
    expect(one.getNow<MailboxInfo>(keys.info(inbox))).toEqual(stacked.getNow<MailboxInfo>(keys.info(inbox)));
    expect(one.getNow<MailboxInfo>(keys.info(other))).toEqual(stacked.getNow<MailboxInfo>(keys.info(other)));
    await db.close();
    await db2.close();
  });

  it('message.flags: new flags and modseq, the change entry moves, unseen follows \\Seen', async () => {
    const { db, view } = await freshView();
    applyLog(view, 5);
    expect(view.getNow<MessageRecord>(keys.message(inbox, 1))).toMatchObject({ f: [SEEN, '\\Flagged'], m: 5 });
    expect(view.getNow(keys.change(inbox, 3, 1))).toBeUndefined();
    expect(view.getNow<ChangeRecord>(keys.change(inbox, 5, 1))).toBe(0);
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ unseen: 0, highestModseq: 5, messages: 2 });
    await db.close();
  });

  it('message.expunge: the message goes, a vanished entry stays (unless purged), the blob loses a ref', async () => {
    const { db, view } = await freshView();
    applyLog(view, 6);
    expect(view.getNow(keys.message(inbox, 2))).toBeUndefined();
    expect(view.getNow(keys.change(inbox, 3, 2))).toBeUndefined();
    expect(view.getNow<ChangeRecord>(keys.change(inbox, 6, 2))).toBe(1);
    expect(view.getNow<BlobRecord>(keys.blob(hashB))).toMatchObject({ r: 0 });
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ messages: 1, unseen: 0, bytes: 10, highestModseq: 6 });
    applyOpsNow(view, 13, [{ op: 'message.expunge', id: inbox, uids: [1], purge: true }], () => undefined);
    expect(view.getNow(keys.change(inbox, 13, 1))).toBeUndefined();
    await db.close();
  });

  it('change.floor: raises the vanished floor (never lowers it), drops only listed tombstones at or below it, leaves highestModseq', async () => {
    const { db, view } = await freshView();
    applyLog(view, 6); // uid 2 expunged at 6 (a tombstone), uid 1 changed at 5
    applyOpsNow(view, 20, [{ op: 'change.floor', id: inbox, floor: 6, entries: [[6, 2], [5, 1]] }], () => undefined);
    expect(view.getNow(keys.change(inbox, 6, 2))).toBeUndefined();
    expect(view.getNow<ChangeRecord>(keys.change(inbox, 5, 1))).toBe(0); // a live message's entry is no tombstone
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ vanishedFloor: 6, highestModseq: 6 });
    applyOpsNow(view, 21, [{ op: 'message.expunge', id: inbox, uids: [1] }], () => undefined);
    applyOpsNow(view, 22, [{ op: 'change.floor', id: inbox, floor: 3, entries: [[21, 1]] }], () => undefined);
    expect(view.getNow<ChangeRecord>(keys.change(inbox, 21, 1))).toBe(1); // above the floor: kept
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ vanishedFloor: 6 });
    await db.close();
  });

  it('acl.set grants and revokes in info and the reverse map; rename moves name and rights and keeps the past name', async () => {
    const { db, view } = await freshView();
    applyLog(view, 8);
    expect(view.getNow<MailboxInfo>(keys.info(inbox))?.acl).toEqual({ carol: 'lrs' });
    expect(view.getNow(keys.rights('bob', ['INBOX']))).toBeUndefined();
    expect(view.getNow<RightsRecord>(keys.rights('carol', ['INBOX']))).toMatchObject({ rights: 'lrs' });
    expect(view.getNow(keys.name(['Archive']))).toBeUndefined();
    expect(view.getNow<Buffer>(keys.name(['Old', 'Archive']))?.equals(other)).toBe(true);
    expect(view.getNow<MailboxInfo>(keys.info(other))).toMatchObject({ name: ['Old', 'Archive'], pastNames: [['Archive']] });
    await db.close();
  });

  it('blob.relocate, change.purge, meta.set, and a delete in two steps', async () => {
    const { db, view } = await freshView();
    applyLog(view, 11);
    expect(view.getNow<BlobRecord>(keys.blob(hashA))).toEqual({ p: 2, o: 32, l: 10, r: 2 });
    expect(view.getNow(keys.change(inbox, 6, 2))).toBeUndefined();
    expect(view.getNow(keys.meta('note'))).toBe('kept');
    expect(view.getNow(keys.name(['Old', 'Archive']))).toBeUndefined();
    expect(view.getNow<MailboxInfo>(keys.info(other))).toMatchObject({ deleting: true, highestModseq: 11 });
    expect(view.getNow(meta.deleting(other))).toBe(1);
    applyLog(view, 12);
    expect(view.getNow(keys.info(other))).toBeUndefined();
    expect(view.getNow(meta.deleting(other))).toBeUndefined();
    applyOpsNow(view, 13, [{ op: 'meta.set', key: 'note', value: null }], () => undefined);
    expect(view.getNow(keys.meta('note'))).toBeUndefined();
    await db.close();
  });
});

describe('applyOpsNow: replay', () => {
  it('the same log applied live (a flush per record) and as one replay, twice, gives identical index bytes', async () => {
    const live = await freshView();
    for (const [seq, ops] of LOG) {
      applyOpsNow(live.view, seq, ops, () => { throw new Error('no problem expected'); });
      await live.view.flush();
    }
    const dumps = [await dump(live.db)];
    for (let i = 0; i < 2; i++) {
      const replay = await freshView();
      expect(applyLog(replay.view, Infinity)).toEqual([]);
      await replay.view.flush();
      dumps.push(await dump(replay.db));
      await replay.db.close();
    }
    expect(dumps[0].length).toBeGreaterThan(10);
    expect(dumps[1]).toEqual(dumps[0]);
    expect(dumps[2]).toEqual(dumps[0]);
    await live.db.close();
  });

  it('ops that refer to a missing mailbox, message or blob report a problem and change nothing else', async () => {
    const { db, view } = await freshView();
    applyLog(view, 3);
    await view.flush();
    const before = await dump(db);
    const ghost = Buffer.alloc(16, 9);
    const problems: string[] = [];
    const cases: Op[] = [
      { op: 'mailbox.rename', id: ghost, to: ['x'] },
      { op: 'mailbox.deleteBegin', id: ghost },
      add(ghost, 1, hashA, 10),
      { op: 'message.flags', id: ghost, set: [[1, []]] },
      { op: 'message.expunge', id: ghost, uids: [1] },
      { op: 'acl.set', id: ghost, identifier: 'bob', rights: 'lr' },
      { op: 'blob.relocate', hash: Buffer.alloc(32, 0xcc), pack: 3, offset: 32, size: 1 },
    ];
    for (const op of cases) {
      const count = problems.length;
      applyOpsNow(view, 20, [op], (m) => problems.push(m));
      expect(problems.length, op.op).toBe(count + 1);
      expect(problems[count], op.op).toMatch(/record 20/);
    }
    expect(view.size).toBe(0); // nothing was written for any of them
    applyOpsNow(view, 21, [{ op: 'message.flags', id: inbox, set: [[99, [SEEN]]] }], (m) => problems.push(m));
    applyOpsNow(view, 22, [{ op: 'message.expunge', id: inbox, uids: [98] }], (m) => problems.push(m));
    expect(problems.slice(-2)).toEqual(['record 21 sets flags on missing message 99', 'record 22 expunges missing message 98']);
    expect(view.getNow<MailboxInfo>(keys.info(inbox))).toMatchObject({ messages: 2, unseen: 1, bytes: 30 });
    await view.flush();
    expect((await dump(db)).filter((e) => !before.includes(e))).toHaveLength(1); // only the info's modseq moved
    await db.close();
  });
});
