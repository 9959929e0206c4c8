// Index format 2: a value's CRC32 covers its key (docs/FORMAT.md, "Index values"). A value moved
// under another key (what a flipped bit in a LevelDB table's key bytes does) is CORRUPT on every
// read path and in scrub, never another message's bytes; an index of format 1 (fixture written by
// main 3fbfe89) is converted at open with every message exact, a conversion a crash cut short is
// finished, a damaged format 1 index is rebuilt; its format 2 snapshot still rebuilds the index.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { INDEX_FORMAT, INDEX_FORMAT_NAME, decodeValue, encodeValue, reframeFormat1, valueChecksumHolds } from '../../src/index/codec.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { scrub } from '../../src/scrub/scrub.js';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../helpers/errors.js';
import { rawLevelOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { indexDifferences } from '../helpers/index-diff.js';

const FIXTURE = new URL('../../fixtures/snapshot-v2/store.tar.gz', import.meta.url).pathname;
const OPTIONS = { autoSnapshot: false } as const;

/** The fixture's workload (fixtures/snapshot-v2/make.mjs): what each mailbox holds, uid to bytes. */
function fixtureMessages(): Map<string, Map<number, Buffer>> {
  const body = (n: number) => Buffer.from(`From: a${n}@example.org\r\nSubject: message ${n}\r\n\r\n${'body line '.repeat(n % 9 + 1)}${n}\r\n`);
  const boxes = new Map(['INBOX', 'Sent', 'Archive'].map((name) => [name, new Map<number, Buffer>()]));
  const uidNext = new Map(['INBOX', 'Sent', 'Archive'].map((name) => [name, 1]));
  for (const n of [...Array(40).keys()].map((i) => i + 1).concat([...Array(15).keys()].map((i) => i + 100))) {
    const box = n % 7 === 0 ? 'Archive' : n % 3 === 0 ? 'Sent' : 'INBOX';
    const uid = uidNext.get(box)!;
    uidNext.set(box, uid + 1);
    if (n % 5 !== 0) boxes.get(box)!.set(uid, body(n));
  }
  return boxes;
}

async function expectExact(store: Store): Promise<void> {
  for (const [box, messages] of fixtureMessages()) {
    const read = new Map<number, Buffer>();
    for await (const m of store.readMessages(box)) read.set(m.info.uid, m.body);
    expect([...read.keys()], box).toEqual([...messages.keys()]);
    for (const [uid, bytes] of messages) {
      expect(read.get(uid)!.equals(bytes), `${box} ${uid}`).toBe(true);
      expect((await store.fetch(box, uid)).equals(bytes), `${box} ${uid}`).toBe(true);
    }
  }
}

function unpackFixture(): string {
  const root = tmpDir();
  execFileSync('tar', ['-xzf', FIXTURE, '-C', root]);
  return root;
}

const differences = indexDifferences;

describe('index values checksummed with their key', () => {
  it('a value under another key fails its checksum; a format 1 value is re-framed only when its own checksum holds', () => {
    const a = keys.message(Buffer.alloc(16, 1), 1);
    const b = keys.message(Buffer.alloc(16, 1), 3); // one bit away from a's key
    for (const value of [0, 1, { h: Buffer.alloc(32, 9), s: 10, d: 1, f: [], m: 2 }]) {
      const framed = encodeValue(a, value);
      expect(decodeValue(framed, a)).toEqual(value);
      expect(valueChecksumHolds(a, framed)).toBe(true);
      expect(valueChecksumHolds(b, framed)).toBe(false);
      expect(() => decodeValue(framed, b)).toThrow(expect.objectContaining({ code: 'CORRUPT', path: b.toString('hex'), message: expect.stringMatching(/reconstruct/) }));
    }
    const format1 = encodeValue(Buffer.alloc(0), 'INBOX'); // an empty key: the CRC of the body alone, as format 1 framed it
    expect(reframeFormat1(a, format1)!.equals(encodeValue(a, 'INBOX'))).toBe(true);
    const damaged = Buffer.from(format1);
    damaged[damaged.length - 1] ^= 1;
    expect(reframeFormat1(a, damaged)).toBeUndefined();
  });

  it("uid B's key holding uid A's record: fetch, fetchStream and readMessages of B fail CORRUPT, never A's bytes, and scrub reports it", async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      const a = Buffer.from('Subject: A\r\n\r\nthe bytes of message A\r\n');
      const b = Buffer.from('Subject: B\r\n\r\nthe bytes of message B\r\n');
      await store.append('INBOX', a);
      await store.append('INBOX', b);
      const [box] = await store.listMailboxes();
      const id = Buffer.from(box.id.replace(/-/g, ''), 'hex');
      const raw = rawLevelOf(store);
      await raw.put(keys.message(id, 2), await raw.get(keys.message(id, 1)));
      expect((await store.fetch('INBOX', 1)).equals(a)).toBe(true); // A itself is untouched
      const corrupt = { name: 'MailstoreError', code: 'CORRUPT', path: keys.message(id, 2).toString('hex') };
      await expect(store.fetch('INBOX', 2)).rejects.toMatchObject(corrupt);
      await expect(store.fetchStream('INBOX', 2)).rejects.toMatchObject(corrupt);
      const seen: Buffer[] = [];
      const reading = (async () => { for await (const m of store.readMessages('INBOX')) seen.push(m.body); })();
      await expect(reading).rejects.toMatchObject({ code: 'CORRUPT' });
      expect(seen.slice(1).some((s) => s.equals(a))).toBe(false); // A's bytes only ever as uid 1
      const report = await scrub(store, { timeBudgetMs: 600_000 });
      expect(report.findings).toContainEqual(expect.objectContaining({ kind: 'index-value-corrupt', key: keys.message(id, 2).toString('hex') }));
    } finally {
      await store.close();
    }
  });

  it('an index of format 1 (main 3fbfe89) is converted at open: every message exact, the marker set, a second open converts nothing', async () => {
    const root = unpackFixture();
    let store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.indexUpgraded).toMatch(/converted from format 1 to 2 .*: [1-9]\d* values/);
      expect(store.health.rebuilt).toBeUndefined();
      expect(store.health.degraded).toBe(false);
      await expectExact(store);
      expect(await store.maintenance().index.get(keys.meta(INDEX_FORMAT_NAME))).toBe(INDEX_FORMAT);
      await store.append('INBOX', Buffer.from('Subject: after\r\n\r\nafter\r\n'));
    } finally {
      await store.close();
    }
    store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.indexUpgraded).toBeUndefined();
      const report = await scrub(store, { timeBudgetMs: 600_000 });
      expect(report.summary.damage).toBe(0); // expunged messages' blobs are informational (unreferenced-blob) until compaction
      expect(report.findings.filter((f) => f.kind !== 'unreferenced-blob')).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a read-only open of a format 1 index converts its shadow copy and serves every message exact; the index itself is left as it was', async () => {
    const root = unpackFixture();
    const files = () => Object.fromEntries(readdirSync(join(root, 'index')).sort().map((name) => [name, readFileSync(join(root, 'index', name)).toString('base64')]));
    const before = files();
    const store = await Store.open(root, { ...OPTIONS, readOnly: true });
    try {
      expect(store.health.indexUpgraded).toMatch(/converted from format 1/);
      await expectExact(store);
    } finally {
      await store.close();
    }
    expect(files()).toEqual(before); // names and bytes: only the private copy was converted
  });

  it('a conversion cut short (half the values re-framed, no marker) is finished at the next open', async () => {
    const root = unpackFixture();
    const level = new Level<Buffer, Buffer>(join(root, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    let converted = 0;
    let entries = 0;
    for await (const [key, value] of level.iterator()) {
      if (entries++ % 2 === 0) {
        await level.put(key, reframeFormat1(key, value)!);
        converted++;
      }
    }
    await level.close();
    expect(converted).toBeGreaterThan(10);
    const store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.indexUpgraded).toMatch(new RegExp(`: ${entries - converted} values`));
      await expectExact(store);
    } finally {
      await store.close();
    }
  });

  it('a format 1 index with a damaged value is not converted: it is rebuilt (from the format 2 snapshot and the journal), every message exact', async () => {
    const root = unpackFixture();
    const level = new Level<Buffer, Buffer>(join(root, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    for await (const [key, value] of level.iterator({ gte: Buffer.of(SPACE.message), lt: Buffer.of(SPACE.message + 1), limit: 1 })) {
      value[value.length - 1] ^= 1;
      await level.put(key, value);
    }
    await level.close();
    const store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.rebuilt).toMatch(/damaged.*fails its checksum \(format 1\)/);
      expect(store.health.rebuiltFrom).toMatch(/^snapshot 0000000000000065\.snap \(seq 65\) and [1-9]\d* journal records after it$/);
      expect(store.health.degraded).toBe(false);
      await expectExact(store);
    } finally {
      await store.close();
    }
  });

  it("the fixture's format 2 snapshot (values of index format 1) rebuilds exactly the converted index; the next snapshot is format 3", async () => {
    const root = unpackFixture();
    let store = await Store.open(root, OPTIONS); // converts the index
    await store.close();
    renameSync(join(root, 'index'), join(root, 'index.converted'));
    store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.rebuiltFrom).toMatch(/^snapshot 0000000000000065\.snap /);
      await expectExact(store);
    } finally {
      await store.close();
    }
    expect(await differences(join(root, 'index.converted'), join(root, 'index'))).toEqual([]);
    let next: { name: string; format: number } | undefined;
    store = await Store.open(root, OPTIONS);
    try {
      await store.setFlags('INBOX', 1, { add: ['$Next'] });
      next = await store.snapshot();
      expect(next.format).toBe(3);
    } finally {
      await store.close();
    }
    renameSync(join(root, 'index'), join(root, 'index.v3'));
    store = await Store.open(root, OPTIONS);
    try {
      expect(store.health.rebuiltFrom).toMatch(new RegExp(`^snapshot ${next!.name} `));
      expect(store.health.degraded).toBe(false);
      await expectExact(store);
    } finally {
      await store.close();
    }
  });

  it('an index marked with a format this code does not know is REFUSED, not rebuilt', async () => {
    const root = unpackFixture();
    const level = new Level<Buffer, Buffer>(join(root, 'index'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const marker = keys.meta(INDEX_FORMAT_NAME);
    await level.put(marker, encodeValue(marker, INDEX_FORMAT + 1));
    await level.close();
    expect(await codeOf(Store.open(root, OPTIONS))).toBe('REFUSED');
  });
});
