// Inline bodies (docs/FORMAT.md, "Inline bodies"): small messages stored inside their journal
// record are read, verified, deduplicated, replayed and scrubbed like bodies in packs.
import { describe, expect, it } from 'vitest';
import { readdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { describeFinding } from '../../src/scrub/findings.js';
import { keys } from '../../src/keys/index-keys.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { RECORD_HEADER_BYTES } from '../../src/blob/pack-format.js';
import type { BlobRecord, JournalPayload, Op } from '../../src/store/records.js';
import { decodeCbor } from '../../src/index/codec.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { internalsOf } from '../helpers/internals.js';
import type { Journal } from '../../src/journal/journal.js';

const small = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
const big = Buffer.alloc(20_000, 0x61);

async function blobOf(store: Store, bytes: Buffer): Promise<BlobRecord | undefined> {
  return store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bytes)));
}

/**
 * Flips one byte `delta` bytes after the first `marker` in the store's `index`-th journal segment
 * (sorted by name); returns the segment's name and the first marker's offset and the bytes there.
 */
function flipInSegment(dir: string, index: number, marker: string, delta: number): { name: string; at: number; bytes: Buffer } {
  const name = readdirSync(join(dir, 'journal')).sort()[index]!;
  const path = join(dir, 'journal', name);
  const bytes = readFileSync(path);
  const at = bytes.indexOf(marker);
  bytes[at + delta] ^= 0x01;
  writeFileSync(path, bytes);
  return { name, at, bytes };
}

const packFiles = (dir: string) => readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));

