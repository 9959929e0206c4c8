// The events webhook (src/events/webhook.ts) against an HTTP server on loopback: retries with
// backoff, a durable consumer cursor, and at least once across restarts (no gap; a repeat only
// with the same cursors).
import { rmSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { eventLimits } from '../../src/limits.js';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailEvent } from '../../src/events/events.js';
import { ChangeSignal } from '../../src/events/follow.js';
import { consumerCursor, postEvents, setConsumerCursor, type WebhookStore } from '../../src/events/webhook.js';
import { Store } from '../../src/store/store.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { tmpDir } from '../helpers/tmp.js';
import { encodeCbor } from '../../src/index/codec.js';
import type { MailstoreError } from '../../src/errors.js';
import { EventContext, readEvents } from '../../src/events/events.js';
import type { SeenBefore } from '../../src/events/seen-log.js';
import { parseCursor } from '../../src/events/cursor.js';
import { run } from '../cli/helpers.js';
import { serve } from '../daemon/processes.js';
import { startPair, until } from '../replication/helpers.js';

const msg = (tag: string) => Buffer.from(`Subject: ${tag}\r\n\r\nbody ${tag}\r\n`);

interface Receiver {
  url: string;
  /** Every request's events, accepted or not. */
  requests: { status: number; cursors: string[]; events: MailEvent[] }[];
  /** Cursors of the events in accepted requests, in order. */
  accepted: string[];
  /** The status the next requests get (shifted off; 200 when empty). */
  answers: number[];
  server: Server;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function receiver(): Promise<Receiver> {
  const r: Receiver = { url: '', requests: [], accepted: [], answers: [], server: undefined as unknown as Server };
  r.server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { consumer: string; events: MailEvent[] };
      const status = r.answers.shift() ?? 200;
      const cursors = body.events.map((e) => e.cursor);
      r.requests.push({ status, cursors, events: body.events });
      if (status === 200) r.accepted.push(...cursors);
      response.writeHead(status).end();
    });
  });
  servers.push(r.server);
  await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(r.server.address() as { port: number }).port}/events`;
  return r;
}

async function storeWithMessages(dir: string, count: number): Promise<Store> {
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 0; i < count; i++) await store.append('INBOX', msg(`m${i}`));
  return store;
}

/** 7 events in records 1-5 (3 a batch: MailboxCreate, MessageNew m0, m1 | m0's FlagsSet 4.0, 5.0, FlagsClear 5.1 | MessageExpunge). */
async function storeWithFlagChanges(dir: string): Promise<Store> {
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  const { uid } = await store.append('INBOX', msg('m0'));
  await store.append('INBOX', msg('m1'));
  await store.setFlags('INBOX', uid, { add: ['\\Seen'] });
  await store.setFlags('INBOX', uid, { replace: ['\\Flagged'] });
  await store.expunge('INBOX', uid);
  return store;
}

/** The store as a webhook sees it, killed as it stores its second cursor (the batch's own record before the POST goes through). */
function diesAtSecondCursor(current: () => Store): WebhookStore {
  let commits = 0;
  return {
    get root() { return current().root; },
    replication: () => current().replication(),
    maintenance: () => current().maintenance(),
    getMeta: (key) => current().getMeta(key),
    get changes() { return current().changes; },
    setMeta: async (key, value) => {
      if (key === 'consumer/events-webhook' && ++commits === 2) throw new Error('killed');
      await current().setMeta(key, value);
    },
  };
}

/** The store as a webhook sees it; `onSet` sees every meta value it stores, and may throw after it is stored (a kill). */
function watched(current: () => Store, onSet: (key: string, value: unknown) => void): WebhookStore {
  return {
    get root() { return current().root; },
    replication: () => current().replication(),
    maintenance: () => current().maintenance(),
    getMeta: (key) => current().getMeta(key),
    get changes() { return current().changes; },
    setMeta: async (key, value) => {
      await current().setMeta(key, value);
      onSet(key, value);
    },
  };
}

describe('events webhook', () => {
  it('retries a receiver that fails twice, then stores the cursor; the next run posts only what is new', async () => {
    const r = await receiver();
    const store = await storeWithMessages(tmpDir('webhook'), 3);
    try {
      r.answers.push(500, 503);
      const first = await postEvents(store, r.url, { retries: 3, backoffMs: 10 });
      expect(r.requests.map((q) => q.status)).toEqual([500, 503, 200]);
      expect(r.requests[0].cursors).toEqual(r.requests[2].cursors); // the same events again, same cursors
      expect(first).toMatchObject({ posted: 4, batches: 1 });
      expect(await store.getMeta('consumer/events-webhook')).toBe(first.cursor);
      // it is a change-log consumer too: what it has posted is what it no longer pins
      const posted = Number(first.cursor.split('.')[0]);
      expect((await store.changes.cursor('events-webhook'))?.seq).toBe(first.cursor.includes('.') ? posted - 1 : posted);
      await store.append('INBOX', msg('new'));
      const second = await postEvents(store, r.url, { retries: 0 });
      expect(second.posted).toBe(1);
      expect(r.accepted).toHaveLength(5);
      expect(new Set(r.accepted).size).toBe(5);
    } finally {
      await store.close();
    }
  });

  it('gives up with IO after its retries and keeps the cursor where the receiver last accepted; nothing is skipped later', async () => {
    const r = await receiver();
    const store = await storeWithMessages(tmpDir('webhook'), 5);
    try {
      r.answers.push(200, 500, 500, 500);
      await expect(postEvents(store, r.url, { retries: 2, backoffMs: 5, batchEvents: 2 })).rejects.toMatchObject({ code: 'IO' });
      expect(r.accepted).toHaveLength(2); // the first batch went through
      expect(formatCursorOf(await consumerCursor(store))).toBe(r.accepted[1]);
      const done = await postEvents(store, r.url, { batchEvents: 2 });
      expect(done.posted).toBe(4);
      expect(r.accepted).toHaveLength(6);
      expect(new Set(r.accepted).size).toBe(6); // 6 events, none twice, none missing
    } finally {
      await store.close();
    }
    // a receiver that is not there at all
    const gone = await storeWithMessages(tmpDir('webhook'), 1);
    try {
      await expect(postEvents(gone, 'http://127.0.0.1:1/none', { retries: 1, backoffMs: 5 })).rejects.toMatchObject({ code: 'IO' });
      expect(await gone.getMeta('consumer/events-webhook')).toBeUndefined();
    } finally {
      await gone.close();
    }
  });

  it('a receiver down for long leaves nothing behind on the daemon\'s stop signal: each wait between attempts takes its abort listener back', async () => {
    const store = await storeWithMessages(tmpDir('webhook'), 1);
    const stop = new AbortController(); // the daemon's, for as long as it runs (services.ts)
    try {
      for (let run = 0; run < 20; run++) { // the daemon starts the webhook again after each give-up
        await expect(postEvents(store, 'http://127.0.0.1:1/none', { retries: 3, backoffMs: 1, signal: stop.signal })).rejects.toMatchObject({ code: 'IO' });
      }
      expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
      expect(await store.getMeta('consumer/events-webhook')).toBeUndefined(); // nothing taken as posted
    } finally {
      await store.close();
    }
  });

  it("months of posts keep nothing per POST on the daemon's stop signal: accepted and failed attempts alike leave it no dependant signal and no listener", async () => {
    // Node 20's AbortSignal.any([timeout, stop]) kept a WeakRef to each combined signal in the stop
    // signal's dependants for as long as the stop signal lived (nodejs/node#55351): one per POST,
    // for the daemon's whole life (a soak saw the daemon's WeakRefs grow by ~100 a minute)
    const dependants = (signal: AbortSignal): number => {
      const symbol = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
      return symbol === undefined ? 0 : ((signal as unknown as Record<symbol, Set<unknown> | undefined>)[symbol]?.size ?? 0);
    };
    const r = await receiver();
    const store = await storeWithMessages(tmpDir('webhook'), 30);
    const stop = new AbortController(); // the daemon's, for as long as it runs (services.ts)
    try {
      r.answers.push(500, 200, 503);
      const result = await postEvents(store, r.url, { batchEvents: 1, backoffMs: 1, signal: stop.signal });
      expect(result.posted).toBe(31);
      expect(r.requests).toHaveLength(33);
      expect(dependants(stop.signal)).toBe(0);
      expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
      expect(stop.signal.aborted).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("a receiver that black-holes (accepts, never reads nor answers) holds the daemon's stop for no POST timeout: stopped at once, nothing taken as posted", async () => {
    const held: Socket[] = [];
    const hole = createNetServer((socket) => { socket.pause(); held.push(socket); });
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    const store = await storeWithMessages(tmpDir('webhook'), 2);
    const stop = new AbortController();
    try {
      const running = postEvents(store, `http://127.0.0.1:${(hole.address() as { port: number }).port}/events`, { follow: true, signal: stop.signal });
      for (let i = 0; i < 100 && held.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(held).toHaveLength(1); // the POST is in flight
      const stopped = performance.now();
      stop.abort();
      expect(await running).toMatchObject({ posted: 0 });
      expect(performance.now() - stopped).toBeLessThan(eventLimits.webhookTimeoutMs / 4);
      expect(await store.getMeta('consumer/events-webhook')).toBeUndefined();
    } finally {
      for (const socket of held) socket.destroy();
      hole.close();
      await store.close();
    }
  });

  it('a receiver that accepts and then sends an answer body without end: the batch counts as accepted at once, the body is not read into memory', async () => {
    const endless = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const more = () => { while (!response.destroyed && response.write(chunk)); };
        response.on('drain', more);
        more();
      });
    });
    servers.push(endless);
    await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve));
    const store = await storeWithMessages(tmpDir('webhook'), 1);
    try {
      const rss = process.memoryUsage().rss;
      const started = performance.now();
      const result = await postEvents(store, `http://127.0.0.1:${(endless.address() as { port: number }).port}/events`, { retries: 0 });
      expect(result.posted).toBe(2);
      expect(performance.now() - started).toBeLessThan(eventLimits.webhookTimeoutMs / 4);
      expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024);
    } finally {
      endless.closeAllConnections();
      await store.close();
    }
  });

  it('at least once across a restart: a crash before the cursor is stored posts the same cursors again, never a gap', async () => {
    const r = await receiver();
    const dir = tmpDir('webhook');
    let store = await storeWithMessages(dir, 4);
    // the process dies after the receiver accepted the second batch, before its cursor was stored
    const dying = diesAtSecondCursor(() => store);
    await expect(postEvents(dying, r.url, { batchEvents: 2 })).rejects.toThrow('killed');
    await store.close();
    store = await Store.open(dir);
    try {
      const resumed = await postEvents(store, r.url, { batchEvents: 2 });
      expect(resumed.posted).toBe(3); // the unconfirmed batch again (2) and the last event
      const twice = r.accepted.filter((c, i) => r.accepted.indexOf(c) !== i);
      expect(twice).toEqual(r.requests[1].cursors); // the repeats are exactly the unconfirmed batch
      expect(new Set(r.accepted).size).toBe(5); // MailboxCreate + 4 MessageNew, all there
      expect((await postEvents(store, r.url)).posted).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('a batch posted again after a restart carries the same events and cursors as its first post, flag changes included', async () => {
    const r = await receiver();
    const dir = tmpDir('webhook');
    let store = await storeWithFlagChanges(dir);
    // killed after the receiver accepted the second batch (m0's flag changes, its flags known from its
    // MessageNew in the first), before its cursor was stored
    const dying = diesAtSecondCursor(() => store);
    await expect(postEvents(dying, r.url, { batchEvents: 3 })).rejects.toThrow('killed');
    const first = r.requests[1].events;
    expect(first.map((e) => `${e.cursor.split('.')[1]} ${e.event}${e.allFlags ? ' all' : ''} ${e.flags!.join(' ')}`)).toEqual(['0 FlagsSet \\Seen', '0 FlagsSet \\Flagged', '1 FlagsClear \\Seen']);
    await store.close();
    store = await Store.open(dir);
    try {
      await postEvents(store, r.url, { batchEvents: 3 });
      // before: the same records read again with nothing seen, '28.1 FlagsSet allFlags' where the first post said '28.0 FlagsSet'
      expect(r.requests[2].events).toEqual(first);
      const byCursor = new Map<string, MailEvent>();
      for (const { events } of r.requests) {
        for (const e of events) {
          expect(byCursor.get(e.cursor) ?? e, 'one cursor, one event').toEqual(e);
          byCursor.set(e.cursor, e);
        }
      }
      expect([...byCursor.values()].map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew', 'MessageNew', 'FlagsSet', 'FlagsSet', 'FlagsClear', 'MessageExpunge']);
      expect((await postEvents(store, r.url)).posted).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('killed after its batch is stored and before the POST: the restart posts the batch an uninterrupted run posts, names and earlier flags as they were, though the mailbox was renamed meanwhile', async () => {
    const r = await receiver();
    const reference = await receiver();
    const dir = tmpDir('webhook');
    let store = await storeWithFlagChanges(dir);
    // what a run that is never interrupted posts (another consumer: the same records, the same events)
    await postEvents(store, reference.url, { batchEvents: 3, consumer: 'reference' });
    let stores = 0;
    const dying = watched(() => store, (key) => {
      if (key === 'consumer/events-webhook/pending' && ++stores === 2) throw new Error('killed');
    });
    await expect(postEvents(dying, r.url, { batchEvents: 3 })).rejects.toThrow('killed');
    expect(r.requests).toHaveLength(1); // the second batch was stored, never posted
    // the index's name changes before the restart: the batch still says INBOX, as its first read did
    await store.renameMailbox('INBOX', 'Archive');
    await store.close();
    store = await Store.open(dir);
    try {
      await postEvents(store, r.url, { batchEvents: 3 });
      expect(r.requests[1].events).toEqual(reference.requests[1].events);
      expect(r.requests[1].events.map((e) => `${e.event}${e.allFlags ? ' all' : ''} ${e.mailbox} ${e.flags!.join(' ')}`)).toEqual(['FlagsSet INBOX \\Seen', 'FlagsSet INBOX \\Flagged', 'FlagsClear INBOX \\Seen']);
      expect(r.requests.slice(2).flatMap((x) => x.events.map((e) => e.event))).toEqual(['MessageExpunge', 'MailboxRename']);
      expect((await postEvents(store, r.url)).posted).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('every stored batch reads back as the batch posted, batches cut inside records included: renames, flag changes of many messages in one record, expunges', async () => {
    const r = await receiver();
    const dir = tmpDir('webhook');
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Other');
      const uids: number[] = [];
      for (let i = 0; i < 6; i++) uids.push((await store.append(i % 2 ? 'Other' : 'INBOX', msg(`m${i}`))).uid);
      await postEvents(store, r.url); // what follows is read knowing these
      const inbox = uids.filter((_, i) => i % 2 === 0);
      await store.setFlags('INBOX', inbox, { add: ['\\Seen'] });
      await store.renameMailbox('Other', 'Kept');
      await store.setFlags('INBOX', inbox, { replace: ['\\Answered', 'x'] });
      await store.setFlags('Kept', uids.filter((_, i) => i % 2 === 1), { add: ['\\Flagged'] });
      await store.expunge('INBOX', inbox[1]);
      await store.setFlags('INBOX', inbox, { remove: ['x'] });
      await store.append('Kept', msg('m6'));
      const stored: { from: string; to: string; seen: SeenBefore }[] = [];
      await postEvents(watched(() => store, (key, value) => { if (key.endsWith('/pending')) stored.push(value as typeof stored[0]); }), r.url, { batchEvents: 4 });
      const posted = r.requests.slice(1).map((x) => x.events);
      expect(posted.length).toBe(stored.length);
      expect(posted.some((events) => events[0].cursor.split('.')[1] !== '0')).toBe(true); // some start inside a record
      for (const [i, batch] of stored.entries()) {
        const again: MailEvent[] = [];
        for await (const event of readEvents(store, parseCursor(batch.from), { context: new EventContext(store).knowing(batch.seen) })) {
          again.push(event);
          if (event.cursor === batch.to) break;
        }
        expect(again, `batch ${i}`).toEqual(posted[i]);
      }
    } finally {
      await store.close();
    }
  });

  it("a stored batch of session 50 ({from, events}) is posted as stored; one the records no longer give is said (webhook.repost-differs) and what they give is posted", async () => {
    const r = await receiver();
    const dir = tmpDir('webhook');
    const store = await storeWithMessages(dir, 2);
    try {
      const stored = { cursor: '2.0', event: 'MessageNew', seq: 2, mailbox: 'INBOX (as first posted)', mailboxId: 'x' };
      await store.setMeta('consumer/events-webhook/pending', { from: '0', events: [stored] });
      await postEvents(store, r.url, { batchEvents: 10 });
      expect(r.requests[0].events).toEqual([stored]);
      expect(r.requests[1].cursors).toEqual(['3.0']); // then on after it
      // a batch up to a cursor the records do not give (a journal rewritten by reconstruct)
      await store.append('INBOX', msg('m2'));
      await store.setMeta('consumer/events-webhook/pending', { from: '3.0', to: '4.5', seen: {}, events: [] });
      const log: { event: string }[] = [];
      const result = await postEvents(store, r.url, { batchEvents: 10, log: (entry) => log.push(entry) });
      expect(log.map((e) => e.event)).toEqual(['webhook.repost-differs', 'webhook.posted']);
      expect(result.posted).toBe(1);
      expect(r.accepted.slice(-1)).toEqual([r.requests.at(-1)!.cursors[0]]);
      expect(await store.getMeta('consumer/events-webhook/pending')).toMatchObject({ from: '3.0', to: result.cursor });
    } finally {
      await store.close();
    }
  });

  it('the batch stored before its POST is its bounds and what its reader knew, not its events: the same bytes for 10 events and for 400', async () => {
    const sizes: number[] = [];
    for (const count of [5, 200]) {
      const r = await receiver();
      const dir = tmpDir('webhook');
      const store = await Store.open(dir, { create: true });
      try {
        await store.createMailbox('INBOX');
        await postEvents(store, r.url); // the mailbox is known from here on; the batch below reads its name from the index
        const uids: number[] = [];
        for (let i = 0; i < count; i++) uids.push((await store.append('INBOX', msg(`m${i}`))).uid);
        for (const uid of uids) await store.setFlags('INBOX', uid, { add: ['\\Seen'] });
        const stored: unknown[] = [];
        const result = await postEvents(watched(() => store, (key, value) => { if (key.endsWith('/pending')) stored.push(value); }), r.url, { batchEvents: 2 * count });
        expect(result.posted).toBe(2 * count);
        expect(stored).toHaveLength(1);
        sizes.push(encodeCbor(stored[0]).length);
      } finally {
        await store.close();
      }
    }
    // before: the events themselves, ~150 bytes each (1,877 bytes for 10 events)
    expect(sizes[0]).toBeLessThan(200);
    expect(Math.abs(sizes[1] - sizes[0])).toBeLessThanOrEqual(8); // the cursors' digits
  });

  it('a full disk when the batch is stored before its POST (ENOSPC): NO_SPACE saying nothing was posted, the cursor stays, and the next run posts every event from there', async () => {
    const { FaultFileSystem } = await import('../sim/faultfs.js');
    const r = await receiver();
    const dir = tmpDir('webhook');
    const fs = new FaultFileSystem();
    const store = await Store.open(dir, { create: true, fs, autoSnapshot: false });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', msg('m0'));
      const first = await postEvents(store, r.url);
      const pin = (await store.changes.cursor('events-webhook'))?.seq;
      for (let i = 1; i <= 3; i++) await store.append('INBOX', msg(`m${i}`));
      fs.failAll('ENOSPC', { pathPrefix: join(dir, 'journal') });
      const failed = await postEvents(store, r.url).then(() => undefined, (error: unknown) => error as MailstoreError);
      expect(failed?.code).toBe('NO_SPACE');
      expect(failed?.message).toMatch(new RegExp(`the batch of 3 events after cursor ${first.cursor.replace('.', '\\.')} could not be stored before its POST, so it was not posted and the cursor stays at ${first.cursor.replace('.', '\\.')}`));
      expect(r.requests).toHaveLength(1);
      expect(await consumerCursor(store)).toEqual(parseCursor(first.cursor));
      expect((await store.changes.cursor('events-webhook'))?.seq).toBe(pin);
      fs.clear();
      const resumed = await postEvents(store, r.url);
      const all: string[] = [];
      for await (const event of readEvents(store, parseCursor('0'))) all.push(event.cursor);
      expect(resumed.posted).toBe(3);
      expect(r.accepted).toEqual(all); // each event once, none skipped
    } finally {
      await store.close();
    }
  });

  it('the stored cursor survives the loss of the index (a journaled record) and can be removed', async () => {
    const r = await receiver();
    const dir = tmpDir('webhook');
    let store = await storeWithMessages(dir, 2);
    const { cursor } = await postEvents(store, r.url);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir); // rebuilt from the journal
    try {
      expect(await store.getMeta('consumer/events-webhook')).toBe(cursor);
      expect((await postEvents(store, r.url)).posted).toBe(0);
      await store.setMeta('consumer/events-webhook', undefined);
      expect(await store.getMeta('consumer/events-webhook')).toBeUndefined();
      await expect(store.setMeta(42 as unknown as string, 'x')).rejects.toMatchObject({ code: 'INVALID' });
    } finally {
      await store.close();
    }
  });

  it('follows: new commits are posted as they land, until stopped', async () => {
    const r = await receiver();
    const changes = new ChangeSignal();
    const store = await Store.open(tmpDir('webhook'), { create: true, onCommit: () => changes.notify() });
    try {
      await store.createMailbox('INBOX');
      const stop = new AbortController();
      const running = postEvents(store, r.url, { follow: true, signal: stop.signal, changes });
      for (let i = 0; i < 3; i++) await store.append('INBOX', msg(`f${i}`));
      for (let i = 0; i < 100 && r.accepted.length < 4; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      stop.abort();
      const result = await running;
      expect(r.accepted).toHaveLength(4);
      expect(result.cursor).toBe(r.accepted[3]);
      expect(await store.getMeta('consumer/events-webhook')).toBe(r.accepted[3]);
    } finally {
      await store.close();
    }
  });

  it('a second webhook of the same consumer while one follows is LOCKED before it posts: one cursor, never moved back by the other', async () => {
    const r = await receiver();
    const store = await Store.open(tmpDir('webhook'), { create: true });
    try {
      await store.createMailbox('INBOX');
      const stop = new AbortController();
      const running = postEvents(store, r.url, { follow: true, signal: stop.signal });
      await expect(postEvents(store, r.url)).rejects.toMatchObject({ code: 'LOCKED' });
      expect((await postEvents(store, r.url, { consumer: 'other-hook' })).posted).toBe(1); // another name has its own cursor
      // stopped before it had posted the MailboxCreate (a loaded machine), the follower left it to the next run
      await until(async () => (await store.getMeta('consumer/events-webhook')) !== undefined, 10_000, 'the follower to post what there is');
      stop.abort();
      await running;
      expect((await postEvents(store, r.url)).posted).toBe(0); // the name is free again; nothing new
    } finally {
      await store.close();
    }
  });
});

describe('events webhook: a URL it can never post to', () => {
  // Accepted before, a typo in the URL was retried and restarted forever while the consumer pinned
  // the journal, and 'serve --webhook' started as if all was well; a URL with a password (which
  // fetch refuses) was also written to the log as given.
  it('is INVALID at once, before any attempt, and names no password', async () => {
    const store = await storeWithMessages(tmpDir('webhook'), 1);
    try {
      for (const url of ['notaurl', 'ftp://127.0.0.1/events', 'http://bob:hunter2@127.0.0.1:1/events']) {
        const attempts: unknown[] = [];
        const failure = await postEvents(store, url, { retries: 0, log: (entry) => attempts.push(entry) }).catch((error: unknown) => error);
        expect(failure).toMatchObject({ code: 'INVALID' });
        expect((failure as Error).message).not.toContain('hunter2');
        expect(attempts).toEqual([]);
      }
      expect(await store.changes.cursor('events-webhook')).toBeUndefined(); // not registered: it pins nothing
    } finally {
      await store.close();
    }
  });

  it('mailstore serve --webhook refuses it (exit 5) before it serves the store', async () => {
    const dir = tmpDir('webhook');
    await (await Store.open(dir, { create: true })).close();
    const result = await run(['serve', '--webhook', 'htp:/127.0.0.1/events'], { store: dir });
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/INVALID: .*webhook/);
  });
});

describe('events webhook: moving its cursor back', () => {
  it('keeps the consumer pinning the journal when the move fails half-way (no unpinned moment)', async () => {
    const r = await receiver();
    let failConsumerWrites = false;
    const fs: FileSystem = Object.create(nodeFileSystem);
    fs.rename = async (from, to) => {
      if (failConsumerWrites && to.includes('consumers')) throw Object.assign(new Error(`EIO: i/o error, rename '${from}'`), { code: 'EIO' });
      return nodeFileSystem.rename(from, to);
    };
    const store = await storeWithMessages(tmpDir('webhook'), 5);
    await store.close();
    const reopened = await Store.open(store.root, { fs });
    try {
      await postEvents(reopened, r.url);
      const before = await reopened.changes.cursor('events-webhook');
      expect(before?.seq).toBeGreaterThan(1);
      failConsumerWrites = true;
      await expect(setConsumerCursor(reopened, '2')).rejects.toMatchObject({ code: 'IO' });
      // still registered where it was: the journal it has not posted stays pinned
      expect((await reopened.changes.cursor('events-webhook'))?.seq).toBe(before?.seq);
      failConsumerWrites = false;
      await setConsumerCursor(reopened, '2');
      expect((await reopened.changes.cursor('events-webhook'))?.seq).toBe(2);
    } finally {
      await reopened.close();
    }
  });
});

describe('events webhook: a consumer behind the journal\'s retirement', () => {
  it('stops with NOT_FOUND and posts nothing: the retired changes are not skipped silently', async () => {
    const r = await receiver();
    const store = await Store.open(tmpDir('webhook'), { create: true, journalSegmentBytesMax: 4096, autoSnapshot: false });
    try {
      await store.createMailbox('INBOX');
      const { cursor } = await postEvents(store, r.url);
      // its pin removed (mailstore consumers --remove events-webhook) while it was away
      expect(await store.changes.remove('events-webhook')).toBe(true);
      for (let i = 0; i < 30; i++) await store.append('INBOX', msg(`m${i} ${'x'.repeat(500)}`));
      await store.snapshot();
      await store.append('INBOX', msg('after the first snapshot'));
      await store.snapshot(); // two kept: the journal below the older one goes
      expect(store.changes.firstSeq).toBeGreaterThan(Number(cursor.split('.')[0]) + 1);
      await expect(postEvents(store, r.url)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('retired') });
      expect(r.accepted).toHaveLength(1); // only the first run's MailboxCreate
      expect(await store.getMeta('consumer/events-webhook')).toBe(cursor);

      // the way out, by hand: moved to what the journal still holds, it posts from there on
      await expect(setConsumerCursor(store, '1')).rejects.toMatchObject({ code: 'NOT_FOUND' }); // still retired
      await expect(setConsumerCursor(store, String(store.changes.lastSeq + 1))).rejects.toMatchObject({ code: 'INVALID' });
      await expect(setConsumerCursor(store, '0', 'no-such-consumer')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const oldest = store.changes.firstSeq - 1;
      expect(await setConsumerCursor(store, String(oldest))).toEqual({ consumer: 'events-webhook', cursor: String(oldest), previous: cursor });
      expect((await store.changes.cursor('events-webhook'))?.seq).toBe(oldest); // pinned again: what it will send is kept
      const resumed = await postEvents(store, r.url);
      expect(resumed.posted).toBeGreaterThan(0);
      expect(r.accepted.slice(1).every((c) => Number(c.split('.')[0]) > oldest)).toBe(true);
      // and back, to send the last change again (the record before it: its cursor's seq - 1)
      const last = Number(r.accepted[r.accepted.length - 1].split('.')[0]);
      await setConsumerCursor(store, String(last - 1));
      expect((await store.changes.cursor('events-webhook'))?.seq).toBe(last - 1);
      expect((await postEvents(store, r.url)).posted).toBe(1);
      expect(r.accepted[r.accepted.length - 1]).toBe(r.accepted[r.accepted.length - 2]); // the same event, the same cursor
    } finally {
      await store.close();
    }
  });

  it('mailstore consumers --move events-webhook --to CURSOR: direct and through the daemon alike; --move without --to is INVALID', async () => {
    const dir = tmpDir('webhook-cli');
    const store = await storeWithMessages(dir, 3);
    await store.setMeta('consumer/events-webhook', '1');
    await store.changes.register('events-webhook', 1);
    await store.close();
    const moved = await run(['consumers', '--move', 'events-webhook', '--to', '3', '--json'], { store: dir });
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout)).toEqual({ consumer: 'events-webhook', cursor: '3', previous: '1' });
    expect((await run(['consumers', '--move', 'events-webhook'], { store: dir })).code).toBe(5);
    expect((await run(['consumers', '--move', 'snapshot', '--to', '2'], { store: dir })).code).toBe(4); // not an events consumer
    // through a daemon that holds the store: the same answers
    const daemon = await serve(dir);
    try {
      const back = await run(['consumers', '--move', 'events-webhook', '--to', '2.1', '--json'], { store: dir });
      expect(back.code, back.stderr).toBe(0);
      expect(JSON.parse(back.stdout)).toEqual({ consumer: 'events-webhook', cursor: '2.1', previous: '3' });
      expect((await run(['consumers', '--move', 'snapshot', '--to', '2'], { store: dir })).code).toBe(4);
      expect((await run(['consumers', '--move', 'events-webhook', '--to', '99'], { store: dir })).code).toBe(5);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    const reopened = await Store.open(dir);
    expect(await reopened.getMeta('consumer/events-webhook')).toBe('2.1');
    expect((await reopened.changes.cursor('events-webhook'))?.seq).toBe(1); // record 2 not wholly sent: pinned before it
    await reopened.close();
  });
});

describe('events webhook: a receiver that redirects', () => {
  // fetch follows a 301/302/303 answer to a POST with a GET without the body: the GET's 200 was
  // taken as the receiver accepting the batch, the cursor moved, and the events were never delivered.
  it('is a failed attempt, never an accepted batch: the cursor stays and the events come again', async () => {
    const seen: string[] = [];
    const server = createServer((request, response) => {
      seen.push(`${request.method} ${request.url}`);
      request.resume();
      request.on('end', () => {
        if (request.url === '/events') response.writeHead(302, { location: '/moved' }).end();
        else response.writeHead(200).end();
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/events`;
    const store = await storeWithMessages(tmpDir('webhook'), 2);
    try {
      await expect(postEvents(store, url, { retries: 1, backoffMs: 5 })).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('302') });
      expect(seen).toEqual(['POST /events', 'POST /events']); // no GET of the new place
      expect(await store.getMeta('consumer/events-webhook')).toBeUndefined();
      const r = await receiver();
      expect((await postEvents(store, r.url)).posted).toBe(3); // MailboxCreate and both MessageNew, none skipped
    } finally {
      await store.close();
    }
  });
});

function formatCursorOf(cursor: { seq: number; slot: number }): string {
  return cursor.slot === Infinity ? String(cursor.seq) : `${cursor.seq}.${cursor.slot}`;
}

describe('events webhook: a secret in its URL', () => {
  // The refusal of a URL with a password says to let the receiver take a secret in its path, yet the
  // whole URL, path and query, went into every webhook.failed and webhook.stopped log line, the IO
  // error and serve's 'services' line: the daemon's log (and the journal) handed the secret on.
  it('is never logged, nor put in an error: the receiver is named by its origin', { timeout: 30_000 }, async () => {
    const r = await receiver();
    const secretUrl = `${r.url}/s3cr3t-path?token=t0k3n`;
    const dir = tmpDir('webhook');
    const store = await storeWithMessages(dir, 2);
    const origin = new URL(r.url).origin;
    try {
      r.answers.push(500, 500);
      const log: unknown[] = [];
      const failure = await postEvents(store, secretUrl, { retries: 1, backoffMs: 5, log: (entry) => log.push(entry) }).catch((error: unknown) => error);
      expect(failure).toMatchObject({ code: 'IO' });
      const said = JSON.stringify(log) + (failure as Error).message + JSON.stringify((failure as { path?: string }).path);
      expect(said).not.toMatch(/s3cr3t|t0k3n/);
      expect(said).toContain(origin);
      expect(r.requests.map((q) => q.status)).toEqual([500, 500]); // it did post to the whole URL
      expect(r.accepted).toEqual([]);
      expect(await store.getMeta('consumer/events-webhook')).toBeUndefined(); // nothing counted as sent
    } finally {
      await store.close();
    }
    const daemon = await serve(dir, ['--webhook', secretUrl]);
    try {
      for (let i = 0; i < 100 && r.accepted.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(r.accepted.length).toBeGreaterThanOrEqual(3); // every event there, once the receiver takes them
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    expect(daemon.stderr()).toContain(origin);
    expect(daemon.stderr()).not.toMatch(/s3cr3t|t0k3n/);
  });
});

describe('events webhook: a replica', () => {
  it('on a replica nothing is posted (READ_ONLY_REPLICA: its primary posts those events, and the cursor cannot be stored there); once promoted it goes on from the cursor its primary stored, each event once', async () => {
    const r = await receiver();
    const pair = await startPair();
    try {
      for (let i = 0; i < 3; i++) await pair.primaryStore.append('INBOX', msg(`m${i}`));
      const first = await postEvents(pair.primaryStore, r.url);
      expect(first.posted).toBe(4); // MailboxCreate + 3 MessageNew
      await pair.primaryStore.append('INBOX', msg('m3'));
      await until(() => pair.replica.store.changes.lastSeq === pair.primaryStore.changes.lastSeq, 15_000, 'the replica caught up');
      // a daemon run with --webhook on both nodes: the replica's posted its primary's events again,
      // failed to store its cursor, and posted them again at every restart of the webhook
      expect(await postEvents(pair.replica.store, r.url, { retries: 0 }).catch((error: unknown) => error)).toMatchObject({ code: 'READ_ONLY_REPLICA' });
      expect(r.requests).toHaveLength(1);
      await pair.replica.promote();
      const after = await postEvents(pair.replica.store, r.url);
      expect(after.posted).toBe(1); // the message the primary had not posted yet
      expect(new Set(r.accepted).size).toBe(r.accepted.length);
      expect(r.accepted).toHaveLength(5);
    } finally {
      await pair.close();
    }
  });
});
