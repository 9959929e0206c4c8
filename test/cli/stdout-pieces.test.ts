// `messages` and `search` write their listing as they read it (src/cli/stdout-pieces.ts): held
// whole first, `messages INBOX 1:*` of a 1M-message mailbox took the CLI to 670 MB through the
// daemon, and `search --since` the same (the bound is 256 MB). The bytes are those of before.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { StdoutPieces, printJsonItems } from '../../src/cli/stdout-pieces.js';
import { formatMessageLine, printMessages } from '../../src/cli/commands/messages.js';
import { searchMessages } from '../../src/store/search.js';
import { limits } from '../../src/limits.js';
import { jsonText, printable } from '../../src/printable.js';
import { Store } from '../../src/store/store.js';
import type { MessageInfo } from '../../src/store/types.js';
import { tmpDir } from '../helpers/tmp.js';

const COUNT = 20_000;

/** What was written, and how many items the listing had given when each piece was written. */
function sink(given: () => number) {
  const pieces: { bytes: Buffer; given: number }[] = [];
  const out = new StdoutPieces(async (bytes) => { pieces.push({ bytes, given: given() }); });
  return { out, pieces, text: () => Buffer.concat(pieces.map((p) => p.bytes)).toString() };
}

function infos(count: number): { list: MessageInfo[]; counted: () => AsyncGenerator<MessageInfo>; given: () => number } {
  const list = Array.from({ length: count }, (_, i): MessageInfo => ({
    uid: i + 1, hash: 'ab'.repeat(32), size: 100 + i, internalDate: new Date(1_700_000_000_000 + i * 1000), flags: i % 2 ? ['\\Seen'] : [], modseq: 7,
    ...(i % 3 === 0 ? { envelopeFrom: 'a@example.org' } : {}),
  }));
  let given = 0;
  return { list, given: () => given, counted: async function* () { for (const info of list) { given++; yield info; } } };
}

describe('a CLI listing goes out as it is read', () => {
  it(`messages: ${COUNT} lines in pieces of about limits.stdoutPieceBytes, the first before the listing is a tenth read; the same lines as before`, async () => {
    const { list, counted, given } = infos(COUNT);
    const { out, pieces, text } = sink(given);
    await printMessages(counted(), false, out);
    expect(text()).toBe(list.map((info) => `${printable(formatMessageLine(info), '\t')}\n`).join(''));
    expect(pieces.length).toBeGreaterThan(10);
    expect(pieces[0].given).toBeLessThan(COUNT / 10);
    for (const piece of pieces.slice(0, -1)) expect(piece.bytes.length).toBeLessThan(limits.stdoutPieceBytes + 1024);
  });

  it('--json: the bytes of printJson of the whole array (empty, one, many), written as they come', async () => {
    for (const count of [0, 1, 3, COUNT]) {
      const { list, counted, given } = infos(count);
      const { out, pieces, text } = sink(given);
      await printJsonItems(counted(), out);
      expect(text()).toBe(jsonText(list, 2) + '\n');
      expect(JSON.parse(text())).toHaveLength(count);
      if (count === COUNT) expect(pieces[0].given).toBeLessThan(COUNT / 10);
    }
  });

  it('search yields each match as the listing reaches it (index keys and header keys), the same matches as searchMailbox gave', async () => {
    const store = await Store.open(join(tmpDir('stdout-pieces'), 's'), { create: true });
    try {
      await store.createMailbox('m');
      await store.appendBatch('m', Array.from({ length: 600 }, (_, i) => ({
        bytes: Buffer.from(`Subject: ${i % 5 === 0 ? 'wanted' : 'other'} ${i}\r\n\r\n${'x'.repeat(i)}\r\n`),
        internalDate: new Date(Date.UTC(2024, 0, 1) + i * 86_400_000),
      })));
      let read = 0;
      const counting = new Proxy(store, {
        get(target, prop) {
          if (prop === 'messages') return async function* (mailbox: string) { for await (const info of target.messages(mailbox)) { read++; yield info; } };
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const since = new Date(Date.UTC(2024, 0, 1) + 100 * 86_400_000);
      const found: number[] = [];
      for await (const info of searchMessages(counting, 'm', { since, larger: 300 })) {
        if (found.length === 0) expect(read, 'the first match was given before the index was read to the end').toBeLessThan(600);
        found.push(info.uid);
      }
      const expected: number[] = [];
      for await (const info of store.messages('m')) if (info.internalDate >= since && info.size > 300) expected.push(info.uid);
      expect(found).toEqual(expected);
      expect(found.length).toBeGreaterThan(100);
      const headers: number[] = [];
      for await (const info of searchMessages(store, 'm', { since, headers: [['subject', 'wanted']] })) headers.push(info.uid);
      expect(headers).toEqual(Array.from({ length: 600 }, (_, i) => i).filter((i) => i >= 100 && i % 5 === 0).map((i) => i + 1));
    } finally {
      await store.close();
    }
  });
});
