// Real mail in and out through the built binary, byte for byte: the bundled fixtures and every
// message of ../shared/corpora, from Maildir, mbox and .eml, exported again as Maildir and mbox.
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { listMaildirFolders, readMaildir } from '../../src/formats/maildir.js';
import { MboxWriter, readMbox } from '../../src/formats/mbox.js';
import { corporaDir, filesUnder, repoRoot, requireBuilt, sha256, sortedList, tempDir } from '../cli/helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from '../cli/in-process.js';

beforeAll(requireBuilt);

const sampleMaildir = join(repoRoot, 'fixtures/sample');
const sampleMbox = join(repoRoot, 'fixtures/sample.mbox');
const haveCorpora = existsSync(corporaDir);
if (!haveCorpora) console.warn(`skipping the real-mail round trips: ${corporaDir} is absent (see the project README)`);

async function freshStore(): Promise<string> {
  const store = join(tempDir('mailstore-rt-'), 'store');
  await ok(['init'], { store });
  return store;
}

/** `sha256 flags` and the internal date of every message of every folder of a Maildir++ tree, by folder. */
async function maildirContents(root: string): Promise<Record<string, { key: string; dateMs: number }[]>> {
  const out: Record<string, { key: string; dateMs: number }[]> = {};
  for (const folder of await listMaildirFolders(fs, root)) {
    const entries: { key: string; dateMs: number }[] = [];
    for await (const m of readMaildir(fs, folder.path)) entries.push({ key: `${sha256(m.bytes)} ${m.flags.join(' ')}`, dateMs: m.internalDate?.getTime() ?? 0 });
    out[folder.folder] = entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.dateMs - b.dateMs));
  }
  return out;
}

/**
 * Same messages with the same flags, and the same internal dates. Dates within 1 ms: utimes takes
 * seconds as a double, so a date set to ...514 ms can read back as ...513.9999 ms.
 */
function expectSameMaildir(after: Awaited<ReturnType<typeof maildirContents>>, before: Awaited<ReturnType<typeof maildirContents>>): void {
  expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
  for (const folder of Object.keys(before)) {
    expect(after[folder].map((e) => e.key), folder).toEqual(before[folder].map((e) => e.key));
    before[folder].forEach((entry, i) => expect(Math.abs(after[folder][i].dateMs - entry.dateMs), `${folder} ${entry.key}`).toBeLessThanOrEqual(1));
  }
}

async function mboxHashes(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of readMbox(fs, path)) out.push(sha256(m.bytes));
  return out;
}

