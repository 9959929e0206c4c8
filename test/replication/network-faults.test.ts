// Replication over a network that misbehaves (test/helpers/tcp-fault-proxy.ts between primary and
// replica): a replica host that vanishes without a FIN or an RST (black-holed), in the middle of a
// round and while synchronous changes wait for it. Each asserts a bounded wait, a clear error, and
// that once the link is back the replica catches up to exactly the primary's state.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { startPrimary, type PrimaryHandle } from '../../src/replication/primary.js';
import { xferUser } from '../../src/replication/xfer.js';
import { keys } from '../../src/keys/index-keys.js';
import { Connection, connect } from '../../src/replication/transport.js';
import { readKeyFile } from '../../src/replication/key.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { tmpDir } from '../helpers/tmp.js';
import { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js';
import { replicaErrorLine } from '../../src/cli/commands/replica.js';
import { codeOf, keyFile, logicalState, msg, pairBehindProxy, until } from './helpers.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
const mutable = limits as Mutable<typeof limits>;

/** The primary's view of its one replica: connected or not. */
async function replicaConnected(primary: PrimaryHandle): Promise<boolean> {
  return (await primary.status()).replicas.some((r) => r.connected);
}

describe('replication through a black-holed link', () => {
  const saved = { ping: limits.replicationPingMs, apply: limits.replicaApplyTimeoutMs, handshake: limits.replicationHandshakeMs };
  beforeEach(() => {
    mutable.replicationPingMs = 100;
    mutable.replicaApplyTimeoutMs = 5000;
    mutable.replicationHandshakeMs = 1000;
  });
  afterEach(() => {
    mutable.replicationPingMs = saved.ping;
    mutable.replicaApplyTimeoutMs = saved.apply;
    mutable.replicationHandshakeMs = saved.handshake;
  });

  async function setUp(syncReplicas: number, syncFallback: 'refuse' | 'async' = 'refuse') {
    const logs: string[] = [];
    const pair = await pairBehindProxy({ primary: { log: (line) => logs.push(line), syncReplicas, syncFallback, syncWaitMs: 400 } });
    return { ...pair, logs, close: pair.end };
  }

  it('a synchronous replica black-holed: changes fail UNAVAILABLE within the wait, the replica is dropped within three pings, then changes are refused before anything is written; back, it catches up', async () => {
    const { primaryStore, primary, proxy, replica, logs, close } = await setUp(1);
    try {
      const acked: number[] = [];
      for (let i = 0; i < 5; i++) {
        // on a loaded machine the replica may confirm after the 400 ms wait: the change is durable
        // here then ("may have committed", as the gate says) and the replica takes it after; the
        // link is cut only once the replica holds every one (before, such an append failed the test)
        const outcome = await primaryStore.append('INBOX', msg(i)).catch((error: unknown) => error);
        // a loaded machine's late timers can also drop the replica by the pings' rule before the cut
        // (a fresh-clone CI at load ~20 did): the change is then refused with nothing written, and
        // the replica reconnects by itself; the cut below is made only once it is back
        if (outcome instanceof Error) expect(outcome).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/may have committed|0 of the 1 synchronous replicas are connected; nothing was written/) });
        else acked.push((outcome as { uid: number }).uid);
        await until(async () => replica.store.changes.lastSeq === primaryStore.changes.lastSeq && await replicaConnected(primary), 15_000, 'the replica holding it');
      }
      proxy.blackhole();
      // the change in flight is durable here and unconfirmed: UNAVAILABLE, "may have committed"
      expect(await codeOf(primaryStore.append('INBOX', msg(100)))).toBe('UNAVAILABLE');
      // the primary hears nothing (no pong, no ack): dropped by the pings' rule (3 x 100 ms of
      // silence), not after replicaApplyTimeoutMs (5000 here; a tentative round outstanding is no
      // round being applied): its log line says how long it heard nothing (before: a wall-clock
      // bound of 2.5 s from the cut, which a loaded machine's late timers passed)
      await until(async () => !(await replicaConnected(primary)), 15_000, 'the silent replica to be dropped');
      const refused = await primaryStore.append('INBOX', msg(101)).then(() => undefined, (error: Error) => error);
      expect(refused?.message).toMatch(/0 of the 1 synchronous replicas are connected; nothing was written/);
      const dropped = /replica [0-9a-f]{16} disconnected at seq \d+: .*nothing heard for (\d+) ms/;
      await until(() => logs.some((line) => dropped.test(line)), 15_000, 'the log line');
      expect(Number(dropped.exec(logs.find((line) => dropped.test(line))!)![1])).toBeLessThan(limits.replicaApplyTimeoutMs);
      proxy.restore();
      await until(async () => await replicaConnected(primary), 10_000, 'the replica to come back');
      const after = await primaryStore.append('INBOX', msg(102));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
      for (const uid of [...acked, after.uid]) expect((await replica.store.fetch('INBOX', uid)).length).toBeGreaterThan(0);
    } finally {
      await close();
    }
  }, 30_000);

  it("a check or repair client that vanishes (black-holed) ends its session on the primary within a few pings, logged; the primary serves on", async () => {
    const { primaryStore, primary, proxy, replica, logs, close } = await setUp(0);
    try {
      const psk = await readKeyFile(nodeFileSystem, replica.store.replication().role()!.keyFile!);
      for (const hello of [{ kind: 'check', storeId: primaryStore.identity.storeId }, { kind: 'blobs' }]) {
        const client = await connect(proxy.address, psk);
        await client.send({ t: 'hello', epoch: 0, ...hello });
        await client.expect('welcome', 2000);
        proxy.blackhole();
        await until(() => logs.some((line) => /^replication: [\d.]+:\d+: the connection to .*nothing heard for \d+ ms/.test(line)), 3000, `the ${hello.kind} session to end`);
        logs.length = 0;
        client.close();
        proxy.restore();
      }
      await until(async () => await replicaConnected(primary), 10_000, 'the replica back');
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'catch-up');
    } finally {
      await close();
    }
  }, 30_000);

  it('a synchronous replica behind a link slowed to a trickle: the rounds the primary sends it while it syncs stop once its socket holds a round, so memory stays bounded; it catches up', async () => {
    const { primaryStore, proxy, replica, close } = await setUp(1, 'async');
    const original = Connection.prototype.sendUncopied;
    let bufferedMax = 0;
    Connection.prototype.sendUncopied = function (this: Connection, message) {
      const sent = original.call(this, message);
      bufferedMax = Math.max(bufferedMax, this.socket.writableLength);
      return sent;
    };
    try {
      await primaryStore.append('INBOX', msg(0));
      proxy.trickle(8 * 1024, 10); // ~800 KB/s
      const body = (i: number) => Buffer.concat([msg(i), Buffer.alloc(256 * 1024, 'z')]);
      // 24 MiB in batches of 3 MiB, each going out as it is written here: more than the kernel's
      // buffers on both sides of the proxy hold, and more than the link moves meanwhile
      for (let group = 0; group < 8; group++) await Promise.all(Array.from({ length: 12 }, (_, k) => primaryStore.append('INBOX', body(group * 12 + k + 1))));
      expect(bufferedMax).toBeLessThan(limits.replicationTentativeBytesMax + 4 * 1024 * 1024);
      proxy.trickle(0, 0);
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      Connection.prototype.sendUncopied = original;
      await close();
    }
  }, 60_000);

  // Through the daemon, `replica status` showed the replica's lastError only between sessions: a
  // retry that got past its welcome cleared it, so a replica failing at its first round (a full
  // disk), or reconnected and taking nothing yet, showed no error at all most of the time.
  it("a replica's status keeps its last error and its time once a retry is past its welcome, until it takes a round", async () => {
    const lines: string[] = [];
    const { primaryStore, proxy, replica, end } = await pairBehindProxy({ replica: { log: (line) => lines.push(line) } });
    try {
      await primaryStore.append('INBOX', msg(0));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'the first round');
      expect(replica.status().lastError).toBeUndefined();
      lines.length = 0;
      const cutAt = Date.now();
      proxy.cut();
      // the retry's welcome: its connect line is logged just before it (once in the run of failures)
      await until(() => lines.some((line) => /replication: connected to /.test(line)), 10_000, 'the retry past its welcome');
      const status = replica.status();
      expect(status).toMatchObject({ connected: true, lastError: expect.stringMatching(/^UNAVAILABLE: .*(closed the connection|ECONNRESET)/) });
      expect(status.lastErrorAt).toBeGreaterThanOrEqual(cutAt);
      expect(replicaErrorLine(status)).toMatch(/^connected to its primary again, no change taken yet; its last session failed at .*: UNAVAILABLE: /);
      await primaryStore.append('INBOX', msg(1));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'the round after');
      expect(replica.status()).toMatchObject({ lastError: undefined });
      expect(replica.status().lastErrorAt).toBeUndefined();
    } finally {
      await end();
    }
  }, 30_000);

  it('a replica black-holed while the primary sends it a big round: the blocked send is freed within replicaApplyTimeoutMs; back, it catches up', async () => {
    mutable.replicaApplyTimeoutMs = 1500;
    const { primaryStore, primary, proxy, replica, logs, close } = await setUp(0);
    try {
      await primaryStore.append('INBOX', msg(0));
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 10_000, 'the first round');
      proxy.blackhole();
      // more pack bytes than the kernel's buffers on both sides of the proxy hold: the round's
      // frame waits for room that never comes (no FIN, no RST: the kernel keeps the window probed)
      const big = Buffer.alloc(1024 * 1024, 'x');
      for (let i = 0; i < 24; i++) await primaryStore.append('INBOX', Buffer.concat([msg(i + 1), big, Buffer.from(`${i}\r\n`)]));
      const started = performance.now();
      await until(async () => !(await replicaConnected(primary)), 6000, 'the blocked session to end');
      expect(performance.now() - started).toBeLessThan(4000);
      await until(() => logs.some((line) => /replica [0-9a-f]{16} disconnected at seq \d+: .*nothing heard for \d+ ms/.test(line)), 2000, 'the log line');
      proxy.restore();
      await until(() => replica.store.changes.lastSeq === primaryStore.changes.lastSeq, 20_000, 'catch-up');
      expect(await logicalState(replica.store)).toEqual(await logicalState(primaryStore));
    } finally {
      await close();
    }
  }, 40_000);
});

