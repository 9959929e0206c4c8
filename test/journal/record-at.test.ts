// Journal.readRecordAt (inline bodies are read by their record's seq): live from the offsets the
// journal wrote, after a reopen from one whole read of the segment, across rotations; a seq that
// is not there (retired, never written, cut) is undefined, never another record's bytes.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal, type JournalRecord } from '../../src/journal/journal.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');

async function openJournal(dir: string, fs: FaultFileSystem) {
  const journal = await Journal.open(fs, dir, storeId, { segmentBytesMax: 2048, recordBytesMax: 4096, checkMounted: async () => undefined });
  await journal.findTail();
  return journal;
}

const payload = (seq: number) => Buffer.from(`record ${seq} `.padEnd(100 + (seq % 7) * 13, '.'));

describe('Journal.readRecordAt', () => {
  it('finds every record by seq, live and after a reopen, across segments', async () => {
    const dir = join(tmpDir('journal'), 'journal');
    mkdirSync(dir, { recursive: true });
    const fs = new FaultFileSystem();
    let journal = await openJournal(dir, fs);
    for (let seq = 1; seq <= 60; seq += 3) {
      const batch: JournalRecord[] = [0, 1, 2].map((i) => ({ seq: seq + i, payload: payload(seq + i) }));
      await journal.write(batch);
      await journal.sync();
      expect(await journal.readRecordAt(seq + 1)).toEqual(payload(seq + 1));
    }
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
