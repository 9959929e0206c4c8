// Change events from the journal (src/events/): every change as its RFC 5423 event, in commit
// order, and resuming after any cursor misses nothing; `mailstore events` prints them.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { parseCursor, START } from '../../src/events/cursor.js';
import { EventContext, readEvents, lagRecords, type MailEvent } from '../../src/events/events.js';
import { ChangeSignal, followEvents } from '../../src/events/follow.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/until.js';
import { prng } from '../helpers/prng.js';
import type { FileHandle, FileSystem } from '../../src/fs/filesystem.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { defaultSocketPath } from '../../src/client/socket-path.js';
import { Logger } from '../../src/daemon/log.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { bin, repoRoot, requireBuilt, tempDir } from '../cli/helpers.js';
import { daemonLimits } from '../../src/limits.js';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
// `mailstore events` runs in this process (in-process.ts, a sample checked against the spawned
// command), but for --follow stopped by Ctrl-C
import { ok, run } from '../cli/in-process.js';

const msg = (tag: string) => Buffer.from(`Subject: ${tag}\r\n\r\nbody ${tag}\r\n`);

async function collect(store: Store, since = START): Promise<MailEvent[]> {
  const out: MailEvent[] = [];
  for await (const event of readEvents(store, since)) out.push(event);
  return out;
}

/** A store that went through every kind of change. */
async function busyStore(): Promise<Store> {
  const store = await Store.open(tmpDir('events'), { create: true });
  await store.createMailbox('user/alice/INBOX', { owner: 'alice' });
  await store.createMailbox('user/alice/Trash');
  await store.append('user/alice/INBOX', msg('one'), { envelopeFrom: 'x@example.org' });
  await store.appendBatch('user/alice/INBOX', [{ bytes: msg('two') }, { bytes: msg('three'), flags: ['\\Seen'] }]);
  await store.setFlags('user/alice/INBOX', [1, 3], { add: ['\\Flagged'] });
  await store.setFlags('user/alice/INBOX', 3, { replace: ['\\Answered'] }); // sets one, clears two
  await store.setAcl('user/alice/INBOX', 'bob', 'lr');
  await store.move('user/alice/INBOX', 2, 'user/alice/Trash');
  await store.renameMailbox('user/alice/INBOX', 'user/alice/Old');
  await store.expunge('user/alice/Old', [1]);
  await store.deleteMailbox('user/alice/Trash');
  return store;
}

