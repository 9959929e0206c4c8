// The journal's contract (src/journal/journal.ts), below the Store: records with consecutive seqs
// go out as one write and one fdatasync per batch, never split across segments; a torn tail is
// found and cut at a record boundary; damage in the middle never hides the records after it; a
// write that fails or is aborted leaves nothing a replay would trust.
import { appendFileSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { AssertionFailure, MailstoreError } from '../../src/errors.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, decodeSegmentHeader, encodeRecord } from '../../src/journal/journal-format.js';
import { Journal, type JournalDamage, type JournalRecord } from '../../src/journal/journal.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
const RECORD_BYTES_MAX = 4096;

async function openJournal(options: { dir?: string; fs?: FaultFileSystem; segmentBytesMax?: number } = {}) {
  const dir = options.dir ?? join(tmpDir('journal'), 'journal');
  mkdirSync(dir, { recursive: true });
  const fs = options.fs ?? new FaultFileSystem();
  const journal = await Journal.open(fs, dir, storeId, {
    segmentBytesMax: options.segmentBytesMax ?? 1024 * 1024, recordBytesMax: RECORD_BYTES_MAX, checkMounted: async () => undefined,
  });
  const found = await journal.findTail();
  return { dir, fs, journal, found };
}

const payload = (seq: number, bytes = 40) => Buffer.from(`record ${seq} `.padEnd(bytes, '.'));
const records = (from: number, count: number, bytes = 40): JournalRecord[] => Array.from({ length: count }, (_, i) => ({ seq: from + i, payload: payload(from + i, bytes) }));

async function append(journal: Journal, batch: JournalRecord[]): Promise<void> {
  await journal.write(batch);
  await journal.sync();
}

async function readAll(journal: Journal, afterSeq = 0) {
  const out: number[] = [];
  const damage: JournalDamage[] = [];
  for await (const record of journal.read(afterSeq, (d) => damage.push(d))) {
    expect(record.payload.equals(payload(record.seq, record.payload.length))).toBe(true);
    out.push(record.seq);
  }
  return { seqs: out, damage };
}

function segmentPath(dir: string, index = 0): string {
  return join(dir, readdirSync(dir).filter((n) => n.endsWith('.jnl')).sort()[index]);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<MailstoreError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(MailstoreError);
  expect((error as MailstoreError).code).toBe(code);
  return error as MailstoreError;
}

describe('Journal: write and read', () => {
  it('a batch is one write, one fdatasync (and one directory fsync for a new segment); records read back in order', async () => {
    const { dir, fs, journal, found } = await openJournal();
    expect(found).toEqual({ lastSeq: 0 });
    await fs.startRecording(join(dir, '..'));
    await append(journal, records(1, 3));
    expect(fs.ops().map((op) => op.kind)).toEqual(['create', 'write', 'sync', 'syncDir']);
    expect(fs.ops()[1]).toMatchObject({ kind: 'write', position: 0 }); // the segment header goes out with its first records
    fs.resetCounters();
    await append(journal, records(4, 2));
    expect(fs.counters()).toMatchObject({ writes: 1, sync: 1, syncDir: 0 });
    expect(journal.lastSeq).toBe(5);
    const bytes = readFileSync(segmentPath(dir));
    expect(decodeSegmentHeader(bytes)).toEqual({ storeId, firstSeq: 1 });
    expect(await readAll(journal)).toEqual({ seqs: [1, 2, 3, 4, 5], damage: [] });
    expect((await readAll(journal, 3)).seqs).toEqual([4, 5]);
    await journal.close();
    const reopened = await openJournal({ dir });
    expect(reopened.found).toEqual({ lastSeq: 5 });
    await append(reopened.journal, records(6, 1));
    expect((await readAll(reopened.journal)).seqs).toEqual([1, 2, 3, 4, 5, 6]);
    await reopened.journal.close();
  });

  it('sync after a durable write (writevDurable) is bookkeeping done in the call: the records are the journal\'s before anything is awaited', async () => {
    const { journal } = await openJournal();
    await append(journal, records(1, 1)); // the segment's first write takes the two-step path (its directory fsync)
    await journal.write(records(2, 2), { durable: true });
    expect(journal.lastSeq).toBe(1);
    const synced = journal.sync();
    expect(journal.lastSeq).toBe(3); // before the promise is awaited
    await synced;
    await journal.write(records(4, 1));
    const flushed = journal.sync(); // not yet flushed: waits for the fdatasync
    expect(journal.lastSeq).toBe(3);
    await flushed;
    expect(journal.lastSeq).toBe(4);
    expect((await readAll(journal)).seqs).toEqual([1, 2, 3, 4]);
    await journal.close();
  });

  it('asserts consecutive seqs and a payload within bounds before writing anything', async () => {
    const { dir, journal } = await openJournal();
    await append(journal, records(1, 1));
    const size = statSync(segmentPath(dir)).size;
    await expect(journal.write([{ seq: 3, payload: payload(3) }])).rejects.toBeInstanceOf(AssertionFailure);
    await expect(journal.write([{ seq: 2, payload: payload(2) }, { seq: 4, payload: payload(4) }])).rejects.toBeInstanceOf(AssertionFailure);
    await expect(journal.write([{ seq: 2, payload: Buffer.alloc(0) }])).rejects.toBeInstanceOf(AssertionFailure);
    await expect(journal.write([{ seq: 2, payload: Buffer.alloc(RECORD_BYTES_MAX + 1, 1) }])).rejects.toBeInstanceOf(AssertionFailure);
    expect(statSync(segmentPath(dir)).size).toBe(size);
    await append(journal, records(2, 1));
    expect((await readAll(journal)).seqs).toEqual([1, 2]);
    await journal.close();
  });

  it('rotates to a segment named by its first seq; a batch is never split; a read past a segment does not open it', async () => {
    const { dir, fs, journal } = await openJournal({ segmentBytesMax: 200 });
    const batches = [records(1, 2), records(3, 2), records(5, 5), records(10, 1)];
    for (const batch of batches) await append(journal, batch);
    expect(journal.segmentNames).toEqual(['0000000000000001.jnl', '0000000000000003.jnl', '0000000000000005.jnl', '0000000000000010.jnl']);
    // each segment holds exactly one batch here (64-byte records, 200-byte segments): the 5-record batch stayed whole
    batches.forEach((batch, i) => {
      const seqs = [...parseSegment(readFileSync(segmentPath(dir, i)), RECORD_BYTES_MAX)].map((item) => (item.kind === 'record' ? item.seq : -1));
      expect(seqs).toEqual(batch.map((r) => r.seq));
    });
    expect((await readAll(journal)).seqs).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    fs.failAll('EIO', { ops: ['read'], pathPrefix: segmentPath(dir, 0) });
    expect((await readAll(journal, 4)).seqs).toEqual([5, 6, 7, 8, 9, 10]);
    await expectCode(readAll(journal, 0), 'IO');
    fs.clear();
    await journal.close();
  });
});

describe('Journal: damage', () => {
  it('a torn tail is found at the last record boundary, reported as tail damage, cut, and written over', async () => {
    const { dir, journal } = await openJournal();
    await append(journal, records(1, 3));
    await journal.close();
    const path = segmentPath(dir);
    const end = statSync(path).size;
    appendFileSync(path, encodeRecord(4, payload(4)).subarray(0, 30)); // the write of record 4 was torn
    const { journal: again, found } = await openJournal({ dir });
    expect(found.lastSeq).toBe(3);
    expect(found.tail).toMatchObject({ segment: '0000000000000001.jnl', offset: end, length: 30 });
    const read = await readAll(again);
    expect(read.seqs).toEqual([1, 2, 3]);
    expect(read.damage).toEqual([{ segment: '0000000000000001.jnl', offset: end, length: 30, where: 'tail' }]);
    await again.cutAt(found.tail!.offset, found.lastSeq);
    expect(statSync(path).size).toBe(end);
    await append(again, records(4, 1));
    expect(await readAll(again)).toEqual({ seqs: [1, 2, 3, 4], damage: [] });
    await again.close();
  });

  it('a damaged record in the middle is reported and every record after it is still read (resync)', async () => {
    const { dir, fs, journal } = await openJournal();
    await append(journal, records(1, 5));
    const path = segmentPath(dir);
    const third = SEGMENT_HEADER_BYTES + 2 * (RECORD_HEADER_BYTES + 40);
    await fs.damage(path, { kind: 'bitflip', offset: third + RECORD_HEADER_BYTES + 3, length: 1 }); // payload CRC fails
    let read = await readAll(journal);
    expect(read.seqs).toEqual([1, 2, 4, 5]);
    expect(read.damage).toEqual([{ segment: '0000000000000001.jnl', offset: third, length: RECORD_HEADER_BYTES + 40, where: 'middle' }]);
    await fs.damage(path, { kind: 'zeros', offset: third + RECORD_HEADER_BYTES + 40, length: 4 }); // record 4's magic
    read = await readAll(journal);
    expect(read.seqs).toEqual([1, 2, 5]);
    expect(read.damage).toEqual([{ segment: '0000000000000001.jnl', offset: third, length: 2 * (RECORD_HEADER_BYTES + 40), where: 'middle' }]);
    // findTail keeps only the records after the last damaged range as the newest batch's candidates
    const { journal: again, found } = await openJournal({ dir });
    expect(found).toEqual({ lastSeq: 5 });
    const tail = again.takeTailRecords();
    expect(Array.from({ length: tail.length }, (_, i) => tail.seq(i))).toEqual([5]);
    await again.close();
    await journal.close();
  });

  it('keepTailAndStartNewSegment: a damaged tail stays, new records go to a fresh segment', async () => {
    const { dir, journal } = await openJournal();
    await append(journal, records(1, 2));
    await journal.close();
    appendFileSync(segmentPath(dir), Buffer.from('garbage garbage garbage'));
    const { journal: again, found } = await openJournal({ dir });
    expect(found.tail).toBeDefined();
    again.keepTailAndStartNewSegment(5); // the index had applied up to 4
    await append(again, records(5, 1));
    expect(again.segmentNames).toEqual(['0000000000000001.jnl', '0000000000000005.jnl']);
    const read = await readAll(again);
    expect(read.seqs).toEqual([1, 2, 5]);
    expect(read.damage.map((d) => d.where)).toEqual(['middle']); // no longer the tail: records follow it
    await again.close();
  });
});

describe('Journal: a read that skips to a known record (skipRead)', () => {
  async function readSkipping(journal: Journal, afterSeq: number) {
    const seqs: number[] = [];
    const damage: JournalDamage[] = [];
    for await (const record of journal.read(afterSeq, (d) => damage.push(d), { skipRead: true })) {
      expect(record.payload.equals(payload(record.seq))).toBe(true);
      seqs.push(record.seq);
    }
    return { seqs, damage };
  }
  const at = (seq: number) => SEGMENT_HEADER_BYTES + (seq - 1) * (RECORD_HEADER_BYTES + 40);

  it('starts at the record after afterSeq where findTail or a write placed it: the bytes before it are not read', async () => {
    const { dir, fs, journal: first } = await openJournal();
    await append(first, records(1, 50));
    await first.close();
    await fs.damage(segmentPath(dir), { kind: 'bitflip', offset: at(3) + RECORD_HEADER_BYTES + 3, length: 1 });
    const { journal } = await openJournal({ dir, fs }); // findTail read it whole: every record's offset known
    expect((await readAll(journal, 40)).damage).toHaveLength(1); // a plain read checks the whole segment
    expect(await readSkipping(journal, 40)).toEqual({ seqs: [41, 42, 43, 44, 45, 46, 47, 48, 49, 50], damage: [] });
    await append(journal, records(51, 5)); // written: their offsets too
    expect(await readSkipping(journal, 52)).toEqual({ seqs: [53, 54, 55], damage: [] });
    expect((await readSkipping(journal, 0)).seqs).toHaveLength(54); // from the start: the whole segment, record 3 damaged
    await journal.close();
  });

  it('starts inside an older segment whose table is known and reads the later segments whole: the records a plain read gives', async () => {
    const { journal } = await openJournal({ segmentBytesMax: 300 });
    for (let seq = 1; seq <= 20; seq += 4) await append(journal, records(seq, 4)); // a segment a batch, each table made as it was written
    expect(journal.segmentNames.length).toBeGreaterThan(3);
    for (const after of [1, 2, 6, 7, 13, 19, 20]) {
      expect(await readSkipping(journal, after)).toEqual({ seqs: (await readAll(journal, after)).seqs, damage: [] });
    }
    await journal.close();
  });

  it('reads the whole segment when the record is not where the table says (changed under it)', async () => {
    const { dir, fs, journal } = await openJournal();
    await append(journal, records(1, 10));
    await fs.damage(segmentPath(dir), { kind: 'bitflip', offset: at(7) + RECORD_HEADER_BYTES + 3, length: 1 });
    const read = await readSkipping(journal, 6);
    expect(read.seqs).toEqual([8, 9, 10]);
    expect(read.damage).toEqual([{ segment: '0000000000000001.jnl', offset: at(7), length: RECORD_HEADER_BYTES + 40, where: 'middle' }]);
    await journal.close();
  });
});

describe('Journal: abort and failed writes', () => {
  it('abort truncates written, unsynced records; their seqs are written again', async () => {
    const { dir, journal } = await openJournal();
    await append(journal, records(1, 2));
    const size = statSync(segmentPath(dir)).size;
    await journal.write(records(3, 2));
    expect(statSync(segmentPath(dir)).size).toBeGreaterThan(size);
    await journal.abort(new MailstoreError('IO', 'the packs failed'));
    expect(statSync(segmentPath(dir)).size).toBe(size);
    expect(journal.lastSeq).toBe(2);
    await append(journal, [{ seq: 3, payload: payload(3, 60) }]);
    expect((await readAll(journal)).seqs).toEqual([1, 2, 3]);
    await journal.close();
  });

  it('a failed write or fdatasync rejects with its code and leaves the segment as it was', async () => {
    const { dir, fs, journal } = await openJournal();
    await append(journal, records(1, 1));
    const size = statSync(segmentPath(dir)).size;
    fs.injectAt((op) => op.kind === 'write', { kind: 'shortWrite', bytes: 20 });
    await expectCode(journal.write(records(2, 3)), 'NO_SPACE');
    expect(statSync(segmentPath(dir)).size).toBe(size);
    fs.injectAt((op) => op.kind === 'sync', 'EIO');
    await journal.write(records(2, 3));
    await expectCode(journal.sync(), 'IO');
    expect(statSync(segmentPath(dir)).size).toBe(size);
    expect(journal.lastSeq).toBe(1);
    await append(journal, records(2, 1));
    expect(await readAll(journal)).toEqual({ seqs: [1, 2], damage: [] });
    await journal.close();
  });

  it('when the rollback fails too, every later write is refused (CLOSED) until reopen, and nothing half-written is trusted', async () => {
    const { dir, fs, journal } = await openJournal();
    await append(journal, records(1, 1));
    fs.injectAt((op) => op.kind === 'write', { kind: 'shortWrite', bytes: RECORD_HEADER_BYTES + 10 });
    fs.injectAt((op) => op.kind === 'truncate', 'EIO');
    await expectCode(journal.write(records(2, 1)), 'NO_SPACE');
    await expectCode(journal.write(records(2, 1)), 'CLOSED');
    await journal.close();
    const { journal: again, found } = await openJournal({ dir });
    expect(found.lastSeq).toBe(1);
    expect(found.tail?.length).toBe(RECORD_HEADER_BYTES + 10);
    await again.close();
  });
});

describe('recent records kept for replicas', () => {
  it('keeps none until recentAfter is asked, then the records after that, contiguous', async () => {
    const { journal } = await openJournal();
    await append(journal, records(1, 3));
    expect(journal.recentAfter(0)).toBeUndefined(); // nobody asked before: read them from disk
    await append(journal, records(4, 2));
    expect(journal.recentAfter(3)?.map((r) => r.seq)).toEqual([4, 5]);
    expect(journal.recentAfter(5)).toEqual([]);
    expect(journal.recentAfter(2)).toBeUndefined(); // 3 was never remembered
    await journal.close();
  });

  it('a replica asking keeps them whatever the wall clock does (stepped forward a day, the next batch was not kept: read from disk)', async () => {
    const { journal } = await openJournal();
    const clock = vi.spyOn(Date, 'now');
    try {
      await append(journal, records(1, 1));
      expect(journal.recentAfter(1)).toEqual([]);
      clock.mockImplementation(() => new Date().getTime() + 86_400_000); // a VM resumed a day later
      await append(journal, records(2, 2));
      expect(journal.recentAfter(1)?.map((r) => r.seq)).toEqual([2, 3]);
    } finally {
      clock.mockRestore();
      await journal.close();
    }
  });
});

describe('Journal: reading segments of different sizes', () => {
  it('records kept from earlier segments stay intact while later, larger and smaller, segments are read', async () => {
    // Segments of 2, 12 and 1 records: the reader reuses one buffer, and a larger segment gets a
    // fresh one. Every record is a copy, so what a consumer kept is never overwritten.
    const { journal } = await openJournal({ segmentBytesMax: 300 });
    const batches = [records(1, 2, 100), records(3, 12, 200), records(15, 1, 60), records(16, 3, 40)];
    for (const batch of batches) await append(journal, batch);
    expect(journal.segmentNames.length).toBe(4);
    const kept: JournalRecord[] = [];
    for await (const record of journal.read(0, () => { throw new Error('no damage expected'); })) kept.push(record);
    expect(kept.map((r) => r.seq)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
    for (const batch of batches) for (const r of batch) expect(kept[r.seq - 1].payload.equals(r.payload)).toBe(true);
    await journal.close();
  });
});
