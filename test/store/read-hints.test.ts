// The blob-location hint in message records (docs/FORMAT.md, "Blob-location hints"): apply writes
// where the blob is, reads go there first and trust it only as far as a read verifies (record
// header, length, hash); a stale, foreign or damaged hint falls back to the B entry, so a read
// hands out the message's own bytes or the error it would have without hints.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { PackedStore as Store } from '../helpers/packed.js';
import { Store as InlineStore } from '../../src/store/store.js';
import { encodeValue } from '../../src/index/codec.js';
import { keys } from '../../src/keys/index-keys.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { checkpointOps } from '../../src/store/checkpoint.js';
import { applyStateOp } from '../../src/store/apply.js';
import type { BlobRecord, MessageRecord } from '../../src/store/records.js';
import { body, churned, expectExact, expectExactAfterRebuild } from './compact-helpers.js';
import { expectCode } from '../sim/helpers.js';
import { internalsOf, rawLevelOf } from '../helpers/internals.js';
import { SPACE } from '../../src/keys/tuple.js';
import { tmpDir } from '../helpers/tmp.js';

type AnyStore = Awaited<ReturnType<typeof InlineStore.open>>;

async function recordOf(store: AnyStore, mailbox: string, uid: number): Promise<{ key: Buffer; record: MessageRecord }> {
  const box = await store.mailbox(mailbox);
  const key = keys.message(Buffer.from(box.id.replace(/-/g, ''), 'hex'), uid);
  return { key, record: (await store.maintenance().index.get<MessageRecord>(key))! };
}

async function blobOf(store: AnyStore, record: MessageRecord): Promise<BlobRecord> {
  return (await store.maintenance().index.get<BlobRecord>(keys.blob(Buffer.from(record.h))))!;
}

/** Rewrites a message record (a valid value: what a hint written wrong or left stale would be). */
async function putRecord(store: AnyStore, key: Buffer, record: Record<string, unknown>): Promise<void> {
  await rawLevelOf(store).put(key, encodeValue(key, record));
}

async function readAll(store: AnyStore, mailbox: string, options: { lendBodies?: boolean } = {}): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for await (const { info, body: bytes } of store.readMessages(mailbox, options)) out.set(info.uid, Buffer.from(bytes));
  return out;
}

/** INBOX: `n` messages in one batch (so in a pack, next to each other). */
async function inbox(n: number): Promise<{ dir: string; store: AnyStore; bodies: Map<number, Buffer> }> {
  const dir = tmpDir('hints');
  const store = await Store.open(dir, { create: true });
  await store.createMailbox('INBOX');
  const items = Array.from({ length: n }, (_, i) => ({ bytes: body(i + 1, 300 + i * 37) }));
  const results = await store.appendBatch('INBOX', items);
  return { dir, store, bodies: new Map(results.map((r, i) => [r.uid, items[i].bytes])) };
}

async function expectReads(store: AnyStore, bodies: Map<number, Buffer>): Promise<void> {
  for (const lendBodies of [false, true]) {
    const read = await readAll(store, 'INBOX', { lendBodies });
    expect([...read.keys()]).toEqual([...bodies.keys()]);
    for (const [uid, bytes] of bodies) expect(read.get(uid)!.equals(bytes), `readMessages uid ${uid}`).toBe(true);
  }
  for (const [uid, bytes] of bodies) expect((await store.fetch('INBOX', uid)).equals(bytes), `fetch uid ${uid}`).toBe(true);
}

