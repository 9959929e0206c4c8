// The argument checks behind the public API: the LIST pattern matcher (linear in the name whatever
// the pattern) and the strict date reader.
import { describe, expect, it } from 'vitest';
import { handOver, listPatternMatcher, normalizeUids, ownCopy, parseDateText, parseMailboxName, normalizeDate, type MatchSteps } from '../../src/store/validate.js';
import { limits } from '../../src/limits.js';

describe('LIST pattern matcher', () => {
  const table: [string, string, boolean][] = [
    ['*', 'a/b/c', true], ['%', 'a', true], ['%', 'a/b', false], ['%', '', true],
    ['INBOX', 'INBOX', true], ['INBOX', 'INBOX2', false], ['INBOX', 'INBO', false], ['inbox', 'INBOX', false],
    ['a/%', 'a/b', true], ['a/%', 'a/b/c', false], ['a/*', 'a/b/c', true], ['a/*', 'a', false], ['a*', 'a', true],
    ['%/%', 'a/b', true], ['%/%', 'a/b/c', false], ['*/c', 'a/b/c', true], ['%/c', 'a/b/c', false],
    ['a%c', 'abc', true], ['a%c', 'a/c', false], ['a*c', 'a/c', true], ['a*c', 'a/cd', false],
    ['**', 'x/y', true], ['%*', 'x/y', true], ['*%', 'x/y', true], ['%%', 'x/y', false],
    ['a.b', 'aXb', false], ['a.b', 'a.b', true], ['(a)+', '(a)+', true], ['[ab]', 'a', false], ['$^', '$^', true],
    ['Caf\u00e9/%', 'Caf\u00e9/x', true], ['\u{1F600}%', '\u{1F600}x', true], ['%', '\u{1F600}', true],
    ['*a*a*a*a*a*c', 'a'.repeat(200), false], ['*a*a*a*a*a*a', 'a'.repeat(200), true], ['%a%a%a%a%a%c', 'a'.repeat(200), false],
  ];

  it.each(table)('%j against %j is %s', (pattern, name, expected) => {
    expect(listPatternMatcher(pattern)(name)).toBe(expected);
  });

  it('does at most name length × pattern length steps, even for the patterns that made a regex backtrack for minutes', () => {
    const name = 'a'.repeat(200);
    for (const pattern of ['*a*a*a*a*a*c', '*a*a*a*a*a*a*a*a*a*a*a*a*c', '%a%a%a%a%a%a%a%c', `${'*a'.repeat(100)}c`]) {
      const counter: MatchSteps = { steps: 0 };
      expect(listPatternMatcher(pattern, counter)(name)).toBe(false);
      expect(counter.steps).toBeGreaterThan(0);
      expect(counter.steps).toBeLessThanOrEqual(name.length * pattern.length);
    }
  });
});

