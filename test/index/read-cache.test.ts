// IndexDb.getNow keeps what LevelDB returned for mailbox-name and meta keys (every append reads
// the same few: its mailbox's name, the quota entries above it, which are absent unless a quota is
// set, and meta counters). The cache must never answer with a value the index no longer holds:
// each write path (writeBehind, write, a bulk load) is checked here after a read cached the old
// value, and so is a read made while such a write is in flight.
import { describe, expect, it } from 'vitest';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { encodeValue } from '../../src/index/codec.js';
import { keys } from '../../src/keys/index-keys.js';
import { Store } from '../../src/store/store.js';
import { MailstoreError } from '../../src/errors.js';
import { setQuota } from '../../src/store/quota.js';
import { tmpDir } from '../helpers/tmp.js';

const meta = keys.meta('test/counter');
const name = keys.name(['user', 'alice', 'INBOX']);

async function withValues(values: [Buffer, unknown][]): Promise<IndexDb> {
  const db = await IndexDb.open(tmpDir(), true);
  const view = new IndexView(db);
  for (const [key, value] of values) view.put(key, value);
  await view.flush();
  return db;
}

describe('IndexDb read cache', () => {
  it('a key read as absent, then written through writeBehind, reads as written before and after the batch lands', async () => {
    const db = await withValues([]);
    expect(db.getNow(meta), 'absent: cached as absent').toBeUndefined();
    const view = new IndexView(db);
    view.put(meta, 7);
    await db.writeBehind(view.takePending(), { deferred: true });
    expect(db.getNow(meta), 'the batch not yet handed to LevelDB').toBe(7);
    await db.settle();
    expect(db.getNow(meta), 'landed').toBe(7);
    const del = new IndexView(db);
    del.del(meta);
    await db.writeBehind(del.takePending());
    await db.settle();
    expect(db.getNow(meta), 'deleted through writeBehind after 7 was cached').toBeUndefined();
    await db.close();
  });

  it('a read while writeBehind waits for an earlier batch (its keys not yet visible) leaves nothing stale once the batch lands', async () => {
    const db = await withValues([[meta, 1]]);
    const earlier = new IndexView(db);
    earlier.put(keys.meta('test/other'), 5);
    await db.writeBehind(earlier.takePending(), { deferred: true }); // registered, not handed over
    expect(db.getNow(meta)).toBe(1);
    const view = new IndexView(db);
    view.put(meta, 2);
    const registering = db.writeBehind(view.takePending()); // waits for `earlier` to land first
    expect(db.getNow(meta), 'not visible yet: LevelDB\'s value').toBe(1);
    await (await registering).landed;
    expect(db.getNow(meta)).toBe(2);
    await db.close();
  });

  it('write() and a bulk load replace cached values, also one read while the write is in flight', async () => {
    const db = await withValues([[meta, 1], [name, Buffer.alloc(16, 1)]]);
    expect(db.getNow(meta)).toBe(1);
    const writing = db.write([{ type: 'put', key: meta, value: encodeValue(meta, 2) }]);
    expect([1, 2], 'either side of the write while it is in flight').toContain(db.getNow(meta));
    await writing;
    expect(db.getNow(meta), 'after the write landed, whatever was read meanwhile').toBe(2);

    expect(db.getNow(name)).toEqual(Buffer.alloc(16, 1));
    const load = db.bulkLoad(1000);
    load.put(name, Buffer.alloc(16, 2));
    expect(db.getNow(name), 'not yet loaded').toEqual(Buffer.alloc(16, 1));
    await load.finish();
    expect(db.getNow(name), 'loaded: no value read during the load is kept').toEqual(Buffer.alloc(16, 2));
    await db.close();
  });

  it('hands out bytes as a copy and keeps no objects (a caller changing its value changes nothing for the next)', async () => {
    const db = await withValues([[name, Buffer.alloc(16, 3)], [meta, { limit: 5 }]]);
    db.getNow<Buffer>(name)!.fill(8); // from LevelDB, now cached
    db.getNow<Buffer>(name)!.fill(9); // from the cache
    expect(db.getNow(name)).toEqual(Buffer.alloc(16, 3));
    const object = db.getNow<{ limit: number }>(meta)!;
    object.limit = 99;
    expect(db.getNow(meta)).toEqual({ limit: 5 });
    await db.close();
  });

  it('through the store: a quota set after appends read its absence is enforced; a renamed mailbox is not found under its old name', async () => {
    const store = await Store.open(tmpDir(), { create: true });
    await store.createMailbox('user/alice/INBOX');
    const msg = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
    await store.append('user/alice/INBOX', msg(1));
    await store.append('user/alice/INBOX', msg(2)); // the quota keys above INBOX were read (absent) twice
    await setQuota(store, 'user/alice', { messages: 3 });
    await store.append('user/alice/INBOX', msg(3));
    const refused = await store.append('user/alice/INBOX', msg(4)).then(() => undefined, (e: unknown) => e);
    expect((refused as MailstoreError).code).toBe('OVER_QUOTA');
    await store.createMailbox('user/bob/INBOX');
    await store.append('user/bob/INBOX', msg(5)); // its name read (and kept)
    await store.renameMailbox('user/bob/INBOX', 'user/bob/Old');
    const gone = await store.append('user/bob/INBOX', msg(6)).then(() => undefined, (e: unknown) => e);
    expect((gone as MailstoreError).code).toBe('NOT_FOUND');
    expect((await store.append('user/bob/Old', msg(7))).uid).toBe(2);
    await store.close();
  });
});
