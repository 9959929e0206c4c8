// Import is resumable: killed (SIGKILL) or stopped (Ctrl-C) part way, the same command run again
// ends with every source message in the store exactly once. A changed source is refused.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeFileSystem as fs } from '../../src/fs/node-fs.js';
import { readMbox } from '../../src/formats/mbox.js';
import { cursorKey } from '../../src/import/cursor.js';
import { Store } from '../../src/store/store.js';
import { bin, finish, repoRoot, requireBuilt, sha256, sortedList, start, tempDir } from '../cli/helpers.js';
// The import or export a signal stops is a process of its own; the stores they start from, the
// imports that resume and the checks run in this process (in-process.ts, a sample checked against
// the spawned command).
import { json, ok, run } from '../cli/in-process.js';

beforeAll(requireBuilt);

function generatedMessage(i: number): Buffer {
  const filler = `line ${i} `.repeat(20 + (i % 40));
  return Buffer.from(`From: sender${i % 97}@example.org\nTo: rcpt@example.com\nMessage-ID: <gen-${i}@example.org>\nSubject: message ${i}\n\n${filler}\n`);
}

function writeMbox(path: string, from: number, to: number): string[] {
  const parts: Buffer[] = [];
  const hashes: string[] = [];
  for (let i = from; i < to; i++) {
    const bytes = generatedMessage(i);
    hashes.push(sha256(bytes));
    parts.push(Buffer.from('From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n'), bytes, Buffer.from('\n'));
  }
  appendFileSync(path, Buffer.concat(parts));
  return hashes;
}

function writeMaildir(dir: string, count: number): string[] {
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  const hashes: string[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = generatedMessage(i);
    hashes.push(sha256(bytes));
    writeFileSync(join(dir, 'cur', `${1700000000 + i}.M${i}P1.gen:2,S`), bytes);
  }
  return hashes;
}

async function storedHashes(store: string, mailbox: string): Promise<string[]> {
  const out = join(tempDir(), 'check.mbox');
  await ok(['export', mailbox, '--format', 'mbox', '--out', out], { store });
  const hashes: string[] = [];
  for await (const m of readMbox(fs, out)) hashes.push(sha256(m.bytes));
  return hashes;
}

/** Starts an import and sends `signal` as soon as it reports its first durable batch. */
async function interruptAfterFirstBatch(store: string, args: string[], signal: NodeJS.Signals) {
  const child = start(['import', ...args, '--verbose', '--batch-messages', '100'], { store });
  let sent = false;
  child.stderr!.on('data', (chunk: Buffer) => {
    if (!sent && chunk.toString().includes('committed')) {
      sent = true;
      child.kill(signal);
    }
  });
  const result = await finish(child);
  expect(sent, `the import reported no batch before it ended: ${result.stderr}`).toBe(true);
  return result;
}

/**
 * Messages of the big mbox: enough batches of 100 that the import is still running when the signal
 * sent at its first committed batch arrives (80 batches here, ~1 s of import); the count itself is
 * not what these tests check (it was 20,000, four times the work of each import and export).
 */
const BIG_MBOX_MESSAGES = 8_000;

async function freshStore(): Promise<string> {
  const store = join(tempDir('mailstore-resume-'), 'store');
  await ok(['init'], { store });
  return store;
}

