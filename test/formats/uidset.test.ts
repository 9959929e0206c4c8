import { describe, expect, it } from 'vitest';
import { UID_MAX, UidSet, formatUidSet, parseUidSet } from '../../src/formats/uidset.js';

describe('parseUidSet', () => {
  it('parses numbers, ranges, reversed ranges and *', () => {
    expect(parseUidSet('1:5,9,12:*', { largestUid: 14 }).toArray()).toEqual([1, 2, 3, 4, 5, 9, 12, 13, 14]);
    expect(parseUidSet('5:1').toArray()).toEqual([1, 2, 3, 4, 5]);
    expect(parseUidSet('*:3', { largestUid: 4 }).toArray()).toEqual([3, 4]);
    expect(parseUidSet('20:*', { largestUid: 14 }).toString()).toBe('14:20');
    expect(parseUidSet('*', { largestUid: 7 }).toArray()).toEqual([7]);
    expect(parseUidSet(`1,${UID_MAX}`).toArray()).toEqual([1, UID_MAX]);
  });

  it('sorts, deduplicates and merges', () => {
    const set = parseUidSet('9,3:4,1:2,4,10,20:18,7');
    expect(set.ranges).toEqual([{ start: 1, end: 4 }, { start: 7, end: 7 }, { start: 9, end: 10 }, { start: 18, end: 20 }]);
    expect(set.size).toBe(10);
    expect(set.has(8)).toBe(false);
    expect(set.has(19)).toBe(true);
  });

  it('selects nothing through * in an empty mailbox', () => {
    expect(parseUidSet('1:*', { largestUid: 0 }).isEmpty).toBe(true);
    expect(parseUidSet('*,5', { largestUid: 0 }).toArray()).toEqual([5]);
  });

  it.each(['', ' ', '1 ,2', '0', '1:0', '01', '-1', '1.5', 'a', '1,,2', '1:', ':1', '1:2:3', '1,', `${UID_MAX + 1}`, '1e3', '*'])(
    'rejects %j with INVALID', (text) => {
      expect(() => parseUidSet(text)).toThrow(expect.objectContaining({ code: 'INVALID' }));
    });

  it('handles a million UIDs as one range', () => {
    const set = parseUidSet('1:*', { largestUid: 1_000_000 });
    expect(set.ranges.length).toBe(1);
    expect(set.size).toBe(1_000_000);
    let sum = 0;
    for (const uid of set) sum += uid;
    expect(sum).toBe(500_000_500_000);
  });
});

describe('formatUidSet', () => {
  it('writes the compact form of any UIDs', () => {
    expect(formatUidSet([9, 1, 2, 3, 3, 5, 12, 13, 14])).toBe('1:3,5,9,12:14');
    expect(formatUidSet([])).toBe('');
    expect(formatUidSet(parseUidSet('3:1,7'))).toBe('1:3,7');
    expect(() => formatUidSet([0])).toThrow(expect.objectContaining({ code: 'INVALID' }));
    expect(() => formatUidSet([1.5])).toThrow(expect.objectContaining({ code: 'INVALID' }));
  });

  it('round-trips through parseUidSet', () => {
    const uids = Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 1_000_003 + 1);
    const text = formatUidSet(uids);
    expect(parseUidSet(text).toArray()).toEqual([...new Set(uids)].sort((a, b) => a - b));
    expect(UidSet.fromRanges([{ start: 5, end: 1 }, { start: 6, end: 8 }]).toString()).toBe('1:8');
  });
});
