// Work on many messages is bounded per turn of the event loop: a change to many uids (setFlags,
// expunge) commits in parts, and changesSince reads its records in pieces, so a delivery is not held.
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { limits } from '../../src/limits.js';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { expungeBefore } from '../../src/store/retention.js';
import { tmpDir } from '../helpers/tmp.js';
import { internalsOf } from '../helpers/internals.js';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
const part = limits.uidChangePartMessages;
afterEach(() => { limits.uidChangePartMessages = part; });

async function storeWith(count: number): Promise<Store> {
  const store = await Store.open(join(tmpDir('uid-parts'), 's'), { create: true });
  await store.createMailbox('user/a/INBOX');
  await store.createMailbox('user/b/INBOX');
  await store.appendBatch('user/a/INBOX', Array.from({ length: count }, (_, i) => ({ bytes: msg(i) })));
  return store;
}

async function listed(store: Store, mailbox: string) {
  const all = [];
  for await (const info of store.messages(mailbox)) all.push(info);
  return all;
}

const uids = (count: number) => Array.from({ length: count }, (_, i) => i + 1);

describe('a change to many uids commits in parts', () => {
  it('setFlags on 1000 uids: parts of at most 100, a delivery issued meanwhile commits before the change finishes', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const order: string[] = [];
    const flags = store.setFlags('user/a/INBOX', uids(1000), { add: ['\\Seen'] }).then((r) => { order.push('flags'); return r; });
    const delivery = store.append('user/b/INBOX', msg(-1)).then((r) => { order.push('delivery'); return r; });
    const [result] = await Promise.all([flags, delivery]);
    expect(order).toEqual(['delivery', 'flags']);
    expect(result.updated).toEqual(uids(1000));
    const { changed } = await store.changesSince('user/a/INBOX', 0);
    expect(changed.every((m) => m.flags.includes('\\Seen'))).toBe(true);
    const modseqs = new Set(changed.map((m) => m.modseq));
    expect(modseqs.size).toBe(10);
    expect(result.modseq).toBe(Math.max(...modseqs));
    await store.close();
  });

  it('expunge of 1000 uids: parts of at most 100, a delivery issued meanwhile commits first, nothing else lost', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const order: string[] = [];
    const expunge = store.expunge('user/a/INBOX', uids(999)).then((r) => { order.push('expunge'); return r; });
    const delivery = store.append('user/a/INBOX', msg(-1)).then((r) => { order.push('delivery'); return r; });
    const [result, delivered] = await Promise.all([expunge, delivery]);
    expect(order).toEqual(['delivery', 'expunge']);
    expect(result.expunged).toEqual(uids(999));
    expect((await listed(store, 'user/a/INBOX')).map((m) => m.uid)).toEqual([1000, delivered.uid]);
    await store.close();
  });

  it('an expunge in parts of a uid range past the last message leaves mail delivered meanwhile whose uid the range names: the call takes the messages there when it began', async () => {
    // an IMAP server's UID EXPUNGE 1:1010 handed on as given, and a delivery between its parts
    // took uid 1001: the last part expunged it, acknowledged mail lost
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const expunge = store.expunge('user/a/INBOX', uids(1010));
    const delivery = store.append('user/a/INBOX', msg(-1));
    const [result, delivered] = await Promise.all([expunge, delivery]);
    expect(delivered.uid).toBe(1001);
    expect(result.expunged).toEqual(uids(1000));
    expect((await listed(store, 'user/a/INBOX')).map((m) => m.uid)).toEqual([1001]);
    await store.close();
  });

  it('setFlags in parts of a uid range past the last message leaves a message delivered meanwhile as it came', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const flags = store.setFlags('user/a/INBOX', uids(1010), { add: ['\\Deleted'] });
    const delivery = store.append('user/a/INBOX', msg(-1));
    const [result, delivered] = await Promise.all([flags, delivery]);
    expect(result.updated).toEqual(uids(1000));
    expect((await store.messageInfo('user/a/INBOX', delivered.uid)).flags).toEqual([]);
    await store.close();
  });

  it('the event loop turns between parts (a part may be flushed in this thread)', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    (store as unknown as { writer: { flushChoice: { inThread(): boolean } } }).writer.flushChoice.inThread = () => true;
    let turns = 0, done = false;
    const spin = () => { if (!done) { turns++; setImmediate(spin); } };
    setImmediate(spin);
    await store.setFlags('user/a/INBOX', uids(1000), { add: ['\\Seen'] });
    done = true;
    expect(turns).toBeGreaterThanOrEqual(9);
    await store.close();
  });

  it('a part is never flushed in this thread, whose fdatasync would hold the other clients of a daemon; a lone small change still may be', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    let asked = 0; // FlushChoice is asked only for a commit that may flush in this thread
    (store as unknown as { writer: { flushChoice: { inThread(): boolean } } }).writer.flushChoice.inThread = () => { asked++; return true; };
    await store.setFlags('user/a/INBOX', uids(1000), { add: ['\\Seen'] });
    await store.expunge('user/a/INBOX', uids(500));
    expect(asked).toBe(0); // before: 15, one a part
    await store.setFlags('user/a/INBOX', [600], { add: ['\\Flagged'] });
    expect(asked).toBe(1);
    await store.close();
  });

  it('a part reads its messages and their blobs in round trips off the event loop, not one synchronous read a uid', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(1000);
    const db = internalsOf(store).db;
    await db.settle(); // the appended entries in LevelDB, not in a batch still landing
    const level = (db as unknown as { db: { getSync(key: Buffer): unknown; getMany(keys: Buffer[]): Promise<unknown> } }).db;
    const counts = { sync: 0, many: 0 };
    const [getSync, getMany] = [level.getSync.bind(level), level.getMany.bind(level)];
    level.getSync = (key) => { counts.sync++; return getSync(key); };
    level.getMany = (keyList) => { counts.many++; return getMany(keyList); };
    const flagged = await store.setFlags('user/a/INBOX', uids(1000), { add: ['\\Seen'] });
    expect(flagged.updated).toHaveLength(1000);
    // before: 2 synchronous reads a uid (prepare, apply) = 2,000; now the mailbox's few a part
    expect(counts.sync).toBeLessThanOrEqual(10 * 4);
    expect(counts.many).toBeLessThanOrEqual(10);
    await db.settle();
    Object.assign(counts, { sync: 0, many: 0 });
    const result = await store.expunge('user/a/INBOX', uids(1000));
    expect(result.expunged).toEqual(uids(1000));
    // before: 3 a uid (prepare, apply, the blob's release) = 3,000; now 2 round trips a part
    expect(counts.sync).toBeLessThanOrEqual(10 * 4);
    expect(counts.many).toBeLessThanOrEqual(10 * 2);
    expect((await store.status('user/a/INBOX')).messages).toBe(0);
    await store.close();
  });

  it('deleting a mailbox of many messages reads each record\'s messages and blobs in round trips off the event loop, not one synchronous read a message', async () => {
    const tunable = limits as { deleteChunkMessages: number };
    const chunk = limits.deleteChunkMessages;
    tunable.deleteChunkMessages = 100;
    try {
      const store = await storeWith(1000);
      const db = internalsOf(store).db;
      await db.settle();
      const level = (db as unknown as { db: { getSync(key: Buffer): unknown; getMany(keys: Buffer[]): Promise<unknown> } }).db;
      const counts = { sync: 0, many: 0 };
      const [getSync, getMany] = [level.getSync.bind(level), level.getMany.bind(level)];
      level.getSync = (key) => { counts.sync++; return getSync(key); };
      level.getMany = (keyList) => { counts.many++; return getMany(keyList); };
      await store.deleteMailbox('user/a/INBOX');
      // before: 2 a message (its entry and its blob's, in the apply) = 2,000, which held a daemon's
      // event loop for seconds a record at 190k messages; now 2 round trips a record of 100
      expect(counts.sync).toBeLessThanOrEqual(10 * 4);
      expect(counts.many).toBeLessThanOrEqual(10 * 2 + 4);
      expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['user/b/INBOX']);
      expect((await store.stats()).unreferencedBlobs).toBe(1000);
      await store.close();
    } finally {
      tunable.deleteChunkMessages = chunk;
    }
  });

  it('deleting a mailbox expunges its messages in records no bigger than a part of expunge (a record is one turn of the event loop)', async () => {
    const store = await storeWith(5000);
    const seqOfProbe = async (i: number) => {
      await store.append('user/b/INBOX', msg(-i));
      return (await store.status('user/b/INBOX')).highestModseq;
    };
    const before = await seqOfProbe(1);
    await store.deleteMailbox('user/a/INBOX');
    const records = (await seqOfProbe(2)) - before - 1;
    // its begin and end, and the expunges (each with its change-log entries) in parts; in records
    // of 10,000 each apply held a daemon's every client for 2-3 s at 190k (load ~20 on 2 cores)
    expect(records).toBeGreaterThanOrEqual(2 + Math.ceil(5000 / limits.uidChangePartMessages));
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['user/b/INBOX']);
    await store.close();
  });

  it('retention (expunge --before) of many messages commits in parts of expunge, each reading its messages and blobs in round trips, not one synchronous read a message', async () => {
    // limits.retentionChunkMessages (10,000) is the size of a call to expunge, not of a record:
    // expunge splits it into parts of uidChangePartMessages, each prefetched (messagesOfPart)
    limits.uidChangePartMessages = 100;
    const store = await Store.open(join(tmpDir('uid-parts'), 's'), { create: true });
    await store.createMailbox('user/a/INBOX');
    await store.appendBatch('user/a/INBOX', Array.from({ length: 1000 }, (_, i) => ({ bytes: msg(i), internalDate: new Date(Date.UTC(2020, 0, 1)) })));
    const db = internalsOf(store).db;
    await db.settle();
    const level = (db as unknown as { db: { getSync(key: Buffer): unknown } }).db;
    let sync = 0;
    const getSync = level.getSync.bind(level);
    level.getSync = (key) => { sync++; return getSync(key); };
    const before = (await store.status('user/a/INBOX')).highestModseq;
    const [result] = await expungeBefore(store, 'user/a/INBOX', { before: new Date(Date.UTC(2021, 0, 1)) });
    expect(result.uids).toEqual(uids(1000));
    // a record a part (each a modseq), and a handful of synchronous reads a part (its mailbox's name
    // and entry), not 2 a message (2,000 here; 20,000 a record of 10,000 held a daemon for seconds)
    expect((await store.status('user/a/INBOX')).highestModseq - before).toBeGreaterThanOrEqual(10);
    expect(sync).toBeLessThanOrEqual(10 * 4);
    await store.close();
  });

  it('a mailbox renamed and another made under its name between parts is left alone: NOT_FOUND', async () => {
    limits.uidChangePartMessages = 100;
    const store = await storeWith(300);
    const flags = store.setFlags('user/a/INBOX', uids(300), { add: ['\\Flagged'] }).catch((error: unknown) => error);
    await store.renameMailbox('user/a/INBOX', 'user/a/Old');
    await store.createMailbox('user/a/INBOX');
    await store.appendBatch('user/a/INBOX', Array.from({ length: 300 }, (_, i) => ({ bytes: msg(1000 + i) })));
    const error = await flags;
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('NOT_FOUND');
    expect((await listed(store, 'user/a/INBOX')).every((m) => !m.flags.includes('\\Flagged'))).toBe(true);
    expect(await listed(store, 'user/a/Old')).toHaveLength(300);
    await store.close();
  });
});

describe('changesSince over many messages', () => {
  it('reads the changed records in pieces of at most limits.readBatchMessages, each its own round trip', async () => {
    const store = await storeWith(1000);
    const db = internalsOf(store).db;
    const snapshotOf = db.snapshot.bind(db);
    const reads: number[] = [];
    db.snapshot = async () => {
      const snapshot = await snapshotOf();
      const getMany = snapshot.getMany.bind(snapshot);
      snapshot.getMany = (keyList) => { reads.push(keyList.length); return getMany(keyList); };
      return snapshot;
    };
    const { changed } = await store.changesSince('user/a/INBOX', 0);
    expect(changed.map((m) => m.uid)).toEqual(uids(1000));
    expect(reads.length).toBeGreaterThan(1);
    expect(Math.max(...reads)).toBeLessThanOrEqual(limits.readBatchMessages);
    await store.close();
  });
});
