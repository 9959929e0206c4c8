// XFER: a user's mailboxes move to another store with uidValidity, uids, flags, dates, ACLs and the
// owner kept, changes made during the copy are caught up under the fence, the source keeps
// nothing; an XFER that fails before its switch leaves the user at the source only; one
// interrupted after its switch finishes on the next run.
import { describe, expect, it, vi } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { startPrimary } from '../../src/replication/primary.js';
import { xferUser } from '../../src/replication/xfer.js';
import { serveXfer } from '../../src/replication/xfer-target.js';
import { connect, listen, type Connection } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { listQuotas, setQuota } from '../../src/store/quota.js';
import { keys } from '../../src/keys/index-keys.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { recount } from '../helpers/recount.js';
import { resync, vanishedOf } from '../helpers/qresync.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { codeOf, keyFile, msg, quiet, startPair, until } from './helpers.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

async function twoStores() {
  const key = keyFile();
  const a = await Store.open(tmpDir('a'), { create: true });
  const b = await Store.open(tmpDir('b'), { create: true });
  const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
  const to = `127.0.0.1:${(await target.status()).port}`;
  return { key, a, b, target, to, close: async () => { await target.close(); await a.close(); await b.close(); } };
}

/** A mailbox as an XFER source announces it (xfer.mailbox), for the tests that play a faulty source. */
const BOB_INBOX = { id: 'b1445cf854854288bb46f48aa6be0101', name: ['user', 'bob', 'INBOX'], uidValidity: 7, uidNext: 1, acl: {}, created: 1, owner: 'bob' };

/** Talks to the target at `to` as an XFER source would (hello, welcome), by hand: `talk` sends what it likes. */
async function asSource(to: string, key: string, talk: (connection: Connection) => Promise<void>): Promise<void> {
  const connection = await connect(to, await readKeyFile(nodeFileSystem, key));
  try {
    await connection.send({ t: 'hello', kind: 'xfer', epoch: 0 });
    await connection.expect('welcome', 5000);
    await talk(connection);
  } finally {
    connection.close();
  }
}

/** Announces BOB_INBOX as a source would (xfer.mailbox) and returns its id. */
async function announceBobInbox(connection: Connection): Promise<string> {
  await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, highestModseq: 0 } });
  expect(await connection.next(5000)).toMatchObject({ t: 'xfer.mailbox' });
  return BOB_INBOX.id;
}

/** The target's user/bob/INBOX holds uid 1 alone, and every counter says so. */
async function expectBobInboxOfOne(b: Store): Promise<void> {
  expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: 1, uidNext: 2 });
  expect(await recount(b)).toEqual([]);
  expect((await scrub(b)).findings.filter(isDamage)).toEqual([]);
}

