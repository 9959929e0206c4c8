// The library side of the day-2 tools: quotas (journaled, enforced on append, copy, move and rename with
// OVER_QUOTA, nothing stored on refusal), usage, search, retention and the mailbox list dump.
import { describe, expect, it, vi } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { dumpMailboxes, undumpMailboxes, type DumpedMailbox } from '../../src/store/mailbox-list.js';
import { changeQuota, getQuota, setQuota } from '../../src/store/quota.js';
import { expungeBefore } from '../../src/store/retention.js';
import { parseHeaderSection, searchMailbox } from '../../src/store/search.js';
import { usage } from '../../src/store/usage.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number, extra = '') => Buffer.from(`From: a${i}@example.org\r\nSubject: note ${i}\r\n${extra}\r\nbody ${i}\r\n`);

async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe(code);
  return error as MailstoreError;
}

describe('quotas', () => {
  it('refuse an append over the message or storage limit with OVER_QUOTA and store nothing', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/alice/Sent');
    await setQuota(store, 'user/alice', { messages: 2 });
    await store.append('user/alice/INBOX', msg(1));
    await store.append('user/alice/Sent', msg(2));
    const stored = async () => ({ ...(await store.stats()), freeSpace: undefined }); // the disk's free space moves with other processes
    const before = await stored();
    const error = await expectCode(store.append('user/alice/INBOX', msg(3)), 'OVER_QUOTA');
    expect(error.message).toMatch(/user\/alice.*message quota of 2/);
    expect(await stored()).toEqual(before);
    await setQuota(store, 'user/alice', { storage: msg(1).length + msg(2).length + 3 });
    await expectCode(store.append('user/alice/INBOX', msg(3)), 'OVER_QUOTA'); // storage now
    await store.expunge('user/alice/Sent', 1);
    await store.append('user/alice/INBOX', msg(3)); // room again
    expect(await getQuota(store, 'user/alice')).toEqual({ root: 'user/alice', storage: msg(1).length + msg(2).length + 3, usedBytes: msg(1).length + msg(3).length, usedMessages: 2 });
    await store.close();
  });

  it('changeQuota sets one limit and keeps the other, read in its own commit: two admins changing one limit each at once both hold', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    // `quota set --storage` and `quota set --messages` at the same moment: until session 33 each read the
    // root's limits, then set both, so the second to commit put back the first's old value
    await Promise.all([changeQuota(store, 'user/alice', { storage: 1000 }), changeQuota(store, 'user/alice', { messages: 5 })]);
    expect(await getQuota(store, 'user/alice')).toEqual({ root: 'user/alice', storage: 1000, messages: 5, usedBytes: 0, usedMessages: 0 });
    await Promise.all([changeQuota(store, 'user/alice', { storage: null }), changeQuota(store, 'user/alice', { messages: 7 })]);
    expect(await getQuota(store, 'user/alice')).toEqual({ root: 'user/alice', messages: 7, usedBytes: 0, usedMessages: 0 });
    await changeQuota(store, 'user/alice', { messages: null }); // both gone: no quota
    expect(await getQuota(store, 'user/alice')).toEqual({ root: 'user/alice', usedBytes: 0, usedMessages: 0 });
    await expectCode(changeQuota(store, 'user/alice', { storage: -1 }), 'INVALID');
    await expectCode(changeQuota(store, 'user/alice', { messages: 1.5 }), 'INVALID');
    await store.close();
  });

  it('apply to copies into the root, not to moves inside it, and survive a rebuild from the journal', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/alice/Old');
    await store.createMailbox('shared/in');
    await store.append('shared/in', msg(1));
    await store.append('user/alice/INBOX', msg(2));
    await setQuota(store, 'user/alice', { messages: 1 });
    await expectCode(store.copy('shared/in', 1, 'user/alice/INBOX'), 'OVER_QUOTA');
    await expectCode(store.move('shared/in', 1, 'user/alice/INBOX'), 'OVER_QUOTA');
    expect((await store.status('shared/in')).messages).toBe(1); // the refused move kept the source
    await store.move('user/alice/INBOX', 1, 'user/alice/Old'); // same root: no change in usage
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(dir);
    expect((await getQuota(rebuilt, 'user/alice')).messages).toBe(1);
    await expectCode(rebuilt.append('user/alice/INBOX', msg(3)), 'OVER_QUOTA');
    await rebuilt.close();
  });

  it("count a mailbox against its nearest root only: a nested root's mail leaves its parent's room alone", async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/alice/Lists/a');
    await setQuota(store, 'user/alice', { messages: 2 });
    await setQuota(store, 'user/alice/Lists', { messages: 10 });
    for (const i of [1, 2, 3]) await store.append('user/alice/Lists/a', msg(i)); // against user/alice/Lists
    await store.append('user/alice/INBOX', msg(4)); // user/alice holds 1 of its 2 (it was refused: 4 of 2)
    await store.append('user/alice/INBOX', msg(5));
    await expectCode(store.append('user/alice/INBOX', msg(6)), 'OVER_QUOTA');
    expect(await getQuota(store, 'user/alice')).toMatchObject({ usedMessages: 2, usedBytes: msg(4).length + msg(5).length });
    expect(await getQuota(store, 'user/alice/Lists')).toMatchObject({ usedMessages: 3 });
    await store.move('user/alice/INBOX', 1, 'user/alice/Lists/a'); // out of user/alice into the nested root
    await store.append('user/alice/INBOX', msg(6)); // room again
    await store.close();
  });

  it('apply to a mailbox renamed into the root (as Cyrus checks a rename), not to one renamed inside it', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/alice/Lists/a');
    await store.createMailbox('shared/big');
    await store.createMailbox('shared/big/sub');
    await store.createMailbox('shared/empty');
    await store.append('user/alice/INBOX', msg(1));
    await store.append('user/alice/Lists/a', msg(2));
    for (const i of [3, 4]) await store.append('shared/big/sub', msg(i));
    await setQuota(store, 'user/alice', { messages: 2 });
    await setQuota(store, 'user/alice/Lists', { messages: 10 }); // a nested root: Lists/a counts against it, not user/alice
    const error = await expectCode(store.renameMailbox('shared/big', 'user/alice/big'), 'OVER_QUOTA'); // 1 + 2 messages
    expect(error.message).toMatch(/user\/alice .*message quota of 2/);
    await setQuota(store, 'user/alice', { messages: 1 });
    await expectCode(store.renameMailbox('user/alice/Lists/a', 'user/alice/a'), 'OVER_QUOTA'); // out of the nested root into user/alice: 1 + 1 of 1
    expect((await store.listMailboxes({ pattern: 'shared/*' })).map((m) => m.name)).toEqual(['shared/big', 'shared/big/sub', 'shared/empty']); // nothing renamed
    await store.renameMailbox('shared/empty', 'user/alice/empty'); // adds no message
    await setQuota(store, 'user/alice', { messages: 3 });
    await store.renameMailbox('user/alice/Lists/a', 'user/alice/a'); // 1 + 1 messages now
    await setQuota(store, 'user/alice', { messages: 1 }); // lowered below what the root holds
    await store.renameMailbox('user/alice/a', 'user/alice/b'); // still inside: never refused
    await store.renameMailbox('user/alice/b', 'shared/b'); // out of the root: makes room
    await setQuota(store, 'user/alice', { messages: 3 });
    await store.renameMailbox('shared/big/sub', 'user/alice/sub'); // 1 + 2 messages: at the limit, not over
    expect(await getQuota(store, 'user/alice')).toMatchObject({ messages: 3, usedMessages: 3 });
    await store.close();
  });

  it('count a mailbox against its nearest root only: an outer root (user) does not count what an inner one (user/alice) holds', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/bob/INBOX');
    await setQuota(store, 'user/alice', { messages: 100 });
    await setQuota(store, 'user', { messages: 1 }); // everyone else under user/
    for (let i = 0; i < 3; i++) await store.append('user/alice/INBOX', msg(i));
    await store.append('user/bob/INBOX', msg(10)); // bob's root is user: 1 of 1, alice's 3 are hers
    await expectCode(store.append('user/bob/INBOX', msg(11)), 'OVER_QUOTA');
    expect(await getQuota(store, 'user')).toMatchObject({ usedMessages: 1, usedBytes: msg(10).length });
    expect(await getQuota(store, 'user/alice')).toMatchObject({ usedMessages: 3 });
    await store.append('user/alice/INBOX', msg(4));
    await store.close();
  });

  it('count a mailbox created in the same group commit as the deliveries (concurrent callers): the root never goes over', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await setQuota(store, 'user/alice', { messages: 1 });
    // one batch: the create, a delivery into the new mailbox, one into INBOX; only one fits
    const outcomes = await Promise.allSettled([
      store.createMailbox('user/alice/New'),
      store.append('user/alice/New', msg(1)),
      store.append('user/alice/INBOX', msg(2)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(((outcomes[2] as PromiseRejectedResult).reason as MailstoreError).code).toBe('OVER_QUOTA');
    expect(await getQuota(store, 'user/alice')).toMatchObject({ usedMessages: 1, usedBytes: msg(1).length });
    expect(await store.fetch('user/alice/New', 1)).toEqual(msg(1)); // the acknowledged one is there
    expect((await store.status('user/alice/INBOX')).messages).toBe(0);
    await store.close();
  });
});

