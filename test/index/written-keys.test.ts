// The rebuild's key filter (WrittenKeys): a key added as bytes (a snapshot loaded straight into
// LevelDB batches) is found by the latin1 name the journal replay asks with, and by nothing else
// most of the time (it is a Bloom filter: no false negatives, few false positives).
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { WrittenKeys } from '../../src/index/index-db.js';

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
});
