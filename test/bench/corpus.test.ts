// The benchmark's corpus readers: every format `import` reads is streamed into the Maildir, list
// and mbox the peers take, byte for byte; an interrupted preparation resumes to the same result;
// a source that changed under a resume is refused.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstListed, listedFiles } from '../../src/bench/common.js';
import { prepareCorpus } from '../../src/bench/corpus.js';
import { isMailstoreError } from '../../src/errors.js';
import { readMbox } from '../../src/formats/mbox.js';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { archiveMessages, writeV1, writeV2 } from '../helpers/public-inbox.js';
import { tmpDir } from '../helpers/tmp.js';

const message = (i: number, eol = '\n') => Buffer.from(`From: a${i}@example.org${eol}Subject: corpus ${i}${eol}Message-ID: <c${i}@example.org>${eol}${eol}From here on, body ${i}${eol}${'x'.repeat(i * 7)}${eol}`);

/** What the prepared corpus holds: the list's files, and the mbox read back. */
async function preparedMessages(list: string, mbox: string): Promise<{ files: Buffer[]; fromMbox: Buffer[] }> {
  const files = readFileSync(list, 'utf8').split('\n').filter(Boolean).map((path) => readFileSync(path));
  const fromMbox: Buffer[] = [];
  for await (const m of readMbox(fs, mbox, { style: 'mboxrd' })) fromMbox.push(m.bytes);
  return { files, fromMbox };
}

function sortedHex(buffers: Buffer[]): string[] {
  return buffers.map((b) => b.toString('hex')).sort();
}

describe('prepareCorpus reads every format, byte for byte', () => {
  it('an mbox file', async () => {
    const dir = tmpDir('prep-mbox');
    const messages = Array.from({ length: 7 }, (_, i) => message(i, i % 2 ? '\r\n' : '\n'));
    writeFileSync(join(dir, 'in.mbox'), Buffer.concat(messages.flatMap((m) => [Buffer.from('From sender@example.org Mon Jan  1 00:00:00 2024\n'), Buffer.from(m.toString('latin1').replace(/^From /gm, '>From '), 'latin1'), Buffer.from('\n')])));
    const prepared = await prepareCorpus(join(dir, 'in.mbox'), join(dir, 'out'));
    expect(prepared).toMatchObject({ format: 'mbox', messages: 7, complete: true, bytes: messages.reduce((n, m) => n + m.length, 0) });
    const { files, fromMbox } = await preparedMessages(prepared.list, prepared.mbox);
    expect(files).toEqual(messages);
    expect(fromMbox).toEqual(messages);
  });

  it('a Maildir++ tree (its folders too) and a directory of .eml files', async () => {
    const dir = tmpDir('prep-maildir');
    const root = join(dir, 'Maildir');
    const messages = Array.from({ length: 6 }, (_, i) => message(i));
    for (const sub of ['cur', 'new', 'tmp', '.Sent/cur', '.Sent/new', '.Sent/tmp']) mkdirSync(join(root, sub), { recursive: true });
    messages.forEach((m, i) => writeFileSync(join(root, i < 4 ? 'cur' : '.Sent/cur', `${1700000000 + i}.M${i}P1.host:2,S`), m));
    const prepared = await prepareCorpus(root, join(dir, 'out'));
    expect(prepared).toMatchObject({ format: 'maildir', messages: 6, complete: true });
    const { files, fromMbox } = await preparedMessages(prepared.list, prepared.mbox);
    expect(sortedHex(files)).toEqual(sortedHex(messages));
    expect(fromMbox).toEqual(files);

    const eml = join(dir, 'eml');
    mkdirSync(join(eml, 'sub'), { recursive: true });
    messages.forEach((m, i) => writeFileSync(join(eml, i % 2 ? 'sub' : '', `${i}.eml`), m));
    const fromEml = await prepareCorpus(eml, join(dir, 'out-eml'));
    expect(fromEml).toMatchObject({ format: 'eml', messages: 6 });
    expect(sortedHex((await preparedMessages(fromEml.list, fromEml.mbox)).files)).toEqual(sortedHex(messages));
  });

  it('public-inbox v1 and v2 archives (a removed message left out)', async () => {
    const dir = tmpDir('prep-pi');
    const messages = archiveMessages(9);
    const v2 = writeV2(join(dir, 'v2'), [messages.slice(0, 5).map((add) => ({ add })), [...messages.slice(5).map((add) => ({ add })), { remove: messages[2]! }]]);
    const prepared = await prepareCorpus(v2, join(dir, 'out-v2'));
    expect(prepared).toMatchObject({ format: 'public-inbox', messages: 8 });
    expect((await preparedMessages(prepared.list, prepared.mbox)).files).toEqual(messages.filter((_, i) => i !== 2).map((m) => m.bytes));
    const v1 = writeV1(join(dir, 'v1.git'), messages.map((add) => ({ add })));
    const fromV1 = await prepareCorpus(v1, join(dir, 'out-v1'));
    expect((await preparedMessages(fromV1.list, fromV1.mbox)).files).toEqual(messages.map((m) => m.bytes));
    // the peers' normaliser takes the prepared corpus as its own: the stamp names the Maildir
    expect(readFileSync(join(fromV1.work, 'corpus', 'stats.env'), 'utf8')).toContain(`CORPUS=${JSON.stringify(fromV1.maildir)}`);
  });

  it('--messages N takes the first N; a directory with no message is INVALID', async () => {
    const dir = tmpDir('prep-limit');
    const v2 = writeV2(join(dir, 'v2'), [archiveMessages(10).map((add) => ({ add }))]);
    expect((await prepareCorpus(v2, join(dir, 'out'), { messagesMax: 4 })).messages).toBe(4);
    mkdirSync(join(dir, 'empty'));
    const error = await prepareCorpus(join(dir, 'empty'), join(dir, 'out-empty')).catch((e: unknown) => e);
    expect(isMailstoreError(error, 'INVALID')).toBe(true);
  });
});

