// Store.readMessages, the bulk read behind IMAP FETCH 1:* BODY[] and export: it must hand out
// exactly what fetch would, in uid order, verified, and report damage the way fetch does.
import { describe, expect, it, vi } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageInfo } from '../../src/store/store.js';
// every body in a pack: a test flips pack bytes (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { MailstoreError } from '../../src/errors.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { keys, messageKeyUid } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import { tmpDir } from '../helpers/tmp.js';
import { IndexDb } from '../../src/index/index-db.js';
import { internalsOf, rawLevelOf } from '../helpers/internals.js';
import { encodeValue } from '../../src/index/codec.js';
import type { MessageRecord } from '../../src/store/records.js';

const msg = (i: number | string, padBytes = 0) =>
  Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n${'x'.repeat(padBytes)}`);

async function collect(store: Store, mailbox: string, options: Parameters<Store['readMessages']>[1] = {}) {
  const out: { info: MessageInfo; body: Buffer }[] = [];
  for await (const item of store.readMessages(mailbox, options)) out.push(item);
  return out;
}

/** What messages() and fetch() say about every message, in uid order. */
async function viaFetch(store: Store, mailbox: string, fromUid?: number) {
  const out: { info: MessageInfo; body: Buffer }[] = [];
  for await (const info of store.messages(mailbox, { fromUid })) out.push({ info, body: await store.fetch(mailbox, info.uid) });
  return out;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe(code);
  return error as MailstoreError;
}

/** Flips one byte of the first pack record holding `marker`; the store rereads the packs. */
async function flipByte(store: Store, dir: string, marker: string): Promise<void> {
  for (const name of readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'))) {
    const path = join(dir, 'packs', name);
    const pack = readFileSync(path);
    const at = pack.indexOf(marker);
    if (at < 0) continue;
    pack[at] ^= 0x01;
    writeFileSync(path, pack);
    await internalsOf(store).packs.forgetReadHandles();
    return;
  }
  throw new Error(`no pack holds ${marker}`);
}

/**
 * INBOX: 700 messages over several packs (more than one index batch), a few big ones (more than one
 * group of bodies, one alone), an empty one, duplicates of earlier bytes, and expunged gaps.
 * Reversed: the same messages copied in reverse, so uid order runs against pack order.
 */
/** A store whose INBOX holds 700 messages of assorted sizes: several index batches. */
async function inboxOf700(): Promise<{ store: Store; bodies: Buffer[] }> {
  const store = await Store.open(tmpDir(), { create: true });
  await store.createMailbox('INBOX');
  const bodies = Array.from({ length: 700 }, (_, i) => msg(i, (i * 53) % 3000));
  await store.appendBatch('INBOX', bodies.map((bytes) => ({ bytes })));
  return { store, bodies };
}

/** Rewrites every message record without its blob-location hint, as records written before hints were (docs/FORMAT.md). */
async function withoutHints(store: Store): Promise<void> {
  const records: [Buffer, MessageRecord][] = [];
  for await (const entry of internalsOf(store).db.entries<MessageRecord>({ prefix: Buffer.of(SPACE.message) })) records.push(entry);
  for (const [key, { p: _pack, o: _offset, ...old }] of records) await rawLevelOf(store).put(key, encodeValue(key, old));
}

async function mixedStore(dir: string): Promise<Store> {
  const store = await Store.open(dir, { create: true, packBytesMax: 2 * 1024 * 1024 });
  await store.createMailbox('INBOX');
  await store.createMailbox('Reversed');
  const items: { bytes: Buffer }[] = [];
  for (let i = 0; i < 700; i++) {
    const big = i % 150 === 7 ? 3 * 1024 * 1024 : i === 400 ? 9 * 1024 * 1024 : 0;
    items.push({ bytes: i % 50 === 3 ? items[i - 1].bytes : msg(i, big || (i * 37) % 5000) });
  }
  items.push({ bytes: Buffer.alloc(0) });
  for (let i = 0; i < items.length; i += 100) await store.appendBatch('INBOX', items.slice(i, i + 100));
  await store.expunge('INBOX', [1, 2, 5, 99, 100, 101, 300, 701]);
  const uids: number[] = [];
  for await (const info of store.messages('INBOX')) uids.push(info.uid);
  for (const uid of uids.reverse()) await store.copy('INBOX', uid, 'Reversed');
  return store;
}

describe('Store.readMessages', () => {
  it('messages another client expunged meanwhile, whose blobs a compaction then reclaimed, are left out: no CORRUPT, onCorrupt not called', async () => {
    const store = await Store.open(tmpDir(), { create: true, packBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const uids = (await store.appendBatch('INBOX', Array.from({ length: 700 }, (_, i) => ({ bytes: msg(i, 2000) })))).map((r) => r.uid);
    const kept = uids.filter((u) => u % 100 === 1);
    const onCorrupt = vi.fn();
    const read: number[] = [];
    for await (const { info, body } of store.readMessages('INBOX', { onCorrupt })) {
      expect(body.equals(msg(info.uid - 1, 2000)), `uid ${info.uid}`).toBe(true);
      if (read.push(info.uid) > 1) continue;
      // the first batch is out; the batches after it are located once these are gone
      await store.expunge('INBOX', uids.filter((u) => !kept.includes(u)));
      expect((await store.compact({ deadRatio: 0.01 })).packsRemoved.length).toBeGreaterThan(0);
    }
    expect(onCorrupt).not.toHaveBeenCalled();
    for (const u of kept) expect(read).toContain(u); // every message still there came out
    expect(read).toEqual([...read].sort((a, b) => a - b));
    expect((await collect(store, 'INBOX')).map((m) => m.info.uid)).toEqual(kept);
    await store.close();
  });

  it('returns exactly what messages() and fetch() return, in uid order, deduplicated blobs and expunge gaps included', async () => {
    const dir = tmpDir();
    const store = await mixedStore(dir);
    expect(readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack')).length).toBeGreaterThan(3);
    for (const mailbox of ['INBOX', 'Reversed']) {
      const bulk = await collect(store, mailbox);
      const single = await viaFetch(store, mailbox);
      expect(bulk.length).toBe(701 - 8);
      expect(bulk.map((m) => m.info)).toEqual(single.map((m) => m.info));
      for (let i = 0; i < bulk.length; i++) {
        expect(bulk[i].body.equals(single[i].body), `${mailbox} uid ${bulk[i].info.uid}`).toBe(true);
      }
      const uids = bulk.map((m) => m.info.uid);
      expect(uids).toEqual([...uids].sort((a, b) => a - b));
    }
    const inbox = await collect(store, 'INBOX');
    expect(inbox.map((m) => m.info.uid)).not.toContain(5);
    expect(new Set(inbox.map((m) => m.info.hash)).size).toBe(inbox.length - 14); // the 14 deduplicated copies
    await store.close();
  });

  it('fromUid starts at the first message at or above it', async () => {
    const dir = tmpDir();
    const store = await mixedStore(dir);
    for (const fromUid of [1, 99, 102, 400, 700]) {
      const bulk = await collect(store, 'INBOX', { fromUid });
      const single = await viaFetch(store, 'INBOX', fromUid);
      expect(bulk.map((m) => m.info)).toEqual(single.map((m) => m.info));
      expect(bulk[0].info.uid).toBe(({ 1: 3, 99: 102 } as Record<number, number>)[fromUid] ?? fromUid);
      expect(bulk.every((m, i) => m.body.equals(single[i].body))).toBe(true);
    }
    expect(await collect(store, 'INBOX', { fromUid: 701 })).toEqual([]);
    await expectCode(collect(store, 'INBOX', { fromUid: 0 }), 'INVALID');
    await expectCode(collect(store, 'nowhere'), 'NOT_FOUND');
    await store.close();
  });

  it('a flipped pack byte: CORRUPT, as fetch says, after every earlier message; the bad bytes never come out', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 600; i++) await store.append('INBOX', msg(i === 450 ? 'MARKER-450' : i));
    await flipByte(store, dir, 'MARKER-450');
    const fetchError = await expectCode(store.fetch('INBOX', 450), 'CORRUPT');

    const seen: number[] = [];
    const error = await expectCode((async () => {
      for await (const { info, body } of store.readMessages('INBOX')) {
        expect(hashBytes(body).toString('hex')).toBe(info.hash);
        seen.push(info.uid);
      }
    })(), 'CORRUPT');
    expect(error.message).toBe(fetchError.message);
    expect(seen).toEqual(Array.from({ length: 449 }, (_, i) => i + 1));

    // With onCorrupt it is reported and skipped; everything else comes out.
    const reported: [number, string][] = [];
    const bulk = await collect(store, 'INBOX', { onCorrupt: (info, e) => reported.push([info.uid, e.code]) });
    expect(reported).toEqual([[450, 'CORRUPT']]);
    expect(bulk.map((m) => m.info.uid)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1).filter((uid) => uid !== 450));
    expect(bulk.every(({ info, body }) => hashBytes(body).toString('hex') === info.hash)).toBe(true);

    // Starting past it, nothing is wrong.
    expect((await collect(store, 'INBOX', { fromUid: 451 })).length).toBe(150);
    await store.close();
  });

  it('coalesced pack reads: a damaged record header or length costs only its own message; messages across run boundaries come out exact', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    // sizes around limits.readTurnBytes (1 MiB) and readGapBytes, so runs end inside the sequence
    // and one message is bigger than a run; all in one pack, adjacent, in uid order
    const sizes = [10, 700 * 1024, 400 * 1024, 5, 1300 * 1024, 20 * 1024, 3, 600 * 1024, 500 * 1024, 7];
    const bodies = sizes.map((n, i) => msg(i === 3 ? 'MAGIC-4' : i === 6 ? 'LENGTH-7' : i, n));
    for (const bytes of bodies) await store.append('INBOX', bytes);
    const packs = readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));
    expect(packs.length).toBe(1);
    const path = join(dir, 'packs', packs[0]);
    const pack = readFileSync(path);
    const headerOf = (marker: string) => pack.indexOf(marker) - (RECORD_HEADER_BYTES + msg('').indexOf('Subject: ') + 'Subject: '.length);
    pack[headerOf('MAGIC-4')] ^= 0x01; // uid 4: the record's magic
    pack[headerOf('LENGTH-7') + 43] ^= 0x01; // uid 7: its length (and so its checksum)
    writeFileSync(path, pack);
    await internalsOf(store).packs.forgetReadHandles();
    const fetchErrors = new Map<number, string>();
    for (const uid of [4, 7]) fetchErrors.set(uid, (await expectCode(store.fetch('INBOX', uid), 'CORRUPT')).message);

    const reported: [number, string][] = [];
    const bulk = await collect(store, 'INBOX', { onCorrupt: (info, e) => reported.push([info.uid, e.code]) });
    expect(reported).toEqual([[4, 'CORRUPT'], [7, 'CORRUPT']]);
    expect(bulk.map((m) => m.info.uid)).toEqual([1, 2, 3, 5, 6, 8, 9, 10]);
    for (const { info, body } of bulk) expect(body.equals(bodies[info.uid - 1]), `uid ${info.uid}`).toBe(true);
    const error = await expectCode(collect(store, 'INBOX'), 'CORRUPT');
    expect(error.message).toBe(fetchErrors.get(4));
    expect(error.message).toContain('record header is damaged');
    await store.close();
  });

  it('a blob the index does not know, and a damaged blob index value: CORRUPT, as fetch says', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    const results = [];
    for (let i = 1; i <= 5; i++) results.push(await store.append('INBOX', msg(i)));
    await withoutHints(store); // with one, a read needs no B entry (read-hints.test.ts)
    await internalsOf(store).db.write([{ type: 'del', key: keys.blob(Buffer.from(results[1].hash, 'hex')) }]);
    const damagedKey = keys.blob(Buffer.from(results[3].hash, 'hex'));
    const raw = Buffer.from(await rawLevelOf(store).get(damagedKey));
    raw[raw.length - 1] ^= 0xff;
    await rawLevelOf(store).put(damagedKey, raw);

    const fetchErrors = [await expectCode(store.fetch('INBOX', 2), 'CORRUPT'), await expectCode(store.fetch('INBOX', 4), 'CORRUPT')];
    const seen: number[] = [];
    const error = await expectCode((async () => {
      for await (const { info } of store.readMessages('INBOX')) seen.push(info.uid);
    })(), 'CORRUPT');
    expect(seen).toEqual([1]);
    expect(error.message).toBe(fetchErrors[0].message);

    const reported: [number, string][] = [];
    const bulk = await collect(store, 'INBOX', { onCorrupt: (info, e) => reported.push([info.uid, e.message]) });
    expect(bulk.map((m) => m.info.uid)).toEqual([1, 3, 5]);
    expect(reported).toEqual([[2, fetchErrors[0].message], [4, fetchErrors[1].message]]);
    await store.close();
  });

  it('a damaged message index value: CORRUPT naming its key, after every message of the batches before it; the others intact', async () => {
    const { store, bodies } = await inboxOf700();
    let damagedKey: Buffer | undefined; // INBOX's message 300 (the only mailbox)
    for await (const [key] of internalsOf(store).db.entries({ prefix: Buffer.of(SPACE.message) })) {
      if (messageKeyUid(key) === 300) damagedKey = key;
    }
    const raw = Buffer.from(await rawLevelOf(store).get(damagedKey!));
    raw[raw.length - 3] ^= 0x20; // inside the record's last field: the checksum fails, the shape still parses
    await rawLevelOf(store).put(damagedKey!, raw);

    const seen: Buffer[] = [];
    const error = await expectCode((async () => { for await (const { body } of store.readMessages('INBOX')) seen.push(body); })(), 'CORRUPT');
    expect(error.path).toBe(damagedKey!.toString('hex'));
    expect(seen.length % 128, 'whole batches before the damaged one').toBe(0);
    expect(seen.length).toBeLessThan(300);
    seen.forEach((body, i) => expect(body.equals(bodies[i]), `uid ${i + 1}`).toBe(true));
    // nothing else lost: every other message still reads, verified
    for (const uid of [1, 299, 301, 700]) expect((await store.fetch('INBOX', uid)).equals(bodies[uid - 1]), `uid ${uid}`).toBe(true);
    await expectCode(store.fetch('INBOX', 300), 'CORRUPT');
    const after = await collect(store, 'INBOX', { fromUid: 301 });
    expect(after.length).toBe(400);
    await store.close();
  });

  it('an index read that fails on a later batch: every message of the batches before it comes out first, then the IO error', async () => {
    const { store, bodies } = await inboxOf700();
    await withoutHints(store); // the blob lookups are the B entries' (with hints, only a stale one's)
    const getMany = IndexDb.prototype.getMany;
    let calls = 0, firstBatch = 0;
    const spy = vi.spyOn(IndexDb.prototype, 'getMany').mockImplementation(function (this: IndexDb, ...args: Parameters<IndexDb['getMany']>) {
      // the blob lookups of the second batch of records fail as a disk would (a batch is at most
      // limits.readBatchMessages; LevelDB may hand back fewer)
      if (++calls === 1) firstBatch = args[0].length;
      if (calls === 2) return Promise.reject(new MailstoreError('IO', 'index read failed (injected)'));
      return getMany.apply(this, args) as never;
    });
    const seen: Buffer[] = [];
    const error = await (async () => { for await (const { body } of store.readMessages('INBOX')) seen.push(body); })().catch((e: unknown) => e);
    spy.mockRestore();
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('IO');
    expect(firstBatch).toBeGreaterThan(100);
    expect(seen.length).toBe(firstBatch);
    seen.forEach((body, i) => expect(body.equals(bodies[i]), `uid ${i + 1}`).toBe(true));
    expect((await collect(store, 'INBOX')).length, 'nothing lost').toBe(700);
    await store.close();
  });

  it('an index scan that fails on a batch read ahead of the blob lookups: every message of the batches before it comes out first, then the IO error', async () => {
    const { store, bodies } = await inboxOf700();
    const entryBatches = IndexDb.prototype.entryBatches;
    const sizes: number[] = [];
    const spy = vi.spyOn(IndexDb.prototype, 'entryBatches').mockImplementation(function (this: IndexDb, ...args: Parameters<IndexDb['entryBatches']>) {
      const inner = entryBatches.apply(this, args);
      // the third batch's scan fails as a disk would, while the second batch's blobs are looked up
      return (async function* () {
        try {
          for await (const batch of inner) {
            if (sizes.length === 2) throw new MailstoreError('IO', 'index scan failed (injected)');
            sizes.push(batch.length);
            yield batch;
          }
        } finally {
          await inner.return(undefined);
        }
      })() as never;
    });
    const seen: Buffer[] = [];
    const error = await (async () => { for await (const { body } of store.readMessages('INBOX')) seen.push(body); })().catch((e: unknown) => e);
    spy.mockRestore();
    expect((error as MailstoreError).code).toBe('IO');
    expect(sizes.length).toBe(2);
    expect(seen.length).toBe(sizes[0] + sizes[1]);
    seen.forEach((body, i) => expect(body.equals(bodies[i]), `uid ${i + 1}`).toBe(true));
    expect((await collect(store, 'INBOX')).length, 'nothing lost').toBe(700);
    await store.close();
  });

  it('a consumer that stops early leaves nothing open: the store closes, and later reads work', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', Array.from({ length: 1000 }, (_, i) => ({ bytes: msg(i) })));
    let read = 0;
    for await (const _ of store.readMessages('INBOX')) if (++read === 300) break;
    expect((await collect(store, 'INBOX')).length).toBe(1000);
    await store.close();
    await expectCode(collect(store, 'INBOX'), 'CLOSED');
  });

  it('as an async generator: next() calls made without waiting come back in uid order, return() and throw() end it, bad options fail at the first next()', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await store.createMailbox('INBOX');
    await store.appendBatch('INBOX', Array.from({ length: 600 }, (_, i) => ({ bytes: msg(i, i % 3000) })));
    const all = await viaFetch(store, 'INBOX');
    // every next() asked for at once, across index batches and runs: each its own message, in order, then done
    const reads = store.readMessages('INBOX');
    const results = await Promise.all(Array.from({ length: 602 }, () => reads.next()));
    expect(results.slice(0, 600).map((r) => r.done ? undefined : [r.value.info.uid, r.value.body.equals(all[r.value.info.uid - 1].body)])).toEqual(all.map((m) => [m.info.uid, true]));
    expect(results.slice(600).every((r) => r.done)).toBe(true);
    // return() between two messages: done from then on, nothing left open
    const early = store.readMessages('INBOX', { lendBodies: true });
    expect((await early.next()).value.info.uid).toBe(1);
    expect(await early.return(undefined)).toEqual({ done: true, value: undefined });
    expect((await early.next()).done).toBe(true);
    // throw(): rejects with what it was given, then done
    const thrown = store.readMessages('INBOX');
    await thrown.next();
    const reason = new Error('consumer gave up');
    await expect(thrown.throw(reason)).rejects.toBe(reason);
    expect((await thrown.next()).done).toBe(true);
    // the checks run at the first next(), as in a generator's body: the call itself does not throw
    const bad = store.readMessages('INBOX', { fromUid: 0 });
    await expectCode(bad.next(), 'INVALID');
    expect((await bad.next()).done).toBe(true);
    expect((await collect(store, 'INBOX')).length).toBe(600);
    await store.close();
  });
});
