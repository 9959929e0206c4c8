// Several stores on one host: a command for one store must never go through the daemon of
// another. MAILSTORE_SOCKET left set for one daemon (an admin's shell, /etc/environment), or a
// daemon given --socket at another store's default path, answered every command of the other
// store: `--store B mailbox create` created the mailbox in A and said it was done.
import { cpSync, mkdirSync, renameSync, rmdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultSocketPath } from '../../src/client/client.js';
import { Logger } from '../../src/daemon/log.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { startDaemon, type Running } from '../daemon/helpers.js';
import { INBOX, freshStore, serve } from '../daemon/processes.js';
import { newStore, requireBuilt, run as spawned, tempDir } from './helpers.js';
import { json, ok, run } from './in-process.js';

beforeAll(requireBuilt);

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function daemonOfA(): Promise<Running> {
  const running = await startDaemon();
  stops.push(() => running.server.stop('test'));
  return running;
}

const names = async (store: { listMailboxes(): Promise<{ name: string }[]> }) => (await store.listMailboxes()).map((m) => m.name);

/** A mailbox create for `store` is refused as going to A's daemon, and A is as it was. */
async function expectRefusedFor(a: Running, store: string, env?: Record<string, string>): Promise<void> {
  const created = await run(['mailbox', 'create', 'user/carol/INBOX'], { store, env });
  expect(created.code, created.stderr).toBe(5);
  expect(created.stderr).toContain(`serves the store at ${a.dir}, not ${store}`);
  expect(await names(a.store)).toEqual(['user/alice/INBOX']);
}

describe('a command for store B that finds the daemon of store A', () => {
  it('MAILSTORE_SOCKET naming A\'s daemon: refused (INVALID, exit 5) naming both stores; nothing is written to A or B', async () => {
    const a = await daemonOfA();
    const b = await newStore(['user/bob/INBOX']);
    const env = { MAILSTORE_SOCKET: a.socket };
    const created = await run(['mailbox', 'create', 'user/carol/INBOX'], { store: b, env });
    expect(created.code, created.stderr).toBe(5);
    expect(created.stderr).toContain(`INVALID: the daemon at ${a.socket} serves the store at ${a.dir}, not ${b}`);
    const append = await run(['append', 'user/alice/INBOX', '-'], { store: b, env, input: 'Subject: for b\r\n\r\nx\r\n' });
    expect(append.code, append.stderr).toBe(5);
    expect(await names(a.store)).toEqual(['user/alice/INBOX']);
    expect((await a.store.status('user/alice/INBOX')).messages).toBe(0);
    // B itself, without the variable: as it was
    expect((await json(['mailbox', 'list', '--json'], { store: b })).map((m: { name: string }) => m.name)).toEqual(['user/bob/INBOX']);
  });

  it('a daemon of A listening at B\'s default socket path: refused, nothing written', async () => {
    const a = await daemonOfA();
    const b = await newStore(['user/bob/INBOX']);
    const socketPath = defaultSocketPath(b);
    const server = new DaemonServer(a.store, { socketPath, logger: new Logger(join(tempDir(), 'log')) });
    await server.start();
    stops.unshift(() => server.stop('test'));
    await expectRefusedFor(a, b);
  });

  it('a copy of A (cp -a, the same store id) beside it: refused too, nothing written to A', async () => {
    const a = await daemonOfA();
    const copy = join(tempDir(), 'copy');
    cpSync(a.dir, copy, { recursive: true, filter: (path) => !path.endsWith('.sock') });
    await expectRefusedFor(a, copy, { MAILSTORE_SOCKET: a.socket });
  });

  it('a daemon whose root names another directory here (a container\'s path) serving the same store goes through', async () => {
    const a = await daemonOfA();
    const moved = join(tempDir(), 'seen-here-as');
    renameSync(a.dir, moved); // the daemon's root as it names it is another directory here; the store is
    mkdirSync(a.dir);
    try {
      await ok(['mailbox', 'create', 'user/carol/INBOX'], { store: moved, env: { MAILSTORE_SOCKET: join(moved, 'run', 'mailstore.sock') } });
      expect(await names(a.store)).toContain('user/carol/INBOX');
    } finally {
      rmdirSync(a.dir);
      renameSync(moved, a.dir);
    }
  });

  it('the same store by another path (a symbolic link) goes through its daemon', async () => {
    const a = await daemonOfA();
    const links = tempDir();
    mkdirSync(join(links, 'srv'));
    const link = join(links, 'srv', 'mail');
    symlinkSync(a.dir, link);
    await ok(['mailbox', 'create', 'user/carol/INBOX'], { store: link, env: { MAILSTORE_SOCKET: a.socket } });
    expect(await names(a.store)).toContain('user/carol/INBOX');
  });
});

describe('MAILSTORE_SOCKET naming no daemon while the store\'s own daemon serves it at its default socket', () => {
  // left set for a daemon once started with --socket (an old /etc/default/mailstore, a typo): every
  // command waited --wait (30 s) on the daemon's LOCK, then said LOCKED "stop it or wait"
  it('goes through the store\'s own daemon at once, warning that MAILSTORE_SOCKET names no daemon', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      const env = { MAILSTORE_SOCKET: join(tempDir(), 'gone.sock') };
      const appended = await spawned(['--wait', '2', 'append', INBOX, '-'], { store, env, input: 'Subject: through\r\n\r\nx\r\n' });
      expect(appended.code, appended.stderr).toBe(0);
      expect(appended.stdout.toString().trim()).toBe('1');
      expect(appended.stderr).toContain(`no daemon answers at MAILSTORE_SOCKET=${env.MAILSTORE_SOCKET}; went through the daemon of ${store} at ${defaultSocketPath(store)}`);
      const status = await spawned(['--wait', '2', 'mailbox', 'status', INBOX], { store, env });
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout.toString()).toMatch(/1 messages/);
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
    }
  });
});

describe('serve for store B given the socket store A\'s daemon answers on', () => {
  // it said "a daemon already answers on PATH; stop it first": stopped, A's clients (an IMAP
  // server's, which name only the socket) would have been B's once B's daemon took the path
  it('is LOCKED (exit 2) saying the daemon there is another store\'s and to give B its own --socket; A keeps its socket', async () => {
    const a = await daemonOfA();
    const b = await newStore([]);
    const inode = statSync(a.socket).ino;
    const result = await spawned(['--no-wait', 'serve', '--socket', a.socket], { store: b });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`LOCKED: another daemon answers on ${a.socket}: not this store's (this process holds ${b}), so it serves another store or is no mailstore; give this daemon a socket of its own`);
    expect(result.stderr).not.toContain('stop it first');
    expect(statSync(a.socket).ino).toBe(inode);
    expect((await (await a.client()).status('user/alice/INBOX')).messages).toBe(0);
  });
});
