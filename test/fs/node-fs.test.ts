// The real FileHandle's writevDurable: the parts land back to back and are synced, in the calling
// thread when small (the fdatasync there) and through the thread pool when big; a failure is the
// system error with its code, as from writev and sync. The flush failing (EIO) is made by replacing
// only the fdatasync calls (node-fs.ts Flushes): the write before it and the code after it are real.
import { describe, expect, it } from 'vitest';
import { fdatasyncSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeFileSystem, nodeFileSystem, type Flushes } from '../../src/fs/node-fs.js';
import { systemError } from '../sim/faultfs.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

describe('NodeFileHandle.writevDurable', () => {
  for (const [what, size] of [['small (synced in the calling thread)', 4096], ['big (synced in the pool)', limits.syncWriteBytesMax + 1]] as const) {
    it(`${what}: the parts land back to back at the position`, async () => {
      const path = join(tmpDir('wd'), 'f');
      const handle = await nodeFileSystem.open(path, 'createOrOpen');
      try {
        await handle.write(Buffer.alloc(16, 0x2e), 0);
        const a = Buffer.alloc(size - 8, 0x61), b = Buffer.from('12345678');
        await handle.writevDurable([a, b], 8);
        const bytes = readFileSync(path);
        expect(bytes.length).toBe(8 + size);
        expect(bytes.subarray(0, 8).equals(Buffer.alloc(8, 0x2e))).toBe(true);
        expect(bytes.subarray(8, 8 + a.length).equals(a)).toBe(true);
        expect(bytes.subarray(8 + a.length).toString()).toBe('12345678');
      } finally {
        await handle.close();
      }
    });
  }

  it('on a handle opened read-only it rejects with the system error (EBADF), writing nothing', async () => {
    const path = join(tmpDir('wd'), 'f');
    const writable = await nodeFileSystem.open(path, 'createOrOpen');
    await writable.close();
    const handle = await nodeFileSystem.open(path, 'read');
    try {
      await expect(handle.writevDurable([Buffer.from('x')], 0)).rejects.toMatchObject({ code: 'EBADF' });
      expect(readFileSync(path).length).toBe(0);
    } finally {
      await handle.close();
    }
  });

  /** Flushes that fail EIO (as fdatasync does after a failed write-back), noting which one was called. */
  function failingFlushes(called: string[]): Flushes {
    return {
      inThread: (_fd, path) => { called.push('inThread'); throw systemError('EIO', 'fdatasync', path); },
      inPool: async (_handle, path) => { called.push('inPool'); throw systemError('EIO', 'fdatasync', path); },
    };
  }

  for (const [what, size, flush] of [['small', 4096, 'inThread'], ['big', limits.syncWriteBytesMax + 1, 'inPool']] as const) {
    it(`${what}: its fdatasync (${flush}) failing EIO rejects with EIO, after the write`, async () => {
      const path = join(tmpDir('wd'), 'f');
      const called: string[] = [];
      const handle = await new NodeFileSystem(failingFlushes(called)).open(path, 'createOrOpen');
      try {
        const error = await handle.writevDurable([Buffer.alloc(size, 0x61)], 0).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'EIO', syscall: 'fdatasync' });
        expect(called).toEqual([flush]);
        expect(readFileSync(path).length).toBe(size); // written (to the page cache), not known durable
        await expect(handle.sync()).rejects.toMatchObject({ code: 'EIO' }); // sync() takes the pool's flush
      } finally {
        await handle.close();
      }
    });
  }

  it('small: written and flushed before the call returns (no promise to wait on first); big: the flush waits on the pool', async () => {
    const called: string[] = [];
    const flushes: Flushes = { inThread: (fd) => { called.push('inThread'); fdatasyncSync(fd); }, inPool: async (h) => { called.push('inPool'); await h.datasync(); } };
    const path = join(tmpDir('wd'), 'f');
    const handle = await new NodeFileSystem(flushes).open(path, 'createOrOpen');
    try {
      const small = handle.writevDurable([Buffer.from('ab'), Buffer.from('cd')], 0);
      expect(called).toEqual(['inThread']); // before any await
      expect(readFileSync(path).toString()).toBe('abcd');
      await small;
      const big = handle.writevDurable([Buffer.alloc(limits.syncWriteBytesMax + 1, 0x61)], 4);
      expect(called).toEqual(['inThread']);
      await big;
      expect(called).toEqual(['inThread', 'inPool']);
    } finally {
      await handle.close();
    }
  });

  it('the kernel flushes by default: a replaced one is used only by its own file system', async () => {
    const called: string[] = [];
    const flushes: Flushes = { inThread: (fd) => { called.push('inThread'); fdatasyncSync(fd); }, inPool: async (h) => { called.push('inPool'); await h.datasync(); } };
    const path = join(tmpDir('wd'), 'f');
    const replaced = await new NodeFileSystem(flushes).open(path, 'createOrOpen');
    const plain = await nodeFileSystem.open(path, 'readWrite');
    try {
      await replaced.writevDurable([Buffer.from('a')], 0);
      await plain.writevDurable([Buffer.from('b')], 1);
      await plain.sync();
      expect(called).toEqual(['inThread']);
      expect(readFileSync(path).toString()).toBe('ab');
    } finally {
      await replaced.close();
      await plain.close();
    }
  });
});

describe('NodeFileHandle.read aside (through the thread pool)', () => {
  it('reads what the in-thread read reads, up to the end of the file', async () => {
    const path = join(tmpDir('ra'), 'f');
    const content = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 31) & 0xff));
    const writable = await nodeFileSystem.open(path, 'createOrOpen');
    await writable.write(content, 0);
    await writable.close();
    const handle = await nodeFileSystem.open(path, 'read');
    try {
      const inThread = Buffer.alloc(4096), aside = Buffer.alloc(4096);
      expect(await handle.read(inThread, 0, 4096, 7000)).toBe(3000);
      expect(await handle.read(aside, 0, 4096, 7000, { aside: true })).toBe(3000);
      expect(aside.equals(inThread)).toBe(true);
      expect(aside.subarray(0, 3000).equals(content.subarray(7000))).toBe(true);
      expect(await handle.read(aside, 0, 4096, 10_000, { aside: true })).toBe(0);
    } finally {
      await handle.close();
    }
  });

  it('on a closed handle rejects with the system error (EBADF)', async () => {
    const path = join(tmpDir('ra'), 'f');
    const writable = await nodeFileSystem.open(path, 'createOrOpen');
    await writable.close();
    const handle = await nodeFileSystem.open(path, 'read');
    await handle.close();
    await expect(handle.read(Buffer.alloc(8), 0, 8, 0, { aside: true })).rejects.toMatchObject({ code: 'EBADF' });
  });
});
