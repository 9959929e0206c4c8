// The day-2 administration commands as an admin and an MTA run them (issue 18): messages, search,
// sizes, usage and quotas, retention, users, copy/move, the mailbox list as text, sysexits.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { Store } from '../../src/store/store.js';
import { finish, repoRoot, requireBuilt, run as spawned, start, tempDir } from './helpers.js';
// command lines in this process, a sample checked against the spawned command (in-process.ts); the
// spawned path itself (exit status, sysexits, stdout drained) is proven in commands.test.ts and
// environment.test.ts, and here by the serve and store-held cases
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

async function freshStore(): Promise<string> {
  const store = join(tempDir(), 'store');
  await ok(['init'], { store });
  return store;
}

const message = (i: number, size = 0) => Buffer.from(`From: a${i}@example.org\r\nSubject: note ${i}\r\n\r\n${'x'.repeat(size)}body ${i}\r\n`);

/**
 * The mailbox and its messages through the library, in this process: they are what the commands
 * under test read, not what is tested (`mailbox create` and `append` as commands: commands.test.ts),
 * and a command process each cost ~0.2 s of CPU.
 */
async function withMessages(store: string, mailbox: string, count: number): Promise<void> {
  const opened = await Store.open(store);
  try {
    await opened.createMailbox(mailbox, { owner: mailbox.split('/')[1] ?? 'admin' });
    for (let i = 1; i <= count; i++) await opened.append(mailbox, message(i, i * 100), { internalDate: new Date(`2024-01-0${i}T00:00:00Z`) });
  } finally {
    await opened.close();
  }
}

describe('messages, fetch --info, search, status bytes', () => {
  it('lists metadata over a UID set and finds messages by IMAP SEARCH keys', async () => {
    const store = await freshStore();
    await withMessages(store, 'user/alice/INBOX', 4);
    const all = await json<{ uid: number; size: number; hash: string; modseq: number }[]>(['messages', 'user/alice/INBOX'], { store });
    expect(all.map((m) => m.uid)).toEqual([1, 2, 3, 4]);
    expect(all[0].size).toBe(message(1, 100).length);
    expect(all[0].hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await json<unknown[]>(['messages', 'user/alice/INBOX', '2:3'], { store })).length).toBe(2);
    expect((await ok(['messages', 'user/alice/INBOX', '4'], { store })).split('\t')[0]).toBe('4');
    expect((await json<{ uid: number }[]>(['fetch', 'user/alice/INBOX', '1,3:*', '--info'], { store })).map((m) => m.uid)).toEqual([1, 3, 4]);
    const uids = async (...keys: string[]) => (await json<{ uid: number }[]>(['search', 'user/alice/INBOX', ...keys], { store })).map((m) => m.uid);
    expect(await uids('--larger', String(message(2, 200).length))).toEqual([3, 4]);
    expect(await uids('--smaller', String(message(2, 200).length))).toEqual([1]);
    expect(await uids('--before', '2024-01-03')).toEqual([1, 2]);
    expect(await uids('--since', '2024-01-03', '--subject', 'NOTE 4')).toEqual([4]);
    expect(await uids('--from', 'a2@')).toEqual([2]);
    expect(await uids('--header', 'subject=note 1')).toEqual([1]);
    await ok(['flags', 'user/alice/INBOX', '1,3', '--add', '\\Seen'], { store });
    expect(await uids('--flag', '\\Seen')).toEqual([1, 3]);
    expect(await uids('--no-flag', '\\Seen', '--no-flag', '$Junk')).toEqual([2, 4]);
    const status = await json(['mailbox', 'status', 'user/alice/INBOX'], { store });
    expect(status.bytes).toBe(all.reduce((sum, m) => sum + m.size, 0));
    expect(await ok(['mailbox', 'status', 'user/alice/INBOX'], { store })).toContain(`${status.bytes} bytes`);
    expect((await run(['search', 'user/alice/INBOX', '--larger', 'lots'], { store })).code).toBe(5);
    expect((await run(['search', 'user/alice/INBOX', '--header', 'Subject: note 1'], { store })).code).toBe(5); // NAME=VALUE was meant
    expect((await run(['messages', 'nope'], { store })).code).toBe(4);
  });

  it('refuses fetch --json without --info, which printed the message bytes to a script parsing JSON', async () => {
    const store = await freshStore();
    await withMessages(store, 'user/alice/INBOX', 1);
    const refused = await run(['fetch', 'user/alice/INBOX', '1', '--json'], { store });
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(/^mailstore: INVALID: .*--info/);
    expect(JSON.parse(refused.stdout.toString('utf8')).error.code).toBe('INVALID'); // no message bytes: the JSON error only
    expect((await json(['fetch', 'user/alice/INBOX', '1', '--info'], { store })).uid).toBe(1);
    expect(await ok(['fetch', 'user/alice/INBOX', '1'], { store })).toBe(message(1, 100).toString()); // the bytes, unchanged
  });
});