describe('fixtures', () => {
  it('a Maildir++ tree: folders become mailboxes, export gives the same bytes, flags and dates per folder', async () => {
    const store = await freshStore();
    const summary = await json(['import', sampleMaildir, '--mailbox', 'alice'], { store });
    expect(summary).toMatchObject({ format: 'maildir', imported: 200, skipped: 0 });
    const names = (await json<{ name: string }[]>(['mailbox', 'list'], { store })).map((m) => m.name);
    expect(names).toEqual(['alice', 'alice/Lists/kernel', 'alice/Sent']);
    const out = join(tempDir(), 'export');
    await ok(['export', 'alice', '--format', 'maildir', '--out', out], { store });
    const before = await maildirContents(sampleMaildir);
    expect(Object.keys(before).sort()).toEqual(['', 'Lists/kernel', 'Sent']);
    expectSameMaildir(await maildirContents(out), before);
    expect(before[''].some((entry) => entry.key.includes('\\Seen'))).toBe(true);
  });

  it('an mbox: export gives back the identical file (dates in From_ lines kept), and the same bytes as Maildir', async () => {
    const store = await freshStore();
    expect(await json(['import', sampleMbox, '--mailbox', 'mb'], { store })).toMatchObject({ format: 'mbox', imported: 100 });
    const dir = tempDir();
    await ok(['export', 'mb', '--format', 'mbox', '--out', join(dir, 'out.mbox')], { store });
    expect(readFileSync(join(dir, 'out.mbox')).equals(readFileSync(sampleMbox))).toBe(true);
    await ok(['export', 'mb', '--format', 'maildir', '--out', join(dir, 'md')], { store });
    const exported = filesUnder(join(dir, 'md', 'cur')).map((path) => sha256(readFileSync(path)));
    expect(sortedList(exported)).toEqual(sortedList(await mboxHashes(sampleMbox)));
  });

  it('mbox flags (Status/X-Status) are imported; --status-headers writes them back', async () => {
    const store = await freshStore();
    await ok(['import', sampleMbox, '--mailbox', 'mb'], { store });
    const flagged: string[] = [];
    for await (const m of readMbox(fs, sampleMbox)) flagged.push(m.flags.join(' '));
    const info = await json(['fetch', 'mb', String(flagged.findIndex((f) => f.includes('\\Seen')) + 1), '--info'], { store });
    expect(info.flags).toContain('\\Seen');
    const out = join(tempDir(), 'status.mbox');
    await ok(['export', 'mb', '--format', 'mbox', '--out', out, '--status-headers'], { store });
    const again: string[] = [];
    for await (const m of readMbox(fs, out)) again.push(m.flags.join(' '));
    expect(again).toEqual(flagged);
  });

  it('refuses an option of the other format, which it ignored: --status-headers into a Maildir wrote no Status header, unsaid', async () => {
    const store = await freshStore();
    await ok(['import', sampleMbox, '--mailbox', 'mb'], { store });
    const dir = tempDir();
    const cases: Array<[string, string[], RegExp]> = [
      ['maildir', ['--status-headers'], /--status-headers/],
      ['maildir', ['--mbox-style', 'mboxo'], /--mbox-style/],
      ['maildir', ['--mbox-sender', 'return-path'], /--mbox-sender/],
      ['mbox', ['--no-recursive'], /--no-recursive/],
    ];
    for (const [format, options, named] of cases) {
      const out = join(dir, `${format}-${options[0].slice(2)}`);
      const result = await run(['export', 'mb', '--format', format, '--out', out, ...options], { store });
      expect(result.code, `${format} ${options.join(' ')}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toMatch(/^mailstore: INVALID: /);
      expect(result.stderr).toMatch(named);
      expect(existsSync(out)).toBe(false); // nothing written
    }
    await ok(['export', 'mb', '--format', 'mbox', '--out', join(dir, 'ok.mbox'), '--mbox-style', 'mboxrd'], { store }); // its own options still go
  });
});

describe.skipIf(!haveCorpora)('real mail from ../shared/corpora', () => {
  const corpus = () => filesUnder(corporaDir, { skipHidden: true });

  it('as a Maildir with flags: byte-identical out, flags and internal dates kept', async () => {
    const letters = ['', 'S', 'RS', 'FS', 'DS', 'PS', 'T'];
    const source = join(tempDir(), 'md');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(source, sub), { recursive: true });
    const files = corpus();
    files.forEach((path, i) => copyFileSync(path, join(source, 'cur', `${1700000000 + i}.M${i}P1Q${i}.corpus:2,${letters[i % letters.length]}`)));
    const store = await freshStore();
    expect(await json(['import', source, '--mailbox', 'corpus', '--format', 'maildir'], { store })).toMatchObject({ imported: files.length, skipped: 0 });
    const out = join(tempDir(), 'out');
    await ok(['export', 'corpus', '--format', 'maildir', '--out', out], { store });
    expectSameMaildir(await maildirContents(out), await maildirContents(source));
    const raw = sortedList(files.map((path) => sha256(readFileSync(path))));
    expect(sortedList(filesUnder(join(out, 'cur')).map((path) => sha256(readFileSync(path))))).toEqual(raw);
  });

  it('as a directory of .eml files and as an mbox: every message byte-identical after export', async () => {
    const files = corpus();
    const raw = sortedList(files.map((path) => sha256(readFileSync(path))));
    const store = await freshStore();
    // --flatten: every file into the one mailbox (without it each subdirectory is a folder of its own, issue 18 item 10).
    expect(await json(['import', corporaDir, '--mailbox', 'eml', '--format', 'eml', '--flatten'], { store })).toMatchObject({ imported: files.length, skipped: 0 });
    const dir = tempDir();
    const mbox = join(dir, 'corpus.mbox');
    const writer = await MboxWriter.create(fs, mbox);
    for (const path of files) await writer.append(readFileSync(path), { internalDate: new Date(Date.UTC(2020, 0, 1)) });
    await writer.close();
    expect(await json(['import', mbox, '--mailbox', 'mbox'], { store })).toMatchObject({ format: 'mbox', imported: files.length });
    for (const mailbox of ['eml', 'mbox']) {
      await ok(['export', mailbox, '--format', 'maildir', '--out', join(dir, mailbox)], { store });
      expect(sortedList(filesUnder(join(dir, mailbox, 'cur')).map((path) => sha256(readFileSync(path)))), mailbox).toEqual(raw);
      await ok(['export', mailbox, '--format', 'mbox', '--out', join(dir, `${mailbox}.out.mbox`)], { store });
      expect(sortedList(await mboxHashes(join(dir, `${mailbox}.out.mbox`))), mailbox).toEqual(raw);
    }
    // Everything was stored once: the two mailboxes share every blob.
    const stats = await json(['stats'], { store });
    expect(stats.messages).toBe(2 * files.length);
    expect(stats.blobs).toBe(new Set(raw).size);
    expect(basename(mbox)).toBe('corpus.mbox');
  });
});

describe('unreadable and odd input', () => {
  it('stores malformed messages as they are, reports unreadable files and counts them', async () => {
    const source = join(tempDir(), 'eml');
    mkdirSync(source);
    writeFileSync(join(source, 'a.eml'), 'no headers at all, no newline');
    writeFileSync(join(source, 'b.eml'), Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10]));
    writeFileSync(join(source, 'c.eml'), '');
    symlinkSync(join(source, 'gone.eml'), join(source, 'd.eml')); // a link: never followed
    const store = await freshStore();
    const result = await run(['import', source, '--mailbox', 'odd', '--json'], { store });
    expect(result.code, result.stderr).toBe(1); // finished, with something skipped
    const summary = JSON.parse(result.stdout.toString());
    expect(summary).toMatchObject({ imported: 3, skipped: 1, skippedReasons: { symlink: 1 } });
    expect(summary.skippedItems[0]).toMatchObject({ path: join(source, 'd.eml'), code: 'INVALID', reason: 'symlink' });
    const out = join(tempDir(), 'odd');
    await ok(['export', 'odd', '--format', 'maildir', '--out', out], { store });
    const exported = sortedList(filesUnder(join(out, 'cur')).map((path) => sha256(readFileSync(path))));
    for (const name of ['a.eml', 'b.eml', 'c.eml']) expect(exported).toContain(sha256(readFileSync(join(source, name))));
  });
});
