// The backup's compression workers: batches come back in order and decompress to what was sent,
// both codecs; a pool closed with work outstanding fails that work instead of leaving it hanging.
import { brotliDecompressSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CompressPool } from '../../src/backup/compress-pool.js';
import { message } from './helpers.js';
import { decompress } from 'fzstd';

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

  it('a zstd pool (no workers: libuv\'s thread pool) refuses work once closed', async () => {
    const pool = new CompressPool('zstd', 2);
    expect((await pool.compress([message(1, 5000)]))[0]!.length).toBeLessThan(5000);
    await pool.close();
    await expect(pool.compress([Buffer.from('x')])).rejects.toThrow(/closed/);
  });

  it('a pool closed with a batch outstanding fails that batch', async () => {
    const pool = new CompressPool('brotli', 1);
    const pending = pool.compress(Array.from({ length: 64 }, (_, i) => message(i, 50_000)));
    await pool.close();
    await expect(pending).rejects.toThrow(/closed|exited/);
    await expect(pool.compress([Buffer.from('x')])).rejects.toThrow(/closed|exited/); // never a batch that waits forever
  });
});