describe('XFER through a black-holed link', () => {
  const saved = limits.replicationPingMs;
  // silent for 0.9 s ends an XFER: longer than a loaded machine takes to decode and commit a 16 MiB frame
  beforeEach(() => { mutable.replicationPingMs = 300; });
  afterEach(() => { mutable.replicationPingMs = saved; });

  const body = (i: number) => Buffer.concat([msg(i), Buffer.alloc(1024 * 1024, 'y'), Buffer.from(`${i}\r\n`)]);

  /** A source with user/bob/INBOX of `count` 1 MiB messages, a target behind the proxy; `onTargetLog` sees the target's lines. */
  async function setUp(count: number, onTargetLog: (line: string) => void = () => undefined) {
    const key = keyFile();
    const a = await Store.open(tmpDir('a'), { create: true });
    const b = await Store.open(tmpDir('b'), { create: true });
    const targetLog: string[] = [];
    const target = await startPrimary(b, { listen: '127.0.0.1:0', keyFile: key, log: (line) => { targetLog.push(line); onTargetLog(line); } });
    const proxy = await TcpFaultProxy.start((await target.status()).port);
    await a.createMailbox('user/bob/INBOX', { owner: 'bob' });
    for (let i = 1; i <= count; i++) await a.append('user/bob/INBOX', body(i));
    const close = async () => { await target.close(); await proxy.close(); await a.close(); await b.close(); };
    return { key, a, b, proxy, targetLog, close };
  }

  /** xferUser, or 'hung' after `ms`. */
  async function xferWithin(run: Promise<unknown>, ms: number): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<string>((resolve) => { timer = setTimeout(() => resolve('hung'), ms); });
    try {
      return await Promise.race([codeOf(run), hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The link back, the XFER run again: the user is at the target alone, each message once and byte for byte. */
  async function expectMovedOnceBack(proxy: TcpFaultProxy, key: string, a: Store, b: Store, count: number): Promise<void> {
    proxy.restore();
    await xferUser(a, { user: 'bob', to: proxy.address, keyFile: key });
    expect((await a.listMailboxes()).map((m) => m.name)).toEqual([]);
    expect(await b.status('user/bob/INBOX')).toMatchObject({ messages: count, uidNext: count + 1 });
    for (const uid of [1, count]) expect((await b.fetch('user/bob/INBOX', uid)).equals(body(uid))).toBe(true);
  }

  it('a target black-holed while messages are copied: UNAVAILABLE within a few pings (a frame waited for room for ever), the user stays at the source; the XFER run again moves each message once', async () => {
    let proxy: TcpFaultProxy | undefined;
    let first = true; // the first XFER only
    const setup = await setUp(24, (line) => { if (/receiving/.test(line) && first) { first = false; proxy!.blackhole(); } });
    proxy = setup.proxy;
    const { key, a, b, targetLog, close } = setup;
    try {
      const started = performance.now();
      const run = xferUser(a, { user: 'bob', to: proxy.address, keyFile: key });
      expect(await xferWithin(run, 8000)).toBe('UNAVAILABLE');
      expect(performance.now() - started).toBeLessThan(5000);
      expect(await a.status('user/bob/INBOX')).toMatchObject({ messages: 24 });
      expect(a.replication().db.getNow(keys.meta('xfer/bob'))).toBeUndefined();
      await until(() => targetLog.some((line) => /nothing heard for \d+ ms/.test(line)), 5000, 'the target to end the session');
      await expectMovedOnceBack(proxy, key, a, b, 24);
    } finally {
      await close();
    }
  }, 60_000);

  it('a connection reset in the middle of a frame of messages, then one reset as the fence goes up: UNAVAILABLE at once each time, the user whole at the source; run again, every message moved once', async () => {
    const { key, a, b, proxy, close } = await setUp(6);
    try {
      proxy.resetAfter('upstream', 3 * 1024 * 1024); // in the first xfer.messages frame
      expect(await xferWithin(xferUser(a, { user: 'bob', to: proxy.address, keyFile: key }), 8000)).toBe('UNAVAILABLE');
      expect(await a.status('user/bob/INBOX')).toMatchObject({ messages: 6 });
      const fenced = xferUser(a, { user: 'bob', to: proxy.address, keyFile: key, log: (line) => { if (/fencing/.test(line)) proxy.reset(); } });
      expect(await xferWithin(fenced, 8000)).toBe('UNAVAILABLE');
      expect((await a.append('user/bob/INBOX', body(7))).uid).toBe(7);
      await expectMovedOnceBack(proxy, key, a, b, 7);
    } finally {
      await close();
    }
  }, 60_000);

  it('a target black-holed under the write fence: UNAVAILABLE within a few pings, the fence lifted (writes go on), nothing removed at the source; run again, the user moves whole', async () => {
    const { key, a, b, proxy, close } = await setUp(3);
    try {
      const run = xferUser(a, { user: 'bob', to: proxy.address, keyFile: key, log: (line) => { if (/fencing/.test(line)) proxy.blackhole(); } });
      expect(await xferWithin(run, 8000)).toBe('UNAVAILABLE');
      expect((await a.append('user/bob/INBOX', body(4))).uid).toBe(4);
      expect(await a.status('user/bob/INBOX')).toMatchObject({ messages: 4 });
      await expectMovedOnceBack(proxy, key, a, b, 4);
    } finally {
      await close();
    }
  }, 60_000);
});
