// The recycled memory of large caller copies (src/store/copy-pool.ts): lent memory never holds two
// live copies, comes back only once the append settled (committed or failed), and whatever the
// memory held before, every acknowledged message reads back as it was given.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { CopyPool } from '../../src/store/copy-pool.js';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { MailstoreError } from '../../src/errors.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const large = (tag: string, size = 200 * 1024) => Buffer.concat([Buffer.from(`Subject: ${tag}\r\n\r\n`), Buffer.alloc(size, tag)]);

describe('CopyPool', () => {
  it('lends power-of-two memory, takes back only what it lent, once, within its bound', () => {
    const pool = new CopyPool();
    expect(pool.recycles(limits.appendCopyRecycleBytesMin - 1)).toBe(false);
    expect(pool.recycles(limits.appendCopyRecycleBytesMin)).toBe(true);
    expect(pool.recycles(limits.appendCopyPoolBytesMax + 1)).toBe(false);
    const source = large('a', 100_000);
    const first = pool.copy(source);
    expect(first.equals(source)).toBe(true);
    expect(first.buffer.byteLength).toBe(2 ** Math.ceil(Math.log2(source.length)));
    const second = pool.copy(source); // while the first is lent: other memory
    expect(second.buffer).not.toBe(first.buffer);
    pool.giveBack(first);
    pool.giveBack(first); // twice: the second is ignored, so the memory is lent once below
    pool.giveBack(Buffer.from(source)); // never lent: ignored
    const third = pool.copy(large('b', 90_000));
    expect(third.buffer).toBe(first.buffer); // recycled
    const fourth = pool.copy(large('c', 90_000));
    expect(fourth.buffer).not.toBe(first.buffer);
    expect(third.equals(large('b', 90_000))).toBe(true);
  });

  it('keeps no more than appendCopyPoolBytesMax free', () => {
    const pool = new CopyPool();
    const size = limits.appendCopyPoolBytesMax / 2; // a power of two: fills half the bound
    const lent = [pool.copy(Buffer.alloc(size, 1)), pool.copy(Buffer.alloc(size, 2)), pool.copy(Buffer.alloc(size, 3))];
    for (const copy of lent) pool.giveBack(copy);
    const again = [pool.copy(Buffer.alloc(size, 4)), pool.copy(Buffer.alloc(size, 5)), pool.copy(Buffer.alloc(size, 6))];
    const reused = again.filter((copy) => lent.some((old) => old.buffer === copy.buffer));
    expect(reused).toHaveLength(2);
  });
});

describe('appends of large messages into recycled memory', () => {
  it('a caller reusing its buffer, appends in flight together and one after another: each reads back as given', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('INBOX');
    const shared = Buffer.alloc(300 * 1024);
    const originals: Buffer[] = [];
    const acked: { uid: number; hash: string }[] = [];
    for (let round = 0; round < 6; round++) {
      const pending = [];
      for (let i = 0; i < 3; i++) { // three in flight at once: three lent copies
        const original = large(`r${round}m${i}`, 100_000 + 50_000 * i);
        originals.push(original);
        const view = shared.subarray(0, original.length);
        original.copy(view);
        pending.push(store.append('INBOX', view));
        shared.fill(0x58); // reused at once
      }
      acked.push(...await Promise.all(pending));
    }
    for (const [i, result] of acked.entries()) {
      expect(result.hash).toBe(hashBytes(originals[i]).toString('hex'));
      expect((await store.fetch('INBOX', result.uid)).equals(originals[i])).toBe(true);
    }
    await store.close();
  });

  it('a failed append (NOT_FOUND, EIO writing the pack) gives its memory back; the next append and everything acknowledged read back intact', async () => {
    const dir = tmpDir();
    const ffs = new FaultFileSystem({ seed: 7 });
    const store = await Store.open(dir, { create: true, fs: ffs });
    await store.createMailbox('INBOX');
    const first = large('first');
    const { uid: firstUid } = await store.append('INBOX', first);
    const missing = await store.append('Nowhere', large('lost')).catch((error: unknown) => error);
    expect((missing as MailstoreError).code).toBe('NOT_FOUND');
    await ffs.startRecording(dir, { exclude: ['index'] });
    ffs.injectAt((op) => op.kind === 'write' && op.path.startsWith(join(dir, 'packs')), 'EIO');
    const failed = await store.append('INBOX', large('failed')).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(MailstoreError);
    expect((failed as MailstoreError).code).toBe('IO');
    ffs.clear();
    const next = large('next');
    const { uid: nextUid } = await store.append('INBOX', next);
    expect((await store.fetch('INBOX', firstUid)).equals(first)).toBe(true);
    expect((await store.fetch('INBOX', nextUid)).equals(next)).toBe(true);
    expect((await store.status('INBOX')).messages).toBe(2);
    await store.close();
  });
});
