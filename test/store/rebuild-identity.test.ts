// A rebuilt index must equal the live one byte for byte (the rebuild has its own fast paths: a
// filter of the keys it wrote, framed constants, keys written in place). A varied workload is
// committed live, then index/ is deleted and rebuilt, and every key and value is compared raw.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Encoder } from 'cbor-x';
import { crc32 } from 'node:zlib';
import { Store } from '../../src/store/store.js';
import { IndexDb } from '../../src/index/index-db.js';
import { decodeValue, encodeValue } from '../../src/index/codec.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE, encodeU32, encodeU64 } from '../../src/keys/tuple.js';
import { limits } from '../../src/limits.js';
import { meta } from '../../src/store/apply.js';
import { prng } from '../helpers/prng.js';
import { tmpDir } from '../helpers/tmp.js';

const msg = (i: number | string, bytes = 200) => Buffer.from(`Subject: m${i}\r\n\r\n${'x'.repeat(bytes)}\r\n`);

/** Every key and value of the index at `path`, raw, as hex lines. */
async function dump(path: string): Promise<string[]> {
  const db = await IndexDb.open(path, false);
  const out: string[] = [];
  try {
    for await (const [key, value] of db.rawIterator({ gte: Buffer.alloc(0), lt: Buffer.from([0xff, 0xff]) })) {
      // the one key no journal gives: the store's view of the wall clock (clock.ts), looked at anew by each open
      if (meta.clock.equals(key)) continue;
      out.push(`${Buffer.from(key).toString('hex')} ${Buffer.from(value).toString('hex')}`);
    }
  } finally {
    await db.close();
  }
  return out;
}

/** Creates, renames, ACLs, flags, expunges, copies, moves, deletes (with purges), dedup, import cursors. */
async function varied(store: Store, rand: () => number): Promise<void> {
  await store.createMailbox('user/alice/INBOX', { owner: 'alice', acl: { alice: 'lrswipkxtea' } });
  await store.createMailbox('user/alice/Sent', { owner: 'alice' });
  await store.createMailbox('shared/news', { acl: { anyone: 'lr', bob: 'lrs' } });
  const boxes = ['user/alice/INBOX', 'user/alice/Sent', 'shared/news'];
  for (let round = 0; round < 6; round++) {
    const box = boxes[round % boxes.length];
    const items = Array.from({ length: 40 }, (_, i) => ({
      bytes: msg(rand() < 0.2 ? 'dup' : `${round}-${i}`, Math.floor(rand() * 3000)),
      flags: rand() < 0.5 ? ['\\Seen'] : rand() < 0.5 ? ['\\Flagged', 'work'] : [],
      internalDate: 1_700_000_000_000 + round * 1000 + i,
      // the optional metadata (issue 18 #10), some of it on some messages
      ...(rand() < 0.4 ? { envelopeFrom: `sender${i}@example.org` } : {}),
      ...(rand() < 0.4 ? { dateZoneMinutes: Math.floor(rand() * 1560) - 720 } : {}),
      ...(rand() < 0.3 ? { recent: true } : {}),
    }));
    await store.appendBatch(box, items, { meta: { key: `import/${box}`, value: { round, at: 'x'.repeat(round) } } });
    for (let i = 0; i < 10; i++) await store.append(box, msg(rand() < 0.3 ? 'dup' : `single-${round}-${i}`), { flags: i % 2 ? ['\\Seen'] : [] });
    await store.setFlags(box, [1, 2, 3, 5 + round], { add: ['\\Flagged', `kw${round}`] });
    await store.setFlags(box, [2, 7], { remove: ['\\Seen'] });
    await store.setFlags(box, [4], { add: ['\\Seen'] });
    await store.expunge(box, [3 + round, 10 + round * 2]);
    await store.copy(box, [1, 8, 9], boxes[(round + 1) % boxes.length]);
    await store.move(box, [11 + round], boxes[(round + 2) % boxes.length]);
    await store.setAcl(box, `user${round}`, round % 2 ? 'lr' : 'lrsw');
    if (round % 3 === 2) await store.setAcl(box, `user${round - 1}`, '');
  }
  await store.renameMailbox('user/alice/Sent', 'user/alice/Sent Items');
  await store.renameMailbox('shared/news', 'shared/archive/news');
  for (let k = 0; k < 2; k++) {
    await store.createMailbox('tmp', { acl: { carol: 'lr' } });
    await store.appendBatch('tmp', Array.from({ length: 30 }, (_, i) => ({ bytes: msg(i % 4 ? `tmp-${k}-${i}` : 'dup') })));
    await store.setFlags('tmp', [1, 2], { add: ['\\Deleted'] });
    await store.copy('user/alice/INBOX', [1, 2], 'tmp');
    await store.deleteMailbox('tmp');
  }
  await store.createMailbox('tmp');
  await store.append('tmp', msg('after delete'));
}

