// IndexDb.getManyNow and IndexView.prefetch (a compaction's commit reads its 20k entries in one
// LevelDB round trip): they must read exactly what getNow and getShared read, through a batch still
// landing, the view's own pending set first, and a damaged value as its CORRUPT error. A read
// ahead (IndexDb.readAhead, an import's next batch) must never answer with a value a write changed
// after it began.
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

describe('remember and delIfShared', () => {
  it('remember returns what getShared reads right after (the pending sets first, then an earlier read, then the value given); delIfShared deletes only when its test holds', async () => {
    const db = await seeded(6);
    const below = new IndexView(db);
    below.put(key(1), { n: 101 });
    const view = new IndexView(db, undefined, below.takePending()); // as Writer.stacked: the batch before, not landed
    view.del(key(2));
    expect(view.getShared(key(3))).toEqual({ n: 3 }); // read once: remembered as read
    const given = [key(0), key(1), key(2), key(3), key(42)].map((k) => ({ scanned: k.toString() }));
    const now = view.remember([key(0), key(1), key(2), key(3), key(42)], given);
    expect(now).toEqual([given[0], { n: 101 }, undefined, { n: 3 }, given[4]]);
    expect([key(0), key(1), key(2), key(3), key(42)].map((k) => view.getShared(k)), 'getShared agrees').toEqual(now);
    const seen: unknown[] = [];
    view.delIfShared(key(0), (value) => { seen.push(value); return false; });
    view.delIfShared(key(4), (value) => { seen.push(value); return (value as { n: number }).n === 4; });
    expect(seen).toEqual([given[0], { n: 4 }]);
    expect(view.getShared(key(0)), 'kept: its test failed').toEqual(given[0]);
    expect(view.getShared(key(4)), 'deleted').toBeUndefined();
    await view.flush();
    expect(db.getNow(key(4))).toBeUndefined();
    expect(db.getNow(key(0)), 'a remembered value is never written').toEqual({ n: 0 });
    await db.close();
  });
});

describe('readAhead', () => {
  it('a key a later write changed is read again when used; the others come from the read ahead', async () => {
    const db = await seeded(4);
    const ahead = db.readAhead([key(0), key(1), key(2), key(9)]);
    const commit = new IndexView(db);
    commit.put(key(1), { n: 101 });
    commit.put(key(9), { n: 9 });
    await db.writeBehind(commit.takePending(), { deferred: true }); // registered, maybe not landed
    const taken = await ahead.take();
    expect([...taken.keys()].sort(), 'what the write changed is left out').toEqual([key(0), key(2)].map((k) => k.toString('latin1')));
    expect(taken.get(key(0).toString('latin1'))).toEqual({ n: 0 });
    const view = new IndexView(db);
    await view.adopt(db.readAhead([key(1), key(9)]));
    expect(view.getShared(key(1)), 'read after the write: its value').toEqual({ n: 101 });
    expect(view.getShared(key(9)), 'absent when read ahead, then written').toEqual({ n: 9 });
    await db.close();
  });

  it('adopt answers from the read ahead only for unchanged keys, even when the change landed before adopt', async () => {
    const db = await seeded(3);
    const ahead = db.readAhead([key(0), key(1), key(7)]);
    const commit = new IndexView(db);
    commit.put(key(7), { n: 7 });
    commit.del(key(0));
    await commit.flush(); // landed in LevelDB: no batch left for getNow to read through
    const view = new IndexView(db);
    await view.adopt(ahead);
    expect(view.getShared(key(0))).toBeUndefined();
    expect(view.getShared(key(7))).toEqual({ n: 7 });
    expect(view.getShared(key(1))).toEqual({ n: 1 });
    await db.close();
  });

  it('a damaged value read ahead is not kept: getShared reads it again and throws CORRUPT; the other keys come from the read ahead', async () => {
    const db = await seeded(3);
    await db.write([{ type: 'put', key: key(2), value: Buffer.from('not a checksummed value') }]);
    const ahead = db.readAhead([key(0), key(2)]);
    const view = new IndexView(db);
    await view.adopt(ahead);
    expect(view.getShared(key(0))).toEqual({ n: 0 });
    let thrown: unknown;
    try { view.getShared(key(2)); } catch (error) { thrown = error; }
    expect(thrown).toBeInstanceOf(MailstoreError);
    expect((thrown as MailstoreError).code).toBe('CORRUPT');
    await db.close();
  });

  it('a write that does not say which keys it changed (write, bulkLoad) or a release leaves nothing to use', async () => {
    const db = await seeded(2);
    const written = db.readAhead([key(0), key(1)]);
    await db.write([{ type: 'put', key: key(5), value: Buffer.from('x') }]);
    expect((await written.take()).size).toBe(0);
    const released = db.readAhead([key(0)]);
    released.release();
    expect((await released.take()).size).toBe(0);
    const kept = db.readAhead([key(0), key(1)]);
    expect((await kept.take()).size, 'nothing written: both kept').toBe(2);
    await db.close();
  });
});
