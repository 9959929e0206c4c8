// Store.open and the single-writer lock: waiting for a holder (lockWaitMs), and naming the holder
// in LOCKED even in the moment between its taking the kernel lock and writing its pid.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join, relative } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { FileSystem } from '../../src/fs/filesystem.js';
import { NodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { expectCode } from '../sim/helpers.js';
import { closedStoreWithInbox, kernelLockHolder } from '../helpers/lock-holder.js';

describe('the lock holder in LOCKED', () => {
  it('LOCK still empty at the first read: read again and name the pid the holder writes a moment later', async () => {
    const dir = await closedStoreWithInbox();
    const child = await kernelLockHolder(dir);
    const lock = join(dir, 'LOCK');
    let reads = 0;
    // The holder writes its pid just after our first look at LOCK (deterministically, through the fs).
    const fs: FileSystem = new (class extends NodeFileSystem {
      override async readFile(path: string): Promise<Buffer> {
        try {
          return await super.readFile(path);
        } finally {
          if (path === lock && reads++ === 0) writeFileSync(lock, `${child.pid}\n`);
        }
      }
    })();
    expect(existsSync(lock)).toBe(false);
    const error = await expectCode(Store.open(dir, { fs }), 'LOCKED');
    expect(error.message).not.toMatch(/unknown/);
    expect(error.message).toContain(`in use by process ${child.pid}`);
  });

  it('a LOCK naming a dead process while a live one holds the kernel lock: not the dead pid', async () => {
    const dir = await closedStoreWithInbox();
    await kernelLockHolder(dir);
    writeFileSync(join(dir, 'LOCK'), '999999\n'); // the crashed previous owner's, not yet overwritten
    const error = await expectCode(Store.open(dir), 'LOCKED');
    expect(error.message).not.toContain('999999');
    expect(error.message).toMatch(/another process \(starting/);
  });

  it('lockWaitMs: waits for a holder that lets go, and fails LOCKED after the wait for one that does not', async () => {
    const dir = await closedStoreWithInbox();
    const child = await kernelLockHolder(dir);
    writeFileSync(join(dir, 'LOCK'), `${child.pid}\n`);
    const waits: number[] = [];
    const started = Date.now();
    const error = await expectCode(Store.open(dir, { lockWaitMs: 400, onLockWait: (_holder, waited) => waits.push(waited) }), 'LOCKED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(error.message).toContain(`process ${child.pid}`);
    expect(waits.length).toBeGreaterThan(1);
    setTimeout(() => child.stdin!.end(), 300);
    const store = await Store.open(dir, { lockWaitMs: 10_000 });
    expect((await store.status('INBOX')).messages).toBe(0);
    await store.close();
  });

  it('lockWaitMs is waited on the monotonic clock: a wall clock stepped back an hour meanwhile does not stretch it (read-write and read-only opens)', async () => {
    const dir = await closedStoreWithInbox();
    const child = await kernelLockHolder(dir);
    writeFileSync(join(dir, 'LOCK'), `${child.pid}\n`);
    let offsetMs = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + offsetMs);
    try {
      for (const readOnly of [false, true]) {
        offsetMs = 0;
        const hung = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still waiting after 5 s')), 5000).unref());
        const opening = Store.open(dir, { readOnly, lockWaitMs: 400, onLockWait: () => { offsetMs = -3600_000; } });
        await expectCode(Promise.race([opening, hung]), 'LOCKED');
      }
    } finally {
      clock.mockRestore();
    }
  });

  it('a second open in the same process fails at once even when asked to wait', async () => {
    const dir = await closedStoreWithInbox();
    const store = await Store.open(dir);
    const started = Date.now();
    const error = await expectCode(Store.open(dir, { lockWaitMs: 5000 }), 'LOCKED');
    expect(error.message).toContain('already open in this process');
    expect(Date.now() - started).toBeLessThan(1000);
    await store.close();
  });
});

describe('the same store under another spelling of its path', () => {
  it('is still "already open in this process", at once', async () => {
    const dir = await closedStoreWithInbox();
    const store = await Store.open(dir);
    const other = relative(process.cwd(), dir); // relative: the same store, another string
    const started = Date.now();
    const error = await expectCode(Store.open(other, { lockWaitMs: 5000 }), 'LOCKED');
    expect(error.message).toContain('already open in this process');
    expect(Date.now() - started).toBeLessThan(1000);
    await expectCode(Store.open(other, { readOnly: true }), 'LOCKED');
    await store.close();
  });
});

describe('STORE read again once the wait for a holder is over', () => {
  it('a newer mailstore that upgraded STORE while this open waited for it is refused INVALID, read-write and read-only, and STORE is left as it wrote it', async () => {
    for (const readOnly of [false, true]) {
      const dir = await closedStoreWithInbox();
      const child = await kernelLockHolder(dir);
      writeFileSync(join(dir, 'LOCK'), `${child.pid}\n`); // a read-only open waits for the pid in LOCK
      const body = JSON.stringify({ ...JSON.parse(readFileSync(join(dir, 'STORE'), 'utf8').split('\n')[0]), version: 99 });
      const newer = `${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`;
      setTimeout(() => {
        writeFileSync(join(dir, 'STORE'), newer);
        child.stdin!.end();
      }, 300);
      const error = await expectCode(Store.open(dir, { lockWaitMs: 10_000, readOnly }), 'INVALID');
      expect(error.message).toMatch(/store format version 99 is not supported/);
      expect(readFileSync(join(dir, 'STORE'), 'utf8')).toBe(newer);
    }
  });
});
