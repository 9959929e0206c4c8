// The single-writer lock taken with fcntl on lock/LOCK (src/fs/kernel-lock.ts) instead of a LevelDB
// open of lock/: it writes nothing, and it excludes exactly as before — older mailstore versions
// (which open the LevelDB and so take that same fcntl lock), a second open in this process, and a
// killed holder's successor, who gets it.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelLockAvailable } from '../../src/fs/kernel-lock.js';
import { Store } from '../../src/store/store.js';
import { closedStoreWithInbox, kernelLockHolder, releaseHolder } from '../helpers/lock-holder.js';
import { DIST_STORE } from '../sim/damage-index.js';
import { expectCode } from '../sim/helpers.js';

const level = createRequire(import.meta.url).resolve('classic-level');

/** Every file in lock/ with its size, inode and change time: what an open may not touch. */
function lockFiles(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(join(dir, 'lock'))) {
    const stat = statSync(join(dir, 'lock', name), { bigint: true });
    files[name] = `${stat.size} ${stat.ino} ${stat.ctimeNs}`;
  }
  return files;
}

/** What an older mailstore does to take the lock: open the LevelDB in lock/ (in a child process, as it would be). */
function levelOpenOfLock(dir: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { createRequire } from 'node:module';
      const { ClassicLevel } = createRequire(import.meta.url)(${JSON.stringify(level)});
      const db = new ClassicLevel(process.argv[1] + '/lock');
      try { await db.open(); await db.close(); console.log('opened'); } catch (e) { console.log(String(e.cause?.message ?? e.message)); }`, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.on('error', fail);
    child.on('close', () => done(out.trim()));
  });
}

describe('the kernel lock on lock/LOCK', () => {
  it('is taken with fcntl here (fs-ext installed and loading: `npm install` where it is not)', () => {
    expect(kernelLockAvailable()).toBe(true);
  });

  it('an open, append and close write nothing in lock/ (LevelDB wrote a new MANIFEST and CURRENT there at every open: 3 syncs)', async () => {
    const dir = await closedStoreWithInbox();
    const before = lockFiles(dir);
    for (let i = 0; i < 2; i++) {
      const store = await Store.open(dir);
      await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`));
      await store.close();
    }
    expect(lockFiles(dir)).toEqual(before);
    const store = await Store.open(dir, { readOnly: true });
    expect((await store.status('INBOX')).messages).toBe(2);
    await store.close();
  });

  it('an older mailstore (a LevelDB open of lock/) is kept out while a store is open, and gets in once it closes; and keeps this version out', async () => {
    const dir = await closedStoreWithInbox();
    const store = await Store.open(dir);
    expect(await levelOpenOfLock(dir)).toMatch(/^IO error: lock .*lock\/LOCK: Resource temporarily unavailable/);
    await store.close();
    expect(await levelOpenOfLock(dir)).toBe('opened');
    const older = await kernelLockHolder(dir);
    await expectCode(Store.open(dir), 'LOCKED');
    await releaseHolder(older);
    await (await Store.open(dir)).close();
  });

  it('two opens at once in this process: exactly one opens, the other is LOCKED (fcntl locks belong to the process)', async () => {
    const dir = await closedStoreWithInbox();
    const results = await Promise.allSettled([Store.open(dir), Store.open(dir)]);
    const opened = results.filter((r) => r.status === 'fulfilled');
    expect(opened).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason.code).toBe('LOCKED');
    await (opened[0] as PromiseFulfilledResult<Store>).value.close();
    await (await Store.open(dir)).close();
  });

  it('a holder killed with SIGKILL: the next open gets the lock at once, with what the holder acknowledged', async () => {
    const dir = await closedStoreWithInbox();
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { Store } = await import(${JSON.stringify(DIST_STORE)});
      const store = await Store.open(process.argv[1]);
      const { uid } = await store.append('INBOX', Buffer.from('Subject: held\\r\\n\\r\\nbody\\r\\n'));
      console.log('acknowledged ' + uid);
      setInterval(() => {}, 1000);`, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const uid = await new Promise<number>((done, fail) => {
      child.stdout.on('data', (chunk: Buffer) => { const m = /acknowledged (\d+)/.exec(chunk.toString()); if (m) done(Number(m[1])); });
      child.on('exit', (code) => fail(new Error(`holder exited ${code}`)));
    });
    await expectCode(Store.open(dir), 'LOCKED');
    expect(await levelOpenOfLock(dir)).toMatch(/Resource temporarily unavailable/);
    child.kill('SIGKILL');
    await new Promise((done) => child.on('close', done));
    expect(readFileSync(join(dir, 'LOCK'), 'utf8').trim()).toBe(String(child.pid)); // the dead owner's
    const store = await Store.open(dir);
    expect((await store.fetch('INBOX', uid)).toString()).toBe('Subject: held\r\n\r\nbody\r\n');
    await store.close();
  });
});
