// Shared by the replication tests: key files, stores, a primary with a replica, waiting, and comparing two stores' state.
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { startPrimary, type PrimaryHandle, type PrimaryOptions } from '../../src/replication/primary.js';
import { startReplica, type ReplicaHandle, type ReplicaOptions } from '../../src/replication/replica.js';
import { checkReplica } from '../../src/replication/check.js';
import { tmpDir } from '../helpers/tmp.js';
import { TcpFaultProxy } from '../helpers/tcp-fault-proxy.js';

export const msg = (i: number, pad = 0) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i} ${'x'.repeat(pad)}\r\n`);

export function keyFile(dir = tmpDir('key'), secret = randomBytes(32).toString('hex')): string {
  const path = join(dir, `key-${randomBytes(4).toString('hex')}`);
  writeFileSync(path, `${secret}\n`);
  chmodSync(path, 0o600);
  return path;
}

export const quiet = () => undefined;

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export { codeOf } from '../helpers/errors.js';

/** Every mailbox with its status and every message's metadata: what a replica must equal. */
export async function logicalState(store: Store): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const { name } of await store.listMailboxes()) {
    const messages = [];
    for await (const m of store.messages(name)) messages.push(m);
    out[name] = { status: await store.status(name), messages };
  }
  return out;
}

/** The packs of two stores are byte-identical. */
export function samePacks(a: string, b: string): void {
  const names = readdirSync(join(a, 'packs')).filter((n) => n.endsWith('.pack'));
  expect(readdirSync(join(b, 'packs')).filter((n) => n.endsWith('.pack'))).toEqual(names);
  for (const n of names) expect(readFileSync(join(b, 'packs', n)).equals(readFileSync(join(a, 'packs', n)))).toBe(true);
}

/** Closes a replica, its primary and the primary's store, then what stood between them (a fault proxy). */
export async function closeReplication(replica: ReplicaHandle, primary: PrimaryHandle, primaryStore: Store, between?: { close(): Promise<void> }): Promise<void> {
  await replica.close();
  await primary.close();
  await primaryStore.close();
  await between?.close();
}

/** A primary and its replica (startPair). */
export interface Pair {
  key: string;
  primaryStore: Store;
  primary: PrimaryHandle;
  /** The primary's replication address (host:port). */
  address: string;
  replicaDir: string;
  /** What the replica was started with (a test that restarts it starts it so again). */
  replicaOptions: ReplicaOptions;
  /** The replica; a test that restarts it puts the new one here, for close(). */
  replica: ReplicaHandle;
  /** checkReplica finds the replica identical to the primary. */
  expectIdentical(): Promise<void>;
  /** Closes the replica, the primary and its store. */
  close(): Promise<void>;
}

/** How a pair is made: the primary's store (`open`, default a new Store; INBOX created, then `fill`), its options and the replica's. */
export interface PairOptions {
  open?: (dir: string) => Promise<Store>;
  fill?: (store: Store) => Promise<void>;
  primary?: Omit<PrimaryOptions, 'listen' | 'keyFile'>;
  replica?: Omit<ReplicaOptions, 'primary' | 'keyFile'>;
}

/** A primary listening on 127.0.0.1 over a store made as `options` say; quiet unless they give a log. */
async function listeningPrimary(options: PairOptions): Promise<{ key: string; primaryStore: Store; primary: PrimaryHandle; port: number }> {
  const key = keyFile();
  const primaryStore = await (options.open ?? ((dir) => Store.open(dir, { create: true })))(tmpDir('primary'));
  await primaryStore.createMailbox('INBOX');
  await options.fill?.(primaryStore);
  const primary = await startPrimary(primaryStore, { listen: '127.0.0.1:0', keyFile: key, log: quiet, ...options.primary });
  return { key, primaryStore, primary, port: (await primary.status()).port };
}

/** A replica in a new directory of the primary at `address`; quiet unless the options give a log. */
function replicaOptionsFor(address: string, key: string, options: PairOptions): ReplicaOptions {
  return { primary: address, keyFile: key, log: quiet, ...options.replica };
}

/** A test's `finally`: closes each in order (a replica before its primary, a primary's listener before its store); undefined ones skipped. */
export async function closeInOrder(...handles: ({ close(): Promise<unknown> } | undefined)[]): Promise<void> {
  for (const handle of handles) await handle?.close();
}

/**
 * A primary listening on 127.0.0.1 (its store made by `open`, default a new Store; INBOX created,
 * then `fill` before it listens) and a replica of it in a new directory; both quiet unless the
 * options give a log.
 */
export async function startPair(options: PairOptions = {}): Promise<Pair> {
  const { key, primaryStore, primary, port } = await listeningPrimary(options);
  const address = `127.0.0.1:${port}`;
  const replicaDir = join(tmpDir('replica'), 'r');
  const replicaOptions = replicaOptionsFor(address, key, options);
  const pair: Pair = {
    key, primaryStore, primary, address, replicaDir, replicaOptions,
    replica: await startReplica(replicaDir, replicaOptions),
    expectIdentical: async () => {
      expect((await checkReplica(pair.replica.store, { primary: address, keyFile: key })).identical).toBe(true);
    },
    close: async () => {
      await pair.replica.close();
      await primary.close();
      await primaryStore.close();
    },
  };
  return pair;
}

/** A primary, a TCP fault proxy in front of it and a replica that reaches it only through the proxy (pairBehindProxy). */
export interface PairBehindProxy {
  key: string;
  primaryStore: Store;
  primary: PrimaryHandle;
  proxy: TcpFaultProxy;
  replicaDir: string;
  replica: ReplicaHandle;
  /** The primary's death (its listener closed, then its store), once: end() does not close them again. */
  closePrimary(): Promise<void>;
  /** Closes the replica, the primary and its store (unless closePrimary did), then the proxy. */
  end(): Promise<void>;
}

/**
 * The set-up of the tests that cut, stall or black-hole the link between a primary and its
 * replica: a primary made as startPair makes it, a TcpFaultProxy in front of its port, and a
 * replica in a new directory that knows the primary by the proxy's address only.
 */
export async function pairBehindProxy(options: PairOptions & { beforeReplica?: (proxy: TcpFaultProxy) => void } = {}): Promise<PairBehindProxy> {
  const { key, primaryStore, primary, port } = await listeningPrimary(options);
  const proxy = await TcpFaultProxy.start(port);
  options.beforeReplica?.(proxy); // faults the replica's first connection meets
  const replicaDir = join(tmpDir('replica'), 'r');
  const replica = await startReplica(replicaDir, replicaOptionsFor(proxy.address, key, options));
  let primaryClosed: Promise<void> | undefined;
  const closePrimary = () => (primaryClosed ??= primary.close().then(() => primaryStore.close()));
  return {
    key, primaryStore, primary, proxy, replicaDir, replica, closePrimary,
    end: async () => {
      await replica.close();
      await closePrimary();
      await proxy.close();
    },
  };
}
