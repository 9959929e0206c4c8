// Every read a caller can make of an open store waits out an index reopen (IndexDb.reopen, which
// bounds LevelDB's LOG and MANIFEST: index-log.ts): in the moment between LevelDB's close and its
// open a synchronous read of the index fails UNAVAILABLE, so each goes through IndexDb.readNow or a
// path that waits. Reads are started 0-5 turns into each reopen, with the mailbox cache cold.
import { describe, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import { IndexDb } from '../../src/index/index-db.js';
import { limits } from '../../src/limits.js';
import { procedures } from '../../src/daemon/procedures.js';
import { readEvents } from '../../src/events/events.js';
import { parseCursor } from '../../src/events/cursor.js';
import { MailstoreError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const MESSAGES = 6;
const REOPENS = 8;
const body = (i: number) => Buffer.from(`Subject: m${i}\r\n\r\nbody of message ${i}\r\n`);

async function count<T>(items: AsyncIterable<T>): Promise<number> {
  let n = 0;
  for await (const _ of items) n++;
  return n;
}

/** Public reads of the fixed part of the store (user/alice, made before any reopen), each with the answer it must give. */
function reads(store: Store, eventsBefore: number, lastSeqBefore: number): Promise<unknown>[] {
  const calls = procedures(store);
  const inbox = 'user/alice/INBOX';
  const check = async <T>(what: string, read: Promise<T>, expected: (value: T) => void) => {
    let value: T;
    try {
      value = await read;
    } catch (error) {
      throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
    }
    expected(value);
  };
  return [
    check('status', store.status(inbox), (s) => expect(s.messages).toBe(MESSAGES)),
    check('mailbox', store.mailbox(inbox), (m) => expect(m.name).toBe(inbox)),
    check('getAcl', store.getAcl(inbox), (acl) => expect(acl.bob).toBe('lr')),
    check('messageInfo', store.messageInfo(inbox, 2), (info) => expect(info.uid).toBe(2)),
    check('fetch', store.fetch(inbox, 3), (bytes) => expect(bytes.equals(body(2))).toBe(true)),
    check('messages', count(store.messages(inbox)), (n) => expect(n).toBe(MESSAGES)),
    check('readMessages', count(store.readMessages(inbox)), (n) => expect(n).toBe(MESSAGES)),
    check('changesSince', store.changesSince(inbox, 0), (c) => expect(c.changed.length).toBe(MESSAGES)),
    check('listMailboxes', store.listMailboxes({ pattern: 'user/alice/*' }), (list) => expect(list.map((m) => m.name)).toEqual([inbox])),
    check('listMailboxes for bob', store.listMailboxes({ user: 'bob' }), (list) => expect(list.map((m) => m.name)).toEqual([inbox])),
    check('getQuota nearest', calls.getQuota(inbox, { nearest: true }), (q) => expect([q.root, q.usedMessages, q.messages]).toEqual(['user/alice', MESSAGES, 100])),
    check('usage', calls.usage({ user: 'alice' }), (u) => expect(u.map((x) => [x.user, x.messages])).toEqual([['alice', MESSAGES]])),
    check('messagesInTree', calls.messagesInTree('user/alice'), (n) => expect(n).toBe(MESSAGES)),
    check('dumpMailboxes', count(calls.dumpMailboxes()), (n) => expect(n).toBeGreaterThanOrEqual(2)),
    check('events', (async () => {
      let n = 0;
      for await (const event of readEvents(store, parseCursor('0'))) if (Number(event.cursor.split('.')[0]) <= lastSeqBefore) n++;
      return n;
    })(), (n) => expect(n).toBe(eventsBefore)),
    check('stateOps', count(calls.stateOps()), (n) => expect(n).toBeGreaterThan(MESSAGES)),
    check('stats', store.stats(), (s) => expect(s.mailboxes).toBeGreaterThanOrEqual(2)),
    // a mailbox that is not there: NOT_FOUND (orMoved reads the moved-user marks synchronously)
    check('status of a missing mailbox', store.status('user/carol/INBOX').then(() => 'found', (error: unknown) => (error as MailstoreError).code), (code) => expect(code).toBe('NOT_FOUND')),
  ];
}

describe('reads during index reopens', () => {
  it('status, ACLs, listings, quota, usage, changes, events and state reads started in a reopen all answer right', async () => {
    const saved = { indexLogBytesMax: limits.indexLogBytesMax, indexLogCheckMs: limits.indexLogCheckMs };
    const original = IndexDb.prototype.reopen;
    const during: Promise<unknown>[] = [];
    const failures = new Set<string>(); // the reads that failed, by name
    let battery: (() => Promise<unknown>[]) | undefined;
    const runBattery = async () => {
      for (const result of await Promise.allSettled(battery?.() ?? [])) {
        if (result.status === 'rejected') failures.add((result.reason as Error).message.split(':')[0]!);
      }
    };
    let store!: Store;
    const reopen = vi.spyOn(IndexDb.prototype, 'reopen').mockImplementation(function (this: IndexDb) {
      for (let ticks = 0; ticks <= 5; ticks++) {
        let left = ticks;
        during.push(new Promise((resolve) => {
          const tick = () => {
            if (left-- > 0) return void setImmediate(tick);
            store.maintenance().forgetMailboxes();
            resolve(runBattery());
          };
          tick();
        }));
      }
      return original.call(this);
    });
    try {
      store = await Store.open(tmpDir(), { create: true, autoSnapshot: false });
      await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
      await store.createMailbox('churn');
      for (let i = 0; i < MESSAGES; i++) await store.append('user/alice/INBOX', body(i));
      await store.setAcl('user/alice/INBOX', 'bob', 'lr');
      await procedures(store).setQuota('user/alice', { messages: 100 });
      const lastSeqBefore = store.changes.lastSeq;
      const eventsBefore = await count(readEvents(store, parseCursor('0')));
      battery = () => reads(store, eventsBefore, lastSeqBefore);
      await Promise.all(battery()); // the answers, before any reopen
      // every commit from here measures (indexLogCheckMs 0) and finds the bound passed: a reopen
      Object.assign(limits, { indexLogBytesMax: 0, indexLogCheckMs: 0 });
      const internals = store as unknown as { compaction?: Promise<unknown> };
      let stop = false;
      // besides those started in each reopen, readers running all along: some are between two of
      // their awaits when a reopen closes LevelDB
      const readers = [0, 1].map(async () => { while (!stop) await runBattery(); });
      for (let i = 0; reopen.mock.calls.length < REOPENS; i++) {
        await store.append('churn', body(100 + i));
        while (internals.compaction) await internals.compaction;
      }
      stop = true;
      await Promise.all(readers);
      Object.assign(limits, saved);
      await Promise.all(during);
      expect(during.length).toBe(6 * reopen.mock.calls.length);
      expect([...failures]).toEqual([]); // wt49f's: readMessages and getQuota nearest, with usage in some runs
      expect(store.health.findings).toEqual([]);
    } finally {
      Object.assign(limits, saved);
      reopen.mockRestore();
      await store?.close();
    }
  }, 120_000);
});
