// PackStore.scan reads a pack in chunks and hashes the records of each chunk, on worker threads
// when given a pool. Whatever the chunk size and the pool, it must report the same records, the
// same verdicts and the same damaged ranges, in file order, as hashing each record alone would.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
// every body in a pack: these tests scan pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { HashPool } from '../../src/hash/pool.js';
import { scrub } from '../../src/scrub/scrub.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { prng } from '../helpers/prng.js';

async function damagedPack(): Promise<{ dir: string; path: string; pack: number }> {
  const dir = tmpDir();
  const rand = prng(7);
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  const sizes = [10, 5000, 70_000, 300, 1_500_000, 20, 9000, 250_000, 64, 3000];
  for (let i = 0; i < 40; i++) {
    const body = Buffer.alloc(sizes[i % sizes.length] + i);
    for (let k = 0; k < body.length; k++) body[k] = Math.floor(rand() * 256);
    await store.append('INBOX', Buffer.concat([Buffer.from(`Subject: ${i}\r\n\r\n`), body]));
  }
  const pack = (await store.maintenance().packs.listPacks())[0];
  const path = store.maintenance().packs.path(pack);
  await store.close();
  const bytes = readFileSync(path);
  const offsets: number[] = [];
  for (let p = bytes.indexOf('MSB1', 0, 'latin1'); p >= 0; p = bytes.indexOf('MSB1', p + 1, 'latin1')) offsets.push(p);
  bytes[offsets[3] + 60] ^= 0x10; // a flipped body byte
  bytes.fill(0, offsets[10] + 10, offsets[10] + 30); // a header zeroed: a damaged range up to the next record
  bytes.fill(0x5a, offsets[20] + 100, offsets[21] + 20); // garbage over a body and the next header
  bytes[offsets[4] + 1_000_000] ^= 0xff; // inside the record bigger than a chunk
  writeFileSync(path, Buffer.concat([bytes.subarray(0, bytes.length - 700)])); // a torn last record
  return { dir, path, pack };
}

/** A pack of `count` ordinary records of ~20 KB: a scan's chunks follow one another with no record alone between them. */
async function plainPack(count: number, tag: string): Promise<{ dir: string; pack: number }> {
  const dir = tmpDir();
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  for (let i = 0; i < count; i++) await store.append('INBOX', Buffer.from(`Subject: ${tag} ${i}\r\n\r\n${tag.repeat(20_000 / tag.length + i)}`));
  const pack = (await store.maintenance().packs.listPacks())[0];
  await store.close();
  return { dir, pack };
}

/** `pauseMs`: the reader waits this long at each batch, as a scrub's thread busy with its other passes. */
async function scanAll(dir: string, pack: number, options: { chunkBytes?: number; pool?: HashPool; pauseMs?: number; from?: number; aheadChunks?: number }) {
  const store = await Store.open(dir);
  const items: unknown[] = [];
  let bytes = 0;
  const { pauseMs, ...scanOptions } = options;
  const onBytes = async (n: number) => {
    bytes += n;
    if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  };
  try {
    for await (const item of store.maintenance().packs.scan(pack, { ...scanOptions, onBytes })) {
      items.push(item.kind === 'blob' ? { ...item, hash: item.hash.toString('hex') } : item);
    }
  } finally {
    await store.close();
  }
  return { items, bytes };
}

