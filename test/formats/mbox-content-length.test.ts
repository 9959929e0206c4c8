// Content-Length mboxes (mboxcl2): Dovecot, Solaris mailx and others write each message's body
// unquoted and give its length in a Content-Length header. Read as plain mboxrd, every body line
// starting `From ` split a message in two and every `>From ` lost a `>`, and the import said nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { type MboxMessage, type MboxWarning, type ReadMboxOptions, readMbox } from '../../src/formats/mbox.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-mboxcl-'));

function fileWith(content: string): string {
  const path = join(tmp(), 'in.mbox');
  writeFileSync(path, Buffer.from(content, 'latin1'));
  return path;
}

async function readAll(path: string, options: ReadMboxOptions = {}): Promise<{ messages: MboxMessage[]; warnings: MboxWarning[] }> {
  const warnings: MboxWarning[] = [];
  const messages: MboxMessage[] = [];
  for await (const message of readMbox(fs, path, { ...options, onWarning: (w) => warnings.push(w) })) messages.push(message);
  return { messages, warnings };
}

const text = (messages: MboxMessage[]) => messages.map((m) => m.bytes.toString('latin1'));

// Byte for byte what Dovecot 2.3.19 (`doveadm import` into mbox:) wrote for two Maildir messages.
const DOVECOT_ONE = 'Subject: x\nX-IMAPbase: 1796515633 0000000002 $Junk\nX-UID: 1\nStatus: R\n'
  + `X-Keywords:${' '.repeat(66)}\nContent-Length: 82\n\n`
  + 'line\nFrom me to you\n>From quoted\n>>From q2\n\nFrom a@b Thu Nov 26 10:00:00 2026\nend\n';
const DOVECOT_TWO = 'Subject: y\nX-UID: 2\nStatus: \nX-Status: AF\n'
  + `X-Keywords: $Junk${' '.repeat(72)}\nContent-Length: 10\n\nFrom crlf\n`;
const DOVECOT_FILE = `From nobody@vm  Sun Dec 06 00:07:11 2026\n${DOVECOT_ONE}\nFrom nobody@vm  Sun Dec 06 00:07:11 2026\n${DOVECOT_TWO}\n`;

