// Backup and restore through the library: full and incremental runs, exact point-in-time
// restores of a store, a user and a mailbox, restores into a live store, a repository shared by
// two stores.
import { join } from 'node:path';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { restoreIntoStore, restoreToNewStore, type RestoreTarget } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { listQuotas, setQuota } from '../../src/store/quota.js';
import { tmpDir } from '../helpers/tmp.js';
import { recount } from '../helpers/recount.js';
import { undumpMailboxes } from '../../src/store/mailbox-list.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import type { BlobRecord, MessageRecord } from '../../src/store/records.js';
import { dump, expectCode, fill, openRepo, source, storeTarget } from './helpers.js';
import { backupLimits } from '../../src/limits.js';
import type { MailstoreError } from '../../src/errors.js';

/** INBOX (30, one expunged, flags), user/alice/Sent (owner, ACL), user/alice/Sent/Old, user/bob/INBOX. */
async function sampleStore(dir: string): Promise<Store> {
  const store = await Store.init(dir);
  await store.createMailbox('INBOX');
  await store.createMailbox('user/alice/Sent', { owner: 'alice', acl: { bob: 'lr' } });
  await store.createMailbox('user/alice/Sent/Old', { owner: 'alice' });
  await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
  await fill(store, 'INBOX', 30);
  await fill(store, 'user/alice/Sent', 10, 100);
  await fill(store, 'user/alice/Sent/Old', 5, 200);
  await fill(store, 'user/bob/INBOX', 5, 300);
  await store.copy('INBOX', [1, 2], 'user/bob/INBOX'); // shared blobs
  await store.setFlags('INBOX', [2, 3], { add: ['\\Flagged', 'custom'] });
  await store.expunge('INBOX', [5]);
  return store;
}

