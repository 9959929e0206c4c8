// An admin (or a config-management run) pointing --store at the wrong thing: a directory inside a
// store, a file. Each is refused with a code and a sentence saying what to give instead, and
// nothing is written anywhere.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { newStore, requireBuilt, tempDir } from './helpers.js';
import { run } from './in-process.js';

beforeAll(requireBuilt);

describe('--store naming a directory inside a store', () => {
  // it said UNMOUNTED and advised 'mailstore reconstruct --identity-from-markers', which, run
  // there, said the same again
  it('is refused (INVALID, exit 5) naming the store it is inside; reconstruct too; nothing is written', async () => {
    const store = await newStore(['user/alice/INBOX']);
    for (const dir of ['packs', 'journal', 'index', 'quarantine']) {
      const path = join(store, dir);
      const before = readdirSync(path).sort();
      const result = await run(['--no-wait', 'mailbox', 'list'], { store: path });
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr).toContain(`INVALID: ${path} is the ${dir}/ directory of the store at ${store}, not a store: give --store ${store}`);
      expect(result.stderr).not.toContain('identity-from-markers');
      const reconstruct = await run(['--no-wait', 'reconstruct', '--identity-from-markers'], { store: path });
      expect(reconstruct.code, reconstruct.stderr).toBe(5);
      expect(readdirSync(path).sort()).toEqual(before);
    }
    const deeper = join(store, 'quarantine', 'x');
    expect((await run(['--no-wait', 'stats'], { store: deeper })).code).toBe(4); // not there: NOT_FOUND as before
  });
});

describe('--store naming a file', () => {
  // it was IO (exit 2), 'reading store identity FILE/STORE: ENOTDIR': IO says look at dmesg and the disk
  it('is refused (INVALID, exit 5) saying it is no directory; the file is untouched', async () => {
    const store = await newStore([]);
    const file = join(store, 'STORE');
    const before = readFileSync(file);
    for (const args of [['stats'], ['mailbox', 'create', 'user/a/INBOX'], ['scrub']]) {
      const result = await run(['--no-wait', ...args], { store: file });
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr).toContain(`INVALID: ${file} is not a directory: give the directory that holds STORE`);
    }
    expect(readFileSync(file)).toEqual(before);
  });
});

describe('a new store inside another store\'s directory', () => {
  // init made it (in STORE/sub, or in STORE/snapshots before the store's first snapshot), and so
  // did restore --to: a store that goes with the other's copies, and is in the way of its files
  it('init and restore --to are refused (INVALID, exit 5) naming the store; nothing is made', async () => {
    const store = await newStore(['user/alice/INBOX']);
    const repo = join(store, '..', 'repo');
    expect((await run(['backup', '--repo', repo], { store })).code).toBe(0);
    for (const inside of [join(store, 'sub'), join(store, 'snapshots'), join(store, 'quarantine', 'old')]) {
      const init = await run(['init'], { store: inside });
      expect(init.code, init.stderr).toBe(5);
      expect(init.stderr).toContain(`INVALID: ${inside} is inside the store at ${store}`);
      const restore = await run(['restore', '--repo', repo, '--snapshot', 'latest', '--to', inside], { store });
      expect(restore.code, restore.stderr).toBe(5);
      expect(restore.stderr).toContain(`INVALID: ${inside} is inside the store at ${store}`);
      expect(existsSync(inside)).toBe(false);
    }
  });
});

describe('a new store inside a backup repository', () => {
  // restore --to REPO/restored (the repository the admin had just named) made a whole store in it:
  // lost with the repository (a new one made in its place, its disk), and copied off-site with it
  it('init and restore --to are refused (INVALID, exit 5) naming the repository; nothing is made, and the repository checks clean', async () => {
    const store = await newStore(['user/alice/INBOX']);
    const repo = join(store, '..', 'repo');
    expect((await run(['backup', '--repo', repo], { store })).code).toBe(0);
    for (const inside of [join(repo, 'restored'), join(repo, 'data', 'x')]) {
      const restore = await run(['restore', '--repo', repo, '--snapshot', 'latest', '--to', inside], { store });
      expect(restore.code, restore.stderr).toBe(5);
      expect(restore.stderr).toContain(`INVALID: ${inside} is inside the backup repository at ${resolve(repo)}`);
      const init = await run(['init'], { store: inside });
      expect(init.code, init.stderr).toBe(5);
      expect(init.stderr).toContain(`INVALID: ${inside} is inside the backup repository at ${resolve(repo)}`);
      expect(existsSync(inside)).toBe(false);
    }
    expect((await run(['backup', 'check', '--repo', repo], { store })).code).toBe(0);
  });
});

