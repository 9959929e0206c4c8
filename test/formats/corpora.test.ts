// Real mail must survive every format, and the store, byte for byte. The sample shipped in
// fixtures/real-mail (20 SpamAssassin public corpus messages, fixtures/README.md) runs in every
// clone; ../shared/corpora (several hundred more, with malformed MIME) runs too where it exists.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { MboxWriter, readMbox } from '../../src/formats/mbox.js';
import { MaildirWriter, readMaildir } from '../../src/formats/maildir.js';
import { readEmlDir } from '../../src/formats/eml.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';

const shippedPath = fileURLToPath(new URL('../../fixtures/real-mail', import.meta.url));
const sharedPath = fileURLToPath(new URL('../../../shared/corpora', import.meta.url));

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

/** What mboxo gives back: a body line `>From ` (one `>`) cannot be told from a quoted `From `. */
function afterMboxo(bytes: Buffer): Buffer {
  return Buffer.from(bytes.toString('latin1').replace(/(^|\n)>(?=From )/g, '$1'), 'latin1');
}

async function mboxRoundTrip(style: 'mboxrd' | 'mboxo', input: Buffer[], chunkBytes?: number): Promise<Buffer[]> {
  const path = join(tmpDir('mailstore-corpora'), `corpora.${style}`);
  const writer = await MboxWriter.create(fs, path, { style });
  for (const bytes of input) await writer.append(bytes, { internalDate: new Date(0) });
  await writer.close();
  const out: Buffer[] = [];
  for await (const message of readMbox(fs, path, { style, chunkBytes, onWarning: (w) => { throw new Error(JSON.stringify(w)); } })) {
    out.push(message.bytes);
  }
  return out;
}

/** Every message equal to its expected bytes; the names of those that are not, so a failure says which. */
function expectSame(actual: Buffer[], expected: Buffer[], names: string[]): void {
  expect(actual.length).toBe(expected.length);
  const different = expected.flatMap((bytes, i) => (actual[i]!.equals(bytes) ? [] : [names[i]]));
  expect(different).toEqual([]);
}

function roundTrips(root: string, files: string[]): void {
  const messages = files.map((path) => readFileSync(path));
  const names = files.map((path) => relative(root, path));

  it('mboxrd export -> import is byte-exact for every message', async () => {
    expectSame(await mboxRoundTrip('mboxrd', messages), messages, names);
  });

  it('mboxrd is byte-exact with 4 KiB chunks too', async () => {
    expectSame(await mboxRoundTrip('mboxrd', messages, 4096), messages, names);
  });

  it('mboxo export -> import is byte-exact except for body lines `>From `, which lose their `>`', async () => {
    expectSame(await mboxRoundTrip('mboxo', messages), messages.map(afterMboxo), names);
  });

  it('Maildir export -> import is byte-exact and keeps order', async () => {
    const dir = join(tmpDir('mailstore-corpora'), 'Maildir');
    const writer = await MaildirWriter.create(fs, dir, { sync: false });
    for (const bytes of messages) await writer.append(bytes, { flags: ['\\Seen'] });
    await writer.close();
    const out: Buffer[] = [];
    for await (const message of readMaildir(fs, dir)) out.push(message.bytes);
    expectSame(out, messages, names);
  });

  it('reads as a directory of eml files: every file, each with its exact bytes', async () => {
    const read = new Map<string, Buffer>();
    for await (const message of readEmlDir(fs, root)) read.set(message.path, message.bytes);
    for (const path of read.keys()) read.get(path)!.equals(readFileSync(path)) || expect.fail(`${path} read differently`);
    expect([...read.keys()].filter((path) => basename(path) !== 'README.md').sort()).toEqual([...files].sort());
  });

  it('goes into a store and comes back byte-exact after a reopen', async () => {
    const dir = tmpDir('mailstore-corpora');
    let store = await Store.open(dir, { create: true });
    await store.createMailbox('corpus');
    const uids: number[] = [];
    for (let i = 0; i < messages.length; i += 100) {
      for (const result of await store.appendBatch('corpus', messages.slice(i, i + 100).map((bytes) => ({ bytes })))) uids.push(result.uid);
    }
    await store.close();
    store = await Store.open(dir);
    try {
      const back = await Promise.all(uids.map((uid) => store.fetch('corpus', uid)));
      expectSame(back, messages, names);
    } finally {
      await store.close();
    }
  });
}

describe('real mail shipped in fixtures/real-mail', () => {
  const files = corpusFiles(shippedPath);

  it('holds the 20 messages fixtures/README.md lists, byte-exact (each name carries the MD5 of its bytes)', () => {
    expect(files.length).toBe(20);
    for (const path of files) {
      const md5 = createHash('md5').update(readFileSync(path)).digest('hex');
      expect(basename(path), 'changed since it was taken from the corpus (a checkout converting line ends?)').toBe(`${basename(path).split('.').slice(0, 2).join('.')}.${md5}.eml`);
    }
  });

  it('covers what makes mail hard to carry: >From and From lines in bodies, CRLF, bare CR, 8-bit bytes, no final newline', () => {
    const texts = files.map((path) => readFileSync(path).toString('latin1'));
    const count = (test: (text: string) => boolean) => texts.filter(test).length;
    expect(count((t) => /\n>From /.test(t))).toBe(1); // mboxo cannot carry it
    expect(count((t) => /\n>>+From /.test(t))).toBe(2);
    expect(count((t) => /\nFrom /.test(t))).toBe(1);
    expect(count((t) => t.includes('\r\n'))).toBe(1);
    expect(count((t) => /\r(?!\n)/.test(t))).toBe(2);
    expect(count((t) => /[\x80-\xff]/.test(t))).toBeGreaterThanOrEqual(5);
    expect(count((t) => !t.endsWith('\n'))).toBe(1);
  });

  roundTrips(shippedPath, files);
});

if (existsSync(sharedPath)) {
  describe('real mail in ../shared/corpora', () => {
    const files = corpusFiles(sharedPath);
    it(`has the corpora's messages (${files.length})`, () => {
      expect(files.length).toBeGreaterThan(400);
    });
    roundTrips(sharedPath, files);
  });
} else {
  console.info(`test/formats/corpora: ${sharedPath} is absent; the real-mail round trips ran on the 20 shipped messages only`);
}
