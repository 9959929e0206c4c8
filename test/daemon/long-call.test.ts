// A long call through the daemon (an expunge of many uids, committed in parts) shares the event
// loop with every other client: another client's fetch, and a new client's hello, are answered
// between its parts, not after the whole call (a 900k expunge held them for minutes: hello timed out).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { message, startDaemon } from './helpers.js';

const INBOX = 'user/alice/INBOX';
const part = limits.uidChangePartMessages;
afterEach(() => { limits.uidChangePartMessages = part; });

describe('a long call through the daemon', () => {
  it('a fetch and a new client\'s hello issued during an expunge in 40 parts are answered before it ends', async () => {
    limits.uidChangePartMessages = 100;
    const running = await startDaemon();
    const count = 4000;
    await running.store.appendBatch(INBOX, Array.from({ length: count }, (_, i) => ({ bytes: message(i) })));
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
});
