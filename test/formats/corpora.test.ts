// Real mail from /work/shared/corpora must survive every format byte for byte.
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { MboxWriter, readMbox } from '../../src/formats/mbox.js';
import { MaildirWriter, readMaildir } from '../../src/formats/maildir.js';
import { readEmlDir } from '../../src/formats/eml.js';

const corporaPath = fileURLToPath(new URL('../../../shared/corpora', import.meta.url));
const present = existsSync(corporaPath);
if (!present) console.warn(`test/formats/corpora: ${corporaPath} is absent; skipping the real-mail round trips`);

function corpusFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...corpusFiles(path));
    else if (stat.isFile() && name !== 'README.md') out.push(path);
  }
  return out;
}

describe.skipIf(!present)('real mail corpora', () => {
  const files = present ? corpusFiles(corporaPath) : [];
  const messages = files.map((path) => readFileSync(path));
  const tmp = () => mkdtempSync(join(tmpdir(), 'mailstore-corpora-'));

  async function mboxRoundTrip(style: 'mboxrd' | 'mboxo', input: Buffer[], chunkBytes?: number): Promise<Buffer[]> {
    const path = join(tmp(), `corpora.${style}`);
    const writer = await MboxWriter.create(fs, path, { style });
    for (const bytes of input) await writer.append(bytes, { internalDate: new Date(0) });
    await writer.close();
    const out: Buffer[] = [];
    for await (const message of readMbox(fs, path, { style, chunkBytes, onWarning: (w) => { throw new Error(JSON.stringify(w)); } })) {
      out.push(message.bytes);
    }
    return out;
  }

  function expectSame(actual: Buffer[], expected: Buffer[], names: string[]): void {
    expect(actual.length).toBe(expected.length);
    const different = expected.flatMap((bytes, i) => (actual[i]!.equals(bytes) ? [] : [names[i]]));
    expect(different).toEqual([]);
  }

  it(`has messages (${files.length})`, () => {
    expect(files.length).toBeGreaterThan(400);
  });

  it('mboxrd export -> import is byte-exact for every message', async () => {
    expectSame(await mboxRoundTrip('mboxrd', messages), messages, files);
  });

  it('mboxrd is byte-exact with 4 KiB chunks too', async () => {
    expectSame(await mboxRoundTrip('mboxrd', messages, 4096), messages, files);
  });

  it('mboxo export -> import is byte-exact for every message without a >From line', async () => {
    const safe = messages.map((bytes, i) => [bytes, files[i]!] as const).filter(([bytes]) => !/^>+From /m.test(bytes.toString('latin1')));
    expect(safe.length).toBeGreaterThan(messages.length * 0.9);
    expectSame(await mboxRoundTrip('mboxo', safe.map(([b]) => b)), safe.map(([b]) => b), safe.map(([, f]) => f));
  });

  it('Maildir export -> import is byte-exact and keeps order', async () => {
    const dir = join(tmp(), 'Maildir');
    const writer = await MaildirWriter.create(fs, dir, { sync: false });
    for (const bytes of messages) await writer.append(bytes, { flags: ['\\Seen'] });
    await writer.close();
    const out: Buffer[] = [];
    for await (const message of readMaildir(fs, dir)) out.push(message.bytes);
    expectSame(out, messages, files);
  });

  it('reads as a directory of eml files', async () => {
    let count = 0;
    for await (const message of readEmlDir(fs, corporaPath)) {
      count += 1;
      expect(message.bytes.length).toBeGreaterThanOrEqual(0);
    }
    expect(count).toBe(files.length + 1); // + README.md
  });
});