describe('a value an option cannot take', () => {
  it('is refused naming the option and what it takes, before anything is changed', async () => {
    const store = await freshStore();
    await withMessages(store, 'user/alice/INBOX', 1);
    const cases: Array<[string[], RegExp]> = [
      [['search', 'user/alice/INBOX', '--larger', '1k'], /--larger/],
      [['search', 'user/alice/INBOX', '--smaller', 'x'], /--smaller/],
      [['search', 'user/alice/INBOX', '--before', 'yesterday'], /--before.*30d/], // the age form --before takes too
      [['search', 'user/alice/INBOX', '--since', 'last week'], /--since.*30d/],
      [['expunge', 'user/alice/INBOX', '--before', '1 month'], /--before.*30d/],
      [['append', 'user/alice/INBOX', '-', '--date', 'now'], /--date/],
      [['quota', 'set', 'user/alice', '--messages', 'lots'], /--messages/],
      [['quota', 'set', 'user/alice', '--storage', '1.5G'], /--storage/],
      [['scrub', '--time-budget', 'an hour'], /--time-budget/],
      [['compact', '--grace', 'soon'], /--grace/],
      [['flags', 'user/alice/INBOX', '1', '--add', '\\Seen', '--unchanged-since', 'abc'], /--unchanged-since/], // was 'invalid unchangedSince NaN'
      [['flags', 'user/alice/INBOX', '1', '--add', '\\Seen', '--unchanged-since', ''], /--unchanged-since/], // was read as 0: exit 0, "modified"
    ];
    for (const [args, named] of cases) {
      const result = await run(args, { store, input: message(9) });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(5);
      expect(result.stderr, args.join(' ')).toMatch(/^mailstore: INVALID: /);
      expect(result.stderr, args.join(' ')).toMatch(named);
    }
    const messages = await json<Array<{ flags: string[] }>>(['messages', 'user/alice/INBOX'], { store });
    expect(messages.map((m) => m.flags)).toEqual([[]]); // nothing appended, expunged or flagged
    expect((await json(['quota', 'list'], { store }))).toEqual([]);
  });
});

describe('consumers', () => {
  it('refuses --remove with --move, which moved one consumer and silently kept the one to remove', async () => {
    const store = await freshStore();
    await withMessages(store, 'in', 2);
    await ok(['snapshot'], { store }); // registers the consumer 'snapshot'
    const { Store } = await import('../../src/store/store.js');
    const opened = await Store.open(store);
    await opened.changes.register('events-webhook', 1);
    await opened.close();
    const before = await json<{ consumers: Array<{ name: string; seq: number }> }>(['consumers'], { store });
    const both = await run(['consumers', '--remove', 'snapshot', '--move', 'events-webhook', '--to', '2'], { store });
    expect(both.code, both.stderr).toBe(5);
    expect(both.stderr).toMatch(/^mailstore: INVALID: .*--remove.*--move/);
    expect((await json(['consumers'], { store })).consumers).toEqual(before.consumers); // neither changed
  });
});

