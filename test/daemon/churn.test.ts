// A daemon runs for months between restarts, and so do the processes of the mail server that use
// it through the client library: what either holds (descriptors, connections, the daemon's backup
// sessions, heap after a collection) must come back to its baseline after the churn a real server
// makes (connections opened and dropped, calls abandoned half-way, failed calls, mailboxes made and
// deleted). Each test runs cycles and compares counts before and after, never times.
// LEAK_CYCLES=N runs N cycles each (default a few dozen: seconds).
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import type { MailstoreError } from '../../src/errors.js';
import { Tag } from 'cbor-x';
import { openSessions } from '../../src/daemon/backup-sessions.js';
import { bodyBudget } from '../../src/daemon/body-budget.js';
import { encodeFrame } from '../../src/daemon/protocol.js';
import { daemonLimits } from '../../src/limits.js';
import { startLmtp } from '../../src/daemon/lmtp.js';
import { converse } from './lmtp-client.js';
import { message, rawConnect, startDaemon, type Running } from './helpers.js';

const INBOX = 'user/alice/INBOX';
const CYCLES = Number(process.env.LEAK_CYCLES ?? 24);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The daemon of the test running, stopped after it. */
let running: Running | undefined;
afterEach(async () => {
  await running?.server.stop('test');
  running = undefined;
});

