import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import {
  type MboxMessage, type MboxWarning, type ReadMboxOptions, MboxWriter, flagsFromStatusHeaders, formatAsctime,
  dateFromHeader, parseFromLineDate, quoteFromLines, readMbox, senderFromReturnPath, zoneFromDateHeader,
} from '../../src/formats/mbox.js';
import { isMailstoreError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-mbox-'));

async function readAll(path: string, options: ReadMboxOptions = {}): Promise<{ messages: MboxMessage[]; warnings: MboxWarning[] }> {
  const warnings: MboxWarning[] = [];
  const messages: MboxMessage[] = [];
  for await (const message of readMbox(fs, path, { ...options, onWarning: (w) => warnings.push(w) })) messages.push(message);
  return { messages, warnings };
}

async function writeMbox(messages: (string | Buffer)[], options: { style?: 'mboxrd' | 'mboxo'; statusHeaders?: boolean; flags?: string[][] } = {}): Promise<string> {
  const path = join(tmp(), 'out.mbox');
  const writer = await MboxWriter.create(fs, path, options);
  for (const [i, message] of messages.entries()) {
    await writer.append(Buffer.from(message), { internalDate: new Date(Date.UTC(2026, 10, 28, 10, 45, i)), flags: options.flags?.[i] ?? [] });
  }
  await writer.close();
  return path;
}

function fileWith(content: string | Buffer): string {
  const path = join(tmp(), 'in.mbox');
  writeFileSync(path, content);
  return path;
}

const text = (messages: MboxMessage[]) => messages.map((m) => m.bytes.toString('latin1'));

const TRICKY = [
  'Subject: one\n\nFrom the start of a line\n>From quoted once\n>>From quoted twice\nnot From here\n',
  'Subject: two\n\nno final newline',
  'Subject: three\r\n\r\nCRLF body\r\nFrom in CRLF\r\n',
  '',
  '\n',
  'From at the very start\n',
  'Subject: ends in blank line\n\n\n',
  'Subject: >From\n\n>>>>From deep\n',
];

describe('mbox writer -> reader', () => {
  it('round-trips tricky messages byte for byte (mboxrd)', async () => {
    const path = await writeMbox(TRICKY);
    const { messages, warnings } = await readAll(path);
    expect(text(messages)).toEqual(TRICKY);
    expect(warnings).toEqual([]);
    expect(messages.map((m) => m.index)).toEqual(TRICKY.map((_, i) => i));
    expect(messages[1]!.internalDate).toEqual(new Date(Date.UTC(2026, 10, 28, 10, 45, 1)));
  });

  it('quotes From lines the mboxrd way in the file', async () => {
    const path = await writeMbox([TRICKY[0]!]);
    const file = readFileSync(path, 'latin1');
    expect(file).toBe('From MAILER-DAEMON Sat Nov 28 10:45:00 2026\nSubject: one\n\n>From the start of a line\n' +
      '>>From quoted once\n>>>From quoted twice\nnot From here\n\n');
  });

  it('offsets point at each From_ line', async () => {
    const path = await writeMbox(['a\n', 'b', 'c\n']);
    const file = readFileSync(path);
    const { messages } = await readAll(path);
    for (const message of messages) expect(file.subarray(message.offset, message.offset + 5).toString()).toBe('From ');
  });

  it('mboxo quotes only ^From and unquotes only ^>From', async () => {
    const original = 'S: x\n\nFrom a\n>>From b\n';
    const path = await writeMbox([original], { style: 'mboxo' });
    expect(readFileSync(path, 'latin1')).toContain('\n>From a\n>>From b\n');
    expect(text((await readAll(path, { style: 'mboxo' })).messages)).toEqual([original]);
    // Read as mboxrd, the unquoted `>>From` loses a `>`: why mboxo output is not reversible in general.
    expect(text((await readAll(path, { style: 'mboxrd' })).messages)).toEqual(['S: x\n\nFrom a\n>From b\n']);
  });

  it('mboxo cannot keep a body line ">From " (it comes back as "From ")', async () => {
    const path = await writeMbox(['\n>From x\n'], { style: 'mboxo' });
    expect(text((await readAll(path, { style: 'mboxo' })).messages)).toEqual(['\nFrom x\n']);
  });

  it('auto reads as mboxrd', async () => {
    const path = fileWith('From a Thu Nov 28 10:45:25 2026\n>From x\n>>From y\n');
    expect(text((await readAll(path, { style: 'auto' })).messages)).toEqual(['From x\n>From y']);
    expect(text((await readAll(path)).messages)).toEqual(['From x\n>From y']);
  });

  it('a big message spanning many chunks comes back whole', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
    for (let i = 100; i < big.length; i += 1000) big[i] = 0x0a;
    big.write('\nFrom inside\n', 500_000, 'latin1');
    const path = await writeMbox(['small\n', big, 'after']);
    const { messages } = await readAll(path);
    expect(messages.length).toBe(3);
    expect(messages[1]!.bytes.equals(big)).toBe(true);
    expect(text([messages[0]!, messages[2]!])).toEqual(['small\n', 'after']);
  });

  it('gives the same result for every chunk size, so From_ and >From lines may straddle any boundary', async () => {
    const path = await writeMbox(TRICKY);
    const file = readFileSync(path);
    for (let chunkBytes = 1; chunkBytes <= 70; chunkBytes += 1) {
      const { messages } = await readAll(path, { chunkBytes });
      expect(text(messages), `chunkBytes ${chunkBytes}`).toEqual(TRICKY);
    }
    expect(file.length).toBeGreaterThan(70);
  });

  it('reads a message that straddles a chunk end again from its From_ line, so each one that fits a chunk is a view of one', async () => {
    // 4 KiB chunks are buffers of their own (smaller ones, and Buffer.concat's copies, come from Node's shared 8 KiB pool)
    const chunkBytes = 4096;
    const messages = Array.from({ length: 40 }, (_, i) => `Subject: ${i}\n\n${'x'.repeat(300 + ((i * 997) % 2500))}\n`);
    messages.push(`Subject: big\n\n${'y'.repeat(3 * chunkBytes)}\n`, 'Subject: after\n\n>From quoted\n');
    const { messages: read } = await readAll(await writeMbox(messages), { chunkBytes });
    expect(text(read)).toEqual(messages);
    expect(read.slice(0, 40).map((m) => m.bytes.buffer.byteLength)).toEqual(Array(40).fill(chunkBytes));
    expect(read.map((m) => m.index)).toEqual(messages.map((_, i) => i));
  });

  it('writes Status/X-Status only when asked, and reads flags back from them', async () => {
    const flags = [['\\Seen', '\\Answered', '\\Flagged'], [], ['\\Deleted', '\\Draft']];
    const messages = ['Subject: a\n\nbody\n', 'Subject: b\r\nStatus: RO\r\n\r\nbody', 'no blank line'];
    const plain = await readAll(await writeMbox(messages, { flags }));
    expect(text(plain.messages)).toEqual(messages);
    expect(plain.messages.map((m) => m.flags)).toEqual([[], ['\\Seen'], []]);

    const withStatus = await readAll(await writeMbox(messages, { flags, statusHeaders: true }));
    expect(withStatus.messages.map((m) => m.flags)).toEqual([['\\Answered', '\\Flagged', '\\Seen'], [], ['\\Deleted', '\\Draft']]);
    expect(text(withStatus.messages)).toEqual([
      'Subject: a\nStatus: RO\nX-Status: AF\n\nbody\n',
      'Subject: b\r\nStatus: O\r\n\r\nbody',
      'no blank line\nStatus: O\nX-Status: TD\n',
    ]);
  });

  it('refuses to overwrite an existing file and a sender with spaces', async () => {
    const path = fileWith('x');
    await expect(MboxWriter.create(fs, path)).rejects.toMatchObject({ code: 'EXISTS' });
    const writer = await MboxWriter.create(fs, join(tmp(), 'new.mbox'));
    await expect(writer.append(Buffer.from('x'), { sender: 'two words' })).rejects.toMatchObject({ code: 'INVALID' });
    await writer.close();
    await expect(writer.append(Buffer.from('x'))).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('refuses a sender longer than an envelope sender (its From_ line would read back as content); Return-Path gives none', async () => {
    const writer = await MboxWriter.create(fs, join(tmp(), 'new.mbox'));
    const longest = `${'a'.repeat(limits.envelopeFromBytesMax - 2)}@x`;
    await writer.append(Buffer.from('x'), { sender: longest });
    await expect(writer.append(Buffer.from('y'), { sender: `a${longest}` })).rejects.toMatchObject({ code: 'INVALID' });
    await writer.close();
    expect((await readAll(writer.path)).messages.map((m) => m.sender)).toEqual([longest]);
    expect(senderFromReturnPath(Buffer.from(`Return-Path: <${longest}>\n\n`))).toBe(longest);
    expect(senderFromReturnPath(Buffer.from(`Return-Path: <a${longest}>\n\n`))).toBe('MAILER-DAEMON');
  });
});

describe('mbox reader on foreign files', () => {
  it('reads an empty file as no messages', async () => {
    expect(await readAll(fileWith(''))).toEqual({ messages: [], warnings: [] });
  });

  it('reports leading garbage and does not make a message of it', async () => {
    const { messages, warnings } = await readAll(fileWith('garbage\n\nFrom a Thu Nov 28 10:45:25 2026\nm\n\n'));
    expect(text(messages)).toEqual(['m\n']);
    expect(warnings).toEqual([{ kind: 'leadingGarbage', bytes: 9 }]);
  });

  it('a UTF-8 byte-order mark before the first From_ line is reported, and the first message read, for every chunk size', async () => {
    // the mark hid the first From_ line: the first message was counted as garbage and never imported
    const path = fileWith(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('From a Thu Nov 28 10:45:25 2026\nm1\n\nFrom b Thu Nov 28 10:45:26 2026\nm2\n')]));
    for (const chunkBytes of [1, 2, 5, 1 << 20]) {
      const { messages, warnings } = await readAll(path, { chunkBytes });
      expect(text(messages), `chunk ${chunkBytes}`).toEqual(['m1\n', 'm2']);
      expect(messages.map((m) => m.offset)).toEqual([3, 39]);
      expect(warnings).toEqual([{ kind: 'leadingGarbage', bytes: 3 }]);
    }
  });

  it('reports a file without any From_ line as garbage', async () => {
    const { messages, warnings } = await readAll(fileWith('Subject: not an mbox\n\nhello\n'));
    expect(messages).toEqual([]);
    expect(warnings).toEqual([{ kind: 'leadingGarbage', bytes: 28 }]);
  });

  it('strips one CRLF per message in a CRLF file', async () => {
    const file = 'From a Thu Nov 28 10:45:25 2026\r\nSubject: 1\r\n\r\nbody\r\n\r\nFrom b Thu Nov 28 10:45:26 2026\r\nSubject: 2\r\n\r\nlast\r\n';
    const { messages } = await readAll(fileWith(file));
    expect(text(messages)).toEqual(['Subject: 1\r\n\r\nbody\r\n', 'Subject: 2\r\n\r\nlast']);
    expect(messages[1]!.internalDate).toEqual(new Date(Date.UTC(2026, 10, 28, 10, 45, 26)));
  });

  it('keeps a final message without any trailing newline whole', async () => {
    const { messages } = await readAll(fileWith('From a Thu Nov 28 10:45:25 2026\nbody'));
    expect(text(messages)).toEqual(['body']);
  });

  it('treats a From_ line at end of file without newline as an empty message', async () => {
    const { messages } = await readAll(fileWith('From a Thu Nov 28 10:45:25 2026\nbody\n\nFrom b Thu Nov 28 10:45:25 2026'));
    expect(text(messages)).toEqual(['body\n', '']);
  });

  it('a line starting "From " longer than mboxFromLineBytesMax is content, not a From_ line, for every chunk size', async () => {
    const limit = limits.mboxFromLineBytesMax;
    const longest = `From ${'x'.repeat(limit - 5)}`; // a From_ line of exactly the limit
    const tooLong = `From ${'y'.repeat(limit - 4)}`;
    const file = `${tooLong}\nFrom a Thu Nov 28 10:45:25 2026\nSubject: a\n\n${tooLong}\r\nrest\n\n${longest}\nSubject: b\n\n`;
    for (const chunkBytes of [1, 3, 64, 1000, limit - 1, limit, limit + 1, limit + 7, 3 * limit, 65536]) {
      const { messages, warnings } = await readAll(fileWith(file), { chunkBytes });
      expect(text(messages), `chunkBytes ${chunkBytes}`).toEqual([`Subject: a\n\n${tooLong}\r\nrest\n`, 'Subject: b\n']);
      expect(warnings, `chunkBytes ${chunkBytes}`).toEqual([{ kind: 'leadingGarbage', bytes: tooLong.length + 1 }]);
    }
  });

  it('a damaged file of one endless line starting "From " is garbage, read through without holding it whole', async () => {
    const endless = Buffer.alloc(8 * 1024 * 1024 + 5, 0);
    endless.write('From ', 'latin1');
    const { messages, warnings } = await readAll(fileWith(endless), { chunkBytes: 256 * 1024 });
    expect(messages).toEqual([]);
    expect(warnings).toEqual([{ kind: 'leadingGarbage', bytes: endless.length }]);
  });

  it('a long run of ">" before "From " loses one ">" only, and one before anything else none, for every chunk size', async () => {
    const quoted = `Subject: q\n\n${'>'.repeat(5000)}From deep\n${'>'.repeat(3000)}\n${'>'.repeat(4000)}`;
    const file = `From a Thu Nov 28 10:45:25 2026\n${quoted}\n`;
    const expected = quoted.replace(`${'>'.repeat(5000)}From`, `${'>'.repeat(4999)}From`);
    for (const chunkBytes of [1, 2, 5, 64, 4999, 5000, 5001, 65536]) {
      expect(text((await readAll(fileWith(file), { chunkBytes })).messages), `chunkBytes ${chunkBytes}`).toEqual([expected]);
    }
    expect(text((await readAll(await writeMbox([expected]))).messages)).toEqual([expected]);
  });

  it('reads flags from Status/X-Status without changing the bytes', async () => {
    const message = 'Subject: x\nStatus: RO\nX-Status: ADFT\n\nStatus: R is body, not header\n';
    const { messages } = await readAll(fileWith(`From a Thu Nov 28 10:45:25 2026\n${message}\n`));
    expect(text(messages)).toEqual([message]);
    expect(messages[0]!.flags).toEqual(['\\Answered', '\\Deleted', '\\Draft', '\\Flagged', '\\Seen']);
    expect(flagsFromStatusHeaders(Buffer.from('Subject: x\nStatus: O\n\n'))).toEqual([]);
    expect(flagsFromStatusHeaders(Buffer.from('\nStatus: R\n'))).toEqual([]);
  });

  it('reads keywords from X-Keywords, as Dovecot keeps them in an mbox, and --status-headers writes them there', async () => {
    // Dovecot 2.3 wrote `X-Keywords: $Junk` (padded with spaces) for a message with the keyword; the import dropped it
    const message = `Subject: y\nStatus: RO\nX-Keywords: $Junk NonJunk${' '.repeat(60)}\n\nX-Keywords: body\n`;
    const { messages } = await readAll(fileWith(`From a Thu Nov 28 10:45:25 2026\n${message}\n`));
    expect(text(messages)).toEqual([message]);
    expect(messages[0]!.flags).toEqual(['$Junk', 'NonJunk', '\\Seen']);
    expect(flagsFromStatusHeaders(Buffer.from('X-Keywords:\n\n'))).toEqual([]);

    const flags = [['\\Seen', '$Forwarded', 'work'], ['\\Flagged']];
    const written = await readAll(await writeMbox(['Subject: a\nX-Keywords: stale\n\nbody\n', 'Subject: b\n\n'], { flags, statusHeaders: true }));
    expect(text(written.messages)).toEqual(['Subject: a\nStatus: RO\nX-Keywords: $Forwarded work\n\nbody\n', 'Subject: b\nStatus: O\nX-Status: F\n\n']);
    expect(written.messages.map((m) => m.flags)).toEqual([['$Forwarded', '\\Seen', 'work'], ['\\Flagged']]);
  });

  it('reads Thunderbird\'s X-Mozilla-Status bits and X-Mozilla-Keys (its mbox has no Status header)', async () => {
    // read 0x1, replied 0x2, marked 0x4, expunged 0x8 (deleted, not yet compacted away), forwarded 0x1000
    const cases: [string, string[]][] = [
      ['0001', ['\\Seen']], ['0003', ['\\Answered', '\\Seen']], ['0004', ['\\Flagged']], ['0009', ['\\Deleted', '\\Seen']],
      ['1001', ['$Forwarded', '\\Seen']], ['0000', []], ['zz', []],
    ];
    for (const [status, flags] of cases) {
      const message = `X-Mozilla-Status: ${status}\r\nX-Mozilla-Status2: 00000000\r\nX-Mozilla-Keys: ${' '.repeat(80)}\r\nSubject: t\r\n\r\nbody\r\n`;
      const { messages } = await readAll(fileWith(`From - Sat Nov 28 10:45:25 2026\r\n${message}\r\n`));
      expect(text(messages), status).toEqual([message]);
      expect(messages[0]!.flags, status).toEqual(flags);
    }
    expect(flagsFromStatusHeaders(Buffer.from('X-Mozilla-Status: 0001\nX-Mozilla-Keys: $label1 junk\n\n'))).toEqual(['$label1', '\\Seen', 'junk']);
  });

  it('skips a message over messageBytesMax with a warning and goes on', async () => {
    const file = `From a Thu Nov 28 10:45:25 2026\n${'x'.repeat(100)}\n\nFrom b Thu Nov 28 10:45:25 2026\nsmall\n`;
    const { messages, warnings } = await readAll(fileWith(file), { messageBytesMax: 50, chunkBytes: 16 });
    expect(text(messages)).toEqual(['small']);
    expect(messages[0]!.index).toBe(1);
    expect(warnings).toEqual([{ kind: 'tooLarge', index: 0, offset: 0, bytes: 102 }]);
  });

  it('fails with INVALID on a directory and NOT_FOUND on a missing file', async () => {
    const dir = tmp();
    await expect(readAll(dir)).rejects.toMatchObject({ code: 'INVALID' });
    await expect(readAll(join(dir, 'missing'))).rejects.toSatisfy((e: unknown) => isMailstoreError(e, 'NOT_FOUND'));
  });
});