describe('an import killed part way', () => {
  it.each(['mbox', 'maildir'] as const)('%s: SIGKILL after the first batch, then the same command: every message exactly once', async (format) => {
    const dir = tempDir();
    const source = format === 'mbox' ? join(dir, 'big.mbox') : join(dir, 'md');
    const count = format === 'mbox' ? BIG_MBOX_MESSAGES : 4_000;
    const hashes = format === 'mbox' ? writeMbox(source, 0, count) : writeMaildir(source, count);
    const store = await freshStore();
    const killed = await interruptAfterFirstBatch(store, [source, '--mailbox', 'big'], 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    const partial = (await json(['mailbox', 'status', 'big'], { store })).messages;
    expect(partial).toBeGreaterThanOrEqual(100);
    expect(partial).toBeLessThan(count);
    expect(partial % 100).toBe(0); // batches are all or nothing

    const resumed = await json(['import', source, '--mailbox', 'big'], { store });
    expect(resumed).toMatchObject({ alreadyImported: partial, imported: count - partial, interrupted: false });
    expect(sortedList(await storedHashes(store, 'big'))).toEqual(sortedList(hashes));
    // And once more: nothing new.
    expect(await json(['import', source, '--mailbox', 'big'], { store })).toMatchObject({ imported: 0, alreadyImported: count });
  });
});

describe('Ctrl-C, SIGTERM or SIGHUP during an import', () => {
  // SIGTERM (a service manager stopping the job) killed the import before its summary (session 30).
  // After its summary the import ends by the signal itself, as the shell reports it (130, 143, 129):
  // it exited 130 instead, and a shell script whose import was stopped by Ctrl-C went on to its next
  // line (bash stops a script only when the command died of SIGINT; session 36).
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s: stops at a batch boundary, prints the summary, ends by the signal; everything reported is there', async (signal) => {
    const dir = tempDir();
    const source = join(dir, 'big.mbox');
    const hashes = writeMbox(source, 0, BIG_MBOX_MESSAGES);
    const store = await freshStore();
    const stopped = await interruptAfterFirstBatch(store, [source, '--mailbox', 'big', '--json'], signal);
    expect([stopped.code, stopped.signal]).toEqual([null, signal]);
    const summary = JSON.parse(stopped.stdout.toString());
    expect(summary.interrupted).toBe(true);
    expect(summary.imported).toBeGreaterThanOrEqual(100);
    expect((await json(['mailbox', 'status', 'big'], { store })).messages).toBe(summary.imported);
    expect(await storedHashes(store, 'big')).toEqual(hashes.slice(0, summary.imported));
    const resumed = await json(['import', source, '--mailbox', 'big'], { store });
    expect(resumed.alreadyImported).toBe(summary.imported);
    expect(sortedList(await storedHashes(store, 'big'))).toEqual(sortedList(hashes));
  });

  // Ctrl-C while the store was held by another process: the import said it would stop, waited on
  // for the store (up to --wait, 30 s by default), then made its mailbox and imported a message.
  it('Ctrl-C while it waits for a store another process holds: stops waiting, ends by SIGINT, nothing imported or created', async () => {
    const source = join(tempDir(), 'small.mbox');
    writeMbox(source, 0, 50);
    const store = await freshStore();
    const storeModule = join(repoRoot, 'dist/src/store/store.js');
    const holder = spawn(process.execPath, ['--input-type=module', '-e',
      `const { Store } = await import(${JSON.stringify(storeModule)}); const s = await Store.open(${JSON.stringify(store)}); ` +
      `process.stdout.write('held\\n'); process.stdin.resume(); process.stdin.on('end', () => s.close().then(() => process.exit(0)));`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const held = new Promise((done) => holder.stdout.on('data', done));
    const holderExited = new Promise((done) => holder.on('close', done));
    try {
      await held;
      const child = start(['import', source, '--mailbox', 'waited', '--verbose', '--wait', '60'], { store });
      child.stderr!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('waiting')) child.kill('SIGINT'); });
      const started = Date.now();
      const result = await finish(child);
      expect([result.code, result.signal], result.stderr).toEqual([null, 'SIGINT']);
      expect(result.stderr).toMatch(/stopped while waiting for the store.*nothing was done/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      holder.stdin.end();
      await holderExited;
    }
    expect(await ok(['mailbox', 'list'], { store })).toBe('');
  });

  // An export stopped by Ctrl-C or SIGTERM renames what it wrote to --out (its help says so). On a
  // hangup nobody asked it to stop nor will read its 'interrupted' summary: the partial mbox at
  // --out would pass for the whole mailbox.
  it('SIGHUP during an export: nothing appears at --out (the partial file stays hidden, as for a kill)', async () => {
    const dir = tempDir();
    const source = join(dir, 'big.mbox');
    writeMbox(source, 0, BIG_MBOX_MESSAGES);
    const store = await freshStore();
    await ok(['import', source, '--mailbox', 'big'], { store });
    const out = join(dir, 'out.mbox');
    const child = start(['export', 'big', '--format', 'mbox', '--out', out], { store });
    while (!readdirSync(dir).some((name) => name.includes('.export-')) && child.exitCode === null) await new Promise((r) => setImmediate(r));
    child.kill('SIGHUP');
    const result = await finish(child);
    expect(result.signal, result.stderr).toBe('SIGHUP');
    expect(existsSync(out)).toBe(false);
  });

  it('Ctrl-C in a script of imports stops the script, not only the import running', async () => {
    const dir = tempDir();
    const source = join(dir, 'big.mbox');
    writeMbox(source, 0, BIG_MBOX_MESSAGES);
    const store = await freshStore();
    const mailstore = `"${process.execPath}" "${bin}" --store "${store}" import "${source}" --batch-messages 100 --verbose --mailbox`;
    // bash, as a terminal's Ctrl-C reaches it: SIGINT to its whole process group
    const script = spawn('bash', ['-c', `${mailstore} first; ${mailstore} second`], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    script.stderr.on('data', (chunk: Buffer) => {
      if (!stderr.includes('committed') && (stderr += chunk.toString()).includes('committed')) process.kill(-script.pid!, 'SIGINT');
    });
    const ended = await new Promise<NodeJS.Signals | null>((done) => script.on('close', (_code, signal) => done(signal)));
    expect(ended).toBe('SIGINT');
    const names = (await ok(['mailbox', 'list'], { store })).split('\n').filter(Boolean);
    expect(names).toEqual(['first']); // the second import never started
  });
});