function openFiles(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Lets closes and timers of the cycles run out (a count of turns, not a time asserted). */
async function quiet(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** Memory in use after full collections: the heap and the buffers outside it (bodies). */
async function heapUsed(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const { heapUsed: heap, arrayBuffers } = process.memoryUsage();
  return heap + arrayBuffers;
}

interface Holdings { files: number; connections: number; backupSessions: number; bodyBytes: number }

async function holdings(daemon: Running): Promise<Holdings> {
  await quiet();
  return { files: openFiles(), connections: daemon.server.connectionCount, backupSessions: openSessions(), bodyBytes: bodyBudget.heldBytes };
}

describe('churn against a daemon', () => {
  it('connections opened and closed, calls failed with every code, and listings, streams and append bodies abandoned half-way leave nothing held', async () => {
    running = await startDaemon();
    const daemon = running;
    for (let i = 0; i < 20; i++) await daemon.store.append(INBOX, message(i, 300_000));
    let before: Holdings | undefined;
    let heapBefore = 0;
    const codes: string[] = [];
    for (let cycle = -1; cycle < CYCLES; cycle++) {
      if (cycle === 0) { // after a first cycle: its pack read handle and buffers are kept for the next reads, as they should be
        before = await holdings(daemon);
        heapBefore = await heapUsed();
      }
      const client = await daemon.client();
      for (const call of [() => client.status('user/nobody'), () => client.createMailbox(INBOX), () => client.append('user/nobody/INBOX', message(0, 100_000)), () => client.setFlags(INBOX, 1, { add: ['bad flag'] }), () => client.procedure('nothing', [])]) {
        codes.push(await call().then(() => 'done', (error: MailstoreError) => error.code));
      }
      expect(codes.splice(0)).toEqual(['NOT_FOUND', 'EXISTS', 'NOT_FOUND', 'INVALID', 'INVALID']);
      const listing = client.readMessages(INBOX);
      await listing.next();
      const stream = await client.fetchStream(INBOX, 1 + ((cycle + 20) % 20));
      stream.on('error', () => undefined);
      await new Promise((resolve) => stream.once('data', resolve));
      await client.close();
      // a client that dies half-way through an append's body (allocated whole at its first chunk)
      const raw = await rawConnect(daemon.socket);
      raw.write(encodeFrame({ t: 'call', id: 1, m: 'append', a: [INBOX, new Tag(10 * 1024 * 1024, 40_107 /* a detached byte string */)], b: 1 }));
      raw.write(encodeFrame({ t: 'chunk', id: 1, d: Buffer.alloc(daemonLimits.chunkBytes, 97) }));
      await quiet();
      raw.destroy();
    }
    expect(await holdings(daemon)).toEqual(before);
    expect(await heapUsed() - heapBefore).toBeLessThan(8 * 1024 * 1024);
    expect((await daemon.store.status(INBOX)).messages).toBe(20);
  });

  it('a client closed while a call reconnects leaves no connection behind; the call fails CLOSED, nothing done', async () => {
    running = await startDaemon();
    const daemon = running;
    const before = await holdings(daemon);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const client = await daemon.client();
      // the connection drops (the daemon restarted, a network namespace hiccup): the next call reconnects
      for (const connection of (daemon.server as unknown as { connections: Set<{ destroy(): void }> }).connections) connection.destroy();
      await quiet();
      const call = client.append(INBOX, message(cycle)).then(() => 'appended', (error: MailstoreError) => error.code);
      await client.close(); // the process shuts down meanwhile
      expect(await call).toBe('CLOSED');
    }
    expect(await holdings(daemon)).toEqual(before);
    expect((await daemon.store.status(INBOX)).messages).toBe(0);
  });

  it('a client closed while it connects to a daemon that takes the connection and hangs (before or during its hello) closes, and lets the connection go', async () => {
    running = await startDaemon();
    const daemon = running;
    const client = await daemon.client();
    const other = await daemon.client();
    await daemon.server.stop('test');
    running = undefined;
    const hung = createServer((socket) => socket.resume()); // takes connections and reads, never answers
    await new Promise<void>((resolve) => hung.listen(daemon.socket, resolve));
    try {
      const early = other.status(INBOX).then(() => 'answered', (error: MailstoreError) => error.code);
      await other.close(); // before its connection is taken
      expect(await early).toBe('CLOSED');
      const connections = () => new Promise<number>((resolve) => hung.getConnections((_, n) => resolve(n)));
      await quiet();
      expect(await connections()).toBe(0);
      const call = client.status(INBOX).then(() => 'answered', (error: MailstoreError) => error.code);
      while (await connections() === 0) await quiet();
      await client.close(); // while it waits for the hello
      expect(await call).toBe('CLOSED');
      await quiet();
      expect(await connections()).toBe(0);
    } finally {
      await new Promise((resolve) => hung.close(resolve));
    }
  });

  it('a backup killed mid-session (its connection gone, the session never closed) lets the session and its index snapshot go at once, not a minute later', async () => {
    running = await startDaemon();
    const daemon = running;
    for (let i = 0; i < 5; i++) await daemon.store.append(INBOX, message(i));
    const before = await holdings(daemon);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const client = await daemon.client();
      const open = client.procedureListing('stateSinceOpen', [0]);
      const head = (await open.next()).value as { head: { session: number } };
      if (cycle % 2 === 0) { // killed after its reads began
        let id: Uint8Array | undefined;
        for await (const part of open) id ??= (part as { mailboxes?: { id: Uint8Array }[] }).mailboxes?.[0].id;
        let messages = 0;
        for await (const part of client.procedureListing('stateSinceRead', [head.head.session, 'mailbox', [id]])) messages += (part as { messages?: unknown[] }).messages?.length ?? 0;
        expect(messages).toBe(5);
      }
      await client.close(); // as the process's death closes it: no stateSinceClose
    }
    expect(await holdings(daemon)).toEqual(before);
    expect((await daemon.store.status(INBOX)).messages).toBe(5);
  });

  it('a daemon of another protocol version (an upgrade half done) refused again and again leaves no connection behind: each connect is INVALID', async () => {
    running = await startDaemon();
    const daemon = running;
    const hello = daemon.server.hello.bind(daemon.server);
    daemon.server.hello = () => ({ ...hello(), protocol: hello().protocol + 1 });
    const before = await holdings(daemon);
    for (let cycle = 0; cycle < CYCLES; cycle++) { // a mail server process retrying until both are upgraded
      expect(await daemon.client().then(() => 'connected', (error: MailstoreError) => error.code)).toBe('INVALID');
    }
    expect(await holdings(daemon)).toEqual(before);
  });

  it('listings a caller peeked at and dropped (next() once, never return()) are cancelled once collected: the daemon lets their index readers go', async () => {
    running = await startDaemon();
    const daemon = running;
    await daemon.store.appendBatch(INBOX, Array.from({ length: 700 }, (_, i) => ({ bytes: message(i) }))); // more than a listing runs ahead
    const client = await daemon.client();
    const flows = () => [...(daemon.server as unknown as { connections: Set<{ flows: Map<number, unknown> }> }).connections].reduce((n, c) => n + c.flows.size, 0);
    const peek = async (): Promise<number> => (await client.messages(INBOX).next()).value!.uid; // "is there a first message?"
    for (let cycle = 0; cycle < CYCLES; cycle++) expect(await peek()).toBe(1);
    for (let i = 0; i < 5 && flows() > 0; i++) { // a count of collections, not a time
      await heapUsed();
      await quiet();
    }
    expect(flows()).toBe(0);
    expect((client as unknown as { link: { pending: Map<number, unknown> } }).link.pending.size).toBe(0);
    expect((await client.status(INBOX)).messages).toBe(700);
    await client.close();
  });

  it('LMTP sessions dropped at every step (after the greeting, LHLO, MAIL, RCPT, DATA, mid-message, before the reply) leave nothing held; only whole messages land', async () => {
    running = await startDaemon();
    const daemon = running;
    const lmtp = await startLmtp(daemon.store, { listen: '127.0.0.1:0' });
    const port = Number(lmtp.address.split(':').at(-1));
    const steps = ['LHLO mta\r\n', 'MAIL FROM:<a@example.org>\r\n', 'RCPT TO:<alice@example.org>\r\n', 'DATA\r\n', message(1, 200_000).subarray(0, 100_000), message(1, 200_000).subarray(100_000), '\r\n.\r\n'];
    try {
      let before: Holdings | undefined;
      let whole = 0;
      for (let cycle = -1; cycle < CYCLES; cycle++) {
        if (cycle === 0) before = await holdings(daemon); // after one whole delivery: what a store keeps open once it has written
        const conversation = await converse({ port });
        const upTo = cycle < 0 ? steps.length : cycle % (steps.length + 1);
        for (let step = 0; step < upTo; step++) {
          conversation.send(steps[step]);
          if (step < 4) await conversation.replies(1);
        }
        if (upTo === steps.length) {
          await conversation.replies(1); // 250: durable before the drop
          whole++;
        }
        conversation.socket.destroy();
        await conversation.closed;
      }
      expect(await holdings(daemon)).toEqual(before);
      expect((await daemon.store.status(INBOX)).messages).toBe(whole);
    } finally {
      await lmtp.close();
    }
  });
});
