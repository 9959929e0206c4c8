// The CLI under hostile and careless input (issue 10 #7, #9, #15): append reads at most the
// message limit from a file, a device or a pipe; an import that skipped anything exits 1 with
// the rest in; Maildir++ folder names are judged before anything goes in.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { bin, requireBuilt, tempDir } from './helpers.js';
// what is tried is the command's input (files, devices, stdin, SOURCE and --out paths), not the
// process: the command lines run in this process (in-process.ts, a sample checked against the
// spawned command); the pipe named as FILE is a shell's
import { json, newStore, run } from './in-process.js';

beforeAll(requireBuilt);

const freshStore = () => newStore(['M'], 'mailstore-hostile-');

const body = (i: number | string) => `Message-ID: <c${i}@example.org>\nSubject: ${i}\n\nbody ${i}\n`;

function maildir(dir: string, messages: Record<string, string>): string {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  for (const [name, text] of Object.entries(messages)) writeFileSync(join(dir, 'cur', name), text);
  return dir;
}

/** What a terminal obeys: C0 but newline, DEL, C1 (U+009B is CSI to xterm), bidi overrides. */
const obeyed = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
const hostileLink = '1.\x1b]0;owned\x07\x9b2J\u202e:2,';

/**
 * A Maildir named by whoever wrote it: its directory, a folder (&AJs- is U+009B, the 8-bit CSI),
 * another (&IC4- is U+202E, the right-to-left override) and a link to skip, each with a sequence a terminal obeys.
 */
function hostileSource(): { work: string; source: string } {
  const work = tempDir();
  writeFileSync(join(work, 'secret'), 'root-only\n');
  const source = maildir(join(work, 'md\x9b2J\u202e'), { '2.y:2,S': body(2) });
  maildir(join(source, '.x&AJs-2J'), {});
  maildir(join(source, '.&IC4-txt'), {});
  symlinkSync(join(work, 'secret'), join(source, 'cur', hostileLink));
  return { work, source };
}

describe('append reads at most the message limit (#9)', () => {
  it('/dev/zero: TOO_LARGE, exit 5, in bounded time and memory', async () => {
    const store = await freshStore();
    const started = Date.now();
    const result = await run(['append', 'M', '/dev/zero'], { store });
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr).toMatch(/^mailstore: TOO_LARGE: /);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await json(['mailbox', 'status', 'M'], { store })).messages).toBe(0);
  });

  it('a sparse file one byte over the limit: TOO_LARGE; stdin one byte over: TOO_LARGE', async () => {
    const store = await freshStore();
    const file = join(tempDir(), 'huge.eml');
    writeFileSync(file, '');
    truncateSync(file, limits.messageBytesMax + 1);
    const fromFile = await run(['append', 'M', file], { store });
    expect(fromFile.code, fromFile.stderr).toBe(5);
    expect(fromFile.stderr).toMatch(/^mailstore: TOO_LARGE: /);
    const fromStdin = await run(['append', 'M'], { store, input: Buffer.alloc(limits.messageBytesMax + 1, 0x61) });
    expect(fromStdin.code, fromStdin.stderr).toBe(5);
    expect(fromStdin.stderr).toMatch(/^mailstore: TOO_LARGE: /);
    expect((await json(['mailbox', 'status', 'M'], { store })).messages).toBe(0);
  });

  it('a pipe named as FILE (/dev/stdin) is read, and a directory is INVALID', async () => {
    const store = await freshStore();
    // through a shell: a real pipe (node's own child stdin is a socket, which /dev/stdin cannot open)
    const appended = spawnSync('sh', ['-c', `printf '%s' "$BODY" | "${process.execPath}" "${bin}" append M /dev/stdin`], {
      env: { ...process.env, MAILSTORE_DIR: store, BODY: body('pipe') }, encoding: 'utf8',
    });
    expect(appended.status, appended.stderr).toBe(0);
    expect((await run(['fetch', 'M', '1'], { store })).stdout.toString()).toBe(body('pipe'));
    const dir = await run(['append', 'M', tempDir()], { store });
    expect(dir.code).toBe(5);
    expect(dir.stderr).toMatch(/^mailstore: INVALID: .*directory/);
  });
});

