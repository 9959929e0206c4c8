// Journal.readRecordAt (inline bodies are read by their record's seq): live from the offsets the
// journal wrote, after a reopen from one whole read of the segment, across rotations; a seq that
// is not there (retired, never written, cut) is undefined, never another record's bytes.
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { encodeRecord, fillerFrom } from '../../src/journal/journal-format.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { join } from 'node:path';
import { assert, describe, expect, it } from 'vitest';
import { Journal, type JournalRecord } from '../../src/journal/journal.js';
import { RecordOffsets } from '../../src/journal/record-offsets.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { limits } from '../../src/limits.js';

const storeId = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');

async function openJournal(dir: string, fs: FaultFileSystem) {
  const journal = await Journal.open(fs, dir, storeId, { segmentBytesMax: 2048, recordBytesMax: 4096, checkMounted: async () => undefined });
  await journal.findTail();
  return journal;
}

const payload = (seq: number) => Buffer.from(`record ${seq} `.padEnd(100 + (seq % 7) * 13, '.'));

/** A fresh journal directory (and the file system it is opened on). */
function journalDir(): { dir: string; fs: FaultFileSystem } {
  const dir = join(tmpDir('journal'), 'journal');
  mkdirSync(dir, { recursive: true });
  return { dir, fs: new FaultFileSystem() };
}

/** Records 1..60 written three to a batch; `each(seq)` after each batch is durable (seq: its first). */
async function writeTriples(journal: Journal, each?: (seq: number) => Promise<void>): Promise<void> {
  for (let seq = 1; seq <= 60; seq += 3) {
    await journal.write([0, 1, 2].map((i) => ({ seq: seq + i, payload: payload(seq + i) })));
    await journal.sync();
    await each?.(seq);
  }
}

/** A journal of records 1..40, each written and synced alone, over several segments. */
async function fortyRecords(): Promise<Journal> {
  const { dir, fs } = journalDir();
  const journal = await openJournal(dir, fs);
  for (let seq = 1; seq <= 40; seq++) {
    await journal.write([{ seq, payload: payload(seq) }]);
    await journal.sync();
  }
  return journal;
}

/** Flips a payload byte of the first record of segment `name` (its checksum then fails); returns that record. */
function damageFirstRecord(dir: string, name: string): { seq: number; offset: number } {
  const segment = join(dir, name);
  const bytes = readFileSync(segment);
  const victim = [...parseSegment(bytes, 4096)].find((item) => item.kind === 'record')!;
  assert(victim.kind === 'record');
  bytes[victim.offset + 40] ^= 0xff;
  writeFileSync(segment, bytes);
  return victim;
}

describe('Journal.readRecordAt', () => {
  it('finds every record by seq, live and after a reopen, across segments', async () => {
    const { dir, fs } = journalDir();
    let journal = await openJournal(dir, fs);
    await writeTriples(journal, async (seq) => { expect(await journal.readRecordAt(seq + 1)).toEqual(payload(seq + 1)); });
    expect(journal.segmentNames.length).toBeGreaterThan(3);
    for (let seq = 1; seq <= 60; seq++) expect(await journal.readRecordAt(seq)).toEqual(payload(seq));
    expect(await journal.readRecordAt(61)).toBeUndefined();
    await journal.close();
    journal = await openJournal(dir, fs);
    for (let seq = 60; seq >= 1; seq--) expect(await journal.readRecordAt(seq)).toEqual(payload(seq));
    await journal.write([{ seq: 61, payload: payload(61) }]);
    await journal.sync();
    expect(await journal.readRecordAt(61)).toEqual(payload(61));
    const retired = await journal.retireThrough(20);
    expect(retired.segments.length).toBeGreaterThan(0);
    expect(await journal.readRecordAt(1)).toBeUndefined();
    expect(await journal.readRecordAt(40)).toEqual(payload(40));
    await journal.close();
  });
});