describe('events from the journal', () => {
  it('lists every change as its RFC 5423 event, with the names and flags of the time', async () => {
    const store = await busyStore();
    try {
      const events = await collect(store);
      const brief = events.map((e) => [e.event, e.mailbox, e.uid ?? e.uids ?? e.identifier ?? e.oldMailbox ?? null, e.flags ?? null]);
      expect(brief).toEqual([
        ['MailboxCreate', 'user/alice/INBOX', null, null],
        ['MailboxCreate', 'user/alice/Trash', null, null],
        ['MessageNew', 'user/alice/INBOX', 1, []],
        ['MessageNew', 'user/alice/INBOX', 2, []],
        ['MessageNew', 'user/alice/INBOX', 3, ['\\Seen']],
        ['FlagsSet', 'user/alice/INBOX', 1, ['\\Flagged']],
        ['FlagsSet', 'user/alice/INBOX', 3, ['\\Flagged']],
        ['FlagsSet', 'user/alice/INBOX', 3, ['\\Answered']],
        ['FlagsClear', 'user/alice/INBOX', 3, ['\\Flagged', '\\Seen']],
        ['AclChange', 'user/alice/INBOX', 'bob', null],
        ['MessageNew', 'user/alice/Trash', 1, []], // the move: a new message there...
        ['MessageExpunge', 'user/alice/INBOX', [2], null], // ...and the expunge here, in the same record
        ['MailboxRename', 'user/alice/Old', 'user/alice/INBOX', null],
        ['MessageExpunge', 'user/alice/Old', [1], null],
        ['MailboxDelete', 'user/alice/Trash', null, null],
      ]);
      expect(events[2]).toMatchObject({ envelopeFrom: 'x@example.org', size: msg('one').length, uidValidity: expect.any(Number) });
      expect(events[10].seq).toBe(events[11].seq);
      expect(new Set(events.map((e) => e.cursor)).size).toBe(events.length);
      expect(lagRecords(store, parseCursor(events[0].cursor))).toBeGreaterThan(10);
    } finally {
      await store.close();
    }
  });

  it('resumes after any cursor without a gap: every change after it is listed, nothing before it', async () => {
    const store = await busyStore();
    try {
      const all = await collect(store);
      for (const [i, from] of all.entries()) {
        const cursor = parseCursor(from.cursor);
        const resumed = await collect(store, cursor);
        expect(resumed.every((e) => all.findIndex((a) => a.cursor === e.cursor) > i || e.allFlags)).toBe(true);
        for (const later of all.slice(i + 1)) {
          // a reader that starts late may not know a message's earlier flags: it lists the whole
          // new set (allFlags) in place of what was set and cleared
          const found = resumed.some((e) => e.cursor === later.cursor && e.event === later.event)
            || (later.event.startsWith('Flags') && resumed.some((e) => e.seq === later.seq && e.uid === later.uid && e.allFlags));
          expect(found, `after ${from.cursor}: ${later.cursor} ${later.event}`).toBe(true);
        }
      }
      expect(await collect(store, parseCursor(String(store.maintenance().journal.lastSeq)))).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('follows new commits as they land, woken by the commit signal', async () => {
    const changes = new ChangeSignal();
    const store = await Store.open(tmpDir('events'), { create: true, onCommit: () => changes.notify() });
    try {
      await store.createMailbox('INBOX');
      const stop = new AbortController();
      const seen: MailEvent[] = [];
      const following = (async () => {
        for await (const event of followEvents(store, START, { signal: stop.signal, changes, pollMs: 60_000 })) {
          seen.push(event);
          if (seen.length === 3) stop.abort();
        }
      })();
      await store.append('INBOX', msg('a'));
      await store.append('INBOX', msg('b'));
      const started = Date.now();
      await following;
      expect(Date.now() - started).toBeLessThan(5000); // woken, not polled (the poll is a minute)
      expect(seen.map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew', 'MessageNew']);
    } finally {
      await store.close();
    }
  });
});

describe('a follower that runs for months', () => {
  it('forgets the mailboxes that were deleted: users made and removed leave its memory where it was, their events named right', async () => {
    const store = await Store.open(tmpDir('events'), { create: true });
    try {
      await store.createMailbox('user/alice/INBOX');
      const context = new EventContext(store); // what followEvents (the webhook) keeps between reads
      const remembered = () => (context as unknown as { mailboxes: Map<string, unknown> }).mailboxes.size;
      let since = START;
      const look = async (): Promise<MailEvent[]> => {
        const out: MailEvent[] = [];
        for await (const event of readEvents(store, since, { context })) out.push(event);
        if (out.length > 0) since = parseCursor(out.at(-1)!.cursor);
        return out;
      };
      await look();
      const baseline = remembered();
      for (let round = 0; round < 8; round++) {
        for (let i = 0; i < 5; i++) {
          const name = `user/u${round}-${i}/INBOX`;
          await store.createMailbox(name);
          await store.append(name, msg(`${round}-${i}`));
        }
        const created = await look();
        for (let i = 0; i < 5; i++) await store.deleteUser(`u${round}-${i}`);
        const deleted = await look();
        expect(created.filter((e) => e.event === 'MessageNew').map((e) => e.mailbox)).toEqual(Array.from({ length: 5 }, (_, i) => `user/u${round}-${i}/INBOX`));
        expect(deleted.filter((e) => e.event === 'MailboxDelete').map((e) => e.mailbox)).toEqual(Array.from({ length: 5 }, (_, i) => `user/u${round}-${i}/INBOX`));
      }
      expect(remembered()).toBe(baseline);
    } finally {
      await store.close();
    }
  });
});

describe('followEvents and the wall clock', () => {
  it('a clock stepped back an hour after a read does not hold the next read back for that hour', async () => {
    const changes = new ChangeSignal();
    const store = await Store.open(tmpDir('events'), { create: true, onCommit: () => changes.notify() });
    const clock = vi.spyOn(Date, 'now');
    const stop = new AbortController();
    try {
      await store.createMailbox('INBOX');
      const seen: MailEvent[] = [];
      let first!: () => void;
      const firstSeen = new Promise<void>((resolve) => { first = resolve; });
      const following = (async () => {
        for await (const event of followEvents(store, START, { signal: stop.signal, changes, pollMs: 60_000 })) {
          seen.push(event);
          first();
          if (seen.length === 2) stop.abort();
        }
      })();
      await firstSeen;
      clock.mockImplementation(() => new Date().getTime() - 3600_000); // NTP steps back an hour
      await store.append('INBOX', msg('a'));
      const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('no event after 5 s')), 5000).unref());
      await Promise.race([following, hung]);
      expect(seen.map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew']);
    } finally {
      stop.abort();
      clock.mockRestore();
      await store.close();
    }
  });
});

/** A store whose journal was retired below its newest records (small segments, two snapshots); a cursor from before that. */
async function retiredStore(dir: string): Promise<{ resumeAt: string; firstKept: number }> {
  const store = await Store.open(dir, { create: true, journalSegmentBytesMax: 4096, autoSnapshot: false });
  try {
    await store.createMailbox('INBOX');
    const body = (i: number) => msg(`m${i} ${'x'.repeat(500)}`);
    for (let i = 0; i < 30; i++) await store.append('INBOX', body(i));
    await store.snapshot();
    for (let i = 30; i < 40; i++) await store.append('INBOX', body(i));
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    expect(store.changes.firstSeq).toBeGreaterThan(5);
    return { resumeAt: '3.0', firstKept: store.changes.firstSeq };
  } finally {
    await store.close();
  }
}

/**
 * The node file system, but the next journal flush (armed) first calls `during` (the records are
 * written, not yet durable), then fails with EIO: the batch fails and the journal is cut back.
 */
function journalFlushFailing(during: () => Promise<void>): { fs: FileSystem; arm(): void } {
  let armed = false;
  const flush = async () => {
    armed = false;
    await during();
    throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  };
  const fs: FileSystem = Object.create(nodeFileSystem);
  fs.open = async (path, mode) => {
    const handle = await nodeFileSystem.open(path, mode);
    if (!path.includes('/journal/')) return handle;
    const wrapped: FileHandle = Object.create(handle);
    wrapped.sync = () => (armed ? flush() : handle.sync());
    wrapped.writevDurable = async (parts, position, written) => {
      if (!armed) return handle.writevDurable(parts, position, written);
      await handle.writev(parts, position);
      written?.();
      return flush();
    };
    return wrapped;
  };
  return { fs, arm: () => { armed = true; } };
}

describe('events of changes not committed', () => {
  it('a record written but not yet durable gives no event: its batch may fail, and its seq then names another change', async () => {
    let store!: Store;
    let duringCommit: MailEvent[] = [];
    const faults = journalFlushFailing(async () => { duringCommit = await collect(store); });
    store = await Store.open(tmpDir('events'), { create: true, fs: faults.fs });
    try {
      await store.createMailbox('INBOX');
      faults.arm();
      await expect(store.append('INBOX', msg('never acknowledged'))).rejects.toMatchObject({ code: 'IO' });
      expect(duringCommit.map((e) => e.event)).toEqual(['MailboxCreate']); // not the MessageNew that failed
      const real = await store.append('INBOX', msg('acknowledged'));
      const after = await collect(store, parseCursor(duringCommit[0].cursor));
      expect(after.map((e) => [e.event, e.hash])).toEqual([['MessageNew', real.hash.toString('hex')]]);
    } finally {
      await store.close();
    }
  });
});

describe('mailstore events', () => {
  requireBuilt();
  it('prints one JSON object per line, resumes with --since, explains a bad cursor', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'user/alice/INBOX'], { store });
    for (const tag of ['a', 'b', 'c']) await ok(['append', 'user/alice/INBOX', '-'], { store, input: msg(tag) });
    const lines = (await ok(['events', '--since', '0', '--json'], { store })).trim().split('\n').map((l) => JSON.parse(l) as MailEvent);
    expect(lines.map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew', 'MessageNew', 'MessageNew']);
    const after = (await ok(['events', '--since', lines[1].cursor, '--json'], { store })).trim().split('\n').map((l) => JSON.parse(l) as MailEvent);
    expect(after.map((e) => e.cursor)).toEqual(lines.slice(2).map((e) => e.cursor));
    expect(await ok(['events'], { store })).toMatch(/MessageNew +user\/alice\/INBOX uid 3/);
    const bad = await run(['events', '--since', 'yesterday'], { store });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/INVALID: event cursor/);
  });

  it('a cursor whose records were retired is NOT_FOUND (exit 4), one past the newest change INVALID (exit 5), through a daemon and without one, never a silent gap; 0 lists what is kept', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    const { resumeAt, firstKept } = await retiredStore(store);
    const expectGone = (result: { code: number | null; stderr: string }) => {
      expect(result.code).toBe(4);
      expect(result.stderr).toMatch(new RegExp(`NOT_FOUND: .*retired.*starts at seq ${firstKept}`));
    };
    // a cursor of another store, or of this one before a restore or a failover: the seqs up to it
    // name other changes here, and a follower waited for them to pass before it listed anything
    const expectForeign = (result: { code: number | null; stderr: string }) => {
      expect(result.code).toBe(5);
      expect(result.stderr).toMatch(/INVALID: event cursor 900\.0 is past the newest change/);
    };
    expectGone(await run(['events', '--since', resumeAt, '--json'], { store }));
    expectForeign(await run(['events', '--since', '900.0', '--follow'], { store }));
    const kept = (await ok(['events', '--json'], { store })).trim().split('\n').map((l) => JSON.parse(l) as MailEvent);
    expect(kept[0].seq).toBe(firstKept);
    const served = await Store.open(store);
    const server = new DaemonServer(served, { socketPath: defaultSocketPath(store), logger: new Logger(`${dir}/daemon.log`) });
    await server.start();
    try {
      expectGone(await run(['events', '--since', resumeAt, '--json'], { store }));
      expectGone(await run(['events', '--since', resumeAt, '--follow'], { store }));
      expectForeign(await run(['events', '--since', '900.0', '--json'], { store }));
      expect((await ok(['events', '--since', String(firstKept - 1), '--json'], { store })).trim().split('\n')).toHaveLength(kept.length);
    } finally {
      await server.stop();
      await served.close();
    }
  });

  it('a change the damaged journal lost is CORRUPT (exit 6) on both paths, after the events before it; never a silent gap', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'INBOX'], { store });
    for (const tag of ['one', 'two', 'three', 'four']) await ok(['append', 'INBOX', '-'], { store, input: msg(tag) });
    // damage the record of the third message (seq 4, an inline body) in the middle of the journal
    const segment = `${store}/journal/${readdirSync(`${store}/journal`).find((name) => name.endsWith('.jnl'))}`;
    const bytes = readFileSync(segment);
    bytes[bytes.indexOf('body three')] ^= 0xff;
    writeFileSync(segment, bytes);
    const expectGap = (result: { code: number | null; stdout: Buffer; stderr: string }) => {
      expect(result.code).toBe(6);
      expect(result.stderr).toMatch(/CORRUPT: .*no record 4 .*--since 4/);
      expect(result.stdout.toString().trim().split('\n').map((l) => (JSON.parse(l) as MailEvent).cursor)).toEqual(['1.0', '2.0', '3.0']);
    };
    expectGap(await run(['events', '--json'], { store }));
    expect((JSON.parse(await ok(['events', '--since', '4', '--json'], { store })) as MailEvent).cursor).toBe('5.0'); // past the gap, when asked
    const served = await Store.open(store);
    const server = new DaemonServer(served, { socketPath: defaultSocketPath(store), logger: new Logger(`${dir}/daemon.log`) });
    await server.start();
    try {
      expectGap(await run(['events', '--json'], { store }));
    } finally {
      await server.stop();
      await served.close();
    }
  });

  it('a rename whose old name this reader never saw is printed without one, not "(was undefined)"', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'A'], { store });
    await ok(['mailbox', 'rename', 'A', 'B'], { store });
    await ok(['mailbox', 'rename', 'B', 'C'], { store });
    // from after the create: the first rename's old name (A) is known only from the index's past names
    const lines = (await ok(['events', '--since', '1'], { store })).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^2\.0 +MailboxRename +B$/);
    expect(lines[1]).toMatch(/MailboxRename +C \(was B\)$/);
  });

  it('--follow prints changes other commands commit while it runs, and stops on Ctrl-C', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'INBOX'], { store });
    const follower = followInChild(store, ['--since', '0']);
    await follower.waitFor(1);
    await ok(['append', 'INBOX', '-'], { store, input: msg('while following') }); // the follower does not hold the store
    await follower.waitFor(2);
    expect(await follower.stop()).toBe(0);
    expect(follower.events().map((e) => e.event)).toEqual(['MailboxCreate', 'MessageNew']);
  });

  it('--follow names a mailbox it first meets in a later look (created before its cursor): that look opened the store again', async () => {
    const dir = tempDir();
    const store = `${dir}/store`;
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'INBOX'], { store });
    await ok(['mailbox', 'create', 'Sent'], { store });
    const follower = followInChild(store, ['--since', '1']); // after INBOX's create: no record it reads names INBOX
    await follower.waitFor(1); // its first look: Sent's create
    await ok(['append', 'INBOX', '-'], { store, input: msg('one') });
    await follower.waitFor(2);
    await ok(['append', 'Sent', '-'], { store, input: msg('two') });
    await follower.waitFor(3);
    expect(await follower.stop()).toBe(0);
    // it looked up each name in the first look's store, closed since: the index was closed, retried without end
    expect(follower.stderr()).not.toMatch(/trying again/);
    expect(follower.events().map((e) => [e.cursor, e.event, e.mailbox])).toEqual([['2.0', 'MailboxCreate', 'Sent'], ['3.0', 'MessageNew', 'INBOX'], ['4.0', 'MessageNew', 'Sent']]);
  });
});