describe('usage', () => {
  it('counts messages, bytes and unique bytes per user, with the quota', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/alice/Copy');
    await store.createMailbox('user/bob/INBOX');
    await store.append('user/alice/INBOX', msg(1));
    await store.append('user/alice/Copy', msg(1));
    await store.append('user/alice/INBOX', msg(2));
    await setQuota(store, 'user/alice', { storage: 1000 });
    const [alice] = await usage(store, { user: 'alice' });
    expect(alice).toEqual({ user: 'alice', mailboxes: 2, messages: 3, bytes: 2 * msg(1).length + msg(2).length, uniqueBytes: msg(1).length + msg(2).length, quota: { storage: 1000 } });
    expect((await usage(store)).map((u) => [u.user, u.messages])).toEqual([['alice', 3], ['bob', 0]]);
    expect(await usage(store, { user: 'nobody' })).toEqual([{ user: 'nobody', mailboxes: 0, messages: 0, bytes: 0, uniqueBytes: 0 }]);
    await store.close();
  });
});

describe('search', () => {
  it('matches dates, sizes, flags and headers (header section only), all keys together', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('m');
    await store.append('m', msg(1), { internalDate: '2020-01-01T00:00:00Z', flags: ['\\Seen'] });
    await store.append('m', msg(2, 'X-Tag: blue\r\n'), { internalDate: '2024-01-01T00:00:00Z' });
    await store.append('m', Buffer.concat([msg(3), Buffer.from('X-Tag: blue in the body\r\n'), Buffer.alloc(500, 97)]), { internalDate: '2024-06-01T00:00:00Z' });
    const uids = async (c: Parameters<typeof searchMailbox>[2]) => (await searchMailbox(store, 'm', c)).map((m) => m.uid);
    expect(await uids({ before: new Date('2021-01-01') })).toEqual([1]);
    expect(await uids({ since: new Date('2024-01-01') })).toEqual([2, 3]);
    expect(await uids({ larger: 400 })).toEqual([3]);
    expect(await uids({ smaller: 400 })).toEqual([1, 2]);
    expect(await uids({ flags: ['\\seen'] })).toEqual([1]);
    expect(await uids({ noFlags: ['\\Seen'] })).toEqual([2, 3]);
    expect(await uids({ headers: [['x-tag', 'BLUE']] })).toEqual([2]); // uid 3 has it in the body only
    expect(await uids({ headers: [['subject', 'note 3']] })).toEqual([3]);
    expect(await uids({ headers: [['from', 'a1@']], since: new Date('2024-01-01') })).toEqual([]);
    expect(await uids({ uids: [2, 3], larger: 1 })).toEqual([2, 3]);
    await store.close();
  });

  it('unfolds folded header lines and stops at the empty line', () => {
    const fields = parseHeaderSection(Buffer.from('Subject: a\r\n  folded\r\nFrom: x\n\nSubject: body\r\n'));
    expect(fields).toEqual([['subject', 'a folded'], ['from', 'x']]);
  });
});