describe('xfer', () => {
  it('moves a user keeping uidValidity, uids, flags, dates, ACLs and owner; catches up changes made during the copy', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      await a.createMailbox('user/bob/Sent', { owner: 'bob', acl: { carol: 'lr' } });
      await a.createMailbox('user/alice/INBOX', { owner: 'alice' });
      for (let i = 1; i <= 20; i++) await a.append('user/bob/INBOX', msg(i), { internalDate: new Date(Date.UTC(2020, 0, i)) });
      await a.append('user/bob/Sent', msg(100));
      await a.expunge('user/bob/INBOX', [3, 4, 5, 20]);
      await a.setFlags('user/bob/INBOX', [7], { add: ['\\Flagged'] });
      const before = await a.status('user/bob/INBOX');
      // a change while the copy runs: made from the log callback, after the copy and before the fence
      let during: Promise<unknown> | undefined;
      const result = await xferUser(a, {
        user: 'bob', to, keyFile: key,
        log: (line) => { if (/fencing/.test(line)) during = a.append('user/bob/INBOX', msg(21)).then((r) => r.uid, (e: { code: string }) => e.code); },
      });
      // the append made as the fence went up either committed before it (then it moved with bob) or
      // waited for it and failed at the source (bob had moved): never acknowledged and lost
      const outcome = await during;
      if (outcome === 'NOT_FOUND') expect(await codeOf(b.fetch('user/bob/INBOX', 21))).toBe('NOT_FOUND');
      else expect(await b.fetch('user/bob/INBOX', outcome as number)).toEqual(msg(21));
      expect(result.mailboxes).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
      const after = await b.status('user/bob/INBOX');
      expect(after.uidValidity).toBe(before.uidValidity);
      expect(after.uidNext).toBeGreaterThanOrEqual(before.uidNext);
      for (const uid of [1, 2, 6, 7, 19]) {
        expect(await b.fetch('user/bob/INBOX', uid)).toEqual(msg(uid));
        expect((await b.messageInfo('user/bob/INBOX', uid)).internalDate).toEqual(new Date(Date.UTC(2020, 0, uid)));
      }
      expect(await codeOf(b.fetch('user/bob/INBOX', 4))).toBe('NOT_FOUND');
      expect((await b.messageInfo('user/bob/INBOX', 7)).flags).toContain('\\Flagged');
      expect((await b.listMailboxes({ user: 'bob' })).map((m) => m.name)).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
      expect((await b.listMailboxes({ user: 'carol' })).map((m) => m.name)).toEqual(['user/bob/Sent']);
      // nothing of bob at the source; alice untouched
      expect((await a.listMailboxes()).map((m) => m.name)).toEqual(['user/alice/INBOX']);
      // a new message at the target gets a uid never given out at the source
      const { uid } = await b.append('user/bob/INBOX', msg(50));
      expect(uid).toBeGreaterThan(20);
    } finally {
      await close();
    }
  }, 30_000);

  it('moves a user who takes mail and flag changes between the mailbox request and the copy of its messages (they were refused INVALID at the target, the XFER rolled back)', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 5; i++) await a.append('user/bob/INBOX', msg(i));
      // the copy's read of the mailbox starts only once a delivery and a flag change committed
      // after its request (a daemon taking LMTP mail for bob: found by an outside run, exit 5)
      const read = a.readMessages.bind(a);
      let raced = false;
      const spy = vi.spyOn(a, 'readMessages').mockImplementation((name, options) => {
        if (raced || name !== 'user/bob/INBOX') return read(name, options);
        raced = true;
        return (async function* () {
          await a.append('user/bob/INBOX', msg(6));
          await a.setFlags('user/bob/INBOX', [2], { add: ['\\Seen'] });
          yield* read(name, options);
        })();
      });
      const before = await a.status('user/bob/INBOX');
      const result = await xferUser(a, { user: 'bob', to, keyFile: key });
      spy.mockRestore();
      expect(raced).toBe(true);
      expect(result.mailboxes).toEqual(['user/bob/INBOX']);
      for (let uid = 1; uid <= 6; uid++) expect(await b.fetch('user/bob/INBOX', uid)).toEqual(msg(uid));
      expect((await b.messageInfo('user/bob/INBOX', 2)).flags).toEqual(['\\Seen']);
      expect((await b.status('user/bob/INBOX')).uidValidity).toBe(before.uidValidity);
      expect((await b.status('user/bob/INBOX')).highestModseq).toBeGreaterThan(before.highestModseq);
      expect(await recount(b)).toEqual([]);
      expect((await a.listMailboxes()).map((m) => m.name)).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it("takes the user's quota roots along (as Cyrus's XFER sets the quota on the target) and removes them at the source", async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      await a.createMailbox('user/bob/Sent', { owner: 'bob' });
      await a.createMailbox('user/bobby/INBOX', { owner: 'bobby' });
      await setQuota(a, 'user/bob', { messages: 3 });
      await setQuota(a, 'user/bob/Sent', { storage: 100_000 });
      await setQuota(a, 'user/bobby', { messages: 9 });
      for (let i = 1; i <= 3; i++) await a.append('user/bob/INBOX', msg(i));
      await xferUser(a, { user: 'bob', to, keyFile: key });
      expect((await listQuotas(b)).map((q) => [q.root, q.limits])).toEqual([['user/bob', { messages: 3 }], ['user/bob/Sent', { storage: 100_000 }]]);
      expect(await codeOf(b.append('user/bob/INBOX', msg(4)))).toBe('OVER_QUOTA'); // bob's limit holds at the target
      expect((await listQuotas(a)).map((q) => q.root)).toEqual(['user/bobby']); // a new bob here starts without the old one's
    } finally {
      await close();
    }
  }, 30_000);

  it('an XFER rolled back before its switch puts back the quota roots it had set at the target (they stayed, limiting a user who is not there)', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await setQuota(b, 'user/bob/Sent', { storage: 5000 }); // the target's own, before the XFER
      await setQuota(b, 'user/bob/INBOX', { storage: 7 }); // its own too, at the name of the mailbox the XFER creates and rolls back
      const limitsAt = async () => (await listQuotas(b)).map((q) => [q.root, q.limits]);
      await asSource(to, key, async (connection) => {
        const id = await announceBobInbox(connection);
        await connection.send({ t: 'xfer.reconcile', id, live: [], uidNext: 1, quotaRoots: [['user/bob', { messages: 3 }], ['user/bob/Sent', { storage: 100_000 }]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.reconcile', quotaRoots: true });
        expect(await limitsAt()).toEqual([['user/bob', { messages: 3 }], ['user/bob/INBOX', { storage: 7 }], ['user/bob/Sent', { storage: 100_000 }]]);
        await connection.send({ t: 'xfer.abort', ids: [id] }); // as the source's rollBack sends it
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.abort' });
      });
      expect(await b.listMailboxes()).toEqual([]);
      expect(await limitsAt()).toEqual([['user/bob/INBOX', { storage: 7 }], ['user/bob/Sent', { storage: 5000 }]]);
    } finally {
      await close();
    }
  }, 30_000);

  it('xfer.abort deletes only the mailboxes its own XFER created: not one that was here before, not one an earlier XFER made (resumed by this one), whatever ids it names', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await b.createMailbox('user/carol/INBOX');
      const { uid } = await b.append('user/carol/INBOX', msg(1));
      const carol = (await b.mailbox('user/carol/INBOX')).id.replaceAll('-', '');
      await asSource(to, key, async (connection) => { // an earlier XFER: bob's INBOX made and filled, never aborted (it switched, or was cut off)
        const id = await announceBobInbox(connection);
        await connection.send({ t: 'xfer.messages', id, messages: [[1, msg(2), [], 1000, {}]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.messages', added: 1 });
      });
      await asSource(to, key, async (connection) => { // another XFER finds bob's INBOX, makes alice's, then rolls back
        await announceBobInbox(connection);
        await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, id: 'a1445cf854854288bb46f48aa6be0102', name: ['user', 'alice', 'INBOX'], highestModseq: 0 } });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.mailbox' });
        await connection.send({ t: 'xfer.abort', ids: [BOB_INBOX.id, carol, 'a1445cf854854288bb46f48aa6be0102'] });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.abort' });
      });
      expect((await b.listMailboxes()).map((m) => m.name).sort()).toEqual(['user/bob/INBOX', 'user/carol/INBOX']);
      expect(await b.fetch('user/carol/INBOX', uid)).toEqual(msg(1));
      expect(await b.fetch('user/bob/INBOX', 1)).toEqual(msg(2));
    } finally {
      await close();
    }
  }, 30_000);

  it('a target that predates quota roots in XFER ignores them: they stay at the source (never lost), and the result says so', async () => {
    const key = keyFile();
    const a = await Store.open(tmpDir('a'), { create: true });
    const b = await Store.open(tmpDir('b'), { create: true });
    // the target's XFER as an older mailstore serves it: a reconcile's quotaRoots are not read
    const older = await listen('127.0.0.1:0', await readKeyFile(nodeFileSystem, key), (connection) => {
      void (async () => {
        await connection.next(); // the hello
        const withoutRoots = {
          remote: connection.remote,
          send: (message: Parameters<Connection['send']>[0]) => connection.send(message),
          next: async () => { const request = await connection.next(); if (request) delete request.quotaRoots; return request; },
        } as unknown as Connection;
        await serveXfer(b, withoutRoots, quiet);
      })().catch(() => undefined);
    }, quiet);
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      await setQuota(a, 'user/bob', { messages: 3 });
      await setQuota(a, 'user/bob/INBOX', { storage: 9000 }); // a root at a mailbox's name: kept too, though the mailbox goes
      await a.append('user/bob/INBOX', msg(1));
      const result = await xferUser(a, { user: 'bob', to: `127.0.0.1:${older.port}`, keyFile: key });
      expect(result).toMatchObject({ mailboxes: ['user/bob/INBOX'], quotaRootsKept: ['user/bob', 'user/bob/INBOX'] });
      expect(await b.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      expect(await listQuotas(b)).toEqual([]);
      expect((await listQuotas(a)).map((q) => [q.root, q.limits])).toEqual([['user/bob', { messages: 3 }], ['user/bob/INBOX', { storage: 9000 }]]);
    } finally {
      await older.close();
      await a.close();
      await b.close();
    }
  }, 30_000);

  it('finds a user given in another Unicode spelling (NFD josé) as the store keeps the name (NFC)', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/jos\u00e9/INBOX', { owner: 'jos\u00e9' });
      await a.append('user/jos\u00e9/INBOX', msg(1));
      const result = await xferUser(a, { user: 'jose\u0301', to, keyFile: key });
      expect(result.mailboxes).toEqual(['user/jos\u00e9/INBOX']);
      expect(await b.fetch('user/jos\u00e9/INBOX', 1)).toEqual(msg(1));
      expect(await a.listMailboxes()).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it('keeps modseqs: the target raises its modseqs past the moved ones first, so none of its later ones goes backwards (also after a rebuild)', async () => {
    const { key, a, b, to, close } = await twoStores();
    const modseqs = async (store: Store, name: string) => {
      const out: [number, number][] = [];
      for await (const m of store.messages(name)) out.push([m.uid, m.modseq]);
      return out;
    };
    let bRoot = '';
    let moved: [number, number][] = [];
    let raised = 0;
    try {
      // the source's seqs run far ahead of the target's
      await a.createMailbox('user/alice/INBOX', { owner: 'alice' });
      for (let i = 0; i < 200; i++) await a.append('user/alice/INBOX', msg(i));
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 30; i++) await a.append('user/bob/INBOX', msg(1000 + i));
      for (let i = 1; i <= 30; i += 3) await a.setFlags('user/bob/INBOX', [i], { add: ['\\Seen'] });
      await a.expunge('user/bob/INBOX', [2]);
      await b.createMailbox('user/carol/INBOX', { owner: 'carol' });
      await b.append('user/carol/INBOX', msg(1));
      const source = await a.status('user/bob/INBOX');
      moved = await modseqs(a, 'user/bob/INBOX');
      expect(Math.max(...moved.map(([, m]) => m))).toBeGreaterThan(b.changes.lastSeq + 10);
      await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      bRoot = b.root;
      expect(await modseqs(b, 'user/bob/INBOX')).toEqual(moved);
      const target = await b.status('user/bob/INBOX');
      expect(target.highestModseq).toBeGreaterThanOrEqual(source.highestModseq);
      // a client that knew the source's HIGHESTMODSEQ sees no message as changed
      expect(await b.changesSince('user/bob/INBOX', source.highestModseq)).toMatchObject({ changed: [], vanished: [] });
      // later changes at the target, in the moved mailbox and elsewhere, are above every moved modseq
      const flagged = await b.setFlags('user/bob/INBOX', [1], { add: ['\\Flagged'] });
      expect(flagged.modseq).toBeGreaterThan(source.highestModseq);
      expect((await b.messageInfo('user/bob/INBOX', 1)).modseq).toBe(flagged.modseq);
      const { uid } = await b.append('user/carol/INBOX', msg(2));
      raised = (await b.messageInfo('user/carol/INBOX', uid)).modseq;
      expect(raised).toBeGreaterThan(flagged.modseq);
      expect(raised).toBeGreaterThan(source.highestModseq);
    } finally {
      await close();
    }
    // a rebuild from the journal gives the same modseqs (the raised offset is a journaled record)
    rmSync(join(bRoot, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(bRoot);
    try {
      const now = await modseqs(rebuilt, 'user/bob/INBOX');
      expect(now.filter(([u]) => u !== 1)).toEqual(moved.filter(([u]) => u !== 1));
      expect((await modseqs(rebuilt, 'user/carol/INBOX')).map(([, m]) => m)).toContain(raised);
      const next = await rebuilt.append('user/carol/INBOX', msg(3));
      expect((await rebuilt.messageInfo('user/carol/INBOX', next.uid)).modseq).toBeGreaterThan(raised);
    } finally {
      await rebuilt.close();
    }
  }, 30_000);

  it("a client that synced with the source is told at the target of what was expunged there since (below the mailbox's vanished floor: the uid ranges that hold no message), also after a rebuild; nothing of the source's history is written at the target", async () => {
    const { key, a, b, to, close } = await twoStores();
    let bRoot = '';
    let synced = 0;
    const cache = new Map<number, number>(); // uid -> modseq: the client's
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 10; i++) await a.append('user/bob/INBOX', msg(i));
      await a.expunge('user/bob/INBOX', [1]);
      for await (const info of a.messages('user/bob/INBOX')) cache.set(info.uid, info.modseq);
      synced = (await a.status('user/bob/INBOX')).highestModseq; // the client's last sync with the source
      await a.expunge('user/bob/INBOX', [3, 4]);
      await a.setFlags('user/bob/INBOX', [5], { add: ['\\Seen'] });
      await a.expunge('user/bob/INBOX', [10]); // the newest: the target's uidNext is raised past it
      await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      bRoot = b.root;
      const atTarget = await b.changesSince('user/bob/INBOX', synced);
      expect(atTarget.vanishedFloor).toBeGreaterThanOrEqual(synced);
      expect(vanishedOf(cache.keys(), atTarget)).toEqual([3, 4, 10]);
      resync(cache, atTarget, (info) => info.modseq);
      expect([...cache.keys()].sort((x, y) => x - y)).toEqual([2, 5, 6, 7, 8, 9]);
      expect(atTarget.changed.map((m) => m.uid)).toEqual([5]);
      // bounded by the live messages, not by history: one range per gap
      expect(atTarget.vanishedRanges).toEqual([[1, 1], [3, 4], [10, 10]]);
      // a client that synced at the target afterwards is told exactly, without ranges
      const later = await b.expunge('user/bob/INBOX', [2]);
      const after = await b.changesSince('user/bob/INBOX', atTarget.highestModseq);
      expect(after).toMatchObject({ vanished: [2] });
      expect(after.vanishedRanges).toBeUndefined();
      expect(later.modseq).toBeGreaterThan(atTarget.highestModseq);
      // the target's change log holds no tombstone of the source's
      const tombstones: number[] = [];
      for await (const [, value] of b.replication().db.entries<number>({ prefix: keys.changePrefix(Buffer.from((await b.mailbox('user/bob/INBOX')).id.replace(/-/g, ''), 'hex')) })) if (value === 1) tombstones.push(value);
      expect(tombstones).toHaveLength(1);
      expect(await recount(b)).toEqual([]);
      expect((await scrub(b)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await close();
    }
    rmSync(join(bRoot, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(bRoot);
    try {
      const again = await rebuilt.changesSince('user/bob/INBOX', synced);
      expect(again.vanishedRanges).toEqual([[1, 4], [10, 10]]);
      expect(vanishedOf([2, 3, 4, 5, 6, 7, 8, 9, 10], again)).toEqual([2, 3, 4, 10]);
    } finally {
      await rebuilt.close();
    }
  }, 30_000);

  it("a source mailbox's vanished floor above its highest modseq (its index rebuilt past journal damage) holds at the target: a client at that highest modseq is still answered with the ranges", async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 3; i++) await a.append('user/bob/INBOX', msg(i));
      await a.expunge('user/bob/INBOX', [2]);
      const highest = (await a.status('user/bob/INBOX')).highestModseq;
      const id = Buffer.from((await a.mailbox('user/bob/INBOX')).id.replace(/-/g, ''), 'hex');
      await a.replication().commitOps(async () => ({ ops: [{ op: 'change.floor', id, floor: highest + 1, entries: [] }], result: undefined }));
      expect((await a.changesSince('user/bob/INBOX', highest)).vanishedRanges).toEqual([[2, 2]]);
      await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      expect(await b.changesSince('user/bob/INBOX', highest)).toMatchObject({ vanishedRanges: [[2, 2]], vanishedFloor: highest + 1 });
    } finally {
      await close();
    }
  });

  it('an XFER that fails before its switch leaves the user at the source only', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await bobWithOne(a);
      await b.createMailbox('user/bob/Sent', { owner: 'someone-else' }); // a name clash at the target
      await a.createMailbox('user/bob/Sent', { owner: 'bob' });
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('EXISTS');
      expect((await a.listMailboxes()).map((m) => m.name)).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
      expect((await b.listMailboxes()).map((m) => m.name)).toEqual(['user/bob/Sent']); // the partial INBOX was rolled back
      expect(a.replication().db.getNow(keys.meta('xfer/bob'))).toBeUndefined();
    } finally {
      await close();
    }
  }, 30_000);

  it('moves a mailbox whose messages together pass the largest frame a node takes (a frame is closed by bytes, not only by count), byte for byte', async () => {
    // the limits scaled down a thousandfold: 256 messages of 320 KiB each already made one 80 MiB frame
    const tunable = limits as { replicationFrameBytesMax: number; xferFrameBytes: number };
    const saved = { ...tunable };
    tunable.replicationFrameBytesMax = 80 * 1024;
    tunable.xferFrameBytes = 32 * 1024;
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      const bodies = [0, 1, 2, 30 * 1024, 32 * 1024, 20 * 1024, 60 * 1024, 7, 0].map((pad, i) => msg(i + 1, pad));
      for (const body of bodies) await a.append('user/bob/INBOX', body);
      const result = await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      expect(result.mailboxes).toEqual(['user/bob/INBOX']);
      for (const [i, body] of bodies.entries()) expect(Buffer.compare(await b.fetch('user/bob/INBOX', i + 1), body)).toBe(0);
      expect(await a.listMailboxes()).toEqual([]);
      // one message no frame can carry: TOO_LARGE before the switch, the user stays here whole
      await a.createMailbox('user/carol/INBOX', { owner: 'carol' });
      const huge = msg(1, 100 * 1024);
      await a.append('user/carol/INBOX', msg(2));
      await a.append('user/carol/INBOX', huge);
      expect(await codeOf(xferUser(a, { user: 'carol', to, keyFile: key, log: quiet }))).toBe('TOO_LARGE');
      expect(Buffer.compare(await a.fetch('user/carol/INBOX', 2), huge)).toBe(0);
      expect((await b.listMailboxes()).map((m) => m.name)).toEqual(['user/bob/INBOX']);
    } finally {
      Object.assign(tunable, saved);
      await close();
    }
  }, 30_000);

  it('an XFER interrupted after its switch only finishes the removal at the source', async () => {
    const { key, a, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      await a.replication().commitMeta('xfer/bob', { to, phase: 'switched', mailboxes: ['user/bob/INBOX'] });
      const result = await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      expect(result.resumedAfterSwitch).toBe(true);
      expect(await a.listMailboxes()).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it('an XFER whose removal failed after its switch, then run again: mail the source took after the switch (not at the target) is never removed; REFUSED names the mailbox, and once it is dealt with the run finishes', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      await a.createMailbox('user/bob/Sent', { owner: 'bob' });
      await a.append('user/bob/INBOX', msg(1));
      await a.append('user/bob/Sent', msg(2));
      // the removal here fails after the switch (a disk error; or the daemon killed meanwhile)
      const admin = a.administration();
      const failing = vi.spyOn(a, 'administration').mockImplementation(() => ({ ...admin, mutate: async () => { throw new MailstoreError('IO', 'EIO (injected)'); } }));
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('IO');
      failing.mockRestore();
      expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: 1 }); // switched: bob is at the target
      // the source still serves the mailboxes until the removal is finished, and takes mail
      const late = await a.append('user/bob/INBOX', msg(3));
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('REFUSED');
      expect(await a.fetch('user/bob/INBOX', late.uid)).toEqual(msg(3)); // acknowledged: never removed
      expect((await a.listMailboxes()).map((m) => m.name)).toEqual(['user/bob/INBOX', 'user/bob/Sent']);
      // the admin moves that message to the target and removes the mailbox here: the run then finishes
      await b.append('user/bob/INBOX', await a.fetch('user/bob/INBOX', late.uid));
      await a.deleteMailbox('user/bob/INBOX');
      const result = await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      expect(result.resumedAfterSwitch).toBe(true);
      expect(await a.listMailboxes()).toEqual([]);
      expect(await a.getMeta('xfer/bob')).toBeUndefined();
    } finally {
      await close();
    }
  }, 30_000);

  it('an XFER interrupted after its switch, run again with another --to: REFUSED naming the target it switched to, nothing removed (the user is there, not at the new --to)', async () => {
    const { key, a, b, to, close } = await twoStores();
    const c = await Store.open(tmpDir('c'), { create: true });
    const other = await startPrimary(c, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    try {
      await bobWithOne(a);
      const admin = a.administration();
      const failing = vi.spyOn(a, 'administration').mockImplementation(() => ({ ...admin, mutate: async () => { throw new MailstoreError('IO', 'EIO (injected)'); } }));
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('IO');
      failing.mockRestore();
      await b.close(); // the target it switched to is away; the admin picks another one
      const elsewhere = `127.0.0.1:${(await other.status()).port}`;
      const refused = await xferUser(a, { user: 'bob', to: elsewhere, keyFile: key, log: quiet }).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'REFUSED' });
      expect((refused as Error).message).toContain(to);
      expect(await a.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      expect(await c.listMailboxes()).toEqual([]);
    } finally {
      vi.restoreAllMocks();
      await other.close();
      await c.close();
      await close().catch(() => undefined); // b closed above
    }
  }, 30_000);

  it("leaves a target whose scrub is clean when the source had expunged its newest uids (the target's uidNext raised to the source's)", async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await b.createMailbox('user/carol/INBOX', { owner: 'carol' });
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 5; i++) await a.append('user/bob/INBOX', msg(i));
      await a.expunge('user/bob/INBOX', [4, 5]);
      await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: 3, uidNext: 6 });
      // a damage report here would send an admin after a store that is whole
      expect((await scrub(b)).findings).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it('a source that sends a uid no mailbox may have (0, 2^32, 1.5), flags no record holds, or a uidNext past 2^32 is answered INVALID; the target stores nothing of it and keeps serving', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await b.createMailbox('user/carol/INBOX', { owner: 'carol' });
      await asSource(to, key, async (connection) => {
        const id = await announceBobInbox(connection);
        for (const uid of [0, 2 ** 32, 1.5]) {
          await connection.send({ t: 'xfer.messages', id, messages: [[uid, msg(uid), [], 0, {}]] });
          expect(await connection.next(5000), `uid ${uid}`).toMatchObject({ t: 'error', code: 'INVALID' });
        }
        for (const flags of ['\\Seen', [7], Array.from({ length: 129 }, (_, i) => `k${i}`)]) {
          await connection.send({ t: 'xfer.messages', id, messages: [[5, msg(5), flags, 0, {}]] });
          expect(await connection.next(5000), JSON.stringify(flags)).toMatchObject({ t: 'error', code: 'INVALID' });
        }
        await connection.send({ t: 'xfer.reconcile', id, live: [], uidNext: 2 ** 33 });
        expect(await connection.next(5000)).toMatchObject({ t: 'error', code: 'INVALID' });
      });
      expect((await b.status('user/bob/INBOX')).messages).toBe(0);
      expect((await b.status('user/bob/INBOX')).uidNext).toBe(1);
      expect((await b.append('user/carol/INBOX', msg(1))).uid).toBe(1); // the target did not stop
    } finally {
      await close();
    }
  }, 30_000);

  it('a source that sends one uid twice in a request is answered INVALID: nothing of the request is stored, no counter counts a message that is not there', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await asSource(to, key, async (connection) => {
        const id = await announceBobInbox(connection);
        await connection.send({ t: 'xfer.messages', id, messages: [[1, msg(1), [], 0, {}]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.messages', added: 1 });
        await connection.send({ t: 'xfer.messages', id, messages: [[5, msg(5), [], 0, {}], [6, msg(6), [], 0, {}], [5, msg(7), [], 0, {}]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'error', code: 'INVALID' });
      });
      expect(await b.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      await expectBobInboxOfOne(b);
    } finally {
      await close();
    }
  }, 30_000);

  it("a source whose message extras name other fields of the record (size, hash, pack, offset, op) cannot change them: the message is stored as sent, its counters right", async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await asSource(to, key, async (connection) => {
        const id = await announceBobInbox(connection);
        const extras = { size: 3, hash: Buffer.alloc(32), pack: 99, offset: 7, uid: 9, op: 'mailbox.deleteBegin', envelopeFrom: 'a@example.org' };
        await connection.send({ t: 'xfer.messages', id, messages: [[1, msg(1), [], 0, extras]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'xfer.messages', added: 1 });
        await connection.send({ t: 'xfer.messages', id, messages: [[2, msg(2), [], 0, { envelopeFrom: 'two words' }]] });
        expect(await connection.next(5000)).toMatchObject({ t: 'error', code: 'INVALID' });
      });
      expect(await b.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      expect(await b.messageInfo('user/bob/INBOX', 1)).toMatchObject({ size: msg(1).length, envelopeFrom: 'a@example.org' });
      await expectBobInboxOfOne(b);
    } finally {
      await close();
    }
  }, 30_000);

  it("a source that sends a uidValidity IMAP cannot carry (0, -5, 1.5, 2^40, a string) is answered INVALID: no such mailbox, and the store's last uidValidity, from which its next mailboxes count on, stays a number", async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await asSource(to, key, async (connection) => {
        for (const uidValidity of [0, -5, 1.5, 2 ** 40, 'abc']) {
          await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, uidValidity, highestModseq: 0 } });
          expect(await connection.next(5000), String(uidValidity)).toMatchObject({ t: 'error', code: 'INVALID' });
        }
      });
      expect(await codeOf(b.status('user/bob/INBOX'))).toBe('NOT_FOUND');
      await b.createMailbox('user/carol/INBOX');
      const { uidValidity } = await b.status('user/carol/INBOX');
      expect(Number.isSafeInteger(uidValidity) && uidValidity >= 1 && uidValidity <= 0xffffffff, String(uidValidity)).toBe(true);
    } finally {
      await close();
    }
  }, 30_000);

  it('a source that sends a mailbox id that is not 16 bytes in hex is answered INVALID: no mailbox whose keys the index cannot tell apart (scrub stopped on them, uids and counters read wrong)', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await asSource(to, key, async (connection) => {
        for (const id of ['abcd', `${BOB_INBOX.id}99`, 'zz', 7]) {
          await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, id, highestModseq: 0 } });
          expect(await connection.next(5000), String(id)).toMatchObject({ t: 'error', code: 'INVALID' });
          await connection.send({ t: 'xfer.messages', id, messages: [[1, msg(1), [], 0, {}]] });
          expect(await connection.next(5000), String(id)).toMatchObject({ t: 'error', code: 'INVALID' });
        }
      });
      expect(await codeOf(b.status('user/bob/INBOX'))).toBe('NOT_FOUND');
      expect(await recount(b)).toEqual([]);
      expect((await scrub(b)).findings.filter(isDamage)).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it('a source that sends a mailbox name no call could name (a component with "/", an empty one, not strings) is answered INVALID: no mailbox that counts against the quota of a user who cannot see it', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await setQuota(b, 'user/bob', { messages: 10 });
      await asSource(to, key, async (connection) => {
        for (const name of [['user', 'bob', 'a/b'], ['user', 'bob', ''], ['user', 'bob', 7], [], 'user/bob/INBOX']) {
          await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, name, highestModseq: 0 } });
          expect(await connection.next(5000), JSON.stringify(name)).toMatchObject({ t: 'error', code: 'INVALID' });
        }
      });
      expect(await b.listMailboxes()).toEqual([]);
      expect(await recount(b)).toEqual([]);
    } finally {
      await close();
    }
  }, 30_000);

  it('a source that sends a highest modseq near 2^53 is answered INVALID: no modseq offset that would leave the target no modseq for its next changes', async () => {
    const { key, b, to, close } = await twoStores();
    try {
      await b.createMailbox('user/carol/INBOX', { owner: 'carol' });
      await asSource(to, key, async (connection) => {
        await connection.send({ t: 'xfer.mailbox', mailbox: { ...BOB_INBOX, highestModseq: Number.MAX_SAFE_INTEGER - 5 } });
        expect(await connection.next(5000)).toMatchObject({ t: 'error', code: 'INVALID' });
      });
      // the target's next changes still get modseqs (more of them than the 5 left below 2^53): it did not stop
      for (let i = 1; i <= 10; i++) expect((await b.append('user/carol/INBOX', msg(i))).uid).toBe(i);
      await b.setFlags('user/carol/INBOX', 1, { add: ['\\Seen'] });
      expect((await b.messageInfo('user/carol/INBOX', 1)).modseq).toBeLessThan(1000);
    } finally {
      await close();
    }
  }, 30_000);
});