describe('From_ line dates', () => {
  const utc = (...parts: [number, number, number, number, number, number]) => new Date(Date.UTC(...parts));

  it.each([
    ['From sender Thu Nov 28 10:45:25 2026', utc(2026, 10, 28, 10, 45, 25)],
    ['From sender Thu Nov  8 10:45:25 2026', utc(2026, 10, 8, 10, 45, 25)],
    ['From sender@example.com Thu Nov 28 10:45:25 2026 +0100', utc(2026, 10, 28, 9, 45, 25)],
    ['From sender Thu Nov 28 10:45:25 -0500 2026', utc(2026, 10, 28, 15, 45, 25)],
    // RFC 5322's zone names (obs-zone) are what they say: PST was taken for UTC, 8 hours off
    ['From sender Thu Nov 28 10:45:25 PST 2026', utc(2026, 10, 28, 18, 45, 25)],
    ['From sender Thu Nov 28 10:45:25 2026 EDT', utc(2026, 10, 28, 14, 45, 25)],
    ['From sender Thu, 28 Nov 2026 10:45:25 cst', utc(2026, 10, 28, 16, 45, 25)],
    ['From sender Thu Nov 28 10:45:25 UT 2026', utc(2026, 10, 28, 10, 45, 25)],
    // other names are ambiguous (IST: India, Israel, Ireland): guessed as UTC
    ['From sender Thu Nov 28 10:45:25 CET 2026', utc(2026, 10, 28, 10, 45, 25)],
    ['From sender Thu Nov 28 10:45 2026', utc(2026, 10, 28, 10, 45, 0)],
    ['From sender Thu Nov 28 10:45:25 2026 remote from relay', utc(2026, 10, 28, 10, 45, 25)],
    ['From sender Thu, 28 Nov 2026 10:45:25 +0000', utc(2026, 10, 28, 10, 45, 25)],
    ['From "quoted sender"@x Tuesday November 3 01:02:03 2026', utc(2026, 10, 3, 1, 2, 3)],
  ])('%s', (line, expected) => {
    expect(parseFromLineDate(line)).toEqual(expected);
  });

  it.each(['From sender', 'From sender yesterday', 'From sender Thu Feb 31 10:45:25 2026', 'From sender Thu Nov 28 25:45:25 2026'])(
    'unparseable: %s', (line) => {
      expect(parseFromLineDate(line)).toBeUndefined();
    });

  it('formats asctime in UTC', () => {
    expect(formatAsctime(utc(2026, 10, 8, 1, 2, 3))).toBe('Sun Nov  8 01:02:03 2026');
    expect(parseFromLineDate(`From x ${formatAsctime(utc(1999, 0, 31, 23, 59, 59))}`)).toEqual(utc(1999, 0, 31, 23, 59, 59));
  });
});

