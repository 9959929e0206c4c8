// Header search against what Dovecot (doveadm search) and RFC 3501/9051 6.4.4 decide on odd
// messages: which bytes are the header section, and what text a header field holds.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { parseHeaderSection, searchMailbox, type SearchCriteria } from '../../src/store/search.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';

async function storeWith(messages: Buffer[]): Promise<{ store: Store; uids: (c: SearchCriteria) => Promise<number[]> }> {
  const store = await Store.open(tmpDir(), { create: true });
  await store.createMailbox('m');
  for (const bytes of messages) await store.append('m', bytes);
  return { store, uids: async (c) => (await searchMailbox(store, 'm', c)).map((m) => m.uid) };
}

describe('the header section', () => {
  it('is empty when the message starts with an empty line: what follows is body (RFC 5322 2.1; Dovecot agrees)', async () => {
    const bodyOnly = Buffer.from('\r\nFrom: hidden@example.org\r\nSubject: hidden\r\n\r\nbody\r\n');
    const bodyOnlyLf = Buffer.from('\nSubject: hidden too\n');
    expect(parseHeaderSection(bodyOnly)).toEqual([]);
    expect(parseHeaderSection(bodyOnlyLf)).toEqual([]);
    const { store, uids } = await storeWith([bodyOnly, bodyOnlyLf, Buffer.from('Subject: hidden in a header\r\n\r\n')]);
    expect(await uids({ headers: [['subject', 'hidden']] })).toEqual([3]);
    expect(await uids({ headers: [['from', '']] })).toEqual([]);
    expect(Buffer.compare(await store.fetch('m', 1), bodyOnly)).toBe(0); // searched, never changed
    await store.close();
  });

  it('has no field named by a line that starts with white space (no field name does; Dovecot agrees), but WSP before the colon is allowed (RFC 5322 obs-optional)', async () => {
    const indented = Buffer.from(' From: James <james@example.org>\r\nSubject: plain\r\n\r\nbody\r\n');
    const spaced = Buffer.from('From\t : spaced@example.org\r\n\r\n');
    const { store, uids } = await storeWith([indented, spaced]);
    expect(await uids({ headers: [['from', '']] })).toEqual([2]);
    expect(await uids({ headers: [['from', 'james']] })).toEqual([]);
    expect(await uids({ headers: [['subject', 'plain']] })).toEqual([1]);
    await store.close();
  });
});

describe('the text of a header field', () => {
  it('is UTF-8 (RFC 6532) and compared case-insensitively in Unicode: a non-ASCII key finds raw 8-bit headers (as Dovecot)', async () => {
    const raw = Buffer.from('Subject: raw Grüße ÄÖÜ\r\nFrom: Jürgen <j@example.org>\r\n\r\nbody\r\n', 'utf8');
    const invalid = Buffer.concat([Buffer.from('Subject: bad '), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(' bytes\r\n\r\n')]);
    const { store, uids } = await storeWith([raw, invalid]);
    expect(await uids({ headers: [['subject', 'grüße']] })).toEqual([1]);
    expect(await uids({ headers: [['subject', 'äöü']] })).toEqual([1]);
    expect(await uids({ headers: [['from', 'JÜRGEN']] })).toEqual([1]);
    expect(await uids({ headers: [['subject', 'gru\u0308ße']] })).toEqual([1]); // the key typed decomposed (NFD)
    expect(await uids({ headers: [['subject', 'bytes']] })).toEqual([2]); // invalid UTF-8 around it does not hide ASCII
    expect(Buffer.compare(await store.fetch('m', 1), raw)).toBe(0);
    expect(Buffer.compare(await store.fetch('m', 2), invalid)).toBe(0);
    await store.close();
  });

  it('is what RFC 2047 encoded words spell: SUBJECT "Grüße" finds =?UTF-8?B?...?= (RFC 9051 6.4.4 matches the field\'s text, as Dovecot)', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const { store, uids } = await storeWith([
      Buffer.from(`Subject: =?UTF-8?B?${b64('Grüße Welt')}?=\r\n\r\n`),
      Buffer.from('From: =?iso-8859-1?q?J=FCrgen_M=FCller?= <j@example.org>\r\n\r\n'),
      // adjacent words join without the white space between them; one character split over two
      Buffer.from('Subject: =?UTF-8?Q?abc?=\r\n =?UTF-8?Q?def_=C3?= =?UTF-8?Q?=A4ndern?= rest\r\n\r\n'),
      Buffer.from('Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n\r\n'),
      // not encoded words: an unknown charset, and white space inside, are kept as written
      Buffer.from('Subject: =?x-made-up?Q?zzz?= and =?UTF-8?Q?has space?=\r\n\r\n'),
    ]);
    expect(await uids({ headers: [['subject', 'GRÜßE WELT']] })).toEqual([1]);
    expect(await uids({ headers: [['from', 'jürgen müller']] })).toEqual([2]);
    expect(await uids({ headers: [['subject', 'abcdef ändern rest']] })).toEqual([3]);
    expect(await uids({ headers: [['subject', 'こんにちは']] })).toEqual([4]);
    expect(await uids({ headers: [['subject', '=?x-made-up?Q?zzz?=']] })).toEqual([5]);
    expect(await uids({ headers: [['subject', 'has space']] })).toEqual([5]);
    expect(await uids({ headers: [['subject', '=?UTF-8?B?']] })).toEqual([]); // the encoding itself is no text
    await store.close();
  });
});

describe('criteria', () => {
  it('a wrong one is INVALID before anything is read, never a TypeError or a silent empty answer', async () => {
    const { store, uids } = await storeWith([Buffer.from('Subject: hello\r\n\r\n')]);
    const bad: unknown[] = [
      { before: '2024-01-01' }, { since: new Date(NaN) }, { larger: -1 }, { smaller: '10' }, { uids: [0] }, { uids: 'all' },
      { headers: 'subject' }, { headers: [['subject']] }, { headers: [['', 'x']] }, { headers: [['Subject: hello', '']] },
      { headers: [['subject', 5]] }, { subject: 'hello' }, null,
    ];
    for (const criteria of bad) expect(await codeOf(searchMailbox(store, 'm', criteria as SearchCriteria)), JSON.stringify(criteria)).toBe('INVALID');
    expect(await uids({ headers: [['Subject', 'HELLO']], larger: 0, uids: [1] })).toEqual([1]);
    await store.close();
  });
});