describe('inline bodies', () => {
  it('stores a small message in its journal record: no pack is written, and it reads back verified', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    const a = await store.append('INBOX', small(1));
    const b = await store.append('INBOX', big);
    expect(packFiles(dir)).toHaveLength(1); // only the big one made a pack
    const blob = await blobOf(store, small(1));
    expect(blob).toMatchObject({ p: INLINE_PACK, l: small(1).length, r: 1 });
    expect(await store.fetch('INBOX', a.uid)).toEqual(small(1));
    expect(await store.fetch('INBOX', b.uid)).toEqual(big);
    const chunks: Buffer[] = [];
    for await (const chunk of await store.fetchStream('INBOX', a.uid)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(small(1));
    const read = [];
    for await (const m of store.readMessages('INBOX')) read.push(m.body);
    expect(read).toEqual([small(1), big]);
    await store.close();
  });

  it('lendBodies: inline bodies between pack bodies come out exact, and take nothing of the group\'s lent buffer', async () => {
    const store = await Store.open(tmpDir(), { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    const all: Buffer[] = [];
    for (let i = 0; i < 60; i++) {
      const bytes = i % 3 === 0 ? Buffer.concat([big, Buffer.from(`${i}`)]) : Buffer.concat([small(i), Buffer.alloc(1000, 0x62)]);
      all.push(bytes);
      await store.append('INBOX', bytes);
    }
    expect((await blobOf(store, all[1]!))?.p).toBe(INLINE_PACK);
    const saved = limits.readLentBytes;
    // the 20 pack records, one after the other in their pack, and no more: the inline bodies' runs
    // (their seqs for offsets: ~1.1 KB of "span") would not fit beside them
    const packBytes = all.filter((_, i) => i % 3 === 0).reduce((sum, bytes) => sum + RECORD_HEADER_BYTES + bytes.length, 0);
    limits.readLentBytes = packBytes + 64;
    try {
      const lentBuffers = new Set<ArrayBufferLike>();
      let uid = 0;
      for await (const { info, body } of store.readMessages('INBOX', { lendBodies: true })) {
        expect(body.equals(all[info.uid - 1]!), `uid ${info.uid}`).toBe(true);
        if (body.buffer instanceof SharedArrayBuffer) lentBuffers.add(body.buffer);
        uid = info.uid;
      }
      expect(uid).toBe(60);
      // the pack bodies' group buffer: sized by them alone, not by the journal spans between them
      expect([...lentBuffers].map((b) => b.byteLength)).toEqual([packBytes + 64]);
    } finally {
      limits.readLentBytes = saved;
    }
    await store.close();
  });

  it('deduplicates against an inline blob (append and copy) and keeps it through expunge of one copy', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    await store.createMailbox('Archive');
    const first = await store.append('INBOX', small(2));
    const again = await store.append('INBOX', small(2));
    expect(again.deduplicated).toBe(true);
    await store.copy('INBOX', [first.uid], 'Archive');
    expect((await blobOf(store, small(2)))?.r).toBe(3);
    await store.expunge('INBOX', [first.uid]);
    expect(await store.fetch('INBOX', again.uid)).toEqual(small(2));
    expect(await store.fetch('Archive', 1)).toEqual(small(2));
    await store.close();
  });

  it('a batch of several messages (an import) puts every body in a pack; a batch of one is a delivery', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 64 * 1024 });
    await store.createMailbox('INBOX');
    const items = Array.from({ length: 10 }, (_, i) => ({ bytes: small(100 + i) }));
    await store.appendBatch('INBOX', items);
    await store.appendBatch('INBOX', [{ bytes: small(200) }]);
    const placed = await Promise.all(items.map((item) => blobOf(store, item.bytes)));
    expect(placed.every((b) => b && b.p !== INLINE_PACK)).toBe(true);
    expect((await blobOf(store, small(200)))?.p).toBe(INLINE_PACK);
    let n = 0;
    for await (const m of store.readMessages('INBOX')) expect(m.body.equals(n < 10 ? items[n++].bytes : small(200))).toBe(true);
    expect(n).toBe(10);
    await store.close();
  });

  it('append (its own path for one message) writes the record appendBatch of the same one message writes: inline, to a pack, deduplicated', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 16 * 1024 });
    await store.createMailbox('INBOX');
    const options = { flags: ['\\Seen', 'x'], internalDate: 1_700_000_000_000, envelopeFrom: 'a@example.org', dateZoneMinutes: 60, recent: true };
    const twoWays = async (a: Buffer, b: Buffer, extra = {}) => [
      await store.append('INBOX', a, { ...options, ...extra }),
      (await store.appendBatch('INBOX', [{ bytes: b, ...options, ...extra }]))[0]!,
    ];
    const results = [
      ...await twoWays(small(1), small(2)),
      ...await twoWays(Buffer.alloc(20_000, 0x61), Buffer.alloc(20_000, 0x62)),
      ...await twoWays(small(1), small(2)), // both deduplicated
      ...await twoWays(small(3), small(4), { flags: undefined, envelopeFrom: undefined, dateZoneMinutes: undefined, recent: undefined }),
    ];
    const records: { ops: Op[] }[] = [];
    for await (const record of store.maintenance().journal.read(0, (damage) => { throw new Error(`journal damage: ${JSON.stringify(damage)}`); })) {
      const { ops } = decodeCbor<JournalPayload>(record.payload);
      if (ops[0]?.op === 'message.add') records.push({ ops });
    }
    expect(records).toHaveLength(8);
    const bodies = [small(1), small(2), Buffer.alloc(20_000, 0x61), Buffer.alloc(20_000, 0x62), small(1), small(2), small(3), small(4)];
    for (let i = 0; i < 8; i += 2) {
      const [one, batch] = [records[i]!, records[i + 1]!];
      expect(one.ops).toHaveLength(1);
      expect(batch.ops).toHaveLength(1);
      const [a, b] = [one.ops[0]! as Op & { op: 'message.add' }, batch.ops[0]! as Op & { op: 'message.add' }];
      expect(Object.keys(a)).toEqual(Object.keys(b)); // same fields in the same order: the same bytes
      const { uid: _u1, hash: h1, offset: _o1, body: b1, ...restA } = a;
      const { uid: _u2, hash: h2, offset: _o2, body: b2, ...restB } = b;
      expect(restA).toEqual(restB);
      expect(Buffer.from(h1).equals(hashBytes(bodies[i]!))).toBe(true);
      expect(Buffer.from(h2).equals(hashBytes(bodies[i + 1]!))).toBe(true);
      expect(b1 === undefined ? undefined : Buffer.from(b1).equals(bodies[i]!)).toBe(b2 === undefined ? undefined : Buffer.from(b2).equals(bodies[i + 1]!));
      expect(Object.keys(results[i]!)).toEqual(Object.keys(results[i + 1]!));
      expect(results[i]!.deduplicated).toBe(results[i + 1]!.deduplicated);
    }
    expect(records.map((r) => (r.ops[0] as Op & { op: 'message.add' }).body !== undefined)).toEqual([true, true, false, false, false, false, true, true]);
    expect(records.map((r) => (r.ops[0] as Op & { op: 'message.add' }).fresh === true)).toEqual([true, true, true, true, false, false, true, true]);
    await store.close();
  });

  it('replay and a rebuild of the index keep inline bodies readable; scrub verifies them', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 20; i++) await store.append('INBOX', small(i));
    await store.close();
    store = await Store.open(dir, { inlineBodyBytesMax: 4096 });
    expect(await store.fetch('INBOX', 7)).toEqual(small(6));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    store = await Store.open(dir);
    expect(store.health.rebuilt).toBeTruthy();
    for (let uid = 1; uid <= 20; uid++) expect(await store.fetch('INBOX', uid)).toEqual(small(uid - 1));
    await store.close();
  });

  it('a damaged inline body is CORRUPT on read and a scrub finding, never wrong bytes', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096 });
    await store.createMailbox('INBOX');
    const body = Buffer.from('From: x@example.org\r\n\r\nunique-marker-1234567890\r\n');
    await store.append('INBOX', body);
    await store.close();
    const journalDir = join(dir, 'journal');
    const segment = join(journalDir, readdirSync(journalDir).find((n) => n.endsWith('.jnl'))!);
    const bytes = readFileSync(segment);
    const at = bytes.indexOf('unique-marker');
    bytes[at] ^= 0x20;
    writeFileSync(segment, bytes);
    store = await Store.open(dir, { inlineBodyBytesMax: 4096 });
    await expect(store.fetch('INBOX', 1)).rejects.toMatchObject({ code: 'CORRUPT' });
    const report = await scrub(store);
    const found = report.findings.find((f) => f.kind === 'blob-missing' || f.kind === 'blob-corrupt');
    expect(found).toBeDefined();
    expect(describeFinding(found!).where).toBe('journal record 2 (inline body)') // seq 1 created the mailbox;
    await store.close();
  });
});

