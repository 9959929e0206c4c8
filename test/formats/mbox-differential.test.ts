// The mbox reader finds From_ and >From lines with native searches instead of walking every line;
// this checks it against the line-walking reader it replaced (mbox-oracle.ts) on seeded random
// files built to put every tricky line at every chunk boundary, and on the real corpora.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { FileHandle, FileStat, FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { type MboxMessage, type MboxWarning, type ReadMboxOptions, flagsFromStatusHeaders, readMbox } from '../../src/formats/mbox.js';
import { prng } from '../helpers/prng.js';
import { flagsFromStatusHeadersOracle, readMboxOracle } from './mbox-oracle.js';

type Reader = typeof readMbox;

const CHUNK_SIZES: (number | undefined)[] = [1, 2, 7, 64, 4096, undefined];
/** Real mail is megabytes: one-byte reads of all of it would take minutes. */
const REAL_CHUNK_SIZES: (number | undefined)[] = [64, 4096, undefined];
const STYLES = ['mboxrd', 'mboxo'] as const;

/** The file served from memory: one-byte reads of a real file would cost a system call each. */
function memoryFileSystem(file: Buffer): FileSystem {
  const stat: FileStat = { size: file.length, dev: 0, ino: 0, mode: 0o100644, mtimeMs: 0, isDirectory: false, isFile: true };
  const handle = {
    path: 'memory.mbox',
    read: async (buffer: Buffer, offset: number, length: number, position: number) =>
      (position >= file.length ? 0 : file.copy(buffer, offset, position, Math.min(position + length, file.length))),
    close: async () => {},
  } as unknown as FileHandle;
  return Object.assign(Object.create(nodeFileSystem) as FileSystem, { stat: async () => stat, open: async () => handle });
}

/** Everything a reader reports, in a form whose diff is readable. */
async function readAll(reader: Reader, file: Buffer, options: ReadMboxOptions): Promise<unknown> {
  const events: unknown[] = [];
  const onWarning = (warning: MboxWarning) => events.push({ warning });
  for await (const message of reader(memoryFileSystem(file), 'memory.mbox', { ...options, onWarning })) {
    events.push(describeMessage(message));
  }
  return events;
}

/**
 * The oracle reports a too-large message as its parser meets it, often before the messages ahead
 * of it are yielded; the reader reports it in message order, just before the first message after
 * it (b0b3da8: one about a piece a Content-Length covers is then dropped). The oracle's events in
 * that order; the rest of its order unchanged.
 */
function inMessageOrder(events: unknown[]): unknown[] {
  type Event = { warning?: { kind: string; offset: number }; offset?: number };
  const tooLarge = (events as Event[]).filter((e) => e.warning?.kind === 'tooLarge');
  const out: unknown[] = [];
  for (const event of events as Event[]) {
    if (event.warning?.kind === 'tooLarge') continue;
    if (event.warning === undefined) {
      while (tooLarge.length > 0 && tooLarge[0]!.warning!.offset < event.offset!) out.push(tooLarge.shift());
    }
    out.push(event);
  }
  return [...out, ...tooLarge];
}

function describeMessage(message: MboxMessage): unknown {
  return {
    bytes: message.bytes.toString('latin1'),
    internalDate: message.internalDate?.getTime(),
    flags: message.flags,
    index: message.index,
    offset: message.offset,
  };
}

/**
 * readAll as an import uses the reader (ReadMboxOptions.recycle): messages are held in batches
 * of 1 to 4 while the reader goes on, looked at only when their batch "commits" (when the next
 * batch is full, or at the end), and then declared done. A read chunk read into again while a
 * held message still views it shows as changed bytes. Counts the distinct read chunks (buffers of
 * chunkBytes) the messages view; the others are concatenations of pieces across chunks.
 */
async function readAllRecycling(file: Buffer, options: ReadMboxOptions, random: () => number): Promise<{ events: unknown[]; buffers: number }> {
  const events: unknown[] = [];
  const recycle = { doneBelow: 0 };
  const buffers = new Set<ArrayBufferLike>();
  let held: MboxMessage[] = [];
  let batchSize = 1;
  const commit = () => {
    for (const message of held) events.push(describeMessage(message));
    if (held.length > 0) recycle.doneBelow = held[held.length - 1]!.index + 1;
    held = [];
    batchSize = 1 + Math.floor(random() * 4);
  };
  const onWarning = (warning: MboxWarning) => events.push({ warning });
  for await (const message of readMbox(memoryFileSystem(file), 'memory.mbox', { ...options, onWarning, recycle })) {
    if (message.bytes.buffer.byteLength === options.chunkBytes) buffers.add(message.bytes.buffer);
    if (held.length >= batchSize) commit();
    held.push(message);
  }
  commit();
  return { events, buffers: buffers.size };
}

