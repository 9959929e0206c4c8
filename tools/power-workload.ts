// The power-cut workload: one child process (the leader of its own process group) that does every
// kind of work the store has at once, so that a power cut (test/sim/power-cut.ts: freeze the group,
// copy the disk image) lands in the middle of all of them. It prints one line per attempt and one
// per acknowledgement (pipes are synchronous on Linux, so a printed acknowledgement came after the
// fdatasync it reports); tools/power-ledger.ts turns the lines into what must be on the disk.
//
//   node dist/tools/power-workload.js child ROOT CYCLE SEED SOURCE
//
// ROOT/lib is a store opened here by 4 concurrent library writers (group commits in flight):
// appends, batch appends, flags, expunges, moves, mailbox create/rename/delete and ACL changes.
// ROOT/cli is a second store (a store has one writer process at a time) written meanwhile by
// `mailstore` CLI processes spawned one after another from this process, so they sit in the frozen
// group too: an import of SOURCE (a directory of .eml files) into Imp-CYCLE with its resume cursor,
// then appends, flags, expunges, mailbox create/rename/delete and ACL changes.
//
// Line grammar (S is the store: lib or cli; lower-case = attempted, upper-case = acknowledged):
//   t S MBOX SHA                  A S MBOX UID SHA          append
//   b S MBOX SHA,SHA,...          B S MBOX UID,UID,... SHA,SHA,...   batch append (all or none)
//   f S MBOX UID FLAG SHA         F S MBOX UID FLAG SHA     flag added
//   e S MBOX UID SHA              X S MBOX UID SHA          expunge
//   m S FROM UID TO SHA           M S FROM UID TO NEWUID SHA   move
//   c S NAME  C S NAME   r S OLD NEW  R S OLD NEW   d S NAME  D S NAME    mailboxes
//   l S MBOX USER RIGHTS          L S MBOX USER RIGHTS      ACL entry set
//   i S MBOX                      I S MBOX IMPORTED         import (IMPORTED: durable so far)
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store } from '../src/store/store.js';

export const MESSAGE_MAILBOXES = ['INBOX', 'Archive'];
export const ACL_USERS = ['ann', 'bob', 'cy'];
/** Small import batches, so that a cut falls between two of them often. */
export const IMPORT_BATCH_MESSAGES = 3;
const LIBRARY_WRITERS = 3;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 32);

/** mulberry32: the same seed gives the same workload. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const out = (line: string) => process.stdout.write(line + '\n');

/** A message this workload may flag, expunge or move next (never two operations on one at once). */
interface Mine { mailbox: string; uid: number; sha: string }

function body(random: () => number, label: string): Buffer {
  const size = random() < 0.01 ? 300_000 + Math.floor(random() * 700_000) : 100 + Math.floor(random() * 20_000);
  return Buffer.concat([Buffer.from(`From: power@example.org\r\nSubject: ${label}\r\n\r\n`), randomBytes(size)]);
}

async function ensureMailboxes(store: Store): Promise<void> {
  const have = new Set((await store.listMailboxes()).map((b) => b.name));
  for (const name of MESSAGE_MAILBOXES) if (!have.has(name)) await store.createMailbox(name);
}

/** Messages of the earlier cycles are targets too: flags, expunges and moves hit old data. */
async function loadMine(store: Store): Promise<Mine[]> {
  const mine: Mine[] = [];
  for (const mailbox of MESSAGE_MAILBOXES) {
    for await (const m of store.readMessages(mailbox)) mine.push({ mailbox, uid: m.info.uid, sha: sha(m.body) });
  }
  return mine;
}

// ---- library writers --------------------------------------------------------------------------