describe('quoteFromLines', () => {
  it('adds one > to exactly the lines that need it', () => {
    const quote = (s: string, style: 'mboxrd' | 'mboxo') => Buffer.concat(quoteFromLines(Buffer.from(s), style)).toString();
    expect(quote('From a\nx From b\n>From c\n>>From d\n>x From e', 'mboxrd')).toBe('>From a\nx From b\n>>From c\n>>>From d\n>x From e');
    expect(quote('From a\nx From b\n>From c\n>>From d', 'mboxo')).toBe('>From a\nx From b\n>From c\n>>From d');
    expect(quote('', 'mboxrd')).toBe('');
  });
});

describe('From_ line zone and sender (issue 18 item 10)', () => {
  const dated = (date: string, extra = '') => Buffer.from(`${extra}Date: ${date}\nSubject: z\n\nbody\nDate: not this one\n`);

  it('formatAsctime writes the time in the given zone followed by its offset, which parseFromLineDate reads back', () => {
    const instant = new Date(Date.UTC(2026, 10, 28, 9, 45, 25));
    expect(formatAsctime(instant)).toBe('Sat Nov 28 09:45:25 2026');
    expect(formatAsctime(instant, 60)).toBe('Sat Nov 28 10:45:25 2026 +0100');
    expect(formatAsctime(instant, -330)).toBe('Sat Nov 28 04:15:25 2026 -0530');
    expect(formatAsctime(instant, -600)).toBe('Fri Nov 27 23:45:25 2026 -1000');
    for (const zone of [60, -330, -600, 0]) expect(parseFromLineDate(`From x ${formatAsctime(instant, zone)}`)?.getTime()).toBe(instant.getTime());
  });

  it('a Date header with an obsolete two- or three-digit year (RFC 5322 section 4.3: mail of the 1990s) is read, not dropped for the time of the import', () => {
    const at = (date: string) => dateFromHeader(dated(date))?.toISOString();
    expect(at('Mon, 3 Jan 94 12:00:00 EST')).toBe('1994-01-03T17:00:00.000Z');
    expect(at('1 Jan 70 00:00:00 GMT')).toBe('1970-01-01T00:00:00.000Z');
    expect(at('Sat, 1 Jan 05 10:00 +0100')).toBe('2005-01-01T09:00:00.000Z'); // 00-49: 20xx
    expect(at('Wed, 31 Dec 49 23:59:59 +0000')).toBe('2049-12-31T23:59:59.000Z');
    expect(at('Mon, 1 Jan 101 00:00:00 +0000')).toBe('2001-01-01T00:00:00.000Z'); // three digits: + 1900
    expect(at('Thu, 28 Nov 2026 10:45:25 +0000')).toBe('2026-11-28T10:45:25.000Z');
    // still no date: a one- or five-digit year, a day that does not exist
    for (const bad of ['1 Jan 7 00:00:00 GMT', 'Sat, 01 Jan 10000 00:00:00 +0000', '30 Feb 96 10:00:00 +0000']) expect(at(bad), bad).toBeUndefined();
  });

  it('zoneFromDateHeader gives the Date header\'s zone only when it names the internal date\'s very second', () => {
    const instant = new Date(Date.UTC(2026, 10, 28, 9, 45, 25, 700));
    expect(zoneFromDateHeader(dated('Sat, 28 Nov 2026 10:45:25 +0100'), instant)).toBe(60);
    expect(zoneFromDateHeader(dated('28 Nov 2026 04:15:25 -0530 (IST)'), instant)).toBe(-330);
    expect(zoneFromDateHeader(dated('Sat, 28 Nov 2026\n 10:45:25 +0100', 'X-A: 1\n'), instant)).toBe(60); // folded
    expect(zoneFromDateHeader(dated('Sat, 28 Nov 2026 10:45:26 +0100'), instant)).toBeUndefined(); // another second
    expect(zoneFromDateHeader(dated('Sat, 28 Nov 2026 09:45:25 GMT'), instant)).toBeUndefined(); // no numeric zone
    expect(zoneFromDateHeader(dated('Sat, 28 Nov 2026 10:45:25 +9999'), instant)).toBeUndefined();
    expect(zoneFromDateHeader(Buffer.from('Subject: none\n\nDate: Sat, 28 Nov 2026 10:45:25 +0100\n'), instant)).toBeUndefined(); // body is no header
  });

  it('readMbox gives the Date header\'s zone (headerZoneMinutes) only where the From_ line names no zone of its own', async () => {
    const file = [
      'From a@x Sat Nov 28 09:45:25 2026\nDate: Sat, 28 Nov 2026 10:45:25 +0100\nStatus: RO\n\none\n', // UTC From_ line, +0100 header
      'From b@x Sat Nov 28 10:45:25 2026 +0100\nDate: Sat, 28 Nov 2026 04:15:25 -0530\n\ntwo\n', // the From_ line's own zone wins
      'From c@x Sat Nov 28 09:45:25 2026\nDate: Sat, 28 Nov 2026 10:45:26 +0100\n\nthree\n', // another second
      'From d@x no date here\nDate: Sat, 28 Nov 2026 10:45:25 +0100\n\nfour\n', // dated by its Date header, so in its zone
    ].join('\n');
    const { messages } = await readAll(fileWith(file));
    expect(messages.map((m) => [m.sender, m.zoneMinutes, m.headerZoneMinutes, m.flags])).toEqual([
      ['a@x', undefined, 60, ['\\Seen']], ['b@x', 60, undefined, []], ['c@x', undefined, undefined, []], ['d@x', undefined, 60, []],
    ]);
  });

  it('senderFromReturnPath: the Return-Path address, MAILER-DAEMON for <>, none or a non-token', () => {
    expect(senderFromReturnPath(Buffer.from('Return-Path: <bob@example.org>\nSubject: x\n\n'))).toBe('bob@example.org');
    expect(senderFromReturnPath(Buffer.from('return-path:bob@example.org\r\n\r\n'))).toBe('bob@example.org');
    expect(senderFromReturnPath(Buffer.from('Return-Path: <>\n\n'))).toBe('MAILER-DAEMON');
    expect(senderFromReturnPath(Buffer.from('Subject: x\n\nReturn-Path: <body@example.org>\n'))).toBe('MAILER-DAEMON');
    expect(senderFromReturnPath(Buffer.from('Return-Path: <a b@example.org>\n\n'))).toBe('MAILER-DAEMON');
  });

  it('the writer puts the zone into the From_ line and refuses one that is no zone', async () => {
    const path = join(tmp(), 'z.mbox');
    const writer = await MboxWriter.create(fs, path);
    await writer.append(Buffer.from('Subject: z\n\nx\n'), { internalDate: new Date(Date.UTC(2026, 10, 28, 9, 45, 25)), zoneOffsetMinutes: 60, sender: 'bob@example.org' });
    await expect(writer.append(Buffer.from('y'), { zoneOffsetMinutes: 24 * 60 })).rejects.toMatchObject({ code: 'INVALID' });
    await writer.close();
    expect(readFileSync(path, 'latin1')).toBe('From bob@example.org Sat Nov 28 10:45:25 2026 +0100\nSubject: z\n\nx\n\n');
  });
});
