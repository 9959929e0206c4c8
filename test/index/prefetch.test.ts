// IndexDb.getManyNow and IndexView.prefetch (a compaction's commit reads its 20k entries in one
// LevelDB round trip): they must read exactly what getNow and getShared read, through a batch still
// landing, the view's own pending set first, and a damaged value as its CORRUPT error.
import { describe, expect, it } from 'vitest';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { MailstoreError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const key = (i: number) => Buffer.from(`k-${i}`);

async function seeded(count: number): Promise<IndexDb> {
  const db = await IndexDb.open(tmpDir(), true);
  const view = new IndexView(db);
  for (let i = 0; i < count; i++) view.put(key(i), { n: i });
  await view.flush();
  return db;
}

describe('getManyNow and prefetch', () => {
  it('read what getNow reads: a batch not yet landed first (its puts and deletes), LevelDB for the rest, absent keys undefined', async () => {
    const db = await seeded(10);
    const behind = new IndexView(db);
    behind.put(key(1), { n: 101 });
    behind.del(key(2));
    behind.put(key(20), { n: 20 });
    await db.writeBehind(behind.takePending(), { deferred: true }); // not started yet: only the pending set has them
    const asked = [key(0), key(1), key(2), key(20), key(99)];
    const many = await db.getManyNow<{ n: number }>(asked);
    expect(many).toEqual(asked.map((k) => db.getNow(k)));
    expect(many).toEqual([{ n: 0 }, { n: 101 }, undefined, { n: 20 }, undefined]);
    await db.settle();
    expect(await db.getManyNow(asked), 'the same once it landed').toEqual(many);
    await db.close();
  });

  it('prefetch: getShared answers from what it fetched, the pending set still first; a damaged value is not kept and getShared throws CORRUPT', async () => {
    const db = await seeded(5);
    await db.write([{ type: 'put', key: key(3), value: Buffer.from('not a checksummed value') }]);
    const view = new IndexView(db);
    view.put(key(0), { n: 500 });
    await view.prefetch([key(0), key(1), key(3), key(42)]);
    await db.write([{ type: 'put', key: key(1), value: Buffer.from('changed under the view: never in one batch') }]);
    expect(view.getShared(key(0)), 'the pending set comes first').toEqual({ n: 500 });
    expect(view.getShared(key(1)), 'from the prefetch').toEqual({ n: 1 });
    expect(view.getShared(key(42)), 'absent, remembered').toBeUndefined();
    let thrown: unknown;
    try { view.getShared(key(3)); } catch (error) { thrown = error; }
    expect(thrown).toBeInstanceOf(MailstoreError);
    expect((thrown as MailstoreError).code).toBe('CORRUPT');
    const damaged = await db.getManyNow([key(3), key(4)]);
    expect((damaged[0] as MailstoreError).code, 'in its place, hiding no other').toBe('CORRUPT');
    expect(damaged[1]).toEqual({ n: 4 });
    await db.close();
  });
});
