// A promoted replica never gives a uid (or modseq) the old primary handed out under the same
// uidValidity: the old primary shows a batch to its readers (IMAP clients) once it is durable there,
// before its replicas acknowledge it, so a client may have cached uids and modseqs the promoted
// replica never received. Promote keeps the mailboxes' uidValidity only when it knows it holds
// everything the old primary committed (reached and fenced at promotion, it tells its last seq);
// otherwise every mailbox gets a new one (clients download it again), the uids going on as before.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { startPrimary } from '../../src/replication/primary.js';
import { startReplica } from '../../src/replication/replica.js';
import { tmpDir } from '../helpers/tmp.js';
import { promoteStore } from '../../src/replication/promote.js';
import { checkReplica } from '../../src/replication/check.js';
import { readRole, writeRole } from '../../src/store/role.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { codeOf, keyFile, logicalState, msg, pairBehindProxy, quiet, until } from './helpers.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
const mutable = limits as Mutable<typeof limits>;

/** What an IMAP client that read the old primary has cached of INBOX. */
interface ClientCache {
  uidValidity: number;
  highestModseq: number;
  messages: Map<number, Buffer>;
}

async function clientCache(store: Store): Promise<ClientCache> {
  const status = await store.status('INBOX');
  const messages = new Map<number, Buffer>();
  for await (const m of store.messages('INBOX')) messages.set(m.uid, await store.fetch('INBOX', m.uid));
  return { uidValidity: status.uidValidity, highestModseq: status.highestModseq, messages };
}

/** The client's cache holds: under its uidValidity no uid it cached shows other bytes, no modseq goes back. */
async function expectCacheHolds(store: Store, cache: ClientCache): Promise<void> {
  const status = await store.status('INBOX');
  if (status.uidValidity !== cache.uidValidity) return; // the client downloads the mailbox again
  expect(status.highestModseq).toBeGreaterThanOrEqual(cache.highestModseq);
  for await (const m of store.messages('INBOX')) {
    const cached = cache.messages.get(m.uid);
    if (cached) expect(await store.fetch('INBOX', m.uid)).toEqual(cached);
    else expect(m.modseq).toBeGreaterThan(cache.highestModseq);
  }
}