async function messageWriter(store: Store, mine: Mine[], random: () => number, label: string): Promise<never> {
  for (let n = 0; ; n++) {
    const roll = random();
    const pick = () => mine.splice(Math.floor(random() * mine.length), 1)[0];
    if (roll < 0.5 || mine.length < 4) {
      const mailbox = MESSAGE_MAILBOXES[Math.floor(random() * 2)];
      const bytes = body(random, `${label} n${n}`);
      out(`t lib ${mailbox} ${sha(bytes)}`);
      const r = await store.append(mailbox, bytes);
      out(`A lib ${mailbox} ${r.uid} ${sha(bytes)}`);
      mine.push({ mailbox, uid: r.uid, sha: sha(bytes) });
    } else if (roll < 0.6) {
      const mailbox = MESSAGE_MAILBOXES[Math.floor(random() * 2)];
      const items = [0, 1, 2].map((i) => ({ bytes: body(random, `${label} n${n} batch ${i}`) }));
      const shas = items.map((i) => sha(i.bytes));
      out(`b lib ${mailbox} ${shas.join(',')}`);
      const r = await store.appendBatch(mailbox, items);
      out(`B lib ${mailbox} ${r.map((x) => x.uid).join(',')} ${shas.join(',')}`);
      r.forEach((x, i) => mine.push({ mailbox, uid: x.uid, sha: shas[i] }));
    } else if (roll < 0.78) {
      const target = pick();
      const flag = `k${label.replace(/\W/g, '')}n${n}`;
      out(`f lib ${target.mailbox} ${target.uid} ${flag} ${target.sha}`);
      await store.setFlags(target.mailbox, target.uid, { add: [flag] });
      out(`F lib ${target.mailbox} ${target.uid} ${flag} ${target.sha}`);
      mine.push(target);
    } else if (roll < 0.88) {
      const target = pick();
      out(`e lib ${target.mailbox} ${target.uid} ${target.sha}`);
      await store.expunge(target.mailbox, target.uid);
      out(`X lib ${target.mailbox} ${target.uid} ${target.sha}`);
    } else {
      const target = pick();
      const to = target.mailbox === 'INBOX' ? 'Archive' : 'INBOX';
      out(`m lib ${target.mailbox} ${target.uid} ${to} ${target.sha}`);
      const r = await store.move(target.mailbox, target.uid, to);
      out(`M lib ${target.mailbox} ${target.uid} ${to} ${r.mapping[0][1]} ${target.sha}`);
      mine.push({ ...target, mailbox: to, uid: r.mapping[0][1] });
    }
  }
}

/** Mailbox create / rename / delete and ACL changes, beside the message writers. */
async function namespaceWriter(store: Store, random: () => number, cycle: number): Promise<never> {
  for (let n = 0; ; n++) {
    const name = `Box-${cycle}-${n}`;
    out(`c lib ${name}`);
    await store.createMailbox(name);
    out(`C lib ${name}`);
    await aclChange(store, random, [...MESSAGE_MAILBOXES, name][Math.floor(random() * 3)]);
    if (random() < 0.7) {
      out(`r lib ${name} ${name}-r`);
      await store.renameMailbox(name, `${name}-r`);
      out(`R lib ${name} ${name}-r`);
      if (random() < 0.6) {
        out(`d lib ${name}-r`);
        await store.deleteMailbox(`${name}-r`);
        out(`D lib ${name}-r`);
      }
    }
  }
}

async function aclChange(store: Store, random: () => number, mailbox: string): Promise<void> {
  const user = ACL_USERS[Math.floor(random() * ACL_USERS.length)];
  const rights = ['lr', 'lrs', 'lrswi', 'lrswipkxtea'][Math.floor(random() * 4)];
  out(`l lib ${mailbox} ${user} ${rights}`);
  await store.setAcl(mailbox, user, rights);
  out(`L lib ${mailbox} ${user} ${rights}`);
}

// ---- CLI processes ----------------------------------------------------------------------------

interface CliResult { code: number | null; stdout: string; stderr: string }

/** Runs `mailstore --store DIR ...` (in this process group); `onStderrLine` sees stderr as it comes. */
function cli(dir: string, args: string[], input?: Buffer, onStderrLine?: (line: string) => void): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, '--store', dir, ...args], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
    let partial = '';
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onStderrLine?.(line);
    });
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input) proc.stdin!.end(input);
  });
}

