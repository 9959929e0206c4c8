// Scrub's record of the index entries its pack pass confirmed (src/scrub/scrub.ts, Confirmed): a
// typed array per pack, which must answer exactly as the number lists it replaced, past its first
// growth and for offsets beyond 32 bits (a store opened with a packBytesMax over 4 GiB).
import { describe, expect, it } from 'vitest';
import { Confirmed } from '../../src/scrub/scrub.js';

describe('Confirmed', () => {
  it('finds exactly the offsets added, per pack, across growth and past 2^32', () => {
    const confirmed = new Confirmed();
    const offsets = Array.from({ length: 5000 }, (_, i) => 32 + i * 977);
    const far = [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 12_345, 3 * 2 ** 32 + 1];
    for (const o of offsets) confirmed.add(1, o);
    for (const o of [...offsets.slice(0, 3000), ...far]) confirmed.add(2, o);
    expect(confirmed.n).toBe(5000 + 3000 + far.length);
    for (const o of offsets) expect(confirmed.has(1, o)).toBe(true);
    for (const o of offsets.slice(0, 3000)) expect(confirmed.has(2, o)).toBe(true);
    for (const o of far) {
      expect(confirmed.has(2, o), `pack 2 at ${o}`).toBe(true);
      expect(confirmed.has(1, o)).toBe(false);
    }
    for (const o of [0, 33, 32 + 977 * 5000, offsets[3000], 2 ** 32 + 1]) expect(confirmed.has(o === offsets[3000] ? 2 : 1, o), `${o}`).toBe(false);
    expect(confirmed.has(3, 32)).toBe(false);
  });
});
