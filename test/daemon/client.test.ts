// The client library against a daemon in this process: the Store's API with the same results,
// bytes exact (also bodies streamed in chunks), errors with their codes, concurrent appends from
// several clients meeting in one group commit, listings that stop early, timeouts, and a daemon
// that goes away with calls in flight (UNAVAILABLE, mayHaveCommitted).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Client, lacksProcedure } from '../../src/client/client.js';
import { PROCEDURES, collectScrubReport, procedures } from '../../src/daemon/procedures.js';
import { scrubAndRepair } from '../../src/daemon/repair-events.js';
import { repair } from '../../src/scrub/repair.js';
import { daemonLimits, limits } from '../../src/limits.js';
import { collectChanges } from '../../src/store/changes-parts.js';
import type { ChangesSincePart } from '../../src/store/types.js';
import { undumpMailboxes } from '../../src/store/mailbox-list.js';
import { importMail } from '../../src/import/importer.js';
import { MailstoreError } from '../../src/errors.js';
import type { MailStore } from '../../src/store/api.js';
import type { Store } from '../../src/store/store.js';
import type { ScrubReport, ScrubSummary } from '../../src/scrub/scrub.js';
import { message, startDaemon, tempDir, type Running } from './helpers.js';
import { internalsOf } from '../helpers/internals.js';

const INBOX = 'user/alice/INBOX';
let running: Running | undefined;
const clients: Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await running?.server.stop('test');
  running = undefined;
});

async function setup(options?: Parameters<Running['client']>[0]): Promise<{ client: Client; store: Store; running: Running }> {
  running = await startDaemon();
  const client = await running.client(options);
  clients.push(client);
  return { client, store: running.store, running };
}

