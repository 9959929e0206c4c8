// A user's machine where a dependency does not load (a package missing, a native binary built for
// another node or libc): every command either works on the fallback or fails with a clear code
// naming what to reinstall; nothing acknowledged is lost. The failure is simulated by a preloaded
// hook (test/helpers/unloadable-modules.cjs); node_modules is left as it is.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashBytes, hashImplementation } from '../../src/hash/blake3.js';
import { freePort, serve } from '../daemon/processes.js';
import { json, newStore, ok, repoRoot, requireBuilt, run, tempDir, type RunOptions } from './helpers.js';

beforeAll(requireBuilt);

const hook = join(import.meta.dirname, '../helpers/unloadable-modules.cjs');

/** RunOptions for a machine where the modules matching `pattern` do not load. */
function without(pattern: string, options: RunOptions = {}): RunOptions {
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${hook}`.trim();
  return { ...options, env: { ...options.env, NODE_OPTIONS: nodeOptions, MAILSTORE_TEST_UNLOADABLE: pattern } };
}

describe('classic-level (LevelDB) does not load', () => {
  it('commands needing no store work; one opening a store fails IO naming what to reinstall (75 with --sysexits); the store is as it was', async () => {
    const store = await newStore(['INBOX'], 'mailstore-deps-');
    const work = tempDir('mailstore-deps-');
    const message = join(work, 'm.eml');
    writeFileSync(message, 'Subject: kept\r\n\r\nbody\r\n');
    await ok(['append', 'INBOX', message], { store });
    const repo = join(work, 'repo');
    await ok(['backup', '--repo', repo], { store });
    const broken = (options: RunOptions = {}) => without('classic-level', { store, ...options });

    const version = await run(['--version'], broken());
    expect([version.code, version.stderr]).toEqual([0, '']);
    const check = await run(['backup', 'check', '--repo', repo], broken());
    expect([check.code, check.stderr]).toEqual([0, '']);

    const append = await run(['append', 'INBOX', message], broken());
    expect(append.code, append.stderr).toBe(2);
    expect(append.stderr).toMatch(/^mailstore: IO: LevelDB's native module \(classic-level\) does not load in node v[\d.]+ on \w+-\w+: .*'npm rebuild classic-level'/);
    expect(append.stdout.length).toBe(0);
    const mta = await run(['append', '--sysexits', 'INBOX', message], broken());
    expect(mta.code, mta.stderr).toBe(75);

    expect((await json(['mailbox', 'status', 'INBOX'], { store })).messages).toBe(1);
    expect((await run(['scrub'], { store })).code).toBe(0);
  });
});

describe('@napi-rs/blake-hash (native BLAKE3) does not load', () => {
  it('every path runs on the WebAssembly BLAKE3 with the native digests: append, fetch, scrub, backup, check, restore, replication', async () => {
    expect(hashImplementation).toBe('native'); // this process: the digests compared against
    const broken = (options: RunOptions = {}) => without('blake-hash', options);
    const work = tempDir('mailstore-deps-');
    const key = join(work, 'key');
    writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
    const primaryDir = join(work, 'p');
    const replicaDir = join(work, 'r');
    await ok(['init'], broken({ store: primaryDir }));
    await ok(['mailbox', 'create', 'INBOX'], broken({ store: primaryDir }));
    const port = await freePort();
    const wasm = { env: broken().env! };
    const primary = await serve(primaryDir, ['--replication-listen', `127.0.0.1:${port}`, '--replication-key', key, '--sync-replicas', '1'], wasm);
    const replica = await serve(replicaDir, ['--replica-of', `127.0.0.1:${port}`, '--replication-key', key], wasm);
    // one body for a pack, one small enough to go inline in its journal record
    const messages = [Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.from(randomBytes(60_000).toString('base64'))]), Buffer.from('Subject: small\r\n\r\nbody\r\n')];
    try {
      for (const [i, bytes] of messages.entries()) {
        // through the primary's daemon, acknowledged once the replica holds it (--sync-replicas 1)
        const appended = await json(['append', 'INBOX', '-'], broken({ store: primaryDir, input: bytes }));
        expect(appended).toMatchObject({ uid: i + 1, hash: hashBytes(bytes).toString('hex') });
      }
      expect((await run(['fetch', 'INBOX', '1'], broken({ store: replicaDir }))).stdout.equals(messages[0]!)).toBe(true);
    } finally {
      for (const daemon of [replica, primary]) {
        daemon.child.kill('SIGTERM');
        expect(await daemon.exited, daemon.stderr()).toBe(0);
      }
    }
    const repo = join(work, 'repo');
    for (const store of [primaryDir, replicaDir]) {
      const scrub = await run(['scrub'], broken({ store }));
      expect([scrub.code, scrub.stdout.toString()], scrub.stderr).toEqual([0, expect.stringMatching(/blobs .* in 1 pack\(s\)[^]*\nclean\n$/)]);
      for (const [i, bytes] of messages.entries()) expect((await run(['fetch', 'INBOX', String(i + 1)], broken({ store }))).stdout.equals(bytes)).toBe(true);
    }
    await ok(['backup', '--repo', repo], broken({ store: primaryDir }));
    expect(await ok(['backup', 'check', '--repo', repo, '--read-data'], broken())).toMatch(/^clean: .* 2 blobs/);
    const restored = join(work, 'restored');
    await ok(['restore', '--repo', repo, '--to', restored], broken());
    for (const [i, bytes] of messages.entries()) expect((await run(['fetch', 'INBOX', String(i + 1)], { store: restored })).stdout.equals(bytes)).toBe(true);
    expect((await run(['scrub'], { store: restored })).code).toBe(0); // and natively: the same hashes
  }, 300_000); // some 20 CLI processes: over 60 s (the bound before) at load 18
});

describe('neither BLAKE3 loads (@napi-rs/blake-hash nor hash-wasm)', () => {
  it('a command opening a store fails IO naming both and what to reinstall (75 with --sysexits); the store is as it was', async () => {
    const store = await newStore(['INBOX'], 'mailstore-deps-');
    const message = join(tempDir('mailstore-deps-'), 'm.eml');
    writeFileSync(message, 'Subject: kept\r\n\r\nbody\r\n');
    await ok(['append', 'INBOX', message], { store });
    const broken = (options: RunOptions = {}) => without('blake-hash|hash-wasm', { store, ...options });
    const append = await run(['append', 'INBOX', message], broken());
    expect(append.code, append.stderr).toBe(2);
    expect(append.stderr).toMatch(/^mailstore: IO: no BLAKE3 loads in node v[\d.]+ on \w+-\w+: neither the native module \(@napi-rs\/blake-hash: .+\) nor hash-wasm \(.+\); reinstall mailstore's dependencies/);
    expect((await run(['append', '--sysexits', 'INBOX', message], broken())).code).toBe(75);
    expect((await run(['--version'], broken())).code).toBe(0);
    expect((await json(['mailbox', 'status', 'INBOX'], { store })).messages).toBe(1);
  });
});

describe('cbor-extract (cbor-x\'s native string decoding) does not load', () => {
  /**
   * In a child process (the library from dist/): 70 mailboxes of non-ASCII names, with a message
   * and a keyword each (70 records and more), the state read back, then again after the index is lost (a rebuild replays the
   * journal, which loads the native decoding past rebuildNativeCborRecordsMin records).
   */
  const script = `
    const { Store } = await import(${JSON.stringify(join(repoRoot, 'dist/src/index.js'))});
    const [dir] = process.argv.slice(1);
    const state = async (store) => JSON.stringify([await store.listMailboxes(), await store.changesSince('Entwürfe/日本 69', 0)]);
    let store = await Store.open(dir, { create: true });
    for (let i = 0; i < 70; i++) {
      await store.createMailbox('Entwürfe/日本 ' + i);
      await store.append('Entwürfe/日本 ' + i, Buffer.from('Subject: é\\r\\n\\r\\nbody\\r\\n'), { flags: ['$Label' + i] });
    }
    const before = await state(store);
    await store.close();
    (await import('node:fs')).rmSync(dir + '/index', { recursive: true });
    store = await Store.open(dir);
    console.log(JSON.stringify({ before, after: await state(store) }));
    await store.close();
  `;

  it('strings decode the same on cbor-x\'s JavaScript path: the store as written, and after an index rebuild', () => {
    const states = [{}, without('cbor-extract').env!].map((env) => {
      const dir = join(tempDir('mailstore-deps-'), 's');
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, dir], { env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(child.status, child.stderr).toBe(0);
      rmSync(dir, { recursive: true });
      return JSON.parse(child.stdout) as { before: string; after: string };
    });
    const [native, javascript] = states.map(({ before, after }) => {
      expect(after).toBe(before);
      return JSON.parse(before) as [{ name: string }[], { changed: { flags: string[] }[] }];
    });
    expect(javascript[0].map((m) => m.name).sort()).toEqual(native![0].map((m) => m.name).sort());
    expect(javascript[0]).toHaveLength(70);
    expect(javascript[0].map((m) => m.name)).toContain('Entwürfe/日本 69');
    expect(javascript[1].changed.map((m) => m.flags)).toEqual([['$Label69']]);
  });
});
