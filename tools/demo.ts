// `npm run demo`: mailstore end to end in a few seconds. A store in a fresh directory, the bundled
// sample mail imported (a Maildir++ tree and an mbox), every message read back and compared with
// its source byte for byte, a full scrub, and a summary. Nothing interactive: runs under CI=true
// with no stdin.
//
//   node dist/tools/demo.js [--dir DIR] [--fixtures DIR]
//     --dir       where to create the store (default: a new directory under the system temp dir)
//     --fixtures  where the sample mail is (default: the repo's fixtures/); generated mail when absent
//
// Exit codes: 0 everything verified; 1 a message did not come back identical or scrub found damage;
// otherwise the CLI's codes (src/cli/exit-codes.ts) for the error that stopped it.
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitCodeFor } from '../src/cli/exit-codes.js';
import { formatBytes } from '../src/cli/progress.js';
import { isMailstoreError } from '../src/errors.js';
import type { FileSystem } from '../src/fs/filesystem.js';
import { nodeFileSystem } from '../src/fs/node-fs.js';
import { listMaildirFolders, readMaildir } from '../src/formats/maildir.js';
import { readMbox } from '../src/formats/mbox.js';
import { hashBytes, hashHex } from '../src/hash/blake3.js';
import { importMail } from '../src/import/importer.js';
import { scrub } from '../src/scrub/scrub.js';
import { Store } from '../src/store/store.js';
import { generateMessages } from './gen-corpus.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = argument(process.argv.slice(2), '--fixtures') ?? join(repoRoot, 'fixtures');
const cliPath = join(repoRoot, 'dist/src/cli/main.js');

/** What the demo expects each mailbox to hold: BLAKE3 (hex) of every source message. */
type Expected = Map<string, string[]>;

interface Phase { name: string; seconds: number }

