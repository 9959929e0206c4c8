// Reads of packs in the bucket through the block cache (src/objstore/remote-packs.ts), against a
// fake bucket that counts its ranged GETs: single reads are cached and bounded; a pass over a pack
// (a read of two blocks or more: scrub, compaction, readMessages' runs) is fetched a block at a time
// and not cached, so it neither evicts what single fetches reuse nor holds the cache full (the bench
// step tier's RSS); a missing object is CORRUPT, a missing bucket UNMOUNTED, with the URL.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { RemotePacks } from '../../src/objstore/remote-packs.js';
import type { Bucket } from '../../src/objstore/s3.js';
import { codeOf } from '../helpers/errors.js';

const BLOCK = limits.objectCacheBlockBytes;

function fakeBucket(object: Buffer, trouble?: 'gone' | 'no-bucket'): { bucket: Bucket; gets: [number, number][] } {
  const gets: [number, number][] = [];
  const bucket = {
    urlOf: (key: string) => `http://rgw.test/b/${key}`,
    getRange: async (key: string, offset: number, length: number) => {
      gets.push([offset, length]);
      if (trouble) throw new MailstoreError('NOT_FOUND', `no object http://rgw.test/b/${key}`);
      return Buffer.from(object.subarray(offset, offset + length));
    },
    check: async () => { if (trouble === 'no-bucket') throw new MailstoreError('UNMOUNTED', 'the bucket http://rgw.test/b does not exist'); },
  } as unknown as Bucket;
  return { bucket, gets };
}

function remoteOf(object: Buffer, trouble?: 'gone' | 'no-bucket') {
  const { bucket, gets } = fakeBucket(object, trouble);
  const remote = new RemotePacks(bucket);
  remote.set(7, { k: 'store/packs/00000007.pack', b: object.length, d: '' });
  return { remote, gets, handle: remote.handle(7) };
}

describe('remote pack reads', () => {
  it('single reads are cached a block at a time; a pass over the pack is not cached, and exact', async () => {
    const object = randomBytes(5 * BLOCK + 1234);
    const { remote, gets, handle } = remoteOf(object);
    const small = Buffer.alloc(100);
    expect(await handle.read(small, 0, 100, 10)).toBe(100);
    expect(small.equals(object.subarray(10, 110))).toBe(true);
    await handle.read(small, 0, 100, 5000); // same block: no GET
    expect(gets).toEqual([[0, BLOCK]]);
    expect(remote.cachedBytes).toBe(BLOCK);
    // a pass: every block after the cached one fetched once, none of them kept
    const whole = Buffer.alloc(object.length);
    expect(await handle.read(whole, 0, whole.length, 0)).toBe(object.length);
    expect(whole.equals(object)).toBe(true);
    expect(gets.slice(1)).toEqual([[BLOCK, BLOCK], [2 * BLOCK, BLOCK], [3 * BLOCK, BLOCK], [4 * BLOCK, BLOCK], [5 * BLOCK, 1234]]);
    expect(remote.cachedBytes).toBe(BLOCK);
    // a pass that starts inside a block and ends past the object's end
    const tail = Buffer.alloc(3 * BLOCK);
    expect(await handle.read(tail, 0, tail.length, 3 * BLOCK + 7)).toBe(2 * BLOCK + 1234 - 7);
    expect(tail.subarray(0, 2 * BLOCK + 1227).equals(object.subarray(3 * BLOCK + 7))).toBe(true);
    expect(remote.cachedBytes).toBe(BLOCK);
  });

  it('the cache stays within limits.objectCacheBytes, least recently used evicted', async () => {
    const blocks = limits.objectCacheBytes / BLOCK + 4;
    const object = Buffer.alloc(blocks * BLOCK, 7);
    const { remote, gets, handle } = remoteOf(object);
    const one = Buffer.alloc(1);
    for (let i = 0; i < blocks; i++) await handle.read(one, 0, 1, i * BLOCK);
    expect(remote.cachedBytes).toBe(limits.objectCacheBytes);
    const before = gets.length;
    await handle.read(one, 0, 1, (blocks - 1) * BLOCK); // the newest: cached
    await handle.read(one, 0, 1, 0); // the oldest: evicted, fetched again
    expect(gets.length).toBe(before + 1);
  });

  it('concurrent reads of one block share its GET and count it once: the cache keeps working after them', async () => {
    const object = randomBytes(limits.objectCacheBytes + 4 * BLOCK);
    const { remote, gets, handle } = remoteOf(object);
    const read = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const buffer = Buffer.alloc(100);
      await handle.read(buffer, 0, 100, 1000 * i);
      return buffer;
    }));
    read.forEach((buffer, i) => expect(buffer.equals(object.subarray(1000 * i, 1000 * i + 100))).toBe(true));
    expect(gets).toEqual([[0, BLOCK]]);
    expect(remote.cachedBytes).toBe(BLOCK);
    // the cache still holds limits.objectCacheBytes of blocks read one by one, not one block
    const one = Buffer.alloc(1);
    for (let i = 0; i < limits.objectCacheBytes / BLOCK; i++) await handle.read(one, 0, 1, i * BLOCK);
    expect(remote.cachedBytes).toBe(limits.objectCacheBytes);
    const before = gets.length;
    for (let i = 0; i < limits.objectCacheBytes / BLOCK; i++) await handle.read(one, 0, 1, i * BLOCK);
    expect(gets.length).toBe(before); // every one a hit
  });

  it('a missing object is CORRUPT naming its URL, a missing bucket UNMOUNTED, for single reads and passes', async () => {
    const object = randomBytes(3 * BLOCK);
    for (const length of [10, 3 * BLOCK]) {
      const gone = remoteOf(object, 'gone').handle;
      const error = await gone.read(Buffer.alloc(length), 0, length, 0).catch((e: unknown) => e);
      expect(await codeOf(Promise.reject(error))).toBe('CORRUPT');
      expect((error as Error).message).toContain('http://rgw.test/b/store/packs/00000007.pack');
      const noBucket = remoteOf(object, 'no-bucket').handle;
      expect(await codeOf(noBucket.read(Buffer.alloc(length), 0, length, 0))).toBe('UNMOUNTED');
    }
  });
});