describe('dates', () => {
  it('reads ISO 8601 and RFC 5322 and refuses impossible calendar dates instead of rolling them over', () => {
    expect(parseDateText('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
    expect(parseDateText('2024-02-29T23:59:59.5Z')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59, 500));
    expect(parseDateText('2024-02-29T10:00:00+02:00')).toBe(Date.UTC(2024, 1, 29, 8));
    expect(parseDateText('Thu, 29 Feb 2024 10:00:00 -0100')).toBe(Date.UTC(2024, 1, 29, 11));
    expect(parseDateText('29 Feb 2024 10:00 GMT')).toBe(Date.UTC(2024, 1, 29, 10));
    for (const bad of ['2024-02-30', '2023-02-29', '2024-04-31', '2024-00-10', '2024-13-01', '2024-01-00', '2024-01-01T24:00:00Z', '2024-01-01T10:60:00Z',
      '2024-01-01T10:00:60Z', '2024-01-01T10:00:00+25:00', '31 Apr 2024 10:00:00 +0000', '30 Feb 2024 10:00:00 +0000', '-1', '1', '2024', 'tomorrow', '', '2024-1-1']) {
      expect(parseDateText(bad), bad).toBeNaN();
    }
  });

  it('reads a time without a zone as UTC, as a date alone, whatever the process\'s time zone (a DST gap included)', () => {
    const saved = process.env.TZ;
    try {
      for (const zone of ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe']) {
        process.env.TZ = zone;
        expect(parseDateText('2026-03-29'), zone).toBe(Date.UTC(2026, 2, 29));
        expect(parseDateText('2026-03-29T02:30:00'), zone).toBe(Date.UTC(2026, 2, 29, 2, 30)); // Berlin's clocks skip 02:00-03:00 that day
        expect(parseDateText('2026-03-29 02:30'), zone).toBe(Date.UTC(2026, 2, 29, 2, 30));
        expect(parseDateText('2026-03-29T02:30:00.25'), zone).toBe(Date.UTC(2026, 2, 29, 2, 30, 0, 250));
        expect(parseDateText('Sun, 29 Mar 2026 02:30:05'), zone).toBe(Date.UTC(2026, 2, 29, 2, 30, 5));
        expect(parseDateText('29 Mar 2026 02:30 EST'), zone).toBe(Date.UTC(2026, 2, 29, 7, 30));
        expect(parseDateText('2026-03-29T02:30:00+0100'), zone).toBe(Date.UTC(2026, 2, 29, 1, 30));
        expect(normalizeDate('1970-01-01T00:30:00'), zone).toBe(30 * 60_000); // east of UTC this was before 1970: INVALID
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('keeps internal dates between the named bounds', () => {
    expect(normalizeDate(limits.internalDateMsMin)).toBe(0);
    expect(normalizeDate('9999-12-31T23:59:59.999Z')).toBe(limits.internalDateMsMax);
    expect(() => normalizeDate('1969-12-31T23:59:59Z')).toThrow(/1970-01-01 to 9999-12-31/);
    expect(() => normalizeDate(limits.internalDateMsMax + 1)).toThrow(/invalid internal date/);
  });
});

describe('parseMailboxName', () => {
  it('parses the same name again the same, however a caller changed the components it was given, and still refuses a bad one', () => {
    const first = parseMailboxName('user/alice/INBOX');
    expect(first).toEqual(['user', 'alice', 'INBOX']);
    first.push('x');
    first[0] = 'y';
    const second = parseMailboxName('user/alice/INBOX');
    expect(second).toEqual(['user', 'alice', 'INBOX']);
    second.pop();
    expect(parseMailboxName('user/alice/INBOX')).toEqual(['user', 'alice', 'INBOX']);
    expect(parseMailboxName('Caf\u0065\u0301')).toEqual(['Caf\u00e9']); // NFC, as before
    for (const bad of ['a//b', '', 'a/*', 'a\u0000b']) {
      expect(() => parseMailboxName(bad)).toThrow(expect.objectContaining({ code: 'INVALID' }));
      expect(() => parseMailboxName(bad)).toThrow(expect.objectContaining({ code: 'INVALID' })); // not remembered
    }
  });

  it('checks a remembered name again against limits changed since (a daemon started with other limits, a test)', () => {
    const saved = { ...limits };
    try {
      expect(parseMailboxName('deep/er/name')).toEqual(['deep', 'er', 'name']);
      Object.assign(limits, { mailboxNameDepthMax: 2 });
      expect(() => parseMailboxName('deep/er/name')).toThrow(expect.objectContaining({ code: 'INVALID', message: expect.stringContaining('deeper than 2 levels') }));
      Object.assign(limits, saved, { mailboxNameComponentBytesMax: 3 });
      expect(() => parseMailboxName('deep/er/name')).toThrow(expect.objectContaining({ code: 'INVALID', message: expect.stringContaining('longer than 3 bytes') }));
      Object.assign(limits, saved, { mailboxNameBytesMax: 8 });
      expect(() => parseMailboxName('deep/er/name')).toThrow(expect.objectContaining({ code: 'INVALID', message: expect.stringContaining('longer than 8 bytes') }));
    } finally {
      Object.assign(limits, saved);
    }
    expect(parseMailboxName('deep/er/name')).toEqual(['deep', 'er', 'name']);
  });
});

describe('ownCopy', () => {
  it("copies a caller's buffer, so a later change of it does not reach the store", () => {
    const given = Buffer.from('message');
    const own = ownCopy(given);
    given.fill(0);
    expect(own.toString()).toBe('message');
  });

  it('takes a handed-over buffer as it is, once; the next ownCopy of it copies again', () => {
    const given = handOver(Buffer.from('from the socket'));
    expect(ownCopy(given)).toBe(given);
    expect(ownCopy(given)).not.toBe(given);
    const plain = handOver(new Uint8Array([1, 2, 3]));
    const own = ownCopy(plain);
    expect(Buffer.isBuffer(own)).toBe(true);
    expect(own.buffer).toBe(plain.buffer); // no copy, a Buffer view of the same bytes
  });
});

describe('normalizeUids', () => {
  it('gives the uids sorted and unique, as a Set and a sort did, and a copy: the caller may change its list after (STORE 1:* of 1M uids took ~40 MB more that way)', () => {
    const reference = (list: number[]) => [...new Set(list)].sort((a, b) => a - b);
    const lists = [[5], [1, 2, 3], [3, 2, 1], [2, 2, 2], [7, 1, 7, 0xffffffff, 1, 4], [1, 0xffffffff], [4, 4, 5], []];
    let seed = 7;
    for (let n = 0; n < 30; n++) lists.push(Array.from({ length: n * 7 }, () => ((seed = (seed * 48271) % 0x7fffffff) % (n * 3 + 1)) + 1));
    for (const list of lists) {
      const given = [...list];
      const normalized = normalizeUids(given);
      expect(normalized, JSON.stringify(list)).toEqual(reference(list));
      expect(normalized).not.toBe(given);
      expect(given, 'the caller\'s list left as it was').toEqual(list);
    }
    expect(normalizeUids(9)).toEqual([9]);
    expect(() => normalizeUids([1, 0])).toThrow(/invalid uid 0/);
    expect(() => normalizeUids([2, 1.5])).toThrow(/invalid uid 1.5/);
    expect(() => normalizeUids([1, 2 ** 32])).toThrow(/invalid uid/);
  });
});
