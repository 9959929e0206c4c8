// Deleting a tree of many mailboxes (a departed user with thousands of folders, the 50k a broken
// client created): the mailboxes end many to a record, not one commit (and a scan over every name
// the intent record freed) apiece, and nobody else's mail is touched — live, and when open
// finishes a delete a crash interrupted.
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { deleteMailboxTree } from '../../src/store/users.js';
import { undumpMailboxes } from '../../src/store/mailbox-list.js';
import { limits } from '../../src/limits.js';
import type { MailboxInfo, Op } from '../../src/store/records.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { tmpDir } from '../helpers/tmp.js';

const MAILBOXES = 30_000;
const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
const tunable = limits as { deleteChunkMessages: number; deleteChunkMailboxes: number };
const saved = [limits.deleteChunkMessages, limits.deleteChunkMailboxes];
afterEach(() => { [tunable.deleteChunkMessages, tunable.deleteChunkMailboxes] = saved; });

/** bob: `count` empty folders (ids spread over the id space) and three with mail; zed and amy: mail of their own. */
async function manyFolders(count: number): Promise<Store> {
  const store = await Store.open(tmpDir(), { create: true });
  const list = Array.from({ length: count }, (_, i) => ({
    name: `user/bob/f${i}`,
    id: `${(i * 2_654_435_761 % 0x1_0000_0000).toString(16).padStart(8, '0')}-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    uidValidity: 1000 + i,
    acl: {},
    created: 1_700_000_000_000,
  }));
  for (let at = 0; at < list.length; at += 10_000) await undumpMailboxes(store, list.slice(at, at + 10_000));
  for (const name of ['user/amy/INBOX', 'user/bob/INBOX', 'user/bob/Sent', 'user/bob/f7/Deep', 'user/zed/INBOX']) await store.createMailbox(name);
  for (let i = 1; i <= 30; i++) await store.append(['user/amy/INBOX', 'user/bob/INBOX', 'user/bob/Sent', 'user/bob/f7/Deep', 'user/zed/INBOX'][i % 5], msg(i % 12));
  await store.setFlags('user/bob/INBOX', [1], { add: ['\\Seen'] });
  await store.expunge('user/bob/Sent', [1]); // a change-log entry left with no message
  await store.append('user/zed/INBOX', msg(3)); // shares a body with bob's mail
  return store;
}

/** The seq of a probe append's record (amy's mailbox's highest modseq after it). */
async function probeSeq(store: Store, i: number): Promise<number> {
  await store.append('user/amy/INBOX', msg(100 + i));
  return (await store.status('user/amy/INBOX')).highestModseq;
}

/** Journal records committed by `work`: between two probe appends. */
async function recordsOf(store: Store, work: () => Promise<unknown>): Promise<number> {
  const before = await probeSeq(store, 0);
  await work();
  return (await probeSeq(store, 1)) - before - 1;
}

/** amy's and zed's mail as it was (amy's with `probes` more), bob's tree gone. */
async function expectOthersIntact(store: Store, probes: number): Promise<void> {
  expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['user/amy/INBOX', 'user/zed/INBOX']);
  for (const name of ['user/amy/INBOX', 'user/zed/INBOX']) {
    expect((await store.status(name)).messages).toBe(name === 'user/amy/INBOX' ? 6 + probes : 7);
  }
  expect(await store.fetch('user/zed/INBOX', 7)).toEqual(msg(3));
  const stats = await store.stats();
  expect([stats.mailboxes, stats.messages]).toEqual([2, 13 + probes]);
  expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
}

describe('deleting a tree of many empty mailboxes', () => {
  it(`user delete of ${MAILBOXES} folders ends them many to a record; nobody else's mail is touched`, async () => {
    const store = await manyFolders(MAILBOXES);
    let result: unknown;
    const records = await recordsOf(store, async () => { result = await store.deleteUser('bob'); });
    expect(result).toEqual({ user: 'bob', mailboxes: MAILBOXES + 3, messages: 17, aclEntries: 0 });
    // the intent record, bob's expunges, the change-log purge, the ends: one commit a mailbox before
    expect(records).toBeLessThan(50);
    await expectOthersIntact(store, 2);
    await store.close();
  });

  it('mailbox delete --recursive in small chunks: every message expunged, every mailbox ended, across records', async () => {
    // bob's mail over several records, some holding several mailboxes; the ends over many records
    [tunable.deleteChunkMessages, tunable.deleteChunkMailboxes] = [4, 7];
    const store = await manyFolders(500);
    expect(await deleteMailboxTree(store, 'user/bob')).toEqual({ mailboxes: 503, messages: 17 });
    await expectOthersIntact(store, 0);
    await store.close();
  });

  it('open finishes an interrupted delete of 5000 folders many to a record', async () => {
    const store = await manyFolders(5000);
    const ids: Buffer[] = [];
    for await (const [, id] of store.administration().index.entries<Buffer>({ prefix: keys.space(SPACE.name) })) ids.push(Buffer.from(id));
    // the intent record alone, as a crash right after it leaves it (close does not finish it)
    await store.administration().mutate({
      exclusive: true,
      prepare: async ({ view }) => {
        const bob: Op[] = [];
        for (const id of ids) if (view.getNow<MailboxInfo>(keys.info(id))?.name[1] === 'bob') bob.push({ op: 'mailbox.deleteBegin', id });
        return { ops: bob, result: undefined };
      },
    });
    const before = await probeSeq(store, 0);
    const root = store.root;
    await store.close();
    const reopened = await Store.open(root);
    expect((await probeSeq(reopened, 1)) - before - 1).toBeLessThan(20); // one a mailbox before
    await expectOthersIntact(reopened, 2);
    await reopened.close();
  });
});