describe('mbox with Content-Length headers (mboxcl2)', () => {
  it('reads a file Dovecot wrote as its messages, byte for byte, for every chunk size', async () => {
    const path = fileWith(DOVECOT_FILE);
    for (const chunkBytes of [7, 64, 1 << 20]) {
      const { messages, warnings } = await readAll(path, { chunkBytes });
      expect(text(messages), `chunkBytes ${chunkBytes}`).toEqual([DOVECOT_ONE, DOVECOT_TWO]);
      // index counts From_ lines: the two inside the first message's length too
      expect(messages.map((m) => [m.index, m.offset, m.flags])).toEqual([[0, 0, ['\\Seen']], [3, 41 + DOVECOT_ONE.length + 1, ['$Junk', '\\Answered', '\\Flagged']]]);
      expect(warnings).toEqual([]);
    }
  });

  it('takes the length in every style, and in a CRLF file, and at the end of a file with or without a separator', async () => {
    const from = 'From a Thu Nov 26 10:00:00 2026';
    const crlf = 'Content-Length: 17\r\n\r\nFrom x\r\n>From y\r\n';
    for (const style of ['auto', 'mboxrd', 'mboxo'] as const) {
      expect(text((await readAll(fileWith(`${from}\r\n${crlf}\r\n${from}\r\n${crlf}`), { style })).messages)).toEqual([crlf, crlf]);
    }
    const body = 'Content-Length: 7\n\nFrom x\n';
    expect(text((await readAll(fileWith(`${from}\n${body}`))).messages)).toEqual([body]);
    expect(text((await readAll(fileWith(`${from}\n${body}\n`))).messages)).toEqual([body]);
    const noNewline = 'Content-Length: 6\n\nFrom x';
    expect(text((await readAll(fileWith(`${from}\n${noNewline}\n${from}\n${noNewline}`))).messages)).toEqual([noNewline, noNewline]);
  });

  it('a length that does not end at a From_ line (or the end) is ignored: the file reads as without it', async () => {
    const from = 'From a Thu Nov 26 10:00:00 2026';
    // the body is 29 bytes, with a line `From split` after 17: only 17 and 29 end at a From_ line
    for (const length of [0, 5, 16, 18, 28, 30, 1000, 99999999999]) {
      const message = `Content-Length: ${length}\n\nbody\n>From quoted\nFrom split\n`;
      const { messages } = await readAll(fileWith(`${from}\n${message}\n${from}\nlast\n`));
      expect(text(messages), `Content-Length ${length}`).toEqual([`Content-Length: ${length}\n\nbody\nFrom quoted`, '', 'last']);
    }
  });

  it('an mboxrd file we wrote of a message keeping a stale Content-Length reads back as written', async () => {
    // quoting made the body one byte longer than its length says: the length is not trusted
    const from = 'From MAILER-DAEMON Thu Nov 26 10:00:00 2026';
    const { messages } = await readAll(fileWith(`${from}\nContent-Length: 7\n\n>From x\n\n${from}\nnext\n`));
    expect(text(messages)).toEqual(['Content-Length: 7\n\nFrom x\n', 'next']);
  });

  it('a message over messageBytesMax by its length is skipped with a warning, the next one read', async () => {
    const from = 'From a Thu Nov 26 10:00:00 2026';
    const big = `Content-Length: 40\n\n${'From line\n'.repeat(4)}`;
    const { messages, warnings } = await readAll(fileWith(`${from}\n${big}\n${from}\nnext\n`), { messageBytesMax: 50 });
    expect(text(messages)).toEqual(['next']);
    expect(warnings).toEqual([{ kind: 'tooLarge', index: 0, offset: 0, bytes: big.length }]);
  });

  it('a piece of such a body that is over messageBytesMax itself is no second message skipped: one warning, for the message', async () => {
    const from = 'From a Thu Nov 26 10:00:00 2026';
    const body = `short\nFrom inside the body\n${'x'.repeat(300)}\n`;
    const big = `Content-Length: ${body.length}\n\n${body}`;
    for (const chunkBytes of [64, 1 << 20]) {
      const { messages, warnings } = await readAll(fileWith(`${from}\n${big}\n${from}\nnext\n`), { messageBytesMax: 200, chunkBytes });
      expect(text(messages)).toEqual(['next']);
      expect(warnings, String(chunkBytes)).toEqual([{ kind: 'tooLarge', index: 0, offset: 0, bytes: big.length }]);
    }
  });
});

describe('mboxcl2 files of seeded random messages', () => {
  // a small LCG: the same files on every run
  const lcg = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const LINES = ['From x', 'From a Thu Nov 26 10:00:00 2026', '>From y', '>>From z', '', 'text', 'Content-Length: 3', '\r', 'From'];

  it('read back each message as written, for every chunk size and style', async () => {
    for (let seed = 1; seed <= 40; seed += 1) {
      const random = lcg(seed);
      const crlf = random() < 0.3;
      const eol = crlf ? '\r\n' : '\n';
      const messages: string[] = [];
      let file = '';
      for (let m = 0; m < 1 + Math.floor(random() * 5); m += 1) {
        let body = '';
        for (let l = Math.floor(random() * 8); l > 0; l -= 1) body += LINES[Math.floor(random() * LINES.length)] + eol;
        if (random() < 0.2) body = body.slice(0, -eol.length); // no final newline
        const message = `Subject: ${m}${eol}Content-Length: ${Buffer.byteLength(body, 'latin1')}${eol}${eol}${body}`;
        messages.push(message);
        file += `From MAILER-DAEMON Thu Nov 26 10:00:0${m} 2026${eol}${message}${eol}`;
      }
      const path = fileWith(file);
      for (const style of ['auto', 'mboxo'] as const) {
        for (const chunkBytes of [3, 17, 256, 1 << 16]) {
          const { messages: read, warnings } = await readAll(path, { style, chunkBytes });
          expect(text(read), `seed ${seed} ${style} chunk ${chunkBytes}`).toEqual(messages);
          expect(warnings).toEqual([]);
        }
      }
    }
  });
});
