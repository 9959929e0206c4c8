// readMessages with lendBodies: the reader reads runs into a few buffers it reuses, so a lent body
// is valid only until the consumer asks for the next message. These tests fail if a buffer is read
// into again while a consumer can still see a body in it, or if a body that was given (no
// lendBodies, or over the daemon's socket) is ever overwritten.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Store as RealStore, MessageInfo } from '../../src/store/store.js';
import { PackedStore as Store } from '../helpers/packed.js';
import { MailstoreError } from '../../src/errors.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { limits } from '../../src/limits.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { internalsOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { body } from './compact-helpers.js';
import { poolStore, readyPool } from './read-pool-helpers.js';

const saved = { ...limits };
afterEach(() => { Object.assign(limits, saved); });

/**
 * 800 bodies of 1-20 KB (many runs and groups, several buffers in flight) and a few bigger than
 * a run (a buffer of their own size), each byte of one message the same.
 */
function bodies(): Buffer[] {
  return Array.from({ length: 800 }, (_, i) => {
    const size = i % 300 === 11 ? 1536 * 1024 : 1000 + ((i * 7919) % 19_000);
    return Buffer.concat([Buffer.from(`Subject: m ${i + 1}\r\n\r\n`), Buffer.alloc(size, 97 + (i % 26))]);
  });
}

/** INBOX in pack order; Reversed the same blobs appended last to first, so a run's messages come out far apart. */
async function lendingStore(all: Buffer[]): Promise<RealStore> {
  const store = await Store.open(tmpDir('read-lend'), { create: true });
  await store.createMailbox('INBOX');
  await store.createMailbox('Reversed');
  const reversed = [...all].reverse();
  for (let i = 0; i < all.length; i += 200) {
    await store.appendBatch('INBOX', all.slice(i, i + 200).map((bytes) => ({ bytes })));
  }
  for (let i = 0; i < all.length; i += 200) await store.appendBatch('Reversed', reversed.slice(i, i + 200).map((bytes) => ({ bytes })));
  return store;
}

/**
 * Reads `mailbox` lending, and while it holds each body lets the read-ahead run (several turns)
 * before checking the body still hashes to its message's hash. Returns how many bodies of earlier
 * messages no longer held their bytes at the end: their buffers were read into again.
 */
async function readLending(store: RealStore, mailbox: string, expected: (info: MessageInfo) => Buffer, onCorrupt?: (info: MessageInfo, error: MailstoreError) => void): Promise<{ read: number; overwritten: number }> {
  const earlier: { body: Buffer; copy: Buffer }[] = [];
  let read = 0;
  for await (const { info, body: lent } of store.readMessages(mailbox, { lendBodies: true, onCorrupt })) {
    for (let turn = 0; turn < 2; turn++) await nextTurn();
    expect(hashBytes(lent).toString('hex'), `${mailbox} uid ${info.uid} while lent`).toBe(info.hash);
    expect(lent.equals(expected(info)), `${mailbox} uid ${info.uid}`).toBe(true);
    earlier.push({ body: lent, copy: Buffer.from(lent) });
    read++;
  }
  return { read, overwritten: earlier.filter(({ body: lent, copy }) => !lent.equals(copy)).length };
}

/** A store over a FaultFileSystem (hashed in the reading thread) with `all` in INBOX, `batch` a batch. */
async function faultableStore(name: string, seed: number, all: Buffer[], batch: number): Promise<{ dir: string; ffs: FaultFileSystem; store: RealStore }> {
  const dir = tmpDir(name);
  const ffs = new FaultFileSystem({ seed });
  const store = await Store.open(dir, { fs: ffs, create: true, readHashThreads: 0 });
  await store.createMailbox('INBOX');
  for (let i = 0; i < all.length; i += batch) await store.appendBatch('INBOX', all.slice(i, i + batch).map((bytes) => ({ bytes })));
  return { dir, ffs, store };
}

/** A lending pass of INBOX drained; what it threw (undefined when nothing did). */
async function drainedError(store: RealStore): Promise<unknown> {
  return (async () => { for await (const _ of store.readMessages('INBOX', { lendBodies: true })) { /* drained */ } })().then(() => undefined, (e: unknown) => e);
}

/**
 * A lending pass of INBOX that a fault stops: every message it yields exact, the first ones and in
 * order, none skipped before the failure, and not all of them. Returns the failure.
 */
async function failingPass(store: RealStore, all: Buffer[]): Promise<MailstoreError> {
  const seen: number[] = [];
  const error = await (async () => {
    for await (const { info, body: lent } of store.readMessages('INBOX', { lendBodies: true })) {
      expect(lent.equals(all[info.uid - 1]), `uid ${info.uid}`).toBe(true);
      seen.push(info.uid);
    }
  })().then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect(seen.length).toBeGreaterThan(0);
  expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
  expect(seen.length).toBeLessThan(all.length);
  return error as MailstoreError;
}

describe('readMessages lendBodies', () => {
  it('a lent body holds its bytes until the consumer asks for the next message; then its buffer is read into again', async () => {
    const all = bodies();
    const store = await lendingStore(all);
    for (const mailbox of ['INBOX', 'Reversed']) {
      const uidOf = (info: MessageInfo) => (mailbox === 'INBOX' ? info.uid : all.length + 1 - info.uid);
      const { read, overwritten } = await readLending(store, mailbox, (info) => all[uidOf(info) - 1]);
      expect(read).toBe(all.length);
      expect(overwritten, 'buffers were reused (else this test proves nothing)').toBeGreaterThan(all.length / 8);
    }
    await store.close();
  });

  it('bodies given without lendBodies stay intact while a lending read of the same mailbox runs beside them', async () => {
    const all = bodies();
    const store = await lendingStore(all);
    const given: { info: MessageInfo; body: Buffer }[] = [];
    const keeping = (async () => { for await (const m of store.readMessages('INBOX')) { given.push(m); await nextTurn(); } })();
    const lending = readLending(store, 'INBOX', (info) => all[info.uid - 1]);
    await Promise.all([keeping, lending]);
    expect((await lending).overwritten).toBeGreaterThan(0);
    expect(given.length).toBe(all.length);
    for (const { info, body: kept } of given) expect(kept.equals(all[info.uid - 1]), `uid ${info.uid}`).toBe(true);
    await store.close();
  });

  it('on the hash worker: runs come back from it into the reused buffers, every lent body exact', async () => {
    limits.readTurnBytes = 64 * 1024; // many runs, several on the worker at once
    const all = Array.from({ length: 600 }, (_, i) => body(i + 1, 2000 + (i % 13) * 900));
    const { store } = await poolStore(all, 100);
    await readyPool(store);
    const { read, overwritten } = await readLending(store, 'INBOX', (info) => all[info.uid - 1]);
    expect(read).toBe(all.length);
    expect(overwritten).toBeGreaterThan(0);
    await store.close();
  });

  it('a group is read into one buffer, and the next groups into the same few: as many in use at once as groups in flight', async () => {
    limits.readLentBatchBytes = 256 * 1024; // ~35 groups of 600 bodies
    limits.readLentInThreadBatchBytes = 256 * 1024; // and as many hashed here
    limits.readLentBytes = 320 * 1024;
    limits.readTurnBytes = 64 * 1024; // several runs, and batches of them, a group
    const all = Array.from({ length: 600 }, (_, i) => body(i + 1, 2000 + (i % 13) * 2000));
    const { store } = await poolStore(all, 100);
    await readyPool(store);
    for (const hashThreads of ['pool', 'here']) {
      if (hashThreads === 'here') limits.readPoolMailboxBytesMin = Number.MAX_SAFE_INTEGER;
      const buffers = new Set<ArrayBufferLike>();
      let changes = 0, last: ArrayBufferLike | undefined;
      for await (const { info, body: lent } of store.readMessages('INBOX', { lendBodies: true })) {
        expect(lent.equals(all[info.uid - 1]), `uid ${info.uid}`).toBe(true);
        // shared memory: a hash worker reads it where it is, nothing is transferred and detached
        expect(lent.buffer, hashThreads).toBeInstanceOf(SharedArrayBuffer);
        buffers.add(lent.buffer);
        if (lent.buffer !== last) changes++;
        last = lent.buffer;
      }
      expect(changes, `${hashThreads}: groups read (else this test proves nothing)`).toBeGreaterThan(20);
      expect(buffers.size, hashThreads).toBeLessThanOrEqual(3);
    }
    await store.close();
  });

  it('without a hash worker: groups of limits.readLentInThreadBatchBytes, so a pass reads into a few small buffers (cached, few pages), not 8 MiB ones; every body exact', async () => {
    const store = await Store.open(tmpDir('read-lend'), { create: true, readHashThreads: 0 });
    await store.createMailbox('INBOX');
    const all = Array.from({ length: 500 }, (_, i) => body(i + 1, 6000 + ((i * 37) % 4000))); // ~5 MB of SpamAssassin-sized messages
    await store.appendBatch('INBOX', all.map((bytes) => ({ bytes })));
    const buffers = new Set<ArrayBufferLike>();
    let reach = 0; // how far into its group's buffer a body ends
    for await (const { info, body: lent } of store.readMessages('INBOX', { lendBodies: true })) {
      expect(lent.equals(all[info.uid - 1]), `uid ${info.uid}`).toBe(true);
      buffers.add(lent.buffer);
      reach = Math.max(reach, lent.byteOffset + lent.length);
    }
    // a group's bodies and their record headers (its runs read over no gaps here)
    expect(reach).toBeGreaterThan(limits.readLentInThreadBatchBytes / 2);
    expect(reach).toBeLessThanOrEqual(limits.readLentInThreadBatchBytes + 100 * RECORD_HEADER_BYTES);
    expect(buffers.size).toBeLessThanOrEqual(3);
    await store.close();
  });

  it('a damaged body: CORRUPT for it alone (reported with onCorrupt), every other lent body exact, nothing lost', async () => {
    const all = bodies();
    const dir = tmpDir('read-lend-damage');
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', all.map((bytes) => ({ bytes })));
    const [name] = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));
    const pack = readFileSync(join(dir, 'packs', name));
    pack[pack.indexOf('Subject: m 500\r\n') + 20] ^= 0x01;
    writeFileSync(join(dir, 'packs', name), pack);
    await internalsOf(store).packs.forgetReadHandles();
    const reported: [number, string][] = [];
    const { read } = await readLending(store, 'INBOX', (info) => all[info.uid - 1], (info, error) => reported.push([info.uid, error.code]));
    expect(reported).toEqual([[500, 'CORRUPT']]);
    expect(read).toBe(all.length - 1);
    const error = await drainedError(store);
    expect((error as MailstoreError).code).toBe('CORRUPT');
    pack[pack.indexOf('Subject: m 500\r\n') + 20] ^= 0x01; // put back: every message is still there
    writeFileSync(join(dir, 'packs', name), pack);
    await internalsOf(store).packs.forgetReadHandles();
    expect((await readLending(store, 'INBOX', (info) => all[info.uid - 1])).read).toBe(all.length);
    await store.close();
  });

  it('EIO on the pack mid-pass: the read stops with IO after every earlier message exact, lent buffers are never handed out half-read, and the next read has everything', async () => {
    const all = bodies();
    const { dir, ffs, store } = await faultableStore('read-lend-eio', 0x1e4d, all, 200);
    await internalsOf(store).packs.forgetReadHandles();
    let preads = 0;
    ffs.injectAt((op) => op.kind === 'read' && op.path?.includes(`${join(dir, 'packs')}`) === true && ++preads === 12, 'EIO');
    const error = await failingPass(store, all);
    expect(preads).toBeGreaterThanOrEqual(12);
    expect(error.code).toBe('IO');
    // a disk that keeps failing: IO at once, again
    ffs.failAll('EIO', { ops: ['read'], pathPrefix: join(dir, 'packs') });
    const again = await drainedError(store);
    expect((again as MailstoreError).code).toBe('IO');
    ffs.clear();
    expect((await readLending(store, 'INBOX', (info) => all[info.uid - 1])).read).toBe(all.length);
    await store.close();
  });

  it('EACCES on a pack opened mid-pass (its permissions changed under a running server): ACCESS after every earlier message exact and in order; once readable, the next read has everything', async () => {
    const all = bodies();
    limits.packBytesMax = 2 * 1024 * 1024; // several packs: a pass opens each as it reaches it
    const { dir, ffs, store } = await faultableStore('read-lend-eacces', 0xacce5, all, 50);
    const packs = readdirSync(join(dir, 'packs')).filter((name) => name.endsWith('.pack')).sort();
    expect(packs.length).toBeGreaterThan(3);
    await internalsOf(store).packs.forgetReadHandles(); // a server that reopens them, as after a restart or a handle's eviction
    const third = join(dir, 'packs', packs[2]);
    ffs.failAll('EACCES', { ops: ['read'], pathPrefix: third });
    const error = await failingPass(store, all);
    expect(error.code).toBe('ACCESS');
    expect(error.message).toContain(packs[2]);
    ffs.clear();
    expect((await readLending(store, 'INBOX', (info) => all[info.uid - 1])).read).toBe(all.length); // nothing lost
    await store.close();
  });

  it('lendBodies must be a boolean', async () => {
    const store = await Store.open(tmpDir('read-lend-invalid'), { create: true });
    await store.createMailbox('INBOX');
    const error = await (async () => { for await (const _ of store.readMessages('INBOX', { lendBodies: 'yes' as never })) { /* none */ } })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('INVALID');
    await store.close();
  });
});
