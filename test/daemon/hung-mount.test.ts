// The daemon on a file system that hangs, for real (a bindfs mount whose daemon is stopped:
// helpers/bindfs.ts). A delivery whose commit waits on the hung store is named in the log (which
// is elsewhere), answered 250 only once the mount answers and the commit is durable, and kept.
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json, ok, requireBuilt, tempDir } from '../cli/helpers.js';
import { bindfsUnavailable, hangableDir, releaseAll, until } from '../helpers/bindfs.js';
import { converse } from './lmtp-client.js';
import { INBOX, freePort, message, serve } from './processes.js';
import { logEvents } from '../helpers/log-events.js';

const unavailable = bindfsUnavailable();
if (unavailable) console.log(`hung-mount.test.ts skips: ${unavailable}`);

beforeAll(requireBuilt);
afterEach(releaseAll);


describe.skipIf(unavailable)('the daemon on a hung mount', () => {
  it('logs which call waits on which file of the store, and delivers once the mount answers', async () => {
    const { dir, mount } = await hangableDir();
    const store = join(dir, 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', INBOX], { store });
    const port = await freePort();
    const log = join(tempDir(), 'serve.log');
    const daemon = await serve(store, ['--lmtp', `127.0.0.1:${port}`, '--log', log], { env: { MAILSTORE_STALL_REPORT_SECONDS: '1' } });
    try {
      await until(() => logEvents(log).some((line) => line.event === 'services'), 'LMTP listening'); // it starts once the socket answers
      const c = await converse({ port });
      c.send('LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n');
      expect((await c.replies(4)).map((reply) => reply.slice(0, 3))).toEqual(['250', '250', '250', '354']);
      mount.hang();
      c.send(Buffer.concat([message(1), Buffer.from('.\r\n')]));
      // before the watch the daemon said nothing at all, however long the mount hung
      await until(() => logEvents(log).some((line) => line.event === 'io-stalled'), 'an io-stalled line in the log');
      const stalled = logEvents(log).find((line) => line.event === 'io-stalled')!;
      expect(stalled).toMatchObject({ level: 'error', seconds: expect.any(Number) });
      expect(String(stalled.path).startsWith(store)).toBe(true); // the store, or a journal or pack file in it
      mount.resume();
      const [delivered] = await c.replies(1, 30_000);
      expect(delivered).toMatch(/^250 2\.0\.0 delivered to user\/alice\/INBOX uid 1/);
      await until(() => logEvents(log).some((line) => line.event === 'io-resumed'), 'an io-resumed line in the log');
      c.socket.destroy();
    } finally {
      mount.resume();
      daemon.child.kill('SIGTERM');
    }
    expect(await daemon.exited).toBe(0);
    const listed = await json<{ uid: number }[]>(['messages', INBOX], { store });
    expect(listed.map((m) => m.uid)).toEqual([1]);
  });

  it('a socket whose directory hangs: LMTP goes on, and SIGTERM stops the daemon (its store closed) without the socket file', async () => {
    const { dir, mount } = await hangableDir();
    const store = join(tempDir(), 'store');
    await ok(['init'], { store });
    await ok(['mailbox', 'create', INBOX], { store });
    const port = await freePort();
    const log = join(tempDir(), 'serve.log');
    const daemon = await serve(store, ['--socket', join(dir, 'mailstore.sock'), '--lmtp', `127.0.0.1:${port}`, '--log', log]);
    let code: number | null | undefined;
    try {
      await until(() => logEvents(log).some((line) => line.event === 'services'), 'LMTP listening');
      mount.hang();
      const c = await converse({ port });
      c.send(Buffer.concat([Buffer.from('LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n'), message(1), Buffer.from('.\r\n')]));
      expect((await c.replies(5)).at(-1)).toMatch(/^250 2\.0\.0 delivered to user\/alice\/INBOX uid 1/);
      c.socket.destroy();
      daemon.child.kill('SIGTERM');
      // before: its stop waited in the main thread's unlink of the socket, for as long as the mount hung
      await until(() => daemon.child.exitCode !== null || daemon.child.signalCode !== null, 'the daemon ending while the socket directory hangs');
      code = daemon.child.exitCode;
    } finally {
      mount.resume();
      daemon.child.kill('SIGTERM');
    }
    // by its own SIGTERM (node's exit would wait for the thread still in the unlink): a clean stop to systemd
    expect([code, daemon.child.signalCode]).toEqual([null, 'SIGTERM']);
    expect(logEvents(log).map((line) => line.event)).toEqual(expect.arrayContaining(['socket-not-removed', 'stopped']));
    expect((await json<{ uid: number }[]>(['messages', INBOX], { store })).map((m) => m.uid)).toEqual([1]);
  });
});