function ok(r: CliResult, what: string): Record<string, unknown> {
  if (r.code !== 0) throw new Error(`mailstore ${what} exited ${r.code}: ${r.stderr.slice(0, 2000)}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

const COMMITTED = /committed \d+ messages \(\d+ bytes\) to (\S+); (\d+) imported so far/;

async function cliImport(dir: string, source: string, mailbox: string): Promise<void> {
  out(`i cli ${mailbox}`);
  const r = await cli(dir, ['import', source, '--mailbox', mailbox, '--batch-messages', String(IMPORT_BATCH_MESSAGES), '--verbose', '--json'], undefined, (line) => {
    const m = COMMITTED.exec(line);
    if (m && m[1] === mailbox) out(`I cli ${mailbox} ${m[2]}`);
  });
  const summary = ok(r, 'import');
  out(`I cli ${mailbox} ${summary.imported as number}`);
}

/** One CLI process after another until the power goes. */
async function cliDriver(dir: string, source: string, random: () => number, cycle: number, mine: Mine[]): Promise<never> {
  if (cycle % 2 === 0) await cliImport(dir, source, `Imp-${cycle}`); // every other run, so the other CLI commands get cut too
  for (let n = 0; ; n++) {
    const roll = random();
    const pick = () => mine.splice(Math.floor(random() * mine.length), 1)[0];
    if (roll < 0.35 || mine.length < 3) {
      const bytes = body(random, `cli c${cycle} n${n}`);
      out(`t cli INBOX ${sha(bytes)}`);
      const r = ok(await cli(dir, ['append', 'INBOX', '-', '--json'], bytes), 'append');
      out(`A cli INBOX ${r.uid as number} ${sha(bytes)}`);
      mine.push({ mailbox: 'INBOX', uid: r.uid as number, sha: sha(bytes) });
    } else if (roll < 0.55) {
      const target = pick();
      const flag = `kc${cycle}n${n}`;
      out(`f cli INBOX ${target.uid} ${flag} ${target.sha}`);
      ok(await cli(dir, ['flags', 'INBOX', String(target.uid), '--add', flag, '--json']), 'flags');
      out(`F cli INBOX ${target.uid} ${flag} ${target.sha}`);
      mine.push(target);
    } else if (roll < 0.7) {
      const target = pick();
      out(`e cli INBOX ${target.uid} ${target.sha}`);
      ok(await cli(dir, ['expunge', 'INBOX', String(target.uid), '--json']), 'expunge');
      out(`X cli INBOX ${target.uid} ${target.sha}`);
    } else if (roll < 0.85) {
      const name = `Box-${cycle}-${n}`;
      out(`c cli ${name}`);
      ok(await cli(dir, ['mailbox', 'create', name, '--json']), 'mailbox create');
      out(`C cli ${name}`);
      out(`r cli ${name} ${name}-r`);
      ok(await cli(dir, ['mailbox', 'rename', name, `${name}-r`, '--json']), 'mailbox rename');
      out(`R cli ${name} ${name}-r`);
      out(`d cli ${name}-r`);
      ok(await cli(dir, ['mailbox', 'delete', `${name}-r`, '--json']), 'mailbox delete');
      out(`D cli ${name}-r`);
    } else {
      const user = ACL_USERS[Math.floor(random() * ACL_USERS.length)];
      const rights = ['lr', 'lrs', 'lrswi'][Math.floor(random() * 3)];
      out(`l cli INBOX ${user} ${rights}`);
      ok(await cli(dir, ['acl', 'set', 'INBOX', user, rights, '--json']), 'acl set');
      out(`L cli INBOX ${user} ${rights}`);
    }
  }
}

// ---- the child --------------------------------------------------------------------------------

async function child(root: string, cycle: number, seed: number, source: string): Promise<void> {
  const random = rng(seed);
  const options = { packBytesMax: 2 * 1024 * 1024, journalSegmentBytesMax: 128 * 1024 };
  const cliDir = join(root, 'cli');
  if (!existsSync(cliDir)) { const s = await Store.open(cliDir, { create: true, ...options }); await ensureMailboxes(s); await s.close(); }
  const cliStore = await Store.open(cliDir);
  const cliMine = (await loadMine(cliStore)).filter((m) => m.mailbox === 'INBOX');
  await cliStore.close();
  // every other cycle the library store delivers with inline bodies (docs/FORMAT.md, "Inline
  // bodies": one file, one fdatasync), so the cuts land in both commit shapes
  const store = await Store.open(join(root, 'lib'), { create: true, ...options, inlineBodyBytesMax: cycle % 2 ? 64 * 1024 : 0 });
  await ensureMailboxes(store);
  const mine = await loadMine(store);
  out('READY');
  await Promise.all([
    ...Array.from({ length: LIBRARY_WRITERS }, (_, w) => messageWriter(store, mine, rng(seed + w + 1), `c${cycle} w${w}`)),
    namespaceWriter(store, rng(seed + 99), cycle),
    cliDriver(cliDir, source, random, cycle, cliMine),
  ]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [mode, root, cycle, seed, source] = process.argv.slice(2);
  if (mode !== 'child') { console.error('usage: power-workload.js child ROOT CYCLE SEED SOURCE'); process.exit(2); }
  child(root, Number(cycle), Number(seed), source).catch((error) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