async function expectSameAsOracle(
  file: Buffer, options: Omit<ReadMboxOptions, 'chunkBytes'>, label: string, chunkSizes = CHUNK_SIZES,
): Promise<void> {
  for (const chunkBytes of chunkSizes) {
    const expected = inMessageOrder(await readAll(readMboxOracle, file, { ...options, chunkBytes }));
    const actual = await readAll(readMbox, file, { ...options, chunkBytes });
    expect(actual, `${label} chunkBytes ${chunkBytes ?? 'default'}`).toEqual(expected);
    // warnings come as they are met, messages when their batch commits: compared apart
    // as an import reads: recycled chunks, and a message that does not fit one read again into a larger one
    const wholeChunkBytes = chunkBytes === undefined ? undefined : chunkBytes * 3;
    const recycled = await readAllRecycling(file, { ...options, chunkBytes, wholeChunkBytes }, prng(file.length));
    const kinds = (events: unknown[]) => [events.filter((e) => (e as { warning?: unknown }).warning === undefined), events.filter((e) => (e as { warning?: unknown }).warning !== undefined)];
    expect(kinds(recycled.events), `${label} chunkBytes ${chunkBytes ?? 'default'}, read chunks recycled`).toEqual(kinds(expected as unknown[]));
  }
}

// Lines chosen to hit every branch of line classification, with and without their terminators.
const LINES = [
  'From sender Thu Nov 28 10:45:25 2026', 'From sender Thu, 28 Nov 2026 10:45:25 +0000', 'From x', 'From ', 'From',
  'Fro', 'F', 'from lower case', ' From indented', 'x From inside', '>From once', '>>From twice', '>>>From thrice',
  '>From', '>Fro', '>', '>>', '>>>', '> quoted reply', '>> nested reply', 'x>From inside', 'Status: RO',
  'X-Status: AFDT', 'status: r', 'Subject: hello', '', '', '', 'plain body text', '\r', 'From\r', '>From \r',
];

function randomLine(random: () => number): string {
  const pick = random();
  if (pick < 0.03) return 'x'.repeat(1 + Math.floor(random() * 5000));
  if (pick < 0.05) return 'y'.repeat(Math.floor(random() * 2000)) + '\n>From mid' + 'z'.repeat(Math.floor(random() * 2000));
  if (pick < 0.1) return String.fromCharCode(...Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)));
  return LINES[Math.floor(random() * LINES.length)]!;
}

/** A random mbox-ish file: mostly sane message structure, with everything else mixed in. */
function randomMbox(random: () => number): Buffer {
  const crlf = random() < 0.3;
  const mixed = random() < 0.1;
  const eol = () => (mixed ? (random() < 0.5 ? '\r\n' : '\n') : crlf ? '\r\n' : '\n');
  let text = '';
  if (random() < 0.2) text += `garbage before the first From_${eol()}${randomLine(random)}${eol()}`;
  const messageCount = Math.floor(random() * 6);
  for (let m = 0; m < messageCount; m += 1) {
    text += `From sender${m} Thu Nov 28 10:45:${String(m % 60).padStart(2, '0')} 2026${eol()}`;
    if (random() < 0.5) text += `Subject: ${m}${eol()}${random() < 0.5 ? `Status: RO${eol()}` : ''}${eol()}`;
    const lineCount = random() < 0.15 ? 0 : Math.floor(random() * 12);
    for (let l = 0; l < lineCount; l += 1) text += randomLine(random) + eol();
    if (random() < 0.8) text += eol();
  }
  if (random() < 0.3) text += randomLine(random);
  return Buffer.from(text, 'latin1');
}

describe('mbox reader against the pre-optimisation oracle', () => {
  it('reads 300 seeded random files the same for every chunk size and both styles', async () => {
    for (let seed = 1; seed <= 300; seed += 1) {
      const random = prng(seed);
      const file = randomMbox(random);
      const messageBytesMax = random() < 0.2 ? Math.floor(random() * 200) : undefined;
      for (const style of STYLES) await expectSameAsOracle(file, { style, messageBytesMax }, `seed ${seed} ${style}`);
    }
  }, 300_000);

  it('reads files made of one repeated tricky line the same (a boundary lands in every place)', async () => {
    for (const line of LINES) {
      for (const eol of ['\n', '\r\n', '']) {
        const file = Buffer.from(`${line}${eol}`.repeat(3) + `From a Thu Nov 28 10:45:25 2026${eol}${line}${eol}`.repeat(2), 'latin1');
        for (const style of STYLES) await expectSameAsOracle(file, { style }, `${JSON.stringify(line)} ${JSON.stringify(eol)} ${style}`);
      }
    }
  }, 300_000);
});