describe('xfer to a target that is this store', () => {
  it('an XFER whose target is this very store (a typo in --to, its own listener) is REFUSED before anything is copied or removed; the user keeps every message', async () => {
    const key = keyFile();
    const a = await Store.open(tmpDir('a'), { create: true });
    const self = await startPrimary(a, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
    try {
      await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
      for (let i = 1; i <= 5; i++) await a.append('user/bob/INBOX', msg(i));
      const error = await xferUser(a, { user: 'bob', to: `127.0.0.1:${(await self.status()).port}`, keyFile: key }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'REFUSED', message: expect.stringMatching(/this store itself/) });
      for (let i = 1; i <= 5; i++) expect(await a.fetch('user/bob/INBOX', i)).toEqual(msg(i));
      expect(a.replication().db.getNow(keys.meta('xfer/bob'))).toBeUndefined();
    } finally {
      await self.close();
      await a.close();
    }
  }, 60_000);
});

/** user/bob/INBOX, owned by bob, holding msg(1) as uid 1. */
async function bobWithOne(store: Store): Promise<void> {
  await store.createMailbox('user/bob/INBOX', { owner: 'bob' });
  await store.append('user/bob/INBOX', msg(1));
}

/** Runs `happen` when an XFER on `store` has copied and is about to take its write fence. */
function beforeTheFence(store: Store, happen: () => Promise<unknown>): void {
  const control = store.replication();
  vi.spyOn(store, 'replication').mockImplementation(() => ({ ...control, fenced: async (work) => { await happen(); return control.fenced(work); } }));
}