describe('backup --repo inside the store it backs up', () => {
  // it was taken: a backup that is lost with the store's disk (and with a mistaken rm -rf of the
  // store, or a restore into a new directory), and copied along with every copy of the store
  it('is refused (INVALID, exit 5) before anything is written, a new repository and one made there earlier alike', async () => {
    const store = await newStore(['user/alice/INBOX']);
    for (const repo of [join(store, 'backup'), join(store, 'packs', 'repo')]) {
      const result = await run(['backup', '--repo', repo], { store });
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr).toContain(`INVALID: the repository ${repo} is inside the store at ${store}`);
      expect(existsSync(repo)).toBe(false);
    }
    const outside = join(store, '..', 'repo');
    expect((await run(['backup', '--repo', outside], { store })).code).toBe(0);
    renameSync(outside, join(store, 'backup')); // one made there by an earlier version
    const again = await run(['backup', '--repo', join(store, 'backup')], { store });
    expect(again.code, again.stderr).toBe(5);
    // what is in it can still be read and restored
    expect((await run(['backups', '--repo', join(store, 'backup')], { store })).code).toBe(0);
  });
});

describe('--store naming a backup repository', () => {
  // UNMOUNTED, "not a mailstore, or not mounted", and the advice to write STORE from markers
  it('is refused (INVALID, exit 5) saying it is a backup repository and how to use one; nothing is written there', async () => {
    const store = await newStore(['user/alice/INBOX']);
    const repo = resolve(store, '..', 'repo');
    expect((await run(['backup', '--repo', repo], { store })).code).toBe(0);
    const before = readdirSync(repo, { recursive: true }).sort();
    for (const args of [['stats'], ['reconstruct', '--identity-from-markers']]) {
      const result = await run(['--no-wait', ...args], { store: repo });
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr).toContain(`INVALID: ${repo} is a backup repository, not a store: give it as --repo`);
    }
    expect(readdirSync(repo, { recursive: true }).sort()).toEqual(before);
  });
});

describe('--store a directory that does not exist (its file system not mounted under the mount point)', () => {
  // it said "create one with 'mailstore init'": an admin did, on the root file system, and the mail
  // server filled the new empty store until the next mount hid it
  it('is NOT_FOUND (exit 4) asking first whether the file system is mounted, init only for a new store', async () => {
    const missing = join(tempDir(), 'srv', 'mail');
    const result = await run(['--no-wait', 'stats'], { store: missing });
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(`NOT_FOUND: no store at ${missing}: if one should be there, check that its file system is mounted`);
    expect(result.stderr).toMatch(/only for a new store, 'mailstore init' makes one/);
    expect(existsSync(missing)).toBe(false);
  });
});

describe('--store a symbolic link to a directory that does not exist (its file system not mounted)', () => {
  // stats said "no store (create one with 'mailstore init')", and init then failed EXISTS,
  // "creating store directory: EEXIST", about a directory that is not there
  it('is NOT_FOUND (exit 4) saying the link names a missing directory; init too, and makes nothing', async () => {
    const base = tempDir();
    const link = join(base, 'mail');
    symlinkSync(join(base, 'disk2', 'mail'), link);
    for (const args of [['stats'], ['init']]) {
      const result = await run(['--no-wait', ...args], { store: link });
      expect(result.code, result.stderr).toBe(4);
      expect(result.stderr).toContain(`NOT_FOUND: ${link} is a symbolic link to a directory that does not exist: is its file system mounted?`);
    }
    expect(readdirSync(base)).toEqual(['mail']);
  });
});

describe('a new store through a symbolic link into another store\'s directory', () => {
  it('init is refused (INVALID, exit 5) naming the store; nothing is made', async () => {
    const store = await newStore([]);
    const link = join(tempDir(), 'mail');
    mkdirSync(join(store, 'sub')); // as the refusal of a link to a missing directory says to
    symlinkSync(join(store, 'sub'), link);
    const init = await run(['init'], { store: link });
    expect(init.code, init.stderr).toBe(5);
    expect(init.stderr).toContain(`is inside the store at ${store}`);
    expect(readdirSync(join(store, 'sub'))).toEqual([]);
  });
});