describe('pack scan', () => {
  it('reports the same records, verdicts and damaged ranges for any chunk size, with or without worker threads', async () => {
    const { dir, pack } = await damagedPack();
    const reference = await scanAll(dir, pack, { chunkBytes: 64 << 20 });
    const blobs = reference.items.filter((i) => (i as { kind: string }).kind === 'blob') as { valid: boolean }[];
    const damage = reference.items.filter((i) => (i as { kind: string }).kind === 'damage');
    expect(blobs.filter((b) => !b.valid).length).toBe(2); // the flipped byte and the big record
    expect(damage.length).toBeGreaterThanOrEqual(3); // zeroed header, garbage, torn tail
    const pool = HashPool.create(2)!;
    try {
      for (const chunkBytes of [256, 4096, 65_536, 1 << 20, undefined]) {
        expect(await scanAll(dir, pack, { chunkBytes }), `chunk ${chunkBytes}`).toEqual(reference);
        expect(await scanAll(dir, pack, { chunkBytes, pool }), `chunk ${chunkBytes}, pool`).toEqual(reference);
      }
    } finally {
      await pool.close();
    }
  });

  it('a pool whose workers are gone: every chunk is read again and hashed here, with the same results', async () => {
    const { dir, pack } = await damagedPack();
    const reference = await scanAll(dir, pack, {});
    const pool = HashPool.create(1)!;
    await pool.close(); // every hash() now rejects, as after a worker crash
    expect(await scanAll(dir, pack, { pool })).toEqual(reference);
    expect(await scanAll(dir, pack, { pool, chunkBytes: 4096 })).toEqual(reference);
    // a worker that dies while it holds a chunk (transferred to it, so gone from here): read again
    const dying = { hash: (buffer: ArrayBuffer) => { structuredClone(buffer, { transfer: [buffer] }); return Promise.reject(new Error('hash worker exited')); } };
    expect(await scanAll(dir, pack, { pool: dying as unknown as HashPool, chunkBytes: 65_536 })).toEqual(reference);
    // a worker reading the pack itself that dies before it parsed its chunk, or after (its hashes lost): read and hashed here
    const exited = () => Promise.reject(new Error('hash worker exited'));
    const real = HashPool.create(1)!;
    try {
      const before = { threads: 1, failed: false, scanChunk: () => ({ parsed: exited(), done: exited() }) };
      expect(await scanAll(dir, pack, { pool: before as unknown as HashPool, chunkBytes: 65_536 })).toEqual(reference);
      let calls = 0;
      const after = { threads: 1, failed: false, scanChunk: (fd: number, position: number, length: number) => { calls++; return { parsed: real.scanChunk(fd, position, length).parsed, done: exited() }; } };
      expect(await scanAll(dir, pack, { pool: after as unknown as HashPool, chunkBytes: 65_536 })).toEqual(reference);
      expect(calls).toBeGreaterThan(0);
    } finally {
      await real.close();
    }
  });

  it('a busy pool: the reading thread hashes the chunks its workers have no room for, with the same results', async () => {
    const { dir, path, pack } = await damagedPack();
    const reference = await scanAll(dir, pack, {});
    const real = HashPool.create(1)!;
    let handed = 0;
    // a worker slower than the reader: each chunk comes back 20 ms later
    // (both ways a chunk reaches a worker: a buffer read here, or the pack's descriptor, which the worker reads itself)
    const later = <T>(value: () => Promise<T>) => new Promise((done) => setTimeout(done, 20)).then(value);
    const slow = {
      threads: 1,
      hash: (buffer: ArrayBuffer, ranges: number[]) => { handed++; return later(() => real.hash(buffer, ranges)); },
      scanChunk: (fd: number, position: number, length: number) => {
        handed++;
        const job = real.scanChunk(fd, position, length);
        return { parsed: job.parsed, done: later(() => job.done) };
      },
    };
    try {
      expect(await scanAll(dir, pack, { pool: slow as unknown as HashPool, chunkBytes: 65_536 })).toEqual(reference);
    } finally {
      await real.close();
    }
    const chunks = Math.ceil(readFileSync(path).length / 65_536);
    expect(handed).toBeGreaterThan(0);
    expect(handed).toBeLessThan(chunks / 2);
  });

  it('a worker that ends without close() fails the jobs it holds instead of leaving them waiting', async () => {
    const pool = HashPool.create(1)!;
    await (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers[0].terminate();
    await expect(pool.hash(new ArrayBuffer(8), [0, 8])).rejects.toThrow(/exited/);
    await pool.close();
  });

  it('a pool of one worker reads on ahead of the scan: same records, verdicts and damaged ranges, the chunks mostly answered from what it read ahead', async () => {
    const { dir, pack } = await damagedPack();
    const reference = await scanAll(dir, pack, {});
    const pool = HashPool.create(1)!;
    try {
      const handed = vi.spyOn(pool, 'scanChunk');
      for (const chunkBytes of [4096, 65_536, 1 << 20]) expect(await scanAll(dir, pack, { chunkBytes, pool }), `chunk ${chunkBytes}`).toEqual(reference);
      expect(handed.mock.calls.every((call) => call[3] !== undefined), 'every chunk asked for with read-ahead').toBe(true);
      // a slow reader's chunks are read ahead while it pauses (all but the first few)
      const plain = await plainPack(100, 'a');
      const plainReference = await scanAll(plain.dir, plain.pack, {});
      handed.mockClear();
      const before = pool.scannedAhead;
      expect(await scanAll(plain.dir, plain.pack, { chunkBytes: 65_536, pool, pauseMs: 20 }), 'a slow reader').toEqual(plainReference);
      expect(handed.mock.calls.length).toBeGreaterThan(20);
      expect(pool.scannedAhead - before).toBeGreaterThan(handed.mock.calls.length / 2);
    } finally {
      await pool.close();
    }
  });

  it('a worker told to read far ahead (scrub, unthrottled) gives the same results; one whose record cap is reached reads nothing ahead', async () => {
    const { dir, pack } = await damagedPack();
    const reference = await scanAll(dir, pack, {});
    const plain = await plainPack(60, 'f');
    const plainReference = await scanAll(plain.dir, plain.pack, {});
    const pool = HashPool.create(1)!;
    const tunable = limits as { scanRecordsAhead: number };
    const cap = tunable.scanRecordsAhead;
    try {
      const handed = vi.spyOn(pool, 'scanChunk');
      for (const chunkBytes of [4096, 65_536]) {
        expect(await scanAll(dir, pack, { chunkBytes, pool, aheadChunks: 1000 }), `chunk ${chunkBytes}`).toEqual(reference);
        expect(await scanAll(plain.dir, plain.pack, { chunkBytes, pool, aheadChunks: 1000, pauseMs: 2 }), `plain, chunk ${chunkBytes}`).toEqual(plainReference);
      }
      expect(handed.mock.calls.every((call) => call[3]?.chunks === 1000), 'every chunk asked for with the scan\'s own read-ahead').toBe(true);
      // no room for one record more: the worker reads only what it is asked for, whatever the reader's pauses
      tunable.scanRecordsAhead = 0;
      const before = pool.scannedAhead;
      expect(await scanAll(plain.dir, plain.pack, { chunkBytes: 65_536, pool, aheadChunks: 1000, pauseMs: 5 })).toEqual(plainReference);
      expect(await scanAll(dir, pack, { chunkBytes: 65_536, pool, aheadChunks: 1000, pauseMs: 5 })).toEqual(reference);
      expect(pool.scannedAhead).toBe(before);
    } finally {
      tunable.scanRecordsAhead = cap;
      await pool.close();
    }
  });

  it('read-ahead belongs to one scan: a second scan through the same worker, of another pack at the same offsets, gets its own records', async () => {
    const first = await plainPack(30, 'x');
    const second = await plainPack(30, 'y');
    const damaged = await damagedPack();
    const references = [await scanAll(first.dir, first.pack, {}), await scanAll(second.dir, second.pack, {}), await scanAll(damaged.dir, damaged.pack, {})];
    const pool = HashPool.create(1)!;
    try {
      // a scan left after its first records, the worker holding the chunks it read on ahead of it
      const store = await Store.open(first.dir);
      let seen = 0;
      for await (const batch of store.maintenance().packs.scanBatches(first.pack, { chunkBytes: 65_536, pool })) {
        seen += batch.length;
        if (seen > 2) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await store.close();
      // then another pack from where the first one's sixth chunk starts (a scrub cursor): read ahead there
      const from = (references[0].items[15] as { next: number }).next;
      expect(from).toBe((references[1].items[15] as { next: number }).next);
      expect(await scanAll(second.dir, second.pack, { chunkBytes: 65_536, pool, from })).toEqual(await scanAll(second.dir, second.pack, { chunkBytes: 65_536, from }));
      expect(await scanAll(second.dir, second.pack, { chunkBytes: 65_536, pool, pauseMs: 5 })).toEqual(references[1]);
      expect(await scanAll(first.dir, first.pack, { chunkBytes: 65_536, pool, pauseMs: 5 })).toEqual(references[0]);
      expect(await scanAll(damaged.dir, damaged.pack, { chunkBytes: 65_536, pool, pauseMs: 5 })).toEqual(references[2]);
      expect(pool.scannedAhead).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('a reading-ahead worker that dies mid-scan: the chunks it held are read and hashed here, with the same results', async () => {
    const { dir, pack } = await plainPack(60, 'z');
    const reference = await scanAll(dir, pack, {});
    const pool = HashPool.create(1)!;
    const workers = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    const scanChunk = pool.scanChunk.bind(pool);
    let killed = false;
    vi.spyOn(pool, 'scanChunk').mockImplementation((...args: Parameters<HashPool['scanChunk']>) => {
      // once it answered a chunk from what it read ahead: it holds more of them now
      if (!killed && pool.scannedAhead > 0) {
        killed = true;
        void workers[0]!.terminate();
      }
      return scanChunk(...args);
    });
    try {
      expect(await scanAll(dir, pack, { chunkBytes: 65_536, pool, pauseMs: 20 })).toEqual(reference);
      expect(killed).toBe(true);
      expect(pool.failed).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('scrub lets its one worker read far ahead only when unthrottled (a throttled scrub keeps the default), with the same findings', async () => {
    const { dir } = await damagedPack();
    const store = await Store.open(dir);
    const handed = vi.spyOn(HashPool.prototype, 'scanChunk');
    try {
      const here = await scrub(store, { hashThreads: 0 });
      const free = await scrub(store, { hashThreads: 1 });
      const asked = handed.mock.calls.map((call) => call[3]?.chunks);
      handed.mockClear();
      // a rate far above what is read: never sleeps, but the scan is throttled all the same
      const throttled = await scrub(store, { hashThreads: 1, maxRateBytesPerSecond: 1e15 });
      expect(asked.length).toBeGreaterThan(0);
      expect(asked.every((chunks) => chunks === limits.scrubChunksAhead)).toBe(true);
      expect(handed.mock.calls.length).toBeGreaterThan(0);
      expect(handed.mock.calls.every((call) => call[3] !== undefined && call[3].chunks === undefined)).toBe(true);
      expect(free.findings).toEqual(here.findings);
      expect(throttled.findings).toEqual(here.findings);
    } finally {
      handed.mockRestore();
      await store.close();
    }
  });

  it('scrub finds the same damage with hashing on worker threads as without', async () => {
    const { dir } = await damagedPack();
    const store = await Store.open(dir);
    try {
      const here = await scrub(store, { hashThreads: 0 });
      const workers = await scrub(store, { hashThreads: 2 });
      expect(here.summary.damage).toBeGreaterThan(0);
      expect(workers.findings).toEqual(here.findings);
      expect(workers.summary.blobsVerified).toBe(here.summary.blobsVerified);
      expect(workers.summary.bytesVerified).toBe(here.summary.bytesVerified);
    } finally {
      await store.close();
    }
  });
});
