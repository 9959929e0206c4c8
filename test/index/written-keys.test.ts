// The rebuild's key filter (WrittenKeys): a key added as bytes (a snapshot loaded straight into
// LevelDB batches) is found by the latin1 name the journal replay asks with, and by nothing else
// most of the time (it is a Bloom filter: no false negatives, few false positives).
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { IndexDb, IndexView, WrittenKeys } from '../../src/index/index-db.js';
import { tmpDir } from '../helpers/tmp.js';

describe('WrittenKeys', () => {
  it('addBytes(key) sets what add(latin1 name) sets: every added key is found either way', () => {
    const byBytes = new WrittenKeys(64 * 1024);
    const byName = new WrittenKeys(64 * 1024);
    const added = Array.from({ length: 2000 }, () => randomBytes(1 + (randomBytes(1)[0] % 40)));
    for (const key of added) {
      byBytes.addBytes(key);
      byName.add(key.toString('latin1'));
    }
    for (const key of added) expect(byBytes.mayHave(key.toString('latin1'))).toBe(true);
    let agree = 0;
    let falsePositives = 0;
    for (let i = 0; i < 2000; i++) {
      const name = randomBytes(20).toString('latin1');
      if (byBytes.mayHave(name) === byName.mayHave(name)) agree++;
      if (byBytes.mayHave(name)) falsePositives++;
    }
    expect(agree, 'the same bits: the same answer for keys never added').toBe(2000);
    expect(falsePositives).toBeLessThan(20);
  });

  it('a view over a fresh index: a key deleted and then put in one window is in the filter, and reads back after the flush', async () => {
    const db = await IndexDb.open(tmpDir(), true);
    const written = new WrittenKeys(64 * 1024);
    const view = new IndexView(db, written);
    const keys = Array.from({ length: 50 }, (_, i) => Buffer.from(`key-${i}`));
    for (const key of keys) view.del(key);
    for (const key of keys) view.put(key, 7);
    for (const key of keys) view.put(key, 8); // already pending: not added again, still found
    for (const key of keys) expect(written.mayHave(key.toString('latin1'))).toBe(true);
    await view.flush();
    const after = new IndexView(db, written);
    for (const key of keys) expect(after.getNow(key)).toBe(8);
    expect(after.getNow(Buffer.from('never-put'))).toBeUndefined();
    await db.close();
  });
});
