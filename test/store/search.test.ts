// Header search against what Dovecot (doveadm search) and RFC 3501/9051 6.4.4 decide on odd
// messages: which bytes are the header section, and what text a header field holds.
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { parseHeaderSection, searchMailbox, type SearchCriteria } from '../../src/store/search.js';
import { tmpDir } from '../helpers/tmp.js';

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
});