describe('promote: no uid of the old primary is given again', () => {
  const saved = { ping: limits.replicationPingMs, handshake: limits.replicationHandshakeMs };
  beforeEach(() => {
    mutable.replicationPingMs = 100;
    mutable.replicationHandshakeMs = 1000;
  });
  afterEach(() => {
    mutable.replicationPingMs = saved.ping;
    mutable.replicationHandshakeMs = saved.handshake;
  });

  it.each([
    ['a synchronous replica (refuse), the primary dead between showing a batch and its ack', 1, 'refuse'],
    ['a synchronous replica with --sync-fallback async', 1, 'async'],
    ['an asynchronous replica', 0, 'refuse'],
  ] as const)('%s', async (_, syncReplicas, syncFallback) => {
    const pair = await pairBehindProxy({ primary: { syncReplicas, syncFallback } });
    const { primaryStore, primary, proxy, replica } = pair;
    try {
      await until(async () => (await primary.status()).replicas.some((r) => r.connected), 10_000, 'the replica connected');
      for (let i = 1; i <= 3; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
      proxy.blackhole(); // the link goes dark: the next batch lands here, never there
      const inFlight = primaryStore.append('INBOX', msg(4)).catch(() => undefined);
      await until(async () => (await primaryStore.status('INBOX')).uidNext === 5, 10_000, 'the batch shown to readers');
      const cache = await clientCache(primaryStore); // an IMAP client reads the primary meanwhile
      expect(cache.messages.get(4)).toEqual(msg(4));
      // the primary dies before the replica acknowledged it; the replica is promoted and takes the next delivery
      await pair.closePrimary();
      await inFlight;
      const promoted = await replica.promote();
      expect(promoted).toMatchObject({ oldPrimaryFenced: false, uidValidity: 'new', mailboxesRenewed: 1, heldSeq: 4 });
      const other = await replica.store.append('INBOX', Buffer.from('From: b@example.org\r\nSubject: other\r\n\r\nsomeone else\r\n'));
      expect(other.uidValidity).not.toBe(cache.uidValidity);
      await expectCacheHolds(replica.store, cache);
      // what was acknowledged is there, at its uid
      for (let i = 1; i <= 3; i++) expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i));
    } finally {
      await pair.end();
    }
  }, 30_000);

  it('the old primary reached at promotion says what it committed: ahead of the replica and not caught up with, every mailbox gets a new uidValidity; the old primary comes back as a replica only as a new one', async () => {
    const catchUpMs = limits.promoteCatchUpMs;
    mutable.promoteCatchUpMs = 0;
    const pair = await pairBehindProxy({ fill: async (store) => void await store.createMailbox('Sent') });
    const { key, primaryStore, proxy, replica } = pair;
    let second: Awaited<ReturnType<typeof startReplica>> | undefined;
    let third: Awaited<ReturnType<typeof startReplica>> | undefined;
    let promotedPrimary: Awaited<ReturnType<typeof startPrimary>> | undefined;
    try {
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
      proxy.blackhole();
      await primaryStore.append('INBOX', msg(2));
      const cache = await clientCache(primaryStore);
      replica.stop(); // the replica's daemon stopped, the link back: the CLI's promote reaches the old primary
      proxy.restore();
      const promoted = await promoteStore(replica.store, quiet);
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: primaryStore.changes.lastSeq, heldSeq: primaryStore.changes.lastSeq - 1, uidValidity: 'new', mailboxesRenewed: 2 });
      const uidValidities = new Set([(await replica.store.status('INBOX')).uidValidity, (await replica.store.status('Sent')).uidValidity]);
      expect(uidValidities.size).toBe(2);
      expect(uidValidities.has(cache.uidValidity)).toBe(false);
      await replica.store.append('INBOX', msg(3, 10));
      await expectCacheHolds(replica.store, cache);
      expect(await primaryStore.append('INBOX', msg(4)).catch((error: { code?: string }) => error.code)).toBe('READ_ONLY_REPLICA');
      // the promoted store's own replica mirrors the renewal
      promotedPrimary = await startPrimary(replica.store, { listen: '127.0.0.1:0', keyFile: key, log: quiet });
      const address = `127.0.0.1:${(await promotedPrimary.status()).port}`;
      second = await startReplica(join(tmpDir('replica'), 'r2'), { primary: address, keyFile: key, log: quiet });
      await until(() => second!.store.changes.lastSeq === replica.store.changes.lastSeq, 10_000, 'the second replica caught up');
      expect(await logicalState(second.store)).toEqual(await logicalState(replica.store));
      expect((await checkReplica(second.store, { primary: address, keyFile: key })).identical).toBe(true);
      // the old primary comes back as a replica of the new one: never with the uid it gave msg(2)
      await pair.closePrimary();
      expect(await codeOf(startReplica(primaryStore.root, { primary: address, keyFile: key, log: quiet }))).toBe('REFUSED'); // fenced, not a replica
      const role = (await readRole(nodeFileSystem, primaryStore.root))!;
      await writeRole(unopenedRoot(nodeFileSystem, primaryStore.root), { ...role, role: 'replica', primary: address, keyFile: key }); // an admin's hand
      third = await startReplica(primaryStore.root, { primary: address, keyFile: key, log: quiet });
      await until(() => /diverged/.test(third!.status().lastError ?? ''), 15_000, 'the old primary refused as diverged');
      expect((await third.store.status('INBOX')).messages).toBe(2); // kept as it was, nothing applied
    } finally {
      mutable.promoteCatchUpMs = catchUpMs;
      await third?.close();
      await second?.close();
      await promotedPrimary?.close();
      await pair.end();
    }
  }, 30_000);

  it('a switchover under load: the replica behind the old primary follows it, fenced, to its last seq and keeps every uidValidity', async () => {
    const pair = await pairBehindProxy();
    const { primaryStore, proxy, replica } = pair;
    try {
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
      proxy.blackhole();
      for (let i = 2; i <= 4; i++) await primaryStore.append('INBOX', msg(i)); // mail goes on landing there
      const cache = await clientCache(primaryStore);
      await replica.stop();
      proxy.restore();
      const promoted = await promoteStore(replica.store, quiet);
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: primaryStore.changes.lastSeq, heldSeq: primaryStore.changes.lastSeq, uidValidity: 'kept', mailboxesRenewed: 0 });
      const next = await replica.store.append('INBOX', msg(5));
      expect(next).toMatchObject({ uid: 5, uidValidity: cache.uidValidity });
      await expectCacheHolds(replica.store, cache);
      for (let i = 1; i <= 4; i++) expect(await replica.store.fetch('INBOX', i)).toEqual(msg(i));
    } finally {
      await pair.end();
    }
  }, 30_000);

  it.each([
    ['an asynchronous replica', 0],
    ['a synchronous replica', 1],
  ] as const)('a planned switchover while mail arrives (%s): what the old primary committed before its fence reaches the replica, and every uidValidity is kept', async (_, syncReplicas) => {
    const pair = await pairBehindProxy({ primary: { syncReplicas, syncFallback: 'refuse' } });
    const { primaryStore, primary, proxy, replica } = pair;
    try {
      await until(async () => (await primary.status()).replicas.some((r) => r.connected), 10_000, 'the replica connected');
      for (let i = 1; i <= 3; i++) await primaryStore.append('INBOX', msg(i));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
      // a delivery the primary commits just as the admin promotes: on its way to the replica, not there yet
      Object.assign(mutable, { replicationPingMs: 5000, replicationHandshakeMs: 5000 }); // the fence's connection waits out the stall too
      proxy.stall(1500);
      const delivery = primaryStore.append('INBOX', msg(4)).catch(() => undefined);
      await until(async () => (await primaryStore.status('INBOX')).uidNext === 5, 10_000, 'the delivery shown to readers');
      const cache = await clientCache(primaryStore);
      const promoted = await replica.promote();
      await delivery;
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: primaryStore.changes.lastSeq, uidValidity: 'kept', mailboxesRenewed: 0 });
      expect(await replica.store.fetch('INBOX', 4)).toEqual(msg(4));
      const next = await replica.store.append('INBOX', msg(5));
      expect({ uid: next.uid, uidValidity: next.uidValidity }).toEqual({ uid: 5, uidValidity: cache.uidValidity });
      await expectCacheHolds(replica.store, cache);
    } finally {
      await pair.end();
    }
  }, 30_000);

  it('a replica that holds all the old primary committed keeps every uidValidity: uids go on', async () => {
    const key = keyFile();
    const primaryStore = await Store.open(tmpDir('primary'), { create: true });
    await primaryStore.createMailbox('INBOX');
    const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, syncReplicas: 1, log: quiet });
    const replica = await startReplica(join(tmpDir('replica'), 'r'), { primary: `127.0.0.1:${(await primary.status()).port}`, keyFile: key, log: quiet });
    try {
      await until(async () => (await primary.status()).replicas.some((r) => r.connected), 10_000, 'the replica connected');
      for (let i = 1; i <= 3; i++) await primaryStore.append('INBOX', msg(i));
      const before = await primaryStore.status('INBOX');
      const promoted = await replica.promote();
      expect(promoted).toMatchObject({ oldPrimaryFenced: true, oldPrimarySeq: promoted.heldSeq, uidValidity: 'kept', mailboxesRenewed: 0 });
      const { uid, uidValidity } = await replica.store.append('INBOX', msg(4));
      expect({ uid, uidValidity }).toEqual({ uid: 4, uidValidity: before.uidValidity });
    } finally {
      await replica.close();
      await primary.close();
      await primaryStore.close();
    }
  }, 30_000);
});