describe('xfer on a primary fenced meanwhile', () => {
  it("an XFER whose primary is fenced by a promotion while it copies does not switch: READ_ONLY_REPLICA, the target's copy rolled back, no switch record in the fenced node's journal (the user stays with the promoted replica)", async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await bobWithOne(a);
      const control = a.replication();
      const role = control.role() ?? { role: 'primary' as const, epoch: 0, nodeId: 'a1' };
      // the promotion is heard after the copy, before the fence is taken
      beforeTheFence(a, () => control.setRole({ ...role, role: 'fenced', fencedBy: role.epoch + 1 }));
      const seq = control.journal.lastSeq;
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('READ_ONLY_REPLICA');
      expect(await b.listMailboxes()).toEqual([]); // rolled back there
      expect(control.journal.lastSeq).toBe(seq + 1); // the copying intent only: it was written before the fence
      expect(control.db.getNow(keys.meta('xfer/bob'))).toMatchObject({ phase: 'copying' });
      expect(await a.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
    } finally {
      vi.restoreAllMocks();
      await close();
    }
  }, 30_000);
});

describe('xfer on a primary whose synchronous replica is away', () => {
  it('is UNAVAILABLE before anything (--sync-fallback refuse): no intent record no replica holds, nothing copied, no switch with the user left here', async () => {
    const { key, a, b, to, close } = await twoStores();
    await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
    await a.append('user/bob/INBOX', msg(1));
    const primary = await startPrimary(a, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, syncFallback: 'refuse', log: quiet });
    try {
      const seq = a.replication().journal.lastSeq;
      expect(await codeOf(a.append('user/bob/INBOX', msg(2)))).toBe('UNAVAILABLE');
      expect(await codeOf(xferUser(a, { user: 'bob', to, keyFile: key, log: quiet }))).toBe('UNAVAILABLE');
      expect(a.replication().journal.lastSeq).toBe(seq);
      expect(await b.listMailboxes()).toEqual([]);
      expect(await a.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
    } finally {
      await primary.close();
      await close();
    }
  }, 30_000);
});

