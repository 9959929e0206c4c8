// The CLI as a script sees it: --json output, UID sets, ACLs, and an exit code per kind of trouble.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, json, ok, repoRoot, requireBuilt, run, tempDir } from './helpers.js';
// what commands do, in this process (in-process.ts, which checks a sample against the spawned
// command); init and the exit codes below are the spawned path's proof, as a script runs it
import * as here from './in-process.js';

beforeAll(requireBuilt);

async function freshStore(): Promise<string> {
  const store = join(tempDir(), 'store');
  await ok(['init'], { store });
  return store;
}

function message(i: number, marker = `m${i}`): Buffer {
  return Buffer.from(`From: a@example.org\r\nMessage-ID: <${marker}@example.org>\r\nSubject: ${i}\r\n\r\nbody ${marker}\r\n`);
}

describe('init', () => {
  it('creates a store, refuses a second init and a non-empty directory that is not a store', async () => {
    const dir = tempDir();
    const store = join(dir, 'store');
    const created = await json(['init'], { store });
    expect(created.path).toBe(store);
    expect(created.storeId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await run(['init'], { store })).code).toBe(5);
    const other = join(dir, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'precious.txt'), 'keep me');
    const refused = await run(['init'], { store: other });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/^mailstore: INVALID: .*not empty/);
    expect(readdirSync(other)).toEqual(['precious.txt']);
  });

  it('takes the store from --store over MAILSTORE_DIR', async () => {
    const dir = tempDir();
    await ok(['--store', join(dir, 'a'), 'init'], { store: join(dir, 'b') });
    expect(readdirSync(dir)).toEqual(['a']);
  });
});

describe('mailboxes, append, fetch', () => {
  it('answers --json for append, status, list and stats', async () => {
    const store = await freshStore();
    await here.ok(['mailbox', 'create', 'user/alice/INBOX', '--owner', 'alice'], { store });
    await here.ok(['mailbox', 'create', 'user/alice/Sent'], { store });
    const file = join(tempDir(), 'm1');
    writeFileSync(file, message(1));
    const first = await here.json(['append', 'user/alice/INBOX', file, '--flags', '\\Seen,$Label1', '--date', '2024-01-02T03:04:05Z'], { store });
    expect(first).toMatchObject({ uid: 1, size: message(1).length, deduplicated: false });
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    const second = await here.json(['append', 'user/alice/Sent', '-'], { store, input: message(1) });
    expect(second).toMatchObject({ uid: 1, deduplicated: true, hash: first.hash });
    expect((await here.ok(['append', 'user/alice/INBOX'], { store, input: message(2) })).trim()).toBe('2');

    expect(await here.json(['mailbox', 'status', 'user/alice/INBOX'], { store })).toMatchObject({ name: 'user/alice/INBOX', messages: 2, unseen: 1, uidNext: 3 });
    const list = await here.json<{ name: string }[]>(['mailbox', 'list'], { store });
    expect(list.map((m) => m.name)).toEqual(['user/alice/INBOX', 'user/alice/Sent']);
    expect((await here.json<{ name: string }[]>(['mailbox', 'list', 'user/alice/%'], { store })).length).toBe(2);
    const stats = await here.json(['stats'], { store });
    expect(stats).toMatchObject({ mailboxes: 2, messages: 3, blobs: 2 });
    expect(stats.bytesReferenced).toBe(2 * message(1).length + message(2).length);
    expect(stats.dedupRatio).toBeGreaterThan(1);

    const fetched = await here.run(['fetch', 'user/alice/INBOX', '1'], { store });
    expect(fetched.code).toBe(0);
    expect(fetched.stdout.equals(message(1))).toBe(true);
    const info = await here.json(['fetch', 'user/alice/INBOX', '1', '--info'], { store });
    expect(info).toMatchObject({ uid: 1, flags: ['$Label1', '\\Seen'], internalDate: '2024-01-02T03:04:05.000Z' });
  });

  it('renames and deletes, refusing to delete a non-empty mailbox without --force', async () => {
    const store = await freshStore();
    await here.ok(['mailbox', 'create', 'a'], { store });
    await here.ok(['mailbox', 'create', 'a/b'], { store });
    await here.ok(['append', 'a/b'], { store, input: message(1) });
    expect(await here.json(['mailbox', 'rename', 'a', 'z'], { store })).toMatchObject({ renamed: 2 });
    const refused = await here.run(['mailbox', 'delete', 'z/b'], { store });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^mailstore: REFUSED: .*--force/);
    expect(await here.json(['mailbox', 'delete', 'z/b', '--force'], { store })).toMatchObject({ messages: 1 });
    expect((await here.json<{ name: string }[]>(['mailbox', 'list'], { store })).map((m) => m.name)).toEqual(['z']);
  });
});