describe('inline bodies and the journal retirement', () => {
  it('a snapshot moves inline bodies below its bound into packs and retires their segments; nothing is lost', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 60; i++) await store.append('INBOX', small(i));
    expect(packFiles(dir)).toHaveLength(0);
    const segmentsBefore = readdirSync(join(dir, 'journal')).length;
    const first = await store.snapshot();
    // the only snapshot: nothing retires, so nothing moves (the journal is the other copy of its state)
    expect(first.retired.segments).toEqual([]);
    expect(readdirSync(join(dir, 'journal')).length).toBe(segmentsBefore);
    expect(packFiles(dir)).toHaveLength(0);
    for (let i = 60; i < 70; i++) await store.append('INBOX', small(i));
    const second = await store.snapshot();
    // two kept: retirement goes up to the older one, after moving the bodies at or below it
    expect(second.retired.throughSeq).toBe(first.seq);
    expect(second.retired.segments.length).toBeGreaterThan(0);
    expect(readdirSync(join(dir, 'journal')).length).toBeLessThan(segmentsBefore);
    expect(packFiles(dir).length).toBeGreaterThan(0);
    for (let i = 0; i < 70; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    for (let i = 70; i < 80; i++) await store.append('INBOX', small(i));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    store = await Store.open(dir, { inlineBodyBytesMax: 4096 });
    for (let i = 0; i < 80; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    await store.close();
    // the newest snapshot damaged too: the older one says the moved bodies were inline in retired
    // segments, and the move's record in the journal after it puts them in their pack
    const newest = join(dir, 'snapshots', second.name);
    const bytes = readFileSync(newest);
    bytes.fill(0, 64, Math.min(bytes.length, 64 + 4096));
    writeFileSync(newest, bytes);
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    store = await Store.open(dir, { inlineBodyBytesMax: 4096 });
    expect(store.health.rebuiltFrom).toContain(first.name);
    for (let i = 0; i < 80; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    await store.close();
  });

  it('a replica-less store whose bodies cannot move keeps the segments that hold them', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 40; i++) await store.append('INBOX', small(i));
    // damage the first inline body's record in the live journal: it cannot be moved
    const { name } = flipInSegment(dir, 0, 'Subject: 0\r\n', 9);
    await store.snapshot(); // the older generation (retires nothing)
    for (let i = 40; i < 45; i++) await store.append('INBOX', small(i));
    const result = await store.snapshot();
    expect(result.retired.throughSeq).toBeLessThan(3); // held below the damaged body's record (seq 2)
    expect(result.retired.segments).not.toContain(name);
    expect(readdirSync(join(dir, 'journal'))).toContain(name);
    await expect(store.fetch('INBOX', 1)).rejects.toMatchObject({ code: 'CORRUPT' });
    for (let i = 1; i < 45; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    await store.close();
  });

  it('compaction moves inline bodies out of every segment but the newest', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 40; i++) await store.append('INBOX', small(i));
    const result = await store.compact();
    expect(result.inlineMoved).toBeGreaterThan(20);
    const placed = await Promise.all(Array.from({ length: 40 }, (_, i) => blobOf(store, small(i))));
    expect(placed.filter((b) => b?.p === INLINE_PACK).length).toBe(40 - result.inlineMoved!);
    for (let i = 0; i < 40; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });
});