/** `mailstore events --follow --json` in a child process (Ctrl-C is how it ends). */
function followInChild(store: string, args: string[]) {
  const child = spawn(process.execPath, [bin, 'events', '--follow', '--json', ...args], { env: { ...process.env, MAILSTORE_DIR: store }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '', stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const lines = () => output.split('\n').filter(Boolean).length;
  return {
    /** Until `count` events are printed, or it failed to look. */
    waitFor: async (count: number) => {
      // (60 s: a hang guard; the follower is a node start, many times slower at load 20)
      for (let i = 0; i < 600 && lines() < count && child.exitCode === null && !/trying again/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    },
    stop: async () => { child.kill('SIGINT'); return closed; },
    events: () => output.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as MailEvent),
    stderr: () => stderr,
  };
}

describe('events --follow through a daemon that restarts', () => {
  it('reconnects and resumes from its cursor: every event once, in order, then exit 0 on Ctrl-C', async () => {
    requireBuilt();
    const dir = tempDir();
    const store = `${dir}/store`;
    const created = await Store.init(store);
    await created.createMailbox('INBOX');
    for (let at = 0; at < 20_000; at += 5000) await created.appendBatch('INBOX', Array.from({ length: 5000 }, (_, i) => ({ bytes: msg(`${at + i}`) })));
    await created.close();
    const serve = async () => {
      // as `serve` waits for the lock (--wait): the follower may hold the store for a look meanwhile
      const served = await Store.open(store, { lockWaitMs: 60_000 }); // (10 s ran out at load 29)
      const server = new DaemonServer(served, { socketPath: defaultSocketPath(store), logger: new Logger(`${dir}/daemon.log`) });
      await server.start();
      return { served, server, stop: async () => { await server.stop(); await served.close(); } };
    };
    let daemon = await serve();
    const child = spawn(process.execPath, [bin, 'events', '--follow', '--json'], { env: { ...process.env, MAILSTORE_DIR: store }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '', stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const lines = () => output.split('\n').filter(Boolean).length;
    const waitFor = async (count: number) => {
      // (50 s: a hang guard; the follower is a node start and 20,001 events, many times slower at load 20)
      for (let i = 0; i < 1000 && lines() < count && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    };
    await waitFor(1); // a look is streaming the 20,001 events: the daemon stops under it, as at a restart past its grace
    const grace = daemonLimits.shutdownGraceMs;
    daemonLimits.shutdownGraceMs = 0;
    await daemon.stop().finally(() => { daemonLimits.shutdownGraceMs = grace; });
    await new Promise((r) => setTimeout(r, 300));
    daemon = await serve();
    try {
      await daemon.served.append('INBOX', msg('after the restart'));
      await waitFor(20_002);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      await daemon.stop();
    }
    const events = output.trim().split('\n').map((l) => JSON.parse(l) as MailEvent);
    // the create (seq 1), the four batches of 5000 (seqs 2-5), the append after the restart (seq 6)
    expect(events.map((e) => e.seq)).toEqual([1, ...Array.from({ length: 20_000 }, (_, j) => 2 + Math.floor(j / 5000)), 6]);
    expect(events).toHaveLength(20_002);
    expect(new Set(events.map((e) => e.cursor)).size).toBe(20_002);
    expect(stderr).toMatch(/daemon went away.*trying again/);
  });

  it('a daemon away for longer than eventLimits.followReconnectMs ends the follow: its error, exit 2, after the tries it said', async () => {
    const built = await import(pathToFileURL(join(repoRoot, 'dist/src/limits.js')).href) as typeof import('../../src/limits.js');
    const limits = built.eventLimits as { followReconnectMs: number };
    const bound = limits.followReconnectMs;
    const dir = tempDir();
    const store = `${dir}/store`;
    const served = await Store.init(store);
    const server = new DaemonServer(served, { socketPath: defaultSocketPath(store), logger: new Logger(`${dir}/daemon.log`) });
    await server.start();
    // 3 s: room for the tries of 100, 200 and 400 ms it must say; at load 25 a try took ~0.35 s
    // itself, and 1 s (before) ran out after the 200 ms one
    limits.followReconnectMs = 3000;
    try {
      // stopped, its store still held by a process that does not answer (a daemon that hangs at a restart)
      const following = run(['events', '--follow', '--no-wait'], { store });
      // once the follower is the daemon's client (200 ms before: at load it had not connected yet,
      // and found the store held here from its start, from cursor 0)
      await until(() => server.connectionCount > 0, 'the follower connected', 60_000);
      // The stop keeps the store open (held here, as by a daemon that hangs), closed once the follow
      // ended. Closed by the stop and opened again after it (before), the follower, retrying in this
      // process meanwhile, took it itself at load 29 and the open here failed LOCKED.
      const close = served.close.bind(served);
      served.close = () => Promise.resolve();
      await server.stop();
      const result = await following.finally(close);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/trying again in 100 ms[^]*trying again in 400 ms[^]*mailstore: (UNAVAILABLE|LOCKED): /);
    } finally {
      limits.followReconnectMs = bound;
    }
  });
});

describe('events --follow through a daemon and without one', () => {
  // Through a daemon each look was read afresh there: a message's flag change in a later look than
  // the one that listed it came as FlagsSet allFlags, never FlagsClear, where a follow without a
  // daemon (which keeps what it saw) gave FlagsSet and FlagsClear. An IMAP server's notifications
  // rely on the difference. The same changes, committed one by one with a look after each, both ways.
  const FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '$Label1'];
  type Change = (store: Store) => Promise<unknown>;

  /** A seeded sequence of changes: appends, flags added, removed and replaced, expunges, renames. */
  function changes(seed: number, count: number): Change[] {
    const random = prng(seed);
    const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)];
    const some = () => FLAGS.filter(() => random() < 0.4);
    const out: Change[] = [];
    const uids: number[] = [];
    let next = 1, name = 'INBOX', renames = 0;
    for (let i = 0; i < count; i++) {
      const box = name;
      const kind = uids.length === 0 ? 'add' : pick(['add', 'set', 'set', 'clear', 'clear', 'replace', 'replace', 'expunge', 'rename']);
      if (kind === 'add') {
        const flags = some();
        uids.push(next++);
        out.push((s) => s.append(box, msg(`m${i}`), { flags }));
      } else if (kind === 'expunge') {
        const uid = uids.splice(Math.floor(random() * uids.length), 1)[0];
        out.push((s) => s.expunge(box, uid));
      } else if (kind === 'rename') {
        name = `Box${++renames}`;
        const to = name;
        out.push((s) => s.renameMailbox(box, to));
      } else {
        const uid = pick(uids);
        const change = kind === 'set' ? { add: [pick(FLAGS)] } : kind === 'clear' ? { remove: [pick(FLAGS)] } : { replace: some() };
        out.push((s) => s.setFlags(box, uid, change));
      }
    }
    return out;
  }

  /** What an event says, without what differs between two stores (ids, dates, hashes). */
  const said = (e: MailEvent) => [e.cursor, e.event, e.mailbox, e.uid ?? e.uids, e.flags, e.allFlags ?? false, e.oldMailbox ?? null];

  async function followWhile(store: string, steps: Change[], open: () => Promise<{ store: Store; done: () => Promise<void> }>): Promise<MailEvent[]> {
    const follower = followInChild(store, ['--since', '0']);
    let expected = 0;
    try {
      for (const step of [async () => undefined, ...steps]) {
        const { store: s, done } = await open();
        try {
          await step(s);
          expected = (await collect(s)).length;
        } finally {
          await done();
        }
        // a look after each change
        await until(() => follower.events().length >= expected, `the follower's look (${expected} events)`, 60_000);
      }
    } finally {
      expect(await follower.stop()).toBe(0);
    }
    return follower.events();
  }

  it.each([11, 12])('the same events for the same changes, a look after each (seed %i)', async (seed) => {
    requireBuilt();
    const steps = changes(seed, 24);
    const ways: MailEvent[][] = [];
    // without a daemon: each change opens the store, as another command does, and each look opens it
    {
      const store = `${tempDir()}/store`;
      const made = await Store.init(store);
      await made.createMailbox('INBOX');
      await made.close();
      ways.push(await followWhile(store, steps, async () => {
        const s = await Store.open(store, { lockWaitMs: 60_000 });
        return { store: s, done: () => s.close() };
      }));
    }
    // through a daemon
    {
      const dir = tempDir();
      const store = `${dir}/store`;
      const served = await Store.init(store);
      await served.createMailbox('INBOX');
      const server = new DaemonServer(served, { socketPath: defaultSocketPath(store), logger: new Logger(`${dir}/daemon.log`) });
      await server.start();
      try {
        ways.push(await followWhile(store, steps, async () => ({ store: served, done: async () => undefined })));
        // and a reader that read it all at once, knowing every flag it saw
        expect(ways[1].map(said)).toEqual((await collect(served)).map(said));
      } finally {
        await server.stop();
        await served.close();
      }
    }
    expect(ways[1].map(said)).toEqual(ways[0].map(said));
    expect(ways[0].some((e) => e.event === 'FlagsClear')).toBe(true);
  }, 180_000);
});