describe('the stored per-message metadata (issue 18 #10)', () => {
  it('messages --json and fetch --info show the From_ sender, the date zone and recent only when stored', async () => {
    const store = await freshStore();
    const dir = tempDir();
    writeFileSync(join(dir, 'in.mbox'), 'From alice@example.org Sat Nov 28 10:45:25 2026 +0100\nSubject: a\n\na\n');
    await here.ok(['import', join(dir, 'in.mbox'), '--mailbox', 'box'], { store });
    await here.ok(['append', 'box'], { store, input: message(2) });
    const list = await json<Record<string, unknown>[]>(['messages', 'box'], { store });
    expect(list[0]).toMatchObject({ uid: 1, envelopeFrom: 'alice@example.org', dateZoneMinutes: 60, internalDate: '2026-11-28T09:45:25.000Z' });
    expect(Object.keys(list[1]!).sort()).toEqual(['flags', 'hash', 'internalDate', 'modseq', 'size', 'uid']);
    expect(await here.json(['fetch', 'box', '1', '--info'], { store })).toMatchObject({ envelopeFrom: 'alice@example.org', dateZoneMinutes: 60 });
    const text = await here.ok(['fetch', 'box', '1:2', '--info'], { store });
    expect(text).toMatch(/^envelope-from alice@example\.org\ndate-zone-minutes 60\n/m);
    expect(text.match(/envelope-from/g)?.length).toBe(1);
  });
});

describe('flags and expunge take IMAP UID sets', () => {
  it('applies 1:3,5 and 4:* to the messages that exist', async () => {
    const store = await freshStore();
    await here.ok(['mailbox', 'create', 'INBOX'], { store });
    for (let i = 1; i <= 6; i++) await here.ok(['append', 'INBOX'], { store, input: message(i) });
    expect(await here.json(['flags', 'INBOX', '1:3,5', '--add', '\\Seen \\Flagged'], { store })).toMatchObject({ updated: [1, 2, 3, 5] });
    expect(await here.json(['flags', 'INBOX', '2', '--remove', '\\Flagged'], { store })).toMatchObject({ updated: [2] });
    expect(await here.json(['expunge', 'INBOX', '6'], { store })).toMatchObject({ expunged: [6] });
    // `*` is the largest uid in use (5 now), so 7:* is 5:7.
    expect(await here.json(['flags', 'INBOX', '7:*', '--set', 'done'], { store })).toMatchObject({ updated: [5] });
    expect((await here.json(['fetch', 'INBOX', '5', '--info'], { store })).flags).toEqual(['done']);
    expect((await here.json(['fetch', 'INBOX', '2', '--info'], { store })).flags).toEqual(['\\Seen']);
    expect(await here.json(['expunge', 'INBOX', '1:*'], { store })).toMatchObject({ expunged: [1, 2, 3, 4, 5] });
    expect(await here.json(['mailbox', 'status', 'INBOX'], { store })).toMatchObject({ messages: 0, uidNext: 7 });
  });
});

