// The daemon's log gathers info lines that come close together and writes them together (one write
// per burst, not one per LMTP delivery): they still all arrive, in order, within the flush bound; a
// line after a quiet spell, a warning or error, a size bound, reopen, close and the process's exit
// write at once.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startLmtp } from '../../src/daemon/lmtp.js';
import { Logger } from '../../src/daemon/log.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { logEvents } from '../helpers/log-events.js';
import { converse } from './lmtp-client.js';
import { daemonLimits } from '../../src/limits.js';
import { requireBuilt, tempDir } from '../cli/helpers.js';

const events = (path: string): string[] => logEvents(path).map((line) => String(line.event));

/** Waits until the file holds `count` lines (the stream writes in the background), at most 2 s. */
async function lines(path: string, count: number): Promise<string[]> {
  for (let i = 0; i < 100 && events(path).length < count; i++) await sleep(20);
  return events(path);
}

describe('daemon log', () => {
  it('a line after a quiet spell goes out at once; the lines close behind it wait for the flush bound, then arrive together and in order', async () => {
    const path = join(tempDir(), 'serve.log');
    const logger = new Logger(path, { flushMs: 400 });
    logger.info('listening');
    expect(await lines(path, 1)).toEqual(['listening']);
    logger.info('one');
    logger.info('two', { uid: 2 });
    await sleep(100);
    expect(events(path)).toEqual(['listening']); // gathered, not written one by one
    expect(await lines(path, 3)).toEqual(['listening', 'one', 'two']);
    await sleep(450);
    logger.info('later'); // a quiet spell since the last write: at once
    expect(await lines(path, 4)).toEqual(['listening', 'one', 'two', 'later']);
    await logger.close();
  });

  it('a warning or an error writes what was gathered before it at once', async () => {
    const path = join(tempDir(), 'serve.log');
    const logger = new Logger(path, { flushMs: 60_000 });
    logger.info('listening');
    logger.info('delivered');
    logger.warn('background-error', { code: 'IO' });
    expect(await lines(path, 3)).toEqual(['listening', 'delivered', 'background-error']);
    logger.info('after');
    logger.error('store-stopped');
    expect(await lines(path, 5)).toEqual(['listening', 'delivered', 'background-error', 'after', 'store-stopped']);
    await logger.close();
  });

  it('past bufferBytesMax the lines are written without waiting for the timer', async () => {
    const path = join(tempDir(), 'serve.log');
    const logger = new Logger(path, { flushMs: 60_000, bufferBytesMax: 500 });
    for (let i = 0; i < 10; i++) logger.info('lmtp.delivered', { uid: i, mailbox: 'user/bench/INBOX' });
    const written = (await lines(path, 6)).length; // the first at once, then ~110 bytes a line: a flush at 5 of them
    expect(written).toBeGreaterThanOrEqual(6);
    expect(written).toBeLessThan(10); // the rest wait for the timer (or close)
    await logger.close();
    expect(events(path)).toHaveLength(10);
  });

  it('close writes the gathered lines; reopen writes them to the old file first', async () => {
    const dir = tempDir();
    const path = join(dir, 'serve.log');
    const logger = new Logger(path, { flushMs: 60_000 });
    logger.info('before-rotation');
    for (let i = 0; i < 100 && !existsSync(path); i++) await sleep(20); // the stream opens it in the background
    renameSync(path, `${path}.1`); // logrotate moves the file, then sends SIGHUP
    logger.reopen();
    logger.info('log-reopened');
    await logger.close(); // waits for the replaced stream too: a daemon exits right after it
    expect(events(`${path}.1`)).toEqual(['before-rotation']);
    expect(events(path)).toEqual(['log-reopened']);
  });

  it("the process's exit writes the gathered lines (a daemon that exits without closing its log)", () => {
    requireBuilt();
    const path = join(tempDir(), 'serve.log');
    const module = new URL('../../dist/src/daemon/log.js', import.meta.url).href;
    const script = `const { Logger } = await import(${JSON.stringify(module)}); const l = new Logger(process.argv[1]); l.info('a'); setTimeout(() => { l.info('b'); process.exit(3); }, 50);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(3);
    expect(events(path)).toEqual(['a', 'b']);
  });

  it('a line written at once and an error logged just before an exit are in the file (the stream had not opened it yet)', () => {
    requireBuilt();
    const path = join(tempDir(), 'serve.log');
    const module = new URL('../../dist/src/daemon/log.js', import.meta.url).href;
    // the first line goes out at once, an error too: both to the file's stream, which opens the file
    // in the thread pool; an exit in the same tick never let it (both lines lost before)
    const script = `const { Logger } = await import(${JSON.stringify(module)}); const l = new Logger(process.argv[1]); l.info('a'); l.error('e'); l.info('b'); process.exit(3);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(3);
    expect(events(path)).toEqual(['a', 'e', 'b']);
  });

  it('without a file the lines go to stderr, gathered the same way', () => {
    requireBuilt();
    const module = new URL('../../dist/src/daemon/log.js', import.meta.url).href;
    const script = `const { Logger } = await import(${JSON.stringify(module)}); const l = new Logger(undefined, { flushMs: 50 }); l.info('a'); l.info('b'); setTimeout(() => { l.info('c'); l.warn('d'); }, 200);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status).toBe(0);
    expect(child.stderr.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { event: string }).event)).toEqual(['a', 'b', 'c', 'd']);
  });

  const noRoot = process.getuid?.() !== 0 ? 'needs root (mount -t tmpfs)' : undefined;
  it.skipIf(noRoot !== undefined)(`a --log file on a disk that fills up: the daemon goes on, and once there is room the log goes on by itself, a note first (no SIGHUP needed)${noRoot ? ` (SKIPPED: ${noRoot})` : ''}`, async () => {
    const dir = tempDir();
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { encoding: 'utf8' });
    if (mounted.status !== 0) { console.warn(`SKIPPED: mount -t tmpfs failed: ${mounted.stderr.trim()}`); return; }
    const reopenMs = daemonLimits.logReopenMs;
    daemonLimits.logReopenMs = 100;
    try {
      const path = join(dir, 'serve.log');
      const logger = new Logger(path, { flushMs: 0 });
      logger.warn('before');
      expect(await lines(path, 1)).toEqual(['before']);
      const fd = openSync(join(dir, 'filler'), 'w');
      try { for (;;) writeSync(fd, Buffer.alloc(4096, 1)); } catch (error) { expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC'); } finally { closeSync(fd); }
      for (let i = 0; i < 20; i++) { logger.warn('full', { i, pad: 'x'.repeat(4000) }); await sleep(10); } // fail: ENOSPC
      rmSync(join(dir, 'filler'));
      await sleep(150);
      logger.warn('after');
      await logger.close();
      // before the fix the stream was dead after the failure: nothing more reached the file until a SIGHUP
      const text = readFileSync(path, 'utf8');
      const after = text.slice(text.lastIndexOf('log-lines-lost') - 100);
      expect(text.split('\n').filter(Boolean).map((line) => { try { return (JSON.parse(line) as { event: string }).event; } catch { return 'torn'; } }).slice(-2)).toEqual(['log-lines-lost', 'after']);
      expect(after).toMatch(/\n\{[^\n]*"event":"log-lines-lost"[^\n]*\}\n\{[^\n]*"event":"after"/);
    } finally {
      daemonLimits.logReopenMs = reopenMs;
      spawnSync('umount', ['-l', dir]);
    }
  });

  it('a recipient with a right-to-left override (smtp-server lets it through) is logged \\u202e: the line shows as it is, and parses back to the exact address', async () => {
    const store = await Store.open(tmpDir('log-lmtp'), { create: true });
    const path = join(tempDir(), 'serve.log');
    const logger = new Logger(path, { flushMs: 0 });
    const server = await startLmtp(store, { listen: '127.0.0.1:0', hostname: 'test.example', log: ({ level, ...entry }) => logger.log(level ?? 'info', entry.event, entry) });
    try {
      const address = 'invoice\u202efdp.exe@example.org'; // shown raw: invoiceexe.pdf@...
      const c = await converse({ port: Number(server.address.split(':')[1]) });
      c.send(`LHLO client.example\r\nMAIL FROM:<s@example.org> SMTPUTF8\r\nRCPT TO:<${address}>\r\n`);
      expect((await c.replies(3))[2]).toMatch(/^550 5\.1\.3 /);
      c.send('QUIT\r\n');
      await logger.close();
      const text = readFileSync(path, 'utf8');
      expect(text).not.toMatch(/[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
      expect(text).toContain('invoice\\u202efdp.exe@example.org');
      expect(text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { event: string; to?: string }).find((e) => e.event === 'lmtp.refused')?.to).toBe(address);
    } finally {
      await server.close();
      await store.close();
    }
  });
});
