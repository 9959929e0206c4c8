// One-sync delivery (issue 12 point 4): a commit with nothing but its journal record to make
// durable (an inline delivery) flushes only the journal — through the thread pool by default, or
// in one in-thread call (FileHandle.writevDurable, limits.journalInThreadFlushBytesMax) — and its
// index batch merges with the next ones or queues behind the one being written instead of making
// the next commit wait for it (IndexDb.writeBehind, deferred). Nothing acknowledged is invisible.
import { describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { IndexDb } from '../../src/index/index-db.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/fs/filesystem.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { internalsOf } from '../helpers/internals.js';

const msg = (text: string, bytes = 0) => Buffer.concat([Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`), Buffer.alloc(bytes, 0x61)]);

/** Holds the first LevelDB batch `db` writes until the returned function is called; each batch's number goes to `order` as it is written. */
function holdFirstWrite(db: IndexDb, order: number[] = []): () => void {
  type Chained = { _write(options?: unknown): Promise<void> };
  const level = (db as unknown as { db: { batch(): Chained } }).db;
  const realBatch = level.batch.bind(level);
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  let n = 0;
  level.batch = () => {
    const batch = realBatch();
    const which = n++;
    const write = batch._write.bind(batch);
    batch._write = async (options) => { if (which === 0) await held; order.push(which); return write(options); };
    return batch;
  };
  return release;
}

/** Counts, per directory (journal, packs), the two ways a file is flushed. */
function countingFs(): { fs: FileSystem; flushes: Map<string, { sync: number; writevDurable: number }> } {
  const flushes = new Map<string, { sync: number; writevDurable: number }>();
  const count = (path: string, how: 'sync' | 'writevDurable') => {
    const dir = path.split('/').at(-2)!;
    const entry = flushes.get(dir) ?? { sync: 0, writevDurable: 0 };
    entry[how]++;
    flushes.set(dir, entry);
  };
  const wrap = (handle: FileHandle): FileHandle => new Proxy(handle, {
    get(target, property) {
      if (property === 'sync') return () => { count(target.path, 'sync'); return target.sync(); };
      if (property === 'writevDurable') return (parts: Buffer[], at: number) => { count(target.path, 'writevDurable'); return target.writevDurable(parts, at); };
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const fs = new Proxy(nodeFileSystem, {
    get(target, property) {
      if (property === 'open') return async (path: string, mode: OpenMode) => wrap(await target.open(path, mode));
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { fs, flushes };
}

describe('one-sync delivery', () => {
  for (const inThread of [false, true]) {
    it(`an inline delivery flushes the journal once and no pack (${inThread ? 'a lone writer: in-thread (writevDurable) or through the pool, as measured' : 'in-thread flush off: fdatasync through the pool'}); a body in a pack still syncs both files`, async () => {
      const saved = limits.journalInThreadFlushBytesMax;
      if (!inThread) limits.journalInThreadFlushBytesMax = 0;
      try {
        const dir = tmpDir();
        const { fs, flushes } = countingFs();
        const store = await Store.open(dir, { create: true, fs, inlineBodyBytesMax: 4096 });
        await store.createMailbox('INBOX');
        await store.append('INBOX', msg('first')); // the segment may be fresh here (two-step path)
        flushes.clear();
        for (let i = 0; i < 20; i++) await store.append('INBOX', msg(`inline ${i}`));
        const journal = flushes.get('journal')!;
        expect(journal.sync + journal.writevDurable).toBe(20);
        // FlushChoice: the first 7 lone commits in this thread (2 before these), the next 7 through the pool
        if (inThread) expect(journal).toSatisfy(({ sync, writevDurable }: { sync: number; writevDurable: number }) => writevDurable >= 5 && sync >= 7);
        else expect(journal.writevDurable).toBe(0);
        expect(flushes.get('packs')).toBeUndefined();
        flushes.clear();
        await store.append('INBOX', msg('big', 8000));
        expect(flushes.get('journal')).toEqual({ sync: 1, writevDurable: 0 });
        expect(flushes.get('packs')?.sync).toBeGreaterThanOrEqual(1);
        for (let i = 0; i < 20; i++) expect((await store.fetch('INBOX', i + 2)).toString()).toContain(`inline ${i}`);
        await store.close();
        const reopened = await Store.open(dir);
        expect((await reopened.status('INBOX')).messages).toBe(22);
        expect((await reopened.fetch('INBOX', 22)).equals(msg('big', 8000))).toBe(true);
        await reopened.close();
      } finally {
        limits.journalInThreadFlushBytesMax = saved;
      }
    });
  }

  it('a caller appending in a loop with in-thread flushes still lets timers run between its commits', async () => {
    const store = await Store.open(tmpDir(), { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg('first')); // the seeding commits of FlushChoice are in-thread
    let appendedWhenTimerFired = -1;
    let appended = 0;
    setTimeout(() => { appendedWhenTimerFired = appended; }, 0);
    for (let i = 0; i < 4; i++) { await store.append('INBOX', msg(`loop ${i}`)); appended++; }
    expect(store.journalFlush().threadMedianMs).toBeNull(); // still seeding: every commit above was in-thread
    expect(appendedWhenTimerFired).toBeGreaterThanOrEqual(0);
    expect(appendedWhenTimerFired).toBeLessThan(4);
    await store.close();
  });

  it('writers with company never flush in this thread: concurrent inline deliveries share pool fdatasyncs', async () => {
    const dir = tmpDir();
    const { fs, flushes } = countingFs();
    const store = await Store.open(dir, { create: true, fs, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg('first'));
    flushes.clear();
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 8 }, (_, i) => store.append('INBOX', msg(`r${round} m${i}`))));
    const journal = flushes.get('journal')!;
    expect(journal.writevDurable).toBe(0);
    expect(journal.sync).toBeGreaterThanOrEqual(5);
    expect(journal.sync).toBeLessThan(40); // grouped
    expect((await store.status('INBOX')).messages).toBe(41);
    await store.close();
  });

  it('deferred index batches merge while none is handed to LevelDB: reads see the newest value, one LevelDB write lands them all', async () => {
    const db = await IndexDb.open(join(tmpDir(), 'index'), true);
    type Chained = { write(options?: unknown): Promise<void> };
    const level = (db as unknown as { db: { batch(): Chained } }).db;
    const realBatch = level.batch.bind(level);
    let batches = 0;
    level.batch = () => { batches++; return realBatch(); };
    const key = (name: string) => Buffer.from(name);
    const landed: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      const pending = new Map<string, unknown>([['counter', { n: i }], [`k${i}`, { n: i }]]);
      landed.push((await db.writeBehind(pending, { deferred: true })).landed);
      expect(db.getNow(key('counter'))).toEqual({ n: i }); // the newest value, before anything landed
    }
    expect(batches).toBe(0); // nothing was handed to LevelDB yet: the five wait merged
    await db.settle();
    await Promise.all(landed);
    expect(batches).toBe(1);
    expect(db.getNow(key('counter'))).toEqual({ n: 4 });
    for (let i = 0; i < 5; i++) expect(db.getNow(key(`k${i}`))).toEqual({ n: i });
    await db.close();
  });

  it('a merged index batch whose LevelDB write fails fails every caller that merged into it and every later write', async () => {
    const db = await IndexDb.open(join(tmpDir(), 'index'), true);
    // classic-level's _write: what the public write() and the raw path (writePending) both reach
    type Chained = { _write(options?: unknown): Promise<void> };
    const level = (db as unknown as { db: { batch(): Chained } }).db;
    const realBatch = level.batch.bind(level);
    level.batch = () => {
      const batch = realBatch();
      batch._write = async () => { throw Object.assign(new Error('EIO: simulated LevelDB write failure'), { code: 'EIO' }); };
      return batch;
    };
    const a = await db.writeBehind(new Map([['a', 1]]), { deferred: true });
    const b = await db.writeBehind(new Map([['b', 2]]), { deferred: true });
    await expect(db.settle()).rejects.toThrow(/EIO/);
    await expect(a.landed).rejects.toThrow(/EIO/);
    await expect(b.landed).rejects.toThrow(/EIO/);
    await expect(db.writeBehind(new Map([['c', 3]]), { deferred: true })).rejects.toThrow(/EIO/);
    await db.close().catch(() => undefined);
  });

  it('registerBehind registers without waiting: a read sees it in the same turn; past indexBehindKeysMax it does nothing and writeBehind waits', async () => {
    const db = await IndexDb.open(join(tmpDir(), 'index'), true);
    const release = holdFirstWrite(db);
    const first = db.registerBehind(new Map([['x', { v: 1 }]]));
    expect(first).toBeInstanceOf(Promise);
    expect(db.getNow(Buffer.from('x'))).toEqual({ v: 1 }); // no await between: registered at once
    expect(db.registerBehind(new Map([['y', { v: 1 }]]))).toBe(first); // merged into the batch not yet handed over
    db.startBehind(); // the first is being written (held)
    await new Promise((r) => setImmediate(r));
    const second = db.registerBehind(new Map([['x', { v: 2 }]]));
    expect(second).not.toBe(first); // queued behind the one being written
    expect(db.registerBehind(new Map([['z', { v: 2 }]]))).toBe(second); // not handed over before the first lands: merged
    const saved = limits.indexBehindKeysMax;
    limits.indexBehindKeysMax = 2;
    try {
      expect(db.registerBehind(new Map([['x', { v: 3 }]]))).toBeUndefined(); // 3 keys would wait merged: it must wait
      expect(db.getNow(Buffer.from('x'))).toEqual({ v: 2 }); // and did nothing
      const third = db.writeBehind(new Map([['x', { v: 3 }]]), { deferred: true });
      release();
      await (await third).landed;
    } finally {
      limits.indexBehindKeysMax = saved;
    }
    await db.settle();
    expect(db.getNow(Buffer.from('x'))).toEqual({ v: 3 });
    expect(db.getNow(Buffer.from('y'))).toEqual({ v: 1 });
    expect(db.getNow(Buffer.from('z'))).toEqual({ v: 2 });
    await db.close();
  });

  it('a batch queued behind one being written is written after it, never before (the newest value wins in LevelDB)', async () => {
    const db = await IndexDb.open(join(tmpDir(), 'index'), true);
    const order: number[] = [];
    const release = holdFirstWrite(db, order);
    await db.writeBehind(new Map([['x', { v: 1 }]]), { deferred: true });
    db.startBehind(); // handed to LevelDB; its write is held
    await new Promise((r) => setImmediate(r));
    await db.writeBehind(new Map([['x', { v: 2 }]]), { deferred: true }); // does not wait for the first
    db.startBehind();
    expect(db.getNow(Buffer.from('x'))).toEqual({ v: 2 });
    release();
    await db.settle();
    expect(order).toEqual([0, 1]);
    expect(db.getNow(Buffer.from('x'))).toEqual({ v: 2 });
    await db.close();
  });
});

describe('a lone writer (Writer.outstandingPeak <= 1)', () => {
  /** LevelDB batches the index hands over (IndexDb.writeBehind: one chained batch a write). */
  function countBatches(store: Store): { count: number } {
    const counter = { count: 0 };
    const level = (internalsOf(store).db as unknown as { db: { batch(): unknown } }).db;
    const realBatch = level.batch.bind(level);
    level.batch = () => { counter.count++; return realBatch(); };
    return counter;
  }

  /**
   * A store with one inline delivery whose index batch has landed, LevelDB's batches counted from
   * there, and limits.indexBehindMs so long that only settle() or a second writer hands a merged
   * batch over.
   */
  async function afterOneDelivery(body: (dir: string, store: Store, batches: { count: number }) => Promise<void>): Promise<void> {
    const saved = limits.indexBehindMs;
    limits.indexBehindMs = 60_000;
    try {
      const dir = tmpDir();
      const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096 });
      await store.createMailbox('INBOX');
      await store.append('INBOX', msg('first'));
      await internalsOf(store).db.settle();
      await body(dir, store, countBatches(store));
    } finally {
      limits.indexBehindMs = saved;
    }
  }

  it('a merged index batch that fails to land stops the store once (CLOSED), however many deliveries merged into it; each was acknowledged and is replayed', async () => {
    const saved = limits.indexBehindMs;
    limits.indexBehindMs = 60_000;
    try {
      const dir = tmpDir();
      const stops: string[] = [];
      const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, onStop: (error) => stops.push(error.code) });
      await store.createMailbox('INBOX');
      await internalsOf(store).db.settle();
      type Chained = { _write(options?: unknown): Promise<void> };
      const level = (internalsOf(store).db as unknown as { db: { batch(): Chained } }).db;
      const realBatch = level.batch.bind(level);
      level.batch = () => {
        const batch = realBatch();
        batch._write = async () => { throw Object.assign(new Error('EIO: simulated LevelDB write failure'), { code: 'EIO' }); };
        return batch;
      };
      for (let i = 0; i < 5; i++) await store.append('INBOX', msg(`merged ${i}`)); // all five merge into one batch
      await expect(internalsOf(store).db.settle()).rejects.toThrow(/EIO/);
      await new Promise((r) => setImmediate(r));
      expect(stops).toEqual(['CLOSED']); // was once per delivery merged into it
      await expect(store.append('INBOX', msg('after'))).rejects.toMatchObject({ code: 'CLOSED' });
      await store.close().catch(() => undefined);
      const reopened = await Store.open(dir);
      expect((await reopened.status('INBOX')).messages).toBe(5);
      await reopened.close();
    } finally {
      limits.indexBehindMs = saved;
    }
  });

  it('its in-thread commits in a loop take one event-loop turn each: one Immediate a delivery, not one to start and one to mark the turn', async () => {
    await afterOneDelivery(async (_dir, store) => {
      (store as unknown as { writer: { flushChoice: { inThread(): boolean } } }).writer.flushChoice.inThread = () => true;
      await store.append('INBOX', msg('in-thread first'));
      const immediates = vi.spyOn(globalThis, 'setImmediate');
      try {
        for (let i = 0; i < 20; i++) await store.append('INBOX', msg(`in-thread ${i}`));
        expect(immediates.mock.calls.length).toBeGreaterThanOrEqual(19); // the turn is still taken (timers and I/O are not starved)
        expect(immediates.mock.calls.length).toBeLessThanOrEqual(21); // was 40
      } finally {
        immediates.mockRestore();
      }
      expect((await store.status('INBOX')).messages).toBe(22);
      await store.close();
    });
  });

  it('its inline deliveries hand no index batch to LevelDB: they merge, every one visible at once, and land on close; a reopen serves them all', async () => {
    await afterOneDelivery(async (dir, store, batches) => {
      for (let i = 0; i < 20; i++) {
        const { uid } = await store.append('INBOX', msg(`lone ${i}`));
        expect(uid).toBe(i + 2);
        expect((await store.status('INBOX')).messages).toBe(i + 2); // seen before it reached LevelDB
      }
      expect(batches.count).toBe(0);
      await store.close();
      expect(batches.count).toBe(1); // the merged batch, once
      const reopened = await Store.open(dir);
      expect((await reopened.status('INBOX')).messages).toBe(21);
      expect((await reopened.fetch('INBOX', 21)).toString()).toBe(msg('lone 19').toString());
      await reopened.close();
    });
  });

  it('a merged batch that reaches indexBehindHandOverKeys goes to LevelDB at once, without waiting for indexBehindMs; nothing is lost', async () => {
    const saved = limits.indexBehindHandOverKeys;
    limits.indexBehindHandOverKeys = 16; // a delivery's batch holds ~6 keys: the third or fourth one reaches it
    try {
      await afterOneDelivery(async (dir, store, batches) => {
        for (let i = 0; i < 20; i++) await store.append('INBOX', msg(`big ${i}`));
        await new Promise((resolve) => setImmediate(resolve));
        expect(batches.count, 'handed over by size, with indexBehindMs at 60 s').toBeGreaterThanOrEqual(3);
        expect((await store.status('INBOX')).messages).toBe(21);
        await store.close();
        const reopened = await Store.open(dir);
        expect((await reopened.status('INBOX')).messages).toBe(21);
        expect((await reopened.fetch('INBOX', 21)).toString()).toBe(msg('big 19').toString());
        await reopened.close();
      });
    } finally {
      limits.indexBehindHandOverKeys = saved;
    }
  });

  it('a second writer makes each commit hand the previous index batch over again (no merging across writers)', async () => {
    await afterOneDelivery(async (_dir, store, batches) => {
      const writer = async (name: string) => { for (let i = 0; i < 10; i++) await store.append('INBOX', msg(`${name} ${i}`)); };
      await Promise.all([writer('a'), writer('b')]);
      expect(batches.count).toBeGreaterThan(1);
      expect((await store.status('INBOX')).messages).toBe(21);
      await store.close();
    });
  });
});

describe('journal preallocation on a delivery\'s path', () => {
  /** The statfs calls a store makes (FileSystem.spaceBytes), counted. */
  function countingSpace(): { fs: FileSystem; calls: { count: number } } {
    const calls = { count: 0 };
    const fs = new Proxy(nodeFileSystem, {
      get(target, property) {
        if (property === 'spaceBytes') return (path: string) => { calls.count++; return target.spaceBytes!(path); };
        const value = Reflect.get(target, property);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { fs, calls };
  }

  /** 40 inline deliveries of ~4 KiB into a journal preallocated 16 KiB at a time (about 10 extensions); every one reads back after a reopen. */
  async function deliverAcrossExtensions(options: { freeSpaceReserveBytes?: number }): Promise<number> {
    const saved = { prealloc: limits.journalPreallocateBytes, refresh: limits.freeSpaceRefreshMs };
    limits.journalPreallocateBytes = 16 * 1024;
    limits.freeSpaceRefreshMs = 60_000; // no background statfs while the test runs
    try {
      const dir = tmpDir();
      const { fs, calls } = countingSpace();
      const store = await Store.open(dir, { create: true, fs, ...options });
      await store.createMailbox('INBOX');
      const segments = join(dir, 'journal');
      const sizeBefore = (await nodeFileSystem.stat(join(segments, (await nodeFileSystem.readdir(segments))[0]!))).size;
      calls.count = 0;
      for (let i = 0; i < 40; i++) await store.append('INBOX', msg(`extend ${i}`, 4000));
      const statfs = calls.count;
      const sizeAfter = (await nodeFileSystem.stat(join(segments, (await nodeFileSystem.readdir(segments))[0]!))).size;
      expect(sizeAfter - sizeBefore, 'the segment was extended several times').toBeGreaterThan(5 * limits.journalPreallocateBytes);
      await store.close();
      const reopened = await Store.open(dir, { fs });
      expect((await reopened.status('INBOX')).messages).toBe(40);
      expect((await reopened.fetch('INBOX', 40)).toString()).toBe(msg('extend 39', 4000).toString());
      await reopened.close();
      return statfs;
    } finally {
      limits.journalPreallocateBytes = saved.prealloc;
      limits.freeSpaceRefreshMs = saved.refresh;
    }
  }

  it('a delivery that extends the journal takes the free space from the reserve\'s cached figure: no statfs of its own (a thread-pool round trip)', async () => {
    expect(await deliverAcrossExtensions({})).toBe(0);
  });

  it('with the reserve off (no figure kept) each extension still statfs\'s, so filler never takes more than half of what is free', async () => {
    expect(await deliverAcrossExtensions({ freeSpaceReserveBytes: 0 })).toBeGreaterThan(5);
  });
});