describe('retention', () => {
  it('expunges what is older than the cutoff, --seen only seen, --dry-run nothing, recursively', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('a');
    await store.createMailbox('a/b');
    await store.createMailbox('ab');
    await store.append('a', msg(1), { internalDate: '2000-01-01T00:00:00Z' });
    await store.append('a', msg(2));
    await store.append('a/b', msg(3), { internalDate: '2000-01-01T00:00:00Z', flags: ['\\Seen'] });
    await store.append('a/b', msg(4), { internalDate: '2000-01-01T00:00:00Z' });
    await store.append('ab', msg(5), { internalDate: '2000-01-01T00:00:00Z' });
    const before = new Date(Date.now() - 30 * 86_400_000);
    const dry = await expungeBefore(store, 'a', { before, recursive: true, dryRun: true });
    expect(dry.map((r) => [r.mailbox, r.uids])).toEqual([['a', [1]], ['a/b', [1, 2]]]);
    expect((await store.stats()).messages).toBe(5);
    expect((await expungeBefore(store, 'a', { before, recursive: true, seen: true })).map((r) => r.uids)).toEqual([[], [1]]);
    expect((await expungeBefore(store, 'a', { before })).map((r) => r.uids)).toEqual([[1]]);
    expect((await store.status('a')).messages).toBe(1);
    expect((await store.status('a/b')).messages).toBe(1);
    expect((await store.status('ab')).messages).toBe(1); // not below a/
    await expectCode(expungeBefore(store, 'missing', { before }), 'NOT_FOUND');
    await expectCode(expungeBefore(store, 'missing', { before, recursive: true }), 'NOT_FOUND');
    await store.createMailbox('p/q');
    await store.append('p/q', msg(6), { internalDate: '2000-01-01T00:00:00Z' });
    expect((await expungeBefore(store, 'p', { before, recursive: true })).map((r) => [r.mailbox, r.uids])).toEqual([['p/q', [1]]]); // p is only a prefix
    await store.close();
  });

  it('--seen leaves a message whose flags changed after it was selected (marked unread meanwhile): only what still matches goes', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('Trash');
    const old = { internalDate: '2000-01-01T00:00:00Z', flags: ['\\Seen'] };
    for (let i = 1; i <= 3; i++) await store.append('Trash', msg(i), old);
    // the user marks uid 2 unread after the run listed the mailbox, before its expunge
    const racing = new Proxy(store, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (property !== 'expunge' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          await target.setFlags('Trash', 2, { remove: ['\\Seen'] });
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const [result] = await expungeBefore(racing, 'Trash', { before: new Date('2001-01-01T00:00:00Z'), seen: true });
    expect(result.uids).toEqual([1, 3]); // what was expunged
    expect((await store.messageInfo('Trash', 2)).flags).toEqual([]); // kept: it no longer matches
    expect((await store.status('Trash')).messages).toBe(1);
    await store.close();
  });

  it('expunges nothing of a mailbox made under the name after the listing (the listed one renamed away: a yearly archive rotation), and leaves the listed one (NOT_FOUND)', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 3; i++) await store.append('INBOX', msg(i), { internalDate: '2000-01-01T00:00:00Z' });
    // after the run listed INBOX: renamed to Archive, a new INBOX made, new mail in it at uids 1-3
    // (before, the run expunged those: acknowledged new mail gone for good, the old mail kept)
    const racing = new Proxy(store, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (property !== 'expunge' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          await target.renameMailbox('INBOX', 'Archive');
          await target.createMailbox('INBOX');
          for (let i = 11; i <= 13; i++) await target.append('INBOX', msg(i));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    await expectCode(expungeBefore(racing, 'INBOX', { before: new Date('2001-01-01T00:00:00Z') }), 'NOT_FOUND');
    expect((await store.status('INBOX')).messages).toBe(3);
    for (let uid = 1; uid <= 3; uid++) expect(await store.fetch('INBOX', uid)).toEqual(msg(10 + uid));
    expect((await store.status('Archive')).messages).toBe(3); // the next run, on Archive, expunges them
    await store.close();
  });
});

