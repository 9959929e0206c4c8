// reconstruct's comparison reads both indexes in stretches, LevelDB reopened between them
// (index/stretches.ts), so a pass leaves only its last stretch's tables mapped (issue
// 16: reconstruct --check at 500k messages). Every entry must still come once, in order, and every
// difference be found.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb, IndexView } from '../../src/index/index-db.js';
import { keys } from '../../src/keys/index-keys.js';
import { entriesInStretches } from '../../src/index/stretches.js';
import { compareIndexes } from '../../src/store/recovery.js';
import { tmpDir } from '../helpers/tmp.js';

const KEY_COUNT = 3000;
const key = (i: number) => keys.meta(`k${String(i).padStart(6, '0')}`);
const range = { gte: keys.meta('k'), lt: keys.meta('l') };

async function filled(change?: (i: number) => number | undefined): Promise<IndexDb> {
  const db = await IndexDb.open(tmpDir(), true);
  const view = new IndexView(db);
  for (let i = 0; i < KEY_COUNT; i++) {
    const value = change ? change(i) : i;
    if (value !== undefined) view.put(key(i), value);
  }
  await view.flush();
  return db;
}

describe('an index read in stretches', () => {
  it('returns every entry once, in order, LevelDB reopened between the stretches', async () => {
    const db = await filled();
    const seen: Buffer[] = [];
    for await (const [k] of entriesInStretches(db, range, 2000)) seen.push(Buffer.from(k));
    expect(seen.map((k) => k.toString('hex'))).toEqual(Array.from({ length: KEY_COUNT }, (_, i) => key(i).toString('hex')));
    expect(existsSync(join(db.path, 'LOG.old'))).toBe(true); // a reopen rolls the LOG
    await db.close();
  });

  it('ends at the range end, and a stretch ending on its last entry reads nothing more', async () => {
    const db = await filled();
    const end = { gte: key(10), lt: key(20) };
    const sizes: number[] = [];
    for await (const [k, v] of entriesInStretches(db, end, 1)) sizes.push(k.length + v.length);
    expect(sizes).toHaveLength(10);
    await db.close();
  });

  it('compares two indexes in stretches as whole: the same differences', async () => {
    const a = await filled();
    const b = await filled((i) => (i === 5 ? undefined : i === 1500 ? -1 : i));
    const differences = async (stretchBytes?: number) => {
      const found: string[] = [];
      for await (const d of compareIndexes(a, b, stretchBytes)) found.push(`${d.key.toString('hex')} ${d.detail}`);
      return found;
    };
    const whole = await differences();
    expect(whole).toEqual([`${key(5).toString('hex')} only in the current index`, `${key(1500).toString('hex')} values differ`]);
    expect(await differences(1000)).toEqual(whole);
    await a.close();
    await b.close();
  });
});
