// Journal.retireThrough failing half-way: the unlink (or the move to the archive) done, the
// directory sync after it failing. The segment stays listed (its removal is not durable); a retry
// that finds the file gone syncs and counts it retired, instead of failing on it for ever. A
// segment that is missing without such a failed attempt is NOT_FOUND (never taken as retired).
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../src/journal/journal.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';

const storeId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const payload = (seq: number) => Buffer.from(`record ${seq} `.padEnd(300, '.'));

/** A journal of 40 records over several 2 KiB segments. */
async function written(fs: FaultFileSystem) {
  const root = tmpDir('journal-retire');
  const dir = join(root, 'journal');
  mkdirSync(dir, { recursive: true });
  const journal = await Journal.open(fs, dir, storeId, { segmentBytesMax: 2048, recordBytesMax: 4096, checkMounted: async () => undefined });
  await journal.findTail();
  for (let seq = 1; seq <= 40; seq++) {
    await journal.write([{ seq, payload: payload(seq) }]);
    await journal.sync();
  }
  expect(journal.segmentNames.length).toBeGreaterThan(3);
  return { root, dir, journal };
}

/** EIO on the first directory sync of `dir` after an unlink or rename in `from`. */
function failSyncAfterRemoval(fs: FaultFileSystem, from: string, dir: string): void {
  let removed = false;
  fs.injectAt((op) => {
    if ((op.kind === 'unlink' || op.kind === 'rename') && op.path.startsWith(from)) removed = true;
    return removed && op.kind === 'syncDir' && op.path === dir;
  }, 'EIO');
}

describe('Journal.retireThrough: a failed directory sync after the removal', () => {
  it('deleting: IO, the segment stays listed; the retry syncs, counts it and goes on', async () => {
    const fs = new FaultFileSystem();
    const { dir, journal } = await written(fs);
    const first = journal.segmentNames[0];
    failSyncAfterRemoval(fs, dir, dir);
    expect(await codeOf(journal.retireThrough(30))).toBe('IO');
    expect(existsSync(join(dir, first)), 'the unlink happened').toBe(false);
    expect(journal.segmentNames[0], 'not durable: still listed').toBe(first);
    const retried = await journal.retireThrough(30);
    expect(retried.segments[0]).toBe(first);
    expect(retried.bytes, 'its size from before the failure counts').toBeGreaterThan(2048 * (retried.segments.length - 1));
    expect(journal.segmentNames).not.toContain(first);
    expect(await journal.readRecordAt(40)).toEqual(payload(40));
    await journal.close();
  });

  it('moving to the archive: IO when the archive directory sync fails; the retry syncs the archive and counts it', async () => {
    const fs = new FaultFileSystem();
    const { root, dir, journal } = await written(fs);
    const archive = join(root, 'archive');
    mkdirSync(archive);
    const first = journal.segmentNames[0];
    failSyncAfterRemoval(fs, dir, archive);
    expect(await codeOf(journal.retireThrough(30, archive))).toBe('IO');
    expect(readdirSync(archive), 'the rename happened').toEqual([first]);
    const syncsBefore = fs.counters().syncDirByPath.get(archive) ?? 0;
    const retried = await journal.retireThrough(30, archive);
    expect(retried.segments[0]).toBe(first);
    expect(fs.counters().syncDirByPath.get(archive) ?? 0, 'the archive directory was synced for it').toBeGreaterThan(syncsBefore);
    expect(readdirSync(archive)).toEqual(retried.segments.slice().sort());
    await journal.close();
  });

  it('a segment gone with no failed retirement before: NOT_FOUND, nothing retired', async () => {
    const fs = new FaultFileSystem();
    const { dir, journal } = await written(fs);
    const names = journal.segmentNames;
    rmSync(join(dir, names[0]));
    expect(await codeOf(journal.retireThrough(30))).toBe('NOT_FOUND');
    expect(journal.segmentNames).toEqual(names);
    await journal.close();
  });
});
