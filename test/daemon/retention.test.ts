// Issue 13, "the daemon's RSS stays flat over 1M deliveries": no per-delivery retention. RSS is
// the wrong thing to assert on (the heap, LevelDB's caches and malloc arenas grow to a working set
// first; BENCHMARKS.md "The daemon's RSS"), so this counts what a delivery leaves behind instead:
// every body handed to the store is registered with a FinalizationRegistry, and after thousands
// of LMTP deliveries over several connections and a full GC at most a batch's worth may still be
// alive; the heap after a full GC may not grow with the number of deliveries either.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { startLmtp, type LmtpServer, type LmtpStore } from '../../src/daemon/lmtp.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { connect, type Socket } from 'node:net';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CONNECTIONS = 8;
/** Deliveries per connection in each phase (two of warm-up, then two measured windows of two). */
const PER_PHASE = 150;

const open: { server?: LmtpServer; store?: Store }[] = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    await server?.close();
    await store?.close();
  }
});

/** Collects garbage until the registry's callbacks have run (they run on later turns). */
async function collect(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * An LMTP client that keeps nothing per reply (lmtp-client.ts's converse keeps every reply line,
 * which would count as growth here): it counts final replies and fails on any that is not 2xx/354.
 */
interface Lean {
  socket: Socket;
  /** Resolves once `n` more final replies have arrived. */
  replies(n: number): Promise<void>;
}

function lean(port: number): Promise<Lean> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buffer = '', seen = 0, needed = 0, failure: Error | undefined;
    let wake: (() => void) | undefined;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let end: number;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!/^\d{3} /.test(line)) continue;
        seen++;
        if (!/^(2\d\d|354) /.test(line)) failure ??= new Error(`unexpected reply: ${line}`);
      }
      if (wake && (failure || seen >= needed)) { const w = wake; wake = undefined; w(); }
    });
    socket.once('error', reject);
    const replies = (n: number) => new Promise<void>((done, fail) => {
      needed += n;
      const check = () => (failure ? fail(failure) : done());
      if (failure || seen >= needed) check();
      else wake = check;
    });
    socket.once('connect', () => {
      void (async () => {
        await replies(1); // the greeting: smtp-server refuses a client that talks before it
        socket.write('LHLO client.example\r\n');
        await replies(1);
        resolve({ socket, replies });
      })().catch(reject);
    });
  });
}

async function deliverMany(c: Lean, user: number, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    c.socket.write(`MAIL FROM:<sender@example.org>\r\nRCPT TO:<u${user}@example.org>\r\nDATA\r\n`);
    await c.replies(3);
    c.socket.write(`Received: by test; ${i}\r\nSubject: message ${i} of u${user}\r\n\r\n${'body line\r\n'.repeat(50)}.\r\n`);
    await c.replies(1);
  }
}

describe('the daemon keeps nothing per delivery', () => {
  it('thousands of LMTP deliveries over several connections: the bodies are collected and the heap does not grow with them', async () => {
    const store = await Store.open(tmpDir('retention'), { create: true });
    for (let u = 0; u < CONNECTIONS; u++) await store.createMailbox(`user/u${u}/INBOX`);
    let alive = 0;
    const bodies = new FinalizationRegistry<void>(() => { alive--; });
    // The store as LMTP sees it, counting every body it is handed (and when each is collected).
    const counting: LmtpStore = {
      status: (mailbox) => store.status(mailbox),
      append: (mailbox, bytes, options) => {
        alive++;
        bodies.register(bytes as object);
        return store.append(mailbox, bytes, options);
      },
      listMailboxes: (options) => store.listMailboxes(options),
    };
    const server = await startLmtp(counting, { listen: '127.0.0.1:0', hostname: 'test.example' });
    open.push({ server, store });
    const port = Number(server.address.split(':')[1]);
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => lean(port)));
    const phase = (n: number) => Promise.all(clients.map((c, u) => deliverMany(c, u, n * PER_PHASE, PER_PHASE)));

    await phase(0); // warm-up: JIT, caches, the heap grown to its working set
    await phase(1);
    // two measured windows of two phases each: retention kept per delivery grows the heap in both,
    // while V8's code settling (or a GC that came late on a loaded machine) shows in one at most
    const growth: number[] = [];
    for (const first of [2, 4]) {
      await collect();
      const heapBefore = process.memoryUsage().heapUsed;
      await phase(first);
      await phase(first + 1);
      await collect();
      growth.push(process.memoryUsage().heapUsed - heapBefore);
    }

    expect((await store.status('user/u0/INBOX')).messages).toBe(6 * PER_PHASE);
    // what may stay: the last group commit's bodies at most (one per connection), never one per delivery
    expect(alive).toBeLessThanOrEqual(CONNECTIONS);
    // 2,400 deliveries in each window: a session, envelope, record or closure kept per delivery (≥ ~200
    // bytes) would add ≥ 480 KB. What remains is V8's optimised code settling (measured: ~50 bytes
    // a delivery, all of it code and deopt data in a heap snapshot diff)
    const perDelivery = Math.min(...growth) / (2 * PER_PHASE * CONNECTIONS);
    expect(perDelivery, `heap growth per delivery in the two windows: ${growth.map((g) => Math.round(g / (2 * PER_PHASE * CONNECTIONS))).join(', ')} bytes`).toBeLessThan(150);
    for (const c of clients) c.socket.destroy();
  }, 120_000);
});