describe('acl', () => {
  it('sets, gets, lists by user from the reverse map, and removes with ""', async () => {
    const store = await freshStore();
    await here.ok(['mailbox', 'create', 'shared/team'], { store });
    await here.ok(['mailbox', 'create', 'shared/private'], { store });
    await here.ok(['acl', 'set', 'shared/team', 'bob', 'lrs'], { store });
    await here.ok(['acl', 'set', 'shared/private', 'bob', 'r'], { store }); // no l: not listed for bob
    expect(await here.json(['acl', 'get', 'shared/team'], { store })).toEqual({ mailbox: 'shared/team', acl: { bob: 'lrs' } });
    expect((await here.ok(['acl', 'get', 'shared/team', 'bob'], { store })).trim()).toBe('lrs');
    expect(await here.json(['acl', 'list', 'bob'], { store })).toEqual([expect.objectContaining({ name: 'shared/team', rights: 'lrs' })]);
    expect((await here.json<{ name: string }[]>(['mailbox', 'list', '--user', 'bob'], { store })).map((m) => m.name)).toEqual(['shared/team']);
    await here.ok(['acl', 'set', 'shared/team', 'bob', ''], { store });
    expect(await here.json(['acl', 'list', 'bob'], { store })).toEqual([]);
  });

  it('names a user typed in another Unicode spelling (NFD josé) by the entry the store keeps (NFC)', async () => {
    const store = await freshStore();
    await here.ok(['mailbox', 'create', 'shared/team'], { store });
    const nfd = 'jose\u0301';
    expect((await here.ok(['acl', 'set', 'shared/team', nfd, 'lr'], { store })).trim()).toBe(`${nfd} has "lr" on shared/team`);
    expect((await here.ok(['acl', 'get', 'shared/team', nfd], { store })).trim()).toBe('lr');
    expect(await here.json(['acl', 'get', 'shared/team', nfd], { store })).toEqual({ mailbox: 'shared/team', user: 'jos\u00e9', rights: 'lr' });
    expect(await here.json(['acl', 'get', 'shared/team'], { store })).toEqual({ mailbox: 'shared/team', acl: { 'jos\u00e9': 'lr' } });
  });
});

