// How IndexDb reads many keys and long ranges (issue 16, the 1M scale run): getMany, getManyNow
// and a snapshot's getMany look keys up in key order (random blob hashes otherwise reopened a
// table per key over an index larger than the table cache) and answer in the order asked, a
// damaged value as its CORRUPT error in its own place; entries() reads 1, 2, 4, ... entries per
// round trip to LevelDB's thread pool (it made one per entry: `mailstore stats` over 1M blobs).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { MailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

type Iterator = { nextv(size: number): Promise<unknown[]> };
type Level = { getMany(keys: Buffer[], options?: unknown): Promise<unknown[]>; iterator(options: unknown): Iterator };

/** The LevelDB handle under `db`, its getMany's key lists and its iterators' nextv sizes recorded. */
function spied(db: IndexDb): { asked: Buffer[][]; sizes: number[] } {
  const level = (db as unknown as { db: Level }).db;
  const asked: Buffer[][] = [];
  const sizes: number[] = [];
  const getMany = level.getMany.bind(level);
  level.getMany = (keys, options) => { asked.push(keys); return getMany(keys, options); };
  const iterator = level.iterator.bind(level);
  level.iterator = (options) => {
    const it = iterator(options);
    const nextv = it.nextv.bind(it);
    it.nextv = (size) => { sizes.push(size); return nextv(size); };
    return it;
  };
  return { asked, sizes };
}

const blobKey = () => Buffer.concat([Buffer.of(0x42), randomBytes(32)]);
const ascending = (keys: Buffer[]) => keys.every((k, i) => i === 0 || Buffer.compare(keys[i - 1]!, k) <= 0);

describe('many keys in key order', () => {
  it('getMany, getManyNow and a snapshot answer in the order asked, absent keys undefined, a damaged value in its place; LevelDB is asked in key order', async () => {
    const db = await IndexDb.open(tmpDir(), true);
    const keys = Array.from({ length: 300 }, blobKey);
    const view = new IndexView(db);
    keys.forEach((key, i) => { if (i % 7 !== 3) view.put(key, { n: i }); });
    await view.flush();
    await db.write([{ type: 'put', key: keys[10]!, value: Buffer.from('not a checksummed value') }]);
    const { asked } = spied(db);
    const expected = keys.map((_, i) => (i === 10 ? 'CORRUPT' : i % 7 === 3 ? undefined : { n: i }));
    const shown = (values: unknown[]) => values.map((v) => (v instanceof MailstoreError ? v.code : v));
    expect(ascending(keys), 'the test asks in a random order').toBe(false);

    expect(shown(await db.getMany(keys))).toEqual(expected);
    expect(shown(await db.getManyNow(keys))).toEqual(expected);
    const snapshot = await db.snapshot();
    try {
      const values = await snapshot.getMany(keys.filter((_, i) => i !== 10));
      expect(values).toEqual(expected.filter((_, i) => i !== 10));
    } finally {
      await snapshot.close();
    }
    expect(asked).toHaveLength(3);
    for (const list of asked) expect(ascending(list)).toBe(true);
    expect(asked[0]!.map((k) => k.toString('hex')).sort()).toEqual(keys.map((k) => k.toString('hex')).sort());

    const inOrder = [...keys].sort(Buffer.compare);
    await db.getMany(inOrder);
    expect(asked[3], 'keys already in order are passed as they are').toBe(inOrder);
    // ties in the first bytes (a common prefix) still answer in place
    const near = [Buffer.from('Bzzzzzz-2'), Buffer.from('Bzzzzzz-1'), Buffer.from('Bzzzzzz-3')];
    const nearView = new IndexView(db);
    near.forEach((key, i) => nearView.put(key, { near: i }));
    await nearView.flush();
    expect(await db.getMany(near)).toEqual([{ near: 0 }, { near: 1 }, { near: 2 }]);
    await db.close();
  });
});

describe('entries', () => {
  it('reads 1, 2, 4, ... entries per round trip up to limits.indexEntriesBatchMax, every entry once and in order; a limit or an early stop reads little', async () => {
    const db = await IndexDb.open(tmpDir(), true);
    const view = new IndexView(db);
    const key = (i: number) => Buffer.from(`e-${String(i).padStart(5, '0')}`);
    for (let i = 0; i < 3000; i++) view.put(key(i), { i });
    await view.flush();
    const { sizes } = spied(db);
    const seen: number[] = [];
    for await (const [k, value] of db.entries<{ i: number }>({ prefix: Buffer.from('e-') })) {
      expect(k).toEqual(key(value.i));
      seen.push(value.i);
    }
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    const max = limits.indexEntriesBatchMax;
    expect(sizes.slice(0, 4)).toEqual([1, 2, 4, 8]);
    expect(Math.max(...sizes)).toBe(max);
    expect(sizes.length, 'round trips for 3,000 entries').toBeLessThan(40); // one per entry before

    sizes.length = 0;
    const limited: number[] = [];
    for await (const [, value] of db.entries<{ i: number }>({ prefix: Buffer.from('e-'), limit: 5 })) limited.push(value.i);
    expect(limited).toEqual([0, 1, 2, 3, 4]);
    sizes.length = 0;
    for await (const [, value] of db.entries<{ i: number }>({ gte: key(100), lt: key(200) })) if (value.i === 100) break;
    expect(sizes, 'the first entry alone').toEqual([1]);
    const reversed: number[] = [];
    for await (const [, value] of db.entries<{ i: number }>({ prefix: Buffer.from('e-'), reverse: true })) reversed.push(value.i);
    expect(reversed).toEqual(seen.slice().reverse());
    await db.close();
  });
});