describe('an interrupted preparation resumes', () => {
  it('stopped part way, the same call again ends with exactly what one uninterrupted run writes', async () => {
    const dir = tmpDir('prep-resume');
    const source = writeV2(join(dir, 'v2'), [archiveMessages(30).map((add) => ({ add }))]);
    const whole = await prepareCorpus(source, join(dir, 'whole'));
    let seen = 0;
    const first = await prepareCorpus(source, join(dir, 'out'), { onMessage: () => { seen++; }, shouldStop: () => seen >= 11 });
    expect(first.complete).toBe(false);
    expect(first.messages).toBe(11);
    const read: number[] = [];
    const second = await prepareCorpus(source, join(dir, 'out'), { onMessage: (bytes) => read.push(bytes) });
    expect(second).toMatchObject({ complete: true, resumedAt: 11, messages: 30, bytes: whole.bytes, mboxBytes: whole.mboxBytes, duplicates: whole.duplicates });
    expect(read).toHaveLength(19); // only what was not written before
    expect(readFileSync(second.mbox)).toEqual(readFileSync(whole.mbox));
    expect((await preparedMessages(second.list, second.mbox)).files).toEqual((await preparedMessages(whole.list, whole.mbox)).files);
    // done: a third call reuses it
    expect(await prepareCorpus(source, join(dir, 'out'), { onMessage: () => { throw new Error('read again'); } })).toMatchObject({ complete: true, reused: true, messages: 30 });
  });

  it('a source that changed under the resume point is refused (REFUSED), not mixed', async () => {
    const dir = tmpDir('prep-changed');
    const source = join(dir, 'v1.git');
    writeV1(source, archiveMessages(12).map((add) => ({ add })));
    let seen = 0;
    await prepareCorpus(source, join(dir, 'out'), { onMessage: () => { seen++; }, shouldStop: () => seen >= 5 });
    await fs.removeTree(source);
    writeV1(source, archiveMessages(12, 50).map((add) => ({ add })));
    const error = await prepareCorpus(source, join(dir, 'out')).catch((e: unknown) => e);
    expect(isMailstoreError(error, 'REFUSED')).toBe(true);
  });
});

describe('list.txt is read a chunk at a time', () => {
  it('every path, in order, across chunk boundaries (a multi-byte name split between two chunks), or the first N', async () => {
    const dir = tmpDir('prep-list');
    const paths = Array.from({ length: 40_000 }, (_, i) => `/corpus/dossier-é${i}/message-${'ü'.repeat(i % 5)}${i}.eml`);
    writeFileSync(join(dir, 'list.txt'), `${paths.join('\n')}\n`);
    const read: string[] = [];
    for await (const path of listedFiles(join(dir, 'list.txt'))) read.push(path);
    expect(read).toEqual(paths);
    expect(await firstListed(join(dir, 'list.txt'), 3)).toEqual(paths.slice(0, 3));
  });
});
