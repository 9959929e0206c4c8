// The backup's compression workers: batches come back in order and decompress to what was sent,
// every codec, whether the blobs lie in shared read buffers or not; a pool closed with work
// outstanding fails that work instead of leaving it hanging.
import { brotliDecompressSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { availableParallelism } from 'node:os';
import { CompressPool, compressThreadsFor } from '../../src/backup/compress-pool.js';
import { backupLimits } from '../../src/limits.js';
import { message } from './helpers.js';
import { decompress } from 'fzstd';
import { hashBytes } from '../../src/hash/blake3.js';
import { zstdOneShotModule } from '../../src/backup/zstd.js';
import { RECORD_HEADER_BYTES, decodeRecord, sealRecord } from '../../src/backup/format.js';

describe('compression workers', () => {
  it('compress each blob of many batches, in order, for zstd, brotli and deflate', async () => {
    const unzstd = (c: Buffer) => Buffer.from(decompress(c));
    for (const [codec, undo] of [['zstd', unzstd], ['brotli', brotliDecompressSync], ['deflate', inflateRawSync]] as const) {
      const pool = new CompressPool(codec, 2);
      try {
        const batches = Array.from({ length: 6 }, (_, b) => Array.from({ length: 5 + b }, (_, i) => message(b * 100 + i, 500 * (i + 1))));
        batches.push([Buffer.alloc(0)]);
        const results = await Promise.all(batches.map((batch) => pool.compress(batch)));
        results.forEach((out, b) => {
          expect(out).toHaveLength(batches[b]!.length);
          out.forEach((c, i) => expect(undo(c).equals(batches[b]![i]!)).toBe(true));
        });
        expect(results[0]![4]!.length).toBeLessThan(batches[0]![4]!.length); // letters compress
      } finally {
        await pool.close();
      }
    }
  });

  it('blobs in shared read buffers are read where they lie (unchanged, still usable); other blobs are copied over', async () => {
    const unzstd = (c: Buffer) => Buffer.from(decompress(c));
    for (const [codec, undo] of [['zstd', unzstd], ['brotli', brotliDecompressSync], ['deflate', inflateRawSync]] as const) {
      const pool = new CompressPool(codec, 2);
      try {
        // two read buffers holding records at odd offsets, as the copier's reads leave them, and blobs of their own
        const shared = [new SharedArrayBuffer(256 * 1024), new SharedArrayBuffer(128 * 1024)];
        const sizes = [[3, 20_000], [20_011, 1], [40_000, 90_000]] as const;
        const list: Buffer[] = [];
        shared.forEach((buffer, b) => sizes.forEach(([at, length], i) => {
          const view = Buffer.from(buffer, at, length);
          message(b * 10 + i, length).copy(view);
          list.push(view);
        }));
        list.splice(2, 0, message(77, 5000), Buffer.alloc(0), Buffer.from('x'));
        const expected = list.map((b) => Buffer.from(b)); // copies, for comparing after
        const out = await pool.compress(list);
        expect(out).toHaveLength(expected.length);
        out.forEach((c, i) => expect(undo(c).equals(expected[i]!)).toBe(true));
        // nothing moved away: the views and the buffers are as they were, and go out again
        list.forEach((b, i) => expect(b.equals(expected[i]!)).toBe(true));
        expect(shared.map((buffer) => buffer.byteLength)).toEqual([256 * 1024, 128 * 1024]);
        const again = await pool.compress([list[0]!, list[list.length - 1]!]);
        expect(undo(again[0]!).equals(expected[0]!)).toBe(true);
        expect(undo(again[1]!).equals(expected[expected.length - 1]!)).toBe(true);
      } finally {
        await pool.close();
      }
    }
  });

  it('compressChecked: the workers hash each blob before they compress it (BLAKE3, 32 bytes a blob, in order); without the binding, no digests', async () => {
    const list = [message(1, 30_000), Buffer.alloc(0), message(2, 100)];
    const shared = new SharedArrayBuffer(64 * 1024);
    const view = Buffer.from(shared, 11, 40_000);
    message(3, 40_000).copy(view);
    list.push(view);
    for (const hashed of [false, true]) {
      const pool = hashed ? new CompressPool('zstd', 2) : new CompressPool('zstd', 2, zstdOneShotModule, '');
      try {
        expect(pool.hashes).toBe(hashed);
        const { compressed, digests } = await pool.compressChecked(list);
        compressed.forEach((c, i) => expect(Buffer.from(decompress(c)).equals(list[i]!)).toBe(true));
        if (!hashed) expect(digests).toBeUndefined();
        else expect(digests).toEqual(Buffer.concat(list.map((b) => hashBytes(b))));
      } finally {
        await pool.close();
      }
    }
  });

  it('compressChecked into an output buffer: zstd\'s outputs and digests come back as views into it (the same bytes, no new buffer), again after reuse; one too small for the bound and other codecs get buffers of their own', async () => {
    const list = [message(1, 30_000), Buffer.alloc(0), message(2, 100), message(3, 60_000)];
    const bound = list.reduce((a, b) => a + b.length + (b.length >> 8) + 64, 0) + 32 * list.length;
    for (const hashed of [true, false]) {
      const pool = hashed ? new CompressPool('zstd', 1) : new CompressPool('zstd', 1, zstdOneShotModule, '');
      try {
        const out = new SharedArrayBuffer(bound + 1024);
        for (const round of [0, 1]) {
          const batch = round === 0 ? list : [...list].reverse();
          const { compressed, digests } = await pool.compressChecked(batch, true, out);
          compressed.forEach((c, i) => {
            expect(c.buffer).toBe(out);
            expect(Buffer.from(decompress(c)).equals(batch[i]!)).toBe(true);
          });
          if (hashed) {
            expect(digests!.buffer).toBe(out);
            expect(digests).toEqual(Buffer.concat(batch.map((b) => hashBytes(b))));
          } else {
            expect(digests).toBeUndefined();
          }
        }
        const small = new SharedArrayBuffer(1024);
        const { compressed, digests } = await pool.compressChecked(list, true, small);
        compressed.forEach((c, i) => {
          expect(c.buffer).not.toBe(small);
          expect(Buffer.from(decompress(c)).equals(list[i]!)).toBe(true);
        });
        if (hashed) expect(digests).toEqual(Buffer.concat(list.map((b) => hashBytes(b))));
        expect(Buffer.from(small).equals(Buffer.alloc(1024))).toBe(true); // nothing written into it
      } finally {
        await pool.close();
      }
    }
    const deflate = new CompressPool('deflate', 1);
    try {
      const out = new SharedArrayBuffer(bound + 1024);
      const compressed = (await deflate.compressChecked(list, true, out)).compressed;
      compressed.forEach((c, i) => {
        expect(c.buffer).not.toBe(out);
        expect(inflateRawSync(c).equals(list[i]!)).toBe(true);
      });
    } finally {
      await deflate.close();
    }
  });

  it('compressChecked with headroom: each output in the output buffer has that many free bytes before it, where sealRecord writes its record\'s header, so a batch\'s records lie together and read back; a batch answered in its own buffer has none', async () => {
    const list = [message(1, 30_000), message(2, 100), message(3, 60_000), message(4, 5_000)];
    const bound = list.reduce((a, b) => a + b.length + (b.length >> 8) + 64, 0) + 32 * list.length;
    const pool = new CompressPool('zstd', 1);
    try {
      const out = new SharedArrayBuffer(bound + RECORD_HEADER_BYTES * list.length + 1024);
      Buffer.from(out).fill(0xee); // reused memory: whatever was there before
      const { compressed, headroom } = await pool.compressChecked(list, true, out, RECORD_HEADER_BYTES);
      expect(headroom).toBe(RECORD_HEADER_BYTES);
      const records = compressed.map((c, i) => {
        expect(c.buffer).toBe(out);
        if (i > 0) expect(c.byteOffset).toBe(compressed[i - 1]!.byteOffset + compressed[i - 1]!.length + RECORD_HEADER_BYTES);
        const parts = sealRecord(hashBytes(list[i]!), list[i]!, c, 'zstd', undefined, headroom);
        expect(parts[1]).toBe(c);
        expect(parts[0]!.buffer).toBe(out); // written in place, just before its body
        expect(parts[0]!.byteOffset + RECORD_HEADER_BYTES).toBe(c.byteOffset);
        // the same bytes as a header made on its own
        expect(parts[0]!.equals(sealRecord(hashBytes(list[i]!), list[i]!, Buffer.from(c), 'zstd', undefined)[0]!)).toBe(true);
        return Buffer.from(out, parts[0]!.byteOffset, RECORD_HEADER_BYTES + c.length);
      });
      for (const [i, record] of records.entries()) expect((await decodeRecord(record, hashBytes(list[i]!), undefined, undefined, 'test')).equals(list[i]!)).toBe(true);
      // an output buffer too small: outputs of their own, no room promised
      const own = await pool.compressChecked(list, true, new SharedArrayBuffer(1024), RECORD_HEADER_BYTES);
      expect(own.headroom).toBeUndefined();
      expect(sealRecord(Buffer.alloc(32, 1), list[0]!, own.compressed[0]!, 'zstd', undefined, own.headroom ?? 0)[0]!.buffer).not.toBe(own.compressed[0]!.buffer);
    } finally {
      await pool.close();
    }
  });

  it('workers by the bytes to copy: one per compressBytesPerThread, no more than the cores; a pool grows to more when the copy does, and not once closed', async () => {
    const cores = Math.min(backupLimits.compressThreadsMax, availableParallelism());
    const per = backupLimits.compressBytesPerThread;
    expect(compressThreadsFor(0)).toBe(1);
    expect(compressThreadsFor(per)).toBe(1);
    expect(compressThreadsFor(per + 1)).toBe(Math.min(2, cores));
    expect(compressThreadsFor(100 * per)).toBe(cores);
    const pool = new CompressPool('zstd', 1);
    try {
      expect(pool.threads).toBe(1);
      pool.grow(2);
      expect(pool.threads).toBe(Math.min(2, cores));
      pool.grow(1); // never fewer
      expect(pool.threads).toBe(Math.min(2, cores));
      const batches = Array.from({ length: 4 }, (_, b) => [message(b, 4000), message(b + 10, 6000)]);
      const out = await Promise.all(batches.map((batch) => pool.compress(batch)));
      out.forEach((c, b) => c.forEach((bytes, i) => expect(Buffer.from(decompress(bytes)).equals(batches[b]![i]!)).toBe(true)));
    } finally {
      await pool.close();
    }
    pool.grow(4);
    expect(pool.threads).toBe(Math.min(2, cores));
  });

  it('a zstd pool refuses work once closed', async () => {
    const pool = new CompressPool('zstd', 2);
    expect((await pool.compress([message(1, 5000)]))[0]!.length).toBeLessThan(5000);
    await pool.close();
    await expect(pool.compress([Buffer.from('x')])).rejects.toThrow(/closed/);
  });

  it('workers whose zstd binding does not load: every batch is compressed in this thread instead, the same bytes back, and `lost` says why', async () => {
    const unzstd = (c: Buffer) => Buffer.from(decompress(c));
    const pool = new CompressPool('zstd', 2, '/nonexistent/zstd-napi/binding.node');
    try {
      const batches = Array.from({ length: 4 }, (_, b) => Array.from({ length: 3 }, (_, i) => message(b * 10 + i, 20_000)));
      const results = await Promise.all(batches.map((batch) => pool.compress(batch))); // sent before the workers failed
      const later = await pool.compress([message(99, 30_000)]); // after: none left
      for (const [out, batch] of [...results.map((r, b) => [r, batches[b]!] as const), [later, null] as const]) {
        out.forEach((c, i) => {
          expect(c.length).toBeLessThan(20_000);
          if (batch) expect(unzstd(c).equals(batch[i]!)).toBe(true);
        });
      }
      expect(pool.lost?.message).toMatch(/nonexistent|Cannot find module/);
    } finally {
      await pool.close();
    }
    await expect(pool.compress([Buffer.from('x')])).rejects.toThrow(/closed/); // closed: no fallback
  });

  it('a worker that dies with a batch outstanding: that batch is compressed in this thread, the other worker goes on', async () => {
    const pool = new CompressPool('brotli', 2);
    try {
      const big = Array.from({ length: 16 }, (_, i) => message(i, 60_000));
      const first = pool.compress(big); // to worker 0
      const slots = (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots;
      await slots[0]!.worker.terminate(); // dies under it
      const out = await first;
      out.forEach((c, i) => expect(brotliDecompressSync(c).equals(big[i]!)).toBe(true));
      expect(pool.lost?.message).toMatch(/exited/);
      const next = await pool.compress([message(50, 10_000)]);
      expect(brotliDecompressSync(next[0]!).length).toBeGreaterThan(10_000);
    } finally {
      await pool.close();
    }
  });

  it('a pool closed with a batch outstanding fails that batch', async () => {
    const pool = new CompressPool('brotli', 1);
    const pending = pool.compress(Array.from({ length: 64 }, (_, i) => message(i, 50_000)));
    await pool.close();
    await expect(pending).rejects.toThrow(/closed|exited/);
    await expect(pool.compress([Buffer.from('x')])).rejects.toThrow(/closed|exited/); // never a batch that waits forever
  });
});