describe('mailbox list dump and undump', () => {
  it('recreates the same names, ids, uidValidity, owners and ACLs in an empty store', async () => {
    const source = await Store.open(tmpDir(), { create: true });
    await source.createMailbox('user/alice/INBOX', { owner: 'alice' });
    await source.createMailbox('shared/p', { acl: { bob: 'lrs', anyone: 'l' } });
    const dumped: DumpedMailbox[] = [];
    for await (const entry of dumpMailboxes(source)) dumped.push(entry);
    const target = await Store.open(tmpDir(), { create: true });
    expect(await undumpMailboxes(target, dumped)).toEqual({ created: 2 });
    for (const { name } of await source.listMailboxes()) {
      expect(await target.mailbox(name)).toEqual(await source.mailbox(name));
    }
    expect(await target.listMailboxes({ user: 'bob' })).toEqual(await source.listMailboxes({ user: 'bob' }));
    const later = await target.createMailbox('new');
    expect(later.uidValidity).toBeGreaterThan(Math.max(...dumped.map((d) => d.uidValidity)));
    await expectCode(undumpMailboxes(target, dumped.slice(0, 1)), 'EXISTS');
    await expectCode(undumpMailboxes(target, [{ ...dumped[0], name: 'other' }]), 'EXISTS'); // same id
    expect((await target.listMailboxes()).length).toBe(3);
    await source.close();
    await target.close();
  });

  it('after a mailbox with the largest uidValidity (2^32 - 1, as a Cyrus or Dovecot list may give) a new one still gets 32 bits: from the clock', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await undumpMailboxes(store, [{ name: 'top', id: 'b1445cf8-5485-428b-bb46-f48aa6be0101', uidValidity: 0xffffffff, uidNext: 1, acl: {}, created: 1 }]);
    const before = Math.floor(Date.now() / 1000);
    for (const name of ['a', 'b']) {
      const { uidValidity } = await store.createMailbox(name);
      expect(uidValidity).toBeLessThanOrEqual(0xffffffff);
      expect(uidValidity).toBeGreaterThanOrEqual(before);
      expect((await store.mailbox(name))?.uidValidity).toBe(uidValidity);
    }
    await store.close();
  });

  it('checks every entry given to the library (or through the daemon) as a dump line is checked: nothing of a bad list is created', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const good: DumpedMailbox = { name: 'a', id: 'b1445cf8-5485-428b-bb46-f48aa6be0101', uidValidity: 5, acl: {}, created: 1 };
    for (const bad of [{ uidValidity: 2 ** 40 }, { uidValidity: 0 }, { id: 'not-a-uuid' }, { name: 'a//b' }, { name: 7 }, { acl: { bob: 'q!' } }, { owner: 'anyone' }, { uidNext: 0 }, { uidNext: 1.5 }, { highestModseq: -1 }]) {
      const error = await expectCode(undumpMailboxes(store, [good, { ...good, name: 'b', id: 'b1445cf8-5485-428b-bb46-f48aa6be0102', ...bad } as never]), 'INVALID');
      expect(error.message, JSON.stringify(bad)).toMatch(/entry 2|owner|anyone|right|name/);
    }
    await expectCode(undumpMailboxes(store, 'a' as never), 'INVALID');
    expect(await store.listMailboxes()).toEqual([]);
    expect(await undumpMailboxes(store, [{ ...good, acl: { 'jose\u0301': 'lr' } }])).toEqual({ created: 1 });
    expect((await store.mailbox('a'))?.acl).toEqual({ 'jos\u00e9': 'lr' }); // the identifier as the store keeps it (NFC)
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  });

  it('after the largest uidValidity, a mailbox deleted and created again in the same second gets a new one (clients drop their cache), every one within 32 bits', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await undumpMailboxes(store, [{ name: 'top', id: 'b1445cf8-5485-428b-bb46-f48aa6be0102', uidValidity: 0xffffffff, uidNext: 1, acl: {}, created: 1 }]);
    const clock = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 11, 5, 12)); // one second for all of it
    const given: number[] = [];
    try {
      given.push((await store.createMailbox('Trash')).uidValidity);
      await store.deleteMailbox('Trash');
      given.push((await store.createMailbox('Trash')).uidValidity);
      given.push((await store.createMailbox('Sent')).uidValidity);
      await store.close();
      rmSync(join(dir, 'index'), { recursive: true }); // the count is rebuilt from the journal alike
      store = await Store.open(dir);
      await store.deleteMailbox('Sent');
      given.push((await store.createMailbox('Sent')).uidValidity);
    } finally {
      clock.mockRestore();
    }
    expect(new Set(given).size).toBe(4);
    for (const v of given) expect(v).toBeLessThanOrEqual(0xffffffff);
    await store.close();
  });

  it('a clock past 32 bits of seconds (a wrong year at boot, 2200) gives no uidValidity IMAP cannot carry: each new one still above the last, also once the clock is right again', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const first = (await store.createMailbox('INBOX')).uidValidity;
    const clock = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2200, 0, 1));
    const given = [first];
    try {
      given.push((await store.createMailbox('Trash')).uidValidity);
      await store.deleteMailbox('Trash');
      given.push((await store.createMailbox('Trash')).uidValidity);
    } finally {
      clock.mockRestore();
    }
    given.push((await store.createMailbox('Sent')).uidValidity);
    for (let i = 1; i < given.length; i++) {
      expect(given[i]).toBeLessThanOrEqual(0xffffffff);
      expect(given[i]).toBeGreaterThan(given[i - 1]!);
    }
    expect((await store.mailbox('Trash'))?.uidValidity).toBe(given[2]);
    await store.close();
  });

  it('refuses one name listed twice in two Unicode spellings (NFC and NFD): two mailboxes under one name entry', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const entry = (name: string, last: string): DumpedMailbox => ({ name, id: `b1445cf8-5485-428b-bb46-f48aa6be01${last}`, uidValidity: 5, acl: {}, created: 1 });
    const error = await expectCode(undumpMailboxes(store, [entry('caf\u00e9', '01'), entry('cafe\u0301', '02')]), 'INVALID');
    expect(error.message).toMatch(/listed twice/);
    expect(await store.listMailboxes()).toEqual([]); // nothing of the list created
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  });
});
