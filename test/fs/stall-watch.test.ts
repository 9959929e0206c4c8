// A file system that hangs, for real (a bindfs mount whose daemon is stopped: helpers/bindfs.ts): the
// stall watch names the call and the file, in this process and in a CLI command, and says when the
// call returned; the command then finishes as if nothing had happened.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, promises as fsp, readSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startStallWatch, stallReportMs, type StallNotice } from '../../src/fs/stall-watch.js';
import { bindfsUnavailable, hangableDir, releaseAll, until } from '../helpers/bindfs.js';
import { bin, ok, requireBuilt, tempDir } from '../cli/helpers.js';

const unavailable = bindfsUnavailable();
if (unavailable) console.log(`stall-watch.test.ts: the hung-mount cases skip: ${unavailable}`);

afterEach(releaseAll);

describe('stall watch', () => {
  it('MAILSTORE_STALL_REPORT_SECONDS sets the report time (0: none); anything else is INVALID', () => {
    expect(stallReportMs({})).toBe(10_000);
    expect(stallReportMs({ MAILSTORE_STALL_REPORT_SECONDS: '2.5' })).toBe(2500);
    expect(stallReportMs({ MAILSTORE_STALL_REPORT_SECONDS: '0' })).toBe(0);
    expect(() => stallReportMs({ MAILSTORE_STALL_REPORT_SECONDS: 'ten' })).toThrow(expect.objectContaining({ code: 'INVALID' }));
  });

  it('does not report a call that returns again and again, each time the watch looks (a busy, healthy file)', async () => {
    // a thread found at every look in the same call, with the same arguments, that returned
    // hundreds of times in between (a journal's fdatasync under load, a read of a FIFO fed each
    // millisecond) was reported io-stalled as if that call had never returned
    const dir = tempDir();
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const writer = spawn(process.execPath, ['-e', `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(fifo)}, 'w'); setInterval(() => fs.writeSync(fd, 'x'), 1)`], { stdio: 'ignore' });
    // opened before the watch starts: the open waits for the writer, a node start (over a second
    // on a loaded machine, and then reported as the openat it is)
    const fd = openSync(fifo, 'r');
    const notices: StallNotice[] = [];
    const watch = startStallWatch({ format: 'json', logPath: join(dir, 'log'), reportMs: 300, checkMs: 50, onNotice: (n) => notices.push(n) });
    expect(watch).toBeDefined();
    let reads = 0;
    try {
      const byte = Buffer.alloc(1);
      // synchronous: the main thread in read(fd, byte, 1) whenever the watch looks, as the daemon's in its journal's calls
      for (const end = Date.now() + 1500; Date.now() < end;) reads += readSync(fd, byte, 0, 1, null);
      closeSync(fd);
      await new Promise((resolve) => setTimeout(resolve, 200)); // the notices sent meanwhile arrive
    } finally {
      writer.kill();
      await watch?.stop();
    }
    expect(reads).toBeGreaterThan(200);
    expect(notices).toEqual([]);
  });

  it.skipIf(unavailable)('names a call that waits on a hung mount, and says when it returned', async () => {
    const { dir, mount } = await hangableDir();
    const notices: StallNotice[] = [];
    const watch = startStallWatch({ format: 'json', logPath: join(tempDir(), 'log'), reportMs: 300, checkMs: 100, onNotice: (n) => notices.push(n) });
    expect(watch).toBeDefined();
    try {
      mount.hang();
      const file = join(dir, 'waits-here');
      const stat = fsp.stat(file).catch((error: NodeJS.ErrnoException) => error.code); // a thread-pool thread waits in the kernel
      await until(() => notices.length > 0, 'an io-stalled notice');
      expect(notices[0]).toMatchObject({ event: 'io-stalled', path: file, thread: 'other' });
      expect(watch!.ongoing()).toHaveLength(1);
      mount.resume();
      expect(await stat).toBe('ENOENT');
      await until(() => notices.length > 1, 'an io-resumed notice');
      expect(notices[1]).toMatchObject({ event: 'io-resumed', path: file });
      expect(watch!.ongoing()).toEqual([]);
    } finally {
      mount.resume();
      await watch?.stop();
    }
  });
});

describe('a CLI command on a hung store', () => {
  beforeAll(requireBuilt);

  it.skipIf(unavailable)('says on stderr which call waits on which path (before: nothing, for as long as it hung), and finishes once the mount answers', async () => {
    const { dir, mount } = await hangableDir();
    const store = join(dir, 'store');
    await ok(['init'], { store });
    mount.hang();
    const child = spawn(process.execPath, [bin, 'stats'], { env: { ...process.env, MAILSTORE_DIR: store, MAILSTORE_STALL_REPORT_SECONDS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // before the watch, stats waited here in silence for as long as the mount hung
      await until(() => stderr.includes('no answer from the file system') || child.exitCode !== null, 'a stall line on stderr');
      expect(stderr).toMatch(/no answer from the file system for \d+ s: \w+ of \S*\/mnt\/store/);
      expect(child.exitCode).toBeNull();
    } finally {
      mount.resume();
    }
    expect(await exited).toBe(0); // and then it went on as if nothing had happened
  });
});