async function liveThenRebuilt(options: { replayBatchKeys: number; filterBytes: number }): Promise<{ live: string[]; rebuilt: string[] }> {
  const mutable = limits as { replayBatchKeys: number; rebuildKeyFilterBytes: number };
  const saved = { ...mutable };
  const dir = tmpDir();
  try {
    mutable.replayBatchKeys = options.replayBatchKeys;
    mutable.rebuildKeyFilterBytes = options.filterBytes;
    let store = await Store.open(dir, { create: true });
    await varied(store, prng(7));
    await store.close();
    const live = await dump(join(dir, 'index'));
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir);
    expect(store.health.rebuilt).toBe('index is missing');
    expect(store.health.degraded).toBe(false);
    await store.close();
    return { live, rebuilt: await dump(join(dir, 'index')) };
  } finally {
    mutable.replayBatchKeys = saved.replayBatchKeys;
    mutable.rebuildKeyFilterBytes = saved.rebuildKeyFilterBytes;
  }
}

describe('rebuild produces the live index byte for byte', () => {
  it('with the default batch and filter sizes', async () => {
    const { live, rebuilt } = await liveThenRebuilt({ replayBatchKeys: limits.replayBatchKeys, filterBytes: limits.rebuildKeyFilterBytes });
    expect(live.length).toBeGreaterThan(500);
    expect(rebuilt).toEqual(live);
  });

  it('with tiny batches (reads through the batch in flight) and a saturated filter (false positives)', async () => {
    const { live, rebuilt } = await liveThenRebuilt({ replayBatchKeys: 7, filterBytes: 4 });
    expect(rebuilt).toEqual(live);
  });

  it('reconstruct --check finds no difference', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    await varied(store, prng(11));
    const result = await store.maintenance().reconstructIndex({ check: true });
    expect(result.differences).toBe(0);
    expect(result.messagesAfter).toBe(result.messagesBefore);
    await store.close();
  });
});

describe('the fast encoders equal the general ones', () => {
  const reference = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true, tagUint8Array: false });
  // index format 2: the CRC32 of the key's bytes then the body (docs/FORMAT.md, "Index values")
  const referenceValue = (value: unknown, key: Buffer) => {
    const body = Buffer.from(reference.encode(value));
    const out = Buffer.alloc(4 + body.length);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(Buffer.concat([key, body])), 0);
    return out;
  };

  it('encodeValue: CBOR after the zlib CRC32, for values of every shape and length', () => {
    const rand = prng(3);
    const values: unknown[] = [0, 1, -0, 2, -1, 0.5, 2 ** 32, 2 ** 53 - 1, null, true, 'x', Buffer.alloc(16, 9), [], {}];
    for (let i = 0; i < 2000; i++) {
      const hash = Buffer.from(Array.from({ length: 32 }, () => Math.floor(rand() * 256)));
      values.push({ h: hash, s: Math.floor(rand() * 2 ** 26), d: 1_700_000_000_000 + i, f: i % 3 ? ['\\Seen'] : [], m: Math.floor(rand() * 2 ** 40) });
      values.push({ p: i, o: Math.floor(rand() * 2 ** 30), l: i * 7, r: i % 5 });
      values.push({ name: ['user', `u${i}`], pastNames: Array.from({ length: i % 40 }, (_, k) => [`old${k}`]), acl: { alice: 'lr'.repeat(i % 200) } });
    }
    const key = Buffer.from('k');
    for (const value of values) expect(encodeValue(key, value).equals(referenceValue(value, key))).toBe(true);
    for (const value of values.slice(0, 14)) expect(decodeValue(referenceValue(value, key), key)).toEqual(Object.is(value, -0) ? 0 : value); // CBOR has no -0 integer
    // 0 and 1 (one CBOR byte) skip the decoder, not the checksum: a damaged one still fails it
    for (const value of [0, 1]) {
      const damaged = referenceValue(value, key);
      damaged[0] ^= 0x40;
      expect(() => decodeValue(damaged, key)).toThrow(/fails its checksum/);
    }
  });

  it('keys written in place equal the concatenated tuples', () => {
    const rand = prng(5);
    const cat = (...parts: Uint8Array[]) => Buffer.concat(parts);
    for (let i = 0; i < 2000; i++) {
      const id = Buffer.from(Array.from({ length: 16 }, () => Math.floor(rand() * 256)));
      const hash = Buffer.from(Array.from({ length: 32 }, () => Math.floor(rand() * 256)));
      const uid = i < 3 ? [0, 1, 0xffffffff][i] : Math.floor(rand() * 2 ** 32);
      const modseq = i < 3 ? [0, 2 ** 32, Number.MAX_SAFE_INTEGER][i] : Math.floor(rand() * 2 ** (1 + (i % 53)));
      expect(keys.message(id, uid)).toEqual(cat(Buffer.of(SPACE.message), id, encodeU32(uid)));
      expect(keys.change(id, modseq, uid)).toEqual(cat(Buffer.of(SPACE.change), id, encodeU64(modseq), encodeU32(uid)));
      expect(keys.info(new Uint8Array(id))).toEqual(cat(Buffer.of(SPACE.info), id));
      expect(keys.blob(hash)).toEqual(cat(Buffer.of(SPACE.blob), hash));
    }
    expect(() => keys.message(Buffer.alloc(16), 2 ** 32)).toThrow(/u32 out of range/);
    expect(() => keys.change(Buffer.alloc(16), -1, 1)).toThrow(/u64 out of range/);
    expect(() => keys.change(Buffer.alloc(16), 1.5, 1)).toThrow(/u64 out of range/);
  });
});
