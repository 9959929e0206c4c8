// The rebuild's bulk load (BulkLoad) fills classic-level's batches through their own _put and
// writes them with _write: every entry put lands, whether the last batch is full, partial or
// empty, and values come back byte for byte (checksums checked on read).
import { describe, expect, it } from 'vitest';
import { IndexDb } from '../../src/index/index-db.js';
import { encodeValue } from '../../src/index/codec.js';
import { tmpDir } from '../helpers/tmp.js';

const key = (i: number) => Buffer.from(`k${String(i).padStart(5, '0')}`);

describe('BulkLoad', () => {
  for (const count of [0, 21, 23]) {
    it(`${count} entries in batches of 7: each lands, in order, with its value`, async () => {
      const db = await IndexDb.open(tmpDir(), true);
      const load = db.bulkLoad(7);
      for (let i = 0; i < count; i++) {
        if (i % 2 === 0) load.put(key(i), { n: i });
        else load.putRaw(key(i), encodeValue(key(i), { n: i }));
        await load.maybeFlush();
      }
      await load.finish();
      const seen: number[] = [];
      for await (const [k, value] of db.entries<{ n: number }>({ gte: Buffer.from('k'), lt: Buffer.from('l') })) {
        expect(k.equals(key(value.n))).toBe(true);
        seen.push(value.n);
      }
      expect(seen).toEqual(Array.from({ length: count }, (_, i) => i));
      await db.close();
    });
  }

  it('refuses a value that is not bytes (what LevelDB\'s public put would have refused)', async () => {
    const db = await IndexDb.open(tmpDir(), true);
    const load = db.bulkLoad(7);
    expect(() => load.putRaw(key(1), 'text' as unknown as Buffer)).toThrow(/puts bytes/);
    await load.finish();
    await db.close();
  });
});
