// User rename and delete (src/store/users.ts): the tree, the owner, every ACL entry and the reverse
// ACL map change together, in one journal record, and a rebuild from the journal gives the same index.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { deleteMailboxTree } from '../../src/store/users.js';
import { dumpMailboxes, formatDumpLine, parseDumpLine, undumpMailboxes } from '../../src/store/mailbox-list.js';
import { getQuota, listQuotas, setQuota } from '../../src/store/quota.js';
import { tmpDir } from '../helpers/tmp.js';
import { internalsOf } from '../helpers/internals.js';
import { limits } from '../../src/limits.js';
import { randomUUID } from 'node:crypto';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe(code);
}

async function populated(): Promise<Store> {
  const store = await Store.open(tmpDir(), { create: true });
  await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
  await store.createMailbox('user/bob/Work', { owner: 'bob' });
  await store.createMailbox('user/bobby/INBOX', { owner: 'bobby' });
  await store.createMailbox('user/alice/INBOX', { owner: 'alice', acl: { bob: 'lr' } });
  await store.createMailbox('shared/p', { acl: { bob: 'lrs', alice: 'lrs' } });
  await store.append('user/bob/INBOX', msg(1));
  await store.append('user/bob/Work', msg(2));
  return store;
}

describe('renameUser', () => {
  it('moves the tree, the owner, every ACL entry and the reverse map in one record', async () => {
    const store = await populated();
    const result = await store.renameUser('bob', 'robert');
    expect(result).toEqual({ from: 'bob', to: 'robert', mailboxes: 2, aclEntries: 4 });
    expect((await store.listMailboxes({ pattern: 'user/*' })).map((m) => m.name)).toEqual(['user/alice/INBOX', 'user/bobby/INBOX', 'user/robert/INBOX', 'user/robert/Work']);
    expect((await store.listMailboxes({ user: 'robert' })).map((m) => m.name)).toEqual(['shared/p', 'user/alice/INBOX', 'user/robert/INBOX', 'user/robert/Work']);
    expect(await store.listMailboxes({ user: 'bob' })).toEqual([]);
    expect(await store.getAcl('shared/p')).toEqual({ alice: 'lrs', robert: 'lrs' });
    expect((await store.mailbox('user/robert/Work')).owner).toBe('robert');
    expect((await store.mailbox('user/bobby/INBOX')).owner).toBe('bobby'); // a name sharing the prefix is untouched
    expect((await store.status('user/robert/INBOX')).messages).toBe(1);
    const check = await store.maintenance().reconstructIndex({ check: true });
    expect(check.differences).toBe(0);
    await store.close();
  });

  it('is one journal record: a store reopened from the journal alone sees all of it', async () => {
    const store = await populated();
    let records = 0;
    const root = store.root;
    await store.close();
    const counted = await Store.open(root, { onCommit: (first, last) => { records += last - first + 1; } });
    await counted.renameUser('bob', 'robert');
    expect(records).toBe(1);
    await counted.close();
    rmSync(join(root, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(root);
    expect(await rebuilt.getAcl('shared/p')).toEqual({ alice: 'lrs', robert: 'lrs' });
    expect((await rebuilt.listMailboxes({ user: 'robert' })).length).toBe(4);
    await rebuilt.close();
  });

  it('merges rights the new name already had, refuses an existing tree and an unknown user', async () => {
    const store = await populated();
    await store.setAcl('shared/p', 'robert', 'w');
    await store.renameUser('bob', 'robert');
    expect((await store.getAcl('shared/p')).robert).toBe('lrsw');
    await expectCode(store.renameUser('robert', 'alice'), 'EXISTS');
    expect((await store.getAcl('shared/p')).robert).toBe('lrsw'); // nothing of the refused rename
    await expectCode(store.renameUser('nobody', 'x'), 'NOT_FOUND');
    await expectCode(store.renameUser('a/b', 'x'), 'INVALID');
    await expectCode(store.renameUser('anyone', 'x'), 'INVALID');
    await expectCode(store.deleteUser('anyone'), 'INVALID');
    await store.close();
  });
  it('refuses (INVALID, nothing renamed) a new user name that would take a mailbox of the tree past the name length bound', async () => {
    const store = await populated();
    // user/bob/ + 1015 bytes: exactly mailboxNameBytesMax (1024); under user/bobby it would be 1026
    const deep = `user/bob/${Array.from({ length: 4 }, () => 'd'.repeat(250)).join('/')}/${'e'.repeat(11)}`;
    expect(Buffer.byteLength(deep)).toBe(1024);
    await store.createMailbox(deep, { owner: 'bob' });
    await store.append(deep, msg(3));
    await expectCode(store.renameUser('bob', 'bobzz'), 'INVALID');
    // every mailbox is still reachable by its name, with its mail
    expect((await store.listMailboxes({ user: 'bob' })).map((m) => m.name)).toContain(deep);
    expect(await store.fetch(deep, 1)).toEqual(msg(3));
    expect(await store.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
    expect(await store.listMailboxes({ pattern: 'user/bobzz/*' })).toEqual([]);
    await store.renameUser('bob', 'b'); // a shorter name fits
    expect(await store.fetch(deep.replace('user/bob/', 'user/b/'), 1)).toEqual(msg(3));
    await store.close();
  });

  it('a tree too big for one journal record is refused INVALID before anything is written, never a record the journal cannot hold (which stopped the store)', async () => {
    const tunable = limits as { journalRecordBytesMax: number };
    const saved = tunable.journalRecordBytesMax;
    tunable.journalRecordBytesMax = 64 * 1024; // as 64 MiB for ~250k mailboxes of long names
    try {
      const store = await populated();
      const entries = Array.from({ length: 2000 }, (_, i) => ({ name: `user/bob/${String(i).padStart(4, '0')}${'x'.repeat(200)}`, id: randomUUID(), uidValidity: 100 + i, acl: {}, created: 1, owner: 'bob' }));
      for (let at = 0; at < entries.length; at += 100) await undumpMailboxes(store, entries.slice(at, at + 100));
      await expectCode(store.renameUser('bob', 'robert'), 'INVALID');
      await expectCode(store.deleteUser('bob'), 'INVALID');
      await expectCode(deleteMailboxTree(store, 'user/bob'), 'INVALID');
      // nothing changed, and the store did not stop
      expect((await store.listMailboxes({ pattern: 'user/bob/*' })).length).toBe(2002);
      expect(await store.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      await store.renameMailbox('user/bob/Work', 'user/bob/Job');
      await store.close();
    } finally {
      tunable.journalRecordBytesMax = saved;
    }
  });

  it("takes the user's quota roots along (as Cyrus's rename does): the renamed tree stays under its limits", async () => {
    const store = await populated();
    await setQuota(store, 'user/bob', { messages: 2 });
    await setQuota(store, 'user/bob/Work', { storage: 1000 });
    await setQuota(store, 'user/bobby', { messages: 5 }); // a name sharing the prefix keeps its own
    await store.renameUser('bob', 'robert');
    const roots = async (s: Store) => (await listQuotas(s)).map((q) => [q.root, q.limits]);
    const expected = [['user/bobby', { messages: 5 }], ['user/robert', { messages: 2 }], ['user/robert/Work', { storage: 1000 }]];
    expect(await roots(store)).toEqual(expected);
    expect(await getQuota(store, 'user/robert')).toMatchObject({ messages: 2, usedMessages: 1 }); // Work's counts against user/robert/Work
    await store.append('user/robert/INBOX', msg(3));
    await expectCode(store.append('user/robert/INBOX', msg(4)), 'OVER_QUOTA'); // bob's limit holds for robert
    expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    const root = store.root;
    await store.close();
    rmSync(join(root, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(root);
    expect(await roots(rebuilt)).toEqual(expected);
    // a tree's mailbox rename moves them too, in the same record
    expect(await rebuilt.renameMailbox('user/robert', 'user/rob')).toEqual({ renamed: 2 });
    await rebuilt.renameMailbox('user/rob/Work', 'user/rob/Job');
    expect((await listQuotas(rebuilt)).map((q) => q.root)).toEqual(['user/bobby', 'user/rob', 'user/rob/Job']);
    expect(await getQuota(rebuilt, 'user/rob')).toMatchObject({ messages: 2, usedMessages: 2 });
    expect((await rebuilt.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await rebuilt.close();
  });
});

describe('deleteUser and deleteMailboxTree', () => {
  it('deletes the tree and every ACL entry naming the user, and nothing else', async () => {
    const store = await populated();
    const result = await store.deleteUser('bob');
    expect(result).toEqual({ user: 'bob', mailboxes: 2, messages: 2, aclEntries: 4 });
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['shared/p', 'user/alice/INBOX', 'user/bobby/INBOX']);
    expect(await store.getAcl('shared/p')).toEqual({ alice: 'lrs' });
    expect(await store.listMailboxes({ user: 'bob' })).toEqual([]);
    expect((await store.stats()).messages).toBe(0);
    expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await expectCode(store.deleteUser('bob'), 'NOT_FOUND');
    await store.close();
  });

  it('mailbox delete --recursive removes a tree in one intent record', async () => {
    const store = await populated();
    expect(await deleteMailboxTree(store, 'user/bob')).toEqual({ mailboxes: 2, messages: 2 });
    expect((await store.listMailboxes({ pattern: 'user/bob*' })).map((m) => m.name)).toEqual(['user/bobby/INBOX']);
    await expectCode(deleteMailboxTree(store, 'user/bob'), 'NOT_FOUND');
    await store.close();
  });
});

describe('a new mailbox\'s ACL', () => {
  // acl set USER "" removes USER's entry; an empty entry given at creation (mailbox create --acl
  // bob=, an undump line) was kept, shown by acl get, and acl set bob "" then said "removed" and
  // changed nothing, since the rights were already "".
  it('keeps no entry with no rights, at creation or from a dump', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('shared/a', { acl: { bob: '', alice: 'lr' } });
    expect(await store.getAcl('shared/a')).toEqual({ alice: 'lr' });
    const line = parseDumpLine('{"name":"shared/b","id":"00000000-0000-4000-8000-000000000001","uidValidity":7,"acl":{"bob":"","anyone":"l"}}', 1)!;
    expect(line.acl).toEqual({ anyone: 'l' });
    await undumpMailboxes(store, [line]);
    expect(await store.getAcl('shared/b')).toEqual({ anyone: 'l' });
    expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await store.close();
  });

  it('an empty entry an older version kept is removed by acl set USER ""', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    // what createMailbox journaled before: an entry with no rights
    const older = { op: 'mailbox.create', id: Buffer.alloc(16, 1), name: ['shared', 'b'], uidValidity: 9, acl: { bob: '' }, created: 0 } as const;
    await store.administration().mutate({ prepare: async () => ({ ops: [older], result: undefined }) });
    expect(await store.getAcl('shared/b')).toEqual({ bob: '' });
    await store.setAcl('shared/b', 'bob', '');
    expect(await store.getAcl('shared/b')).toEqual({});
    await store.close();
  });
});

describe('a mailbox owner', () => {
  // "anyone" is RFC 4314's every-user identifier, not a user (user rename and delete refuse it):
  // as an owner it took all rights, the admin right among them, for every user of the store.
  it('is a user: "anyone" is INVALID at creation and in a dump', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await expectCode(store.createMailbox('shared/a', { owner: 'anyone' }), 'INVALID');
    expect(() => parseDumpLine('{"name":"shared/b","id":"00000000-0000-4000-8000-000000000001","uidValidity":7,"acl":{},"owner":"anyone"}', 1)).toThrow(/anyone/);
    expect(await store.listMailboxes()).toEqual([]);
    await store.createMailbox('shared/a', { acl: { anyone: 'lr' } }); // as an ACL entry it is what it is
    await store.close();
  });

  it('"anyone" as an older version stored it: dump leaves that owner out, so the list undumps (its ACL as it was), as restore takes it', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const acl = { anyone: 'aeiklnprstwx', bob: 'lr' };
    const older = { op: 'mailbox.create', id: Buffer.alloc(16, 7), name: ['shared', 'x'], uidValidity: 5, acl, owner: 'anyone', created: 0 } as const;
    await store.administration().mutate({ prepare: async () => ({ ops: [older], result: undefined }) });
    const lines: string[] = [];
    for await (const entry of dumpMailboxes(store)) lines.push(formatDumpLine(entry));
    await store.close();
    const target = await Store.open(tmpDir(), { create: true });
    expect(await undumpMailboxes(target, lines.map((line, i) => parseDumpLine(line, i + 1)!))).toEqual({ created: 1 });
    expect(await target.getAcl('shared/x')).toEqual(acl);
    expect(await target.status('shared/x')).toMatchObject({ uidValidity: 5 });
    await target.close();
  });
});

describe('quota roots of a deleted tree', () => {
  // A quota root is a name: left behind by a delete, a new user or tree of the old name inherited it.
  it('go with the tree: user delete and mailbox delete --recursive remove them, so a new tree of the name starts without', async () => {
    const store = await populated();
    await setQuota(store, 'user/bob', { messages: 2 });
    await setQuota(store, 'user/bob/Work', { storage: 1000 });
    await setQuota(store, 'user/bobby', { messages: 1 });
    await setQuota(store, 'user/alice', { messages: 9 });
    await store.deleteUser('bob');
    expect((await listQuotas(store)).map((q) => q.root)).toEqual(['user/alice', 'user/bobby']);
    await deleteMailboxTree(store, 'user/alice');
    expect((await listQuotas(store)).map((q) => q.root)).toEqual(['user/bobby']);
    await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
    for (const i of [1, 2, 3]) await store.append('user/bob/INBOX', msg(i)); // no limit of the old bob's left
    expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await store.close();
  });

  it('go with a single mailbox delete when nothing stays below it (as with --recursive of that mailbox; Cyrus\'s quota -f drops a root no mailbox uses); a root over mailboxes that stay still limits them, one above the name stays', async () => {
    const store = await populated();
    await store.createMailbox('user/bob/Work/2020', { owner: 'bob' });
    await setQuota(store, 'user/bob/Work/2020', { messages: 0 });
    await setQuota(store, 'user/bob/Work', { storage: 1000 });
    await setQuota(store, 'user/bob/INBOX', { messages: 1 });
    await store.deleteMailbox('user/bob/INBOX');
    await store.deleteMailbox('user/bob/Work'); // user/bob/Work/2020 stays, and its root, and Work's over it
    expect((await listQuotas(store)).map((q) => q.root)).toEqual(['user/bob/Work', 'user/bob/Work/2020']);
    await expectCode(store.append('user/bob/Work/2020', msg(5)), 'OVER_QUOTA');
    await store.deleteMailbox('user/bob/Work/2020');
    expect((await listQuotas(store)).map((q) => q.root)).toEqual(['user/bob/Work']); // a root above the deleted name stays, as with --recursive of it
    await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
    for (const i of [1, 2]) await store.append('user/bob/INBOX', msg(i)); // no limit of the old INBOX left
    expect((await store.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await store.close();
  });
});

describe('a user of many mailboxes', () => {
  /** A store with user/many/box0..N-1 (2 messages each, bob's ACL entry on each) and user/other/INBOX. */
  async function manyBoxes(count: number): Promise<Store> {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/other/INBOX');
    for (let i = 0; i < count; i++) {
      await store.createMailbox(`user/many/box${i}`, { owner: 'many', acl: { bob: 'lr' } });
      await store.appendBatch(`user/many/box${i}`, [{ bytes: msg(2 * i) }, { bytes: msg(2 * i + 1) }]);
    }
    return store;
  }

  /** Counts LevelDB's synchronous point reads (getSync) and getMany round trips during `call`. */
  async function readsDuring(store: Store, call: () => Promise<unknown>): Promise<{ sync: number; many: number }> {
    const db = internalsOf(store).db;
    await db.settle();
    const level = (db as unknown as { db: { getSync(key: Buffer): unknown; getMany(keys: Buffer[]): Promise<unknown> } }).db;
    const counts = { sync: 0, many: 0 };
    const [getSync, getMany] = [level.getSync, level.getMany];
    level.getSync = (key) => { counts.sync++; return getSync.call(level, key); };
    level.getMany = (keyList) => { counts.many++; return getMany.call(level, keyList); };
    try {
      await call();
    } finally {
      level.getSync = getSync;
      level.getMany = getMany;
    }
    return counts;
  }

  // before: 3 synchronous reads a mailbox in the rename (its entry twice in the prepare, once in
  // the apply; 2 in the delete's begin, 1 in each expunge's apply): a user of 5,000 mailboxes held
  // a daemon's every client for seconds in one turn of its event loop
  it('user rename reads the mailboxes\' entries in round trips off the event loop, not one synchronous read each', async () => {
    const store = await manyBoxes(300);
    const tunable = limits as { deleteChunkMailboxes: number };
    const chunk = limits.deleteChunkMailboxes;
    tunable.deleteChunkMailboxes = 100;
    const counts = await readsDuring(store, () => store.renameUser('many', 'lots')).finally(() => { tunable.deleteChunkMailboxes = chunk; });
    expect(counts.sync).toBeLessThanOrEqual(20);
    // in pieces of deleteChunkMailboxes, a turn of the event loop after each (its decoding was part
    // of one stretch of a second at 5,000 mailboxes)
    expect(counts.many).toBeGreaterThanOrEqual(3);
    const renamed = await store.listMailboxes({ pattern: 'user/lots/*' });
    expect(renamed).toHaveLength(300);
    const acl = await store.getAcl('user/lots/box7');
    expect(acl.bob).toBe('lr');
    expect(Object.keys(acl)).toEqual(['bob', 'lots']);
    expect((await store.status('user/lots/box299')).messages).toBe(2);
    await store.close();
  });

  it('user delete reads the mailboxes\' entries, messages and blobs in round trips off the event loop, not one synchronous read each', async () => {
    const store = await manyBoxes(300);
    const counts = await readsDuring(store, () => store.deleteUser('many'));
    expect(counts.sync).toBeLessThanOrEqual(20);
    expect((await store.listMailboxes()).map((m) => m.name)).toEqual(['user/other/INBOX']);
    expect((await store.stats()).unreferencedBlobs).toBe(600);
    await store.close();
  });
});
