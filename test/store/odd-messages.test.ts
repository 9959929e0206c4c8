// Odd messages keep every byte on every in-process path: append, fetch, fetchStream, readMessages
// (given and lent bodies), copy, move, compaction (inline bodies moved into packs, packs rewritten),
// reopen and a rebuild of the index from the journal; each read also reports the exact size.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const HEADER = 'From: a@example.org\r\nSubject: odd\r\n\r\n';
const padded = (size: number) => Buffer.concat([Buffer.from(HEADER), Buffer.alloc(size - HEADER.length, 0x61)]);
const ODD: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['a lone LF', Buffer.from('\n')],
  ['headers only, no newline', Buffer.from('From: a@example.org\nSubject: no newline')],
  ['bare CR', Buffer.from('From: a@example.org\rSubject: cr\r\r\rbody\r')],
  ['CRLF and LF mixed', Buffer.from('Subject: mixed\n\r\nline\nline\r\nline\r\r\n')],
  ['NUL bytes', Buffer.from('From: a@\0example.org\r\n\r\n\0\0body\0')],
  ['invalid UTF-8 in headers', Buffer.concat([Buffer.from('Subject: '), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xe9]), Buffer.from('\r\n\r\n')])],
  ['dot lines', Buffer.from(`${HEADER}.\r\n..\r\n.`)],
  ['From_ lines', Buffer.from('From sender@example.org Mon Jan  1 00:00:00 2024\r\n\r\nFrom here\r\n>From there\r\n')],
  ['a 1 MiB line', Buffer.concat([Buffer.from(HEADER), Buffer.alloc(1024 * 1024, 0x62)])],
  ['inline threshold - 1', padded(limits.inlineBodyBytesDefault - 1)],
  ['inline threshold', padded(limits.inlineBodyBytesDefault)],
  ['inline threshold + 1', padded(limits.inlineBodyBytesDefault + 1)],
];

describe('odd messages', () => {
  it('read back byte for byte, with their exact size, on every path and after compaction, reopen and rebuild', async () => {
    const dir = tmpDir();
    // small packs: the larger messages each end a pack, and compaction rewrites several
    const options = { packBytesMax: 64 * 1024 };
    let store = await Store.open(dir, { create: true, ...options });
    for (const name of ['a', 'b', 'c', 'junk']) await store.createMailbox(name);
    const uids: number[] = [];
    for (const [, bytes] of ODD) {
      await store.append('junk', Buffer.concat([bytes, Buffer.from('junk')]));
      const appended = await store.append('a', bytes);
      expect(appended.size).toBe(bytes.length);
      uids.push(appended.uid);
    }
    const readAll = async (mailbox: string, at: number[], when: string) => {
      for (const [i, [what, bytes]] of ODD.entries()) {
        const tag = `${what}, ${when}`;
        expect(Buffer.compare(await store.fetch(mailbox, at[i]), bytes), tag).toBe(0);
        const parts: Buffer[] = [];
        for await (const part of await store.fetchStream(mailbox, at[i])) parts.push(part as Buffer);
        expect(Buffer.compare(Buffer.concat(parts), bytes), `${tag} (stream)`).toBe(0);
        expect((await store.messageInfo(mailbox, at[i])).size, tag).toBe(bytes.length);
      }
      for (const lendBodies of [false, true]) {
        let i = 0;
        for await (const { info, body } of store.readMessages(mailbox, { lendBodies })) {
          expect(Buffer.compare(body, ODD[i][1]), `${ODD[i][0]}, ${when} (readMessages, lent: ${lendBodies})`).toBe(0);
          expect(info.size).toBe(ODD[i++][1].length);
        }
        expect(i).toBe(ODD.length);
      }
    };
    await readAll('a', uids, 'appended');
    const copied = await store.copy('a', uids, 'b');
    const moved = await store.move('b', copied.mapping.map(([, to]) => to), 'c');
    const inC = moved.mapping.map(([, to]) => to);
    await readAll('c', inC, 'copied and moved');
    await store.expunge('junk', Array.from({ length: ODD.length }, (_, i) => i + 1));
    await store.expunge('a', uids.filter((_, i) => i % 2 === 1));
    const compacted = await store.compact({ graceMs: 0, deadRatio: 0.0001 });
    expect(compacted.packsRewritten.length).toBeGreaterThan(0);
    await readAll('c', inC, 'compacted');
    await store.close();
    store = await Store.open(dir, options);
    await readAll('c', inC, 'reopened');
    await store.close();
    rmSync(join(dir, 'index'), { recursive: true });
    store = await Store.open(dir, options);
    await readAll('c', inC, 'index rebuilt');
    await store.close();
  }, 60_000);
});