describe('Journal.readRecordsAt', () => {
  it('reads runs of records into one buffer (the one given when it is big enough): exact payloads, missing and damaged seqs absent', async () => {
    const { dir, fs } = journalDir();
    let journal = await openJournal(dir, fs);
    await writeTriples(journal);
    const check = async (seqs: number[], gap: number, into?: Buffer) => {
      const { payloads, buffer } = await journal.readRecordsAt(seqs, gap, into);
      for (const seq of seqs) if (seq <= 60) expect(payloads.get(seq)).toEqual(payload(seq));
      for (const body of payloads.values()) expect(body.buffer).toBe(buffer.buffer); // views, no copy
      return { payloads, buffer };
    };
    // every seq, across segments (2 KiB each), with and without room between the records asked for
    await check(Array.from({ length: 60 }, (_, i) => i + 1), 4096);
    await check([2, 5, 9, 30, 31, 59], 0);
    await check([2, 5, 9, 30, 31, 59], 1 << 20);
    const mine = Buffer.alloc(64 * 1024);
    expect((await check([10, 11, 12, 13], 4096, mine)).buffer).toBe(mine);
    const tiny = Buffer.alloc(16);
    const grown = await check([10, 11, 12, 13], 4096, tiny);
    expect(grown.buffer).not.toBe(tiny);
    expect(grown.buffer.length).toBeGreaterThan(4 * 100); // room to spare for the next group
    // a seq never written is absent; so is one whose record is damaged, its neighbours are not
    expect((await journal.readRecordsAt([61, 70], 4096)).payloads.size).toBe(0);
    await journal.close();
    const victim = damageFirstRecord(dir, journal.segmentNames[1]!);
    journal = await openJournal(dir, fs); // offsets unknown again: built from one read of each segment
    const around = [victim.seq - 1, victim.seq, victim.seq + 1];
    const { payloads } = await journal.readRecordsAt(around, 4096);
    expect(payloads.has(victim.seq)).toBe(false);
    expect(payloads.get(victim.seq - 1)).toEqual(payload(victim.seq - 1));
    expect(payloads.get(victim.seq + 1)).toEqual(payload(victim.seq + 1));
    // retired seqs are absent, the rest read as before
    await journal.retireThrough(20);
    const after = await journal.readRecordsAt([1, 2, 40, 41], 4096);
    expect([...after.payloads.keys()]).toEqual([40, 41]);
    expect(after.payloads.get(41)).toEqual(payload(41));
    await journal.close();
  });
});

describe('Journal.read leaves record offsets behind', () => {
  it('a whole read of the journal gives each older segment its table: records by seq then read no segment again, and find what locate\'s own tables find, a damaged record absent', async () => {
    const { dir, fs } = journalDir();
    let journal = await openJournal(dir, fs);
    await writeTriples(journal);
    await journal.close();
    const victim = damageFirstRecord(dir, journal.segmentNames[2]!);
    const byLocate = await openJournal(dir, fs); // tables built by readRecordAt itself
    const expected = await Promise.all(Array.from({ length: 62 }, (_, i) => byLocate.readRecordAt(i + 1)));
    await byLocate.close();
    expect(expected[victim.seq - 1]).toBeUndefined();
    journal = await openJournal(dir, fs);
    const damage: unknown[] = [];
    for await (const record of journal.read(0, (d) => damage.push(d))) expect(record.payload).toEqual(payload(record.seq));
    expect(damage).toHaveLength(1);
    for (let seq = 1; seq <= 62; seq++) expect(await journal.readRecordAt(seq)).toEqual(expected[seq - 1]);
    // scanned again, as a seq with no valid record is looked for anew (as before): once, the damaged
    // record's segment; and the newest for 61 and 62, which no record has (its table is open's tail scan's)
    expect(journal.segmentsIndexed).toBe(3);
    await journal.close();
  });

  it('a reopen scans no segment but the newest; a read by seq scans its segment once, and reads at once share the scan', async () => {
    const { dir, fs } = journalDir();
    let journal = await openJournal(dir, fs);
    await writeTriples(journal);
    await journal.close();
    journal = await openJournal(dir, fs);
    expect(journal.segmentNames.length).toBeGreaterThan(3);
    expect(journal.segmentsIndexed).toBe(0);
    const window = limits.journalTailWindowBytes;
    limits.journalTailWindowBytes = 256; // a few records a read: the scan is many reads (each a turn of a daemon's event loop)
    try {
      expect(await Promise.all([1, 2, 3, 4].map((seq) => journal.readRecordAt(seq)))).toEqual([1, 2, 3, 4].map(payload));
      expect(journal.segmentsIndexed).toBe(1);
    } finally {
      limits.journalTailWindowBytes = window;
    }
    for (let seq = 1; seq <= 60; seq++) expect(await journal.readRecordAt(seq)).toEqual(payload(seq));
    expect(journal.segmentsIndexed).toBe(journal.segmentNames.length - 1);
    await journal.close();
  });
});