describe('backup and restore', () => {
  it('a whole store comes back exactly: uids, uidValidity, flags, dates, modseqs, ACLs, owner; the next change continues above it', async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    const first = await runBackup(source(store), repo);
    expect(first.newBlobs).toBe(49); // 50 appended, one expunged; the copies share blobs
    expect(first.messages).toBe(51);
    expect(first.bytesRead).toBeGreaterThan(49 * 2000);
    const before = await dump(store);
    const highest = (await store.status('INBOX')).highestModseq;
    await store.close();
    const restored = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    expect(restored).toMatchObject({ messages: 51, mailboxes: 4, snapshot: first.snapshot });
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(before);
    // the blob-location hints name where this restore put each blob, not the source's packs
    let hinted = 0;
    for await (const [, record] of back.maintenance().index.entries<MessageRecord>({ prefix: Buffer.of(SPACE.message) })) {
      const blob = await back.maintenance().index.get<BlobRecord>(keys.blob(Buffer.from(record.h)));
      expect([record.p, record.o]).toEqual([blob!.p, blob!.o]);
      hinted++;
    }
    expect(hinted).toBe(51);
    const next = await back.append('INBOX', Buffer.from('Subject: after\r\n\r\nx\r\n'));
    expect(next.uid).toBe(31);
    const info = (await back.status('INBOX')).highestModseq;
    expect(info).toBeGreaterThan(highest);
    const created = await back.createMailbox('new');
    expect(created.uidValidity).toBeGreaterThan((await back.mailbox('INBOX')).uidValidity);
    await back.close();
    await repo.close();
  });

  it("a store that went on after its snapshot: a restore with newUidValidity gives each mailbox a new uidValidity, so a uid the lost store gave since never names other mail under a uidValidity clients cached", async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const atSnapshot = await dump(store);
    // after the nightly backup: mail a client then cached as (uidValidity, 31), and a flag change
    const lost = await store.append('INBOX', Buffer.from('Subject: after the backup\r\n\r\nlost with the disk\r\n'));
    await store.setFlags('INBOX', [1], { add: ['\\Seen'] });
    const cached = await store.status('INBOX');
    const cachedBob = await store.mailbox('user/bob/INBOX');
    await store.close();
    for (const selection of [undefined, { user: 'bob' }]) {
      const to = join(dir, selection ? 'u' : 'r');
      const summary = await restoreToNewStore(nodeFileSystem, repo, 'latest', to, { ...(selection ? { selection } : {}), newUidValidity: true });
      let back = await Store.open(to);
      const bob = await back.mailbox('user/bob/INBOX');
      expect(bob.uidValidity).toBeGreaterThan(cachedBob.uidValidity);
      expect(summary.uidValidity).toBe('new');
      if (!selection) {
        // everything else as it was: uids, flags, dates, modseqs, ACLs, owners
        const all = await dump(back) as Record<string, { uidValidity: number; status: { uidValidity: number } }>;
        const expected = atSnapshot as Record<string, { uidValidity: number; status: { uidValidity: number; highestModseq: number; messages: number; uidNext: number } }>;
        for (const [name, box] of Object.entries(all)) {
          expect({ ...box, uidValidity: 0, status: { ...box.status, uidValidity: 0 } }).toEqual({ ...expected[name], uidValidity: 0, status: { ...expected[name]!.status, uidValidity: 0 } });
        }
        const inbox = await back.status('INBOX');
        expect(inbox.uidValidity).toBeGreaterThan(cached.uidValidity);
        const next = await back.append('INBOX', Buffer.from('Subject: new mail\r\n\r\nanother message\r\n'));
        expect(next.uid).toBe(lost.uid); // the uid again, but under a uidValidity no client cached it with
        expect(next.uidValidity).not.toBe(lost.uidValidity);
        // new mailboxes go on above the restored ones, also once the index is rebuilt from the journal
        const uidValidities = (await Promise.all((await back.listMailboxes()).map((b) => back.mailbox(b.name)))).map((b) => b.uidValidity);
        expect(new Set(uidValidities).size).toBe(uidValidities.length);
        await back.close();
        rmSync(join(to, 'index'), { recursive: true, force: true });
        back = await Store.open(to);
        expect((await back.status('INBOX')).uidValidity).toBe(inbox.uidValidity);
        expect((await back.createMailbox('Trash')).uidValidity).toBeGreaterThan(Math.max(...uidValidities));
      }
      await back.close();
    }
    // without newUidValidity (issue 14: a restore into an empty target as it was) every uidValidity is kept
    const kept = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'k'));
    expect(kept.uidValidity).toBe('kept');
    const k = await Store.open(join(dir, 'k'));
    expect((await k.status('INBOX')).uidValidity).toBe(cached.uidValidity);
    await k.close();
    await repo.close();
  });

  it("two restores of one snapshot a few seconds apart give different uidValidities, also when the store's last one ran ahead of the clock (mailboxes made faster than one a second)", async () => {
    const dir = tmpDir('bk');
    const store = await Store.init(join(dir, 's'));
    // an undumped list (or a migration) leaves the last uidValidity far ahead of the clock's seconds
    const ahead = Math.floor(Date.now() / 1000) + 1_000_000;
    await undumpMailboxes(store, [{ name: 'user/alice/INBOX', id: 'b1445cf8-5485-4288-bb46-f48aa6be0102', uidValidity: ahead, uidNext: 5, highestModseq: 10, acl: {}, created: 1, owner: 'alice' }]);
    await fill(store, 'user/alice/INBOX', 3);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    const realNow = Date.now.bind(Date);
    const given: number[] = [];
    try {
      for (const [i, laterMs] of [0, 3000].entries()) {
        vi.spyOn(Date, 'now').mockImplementation(() => realNow() + laterMs);
        await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, `r${i}`), { newUidValidity: true });
        const back = await Store.open(join(dir, `r${i}`));
        given.push((await back.status('user/alice/INBOX')).uidValidity);
        await back.close();
      }
    } finally {
      vi.restoreAllMocks();
    }
    // the second restore's clients cached what the first restored store gave out: not its uidValidity again
    expect(given[0]).toBeGreaterThan(ahead);
    expect(given[1]).toBeGreaterThan(given[0]!);
    await repo.close();
  });

  it('an incremental run reads and adds only what changed; earlier snapshots restore as they were', async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    const first = await runBackup(source(store), repo);
    const atFirst = await dump(store);
    const added = await fill(store, 'INBOX', 20, 500, 4000);
    await store.expunge('INBOX', [1, 2, 3, 4]);
    await store.setFlags('user/bob/INBOX', [1], { add: ['\\Answered'] });
    const second = await runBackup(source(store), repo);
    const newBytes = added.reduce((sum, b) => sum + b.length, 0);
    expect(second.newBlobs).toBe(20);
    expect(second.bytesRead).toBe(newBytes); // nothing the repository held was read again
    expect(second.bytesAdded).toBeLessThan(newBytes + 64 * 1024); // the new blobs (compressed), an index and a snapshot
    expect(second.bytesAdded).toBeGreaterThan(newBytes / 2);
    const third = await runBackup(source(store), repo);
    expect(third.newBlobs).toBe(0);
    expect(third.bytesRead).toBe(0);
    const atThird = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, first.snapshot.slice(0, 10), join(dir, 'r1'));
    const r1 = await Store.open(join(dir, 'r1'));
    expect(await dump(r1)).toEqual(atFirst);
    await r1.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r3'));
    const r3 = await Store.open(join(dir, 'r3'));
    expect(await dump(r3)).toEqual(atThird);
    await r3.close();
    await repo.close();
  });

  it('one user, one mailbox (reading only its blobs), and --as into a new store', async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const alice = await dump(store, (name) => name.startsWith('user/alice/'));
    const sent = await dump(store, (name) => name === 'user/alice/Sent');
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'u'), { selection: { user: 'alice' } });
    const u = await Store.open(join(dir, 'u'));
    expect(await dump(u)).toEqual(alice);
    await u.close();
    const dataBytes = (await repo.list('data')).reduce((sum, f) => sum + statSync(repo.path('data', f)).size, 0);
    const one = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'm'), { selection: { mailbox: 'user/alice/Sent' } });
    expect(one.messages).toBe(10);
    expect(one.bytesRead).toBeGreaterThan(0);
    expect(one.bytesRead).toBeLessThan(dataBytes * 0.3); // 10 of 49 blobs
    const m = await Store.open(join(dir, 'm'));
    expect(await dump(m)).toEqual(sent);
    expect(await m.listMailboxes()).toEqual([expect.objectContaining({ name: 'user/alice/Sent' })]); // not Sent/Old
    await m.close();
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'as'), { selection: { user: 'alice', as: 'carol' } });
    const as = await Store.open(join(dir, 'as'));
    expect((await as.listMailboxes()).map((b) => b.name)).toEqual(['user/carol/Sent', 'user/carol/Sent/Old']);
    expect((await as.mailbox('user/carol/Sent')).owner).toBe('carol');
    await as.close();
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'x'), { selection: { mailbox: 'nope' } }), 'NOT_FOUND');
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'u')), 'EXISTS'); // not into a directory that holds something
    expect(existsSync(join(dir, 'x'))).toBe(false);
    await repo.close();
  });

  it("a user's or a mailbox's restore into a new store takes the quota roots that cover it (renamed with --as), not every user's", async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    await setQuota(store, 'user', { storage: 1_000_000_000 }); // above every user: covers the restored part under any name
    await setQuota(store, 'user/alice', { messages: 100 });
    await setQuota(store, 'user/alice/Sent/Old', { messages: 7 });
    await setQuota(store, 'user/bob', { messages: 50 });
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    const roots = async (to: string) => {
      const restored = await Store.open(to);
      const list = (await listQuotas(restored)).map((q) => [q.root, q.limits]);
      await restored.close();
      return list;
    };
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'as'), { selection: { user: 'alice', as: 'carol' } });
    expect(await roots(join(dir, 'as'))).toEqual([['user', { storage: 1_000_000_000 }], ['user/carol', { messages: 100 }], ['user/carol/Sent/Old', { messages: 7 }]]);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'u'), { selection: { user: 'alice' } });
    expect(await roots(join(dir, 'u'))).toEqual([['user', { storage: 1_000_000_000 }], ['user/alice', { messages: 100 }], ['user/alice/Sent/Old', { messages: 7 }]]);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'm'), { selection: { mailbox: 'user/alice/Sent/Old' } });
    expect(await roots(join(dir, 'm'))).toEqual([['user', { storage: 1_000_000_000 }], ['user/alice', { messages: 100 }], ['user/alice/Sent/Old', { messages: 7 }]]);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'm2'), { selection: { mailbox: 'user/alice/Sent/Old', as: 'user/bob/Old' } });
    expect(await roots(join(dir, 'm2'))).toEqual([['user', { storage: 1_000_000_000 }], ['user/bob/Old', { messages: 7 }]]);
    await repo.close();
  });

  it("a user's or a mailbox's restore into a new store keeps the modseq offset an undump or XFER raised: the next change's modseq is above the restored ones, never back below them", async () => {
    const dir = tmpDir('bk');
    const store = await Store.init(join(dir, 's'));
    // modseqs a client saw on another server: this store's go on above them (the modseq offset)
    await undumpMailboxes(store, [{ name: 'user/alice/INBOX', id: 'b1445cf8-5485-4288-bb46-f48aa6be0101', uidValidity: 7, uidNext: 1, highestModseq: 100_000, acl: {}, created: 1, owner: 'alice' }]);
    await fill(store, 'user/alice/INBOX', 5, 1, 200);
    const before = (await store.status('user/alice/INBOX')).highestModseq;
    expect(before).toBeGreaterThan(100_000);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    for (const [to, selection] of [['u', { user: 'alice' }], ['as', { user: 'alice', as: 'carol' }], ['m', { mailbox: 'user/alice/INBOX' }]] as const) {
      await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, to), { selection });
      const restored = await Store.open(join(dir, to));
      const name = to === 'as' ? 'user/carol/INBOX' : 'user/alice/INBOX';
      expect((await restored.status(name)).highestModseq).toBe(before);
      await restored.setFlags(name, 1, { add: ['\\Flagged'] });
      expect((await restored.messageInfo(name, 1)).modseq, to).toBeGreaterThan(before);
      expect((await restored.status(name)).highestModseq, to).toBeGreaterThan(before);
      expect(await recount(restored)).toEqual([]);
      await restored.close();
    }
    await repo.close();
  });

  it('finds a user given in another Unicode spelling (NFD josé) as the store keeps the name (NFC), and --as likewise', async () => {
    const dir = tmpDir('bk');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('user/jos\u00e9/INBOX', { owner: 'jos\u00e9' });
    await fill(store, 'user/jos\u00e9/INBOX', 2);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.close();
    const result = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'u'), { selection: { user: 'jose\u0301', as: 'zoe\u0308' } });
    expect(result.messages).toBe(2);
    const restored = await Store.open(join(dir, 'u'));
    expect((await restored.listMailboxes()).map((b) => b.name)).toEqual(['user/zo\u00eb/INBOX']);
    expect((await restored.mailbox('user/zo\u00eb/INBOX')).owner).toBe('zo\u00eb');
    await restored.close();
    await repo.close();
  });

  it('--user --as a longer name that would take a mailbox past the name length bound: INVALID before anything is written, into a new or a live store', async () => {
    const dir = tmpDir('bk');
    const store = await Store.init(join(dir, 's'));
    // user/al/ + 1016 bytes: exactly mailboxNameBytesMax (1024); under user/alice it would be 1027
    const deep = `user/al/${Array.from({ length: 4 }, () => 'd'.repeat(250)).join('/')}/${'e'.repeat(12)}`;
    expect(Buffer.byteLength(deep)).toBe(1024);
    await store.createMailbox(deep, { owner: 'al' });
    await fill(store, deep, 2);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    // refused as the selection is made, not after every blob was written into the new store
    const read = repo.dataBytesRead;
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'u'), { selection: { user: 'al', as: 'alice' } }), 'INVALID');
    expect(repo.dataBytesRead).toBe(read);
    expect(existsSync(join(dir, 'u', 'STORE'))).toBe(false);
    const before = await dump(store);
    await expectCode(restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { user: 'al', as: 'alice' } }), 'INVALID');
    expect(await dump(store)).toEqual(before);
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'b'), { selection: { user: 'al', as: 'b' } }); // a name that fits
    const restored = await Store.open(join(dir, 'b'));
    expect((await restored.status(deep.replace('user/al/', 'user/b/'))).messages).toBe(2);
    await restored.close();
    await store.close();
    await repo.close();
  });

  it('into a live store: a restore whose mailbox is renamed away and made again under its name meanwhile stops (NOT_FOUND), the rest not appended into the new one', async () => {
    const dir = tmpDir('bk');
    const store = await Store.open(join(dir, 's'), { create: true });
    await store.createMailbox('INBOX');
    const count = backupLimits.restoreAppendMessages + 20; // two batches
    await store.appendBatch('INBOX', Array.from({ length: count }, (_, i) => ({ bytes: Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`) })));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    // an admin (or a mail client) renames the half-restored mailbox away and makes one of the name
    // before the second batch: found by an outside run through the daemon, where it took the rest
    // of the restore and the restore said all of it was in INBOX/restored (exit 0)
    const target = storeTarget(store);
    let batches = 0;
    const append = target.appendBatch;
    target.appendBatch = async (name, items, options) => {
      if (++batches === 2) {
        await store.renameMailbox('INBOX/restored', 'INBOX/away');
        await store.createMailbox('INBOX/restored');
      }
      return append(name, items, options);
    };
    const stopped = await restoreIntoStore(target, 's', repo, 'latest', { selection: { mailbox: 'INBOX', as: 'INBOX/restored' } }).catch((error: MailstoreError) => error);
    expect(stopped).toMatchObject({ code: 'NOT_FOUND' });
    expect((stopped as MailstoreError).message).toMatch(/no longer the mailbox .* nothing was appended; the restore stopped there: INBOX\/restored \(renamed or deleted since: under its new name if renamed\) holds the 256 messages restored before it/);
    expect((await store.status('INBOX/restored')).messages).toBe(0);
    expect((await store.status('INBOX/away')).messages).toBe(backupLimits.restoreAppendMessages);
    expect(await recount(store)).toEqual([]);
    await store.close();
    await repo.close();
  });

  it('into a live store: a taken name is refused (EXISTS) before anything is written; --as restores beside it', async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const before = await dump(store);
    const target: RestoreTarget = storeTarget(store);
    await expectCode(restoreIntoStore(target, 's', repo, 'latest', { selection: { mailbox: 'INBOX' } }), 'EXISTS');
    await expectCode(restoreIntoStore(target, 's', repo, 'latest', { selection: { user: 'alice' } }), 'EXISTS');
    await expectCode(restoreIntoStore(target, 's', repo, 'latest'), 'EXISTS'); // a whole store never goes into a live one
    expect(await dump(store)).toEqual(before);
    const done = await restoreIntoStore(target, 's', repo, 'latest', { selection: { mailbox: 'INBOX', as: 'INBOX/restored' } });
    expect(done.messages).toBe(29);
    const original = [];
    for await (const m of store.readMessages('INBOX')) original.push(m);
    const copy = [];
    for await (const m of store.readMessages('INBOX/restored')) copy.push(m);
    expect(copy.map((m) => m.info.uid)).toEqual(original.map((_, i) => i + 1)); // new uids
    expect(copy.map((m) => [m.body, m.info.flags, m.info.internalDate])).toEqual(original.map((m) => [m.body, m.info.flags, m.info.internalDate]));
    await store.close();
    await repo.close();
  });

  it("into a live store: a user deleted by mistake comes back with the quota roots of its own tree (a delete frees them), renamed with --as; a root the live store has now, or one above the user, is left as it is", async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    await setQuota(store, 'user', { storage: 1_000_000_000 });
    await setQuota(store, 'user/alice', { messages: 100 });
    await setQuota(store, 'user/alice/Sent/Old', { messages: 7 });
    await setQuota(store, 'user/bob', { messages: 50 });
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.deleteUser('alice');
    await setQuota(store, 'user', { storage: 2_000_000_000 }); // changed since the backup: the live value stays
    const roots = async () => (await listQuotas(store)).map((q) => [q.root, q.limits]);
    expect(await roots()).toEqual([['user', { storage: 2_000_000_000 }], ['user/bob', { messages: 50 }]]);
    await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { user: 'alice' } });
    expect(await roots()).toEqual([['user', { storage: 2_000_000_000 }], ['user/alice', { messages: 100 }], ['user/alice/Sent/Old', { messages: 7 }], ['user/bob', { messages: 50 }]]);
    await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { user: 'alice', as: 'carol' } });
    await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { mailbox: 'user/alice/Sent/Old', as: 'user/bob/Old' } });
    await setQuota(store, 'user/dave', { storage: 50_000_000 }); // set ahead of a restore under that name: kept
    await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { user: 'alice', as: 'dave' } });
    expect(await roots()).toEqual([
      ['user', { storage: 2_000_000_000 }], ['user/alice', { messages: 100 }], ['user/alice/Sent/Old', { messages: 7 }], ['user/bob', { messages: 50 }],
      ['user/bob/Old', { messages: 7 }], ['user/carol', { messages: 100 }], ['user/carol/Sent/Old', { messages: 7 }], ['user/dave', { storage: 50_000_000 }], ['user/dave/Sent/Old', { messages: 7 }],
    ]);
    expect((await store.status('user/carol/Sent/Old')).messages).toBe(5);
    await store.close();
    await repo.close();
  });

  it('a repository shared by two stores: each restores, and their common messages are stored once', async () => {
    const dir = tmpDir('bk');
    const a = await sampleStore(join(dir, 'a'));
    const b = await Store.init(join(dir, 'b'));
    await b.createMailbox('Shared');
    const shared = [];
    for await (const m of a.readMessages('INBOX')) shared.push(m);
    await b.appendBatch('Shared', shared.map((m) => ({ bytes: m.body })));
    await fill(b, 'Shared', 3, 900);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(a), repo);
    const second = await runBackup(source(b), repo);
    expect(second.newBlobs).toBe(3);
    expect(second.storeId).toBe(b.identity.storeId);
    const dumpB = await dump(b);
    await a.close();
    await b.close();
    const list = await repo.snapshots();
    expect(list.map((s) => s.snapshot.storeId)).toEqual([list[0].snapshot.storeId, b.identity.storeId]);
    await restoreToNewStore(nodeFileSystem, repo, list[1].id, join(dir, 'rb'));
    const rb = await Store.open(join(dir, 'rb'));
    expect(await dump(rb)).toEqual(dumpB);
    await rb.close();
    await repo.close();
  });

  it('into an empty directory (a mount point with lost+found), and over what an interrupted restore left', async () => {
    const dir = tmpDir('bk');
    const store = await sampleStore(join(dir, 's'));
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const before = await dump(store);
    await store.close();
    const mount = join(dir, 'mnt');
    mkdirSync(join(mount, 'lost+found'), { recursive: true });
    await restoreToNewStore(nodeFileSystem, repo, 'latest', mount);
    expect(readdirSync(mount).sort()).toEqual(['STORE', 'index', 'journal', 'lock', 'lost+found', 'packs', 'quarantine', 'tmp']);
    const back = await Store.open(mount);
    expect(await dump(back)).toEqual(before);
    await back.close();
    // a restore killed before STORE moved up leaves RESTORING and parts: the next one clears them
    const left = join(dir, 'left');
    mkdirSync(join(left, '.restoring', 'packs'), { recursive: true });
    writeFileSync(join(left, 'RESTORING'), 'restoring snapshot abcd here; an interrupted restore is cleared by the next one\n'); // an older mailstore's mark: no pid
    writeFileSync(join(left, 'journal'), 'half');
    await restoreToNewStore(nodeFileSystem, repo, 'latest', left);
    const again = await Store.open(left);
    expect(await dump(again)).toEqual(before);
    await again.close();
    await repo.close();
  });

  it('reports the snapshot it cannot find, and an ambiguous prefix', async () => {
    const dir = tmpDir('bk');
    const repo = await openRepo(join(dir, 'repo'));
    await expectCode(repo.findSnapshot('latest'), 'NOT_FOUND');
    await expectCode(repo.findSnapshot('zz'), 'INVALID');
    await expectCode(repo.findSnapshot('abcd'), 'NOT_FOUND');
    await repo.close();
  });
});

describe('durations in the summaries', () => {
  it('a backup during which the wall clock stepped back an hour reports its own duration, not a negative one; its snapshot keeps the wall-clock time', async () => {
    const dir = tmpDir('bkd');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 3);
    const repo = await openRepo(join(dir, 'repo'));
    let offsetMs = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + offsetMs);
    try {
      const summary = await runBackup(source(store), repo, { onPlan: () => { offsetMs = -3600_000; } });
      expect(summary.durationMs).toBeGreaterThanOrEqual(0);
      expect(summary.durationMs).toBeLessThan(60_000);
      expect((await repo.readSnapshot(summary.snapshot)).time).toBeLessThan(new Date().getTime() - 3000_000);
    } finally {
      clock.mockRestore();
      await store.close();
      await repo.close();
    }
  });
});
