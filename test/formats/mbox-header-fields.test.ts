// The mbox reader finds the Status, X-Status, X-Keywords, X-Mozilla-Keys, X-Mozilla-Status and
// Content-Length fields of a header block in one pass (headerFields); each must be what its own
// pattern, searched over the whole block, found before: a flag or a message boundary read
// otherwise would change what an import stores.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { headerFields } from '../../src/formats/mbox.js';

/** The patterns as the reader searched them one by one (before session 39). */
const SEARCHED = {
  'status': /^status:[ \t]*([^\r\n]*)/im,
  'x-status': /^x-status:[ \t]*([^\r\n]*)/im,
  'x-keywords': /^x-keywords:[ \t]*([^\r\n]*)/im,
  'x-mozilla-keys': /^x-mozilla-keys:[ \t]*([^\r\n]*)/im,
  'x-mozilla-status': /^x-mozilla-status:[ \t]*([0-9a-f]{4})[ \t]*\r?$/im,
  'content-length': /^content-length:[ \t]*(\d{1,15})[ \t]*\r?$/im,
} as const;

function searchedOneByOne(headers: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, pattern] of Object.entries(SEARCHED)) {
    const value = pattern.exec(headers)?.[1];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

describe('headerFields', () => {
  it('finds each field where its own search found it: the first line its whole pattern matches', () => {
    const headers = [
      'Received: from x', 'content-length: abc', 'X-Mozilla-Status: 00zz', 'Status: RO', 'STATUS: O',
      'X-Keywords: $Junk  work', 'x-mozilla-status: 0001 ', 'Content-Length: 42\r', 'Content-Length: 7',
    ].join('\n');
    expect(headerFields(headers)).toStrictEqual({ 'status': 'RO', 'x-keywords': '$Junk  work', 'x-mozilla-status': '0001', 'content-length': '42' });
    expect(headerFields(headers)).toStrictEqual(searchedOneByOne(headers));
    expect(headerFields('Subject: x\rStatus: R')).toStrictEqual({ status: 'R' }); // a lone CR starts a line, as for `^` with /m
    expect(headerFields('Subject: status: R\nX-Status-Old: F')).toStrictEqual({});
  });

  it('never disagrees with the searches one by one', () => {
    const name = fc.constantFrom('Status', 'STATUS', 'status', 'X-Status', 'x-STATUS', 'X-Keywords', 'X-Mozilla-Keys', 'X-Mozilla-Status',
      'x-mozilla-status', 'Content-Length', 'content-length', 'Subject', 'X-Status-Extra', 'Date', ' Status');
    const value = fc.oneof(fc.constantFrom('', ' RO', ' 0001', '\t42 ', ' 00zz', ' 12345678901234567', ' $Junk work', ' A F', ' 8000\r'),
      fc.string({ unit: fc.constantFrom('a', 'R', '0', '7', ' ', '\t', '\r', ':', '\\', 'ÿ'), maxLength: 12 }));
    const line = fc.tuple(name, fc.constantFrom(':', ': ', ''), value).map(([n, colon, v]) => `${n}${colon}${v}`);
    const block = fc.tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom('\n', '\r\n', '\r')).map(([lines, eol]) => lines.join(eol));
    fc.assert(fc.property(block, (headers) => {
      expect(headerFields(headers)).toStrictEqual(searchedOneByOne(headers));
    }), { numRuns: 3000 });
  });
});