describe('exit codes', () => {
  it('4 for a missing mailbox or uid, with one error line and nothing on stdout', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'INBOX'], { store });
    for (const args of [['fetch', 'INBOX', '99'], ['fetch', 'nope', '1'], ['mailbox', 'status', 'nope'], ['acl', 'get', 'nope']]) {
      const result = await run(args, { store });
      expect(result.code, args.join(' ')).toBe(4);
      expect(result.stdout.length).toBe(0);
      expect(result.stderr).toMatch(/^mailstore: NOT_FOUND: [^\n]+\n$/);
    }
    expect((await run(['stats'], { store: join(tempDir(), 'missing') })).code).toBe(4);
  });

  it('5 for invalid input: UID sets, names, flags, dates, options, existing mailboxes', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'INBOX'], { store });
    const cases = [
      ['flags', 'INBOX', '1:x', '--add', '\\Seen'],
      ['flags', 'INBOX', '1', '--add', '\\Bogus'],
      ['flags', 'INBOX', '1'],
      ['expunge', 'INBOX', '0'],
      ['fetch', 'INBOX', 'abc'],
      ['mailbox', 'create', 'a//b'],
      ['mailbox', 'create', 'INBOX'],
      ['append', 'INBOX', '-', '--date', 'not a date'],
      ['import', '/nonexistent'],
      ['stats', '--no-such-option'],
      ['no-such-command'],
    ];
    for (const args of cases) {
      const result = await run(args, { store, input: 'x' });
      expect(result.code, args.join(' ') + ': ' + result.stderr).toBe(5);
      expect(result.stderr).toMatch(/^mailstore: (INVALID|EXISTS): [^\n]+\n$/);
    }
  });

  it('2 while another process holds the store', async () => {
    const store = await freshStore();
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      const { Store } = await import(${JSON.stringify(join(repoRoot, 'dist/src/index.js'))});
      const store = await Store.open(process.argv[1]);
      process.stdout.write('ready\\n');
      process.stdin.on('data', () => {});
      process.stdin.on('end', async () => { await store.close(); process.exit(0); });
    `, store], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((ready, failed) => {
        holder.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('ready')) ready(); });
        holder.on('exit', (code) => failed(new Error(`holder exited ${code}`)));
      });
      const result = await run(['--no-wait', 'mailbox', 'list'], { store });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^mailstore: LOCKED: .*in use by process \d+/);
    } finally {
      holder.stdin!.end();
      await new Promise((done) => holder.on('close', done));
    }
    expect(await json(['mailbox', 'list'], { store })).toEqual([]);
  });

  it('6 for a corrupt message: nothing of the body on stdout', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'INBOX'], { store });
    const marker = 'unique-marker-8c1f0e';
    const body = Buffer.from(`Subject: x\r\n\r\n${marker} ${'y'.repeat(400)}\r\n`);
    await ok(['append', 'INBOX'], { store, input: message(1) });
    expect((await ok(['append', 'INBOX'], { store, input: body })).trim()).toBe('2');
    // a small delivery is inside its journal record (when inline bodies are on), else in a pack
    const files = ['packs', 'journal'].flatMap((dir) => readdirSync(join(store, dir)).map((name) => join(store, dir, name)));
    const pack = files.find((path) => /\.(pack|jnl)$/.test(path) && readFileSync(path).includes(marker));
    expect(pack, 'the message bytes are in a pack or a journal record').toBeDefined();
    const bytes = readFileSync(pack!);
    const at = bytes.indexOf(marker) + marker.length + 10;
    bytes.write('ZZZZ', at, 'latin1');
    writeFileSync(pack!, bytes);
    const result = await run(['fetch', 'INBOX', '2'], { store });
    expect(result.code).toBe(6);
    expect(result.stdout.length).toBe(0);
    // damage in a journal record is seen at open: the open says it came up degraded, then the fetch's own error
    if (pack!.endsWith('.jnl')) expect(result.stderr).toMatch(/^mailstore: the store opened degraded: journal .*acknowledged records 3\.\.3 are damaged/);
    expect(result.stderr).toMatch(/^mailstore: CORRUPT: /m);
    // The other message is untouched and still served.
    expect((await run(['fetch', 'INBOX', '1'], { store })).stdout.equals(message(1))).toBe(true);
    // Export leaves the corrupt one out, says so, and exits 6.
    const out = join(tempDir(), 'out.mbox');
    const exported = await run(['export', 'INBOX', '--format', 'mbox', '--out', out], { store });
    expect(exported.code).toBe(6);
    expect(readFileSync(out).includes(marker)).toBe(false);
  });

  it('documents the exit codes in --help', async () => {
    const help = await ok(['--help']);
    for (const line of ['0    ok', '2    could not run', '3    refused', '4    not found', '5    invalid input', '6    corruption', '70   internal error']) expect(help).toContain(line);
    // every command README's table gives exit 1 (the help omitted backup repair, rebuild-from-bucket and export)
    const one = help.slice(help.indexOf('  1    '), help.indexOf('  2    ')).replace(/\s+/g, ' ');
    for (const command of ['scrub', 'backup check', 'reconstruct --check', 'replica check', 'compact', 'import', 'backup repair', 'rebuild-from-bucket', 'export']) expect(one).toContain(command);
    expect(await ok(['scrub', '--help'])).toContain('70 internal error');
    expect(await ok(['import', '--help'])).toContain('Resumable');
    expect(bin).toContain('dist');
  });

  it('0 for the help command, which --help lists as "help [command]"; 5 only when no command is given', async () => {
    for (const args of [['help'], ['help', 'append'], ['mailbox', 'help', 'create']]) {
      const result = await run(args);
      expect(result.code, `mailstore ${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stdout.toString('utf8')).toMatch(/^Usage: mailstore /);
    }
    for (const args of [[], ['mailbox']]) expect((await run(args)).code).toBe(5); // a script that forgot its command
  });

  it("a mistyped option or command is one line with commander's suggestion, no '\\n' shown (the line's sanitiser showed commander's line break as one)", async () => {
    for (const [args, line] of [[['stats', '--jsn'], "unknown option '--jsn' (Did you mean --json?)"], [['statz'], "unknown command 'statz' (Did you mean stats?)"]] as const) {
      const result = await run([...args]);
      expect(result.code).toBe(5);
      expect(result.stderr).toBe(`mailstore: INVALID: ${line} (see mailstore --help)\n`);
    }
  });

  it('help of a word that is no command says so (the whole help and exit 5 alone before; --json said "no command given")', async () => {
    const result = await run(['help', 'delet', '--json']);
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/^mailstore: INVALID: unknown command 'delet' \(see mailstore --help\)$/m);
    expect(JSON.parse(result.stdout.toString('utf8'))).toEqual({ error: { code: 'INVALID', message: "unknown command 'delet' (see mailstore --help)", exitCode: 5 } });
  });
});