describe('blob-location hints', () => {
  it('apply writes the B entry\'s location into the record: packed, deduplicated, copied and inline', async () => {
    const { store } = await inbox(3);
    await store.append('INBOX', body(1, 300)); // the same bytes as uid 1: deduplicated
    await store.createMailbox('Other');
    await store.copy('INBOX', [2], 'Other');
    for (const [mailbox, uid] of [['INBOX', 1], ['INBOX', 4], ['Other', 1]] as const) {
      const { record } = await recordOf(store, mailbox, uid);
      const blob = await blobOf(store, record);
      expect([record.p, record.o], `${mailbox} ${uid}`).toEqual([blob.p, blob.o]);
      expect(record.p).toBeGreaterThan(0);
    }
    await store.close();
    const dir = tmpDir('hints-inline');
    const inline = await InlineStore.open(dir, { create: true });
    await inline.createMailbox('INBOX');
    await inline.append('INBOX', body(1, 300));
    const { record } = await recordOf(inline, 'INBOX', 1);
    expect(record.p).toBe(INLINE_PACK);
    expect(record.o).toBe((await blobOf(inline, record)).o); // the journal seq
    expect((await inline.fetch('INBOX', 1)).equals(body(1, 300))).toBe(true);
    await inline.close();
  });

  it('stale hints after compaction relocated the blobs: the right bytes, from the B entry; also after a reopen and a rebuild', async () => {
    const dir = tmpDir('hints-compact');
    const { store, bodies, gone } = await churned(dir);
    await store.compact();
    const { record } = await recordOf(store, 'M', 5);
    const blob = await blobOf(store, record);
    expect([record.p, record.o], 'compaction leaves the hint stale').not.toEqual([blob.p, blob.o]);
    await expectExact(store, bodies, gone);
    const read = await readAll(store, 'M');
    for (const [uid, bytes] of read) expect(bytes.equals(bodies.get(uid)!), `uid ${uid}`).toBe(true);
    expect(read.size).toBe(bodies.size - gone.length);
    await store.close();
    // reopened: the retired pack is no longer known as retired, its file is gone
    const reopened = await Store.open(dir);
    await expectExact(reopened, bodies, gone);
    expect((await readAll(reopened, 'M')).size).toBe(bodies.size - gone.length);
    await reopened.close();
    // a rebuild replays the same hints (stale as live), and reads stay exact
    await expectExactAfterRebuild(dir, bodies, gone);
  });

  it('a hint at another message\'s record, or inside one: refused by the checks, read from the B entry', async () => {
    const { store, bodies } = await inbox(12);
    const third = (await recordOf(store, 'INBOX', 3)).record;
    for (const uid of [2, 4, 9]) {
      const { key, record } = await recordOf(store, 'INBOX', uid);
      // 2 and 4: another message's valid record (header and hash hold for it, not for this one);
      // 9: the middle of a record (no record header there)
      const o = uid === 9 ? third.o! + RECORD_HEADER_BYTES + 10 : third.o!;
      await putRecord(store, key, { ...record, p: third.p, o });
    }
    await expectReads(store, bodies);
    await store.close();
  });

  it('damaged hint values (wrong types, out of range, a pack that does not exist, a journal seq with no such body): ignored or refused, the right bytes', async () => {
    const { store, bodies } = await inbox(10);
    const wrong: Record<number, Record<string, unknown>> = {
      1: { p: 'x', o: 40 }, 2: { p: 0, o: 40 }, 3: { p: -5, o: 40 }, 4: { p: 1, o: -1 },
      5: { p: 1, o: 2 ** 40 }, 6: { p: 99_999, o: 40 }, 7: { p: INLINE_PACK, o: 1 }, 8: { p: 1.5, o: 40 }, 9: { p: 1 },
    };
    for (const [uid, hint] of Object.entries(wrong)) {
      const { key, record } = await recordOf(store, 'INBOX', Number(uid));
      const { p: _p, o: _o, ...rest } = record;
      await putRecord(store, key, { ...rest, ...hint });
    }
    await expectReads(store, bodies);
    await store.close();
  });

  it('old-format records (no hint) read from their B entries as before, mixed with hinted ones; their damage reports as before', async () => {
    const { dir, store, bodies } = await inbox(10);
    for (const uid of [1, 2, 3, 5, 8, 9]) {
      const { key, record } = await recordOf(store, 'INBOX', uid);
      const { p: _p, o: _o, ...old } = record;
      await putRecord(store, key, old);
    }
    await expectReads(store, bodies);
    // a damaged body: the error is the read's, with or without a hint (uid 3 old, uid 4 hinted)
    const packPath = join(dir, 'packs', '00000001.pack');
    const pack = readFileSync(packPath);
    for (const uid of [3, 4]) {
      const { record } = await recordOf(store, 'INBOX', uid);
      pack[(await blobOf(store, record)).o + RECORD_HEADER_BYTES + 5] ^= 0x01;
    }
    writeFileSync(packPath, pack);
    await internalsOf(store).packs.forgetReadHandles();
    const reopened = store;
    for (const uid of [3, 4]) expect((await expectCode(reopened.fetch('INBOX', uid), 'CORRUPT')).message).toContain('does not match its hash');
    const reported: number[] = [];
    const read = new Map<number, Buffer>();
    for await (const { info, body: bytes } of reopened.readMessages('INBOX', { onCorrupt: (info) => reported.push(info.uid) })) read.set(info.uid, bytes);
    expect(reported).toEqual([3, 4]);
    for (const [uid, bytes] of read) expect(bytes.equals(bodies.get(uid)!), `uid ${uid}`).toBe(true);
    expect(read.size).toBe(8);
    await reopened.close();
  });

  it('a hint that still reads needs no B entry; without the hint a missing B entry is CORRUPT as before', async () => {
    const { store, bodies } = await inbox(4);
    const { key, record } = await recordOf(store, 'INBOX', 2);
    await rawLevelOf(store).del(keys.blob(Buffer.from(record.h)));
    expect((await store.fetch('INBOX', 2)).equals(bodies.get(2)!)).toBe(true);
    const { p: _p, o: _o, ...old } = record;
    await putRecord(store, key, old);
    await expectCode(store.fetch('INBOX', 2), 'CORRUPT');
    await store.close();
  });

  it('a checkpoint carries the hints: its replay reproduces the message records byte for byte', async () => {
    const dir = tmpDir('hints-checkpoint');
    const { store } = await churned(dir);
    await store.compact(); // stale hints too
    const db = store.maintenance().index;
    const replayed = new Map<string, Buffer>();
    for await (const op of checkpointOps(db, 0)) applyStateOp({ put: (key: Buffer, value: unknown) => { replayed.set(key.toString('hex'), encodeValue(key, value)); } }, op);
    let messages = 0;
    for await (const [key, value] of db.rawIterator({ gte: Buffer.of(SPACE.message), lt: Buffer.of(SPACE.message + 1) })) {
      expect(replayed.get(Buffer.from(key).toString('hex')), 'a replayed message record').toEqual(Buffer.from(value));
      messages++;
    }
    expect(messages).toBe(9);
    await store.close();
  });
});