describe('serve --sync-replicas', () => {
  it('refuses a value that is no whole number instead of running with none ("" read as 0: every write acknowledged without a replica)', async () => {
    const store = await freshStore();
    for (const value of ['', ' ', 'one', '1.5', '-1']) {
      const child = start(['serve', '--sync-replicas', value, '--no-wait'], { store });
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000); // a daemon that started: the bug
      const result = await finish(child);
      clearTimeout(killer);
      expect(result.code, `--sync-replicas ${JSON.stringify(value)}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toMatch(/INVALID: .*--sync-replicas/);
    }
  });
});

describe('usage and quotas', () => {
  it('shows usage per user, enforces quotas with OVER_QUOTA (exit 2, 75 with --sysexits) and stores nothing', async () => {
    const store = await freshStore();
    await withMessages(store, 'user/alice/INBOX', 2);
    const usage = await json(['usage', '--user', 'alice'], { store });
    expect(usage).toMatchObject({ user: 'alice', messages: 2, mailboxes: 1 });
    expect(usage.uniqueBytes).toBe(usage.bytes);
    expect(await json(['quota', 'set', 'user/alice', '--messages', '2', '--storage', '1M'], { store })).toMatchObject({ root: 'user/alice', messages: 2, storage: 1024 * 1024, usedMessages: 2 });
    const refused = await run(['append', 'user/alice/INBOX', '-'], { store, input: message(9) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^mailstore: OVER_QUOTA: .*message quota of 2/);
    expect((await run(['append', 'user/alice/INBOX', '-', '--sysexits'], { store, input: message(9) })).code).toBe(75);
    expect((await json(['mailbox', 'status', 'user/alice/INBOX'], { store })).messages).toBe(2);
    expect((await json(['usage', '--user', 'alice'], { store })).quota).toEqual({ messages: 2, storage: 1024 * 1024 });
    await ok(['quota', 'set', 'user/alice', '--messages', 'none'], { store });
    expect(await json(['quota', 'get', 'user/alice'], { store })).toEqual({ root: 'user/alice', storage: 1024 * 1024, usedBytes: usage.bytes, usedMessages: 2 });
    await ok(['append', 'user/alice/INBOX', '-'], { store, input: message(9) });
    expect((await json<unknown[]>(['quota', 'list'], { store })).length).toBe(1);
    // a mailbox with no quota of its own: the root above it that limits it (IMAP GETQUOTAROOT), not "unlimited"
    expect(await json(['quota', 'get', 'user/alice/INBOX'], { store })).toEqual({ root: 'user/alice', mailbox: 'user/alice/INBOX', storage: 1024 * 1024, usedBytes: expect.any(Number), usedMessages: 3 });
    expect((await ok(['quota', 'get', 'user/alice/INBOX'], { store })).trim()).toMatch(/^user\/alice\/INBOX counts against user\/alice: storage \d+ of 1048576 bytes, messages 3 of unlimited$/);
    // set on such a mailbox makes it a root of its own (the parent's limits are not copied into it)
    expect(await json(['quota', 'set', 'user/alice/INBOX', '--messages', '9'], { store })).toEqual({ root: 'user/alice/INBOX', messages: 9, usedBytes: expect.any(Number), usedMessages: 3 });
    expect((await run(['quota', 'set', 'user/alice', '--storage', '-3'], { store })).code).toBe(5);
  });
});

describe('append --sysexits', () => {
  it('maps a missing mailbox to 67, a bad message to 65, a lock to 75; MAILSTORE_SYSEXITS=1 does the same', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'in'], { store });
    expect((await run(['append', 'nope', '-', '--sysexits'], { store, input: message(1) })).code).toBe(67);
    expect((await run(['append', 'nope', '-'], { store, input: message(1), env: { MAILSTORE_SYSEXITS: '1' } })).code).toBe(67);
    expect((await run(['append', 'nope', '-'], { store, input: message(1) })).code).toBe(4); // without: the usual table
    // MAILSTORE_SYSEXITS=true (or yes) was taken for off: a LOCKED during a daemon restart exited 2, and Postfix bounced the mail
    for (const value of ['true', 'yes', 'on', 'TRUE']) {
      expect((await run(['append', 'nope', '-'], { store, input: message(1), env: { MAILSTORE_SYSEXITS: value } })).code, value).toBe(67);
    }
    for (const value of ['0', 'false', 'no', 'off', '']) {
      expect((await run(['append', 'nope', '-'], { store, input: message(1), env: { MAILSTORE_SYSEXITS: value } })).code, value).toBe(4);
    }
    expect((await run(['append', 'in', '-', '--sysexits', '--flags', '\\Bogus'], { store, input: message(1) })).code).toBe(65);
    expect((await run(['append', 'in', join(tempDir(), 'missing.eml'), '--sysexits'], { store })).code).toBe(66);
    const held = await Store.open(store);
    try {
      const locked = await spawned(['append', 'in', '-', '--sysexits', '--no-wait'], { store, input: message(1) }); // another process holds the store
      expect(locked.code).toBe(75);
      expect(locked.stderr).toMatch(/LOCKED/);
    } finally {
      await held.close();
    }
    expect((await ok(['append', 'in', '-', '--sysexits'], { store, input: message(1) })).trim()).toBe('1');
    expect(await ok(['append', '--help'], { store })).toMatch(/75 EX_TEMPFAIL/);
  });

  it('a user\'s INBOX renamed away while the user keeps other mailboxes is 75 (retry), not 67; a user with none left is 67 (was: 67, the MTA bounced mail of a user mid archive rotation)', async () => {
    const store = await freshStore();
    for (const name of ['user/alice/INBOX', 'user/alice/Sent', 'user/bob/INBOX']) await ok(['mailbox', 'create', name], { store });
    await ok(['mailbox', 'rename', 'user/alice/INBOX', 'user/alice/Archive'], { store });
    const rotating = await run(['append', 'user/alice/INBOX', '-', '--sysexits'], { store, input: message(1) });
    expect(rotating.code).toBe(75);
    expect(rotating.stderr).toMatch(/NOT_FOUND/);
    expect(rotating.stderr).toMatch(/user\/alice\/INBOX does not exist now, but user\/alice holds mailboxes .*: retry later/);
    expect((await run(['append', 'user/alice/INBOX', '-'], { store, input: message(1) })).code).toBe(4); // without --sysexits: the usual table
    expect((await run(['append', 'user/carol/INBOX', '-', '--sysexits'], { store, input: message(1) })).code).toBe(67); // no user/carol/...
    await ok(['mailbox', 'delete', 'user/bob/INBOX'], { store });
    expect((await run(['append', 'user/bob/INBOX', '-', '--sysexits'], { store, input: message(1) })).code).toBe(67); // nothing left of bob
    await ok(['mailbox', 'create', 'user/alice/INBOX'], { store });
    expect((await ok(['append', 'user/alice/INBOX', '-', '--sysexits'], { store, input: message(1) })).trim()).toBe('1');
  });

  it('a missing INBOX whose user cannot be looked up (listMailboxes fails: EIO, the index reopening) is 75 (retry), and says why; not 67 (was: 67, a bounce for good over a transient fault)', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'user/alice/Sent'], { store });
    // the store the in-process command opens is dist's (in-process.ts)
    const { Store: BuiltStore } = await import(pathToFileURL(join(repoRoot, 'dist/src/store/store.js')).href) as { Store: typeof Store };
    const failing = vi.spyOn(BuiltStore.prototype, 'listMailboxes').mockRejectedValue(new Error('EIO reading the index'));
    try {
      const result = await run(['append', 'user/alice/INBOX', '-', '--sysexits'], { store, input: message(1) });
      expect(result.code).toBe(75);
      expect(result.stderr).toMatch(/NOT_FOUND/);
      expect(result.stderr).toMatch(/whether user\/alice\/INBOX's user has other mailboxes could not be read \(INTERNAL: EIO reading the index\): retry later/);
      expect(failing).toHaveBeenCalled();
    } finally {
      failing.mockRestore();
    }
    expect((await run(['append', 'user/alice/INBOX', '-', '--sysexits'], { store, input: message(1) })).code).toBe(75); // the look works: alice has Sent
  });

  it('keeps the mail queued (75), never bounces it, when the store is the trouble: missing, not a directory, damaged', async () => {
    // Postfix bounces every sysexits code but 71 and 75: a store gone with an unmounted disk was
    // 67 ("user unknown"), a store path that is a file 65; a damaged store 74
    const dir = tempDir();
    const missing = await run(['append', 'in', '-', '--sysexits'], { store: join(dir, 'unmounted', 'store'), input: message(1) });
    expect(missing.code, missing.stderr).toBe(75);
    expect(missing.stderr).toMatch(/^mailstore: NOT_FOUND: /);
    writeFileSync(join(dir, 'file'), 'not a store');
    const file = await run(['append', 'in', '-', '--sysexits'], { store: join(dir, 'file'), input: message(1) });
    expect(file.code, file.stderr).toBe(75);
    const store = await freshStore();
    await ok(['mailbox', 'create', 'in'], { store });
    writeFileSync(join(store, 'STORE'), 'garbage\n'); // the store's identity damaged: it refuses to open
    const damaged = await run(['append', 'in', '-', '--sysexits'], { store, input: message(1) });
    expect(damaged.code, damaged.stderr).toBe(75);
    expect(damaged.stderr).toMatch(/^mailstore: (UNMOUNTED|CORRUPT|REFUSED): /); // it cannot tell a damaged identity from another disk mounted there
    // the mailbox and the message stay permanent failures
    const good = await freshStore();
    expect((await run(['append', 'nope', '-', '--sysexits'], { store: good, input: message(1) })).code).toBe(67);
    expect((await run(['append', 'nope', '-', '--sysexits', '--date', 'yesterday-ish'], { store: good, input: message(1) })).code).toBe(65);
  });

  it('keeps the mail queued (75) when the delivery command line itself is wrong: a typo in mailbox_command is the admin\'s to fix', async () => {
    // exit 5 is no sysexits code, and Postfix bounces whatever is not 75: every message delivered
    // through a mistyped mailbox_command bounced until the admin noticed
    const store = await freshStore();
    await ok(['mailbox', 'create', 'in'], { store });
    const lines: Array<[string[], Record<string, string>]> = [
      [['append', 'in', '-', '--sysexits', '--flag', '\\Seen'], {}], // --flags misspelt
      [['append', 'in', '-', '--sysexit'], { MAILSTORE_SYSEXITS: '1' }],
      [['append', '--sysexits'], {}], // the mailbox argument lost (an empty ${USER} unquoted)
      [['--wait', 'ten', 'append', 'in', '-', '--sysexits'], {}],
    ];
    for (const [args, env] of lines) {
      const result = await run(args, { store, input: message(1), env });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(75);
      expect(result.stderr).toMatch(/^mailstore: INVALID: /);
    }
    expect((await run(['append', 'in', '-', '--bogus'], { store, input: message(1) })).code).toBe(5); // without --sysexits: the usual table
    expect(await json(['messages', 'in'], { store })).toEqual([]); // nothing was stored by any of them
  });
});

describe('stats', () => {
  it('reports what quarantine/ holds (never removed automatically): entries and bytes, with the advice to look and remove by hand', async () => {
    const store = await freshStore();
    expect((await json(['stats'], { store })).quarantine).toEqual({ entries: 0, bytes: 0 });
    expect((await ok(['stats'], { store }))).toMatch(/^quarantine\s+empty$/m);
    mkdirSync(join(store, 'quarantine', 'index-2026-12-06'), { recursive: true }); // an index moved aside by a rebuild
    writeFileSync(join(store, 'quarantine', 'index-2026-12-06', '000005.ldb'), Buffer.alloc(3000));
    writeFileSync(join(store, 'quarantine', 'journal-tail-0000000000000001.jnl-929-1'), Buffer.alloc(1000));
    expect((await json(['stats'], { store })).quarantine).toEqual({ entries: 2, bytes: 4000 });
    expect((await ok(['stats'], { store }))).toMatch(/^quarantine\s+2 entries \(3\.9 KiB\): damaged or replaced data set aside, never removed automatically; look, then remove by hand \(RECOVERY\.md\)$/m);
  });
});

describe('stats without a daemon', () => {
  it('says when the journal has grown far past the newest snapshot (a store the CLI alone writes, e.g. mailbox_command deliveries, never snapshots by itself): run mailstore snapshot from cron', async () => {
    const { limits: cliLimits } = await import(pathToFileURL(join(repoRoot, 'dist/src/limits.js')).href) as { limits: { snapshotEveryRecords: number } };
    const saved = cliLimits.snapshotEveryRecords;
    cliLimits.snapshotEveryRecords = 10; // the CLI in this process reads these
    try {
      const store = await freshStore();
      await ok(['mailbox', 'create', 'user/alice/INBOX'], { store });
      const journalLine = async () => (await ok(['stats'], { store })).split('\n').find((line) => line.startsWith('journal'))!;
      for (let i = 0; i < 12; i++) await ok(['append', 'user/alice/INBOX', '-'], { store, input: `Subject: ${i}\r\n\r\nhi\r\n` });
      expect(await journalLine()).not.toMatch(/since the newest snapshot/);
      for (let i = 0; i < 10; i++) await ok(['append', 'user/alice/INBOX', '-'], { store, input: `Subject: ${i}\r\n\r\nhi\r\n` });
      expect(await journalLine()).toMatch(/; (2[2-9]|3\d) records since the newest snapshot \(none\): without 'mailstore serve', which takes snapshots by itself, nothing retires the journal: run 'mailstore snapshot' from cron$/);
      expect((await json(['stats'], { store })).journalLastSeq).toBeGreaterThanOrEqual(22);
      await ok(['snapshot'], { store });
      expect(await journalLine()).not.toMatch(/since the newest snapshot/);
    } finally {
      cliLimits.snapshotEveryRecords = saved;
    }
  });
});

describe('expunge --before', () => {
  it('lists with --dry-run, then expunges exactly the old messages, recursively', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'a'], { store });
    await ok(['mailbox', 'create', 'a/b'], { store });
    await ok(['append', 'a', '-', '--date', '2000-01-01T00:00:00Z'], { store, input: message(1) });
    await ok(['append', 'a', '-'], { store, input: message(2) });
    await ok(['append', 'a/b', '-', '--date', '2000-01-01T00:00:00Z'], { store, input: message(3) });
    const dry = await json(['expunge', 'a', '--before', '30d', '--dry-run', '--recursive'], { store });
    expect(dry.mailboxes.map((m: { mailbox: string; uids: number[] }) => [m.mailbox, m.uids])).toEqual([['a', [1]], ['a/b', [1]]]);
    expect((await json(['stats'], { store })).messages).toBe(3);
    await ok(['expunge', 'a', '--before', '30d'], { store });
    expect((await json(['mailbox', 'status', 'a'], { store })).messages).toBe(1);
    expect((await json(['mailbox', 'status', 'a/b'], { store })).messages).toBe(1);
    await ok(['expunge', 'a', '--before', '2001-01-01', '--recursive'], { store });
    expect((await json(['mailbox', 'status', 'a/b'], { store })).messages).toBe(0);
    expect((await run(['expunge', 'a'], { store })).code).toBe(5);
    expect((await run(['expunge', 'a', '--before', 'someday'], { store })).code).toBe(5);
  });
});

describe('mailbox create', () => {
  it('warns when a user/ mailbox names its user with capitals, which LMTP never delivers to (recipients are lower-cased): created all the same, the warning on stderr and in --json', async () => {
    const store = await freshStore();
    const capitals = await run(['mailbox', 'create', 'user/Alice/INBOX'], { store });
    expect(capitals.code).toBe(0);
    expect(capitals.stdout.toString()).toMatch(/^created user\/Alice\/INBOX /);
    expect(capitals.stderr).toMatch(/mailstore: WARNING: LMTP never delivers to user\/Alice\/INBOX: recipients are lower-cased \(Alice@ and alice@ go to user\/alice\/INBOX/);
    const json = await run(['mailbox', 'create', 'user/Bob/Sent', '--json'], { store });
    expect(JSON.parse(json.stdout.toString())).toMatchObject({ name: 'user/Bob/Sent', warnings: [expect.stringMatching(/^LMTP never delivers to user\/Bob\/Sent: .* user\/bob\/Sent/)] });
    // the user's own folders may have capitals, and so may mailboxes outside user/
    for (const name of ['user/alice/Sent', 'shared/Team', 'User/x']) {
      const quiet = await run(['mailbox', 'create', name, '--json'], { store });
      expect(quiet.stderr, name).toBe('');
      expect(JSON.parse(quiet.stdout.toString()), name).toMatchObject({ name, warnings: [] });
    }
  });
});

describe('renames LMTP would never deliver to', () => {
  it('user rename bob Bob and mailbox rename user/carol/INBOX user/Carol/INBOX are done, and warn (stderr, --json) that LMTP lower-cases recipients: bob@ and Bob@ would bounce', async () => {
    const store = await freshStore();
    for (const name of ['user/bob/INBOX', 'user/carol/INBOX']) await ok(['mailbox', 'create', name, '--owner', name.split('/')[1]], { store });
    const user = await run(['user', 'rename', 'bob', 'Bob'], { store });
    expect(user.code).toBe(0);
    expect(user.stdout.toString()).toMatch(/^renamed user bob to Bob /);
    expect(user.stderr).toMatch(/^mailstore: WARNING: LMTP never delivers to user\/Bob: recipients are lower-cased \(Bob@ and bob@ go to user\/bob\/INBOX.*name it user\/bob$/m);
    const mailbox = await run(['mailbox', 'rename', 'user/carol/INBOX', 'user/Carol/INBOX', '--json'], { store });
    expect(mailbox.code).toBe(0);
    expect(JSON.parse(mailbox.stdout.toString())).toMatchObject({ from: 'user/carol/INBOX', to: 'user/Carol/INBOX', renamed: 1, warnings: [expect.stringMatching(/^LMTP never delivers to user\/Carol\/INBOX: .*name it user\/carol\/INBOX$/)] });
    expect((await json<{ name: string }[]>(['mailbox', 'list'], { store })).map((m) => m.name)).toEqual(['user/Bob/INBOX', 'user/Carol/INBOX']);
    // back to a name LMTP delivers to; a user's own folders may have capitals
    const quiet = await run(['mailbox', 'rename', 'user/Carol/INBOX', 'user/carol/Archive', '--json'], { store });
    expect(quiet.stderr).toBe('');
    expect(JSON.parse(quiet.stdout.toString())).toMatchObject({ renamed: 1, warnings: [] });
  });
});

describe('users, recursive delete, copy and move', () => {
  it('renames a user with its ACL entries, deletes a user, deletes a tree', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'user/bob/INBOX', '--owner', 'bob'], { store });
    await ok(['mailbox', 'create', 'user/bob/Work', '--owner', 'bob'], { store });
    await ok(['mailbox', 'create', 'shared/p', '--acl', 'bob=lrs', 'alice=lrs'], { store });
    await ok(['append', 'user/bob/Work', '-'], { store, input: message(1) });
    expect(await json(['user', 'rename', 'bob', 'robert'], { store })).toEqual({ from: 'bob', to: 'robert', mailboxes: 2, aclEntries: 3, warnings: [] });
    expect((await json<{ name: string }[]>(['acl', 'list', 'robert'], { store })).map((m) => m.name)).toEqual(['shared/p', 'user/robert/INBOX', 'user/robert/Work']);
    expect((await json(['acl', 'get', 'shared/p'], { store })).acl).toEqual({ alice: 'lrs', robert: 'lrs' });
    const refused = await run(['user', 'delete', 'robert'], { store });
    expect(refused.code).toBe(3);
    expect((await json<unknown[]>(['mailbox', 'list'], { store })).length).toBe(3);
    expect(await json(['user', 'delete', 'robert', '--force'], { store })).toMatchObject({ mailboxes: 2, messages: 1 });
    expect((await json<{ name: string }[]>(['mailbox', 'list'], { store })).map((m) => m.name)).toEqual(['shared/p']);
    expect((await json(['acl', 'get', 'shared/p'], { store })).acl).toEqual({ alice: 'lrs' });
    expect((await run(['user', 'delete', 'robert'], { store })).code).toBe(4);

    await ok(['mailbox', 'create', 't'], { store });
    await ok(['mailbox', 'create', 't/u'], { store });
    expect((await run(['mailbox', 'delete', 't'], { store })).code).toBe(0); // one mailbox: t/u stays
    await ok(['mailbox', 'create', 't'], { store });
    await ok(['append', 't/u', '-'], { store, input: message(2) });
    expect((await run(['mailbox', 'delete', 't', '--recursive'], { store })).code).toBe(3);
    expect(await json(['mailbox', 'delete', 't', '--recursive', '--force'], { store })).toMatchObject({ mailboxes: 2, messages: 1 });
    expect((await json<{ name: string }[]>(['mailbox', 'list'], { store })).map((m) => m.name)).toEqual(['shared/p']);
  });

  it('copies and moves a UID set', async () => {
    const store = await freshStore();
    await withMessages(store, 'user/alice/INBOX', 3);
    await ok(['mailbox', 'create', 'user/alice/Archive'], { store });
    expect(await json(['copy', 'user/alice/INBOX', '1:2', 'user/alice/Archive'], { store })).toMatchObject({ mapping: [[1, 1], [2, 2]] });
    expect(await json(['move', 'user/alice/INBOX', '3', 'user/alice/Archive'], { store })).toMatchObject({ mapping: [[3, 3]] });
    expect((await json(['mailbox', 'status', 'user/alice/INBOX'], { store })).messages).toBe(2);
    expect((await json(['mailbox', 'status', 'user/alice/Archive'], { store })).messages).toBe(3);
    expect(await ok(['move', 'user/alice/INBOX', '1', 'user/alice/Archive'], { store })).toMatch(/^moved 1 message .*COPYUID \d+ 1 4/);
    expect((await run(['copy', 'user/alice/INBOX', '2', 'nope'], { store })).code).toBe(4);
    expect((await run(['move', 'user/alice/INBOX', 'x', 'user/alice/Archive'], { store })).code).toBe(5);
  });
});

describe('mailbox dump and undump', () => {
  it('gives an empty store the same list with the same ids and uidValidity', async () => {
    const store = await freshStore();
    await ok(['mailbox', 'create', 'user/alice/INBOX', '--owner', 'alice'], { store });
    await ok(['mailbox', 'create', 'shared/p', '--acl', 'bob=lrs'], { store });
    const dump = await ok(['mailbox', 'dump'], { store });
    expect(dump.split('\n').filter((l) => l && !l.startsWith('#')).length).toBe(2);
    const other = await freshStore();
    expect(await json(['mailbox', 'undump'], { store: other, input: dump })).toEqual({ created: 2 });
    for (const name of ['user/alice/INBOX', 'shared/p']) {
      const [a, b] = [await json(['mailbox', 'status', name], { store }), await json(['mailbox', 'status', name], { store: other })];
      expect(b.uidValidity).toBe(a.uidValidity);
      expect(b.uidNext).toBe(a.uidNext);
      expect(b.highestModseq).toBeGreaterThanOrEqual(a.highestModseq); // modseqs go on above the listed ones
    }
    const withoutModseqs = (list: string) => list.replace(/"highestModseq":\d+,/g, '');
    expect(withoutModseqs(await ok(['mailbox', 'dump'], { store: other }))).toBe(withoutModseqs(dump));
    const again = await run(['mailbox', 'undump'], { store: other, input: dump });
    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(/EXISTS/);
    const bad = await run(['mailbox', 'undump'], { store: other, input: 'not json\n' });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/line 1/);
  });
});

describe('--help says what is durable', () => {
  it('for every command that changes the store', async () => {
    for (const command of [['append'], ['copy'], ['move'], ['expunge'], ['user', 'rename'], ['user', 'delete'], ['quota', 'set'], ['mailbox', 'delete']]) {
      expect(await ok([...command, '--help']), command.join(' ')).toMatch(/[Dd]urabl/);
    }
  });
});
