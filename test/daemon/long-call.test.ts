// A long call through the daemon (an expunge of many uids, committed in parts) shares the event
// loop with every other client: another client's fetch, and a new client's hello, are answered
// between its parts, not after the whole call (a 900k expunge held them for minutes: hello timed out).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { message, startDaemon, type Running } from './helpers.js';

const INBOX = 'user/alice/INBOX';
const part = limits.uidChangePartMessages;
afterEach(() => { limits.uidChangePartMessages = part; });
const count = 4000;

/** A daemon whose INBOX holds `count` messages, parts of 100 uids: an expunge of them all takes 40. */
async function daemonWithMessages(): Promise<Running> {
  limits.uidChangePartMessages = 100;
  const running = await startDaemon();
  await running.store.appendBatch(INBOX, Array.from({ length: count }, (_, i) => ({ bytes: message(i) })));
  return running;
}

describe('a long call through the daemon', () => {
  it('a fetch and a new client\'s hello issued during an expunge in 40 parts are answered before it ends', async () => {
    const running = await daemonWithMessages();
    const a = await running.client();
    const order: string[] = [];
    const expunge = a.expunge(INBOX, Array.from({ length: count - 1 }, (_, i) => i + 1)).then((r) => { order.push('expunge'); return r; });
    // the expunge is under way: its first part committed
    while ((await running.store.status(INBOX)).messages === count) await nextTurn();
    const b = running.client().then((client) => { order.push('hello'); return client; });
    const fetched = a.fetch(INBOX, count).then((bytes) => { order.push('fetch'); return bytes; });
    const [result, client, bytes] = await Promise.all([expunge, b, fetched]);
    expect(order.indexOf('hello')).toBeLessThan(order.indexOf('expunge'));
    expect(order.indexOf('fetch')).toBeLessThan(order.indexOf('expunge'));
    expect(bytes.equals(message(count - 1))).toBe(true);
    expect(result.expunged).toHaveLength(count - 1);
    expect((await client.status(INBOX)).messages).toBe(1);
    await Promise.all([a.close(), client.close()]);
    await running.server.stop();
  });

  it('a stop during an expunge in 40 parts ends it at the next part boundary: UNAVAILABLE saying how far it got, whole parts expunged, nothing else lost', async () => {
    const running = await daemonWithMessages();
    const a = await running.client();
    const expunge = a.expunge(INBOX, Array.from({ length: count - 1 }, (_, i) => i + 1));
    const failed = expunge.then(() => undefined, (error: unknown) => error);
    while ((await running.store.status(INBOX)).messages === count) await nextTurn(); // its first part committed
    await running.server.stop(); // before: waited for all 40 parts (or the grace), and the call succeeded
    const error = await failed;
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('UNAVAILABLE');
    const boundary = Number(/its uids before (\d+)/.exec((error as MailstoreError).message)?.[1]);
    expect((error as MailstoreError).message).toContain(`from uid ${boundary} on nothing was changed`);
    // whole parts done, and not all of them
    expect((boundary - 1) % 100).toBe(0);
    expect(boundary).toBeGreaterThan(1);
    expect(boundary).toBeLessThan(count);
    await a.close().catch(() => undefined);
    const store = await Store.open(running.dir);
    try {
      const status = await store.status(INBOX);
      expect(status.messages).toBe(count - (boundary - 1));
      // the uids the error names as done are gone, every other one is there with its bytes
      expect((await store.fetch(INBOX, boundary - 1).catch((e: MailstoreError) => e.code))).toBe('NOT_FOUND');
      for (const uid of [boundary, boundary + 1, count - 1, count]) expect((await store.fetch(INBOX, uid)).equals(message(uid - 1))).toBe(true);
    } finally {
      await store.close();
    }
  });
});