describe('Journal.read with views', () => {
  it('hands out the same payloads as views into one reused buffer instead of copies', async () => {
    const journal = await fortyRecords();
    const copies: JournalRecord[] = [];
    for await (const record of journal.read(0, () => undefined)) copies.push(record);
    const buffers = new Set<ArrayBufferLike>();
    const seen: Buffer[] = [];
    let n = 0;
    for await (const record of journal.read(0, () => undefined, { views: true })) {
      expect(record.seq).toBe(copies[n]!.seq);
      expect(record.payload).toEqual(copies[n]!.payload);
      buffers.add(record.payload.buffer);
      seen.push(Buffer.from(record.payload));
      n++;
    }
    expect(n).toBe(40);
    expect(journal.segmentNames.length).toBeGreaterThan(2);
    expect(buffers.size).toBeLessThan(journal.segmentNames.length); // segments read into a buffer used again
    // the copies are still the records after every later segment was read into the reused buffer
    // (copies in one pool slab are fine: how many slabs 40 small copies span depends on the
    // process's earlier allocations, which failed this test after other files in its worker)
    expect(copies.map((r) => r.payload)).toEqual(seen);
    await journal.close();
  });
});

describe('Journal: preallocated segments', () => {
  async function open(dir: string, fs: FaultFileSystem) {
    const journal = await Journal.open(fs, dir, storeId, { segmentBytesMax: 8192, recordBytesMax: 4096, checkMounted: async () => undefined, preallocateBytes: 4096 });
    return { journal, found: await journal.findTail() };
  }

  /** A closed journal of records 1..3 (each synced) and its one segment's bytes. */
  async function threeRecords() {
    const { dir, fs } = journalDir();
    const { journal } = await open(dir, fs);
    for (let seq = 1; seq <= 3; seq++) { await journal.write([{ seq, payload: payload(seq) }]); await journal.sync(); }
    await journal.close();
    const file = join(dir, journal.segmentNames[0]);
    return { dir, fs, file, bytes: readFileSync(file) };
  }

  it('writes records into filler ahead of them (never zeros); a reopen finds no tail damage and goes on after the last record', async () => {
    const { dir, fs } = journalDir();
    let { journal } = await open(dir, fs);
    for (let seq = 1; seq <= 5; seq++) { await journal.write([{ seq, payload: payload(seq) }]); await journal.sync(); }
    const file = join(dir, journal.segmentNames[0]);
    const size = statSync(file).size;
    expect(size).toBeGreaterThanOrEqual(4096);
    expect(readFileSync(file).subarray(size - 64).includes(0)).toBe(false); // filler, not zeros
    await journal.close();
    let found;
    ({ journal, found } = await open(dir, fs));
    expect(found).toEqual({ lastSeq: 5 });
    await journal.write([{ seq: 6, payload: payload(6) }]);
    await journal.sync();
    expect(statSync(file).size).toBe(size); // written into the preallocated filler: no size change
    const seen: number[] = [];
    const damage: unknown[] = [];
    for await (const r of journal.read(0, (d) => damage.push(d))) seen.push(r.seq);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(damage).toEqual([]);
    expect(await journal.readRecordAt(6)).toEqual(payload(6));
    await journal.close();
  });

  it('the filler ahead grows with the segment: a segment of a few records takes journalPreallocateMinBytes, not journalPreallocateBytes; past that as much as it holds, up to journalPreallocateBytes', async () => {
    const { dir, fs } = journalDir();
    const most = limits.journalPreallocateBytes;
    const journal = await Journal.open(fs, dir, storeId, { segmentBytesMax: 8 * most, recordBytesMax: 64 * 1024, checkMounted: async () => undefined, preallocateBytes: most });
    await journal.findTail();
    const file = () => join(dir, journal.segmentNames[0]);
    await journal.write([{ seq: 1, payload: payload(1) }]);
    await journal.sync();
    // failed before: 1 MiB of filler behind 100 bytes of records (what a compaction's last segment kept)
    expect(statSync(file()).size).toBeLessThanOrEqual(limits.journalPreallocateMinBytes + 1024);
    expect(statSync(file()).size).toBeGreaterThan(limits.journalPreallocateMinBytes);
    const sizes = new Set<number>();
    const body = Buffer.alloc(32 * 1024, 0x61);
    for (let seq = 2; seq <= 100; seq++) { await journal.write([{ seq, payload: body }]); await journal.sync(); sizes.add(statSync(file()).size); }
    const grown = [...sizes].sort((a, b) => a - b);
    expect(grown.length, 'a few size changes while it grows, not one a record').toBeLessThan(12);
    const steps = grown.slice(1).map((size, i) => size - grown[i]!);
    for (const step of steps) expect(step, 'never more than the whole preallocation and a record').toBeLessThanOrEqual(most + body.length + 64);
    expect(steps[steps.length - 1]!, 'grown to the whole preallocation').toBeGreaterThan(most - body.length);
    const seen: number[] = [];
    for await (const r of journal.read(0, (d) => { throw new Error(`damage: ${JSON.stringify(d)}`); })) seen.push(r.seq);
    expect(seen).toHaveLength(100);
    await journal.close();
  });

  it('a write refused for its filler (a quota, or a disk statfs did not show full) is done again without it: the records fit', async () => {
    const { dir, fs } = journalDir();
    const { journal } = await open(dir, fs);
    const file = () => join(dir, journal.segmentNames[0]);
    const body = (seq: number) => Buffer.alloc(1000, 0x60 + seq);
    // the write that goes past the preallocated filler carries new filler (over 2 KiB): refused once
    fs.injectAt((op) => op.kind === 'write' && op.position !== 0 && (op.length ?? 0) > 2048, { kind: 'EDQUOT', bytes: 100 });
    for (let seq = 1; seq <= 8; seq++) { await journal.write([{ seq, payload: body(seq) }]); await journal.sync(); }
    expect(fs.firedFaults().map((f) => f.code), 'the write with filler was refused').toEqual(['EDQUOT']);
    const seen: number[] = [];
    for await (const r of journal.read(0, (d) => { throw new Error(`damage: ${JSON.stringify(d)}`); })) seen.push(r.seq);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (let seq = 1; seq <= 8; seq++) expect(await journal.readRecordAt(seq)).toEqual(body(seq));
    expect(statSync(file()).size).toBeGreaterThan(8 * 1000); // the next write past the records took filler again
    await journal.close();
  });

  it('a torn record inside the preallocated space is tail damage, cut at the last record boundary', async () => {
    const { dir, fs, file, bytes } = await threeRecords();
    let journal;
    const end = recordsEnd(bytes); // the preallocated filler starts after record 3
    expect(fillerFrom(bytes, end)).toBe(true);
    writeFileSync(file, Buffer.concat([bytes.subarray(0, end), encodeRecord(4, payload(4)).subarray(0, 30), bytes.subarray(end + 30)]));
    let found;
    ({ journal, found } = await open(dir, fs));
    expect(found.lastSeq).toBe(3);
    expect(found.tail?.offset).toBe(end);
    await journal.cutAt(found.tail!.offset, 3);
    await journal.write([{ seq: 4, payload: payload(4) }]);
    await journal.sync();
    await journal.close();
    ({ journal, found } = await open(dir, fs));
    expect(found).toEqual({ lastSeq: 4 });
    expect(await journal.readRecordAt(4)).toEqual(payload(4));
    await journal.close();
  });

  it('zeros over the last records (the damage model) are a tail to resolve, never preallocated space', async () => {
    const { dir, fs, file, bytes } = await threeRecords();
    let journal;
    const records = [...parseSegment(bytes, 4096)].filter((x) => x.kind === 'record') as { offset: number; end: number }[];
    const from = records[1].offset; // records 2 and 3 zeroed, the filler after them kept
    writeFileSync(file, Buffer.concat([bytes.subarray(0, from), Buffer.alloc(records[2].end - from), bytes.subarray(records[2].end)]));
    let found;
    ({ journal, found } = await open(dir, fs));
    expect(found.lastSeq).toBe(1);
    expect(found.tail).toMatchObject({ offset: from, length: records[2].end - from });
    expect(found.tail!.bytes.every((b: number) => b === 0)).toBe(true);
    await journal.close();
  });
});

