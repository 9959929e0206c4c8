// A process out of file descriptors (EMFILE: ulimit -n, a daemon with many clients and packs) is
// the machine's trouble, not a bug: every call that needs a new descriptor fails with a code the
// caller can act on (IO), the store keeps serving what needs none, and nothing is lost.
import { describe, expect, it, onTestFinished } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';
import { internalsOf } from '../helpers/internals.js';
import { limits } from '../../src/limits.js';

/** The FileSystem calls that take a new file descriptor (the rest work on ones already open). */
const NEEDS_DESCRIPTOR = new Set(['open', 'readFile', 'readdir', 'holdDirectory', 'syncDir', 'removeTree']);

/** nodeFileSystem, with every call that needs a new descriptor failing EMFILE while `exhausted`. */
function descriptorLimited(): { fs: FileSystem; state: { exhausted: boolean } } {
  const state = { exhausted: false };
  const fs = new Proxy(nodeFileSystem, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (state.exhausted && NEEDS_DESCRIPTOR.has(String(name))) {
          return Promise.reject(Object.assign(new Error(`EMFILE: too many open files, ${String(name)} '${String(args[0])}'`), { code: 'EMFILE', errno: -24, syscall: String(name), path: args[0] }));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { fs, state };
}

/** What a call came to: 'ok', or the MailstoreError code (anything else is a bug: the test fails). */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return 'ok';
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(MailstoreError);
    return (error as MailstoreError).code;
  }
}

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\n${'body '.repeat(20_000)}${i}\r\n`);

describe('out of file descriptors (EMFILE)', () => {
  it('stats, scrub, snapshot, compact, consumers and reads of a closed pack fail IO (never a bug); afterwards all works, nothing lost', async () => {
    const dir = tmpDir();
    const { fs, state } = descriptorLimited();
    let store = await Store.open(dir, { create: true, fs });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 3; i++) await store.append('INBOX', msg(i));
    await store.close();
    store = await Store.open(dir, { fs }); // no pack open yet
    state.exhausted = true;
    const outcomes = {
      stats: await outcome(() => store.stats()),
      scrub: await outcome(() => scrub(store)),
      snapshot: await outcome(() => store.snapshot()),
      compact: await outcome(() => store.compact({ graceMs: 0 })),
      consumers: await outcome(() => store.changes.consumers()),
      fetch: await outcome(() => store.fetch('INBOX', 1)),
    };
    expect(outcomes).toEqual({ stats: 'IO', scrub: 'IO', snapshot: 'IO', compact: 'IO', consumers: 'IO', fetch: 'IO' });
    state.exhausted = false;
    for (let i = 1; i <= 3; i++) expect((await store.fetch('INBOX', i)).equals(msg(i))).toBe(true);
    expect((await store.stats()).messages).toBe(3);
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  });
});

/** nodeFileSystem whose open fails EMFILE while `cap` files it opened are still open (a process at its ulimit). */
function descriptorCapped(cap: number): FileSystem {
  let open = 0;
  return new Proxy(nodeFileSystem, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (name !== 'open') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      return async (path: string, mode: Parameters<FileSystem['open']>[1]) => {
        if (open >= cap) throw Object.assign(new Error(`EMFILE: too many open files, open '${path}'`), { code: 'EMFILE', errno: -24, syscall: 'open', path });
        const handle = await target.open(path, mode);
        open++;
        const close = handle.close.bind(handle);
        handle.close = async () => { open--; await close(); };
        return handle;
      };
    },
  });
}

describe('pack read handles', () => {
  const packed = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'p'.repeat(5000)}${i}\r\n`);

  async function manyPacks(dir: string, fs?: FileSystem): Promise<Store> {
    // each message a pack of its own: 30 packs
    const store = await Store.open(dir, { create: true, packBytesMax: 4096, inlineBodyBytesMax: 0, ...(fs ? { fs } : {}) });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 30; i++) await store.append('INBOX', packed(i));
    return store;
  }

  it('are kept open up to limits.packReadHandlesMax: reading every pack of a big store does not hold a descriptor for each', async () => {
    const tunable = limits as { packReadHandlesMax: number };
    const saved = tunable.packReadHandlesMax;
    tunable.packReadHandlesMax = 4;
    try {
      const store = await manyPacks(tmpDir());
      for (let i = 1; i <= 30; i++) expect((await store.fetch('INBOX', i)).equals(packed(i))).toBe(true);
      const all = await Promise.all(Array.from({ length: 30 }, (_, i) => store.fetch('INBOX', i + 1))); // at once: the handles in use stay open
      all.forEach((body, i) => expect(body.equals(packed(i + 1))).toBe(true));
      const cached = (internalsOf(store).packs as unknown as { readHandles: Map<number, unknown> }).readHandles;
      expect(cached.size).toBeLessThanOrEqual(4);
      await store.close();
    } finally {
      tunable.packReadHandlesMax = saved;
    }
  });

  it('a process at its descriptor limit reads on: the packs no reader is inside let their descriptors go', async () => {
    const dir = tmpDir();
    await (await manyPacks(dir)).close();
    // a limit under what the bound leaves room for (12 descriptors in all, 4 cached packs)
    const tunable = limits as { packReadHandlesMax: number };
    const saved = tunable.packReadHandlesMax;
    tunable.packReadHandlesMax = 4;
    onTestFinished(() => { tunable.packReadHandlesMax = saved; });
    const store = await Store.open(dir, { fs: descriptorCapped(12) });
    for (let i = 1; i <= 30; i++) expect((await store.fetch('INBOX', i)).equals(packed(i))).toBe(true);
    // many readers at once: one reader's retry waits for the descriptors another's is letting go
    const all = await Promise.all(Array.from({ length: 30 }, (_, i) => store.fetch('INBOX', 30 - i)));
    all.forEach((body, i) => expect(body.equals(packed(30 - i))).toBe(true));
    let read = 0;
    for await (const { info, body } of store.readMessages('INBOX')) expect(body.equals(packed(info.uid)), String(++read)).toBe(true);
    expect(read).toBe(30);
    expect((await scrub(store)).findings).toEqual([]);
    await store.close();
  });
});
