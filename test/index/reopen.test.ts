// IndexDb.reopen closes LevelDB and opens it again in place (LevelDB rolls its LOG and writes a new
// MANIFEST only at an open): a range read under way goes on from its last key on the new handle,
// reads and writes started meanwhile wait for it, and an open snapshot or raw iterator defers it.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { keys } from '../../src/keys/index-keys.js';
import { tmpDir } from '../helpers/tmp.js';

const KEY_COUNT = 3000;
const key = (i: number) => keys.meta(`k${String(i).padStart(6, '0')}`);

async function filled(): Promise<IndexDb> {
  const db = await IndexDb.open(tmpDir(), true);
  const view = new IndexView(db);
  for (let i = 0; i < KEY_COUNT; i++) view.put(key(i), i);
  await view.flush();
  return db;
}

const range = { gte: keys.meta('k'), lt: keys.meta('l') };

describe('IndexDb.reopen', () => {
  for (const reverse of [false, true]) it(`a range read ${reverse ? 'in reverse ' : ''}across two reopens returns every entry once, in order, and stops at its limit`, async () => {
    const db = await filled();
    const limit = KEY_COUNT - 7;
    const seen: number[] = [];
    for await (const [, value] of db.entries<number>({ ...range, reverse, limit })) {
      seen.push(value);
      if (seen.length === 5 || seen.length === 700) expect(await db.reopen()).toBe(true);
    }
    const all = Array.from({ length: KEY_COUNT }, (_, i) => i);
    expect(seen).toEqual((reverse ? all.reverse() : all).slice(0, limit));
    expect(existsSync(join(db.path, 'LOG.old'))).toBe(true);
    await db.close();
  });

  it('reads and writes started during a reopen wait for it and succeed', async () => {
    const db = await filled();
    const reopened = db.reopen();
    while (!db.whenOpen()) await new Promise(setImmediate); // reopen.ts loaded, the reopen begun

    const view = new IndexView(db);
    view.put(key(KEY_COUNT), KEY_COUNT);
    const [ok, got, many] = await Promise.all([reopened, db.get<number>(key(17)), db.getMany<number>([key(1), key(2)]), db.compactFiles(), view.flush()]);
    expect([ok, got, many]).toEqual([true, 17, [1, 2]]);
    expect(db.whenOpen()).toBeUndefined();
    expect(db.getNow(key(KEY_COUNT))).toBe(KEY_COUNT);
    await db.close();
  });

  it('is deferred (false) while a snapshot or a raw iterator is open, and done once they are closed', async () => {
    const db = await filled();
    const snapshot = await db.snapshot();
    expect(await db.reopen()).toBe(false);
    expect(snapshot.get<number>(key(3))).toBe(3);
    await snapshot.close();
    const raw = db.rawIterator(range);
    expect(await db.reopen()).toBe(false);
    await raw.close();
    expect(await db.reopen()).toBe(true);
    expect(db.getNow(key(3))).toBe(3);
    // a raw iterator made while the reopen waits for a read in flight: deferred, nothing closed
    const read = db.getManyNow<number>([key(4)]); // in flight at once (getMany settles first)
    const deferred = db.reopen();
    const late = db.rawIterator(range);
    expect(await deferred).toBe(false);
    expect(await read).toEqual([4]);
    expect((await late.nextv(1)).length).toBe(1);
    await late.close();
    await db.close();
  });
});