describe('inline bodies moved in groups', () => {
  it('each group is read at once into a buffer used again only after its group committed: every body lands exact, a damaged one stays', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 8192, autoSnapshot: false });
    await store.createMailbox('INBOX');
    const body = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\n${String(i).repeat(200 + (i % 9) * 37)}\r\n`);
    for (let i = 0; i < 120; i++) await store.append('INBOX', body(i));
    // damage one body's record in an old segment: its group reads it alone and leaves it
    const { at, bytes } = flipInSegment(dir, 1, 'Subject: ', 30);
    const damaged = Number(/Subject: (\d+)/.exec(bytes.subarray(at, at + 20).toString('latin1'))![1]);
    const saved = limits.inlineMoveBatchBytes;
    limits.inlineMoveBatchBytes = 2048; // groups of a few bodies: many groups, buffers handed on
    const journal = (store as unknown as { journal: Journal }).journal;
    const given: (Buffer | undefined)[] = [];
    const read = journal.readRecordsAt.bind(journal);
    journal.readRecordsAt = (seqs, gap, into) => { given.push(into); return read(seqs, gap, into); };
    let result;
    try {
      result = await store.compact();
    } finally {
      limits.inlineMoveBatchBytes = saved;
      journal.readRecordsAt = read;
    }
    expect(given.length).toBeGreaterThan(20);
    expect(given.filter(Boolean).length).toBeGreaterThan(given.length / 2); // buffers came back and served again
    expect(result.inlineMoved).toBeGreaterThan(60);
    for (let i = 0; i < 120; i++) {
      if (i === damaged) await expect(store.fetch('INBOX', i + 1)).rejects.toMatchObject({ code: 'CORRUPT' });
      else expect(await store.fetch('INBOX', i + 1)).toEqual(body(i));
    }
    expect((await blobOf(store, body(damaged)))?.p).toBe(INLINE_PACK);
    expect((await blobOf(store, body(0)))?.p).not.toBe(INLINE_PACK);
    const found = await scrub(store);
    // the damaged record, as scrub reports one (its bytes, the seq it held, the body in it): no pack damage
    expect(found.findings.map((f) => f.kind).sort()).toEqual(['blob-missing', 'journal-damage', 'journal-gap']);
    expect(found.findings.find((f) => f.kind === 'blob-missing')).toMatchObject({ hash: hashBytes(body(damaged)).toString('hex') });
    await store.close();
  });
});

describe('inline bodies moved in groups: a journal that cannot be read', () => {
  it('EIO on the journal while a compaction moves bodies: IO, nothing moved is lost, the next compaction finishes the move', async () => {
    const dir = tmpDir();
    const ffs = new FaultFileSystem({ seed: 0x1e10 });
    const store = await Store.open(dir, { fs: ffs, create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 8192, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 60; i++) await store.append('INBOX', small(i));
    const saved = limits.inlineMoveBatchBytes;
    limits.inlineMoveBatchBytes = 512; // several groups: some may commit before the reads fail
    try {
      ffs.failAll('EIO', { ops: ['read'], pathPrefix: join(dir, 'journal') });
      await expect(store.compact()).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/journal segment/) });
      ffs.clear();
      for (let i = 0; i < 60; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
      const again = await store.compact();
      expect(again.inlineMoved).toBeGreaterThan(20);
    } finally {
      limits.inlineMoveBatchBytes = saved;
    }
    for (let i = 0; i < 60; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });
});

describe('inline bodies and a journal rewritten from the index', () => {
  it('moves them into packs before the checkpoint replaces the journal', async () => {
    const dir = tmpDir();
    let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 0; i < 10; i++) await store.append('INBOX', small(i));
    await store.maintenance().rewriteJournalFromIndex();
    for (let i = 0; i < 10; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    expect((await blobOf(store, small(3)))?.p).not.toBe(INLINE_PACK);
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    store = await Store.open(dir);
    for (let i = 0; i < 10; i++) expect(await store.fetch('INBOX', i + 1)).toEqual(small(i));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });
});

describe('inline bodies after a reopen', () => {
  it('a reopen after a clean close scans no journal segment; the first fetch of an older one scans that segment once, and every body reads back', async () => {
    const dir = join(tmpDir('inline-reopen'), 'store');
    const options = { journalSegmentBytesMax: 4096 };
    const body = (i: number) => Buffer.from(`Subject: ${i}\r\n\r\n${'body '.repeat(20)}${i}\r\n`);
    let store = await Store.init(dir, options);
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 60; i++) await store.append('INBOX', body(i));
    await store.close();
    store = await Store.open(dir, options);
    try {
      const journal = internalsOf(store).journal;
      expect(journal.segmentNames.length).toBeGreaterThan(3);
      expect(journal.segmentsIndexed).toBe(0); // open scanned the newest segment only (findTail)
      expect(await Promise.all([1, 2].map((uid) => store.fetch('INBOX', uid)))).toEqual([body(1), body(2)]);
      expect(journal.segmentsIndexed).toBe(1);
      for (let uid = 1; uid <= 60; uid++) expect(await store.fetch('INBOX', uid)).toEqual(body(uid));
      expect(journal.segmentsIndexed).toBeLessThan(journal.segmentNames.length);
    } finally {
      await store.close();
    }
  });
});