describe('xfer while the user works', () => {
  it('a mailbox the user created during the copy moves too (it was left here, missing at the target, with nothing said)', async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await bobWithOne(a);
      // the copy is done; before the fence the user makes a folder and files mail in it
      beforeTheFence(a, async () => {
        await a.createMailbox('user/bob/Projects', { owner: 'bob' });
        await a.append('user/bob/Projects', msg(2));
      });
      const result = await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      vi.restoreAllMocks();
      expect(result.mailboxes).toEqual(['user/bob/INBOX', 'user/bob/Projects']);
      expect(await b.fetch('user/bob/Projects', 1)).toEqual(msg(2));
      expect(await b.fetch('user/bob/INBOX', 1)).toEqual(msg(1));
      expect(await a.listMailboxes()).toEqual([]);
    } finally {
      vi.restoreAllMocks();
      await close();
    }
  }, 30_000);

  it("a mailbox the user created during the copy is copied before the write fence: under it every user's writes wait for the copy", async () => {
    const { key, a, b, to, close } = await twoStores();
    try {
      await bobWithOne(a);
      const control = a.replication();
      let fenced = false;
      const readUnderFence: string[] = [];
      vi.spyOn(a, 'replication').mockImplementation(() => ({ ...control, fenced: async (work) => control.fenced(async () => { fenced = true; try { return await work(); } finally { fenced = false; } }) }));
      const readMessages = a.readMessages.bind(a);
      let made = false;
      vi.spyOn(a, 'readMessages').mockImplementation((name, ...rest) => {
        if (fenced) readUnderFence.push(name);
        if (!made) { // the user files mail in a new folder while INBOX is copied
          made = true;
          return (async function* () {
            await a.createMailbox('user/bob/Projects', { owner: 'bob' });
            for (let i = 2; i < 6; i++) await a.append('user/bob/Projects', msg(i));
            yield* readMessages(name, ...rest);
          })();
        }
        return readMessages(name, ...rest);
      });
      const result = await xferUser(a, { user: 'bob', to, keyFile: key, log: quiet });
      vi.restoreAllMocks();
      expect(result.mailboxes).toEqual(['user/bob/INBOX', 'user/bob/Projects']);
      expect(readUnderFence).toEqual([]);
      expect(await b.fetch('user/bob/Projects', 4)).toEqual(msg(5));
      expect(await a.listMailboxes()).toEqual([]);
    } finally {
      vi.restoreAllMocks();
      await close();
    }
  }, 30_000);
});

