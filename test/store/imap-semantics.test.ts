// What an IMAP server built on the Store relies on, checked against the RFCs it must keep:
// keyword case (RFC 9051 section 9: atoms are case-insensitive), RFC 4314 rights.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { searchMailbox } from '../../src/store/search.js';
import { dumpMailboxes, undumpMailboxes, type DumpedMailbox } from '../../src/store/mailbox-list.js';
import { keys } from '../../src/keys/index-keys.js';
import { resync } from '../helpers/qresync.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number | string) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);

/** `source`'s mailbox list dumped (and `source` closed), undumped into a new store at `dir`. */
async function undumpedFrom(source: Store, dir: string): Promise<Store> {
  const dumped: DumpedMailbox[] = [];
  for await (const entry of dumpMailboxes(source)) dumped.push(entry);
  await source.close();
  const target = await Store.open(dir, { create: true });
  await undumpMailboxes(target, dumped);
  return target;
}

describe('IMAP semantics', () => {
  it('keywords are case-insensitive: one flag per keyword, removed, matched and kept in its first spelling', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const { uid } = await store.append('INBOX', msg(1), { flags: ['$Forwarded', '$forwarded', '\\seen'] });
    expect((await store.messageInfo('INBOX', uid)).flags).toEqual(['$Forwarded', '\\Seen']);
    // adding another spelling of a keyword the message has is no change (no new modseq)
    const before = (await store.status('INBOX')).highestModseq;
    expect((await store.setFlags('INBOX', uid, { add: ['$FORWARDED'] })).updated).toEqual([]);
    expect((await store.setFlags('INBOX', uid, { replace: ['$forwarded', '\\Seen'] })).updated).toEqual([]);
    expect((await store.status('INBOX')).highestModseq).toBe(before);
    expect((await searchMailbox(store, 'INBOX', { flags: ['$FORWARDED'] })).map((m) => m.uid)).toEqual([uid]);
    expect(await searchMailbox(store, 'INBOX', { noFlags: ['$forwarded'] })).toEqual([]);
    expect((await store.setFlags('INBOX', uid, { remove: ['$FORWARDED'] })).updated).toEqual([uid]);
    expect((await store.messageInfo('INBOX', uid)).flags).toEqual(['\\Seen']);
    await store.close();
    store = await Store.open(dir);
    expect((await store.messageInfo('INBOX', uid)).flags).toEqual(['\\Seen']);
    expect((await store.status('INBOX')).messages).toBe(1);
    await store.close();
  });

  it("RFC 4314: the obsolete rights c and d a client may still send are stored as the rights they stand for (c: k x, d: e t)", async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('user/alice/INBOX', { owner: 'alice', acl: { carol: 'lrd' } });
    await store.setAcl('user/alice/INBOX', 'bob', 'lrswipcda');
    expect(await store.getAcl('user/alice/INBOX')).toEqual({ alice: 'aeiklnprstwx', bob: 'aeiklprstwx', carol: 'elrt' });
    expect(await store.listMailboxes({ user: 'bob' })).toEqual([expect.objectContaining({ name: 'user/alice/INBOX', rights: 'aeiklprstwx' })]);
    // the same rights given either way are no change
    await store.setAcl('user/alice/INBOX', 'carol', 'lret');
    await store.close();
    store = await Store.open(dir);
    expect((await store.getAcl('user/alice/INBOX')).carol).toBe('elrt');
    await store.close();
  });

  it('RFC 4314 negative rights: "-carol" takes rights away from what carol has herself or through anyone', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('shared/news', { acl: { anyone: 'lr' } });
    await store.createMailbox('shared/staff', { acl: { carol: 'lrsw' } });
    await store.setAcl('shared/news', '-carol', 'l');
    await store.setAcl('shared/staff', '-carol', 'w');
    expect(await store.listMailboxes({ user: 'carol' })).toEqual([expect.objectContaining({ name: 'shared/staff', rights: 'lrs' })]);
    expect((await store.listMailboxes({ user: 'dave' })).map((m) => m.name)).toEqual(['shared/news']);
    await store.setAcl('shared/news', '-anyone', 'l');
    expect(await store.listMailboxes({ user: 'dave' })).toEqual([]);
    // the negative entry is an ACL entry like any other: getAcl shows it, '' removes it
    expect((await store.getAcl('shared/news'))['-carol']).toBe('l');
    await store.setAcl('shared/news', '-carol', '');
    await store.setAcl('shared/news', '-anyone', '');
    expect((await store.listMailboxes({ user: 'carol' })).map((m) => m.name)).toEqual(['shared/news', 'shared/staff']);
    await expect(store.createMailbox('user/carol/INBOX', { owner: '-carol' })).rejects.toMatchObject({ code: 'INVALID' });
    // "-" alone is the negative rights of no one (was stored: 'acl set MAILBOX - lr', an entry "-" in every listing)
    for (const rights of ['l', '+l', '-l']) await expect(store.setAcl('shared/news', '-', rights)).rejects.toThrow(/^ACL identifier "-" names no one: negative rights are "-USER" or "-anyone"$/);
    await store.setAcl('shared/news', '-', ''); // removing one an older version stored is no change here
    expect(await store.getAcl('shared/news')).toEqual({ anyone: 'lr' });
    await store.close();
  });

  it('undump keeps a uidValidity only with its uids and modseqs: new mail gets uids above every listed uidNext, modseqs above the highest', async () => {
    const source = await Store.open(tmpDir(), { create: true });
    await source.createMailbox('user/alice/INBOX', { owner: 'alice' });
    for (let i = 0; i < 5; i++) await source.append('user/alice/INBOX', msg(i));
    await source.setFlags('user/alice/INBOX', [1, 2, 3], { add: ['\\Seen'] });
    const seen = await source.status('user/alice/INBOX'); // what an IMAP client cached
    const dir = tmpDir();
    let target = await undumpedFrom(source, dir);
    const status = await target.status('user/alice/INBOX');
    expect(status.uidValidity).toBe(seen.uidValidity);
    expect(status.uidNext).toBe(seen.uidNext);
    expect(status.highestModseq).toBeGreaterThanOrEqual(seen.highestModseq);
    // the mail imported again: uid 1 under the same uidValidity would be another message than the client's uid 1
    const again = await target.append('user/alice/INBOX', msg('again'));
    expect(again.uid).toBe(seen.uidNext);
    const flagged = await target.setFlags('user/alice/INBOX', again.uid, { add: ['\\Flagged'] });
    expect(flagged.modseq).toBeGreaterThan(seen.highestModseq);
    expect((await target.changesSince('user/alice/INBOX', seen.highestModseq)).changed.map((m) => m.uid)).toEqual([again.uid]);
    await target.close();
    target = await Store.open(dir);
    expect((await target.status('user/alice/INBOX')).uidNext).toBe(again.uid + 1);
    await target.close();
  });

  it('undump and a re-import: a QRESYNC client of the old store is told that every uid it cached is gone (vanished ranges below the floor), and one that synced after is told exactly', async () => {
    const source = await Store.open(tmpDir(), { create: true });
    await source.createMailbox('user/alice/INBOX', { owner: 'alice' });
    for (let i = 0; i < 6; i++) await source.append('user/alice/INBOX', msg(i));
    await source.expunge('user/alice/INBOX', [2]);
    const cache = new Map<number, string>();
    for await (const info of source.messages('user/alice/INBOX')) cache.set(info.uid, info.hash);
    const seen = await source.status('user/alice/INBOX'); // what an IMAP client cached: uids 1, 3..6
    const dir = tmpDir();
    let target = await undumpedFrom(source, dir);
    for (let i = 0; i < 2; i++) await target.append('user/alice/INBOX', msg(i)); // the mail imported again, new uids
    const changes = await target.changesSince('user/alice/INBOX', seen.highestModseq);
    expect(changes.vanishedRanges).toEqual([[1, seen.uidNext - 1]]);
    resync(cache, changes, (info) => info.hash);
    const truth = new Map<number, string>();
    for await (const info of target.messages('user/alice/INBOX')) truth.set(info.uid, info.hash);
    expect([...cache].sort(([a], [b]) => a - b)).toEqual([...truth]);
    const now = await target.status('user/alice/INBOX');
    await target.expunge('user/alice/INBOX', [seen.uidNext]);
    await target.close();
    target = await Store.open(dir);
    const after = await target.changesSince('user/alice/INBOX', now.highestModseq);
    expect(after.vanished).toEqual([seen.uidNext]);
    expect(after.vanishedRanges).toBeUndefined();
    await target.close();
  });

  it('undump of an entry without uidNext (an older dump, another server\'s list) gives it a new uidValidity: its uids would start again at 1', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await undumpMailboxes(store, [{ name: 'old', id: 'b1445cf8-5485-428b-bb46-f48aa6be0101', uidValidity: 1234, acl: {}, created: 1 }]);
    const { uidValidity, uidNext } = await store.status('old');
    expect(uidValidity).not.toBe(1234);
    expect(uidValidity).toBeGreaterThan(1234);
    expect(uidNext).toBe(1);
    expect((await store.mailbox('old')).id).toBe('b1445cf8-5485-428b-bb46-f48aa6be0101');
    await store.close();
  });

  it('a user rename or delete takes the user\'s negative rights ("-bob") along, as it does the positive ones', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
    await store.createMailbox('shared/news', { acl: { anyone: 'lr', '-bob': 'l' } });
    expect((await store.renameUser('bob', 'robert')).mailboxes).toBe(1);
    expect(await store.getAcl('shared/news')).toEqual({ anyone: 'lr', '-robert': 'l' });
    expect((await store.listMailboxes({ user: 'robert' })).map((m) => m.name)).toEqual(['user/robert/INBOX']);
    expect((await store.listMailboxes({ user: 'bob' })).map((m) => m.name)).toEqual(['shared/news']); // a new bob is not denied
    await store.close();
    store = await Store.open(dir);
    await store.deleteUser('robert', { ifEmpty: true });
    expect(await store.getAcl('shared/news')).toEqual({ anyone: 'lr' });
    expect((await store.listMailboxes({ user: 'robert' })).map((m) => m.name)).toEqual(['shared/news']);
    await store.close();
  });

  it('a mailbox past its last uid (2^32 - 1) refuses more mail with OVER_QUOTA (kept queued by an MTA), and the store goes on', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 0 }); // bodies in packs, as adoption finds them
    await undumpMailboxes(store, [{ name: 'full', id: 'b1445cf8-5485-428b-bb46-f48aa6be0101', uidValidity: 77, uidNext: 0xfffffffe, acl: {}, created: 1 }]);
    await store.createMailbox('other');
    const kept = await store.append('other', msg('kept'));
    expect((await store.append('full', msg(1))).uid).toBe(0xfffffffe);
    await expect(store.appendBatch('full', [{ bytes: msg(2) }, { bytes: msg(3) }])).rejects.toMatchObject({ code: 'OVER_QUOTA' });
    expect((await store.append('full', msg(4))).uid).toBe(0xffffffff);
    await expect(store.append('full', msg(5))).rejects.toMatchObject({ code: 'OVER_QUOTA', message: expect.stringMatching(/UIDVALIDITY|create it again/) });
    await expect(store.copy('other', kept.uid, 'full')).rejects.toMatchObject({ code: 'OVER_QUOTA' });
    await expect(store.move('other', kept.uid, 'full')).rejects.toMatchObject({ code: 'OVER_QUOTA' });
    // lost+found's adoption of blobs found in packs (reconstruct --from-packs) alike
    const blob = (await store.maintenance().index.get<{ p: number; o: number; l: number }>(keys.blob(Buffer.from(kept.hash, 'hex'))))!;
    const found = { hash: Buffer.from(kept.hash, 'hex'), size: blob.l, pack: blob.p, offset: blob.o, date: 0 };
    await expect(store.maintenance().adoptBlobs('full', [found])).rejects.toMatchObject({ code: 'OVER_QUOTA' });
    // nothing lost, nothing half-done, the store still takes mail elsewhere
    expect((await store.append('other', msg('more'))).uid).toBe(kept.uid + 1);
    await store.close();
    store = await Store.open(dir);
    expect((await store.status('full')).messages).toBe(2);
    expect((await store.fetch('other', kept.uid)).toString()).toContain('kept');
    await store.close();
  });

  it('RFC 4314 SETACL "+rights" and "-rights" add to and take from the entry inside the commit: concurrent changes all count', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('shared/p', { acl: { bob: 'lr' } });
    // a server reading getAcl and writing the sum lost one of two such changes in flight
    await Promise.all([store.setAcl('shared/p', 'bob', '+s'), store.setAcl('shared/p', 'bob', '+w'), store.setAcl('shared/p', 'bob', '-l'), store.setAcl('shared/p', 'carol', '+lc')]);
    expect(await store.getAcl('shared/p')).toEqual({ bob: 'rsw', carol: 'klx' });
    await store.setAcl('shared/p', 'carol', '-lkx'); // nothing left: no entry
    await store.setAcl('shared/p', 'dave', '-r'); // nothing to take: no entry
    await expect(store.setAcl('shared/p', 'bob', '+-r')).rejects.toMatchObject({ code: 'INVALID' });
    await store.close();
    store = await Store.open(dir);
    expect(await store.getAcl('shared/p')).toEqual({ bob: 'rsw' });
    await store.close();
  });

  it('an owner "-carol" an older version stored (now refused: negative rights) is left out of a dump, so the list undumps, its ACL as it was', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    const acl = { '-carol': 'aeiklnprstwx', bob: 'lr' };
    const older = { op: 'mailbox.create', id: Buffer.alloc(16, 7), name: ['shared', 'x'], uidValidity: 5, acl, owner: '-carol', created: 0 } as const;
    await store.administration().mutate({ prepare: async () => ({ ops: [older], result: undefined }) });
    const dumped: DumpedMailbox[] = [];
    for await (const entry of dumpMailboxes(store)) dumped.push(entry);
    await store.close();
    const target = await Store.open(tmpDir(), { create: true });
    expect(await undumpMailboxes(target, dumped)).toEqual({ created: 1 });
    expect(await target.getAcl('shared/x')).toEqual(acl);
    expect((await target.mailbox('shared/x')).owner).toBeUndefined();
    await target.close();
  });
});