async function main(): Promise<number> {
  const fs = nodeFileSystem;
  const dir = storeDirectory(process.argv.slice(2));
  const phases: Phase[] = [];
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await work();
    } finally {
      phases.push({ name, seconds: (Date.now() - started) / 1000 });
    }
  };

  say(`mailstore demo: store at ${dir}`);
  const store = await timed('init', () => Store.init(dir));
  try {
    const expected = await timed('import', () => importSamples(store, fs));
    const verified = await timed('verify', () => verifyAll(store, expected));
    const report = await timed('scrub', () => scrub(store));
    const stats = await store.stats();
    say('');
    table([
      ['store', dir],
      ['mailboxes', String(stats.mailboxes)],
      ['messages', String(stats.messages)],
      ['bytes referenced', `${formatBytes(stats.bytesReferenced)} (${stats.bytesReferenced})`],
      ['bytes stored', `${formatBytes(stats.bytesStored)} in ${stats.blobs} unique blobs, ${stats.packs} pack(s)`],
      ['dedup ratio', `${stats.dedupRatio.toFixed(2)}x`],
      ['journal', `${formatBytes(stats.journalBytes)} in ${stats.journalSegments} segment(s)`],
      ['verified', `${verified.identical} of ${verified.total} messages byte-identical to their source`],
      ['scrub', report.summary.damage === 0 ? `clean (${report.summary.blobsVerified} blobs re-hashed)` : `${report.summary.damage} finding(s) of damage`],
      ...phases.map((p): [string, string] => [`time: ${p.name}`, `${p.seconds.toFixed(2)}s`]),
      ['time: total', `${phases.reduce((sum, p) => sum + p.seconds, 0).toFixed(2)}s`],
    ]);
    say('');
    printTryIt(dir, [...expected.keys()][0]);
    return verified.identical === verified.total && report.summary.damage === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

/** Commands a person can paste into a shell as they are: every path absolute and quoted. */
function printTryIt(dir: string, mailbox: string | undefined): void {
  say('look around (paste these; with `npm link` done, plain `mailstore` works instead of the alias):');
  say(`  export MAILSTORE_DIR=${shellQuote(dir)}`);
  say(`  alias mailstore=${shellQuote(`node ${cliPath}`)}`);
  say('  mailstore mailbox list');
  say('  mailstore stats');
  if (mailbox) {
    say(`  mailstore mailbox status ${shellQuote(mailbox)}`);
    say(`  mailstore messages ${shellQuote(mailbox)} 1:10`);
    say(`  mailstore search ${shellQuote(mailbox)} --larger 10000`);
    say(`  mailstore fetch ${shellQuote(mailbox)} 1 | head -20`);
  }
  say('  mailstore mailbox dump');
  say('  mailstore scrub');
}

/** POSIX single quotes: safe for any path. */
function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:=@-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function argument(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at >= 0 && argv[at + 1] ? resolve(argv[at + 1]) : undefined;
}

function storeDirectory(argv: string[]): string {
  return argument(argv, '--dir') ?? join(tmpdir(), `mailstore-demo-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
}

/** Imports the bundled fixtures, or generated mail when they are missing; returns what each mailbox should hold. */
async function importSamples(store: Store, fs: FileSystem): Promise<Expected> {
  const expected: Expected = new Map();
  const maildir = join(fixtures, 'sample');
  const mbox = join(fixtures, 'sample.mbox');
  let imported = false;
  if (await fs.statIfExists(maildir)) {
    const summary = await importMail(store, maildir, { mailbox: 'alice', format: 'maildir', owner: 'alice', onSkip: skipped });
    say(`imported ${summary.imported} messages from ${relative(repoRoot, maildir)}/ (Maildir++: ${summary.mailboxes.map((m) => m.mailbox).join(', ')})`);
    for (const folder of await listMaildirFolders(fs, maildir)) {
      const hashes: string[] = [];
      for await (const m of readMaildir(fs, folder.path)) hashes.push(hashHex(hashBytes(m.bytes)));
      expected.set(folder.folder ? `alice/${folder.folder}` : 'alice', hashes);
    }
    imported = true;
  }
  if (await fs.statIfExists(mbox)) {
    const summary = await importMail(store, mbox, { mailbox: 'archive', format: 'mbox', owner: 'alice', onSkip: skipped });
    say(`imported ${summary.imported} messages from ${relative(repoRoot, mbox)} (mbox, ${summary.deduplicated} already stored: deduplicated)`);
    const hashes: string[] = [];
    for await (const m of readMbox(fs, mbox)) hashes.push(hashHex(hashBytes(m.bytes)));
    expected.set('archive', hashes);
    imported = true;
  }
  if (!imported) {
    say(`the bundled fixtures (${fixtures}/sample and sample.mbox) are missing: generating 200 messages instead`);
    await importGenerated(store, expected);
  }
  return expected;
}

async function importGenerated(store: Store, expected: Expected): Promise<void> {
  const byFolder = new Map<string, { bytes: Buffer; flags: string[]; internalDate: Date }[]>();
  for (const m of generateMessages({ messages: 200, seed: 'mailstore-demo', folders: ['Sent'], attachmentBytesMax: 100 * 1024 })) {
    const name = m.folder ? `generated/${m.folder}` : 'generated';
    if (!byFolder.has(name)) byFolder.set(name, []);
    byFolder.get(name)!.push({ bytes: m.bytes, flags: m.flags, internalDate: m.internalDate });
  }
  for (const name of [...byFolder.keys()].sort()) {
    await store.createMailbox(name, { owner: 'alice' });
    const items = byFolder.get(name)!;
    await store.appendBatch(name, items);
    expected.set(name, items.map((item) => hashHex(hashBytes(item.bytes))));
    say(`appended ${items.length} generated messages to ${name}`);
  }
}

/** Fetches every message (each read re-checks its BLAKE3) and compares the mailbox with its source. */
async function verifyAll(store: Store, expected: Expected): Promise<{ total: number; identical: number }> {
  let total = 0;
  let identical = 0;
  for (const [mailbox, hashes] of expected) {
    const wanted = new Map<string, number>();
    for (const hash of hashes) wanted.set(hash, (wanted.get(hash) ?? 0) + 1);
    for await (const info of store.messages(mailbox)) {
      total++;
      const hash = hashHex(hashBytes(await store.fetch(mailbox, info.uid)));
      const left = wanted.get(hash) ?? 0;
      if (left > 0) {
        identical++;
        wanted.set(hash, left - 1);
      } else {
        say(`MISMATCH: ${mailbox} uid ${info.uid} is not a message of its source`);
      }
    }
    const missing = [...wanted.values()].reduce((sum, n) => sum + n, 0);
    if (missing > 0) {
      say(`MISSING: ${missing} source message(s) of ${mailbox} are not in the store`);
      total += missing;
    }
  }
  return { total, identical };
}

function skipped(path: string, error: { code: string; message: string }): void {
  say(`skipped ${path}: ${error.code}: ${error.message}`);
}

function table(rows: [string, string][]): void {
  const width = Math.max(...rows.map(([name]) => name.length));
  const line = `+${'-'.repeat(width + 2)}+${'-'.repeat(Math.max(...rows.map(([, v]) => v.length)) + 2)}+`;
  say(line);
  for (const [name, value] of rows) say(`| ${name.padEnd(width)} | ${value.padEnd(line.length - width - 7)} |`);
  say(line);
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

main().then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    process.stderr.write(`demo: ${isMailstoreError(error) ? `${error.code}: ${error.message}` : String((error as Error)?.stack ?? error)}\n`);
    process.exitCode = isMailstoreError(error) ? exitCodeFor(error) : 70;
  },
);
