// `mailstore config` and `init --inline-bytes-max` as an admin uses them: the store keeps the
// inline-body threshold and the free-space reserve for every process that opens it; through a
// running daemon a change applies to its next delivery at once; bad values are INVALID (exit 5)
// and change nothing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { requireBuilt, tempDir } from './helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from './in-process.js';
import { serve } from '../daemon/processes.js';

beforeAll(requireBuilt);

describe('mailstore config', () => {
  it('mends a damaged setting as its CORRUPT message says: config --inline-bytes-max / --free-space-reserve (which failed CORRUPT itself, a dead end)', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init', '--inline-bytes-max', '4096'], { store });
    await ok(['config', '--free-space-reserve', '10M'], { store });
    await ok(['mailbox', 'create', 'in'], { store });
    await ok(['append', 'in', '-'], { store, input: 'Subject: kept\r\n\r\nbody\r\n' });
    for (const [file, option, value, expected] of [
      ['INLINE-BODIES', '--inline-bytes-max', 'default', { inlineBytesMax: limits.inlineBodyBytesDefault, setting: null }],
      ['FREE-SPACE-RESERVE', '--free-space-reserve', '20M', { freeSpace: expect.objectContaining({ setting: 20 * 1024 * 1024 }) }],
    ] as const) {
      writeFileSync(join(store, file), 'garbage\n');
      const refused = await run(['stats'], { store });
      expect(refused.code, refused.stderr).toBe(6);
      expect(refused.stderr).toContain(`mailstore config ${option} N`);
      const mended = await run(['config', option, value, '--json'], { store });
      expect(mended.code, mended.stderr).toBe(0);
      expect(JSON.parse(mended.stdout.toString('utf8'))).toMatchObject(expected);
      expect((await json(['stats'], { store })).messages).toBe(1);
    }
    expect((await run(['config', '--free-space-reserve', 'default'], { store })).code).toBe(0);
    expect(await ok(['fetch', 'in', '1'], { store })).toContain('Subject: kept');
  });

  it('init --inline-bytes-max stores the threshold; config prints and changes it; default removes it; bad values exit 5', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init', '--inline-bytes-max', '4096'], { store });
    expect(await json(['config'], { store })).toMatchObject({ inlineBytesMax: 4096, setting: 4096 });
    expect(await json(['config', '--inline-bytes-max', '0'], { store })).toMatchObject({ inlineBytesMax: 0, setting: 0 });
    // the suffixes every other byte option takes (quota --storage, --free-space-reserve); until session 33 '16K' was refused
    expect(await json(['config', '--inline-bytes-max', '16K'], { store })).toMatchObject({ inlineBytesMax: 16384, setting: 16384 });
    expect(await json(['config', '--inline-bytes-max', '0'], { store })).toMatchObject({ inlineBytesMax: 0, setting: 0 });
    for (const bad of ['-1', 'abc', '1.5K', String(limits.inlineBodyBytesSettingMax + 1), '2M']) {
      const refused = await run(['config', '--inline-bytes-max', bad], { store });
      expect(refused.code, bad).toBe(5);
      expect(refused.stderr).toMatch(/INVALID: --inline-bytes-max takes a number of bytes/);
    }
    expect(await json(['config'], { store })).toMatchObject({ inlineBytesMax: 0, setting: 0 });
    expect(await ok(['config', '--inline-bytes-max', 'default'], { store })).toMatch(new RegExp(`^inline-bytes-max ${limits.inlineBodyBytesDefault} \\(default\\)\nfree-space-reserve \\d+ \\(default\\)`));
    const opened = await Store.open(store);
    try {
      expect(await opened.inlineBodies()).toEqual({ inlineBytesMax: limits.inlineBodyBytesDefault, setting: undefined });
    } finally {
      await opened.close();
    }
  });

  it('--free-space-reserve stores the reserve (K/M/G, 0: off); default removes it; a daemon holds a new one from the next delivery on and serves on', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'M'], { store });
    const reserve = async (args: string[] = []) => (await json<{ freeSpace: { reserveBytes: number; setting: number | null; freeBytes: number } }>(['config', ...args, '--no-wait'], { store })).freeSpace;
    expect(await reserve()).toMatchObject({ setting: null });
    expect(await reserve(['--free-space-reserve', '64M'])).toMatchObject({ reserveBytes: 64 * 1024 * 1024, setting: 64 * 1024 * 1024 });
    expect(await reserve(['--free-space-reserve', '0'])).toMatchObject({ reserveBytes: 0, setting: 0 });
    const refused = await run(['config', '--free-space-reserve', '12X'], { store });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/INVALID: --free-space-reserve takes a number of bytes/);
    const daemon = await serve(store);
    try {
      const free = (await reserve()).freeBytes;
      await reserve(['--free-space-reserve', String(free + 1024 ** 3)]); // more than this disk has free
      const deferred = await run(['append', 'M', '-', '--no-wait'], { store, input: 'Subject: one\r\n\r\nsmall\r\n' });
      expect(deferred.code, deferred.stderr).toBe(2);
      expect(deferred.stderr).toMatch(/NO_SPACE: .*free-space reserve/);
      expect(daemon.child.exitCode).toBeNull();
      expect((await reserve(['--free-space-reserve', 'default'])).setting).toBeNull();
      await ok(['append', 'M', '-', '--no-wait'], { store, input: 'Subject: two\r\n\r\nsmall\r\n' });
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.stderr()).toBe(0);
    }
    expect(daemon.stderr()).toMatch(/"event":"free-space-low"/);
  });

  // 500G for 500M: taken in silence, and the printout showed no REFUSING MAIL (the store finds out at
  // its next delivery), while from then on every delivery was deferred
  it('--free-space-reserve above what is free now is set, with a warning that new mail is refused from the next delivery on', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    const free = (await json<{ freeSpace: { freeBytes: number } }>(['config'], { store })).freeSpace.freeBytes;
    const over = await run(['config', '--free-space-reserve', String(free + 1024 ** 3)], { store });
    expect(over.code, over.stderr).toBe(0);
    expect(over.stderr).toMatch(/the free-space reserve .* is more than the store's file system has free now .*: new mail is refused \(NO_SPACE; LMTP 452, the MTA defers it\) from the next delivery on/);
    expect(over.stdout.toString()).toContain(`free-space-reserve ${free + 1024 ** 3}`);
    const fits = await run(['config', '--free-space-reserve', '1M'], { store });
    expect(fits.stderr).toBe('');
  });

  it('through a running daemon: the daemon delivers with the new threshold at once, and keeps it after a restart', async () => {
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', 'M'], { store });
    let daemon = await serve(store);
    const packBytes = async () => (await json(['stats', '--no-wait'], { store })).packBytes as number;
    try {
      expect(await json(['config', '--inline-bytes-max', '0', '--no-wait'], { store })).toMatchObject({ inlineBytesMax: 0, setting: 0 });
      const before = await packBytes();
      await ok(['append', 'M', '-', '--no-wait'], { store, input: 'Subject: one\r\n\r\nsmall\r\n' });
      expect(await packBytes()).toBeGreaterThan(before); // inline off: the body went to a pack
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.stderr()).toBe(0);
    }
    daemon = await serve(store);
    try {
      expect(await json(['config', '--no-wait'], { store })).toMatchObject({ inlineBytesMax: 0, setting: 0 });
    } finally {
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.stderr()).toBe(0);
    }
  });
});
