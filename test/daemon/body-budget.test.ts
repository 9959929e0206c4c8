// The daemon's one budget of message bytes held at once (src/daemon/body-budget.ts): past it a
// socket call waits for room (its connection is not read meanwhile) and LMTP answers 452 4.3.1,
// so many big deliveries at once make the daemon wait or defer, never grow until the OOM killer
// stops every delivery. Each message held or refused is accounted for: the budget is back to 0.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { Tag } from 'cbor-x';
import { BodyBudget, bodyBudget } from '../../src/daemon/body-budget.js';
import { FrameReader, decodeFrame, encodeFrame } from '../../src/daemon/protocol.js';
import { startLmtp, type LmtpServer, type LmtpStore } from '../../src/daemon/lmtp.js';
import { daemonLimits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import type { Client } from '../../src/client/client.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';
import { converse } from './lmtp-client.js';
import { message, rawConnect, readUntilClosed, startDaemon, type Running } from './helpers.js';

const tunable = daemonLimits as { bodyBytesHeldMax: number };
const saved = tunable.bodyBytesHeldMax;
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const undo of cleanup.splice(0).reverse()) await undo();
  tunable.bodyBytesHeldMax = saved;
});

/** A gate the wrapped appends wait at, to hold their bodies while a test looks. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => { open = resolve; });
  return { wait, open };
}

const settled = async (promise: Promise<unknown>) => {
  let done = false;
  void promise.then(() => { done = true; }, () => { done = true; });
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('BodyBudget', () => {
  it('takes what fits, lets one body bigger than the budget go alone, and wakes waiters in order as room comes', async () => {
    const budget = new BodyBudget(() => 100);
    expect(budget.tryTake(60)).toBe(true);
    expect(budget.tryTake(50)).toBe(false);
    const order: string[] = [];
    const first = budget.take(50).then(() => order.push('first'));
    const second = budget.take(10).then(() => order.push('second')); // fits now, but waits its turn behind the first
    expect(budget.tryTake(1)).toBe(false); // nobody jumps the queue
    expect(await settled(second)).toBe(false);
    budget.give(60);
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
    expect(budget.heldBytes).toBe(60);
    budget.give(60);
    expect(budget.tryTake(500)).toBe(true); // bigger than the budget: alone
    expect(budget.tryTake(1)).toBe(false);
    budget.give(500);
    expect(budget.heldBytes).toBe(0);
    expect(() => budget.give(1)).toThrow(/more than it held/);
  });

  it('calls drained once nothing is held after afterBytes went through, counting every way in (the daemon collects then: give-back.ts)', async () => {
    let drained = 0;
    const budget = new BodyBudget(() => 100, { afterBytes: () => 150, run: () => { drained++; } });
    budget.tryTake(60);
    budget.give(60); // drained, but only 60 went through
    budget.force(50);
    const waited = budget.take(80); // past the budget: waits, and is counted once it is taken
    budget.give(50);
    await waited;
    expect(drained).toBe(0); // 190 went through, but 80 are held
    budget.give(80);
    expect(drained).toBe(1);
    budget.tryTake(100);
    budget.give(100);
    expect(drained).toBe(1); // counted anew: 100 since
    budget.tryTake(50);
    budget.give(50);
    expect(drained).toBe(2);
  });
});

describe('the daemon over its body budget', () => {
  it('has V8 run a full collection once its budget drains after bodyCollectAfterBytes went through (an idle daemon started none: the bodies stayed in its RSS)', async () => {
    const forced: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const { kind, flags } = entry.detail as { kind: number; flags: number };
        if (flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) forced.push(kind);
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    cleanup.push(async () => observer.disconnect());
    const bytes = daemonLimits.bodyCollectAfterBytes;
    expect(bodyBudget.tryTake(bytes)).toBe(true);
    bodyBudget.give(bytes);
    await until(() => forced.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'a full collection once the budget drained');
  });

  it('makes a socket append wait for room instead of allocating its body, then stores both byte-exact', async () => {
    const running: Running = await startDaemon();
    cleanup.push(() => running.server.stop('test'));
    const held = gate();
    const store = running.server.callStore;
    running.server.callStore = new Proxy(store, {
      get: (target, name, receiver) => name === 'append'
        ? async (...args: Parameters<Store['append']>) => { await held.wait; return target.append(...args); }
        : Reflect.get(target, name, receiver),
    });
    const big = [message(1, 300 * 1024), message(2, 300 * 1024)]; // above inlineBytesMax: sent as chunks, counted
    tunable.bodyBytesHeldMax = big[0].length + 1000; // room for one
    // a connection the daemon stops reading may hold half a frame: the wait is the daemon's, not a
    // client that stopped sending (until session 33 it was dropped after frameCompleteMs)
    const timing = daemonLimits as { frameCompleteMs: number };
    const frameMs = timing.frameCompleteMs;
    timing.frameCompleteMs = 50;
    cleanup.push(async () => { timing.frameCompleteMs = frameMs; });
    const clients: Client[] = [await running.client(), await running.client()];
    cleanup.push(async () => { for (const c of clients) await c.close(); });
    const first = clients[0].append('user/alice/INBOX', big[0]);
    for (let i = 0; i < 200 && bodyBudget.heldBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(big[0].length);
    const second = clients[1].append('user/alice/INBOX', big[1]);
    await new Promise((resolve) => setTimeout(resolve, 400)); // its call and chunks reach the daemon, which does not take them
    expect(bodyBudget.heldBytes).toBe(big[0].length);
    expect(await settled(second)).toBe(false);
    held.open();
    expect((await first).uid).toBe(1);
    expect((await second).uid).toBe(2);
    expect(bodyBudget.heldBytes).toBe(0);
    expect((await store.fetch('user/alice/INBOX', 1)).equals(big[0])).toBe(true);
    expect((await store.fetch('user/alice/INBOX', 2)).equals(big[1])).toBe(true);
  });

  it('reserves a big frame when its length arrives: a second connection sending one waits for room instead of holding it too, and goes on once the first is gone', async () => {
    const running: Running = await startDaemon();
    cleanup.push(() => running.server.stop('test'));
    const conns = [await rawConnect(running.socket), await rawConnect(running.socket)];
    cleanup.push(async () => { for (const c of conns) c.destroy(); });
    const body = message(1, 400 * 1024); // inline in its call frame (a raw client may send it so)
    const frame = encodeFrame({ t: 'call', id: 1, m: 'append', a: ['user/alice/INBOX', body] });
    const payload = frame.length - 4;
    tunable.bodyBytesHeldMax = payload + 1000; // room for one
    conns[0].write(frame.subarray(0, 4 + 100 * 1024));
    for (let i = 0; i < 200 && bodyBudget.heldBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(payload); // the whole frame, before its bytes came
    const answers: Buffer[] = [];
    conns[1].on('data', (d: Buffer) => answers.push(d));
    conns[1].write(frame.subarray(0, 4 + 100 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(bodyBudget.heldBytes).toBe(payload); // the second waits: not counted twice, not read
    conns[0].destroy(); // its half frame and reservation go
    conns[1].write(frame.subarray(4 + 100 * 1024));
    for (let i = 0; i < 400 && answers.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(new FrameReader().push(Buffer.concat(answers)).map(decodeFrame)).toMatchObject([{ t: 'res', id: 1, v: { uid: 1 } }]);
    for (let i = 0; i < 200 && bodyBudget.heldBytes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(0);
    expect((await running.store.fetch('user/alice/INBOX', 1)).equals(body)).toBe(true);
  });

  it('gives back what waiters took once their connections are gone: a frame\'s reservation and a body\'s', async () => {
    const running: Running = await startDaemon();
    cleanup.push(() => running.server.stop('test'));
    const conns = [await rawConnect(running.socket), await rawConnect(running.socket), await rawConnect(running.socket)];
    cleanup.push(async () => { for (const c of conns) c.destroy(); });
    const frame = encodeFrame({ t: 'call', id: 1, m: 'append', a: ['user/alice/INBOX', message(1, 400 * 1024)] });
    tunable.bodyBytesHeldMax = frame.length; // room for one
    conns[0].write(frame.subarray(0, 4 + 1024));
    for (let i = 0; i < 200 && bodyBudget.heldBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(frame.length - 4);
    conns[1].write(frame.subarray(0, 4 + 1024)); // waits for a frame's reservation
    conns[2].write(encodeFrame({ t: 'call', id: 1, m: 'append', a: ['user/alice/INBOX', new Tag(300 * 1024, 40_107 /* a detached byte string */)], b: 1 })); // for a body's
    await new Promise((resolve) => setTimeout(resolve, 200));
    conns[1].destroy();
    conns[2].destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    conns[0].destroy(); // the waiters are woken in turn, find their connections closed and give back
    for (let i = 0; i < 400 && bodyBudget.heldBytes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(0);
    const client = await running.client();
    cleanup.push(() => client.close());
    expect((await client.append('user/alice/INBOX', message(1, 300 * 1024))).uid).toBe(1);
  });

  it('a listing parked for its reader\'s credit holds no frame reservation: parked ones cannot fill the budget and stop the reading that brings their credit', async () => {
    const running: Running = await startDaemon();
    cleanup.push(() => running.server.stop('test'));
    for (let i = 1; i <= daemonLimits.streamWindowItems + 20; i++) await running.store.append('user/alice/INBOX', message(i));
    const raw = await rawConnect(running.socket);
    cleanup.push(async () => { raw.destroy(); });
    const items: Buffer[] = [];
    raw.on('data', (d: Buffer) => items.push(d));
    // a call frame past inlineBytesMax (an argument the method does not read pads it): reserved when its length arrives
    raw.write(encodeFrame({ t: 'call', id: 1, m: 'messages', a: ['user/alice/INBOX', {}, Buffer.alloc(200 * 1024, 1)] }));
    const itemsSent = () => new FrameReader().push(Buffer.concat(items)).map(decodeFrame).filter((f) => f.t === 'item').length;
    // a window's worth sent (waited for by count, not by time: a loaded machine sends it slowly); then nothing more comes, the rest waits for credit that never does
    for (let i = 0; i < 2000 && itemsSent() < daemonLimits.streamWindowItems + 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(itemsSent()).toBe(daemonLimits.streamWindowItems + 1);
    expect(bodyBudget.heldBytes).toBe(0);
  });

  it('a client that stops half-way through a body (a frozen process) is dropped once it sent nothing for frameCompleteMs: its body\'s budget goes back and mail flows again', async () => {
    const running: Running = await startDaemon();
    cleanup.push(() => running.server.stop('test'));
    const timing = daemonLimits as { frameCompleteMs: number };
    const frameMs = timing.frameCompleteMs;
    timing.frameCompleteMs = 300; // read when a connection is taken
    const stalled = await rawConnect(running.socket).finally(() => { timing.frameCompleteMs = frameMs; });
    cleanup.push(async () => { stalled.destroy(); });
    tunable.bodyBytesHeldMax = 1024 * 1024;
    // whole frames only: a call announcing a 1 MiB body, and its first chunk; then nothing
    stalled.write(encodeFrame({ t: 'call', id: 1, m: 'append', a: ['user/alice/INBOX', new Tag(1024 * 1024, 40_107 /* a detached byte string */)], b: 1 }));
    stalled.write(encodeFrame({ t: 'chunk', id: 1, d: Buffer.alloc(daemonLimits.chunkBytes, 97) }));
    for (let i = 0; i < 200 && bodyBudget.heldBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBe(1024 * 1024);
    const { bytes, closed } = await readUntilClosed(stalled, 5000);
    expect(closed).toBe(true);
    expect(new FrameReader().push(bytes).map(decodeFrame)).toMatchObject([{ t: 'err', id: 0, e: { code: 'INVALID' } }]);
    for (let i = 0; i < 200 && bodyBudget.heldBytes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5)); // the daemon's side closes after ours
    expect(bodyBudget.heldBytes).toBe(0);
    const client = await running.client();
    cleanup.push(() => client.close());
    expect((await client.append('user/alice/INBOX', message(1, 300 * 1024))).uid).toBe(1); // nothing of the stalled call stored
  });

  it('answers LMTP DATA past the budget 452 4.3.1 (the MTA retries), delivers the one holding it, then the retry', async () => {
    const store = await Store.open(tmpDir('budget'), { create: true });
    await store.createMailbox('user/alice/INBOX');
    await store.createMailbox('user/bob/INBOX');
    const held = gate();
    const gated: LmtpStore = Object.assign(Object.create(store) as Store, {
      append: async (...args: Parameters<Store['append']>) => { await held.wait; return store.append(...args); },
    });
    const server: LmtpServer = await startLmtp(gated, { listen: '127.0.0.1:0', hostname: 'test.example' });
    cleanup.push(async () => { await server.close(); await store.close(); });
    const port = Number(server.address.split(':')[1]);
    const body = (tag: string) => Buffer.from(`From: a@example.org\r\nSubject: ${tag}\r\n\r\n${`${tag.repeat(70)}\r\n`.repeat(300)}`);
    tunable.bodyBytesHeldMax = body('a').length + 100;
    const start = async (to: string) => {
      const c = await converse({ port });
      c.send(`LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
      await c.replies(4);
      return c;
    };
    const alice = await start('alice@example.org');
    alice.send(Buffer.concat([body('a'), Buffer.from('.\r\n')]));
    for (let i = 0; i < 200 && bodyBudget.heldBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(bodyBudget.heldBytes).toBeGreaterThan(0);
    const bob = await start('bob@example.org');
    bob.send(Buffer.concat([body('b'), Buffer.from('.\r\n')]));
    expect(await bob.replies(1)).toEqual(['452 4.3.1 insufficient system resources: the server holds its most message bytes at once, try again later']);
    held.open();
    expect(await alice.replies(1)).toEqual(['250 2.0.0 delivered to user/alice/INBOX uid 1']);
    bob.send(`MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n`);
    await bob.replies(3);
    bob.send(Buffer.concat([body('b'), Buffer.from('.\r\n')]));
    expect(await bob.replies(1)).toEqual(['250 2.0.0 delivered to user/bob/INBOX uid 1']);
    expect(bodyBudget.heldBytes).toBe(0);
    expect((await store.fetch('user/bob/INBOX', 1)).equals(body('b'))).toBe(true);
    expect((await store.status('user/alice/INBOX')).messages).toBe(1);
    alice.socket.destroy();
    bob.socket.destroy();
  });
});