describe('resume points', () => {
  it('imports only what was appended to an mbox since, refuses a changed one, and --restart starts over', async () => {
    const dir = tempDir();
    const source = join(dir, 'grow.mbox');
    const first = writeMbox(source, 0, 5);
    const store = await freshStore();
    expect(await json(['import', source, '--mailbox', 'g'], { store })).toMatchObject({ imported: 5 });
    const more = writeMbox(source, 5, 8);
    expect(await json(['import', source, '--mailbox', 'g'], { store })).toMatchObject({ imported: 3, alreadyImported: 5 });
    expect(await storedHashes(store, 'g')).toEqual([...first, ...more]);

    const text = readFileSync(source, 'latin1');
    writeFileSync(source, text.replace('Subject: message 7', 'Subject: message 7 (edited)'), 'latin1');
    const refused = await run(['import', source, '--mailbox', 'g'], { store });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^mailstore: REFUSED: .*changed.*--restart/);
    expect((await json(['mailbox', 'status', 'g'], { store })).messages).toBe(8);

    expect(await json(['import', source, '--mailbox', 'g', '--restart'], { store })).toMatchObject({ imported: 8 });
    expect((await json(['mailbox', 'status', 'g'], { store })).messages).toBe(16);
  });

  /** A store with a.mbox's 4 messages imported into mailbox a. */
  async function importedOnce(): Promise<{ source: string; store: string }> {
    const source = join(tempDir(), 'a.mbox');
    writeMbox(source, 0, 4);
    const store = await freshStore();
    await ok(['import', source, '--mailbox', 'a'], { store });
    return { source, store };
  }

  it('starts over when the mailbox was deleted and created again', async () => {
    const { source, store } = await importedOnce();
    await ok(['mailbox', 'delete', 'a', '--force'], { store });
    const again = await run(['import', source, '--mailbox', 'a', '--json'], { store });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.toString())).toMatchObject({ imported: 4, alreadyImported: 0 });
    // the delete took the mailbox's cursor with it (c205473): a first import, nothing to warn of
    expect(again.stderr).not.toContain('re-created');
  });

  it('a cursor of a mailbox deleted and created again that the delete did not take (an older mailstore left it) starts over with a warning', async () => {
    const { source, store } = await importedOnce();
    const opened = await Store.open(store);
    const cursor = await opened.getMeta(cursorKey(source, 'a'));
    await opened.deleteMailbox('a');
    await opened.setMeta(cursorKey(source, 'a'), cursor); // as a delete before session 37 left it
    await opened.close();
    const again = await run(['import', source, '--mailbox', 'a', '--json'], { store });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.toString())).toMatchObject({ imported: 4, alreadyImported: 0 });
    expect(again.stderr).toContain('re-created');
  });
});