describe('compareIndexes and hints', () => {
  it('takes message records that differ only in their hint as the same, and any other difference as one', async () => {
    const { IndexDb } = await import('../../src/index/index-db.js');
    const { compareIndexes } = await import('../../src/store/recovery.js');
    const id = Buffer.alloc(16, 7);
    const base: MessageRecord = { h: Buffer.alloc(32, 1), s: 10, d: 1_700_000_000_000, f: ['\\Seen'], m: 5 };
    const records: [number, MessageRecord, MessageRecord][] = [
      [1, base, { ...base, p: 3, o: 32 }], // an old index against its rebuild: the same mail
      [2, { ...base, p: 3, o: 32 }, { ...base, p: 9, o: 4096 }], // hints that moved: the same mail
      [3, base, { ...base, f: [], p: 3, o: 32 }], // flags differ beside the hint
    ];
    const dbs = [await IndexDb.open(join(tmpDir(), 'a'), true), await IndexDb.open(join(tmpDir(), 'b'), true)];
    try {
      for (const [side, db] of dbs.entries()) {
        await db.write(records.map(([uid, a, b]) => ({ type: 'put' as const, key: keys.message(id, uid), value: encodeValue(keys.message(id, uid), side === 0 ? a : b) })));
      }
      const found: string[] = [];
      for await (const d of compareIndexes(dbs[0]!, dbs[1]!)) found.push(`${d.key.equals(keys.message(id, 3)) ? 'uid 3' : d.key.toString('hex')}: ${d.detail}`);
      expect(found).toEqual(['uid 3: values differ']);
    } finally {
      for (const db of dbs) await db.close();
    }
  });
});
