// A process out of file descriptors (EMFILE: ulimit -n, a daemon with many clients and packs) is
// the machine's trouble, not a bug: every call that needs a new descriptor fails with a code the
// caller can act on (IO), the store keeps serving what needs none, and nothing is lost.
import { describe, expect, it } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { tmpDir } from '../helpers/tmp.js';

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
