// Two index directories compared entry by entry (recovery.ts compareIndexes), as readable lines.
import { IndexDb } from '../../src/index/index-db.js';
import { compareIndexes } from '../../src/store/recovery.js';
import { meta } from '../../src/store/apply.js';

/**
 * Every key where the indexes at `a` and `b` differ, with what differs; [] when identical. But the
 * store's view of the wall clock (index/clock, src/store/clock.ts): no journal gives it, and each
 * open looks at the clock anew.
 */
export async function indexDifferences(a: string, b: string): Promise<string[]> {
  const [x, y] = [await IndexDb.open(a, false), await IndexDb.open(b, false)];
  const found: string[] = [];
  try {
    for await (const d of compareIndexes(x, y)) if (!d.key.equals(meta.clock)) found.push(`${d.key.toString('hex')}: ${d.detail}`);
  } finally {
    await x.close();
    await y.close();
  }
  return found;
}