describe('xfer from a replica', () => {
  it("an XFER run on a replica (or through its daemon) is READ_ONLY_REPLICA before anything: no record of its own in the replica's journal (it stopped following its primary), no copy at the target, the user stays at the primary", async () => {
    const pair = await startPair({ fill: async (store) => { await store.createMailbox('user/bob/INBOX'); await store.append('user/bob/INBOX', msg(1)); } });
    const b = await Store.open(tmpDir('b'), { create: true });
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: pair.key, log: quiet });
    try {
      const to = `127.0.0.1:${(await target.status()).port}`;
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica caught up');
      const seq = pair.replica.store.replication().journal.lastSeq;
      expect(await codeOf(xferUser(pair.replica.store, { user: 'bob', to, keyFile: pair.key }))).toBe('READ_ONLY_REPLICA');
      expect(pair.replica.store.replication().journal.lastSeq).toBe(seq);
      expect(await b.listMailboxes()).toEqual([]); // the copy had been switched to, beside the primary's
      const { uid } = await pair.primaryStore.append('user/bob/INBOX', msg(2));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica follows');
      expect(await pair.replica.store.fetch('user/bob/INBOX', uid)).toEqual(msg(2));
      await pair.expectIdentical();
    } finally {
      await target.close();
      await b.close();
      await pair.close();
    }
  }, 60_000);
});