async function codeAndMessage(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as MailstoreError).code}: ${(error as MailstoreError).message}`;
  }
  return 'no error';
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as MailstoreError).code;
  }
  return 'no error';
}

/** Counts the getMany round trips of the store's index snapshots (changesSince reads its records so). */
function countSnapshotReads(store: Store): { count: number } {
  const reads = { count: 0 };
  const db = internalsOf(store).db;
  const snapshotOf = db.snapshot.bind(db);
  db.snapshot = async () => {
    const snapshot = await snapshotOf();
    const getMany = snapshot.getMany.bind(snapshot);
    snapshot.getMany = (keyList) => { reads.count++; return getMany(keyList); };
    return snapshot;
  };
  return reads;
}

describe('the client library', () => {
  it('is a MailStore, as Store is (checked by the compiler), and answers as the Store does', async () => {
    const { client, store } = await setup();
    const handles: MailStore[] = [client, store];
    expect(handles).toHaveLength(2);
    const bytes = message(1, 200);
    const appended = await client.append(INBOX, bytes, { flags: ['\\Seen'], internalDate: new Date('2024-02-29T10:00:00.123Z') });
    expect(appended).toMatchObject({ uid: 1, size: bytes.length, deduplicated: false });
    expect(await client.messageInfo(INBOX, 1)).toEqual(await store.messageInfo(INBOX, 1));
    expect((await client.messageInfo(INBOX, 1)).internalDate).toEqual(new Date('2024-02-29T10:00:00.123Z'));
    expect(await client.status(INBOX)).toEqual(await store.status(INBOX));
    expect(await client.mailbox(INBOX)).toEqual(await store.mailbox(INBOX));
    expect(await client.listMailboxes()).toEqual(await store.listMailboxes());
    expect(await client.changesSince(INBOX, 0)).toEqual(await store.changesSince(INBOX, 0));
    expect((await client.fetch(INBOX, 1)).equals(bytes)).toBe(true);
    await client.createMailbox('user/alice/Sent', { owner: 'alice' });
    await client.setAcl('user/alice/Sent', 'bob', 'lr');
    expect(await client.getAcl('user/alice/Sent')).toEqual({ alice: 'aeiklnprstwx', bob: 'lr' });
    expect(await client.copy(INBOX, [1], 'user/alice/Sent')).toMatchObject({ mapping: [[1, 1]] });
    expect(await client.setFlags('user/alice/Sent', 1, { add: ['$Label1'] })).toMatchObject({ updated: [1] });
    expect(await client.move('user/alice/Sent', [1], INBOX)).toMatchObject({ mapping: [[1, 2]] });
    expect(await client.expunge(INBOX, [2])).toMatchObject({ expunged: [2] });
    expect(await client.getMeta('nothing')).toBeUndefined();
    expect({ ...(await client.stats()), freeSpace: undefined }).toEqual({ ...(await store.stats()), freeSpace: undefined }); // free space moves with other processes
    expect((await client.stats()).freeSpace.reserveBytes).toBe((await store.stats()).freeSpace.reserveBytes);
    await procedures(client).setQuota('user/alice', { messages: 10 });
    expect(await procedures(client).getQuota('user/alice')).toEqual(await procedures(store).getQuota('user/alice'));
    await Promise.all([procedures(client).changeQuota('user/alice', { storage: 4096 }), procedures(client).changeQuota('user/alice', { messages: 20 })]);
    expect(await procedures(store).getQuota('user/alice')).toMatchObject({ storage: 4096, messages: 20 });
    expect(await client.renameMailbox('user/alice/Sent', 'user/alice/Old')).toEqual({ renamed: 1 });
    expect(await client.deleteMailbox('user/alice/Old')).toEqual({ messages: 0 });
  });

  it('lists more mailboxes than one frame holds (tens of thousands, long names) as the store does: the daemon sends them in pieces', async () => {
    const { client, store } = await setup();
    const tunable = daemonLimits as { frameBytesMax: number };
    const saved = tunable.frameBytesMax;
    tunable.frameBytesMax = 1024 * 1024; // a listing of ~1.2 MB passes it, as 60k names of 256 bytes pass 16 MiB
    try {
      const entries = Array.from({ length: 4000 }, (_, i) => ({
        name: `user/alice/${String(i).padStart(5, '0')}${'x'.repeat(250)}`, id: randomUUID(), uidValidity: 1000 + i, acl: { bob: 'lr' }, created: 1, owner: 'alice',
      }));
      await undumpMailboxes(store, entries);
      const all = await client.listMailboxes();
      expect(all).toHaveLength(4001);
      expect(all).toEqual(await store.listMailboxes());
      expect(await client.listMailboxes({ user: 'bob' })).toEqual(await store.listMailboxes({ user: 'bob' }));
      expect(await client.listMailboxes({ pattern: 'user/alice/0001*' })).toEqual(await store.listMailboxes({ pattern: 'user/alice/0001*' }));
      expect(await codeOf(client.listMailboxes({ pattern: 7 } as never))).toBe('INVALID');
    } finally {
      tunable.frameBytesMax = saved;
    }
  });

  it('answers changesSince over more changes than one frame holds (a CONDSTORE resync after a flag change on a big mailbox) as the store does', async () => {
    const { client, store } = await setup();
    const tunable = daemonLimits as { frameBytesMax: number };
    const saved = tunable.frameBytesMax;
    tunable.frameBytesMax = 1024 * 1024; // ~6000 changes of ~200 bytes pass it, as ~100k pass 16 MiB
    try {
      await store.appendBatch(INBOX, Array.from({ length: 6000 }, (_, i) => ({ bytes: message(i), flags: ['$Label1', '$Label2'], envelopeFrom: `sender-${i}@example.org` })));
      const before = (await store.status(INBOX)).highestModseq;
      await store.setFlags(INBOX, Array.from({ length: 6000 }, (_, i) => i + 1), { add: ['\\Seen'] });
      await store.expunge(INBOX, [1, 2, 3]);
      for (const since of [0, before]) expect(await client.changesSince(INBOX, since)).toEqual(await store.changesSince(INBOX, since));
      expect((await client.changesSince(INBOX, before)).vanished).toEqual([1, 2, 3]);
      expect(await codeOf(client.changesSince('user/alice/Nope', 0))).toBe('NOT_FOUND');
    } finally {
      tunable.frameBytesMax = saved;
    }
  });

  it('lists changesSince as it reads it: the first change goes out after one piece of records is read, not the whole answer (changesSince(0) of 1M messages held 1M records in the daemon)', async () => {
    const { client, store } = await setup();
    await store.appendBatch(INBOX, Array.from({ length: 3000 }, (_, i) => ({ bytes: message(i) })));
    await store.expunge(INBOX, [5, 6]);
    const reads = countSnapshotReads(store);
    const listing = PROCEDURES.changesSinceList(store, INBOX, 0, { ranges: true });
    expect((await listing.next()).value).toEqual({ vanished: [5, 6] });
    expect((await listing.next()).value).toMatchObject({ changed: { uid: 1 } });
    expect(reads.count, 'record pieces read before the first change went out').toBe(1);
    await listing.return(undefined);
    const whole = await store.changesSince(INBOX, 0);
    expect(whole.changed).toHaveLength(2998);
    expect(whole.vanished).toEqual([5, 6]);
    expect(await client.changesSince(INBOX, 0)).toEqual(whole);
  });

  it('gives changesSince in parts through the client as the store does: the head, vanished before changed (RFC 7162 3.2.6), changed in pieces, the caller holding one (QRESYNC from 0 of 1M messages held 651 MB in the caller)', async () => {
    const { client, store } = await setup();
    await store.appendBatch(INBOX, Array.from({ length: 3000 }, (_, i) => ({ bytes: message(i) })));
    await store.expunge(INBOX, [5, 6, 2999]);
    await store.setFlags(INBOX, [7, 1500], { add: ['\\Flagged'] });
    const reads = countSnapshotReads(store);
    const shape = (part: ChangesSincePart) => ('changed' in part ? `changed ${part.changed.length}` : Object.keys(part).join(','));
    for (const handle of [store, client] as MailStore[]) {
      reads.count = 0;
      const parts = handle.changesSinceParts(INBOX, 0);
      const first = await parts.next();
      const second = await parts.next();
      const third = await parts.next();
      expect(first.value).toEqual({ highestModseq: (await store.status(INBOX)).highestModseq });
      expect(second.value).toEqual({ vanished: [5, 6, 2999] });
      expect('changed' in third.value! && third.value.changed.slice(0, 3).map((info) => info.uid)).toEqual([1, 2, 3]);
      expect(reads.count, 'record pieces read when the first piece of changes came').toBeLessThanOrEqual(3);
      const rest: ChangesSincePart[] = [];
      for await (const part of parts) rest.push(part);
      // 2,997 changed messages: eleven full pieces and one of 181
      expect([third.value, ...rest].map(shape)).toEqual([...Array.from({ length: 11 }, () => `changed ${limits.readBatchMessages}`), 'changed 181']);
    }
    for (const since of [0, 3]) {
      const whole = await store.changesSince(INBOX, since);
      expect(await collectChanges(store.changesSinceParts(INBOX, since))).toEqual(whole);
      expect(await collectChanges(client.changesSinceParts(INBOX, since))).toEqual(whole);
    }
    expect(await codeOf(collectChanges(client.changesSinceParts('user/alice/Nope', 0)))).toBe('NOT_FOUND');
  });

  it("gives the vanished ranges below a mailbox's floor in parts, at least one, through the client as the store does", async () => {
    const { client, store } = await setup();
    const floorAt = async (mailbox: string) => {
      const id = Buffer.from((await store.mailbox(mailbox)).id.replace(/-/g, ''), 'hex');
      const floor = (await store.status(mailbox)).highestModseq;
      await store.replication().commitOps(async () => ({ ops: [{ op: 'change.floor', id, floor, entries: [] }], result: undefined }));
      return floor;
    };
    await store.appendBatch(INBOX, Array.from({ length: 12 }, (_, i) => ({ bytes: message(i) })));
    const before = (await store.status(INBOX)).highestModseq;
    await store.expunge(INBOX, [2, 3, 7, 10]);
    const floor = await floorAt(INBOX);
    // what an XFER, an undump or the tombstones' expiry leaves, in a mailbox with no gap below its uidNext
    await store.createMailbox('user/alice/Full');
    await store.appendBatch('user/alice/Full', [{ bytes: message(1) }]);
    const fullFloor = await floorAt('user/alice/Full');
    const tunable = limits as { changesSincePartUids: number };
    const saved = tunable.changesSincePartUids;
    tunable.changesSincePartUids = 2;
    const partsOf = async (handle: MailStore, mailbox: string, since: number) => {
      const parts: ChangesSincePart[] = [];
      for await (const part of handle.changesSinceParts(mailbox, since)) parts.push(part);
      return parts;
    };
    try {
      for (const handle of [store, client] as MailStore[]) {
        expect(await partsOf(handle, INBOX, before)).toEqual([
          { highestModseq: floor, vanishedFloor: floor },
          { vanished: [2, 3] }, { vanished: [7, 10] }, // the tombstones at the floor, as the change log has them
          { vanishedRanges: [[2, 3], [7, 7]], vanishedFloor: floor },
          { vanishedRanges: [[10, 10]], vanishedFloor: floor },
        ]);
        expect((await partsOf(handle, INBOX, 0)).map((part) => Object.keys(part).join(','))).toEqual([
          'highestModseq,vanishedFloor', 'vanished', 'vanished', 'vanishedRanges,vanishedFloor', 'vanishedRanges,vanishedFloor', 'changed',
        ]);
        expect(await partsOf(handle, 'user/alice/Full', 0)).toEqual([
          { highestModseq: fullFloor, vanishedFloor: fullFloor },
          { vanishedRanges: [], vanishedFloor: fullFloor },
          { changed: [await store.messageInfo('user/alice/Full', 1)] },
        ]);
      }
    } finally {
      tunable.changesSincePartUids = saved;
    }
    for (const [mailbox, since] of [[INBOX, before], [INBOX, 0], ['user/alice/Full', 0]] as const) {
      expect(await client.changesSince(mailbox, since)).toEqual(await store.changesSince(mailbox, since));
    }
    expect((await store.changesSince('user/alice/Full', 0)).vanishedRanges).toEqual([]);
  });

  it("answers changesSince below a mailbox's vanished floor with its ranges as the store does; a client before session 39 (no ranges option, or the one-value call) is given their uids as vanished ones", async () => {
    const { client, store } = await setup();
    await store.appendBatch(INBOX, Array.from({ length: 8 }, (_, i) => ({ bytes: message(i) })));
    const before = (await store.status(INBOX)).highestModseq;
    await store.expunge(INBOX, [2, 3, 7]);
    const id = Buffer.from((await store.mailbox(INBOX)).id.replace(/-/g, ''), 'hex');
    // what an XFER, an undump or the tombstones' expiry leaves: the change log is whole only above the floor
    const floor = (await store.status(INBOX)).highestModseq;
    await store.replication().commitOps(async () => ({ ops: [{ op: 'change.floor', id, floor, entries: [] }], result: undefined }));
    const exact = await store.changesSince(INBOX, before);
    expect(exact.vanishedRanges).toEqual([[2, 3], [7, 7]]);
    expect(await client.changesSince(INBOX, before)).toEqual(exact);
    const older: unknown[] = [];
    for await (const part of client.procedureListing('changesSinceList', [INBOX, before])) older.push(part);
    expect(older).toEqual([{ vanished: [2, 3, 7] }, { highestModseq: exact.highestModseq }]);
    const oneValue = await (client as unknown as { call: (m: string, a: unknown[]) => Promise<unknown> }).call('changesSince', [INBOX, before]);
    expect(oneValue).toEqual({ changed: [], vanished: [2, 3, 7], highestModseq: exact.highestModseq });
    // above the floor: exact, as before
    expect(exact.vanishedFloor).toBe(floor);
    expect(await client.changesSince(INBOX, floor)).toEqual({ changed: [], vanished: [], highestModseq: exact.highestModseq });
  });

  it('carries a 5 MB message exactly both ways, streamed in chunks (fetch, fetchStream, readMessages)', async () => {
    const { client } = await setup();
    const big = message(2, 5 * 1024 * 1024);
    const small = message(3, 10);
    const [a, b] = await client.appendBatch(INBOX, [{ bytes: big }, { bytes: small, flags: ['\\Flagged'] }]);
    expect((await client.fetch(INBOX, a.uid)).equals(big)).toBe(true);
    const stream = await client.fetchStream(INBOX, a.uid);
    const pieces: Buffer[] = [];
    for await (const piece of stream) pieces.push(piece as Buffer);
    expect(pieces.length).toBeGreaterThan(1);
    expect(Buffer.concat(pieces).equals(big)).toBe(true);
    const read: [number, boolean][] = [];
    for await (const { info, body } of client.readMessages(INBOX)) read.push([info.uid, body.equals(info.uid === a.uid ? big : small)]);
    expect(read).toEqual([[a.uid, true], [b.uid, true]]);
  });

  it('readMessages over the socket never lends a body: the daemon reads with lendBodies off, every body kept exact', async () => {
    const { client, store } = await setup();
    const bodies = Array.from({ length: 120 }, (_, i) => message(i + 10, i % 60 === 5 ? 1200 * 1024 : 3000 + i * 50));
    const appended = await client.appendBatch(INBOX, bodies.map((bytes) => ({ bytes })));
    const asked = vi.spyOn(store, 'readMessages');
    const read = new Map<number, Buffer>();
    for await (const { info, body } of client.readMessages(INBOX, { lendBodies: true })) read.set(info.uid, body);
    expect(asked.mock.calls.map((call) => call[1]?.lendBodies ?? false)).toEqual([false]); // this client sends none (old-daemon.test.ts); the daemon clears a client's true
    expect(read.size).toBe(bodies.length);
    appended.forEach((a, i) => expect(read.get(a.uid)!.equals(bodies[i]), `uid ${a.uid}`).toBe(true));
  });

  it('keeps the error codes of the store (NOT_FOUND, EXISTS, INVALID, TOO_LARGE) and the connection usable after them', async () => {
    const { client } = await setup();
    const calls: { method: string; code?: string }[] = [];
    running!.server.onCall.push((event) => calls.push({ method: event.method, code: event.code }));
    expect(await codeOf(client.status('user/nobody'))).toBe('NOT_FOUND');
    expect(calls).toEqual([{ method: 'status', code: 'NOT_FOUND' }]); // what metrics count errors by
    expect(await codeOf(client.fetch(INBOX, 99))).toBe('NOT_FOUND');
    expect(await codeOf(client.createMailbox(INBOX))).toBe('EXISTS');
    expect(await codeOf(client.append(INBOX, Buffer.from('x'), { flags: ['bad flag'] }))).toBe('INVALID');
    expect(await codeOf(client.append('', Buffer.from('x')))).toBe('INVALID');
    expect(await codeOf(client.append(INBOX, Buffer.alloc(64 * 1024 * 1024 + 1)))).toBe('TOO_LARGE');
    const missing = client.messages('user/nobody');
    expect(await codeOf(missing.next())).toBe('NOT_FOUND');
    expect((await client.append(INBOX, message(4))).uid).toBe(1);
  });

  it("refuses a user name that is none (a '/', empty) as the store does, before counting its tree: was REFUSED 'add --force' for `user delete alice/Sent`, then INVALID with --force", async () => {
    const { client, store } = await setup();
    await client.createMailbox('user/alice/Sent');
    await client.append('user/alice/Sent', message(1));
    for (const handle of [client, store]) {
      await expect(handle.deleteUser('alice/Sent', { ifEmpty: true })).rejects.toThrow(/^user name "alice\/Sent" contains "\/"$/);
      await expect(handle.deleteUser('alice/Sent')).rejects.toMatchObject({ code: 'INVALID' });
      // 'invalid ACL identifier ""' for a rename to no name at all
      await expect(handle.renameUser('alice', '')).rejects.toThrow(/^invalid user name "" \(1 to \d+ bytes/);
    }
    expect((await client.status('user/alice/Sent')).messages).toBe(1);
  });

  it('appends of many clients at once all land, with distinct uids, through one writer', async () => {
    const { running } = await setup();
    const many = await Promise.all(Array.from({ length: 8 }, () => running.client()));
    clients.push(...many);
    const results = await Promise.all(many.flatMap((c, i) => Array.from({ length: 25 }, (_, j) => c.append(INBOX, message(1000 + i * 25 + j)))));
    expect(new Set(results.map((r) => r.uid)).size).toBe(200);
    expect((await many[0].status(INBOX)).messages).toBe(200);
  });

  it('keeps appendBatch chains in call order, and a listing stopped early frees its call', async () => {
    const { client } = await setup();
    const chain = {};
    const batches = await Promise.all(Array.from({ length: 20 }, (_, i) => client.appendBatch(INBOX, [{ bytes: message(i, i * 4000) }], { chain, meta: { key: 'cursor', value: i } })));
    expect(batches.map(([r]) => r.uid)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await client.getMeta('cursor')).toBe(19);
    for await (const info of client.messages(INBOX)) if (info.uid === 3) break;
    expect((await client.status(INBOX)).messages).toBe(20);
  });

  it('more listings and streams open on one connection than it may have calls in flight (an IMAP server\'s sessions on one Client) all finish', async () => {
    const { client, store } = await setup();
    const count = daemonLimits.streamWindowItems + 100; // each listing waits for its reader's credit at least once
    await store.appendBatch(INBOX, Array.from({ length: count }, (_, i) => ({ bytes: message(i) })));
    const { uid: big } = await store.append(INBOX, message(-1, daemonLimits.streamWindowBytes + 500_000));
    const listing = async () => { let n = 0; for await (const _ of client.messages(INBOX)) n++; return n; };
    const stream = async () => { let n = 0; for await (const chunk of await client.fetchStream(INBOX, big)) n += (chunk as Buffer).length; return n; };
    const all = Promise.all(Array.from({ length: daemonLimits.callsPerConnectionMax + 8 }, (_, i) => (i % 8 === 0 ? stream() : listing())));
    let timer: NodeJS.Timeout | undefined;
    // a bound for a deadlock (credits never read: it never ends), not a speed: 20 s ran out at load 28
    const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), 90_000); });
    const outcome = await Promise.race([all, hung]).finally(() => clearTimeout(timer));
    expect(outcome, 'the listings waited for credits the daemon no longer read').not.toBe('hung');
    expect(new Set(outcome as number[])).toEqual(new Set([count + 1, message(-1, daemonLimits.streamWindowBytes + 500_000).length]));
    expect((await client.append(INBOX, message(99999))).uid).toBe(big + 1); // the connection goes on
  }, 120_000);

  it('a call in flight when the daemon goes away fails UNAVAILABLE; a change says it may have committed, a read that it did not', async () => {
    const { client, running } = await setup({ reconnectWaitMs: 300 });
    const gate = running.store as unknown as { stats: () => Promise<unknown> };
    let release!: () => void;
    gate.stats = () => new Promise((resolve) => { release = () => resolve({}); });
    const read = client.stats();
    const write = client.append(INBOX, message(5, 300_000));
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const socket of (running.server as unknown as { connections: Set<{ destroy(): void }> }).connections) socket.destroy();
    const [readError, writeError] = await Promise.all([read.catch((e: MailstoreError) => e), write.catch((e: MailstoreError) => e)]);
    release();
    expect(readError).toBeInstanceOf(MailstoreError);
    // the append may have finished before the connection dropped; if it did not, it says it may have committed
    if (writeError instanceof MailstoreError) expect([writeError.code, writeError.mayHaveCommitted]).toEqual(['UNAVAILABLE', true]);
    expect([(readError as MailstoreError).code, (readError as MailstoreError).mayHaveCommitted]).toEqual(['UNAVAILABLE', false]);
    // the next call reconnects
    expect((await client.status(INBOX)).uidNext).toBeGreaterThan(0);
    await running.server.stop('test');
    running.server = { stop: async () => undefined } as never;
    const after = await client.status(INBOX).catch((e: MailstoreError) => e);
    expect([(after as MailstoreError).code, (after as MailstoreError).mayHaveCommitted]).toEqual(['UNAVAILABLE', false]);
  });

  it('stop (SIGTERM) lets a call in flight finish and answer, then closes the store; new connections are refused', async () => {
    const { client, running } = await setup({ reconnectWaitMs: 0 });
    const store = running.store as unknown as { stats: () => Promise<unknown> };
    const real = store.stats.bind(running.store);
    let release!: () => void;
    store.stats = () => new Promise((resolve) => { release = () => resolve(real()); });
    const inFlight = client.stats();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopped = running.server.stop('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await codeOf(running.client({ reconnectWaitMs: 0 }))).toBe('UNAVAILABLE'); // no longer accepting
    const refused = (await client.append(INBOX, message(7)).catch((e: MailstoreError) => e)) as MailstoreError;
    expect([refused.code, refused.mayHaveCommitted]).toEqual(['UNAVAILABLE', false]); // answered at once: not done
    release();
    expect((await inFlight as { mailboxes: number }).mailboxes).toBe(1);
    await stopped;
    expect(await codeOf(running.store.status(INBOX))).toBe('CLOSED');
  });

  it('a call that outlives callTimeoutMs fails UNAVAILABLE; the connection goes on', async () => {
    const { client, running } = await setup({ callTimeoutMs: 200 });
    const store = running.store as unknown as { stats: () => Promise<unknown> };
    const real = store.stats.bind(running.store);
    store.stats = () => new Promise(() => undefined);
    const error = (await client.stats().catch((e: MailstoreError) => e)) as MailstoreError;
    expect([error.code, error.mayHaveCommitted]).toEqual(['UNAVAILABLE', false]);
    expect(error.message).toMatch(/did not answer stats within 200 ms/);
    store.stats = real;
    expect((await client.stats()).mailboxes).toBe(1);
  });

  it('import runs over the client (chained batches, resume cursor), and the procedures run in the daemon', async () => {
    const { client } = await setup();
    const source = join(tempDir(), 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(source, sub), { recursive: true });
    for (let i = 0; i < 30; i++) writeFileSync(join(source, 'cur', `${1000 + i}.host:2,S`), message(100 + i, i * 3000));
    const summary = await importMail(client, source, { mailbox: 'user/alice/Archive', batchMessagesMax: 7 });
    expect([summary.imported, summary.batches]).toEqual([30, 5]);
    expect((await client.status('user/alice/Archive')).messages).toBe(30);
    expect((await importMail(client, source, { mailbox: 'user/alice/Archive' })).imported).toBe(0); // resumed: nothing new
    const remote = procedures(client);
    expect((await remote.usage({ user: 'alice' }))[0]).toMatchObject({ user: 'alice', messages: 30 });
    const dumped = [];
    for await (const entry of remote.dumpMailboxes()) dumped.push(entry.name);
    expect(dumped).toEqual(['user/alice/Archive', INBOX]);
    expect(await remote.messagesInTree('user/alice')).toBe(30);
    const report = await remote.scrub({});
    expect(report.summary.damage).toBe(0);
    const events = [];
    for await (const event of remote.scrubEvents({})) events.push(event);
    expect(events.at(-1)?.report?.summary.blobsVerified).toBe(30); // progress (if any) first, the report last
    expect(await remote.deleteMailboxTree('user/alice')).toEqual({ mailboxes: 2, messages: 30 });
    expect(await client.listMailboxes()).toEqual([]);
  });

  it("lists a scrub's findings in pieces: a report bigger than a frame crosses the socket whole and equal to the local one (one item, it failed: 648k unreferenced blobs made 64 MB); damage still counts; a client before session 50 is told why", async () => {
    const { client, store } = await setup();
    const uids = (await store.appendBatch(INBOX, Array.from({ length: 600 }, (_, i) => ({ bytes: message(i) })))).map((r) => r.uid);
    await store.expunge(INBOX, uids.slice(0, 500)); // each leaves an unreferenced blob (informational) until compaction
    writeFileSync(join(store.root, 'JOURNAL-ARCHIVE'), 'not a setting'); // damage: store-file-damage
    const local = await collectScrubReport(PROCEDURES.scrubEvents(store, {}), () => undefined);
    expect(local?.findings.filter((f) => f.kind === 'unreferenced-blob')).toHaveLength(500);
    expect(local?.summary.damage).toBe(1);
    const frameBytesMax = daemonLimits.frameBytesMax;
    const partEntries = daemonLimits.backupSessionPartEntries;
    daemonLimits.frameBytesMax = 32 * 1024; // the report: ~50 kB
    daemonLimits.backupSessionPartEntries = 100;
    try {
      const items: string[] = [];
      const listed = procedures(client).scrubEvents({}, { findingsInPieces: true });
      const remote = await collectScrubReport((async function* () {
        for await (const event of listed) {
          items.push(event.findings ? `findings ${event.findings.length}` : event.report ? `report ${event.report.findings.length}` : 'progress');
          yield event;
        }
      })(), () => undefined);
      expect(items.filter((item) => item !== 'progress')).toEqual(['findings 100', 'findings 100', 'findings 100', 'findings 100', 'findings 100', 'findings 1', 'report 0']);
      const untimed = ({ seconds: _seconds, passSeconds: _passSeconds, ...summary }: ScrubSummary) => summary;
      expect(remote?.findings).toEqual(local?.findings);
      expect(untimed(remote!.summary)).toEqual(untimed(local!.summary));
      expect(remote?.summary.damage).toBe(1); // the CLI's exit 1
      // a client before session 50 takes the report whole: refused saying why, not as a frame too big
      const whole = await codeAndMessage(collectScrubReport(procedures(client).scrubEvents({}), () => undefined));
      expect(whole).toMatch(/^INVALID: the scrub found 501 findings \(damage 1, informational 500\), a report bigger than one frame .* before session 50/);
    } finally {
      daemonLimits.frameBytesMax = frameBytesMax;
      daemonLimits.backupSessionPartEntries = partEntries;
    }
    // a daemon before session 50 ignores the option and sends the report whole: taken as it is
    const older = (async function* () { yield { report: local! }; })();
    expect(await collectScrubReport(older, () => undefined)).toEqual(local);
    // ... and one too big for a frame fails there, which this client says is the daemon's version
    const tooBig = (async function* () { yield* []; throw new MailstoreError('INVALID', "a item frame of 20800355 bytes exceeds the socket protocol's limit of 16777216 bytes (too many arguments or results in one call)"); })();
    expect(await codeAndMessage(collectScrubReport(tooBig, () => undefined))).toMatch(/^INVALID: the daemon sent the scrub report as one frame, .* 20800355 bytes .* a mailstore before session 50, which does not list the findings in pieces; restart it on this version/);
  });

  it("scrub --repair through the daemon: the scrub and the repair run there, their reports in pieces (the report as one call and the result as one answer each passed a frame: 648k unreferenced blobs); a daemon before session 51 gets the damage alone; a client before session 51 is told why", async () => {
    const { client, store } = await setup();
    const uids = (await store.appendBatch(INBOX, Array.from({ length: 600 }, (_, i) => ({ bytes: message(i) })))).map((r) => r.uid);
    await store.expunge(INBOX, uids.slice(0, 500)); // each leaves an unreferenced blob (informational) until compaction
    writeFileSync(join(store.root, 'JOURNAL-ARCHIVE'), 'not a setting'); // damage --repair leaves (store-file-damage names its own remedy)
    const local = await collectScrubReport(PROCEDURES.scrubEvents(store, {}), () => undefined);
    const frameBytesMax = daemonLimits.frameBytesMax;
    const partEntries = daemonLimits.backupSessionPartEntries;
    daemonLimits.frameBytesMax = 32 * 1024; // a report: ~50 kB
    daemonLimits.backupSessionPartEntries = 100;
    const untimed = ({ seconds: _seconds, passSeconds: _passSeconds, ...summary }: ScrubSummary) => summary;
    try {
      // before: the CLI sent the report whole to repair, a call frame too big
      expect(await codeAndMessage(procedures(client).repair(local!))).toMatch(/^INVALID: a call frame of \d+ bytes exceeds the socket protocol's limit of 32768 bytes/);
      const pieces: string[] = [];
      const remote = procedures(client);
      const listed = { ...remote, repairEvents: async function* (...args: Parameters<typeof remote.repairEvents>) {
        for await (const event of remote.repairEvents(...args)) {
          pieces.push(Object.keys(event)[0]);
          yield event;
        }
      } };
      const result = await scrubAndRepair(listed, {}, {}, () => undefined, () => false);
      expect(pieces.filter((piece) => piece !== 'progress')).toEqual(['before', 'before', 'before', 'before', 'before', 'before', 'after', 'after', 'after', 'after', 'after', 'after', 'result']);
      expect(result.before.findings).toEqual(local?.findings);
      expect(untimed(result.before.summary)).toEqual(untimed(local!.summary));
      expect(result.after.findings).toEqual(local?.findings);
      expect(result.unrepaired.map((f) => f.kind)).toEqual(['store-file-damage']);
      // a daemon before session 51 (no repairEvents): its scrub in pieces, then its repair of the damage alone (one small call)
      const calls: string[] = [];
      const older = {
        repairEvents: async function* (): AsyncGenerator<never> { yield* []; throw new MailstoreError('INVALID', 'the daemon has no procedure "repairEvents"'); },
        scrubEvents: (...args: Parameters<typeof remote.scrubEvents>) => { calls.push('scrubEvents'); return remote.scrubEvents(...args); },
        repair: async (before: ScrubReport) => {
          calls.push(`repair ${before.findings.length}`);
          return repair(store, before); // that daemon's procedure, here (its answer's frame is not this test's)
        },
      };
      const fallback = await scrubAndRepair(older, {}, {}, () => undefined, (error) => lacksProcedure(error, 'repairEvents'));
      expect(calls).toEqual(['scrubEvents', 'repair 1']);
      expect(fallback.before.findings).toEqual(local?.findings);
      expect(fallback.unrepaired.map((f) => f.kind)).toEqual(['store-file-damage']);
      // ... whose result (the report after, whole) passes a frame: the error names the daemon's version
      const tooBig = { ...older, repair: () => Promise.reject(new MailstoreError('INVALID', "a res frame of 52100 bytes exceeds the socket protocol's limit of 32768 bytes (too many arguments or results in one call)")) };
      expect(await codeAndMessage(scrubAndRepair(tooBig, {}, {}, () => undefined, (error) => lacksProcedure(error, 'repairEvents'))))
        .toMatch(/^INVALID: the repair's report or result is too big for one frame .* a mailstore before session 51, .* restart it on this version/);
      // a client before session 51 calls repair, whose result holds the report after whole: refused saying why
      const damage = { ...local!, findings: local!.findings.filter((f) => f.kind === 'store-file-damage') };
      expect(await codeAndMessage(procedures(client).repair(damage))).toMatch(/^INVALID: the repair ran \(damage before 1, after 1; .* with 502 findings, is bigger than one frame .* a mailstore before session 51 takes whole/);
    } finally {
      daemonLimits.frameBytesMax = frameBytesMax;
      daemonLimits.backupSessionPartEntries = partEntries;
    }
  });

  it('a store that stopped itself (HALTED) stops the daemon, so that its supervisor starts it again', async () => {
    const { client, running } = await setup();
    (running.store as unknown as { stats: () => Promise<unknown> }).stats = () => Promise.reject(new MailstoreError('HALTED', 'an invariant failed'));
    expect(await codeOf(client.stats())).toBe('HALTED');
    await running.server.done;
    expect(running.server.failure?.code).toBe('HALTED');
    expect(await codeOf(client.status(INBOX))).toBe('UNAVAILABLE');
  });

  it('connecting where no daemon answers is UNAVAILABLE after reconnectWaitMs though the wall clock stepped back an hour meanwhile', async () => {
    let calls = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() - (calls++ === 0 ? 0 : 3600_000));
    try {
      const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('still retrying after 5 s')), 5000).unref());
      const error = await Promise.race([Client.connect(join(tempDir(), 'none.sock'), { reconnectWaitMs: 300 }), hung]).catch((e: MailstoreError) => e);
      expect((error as MailstoreError).code).toBe('UNAVAILABLE');
    } finally {
      clock.mockRestore();
    }
  });

  it('connecting where no daemon answers is UNAVAILABLE', async () => {
    const { running } = await setup();
    const error = await Client.connect(running.socket + '.none', { reconnectWaitMs: 0 }).catch((e: MailstoreError) => e);
    expect((error as MailstoreError).code).toBe('UNAVAILABLE');
  });

  it('a daemon that takes the connection and never says hello (SIGSTOP, hung) is UNAVAILABLE naming its socket once, with the wait', async () => {
    const path = join(tempDir(), 'silent.sock');
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(path, resolve));
    try {
      const error = await Client.connect(path, { reconnectWaitMs: 0, connectTimeoutMs: 100 }).catch((e: MailstoreError) => e);
      expect((error as MailstoreError).code).toBe('UNAVAILABLE');
      // it read "the daemon on P took the connection but gave no hello (the daemon on P accepted the connection but did not answer within 2000 ms)"
      expect((error as MailstoreError).message).toMatch(/took the connection but gave no hello \(none within 100 ms\)/);
      expect((error as MailstoreError).message.split(path)).toHaveLength(2);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it('a daemon with every connection taken is UNAVAILABLE saying so (not "is mailstore serve running?"); a freed one is taken', async () => {
    const { running } = await setup(); // its client holds the one connection
    (running.server as unknown as { server: { maxConnections: number } }).server.maxConnections = 1;
    const error = await Client.connect(running.socket, { reconnectWaitMs: 0 }).catch((e: MailstoreError) => e);
    expect((error as MailstoreError).code).toBe('UNAVAILABLE');
    expect((error as MailstoreError).message).toMatch(/took the connection but gave no hello.*all the connections it takes/);
    expect((error as MailstoreError).message).not.toMatch(/running\?/);
    await clients.shift()!.close();
    const next = await Client.connect(running.socket, { reconnectWaitMs: 5000 });
    clients.push(next);
    expect((await next.status(INBOX)).messages).toBe(0);
  });

  it('a daemon whose queue of connections waiting to be accepted is full (stalled, overloaded) is UNAVAILABLE saying so (not "is mailstore serve running?")', async () => {
    // a process listening with a queue of one that does not accept: stopped, as a daemon held up
    // (a unix socket's connect then fails EAGAIN at once; seen for real: 4,097 connections to a
    // stopped daemon, net.core.somaxconn 4096)
    const path = join(tempDir(), 'stalled.sock');
    const listener = spawn(process.execPath, ['-e', `require('node:net').createServer().listen({ path: ${JSON.stringify(path)}, backlog: 1 }, () => process.stdout.write('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const held: Socket[] = [];
    try {
      await new Promise((resolve) => listener.stdout.once('data', resolve));
      listener.kill('SIGSTOP');
      for (let i = 0; i < 8; i++) {
        const socket = createConnection(path);
        socket.on('error', () => undefined);
        held.push(socket);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      const error = await Client.connect(path, { reconnectWaitMs: 0 }).catch((e: MailstoreError) => e);
      expect((error as MailstoreError).code).toBe('UNAVAILABLE');
      expect((error as MailstoreError).message).toMatch(/EAGAIN.*(queue|overloaded|stalled)/);
      expect((error as MailstoreError).message).not.toMatch(/running\?/);
    } finally {
      for (const socket of held) socket.destroy();
      listener.kill('SIGKILL');
    }
  });
});