describe('mbox reader recycling its read chunks (an import)', () => {
  it('reads into far fewer buffers than it reads chunks, and gives the same messages', async () => {
    const random = prng(11);
    let text = '';
    for (let m = 0; m < 400; m += 1) text += `From a Thu Nov 28 10:45:25 2026\nSubject: ${m}\n\n${'x'.repeat(Math.floor(random() * 3000))}\nFrom ${m} in the body\n\n`;
    const file = Buffer.from(text, 'latin1');
    const chunkBytes = 4096;
    const expected = await readAll(readMboxOracle, file, { chunkBytes });
    const recycled = await readAllRecycling(file, { chunkBytes }, prng(3));
    expect(recycled.events).toEqual(expected);
    // ~170 chunks read; the messages of at most two batches of up to 4 are in use at once
    expect(Math.ceil(file.length / chunkBytes)).toBeGreaterThan(100);
    expect(recycled.buffers).toBeGreaterThan(0);
    expect(recycled.buffers).toBeLessThan(20);
  });
});

describe('mbox reader growing its reads for large messages (wholeChunkBytes)', () => {
  it('reads each message that fits a large chunk as one view of a chunk, the same as the oracle', async () => {
    const random = prng(17);
    let text = '';
    for (let m = 0; m < 300; m += 1) {
      const body = random() < 0.2 ? 4096 + Math.floor(random() * 40_000) : Math.floor(random() * 1500);
      text += `From a Thu Nov 28 10:45:25 2026\nSubject: ${m}\n\n${'x'.repeat(body)}\n\n`;
    }
    const file = Buffer.from(text, 'latin1');
    const chunkBytes = 4096;
    const wholeChunkBytes = 65_536;
    const expected = await readAll(readMboxOracle, file, { chunkBytes });
    expect(await readAll(readMbox, file, { chunkBytes, wholeChunkBytes })).toEqual(expected);
    const recycled = await readAllRecycling(file, { chunkBytes, wholeChunkBytes }, prng(5));
    expect(recycled.events).toEqual(expected);
    const sizes = new Set<number>();
    for await (const message of readMbox(memoryFileSystem(file), 'memory.mbox', { chunkBytes, wholeChunkBytes })) {
      sizes.add(message.bytes.buffer.byteLength);
    }
    // no concatenation (its buffer would be the message's own size): every message views a read chunk
    expect([...sizes].sort((a, b) => a - b)).toEqual([chunkBytes, wholeChunkBytes]);
  });

  it('refuses a whole-message chunk smaller than the chunk', async () => {
    const file = Buffer.from('From a Thu Nov 28 10:45:25 2026\n\nx\n', 'latin1');
    await expect(readAll(readMbox, file, { chunkBytes: 4096, wholeChunkBytes: 1024 })).rejects.toMatchObject({ code: 'INVALID' });
  });
});

describe('flagsFromStatusHeaders against the oracle', () => {
  it('finds the same header block and flags in seeded random header soups', () => {
    const pieces = ['Status: RO', 'X-Status: AFDT', 'status: r', 'x-status:\tad', 'Subject: x', '', ' folded', 'Status:', '\r'];
    for (let seed = 1; seed <= 3000; seed += 1) {
      const random = prng(seed);
      let text = '';
      const lineCount = Math.floor(random() * 8);
      for (let l = 0; l < lineCount; l += 1) text += pieces[Math.floor(random() * pieces.length)]! + (random() < 0.5 ? '\r\n' : '\n');
      const bytes = Buffer.from(text, 'latin1');
      expect(flagsFromStatusHeaders(bytes), `seed ${seed}`).toEqual(flagsFromStatusHeadersOracle(bytes));
    }
  });
});

const corporaPath = fileURLToPath(new URL('../../../shared/corpora', import.meta.url));
const fixturesPath = fileURLToPath(new URL('../../fixtures', import.meta.url));

function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).sort().flatMap((name) => filesUnder(join(path, name)));
}

describe('mbox reader against the oracle on real mail', () => {
  const files = [...filesUnder(corporaPath), ...filesUnder(fixturesPath)].filter((path) => !path.endsWith('README.md'));

  it('reads every corpus and fixture file as an mbox the same', async () => {
    expect(files.length).toBeGreaterThan(0);
    for (const path of files) {
      for (const style of STYLES) await expectSameAsOracle(readFileSync(path), { style }, `${path} ${style}`, REAL_CHUNK_SIZES);
    }
  }, 300_000);

  it('reads all corpus messages joined by From_ lines the same', async () => {
    const random = prng(7);
    const parts: Buffer[] = [];
    for (const path of files) {
      parts.push(Buffer.from(`From ${random() < 0.5 ? 'a' : 'MAILER-DAEMON'} Thu Nov 28 10:45:25 2026\n`), readFileSync(path), Buffer.from('\n'));
    }
    for (const style of STYLES) await expectSameAsOracle(Buffer.concat(parts), { style }, `joined ${style}`, REAL_CHUNK_SIZES);
  }, 300_000);
});