/** Where a segment's last valid record ends. */
function recordsEnd(bytes: Buffer): number {
  let end = 0;
  for (const item of parseSegment(bytes, 4096)) if (item.kind === 'record') end = item.end;
  return end;
}

describe('RecordOffsets', () => {
  it('keeps tables up to its entry bound, dropping the least recently used; extends only a known or fresh table', () => {
    const offsets = new RecordOffsets(10);
    offsets.set('a', { firstSeq: 1, offsets: Int32Array.from([36, 100, 200, 300]) });
    offsets.set('b', { firstSeq: 5, offsets: Int32Array.from([36, 90, 140, 190]) });
    expect(offsets.find('a', 2)).toBe(100); // a is now the most recently used
    offsets.set('c', { firstSeq: 9, offsets: Int32Array.from([36, 80, 120, 160]) });
    expect(offsets.find('b', 6)).toBeUndefined(); // dropped: 12 entries > 10
    expect(offsets.find('a', 4)).toBe(300);
    expect(offsets.find('c', 12)).toBe(160);
    offsets.extend('c', 9, [{ seq: 13, offset: 200 }, { seq: 15, offset: 260 }], false);
    expect(offsets.find('c', 13)).toBe(200);
    expect(offsets.find('c', 14)).toBeUndefined(); // a gap: not a record this table knows
    expect(offsets.find('c', 15)).toBe(260);
    offsets.extend('d', 20, [{ seq: 20, offset: 36 }], false);
    expect(offsets.find('d', 20)).toBeUndefined(); // not fresh, no table: built by a read later
    offsets.extend('e', 30, [{ seq: 30, offset: 36 }], true);
    expect(offsets.find('e', 30)).toBe(36);
  });

  it('a table the journal grew shrinks to 4 bytes a record once the next segment starts; a retired segment\'s table is forgotten', async () => {
    const offsets = new RecordOffsets(1000);
    offsets.extend('a', 1, [{ seq: 1, offset: 36 }], true);
    offsets.extend('a', 1, [{ seq: 2, offset: 90 }, { seq: 3, offset: 150 }], false);
    const table = (name: string) => (offsets as unknown as { tables: Map<string, { offsets: unknown }> }).tables.get(name);
    expect(Array.isArray(table('a')!.offsets)).toBe(true); // the tail grows
    offsets.extend('b', 4, [{ seq: 4, offset: 36 }], true);
    expect(table('a')!.offsets).toBeInstanceOf(Int32Array);
    expect([1, 2, 3].map((seq) => offsets.find('a', seq))).toEqual([36, 90, 150]);
    expect(offsets.find('b', 4)).toBe(36);
    // and through the journal: retiring a segment forgets its table
    const journal = await fortyRecords();
    const tables = (journal as unknown as { offsets: { tables: Map<string, unknown> } }).offsets.tables;
    const first = journal.segmentNames[0];
    expect(tables.has(first)).toBe(true);
    await journal.retireThrough(20);
    expect(journal.segmentNames).not.toContain(first);
    expect(tables.has(first)).toBe(false);
    expect(await journal.readRecordAt(30)).toEqual(payload(30));
    await journal.close();
  });
});
