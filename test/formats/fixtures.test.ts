// The bundled fixtures are what fixtures/README.md says they are, and survive the formats unchanged.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { type MboxMessage, MboxWriter, readMbox } from '../../src/formats/mbox.js';
import { type MaildirMessage, listMaildirFolders, readMaildir } from '../../src/formats/maildir.js';
import { detectFormat } from '../../src/formats/detect.js';

const fixtures = fileURLToPath(new URL('../../fixtures', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-fixtures-'));

async function readSampleMbox(path: string): Promise<MboxMessage[]> {
  const out: MboxMessage[] = [];
  for await (const message of readMbox(fs, path, { onWarning: (w) => { throw new Error(JSON.stringify(w)); } })) out.push(message);
  return out;
}

const crlf = (bytes: Buffer) => bytes.includes('\r\n');
const noFinalNewline = (bytes: Buffer) => bytes[bytes.length - 1] !== 0x0a;
const fromInBody = (bytes: Buffer) => {
  const text = bytes.toString('latin1');
  return /^>*From /m.test(text.slice(text.search(/\r?\n\r?\n/)));
};

describe('fixtures/sample.mbox', () => {
  const path = join(fixtures, 'sample.mbox');

  it('holds the 100 messages its README describes', async () => {
    expect(await detectFormat(fs, path)).toBe('mbox');
    const messages = await readSampleMbox(path);
    expect(messages.length).toBe(100);
    expect(messages.filter((m) => crlf(m.bytes)).length).toBe(4);
    expect(messages.filter((m) => noFinalNewline(m.bytes)).length).toBe(3);
    expect(messages.filter((m) => fromInBody(m.bytes)).length).toBe(15);
    expect(messages.every((m) => m.internalDate instanceof Date)).toBe(true);
    expect(messages.some((m) => m.flags.includes('\\Seen'))).toBe(true);
    expect(messages.some((m) => !m.flags.includes('\\Seen'))).toBe(true);
  });

  it('reads and writes back to the identical file', async () => {
    const messages = await readSampleMbox(path);
    const out = join(tmp(), 'again.mbox');
    const writer = await MboxWriter.create(fs, out);
    for (const message of messages) await writer.append(message.bytes, { internalDate: message.internalDate, flags: message.flags });
    await writer.close();
    expect(readFileSync(out).equals(readFileSync(path))).toBe(true);
  });
});

describe('fixtures/sample', () => {
  const root = join(fixtures, 'sample');

  it('is a Maildir++ tree with an INBOX, Sent and Lists/kernel holding 200 messages', async () => {
    expect(await detectFormat(fs, root)).toBe('maildir');
    const folders = await listMaildirFolders(fs, root);
    expect(folders.map((f) => f.folder)).toEqual(['', 'Lists/kernel', 'Sent']);
    const all: MaildirMessage[] = [];
    const counts: number[] = [];
    for (const { path } of folders) {
      let count = 0;
      for await (const message of readMaildir(fs, path)) {
        all.push(message);
        count += 1;
      }
      counts.push(count);
    }
    expect(all.length).toBe(200);
    expect(counts).toEqual([122, 33, 45]);
    expect(all.filter((m) => crlf(m.bytes)).length).toBe(16);
    expect(all.filter((m) => noFinalNewline(m.bytes)).length).toBe(5);
    const distinct = new Set(all.map((m) => m.bytes.toString('base64')));
    expect(all.length - distinct.size).toBe(12);
    expect(all.some((m) => m.flags.includes('\\Answered'))).toBe(true);
    const total = all.reduce((sum, m) => sum + m.bytes.length, 0);
    expect(total).toBeGreaterThan(2_000_000);
    expect(total).toBeLessThan(3_000_000);
  });
});