describe('import: skipped entries and exit codes (#7, #15)', () => {
  it('Maildir++ with .a%b and .Bad..Name: every valid folder goes in, both bad ones are reported, exit 1', async () => {
    const source = maildir(join(tempDir(), 'md'), { '1.inbox': body('inbox') });
    maildir(join(source, '.Good'), { '1.good': body('good') });
    maildir(join(source, '.a%b'), { '1.wild': body('wild') });
    maildir(join(source, '.Bad..Name'), { '1.bad': body('bad') });
    maildir(join(source, '.Zed'), { '1.zed': body('zed') });
    const store = await freshStore();
    const result = await run(['import', source, '--mailbox', 'INBOX', '--json'], { store });
    expect(result.code, result.stderr).toBe(1);
    const summary = JSON.parse(result.stdout.toString());
    expect(summary).toMatchObject({ imported: 3, skipped: 2, skippedReasons: { badName: 2 } });
    expect(result.stderr).toContain('.a%b');
    expect(result.stderr).toContain('.Bad..Name');
    const names = (await json(['mailbox', 'list'], { store })).map((m: { name: string }) => m.name).sort();
    expect(names).toEqual(['INBOX', 'INBOX/Good', 'INBOX/Zed', 'M']);
  });

  it('an import where every message was skipped exits 1, not 0; text output names the reasons', async () => {
    const work = tempDir();
    writeFileSync(join(work, 'secret'), 'root-only\n');
    const source = maildir(join(work, 'md'), {});
    symlinkSync(join(work, 'secret'), join(source, 'cur', '1.x:2,'));
    const store = await freshStore();
    const result = await run(['import', source, '--mailbox', 'M'], { store });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/skipped \(symlink\) .*1\.x:2,: INVALID: .*symbolic link/);
    expect(result.stdout.toString()).toMatch(/skipped .*: 1 \(1 symlink\)/);
    expect((await json(['mailbox', 'status', 'M'], { store })).messages).toBe(0);
  });

  it('a skipped file whose name holds a newline is reported on one line: the name cannot make up a line of its own', async () => {
    const work = tempDir();
    writeFileSync(join(work, 'secret'), 'root-only\n');
    const source = maildir(join(work, 'md'), { '2.y:2,S': body(2) });
    symlinkSync(join(work, 'secret'), join(source, 'cur', '1.x\nmailstore: imported 999 messages, nothing skipped\r:2,'));
    const store = await freshStore();
    const result = await run(['import', source, '--mailbox', 'M'], { store });
    expect(result.code, result.stderr).toBe(1);
    const lines = result.stderr.toString().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^mailstore: skipped \(symlink\) .*1\.x\\nmailstore: imported 999 messages, nothing skipped\\r:2,: INVALID: /);
    expect((await json(['mailbox', 'status', 'M'], { store })).messages).toBe(1);
  });

  it('names from a source reach the terminal inert: no escape sequence, 8-bit CSI or bidi override in warnings, the error line or the summary', async () => {
    const { work, source } = hostileSource();
    const store = await freshStore();
    const imported = await run(['import', source, '--mailbox', 'M'], { store });
    expect(imported.code, imported.stderr).toBe(1);
    const warnings = imported.stderr.toString();
    expect(warnings).not.toMatch(obeyed);
    expect(warnings).toContain('1.\\x1b]0;owned\\x07\\x9b2J\\u202e:2,');
    expect(warnings).toContain('x\\x9b2J');
    expect(warnings).toContain('\\u202etxt');
    expect(imported.stdout.toString()).not.toMatch(obeyed);
    expect(imported.stdout.toString()).toContain('md\\x9b2J\\u202e');
    // the error line: a compressed file (what an upload directory holds) given as SOURCE
    const packed = join(work, 'mail\x1b]0;owned\x07\x9b2J.gz');
    writeFileSync(packed, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]));
    const refused = await run(['import', packed, '--mailbox', 'M'], { store });
    expect(refused.code).toBe(5);
    expect(refused.stderr.toString()).toMatch(/^mailstore: INVALID: .*mail\\x1b\]0;owned\\x07\\x9b2J\.gz/);
    expect(refused.stderr.toString()).not.toMatch(obeyed);
    expect((await json(['mailbox', 'status', 'M'], { store })).messages).toBe(1);
  });

  it('import --json: every name parses back exact, and nothing a terminal obeys is raw in the document (8-bit CSI, bidi override)', async () => {
    const { source } = hostileSource();
    const store = await freshStore();
    const result = await run(['import', source, '--mailbox', 'M', '--json'], { store });
    expect(result.code, result.stderr).toBe(1);
    const text = result.stdout.toString();
    expect(text).not.toMatch(obeyed);
    const summary = JSON.parse(text) as { source: string; skippedItems: { path: string }[] };
    expect(summary.source).toBe(source);
    expect(summary.skippedItems.map((item) => item.path).sort()).toEqual([join(source, '.&IC4-txt'), join(source, '.x&AJs-2J'), join(source, 'cur', hostileLink)].sort());
  });

  it('import --help says links and special files are never followed, oversize is skipped, and exit 1', async () => {
    const help = (await run(['import', '--help'])).stdout.toString();
    expect(help).toMatch(/symbolic link.*never followed/);
    expect(help).toMatch(/FIFO, socket, device/);
    expect(help).toContain('tooLarge');
    expect(help).toMatch(/exits 1/);
  });
});

describe('import never reads the store itself as mail', () => {
  it('SOURCE the store, a directory inside it (through a link too), or one holding it: INVALID, exit 5, nothing read or created', async () => {
    const store = await freshStore();
    const parent = join(store, '..');
    const link = join(tempDir(), 'to-packs');
    symlinkSync(join(store, 'packs'), link);
    for (const source of [store, join(store, 'packs'), join(store, 'journal'), link, parent]) {
      const result = await run(['import', source, '--mailbox', 'X'], { store });
      expect(result.code, `${source}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toMatch(/^mailstore: INVALID: .*store/);
    }
    const names = (await json(['mailbox', 'list'], { store })).map((m: { name: string }) => m.name);
    expect(names).toEqual(['M']);
  });
});

describe('export never writes into the store itself', () => {
  it('--out inside the store (packs/, tmp/, through a link too): INVALID, exit 5, nothing written there', async () => {
    const store = await freshStore();
    await run(['append', 'M', '-'], { store, input: Buffer.from(body('x')) });
    const link = join(tempDir(), 'to-packs');
    symlinkSync(join(store, 'packs'), link);
    const before = readdirSync(join(store, 'packs')).sort();
    for (const [format, out] of [['mbox', join(store, 'packs', '00000009.pack')], ['mbox', join(link, 'x.mbox')], ['maildir', join(store, 'tmp', 'md')], ['mbox', join(store, 'out.mbox')]]) {
      const result = await run(['export', 'M', '--format', format!, '--out', out!], { store });
      expect(result.code, `${out}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toMatch(/^mailstore: INVALID: .*inside the store/);
    }
    expect(readdirSync(join(store, 'packs')).sort()).toEqual(before);
    expect(readdirSync(join(store, 'tmp'))).toEqual([]);
  });
});
