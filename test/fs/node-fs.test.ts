// The real FileHandle's writevDurable: the parts land back to back and are synced, in the calling
// thread when small (the fdatasync there) and through the thread pool when big; a failure is the
// system error with its code, as from writev and sync.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
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
});
