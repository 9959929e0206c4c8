// What big LMTP messages cost `mailstore serve` in memory, read from its /proc status (counts of
// kilobytes, never times): while they are received it holds each body about once, as its body
// budget counts it; once delivered and idle it gives the memory back; and a burst past the
// default budget is answered 452 4.3.1 (the MTA retries) instead of growing the process.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { daemonLimits, limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { bin } from '../cli/helpers.js';
import { newStore } from '../cli/in-process.js';
import { until } from '../helpers/until.js';
import { converse } from './lmtp-client.js';
import { freePort, serve, type Daemon } from './processes.js';

const MiB = 1024 * 1024;
let daemon: Daemon | undefined;
afterEach(async () => {
  daemon?.child.kill('SIGKILL');
  await daemon?.exited;
  daemon = undefined;
});

/** A field of the daemon's /proc status in bytes (VmRSS: resident now; VmHWM: the most since clear_refs). */
function status(field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${daemon!.child.pid}/status`, 'latin1').split('\n').find((l) => l.startsWith(`${field}:`))!;
  return Number(/(\d+) kB/.exec(line)![1]) * 1024;
}

/** A message of `bytes` in 80-byte lines: the socket brings it in many reads. */
function bigMessage(bytes: number): Buffer {
  const head = Buffer.from('From: a@example.org\r\nSubject: big\r\n\r\n');
  const line = Buffer.from(`${'0123456789'.repeat(7)}abcdefgh\r\n`);
  const body = Buffer.alloc(bytes);
  head.copy(body);
  for (let at = head.length; at < bytes; at += line.length) line.copy(body, at, 0, Math.min(line.length, bytes - at));
  body.write('\r\n', bytes - 2);
  return body;
}

/** `sessions` LMTP transactions at once, one to each of user/u1..uN, each sending `body`: their final replies. */
async function deliverAtOnce(port: number, sessions: number, body: Buffer): Promise<string[]> {
  const conversations = await Promise.all(Array.from({ length: sessions }, () => converse({ port })));
  const replies = await Promise.all(conversations.map(async (c, i) => {
    c.send(`LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u${i + 1}@example.org>\r\nDATA\r\n`);
    await c.replies(4);
    c.send(body);
    c.send('.\r\n');
    return (await c.replies(1, 120_000))[0];
  }));
  for (const c of conversations) c.socket.destroy();
  return replies;
}

/**
 * As deliverAtOnce, but every session's body is in the kernel's hands (written) before any final
 * dot is sent: the daemon has read all but the socket buffers' worth of each while none of them is
 * delivered, so the bytes it holds at once are the bodies' sum, whatever the machine's speed.
 */
async function deliverTogether(port: number, sessions: number, body: Buffer): Promise<string[]> {
  const conversations = await Promise.all(Array.from({ length: sessions }, () => converse({ port })));
  await Promise.all(conversations.map(async (c, i) => {
    c.send(`LHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u${i + 1}@example.org>\r\nDATA\r\n`);
    await c.replies(4);
  }));
  await Promise.all(conversations.map((c) => new Promise<void>((written) => c.socket.write(body, () => written()))));
  const replies = await Promise.all(conversations.map(async (c) => {
    c.send('.\r\n');
    return (await c.replies(1, 120_000))[0];
  }));
  for (const c of conversations) c.socket.destroy();
  return replies;
}

/** A daemon serving LMTP (`serve` given `args` too) on a fresh store with user/u1..uN/INBOX; its RSS once a small delivery has warmed it up. */
async function startServing(users: number, args: string[] = []): Promise<{ store: string; port: number; idleBytes: number }> {
  const store = await newStore(Array.from({ length: users }, (_, i) => `user/u${i + 1}/INBOX`), 'mailstore-lmtp-memory-');
  const port = await freePort();
  daemon = await serve(store, ['--lmtp', `127.0.0.1:${port}`, ...args]);
  expect(await deliverAtOnce(port, 1, Buffer.from('Subject: warm-up\r\n\r\nhello\r\n'))).toEqual(['250 2.0.0 delivered to user/u1/INBOX uid 1']);
  writeFileSync(`/proc/${daemon.child.pid}/clear_refs`, '5'); // VmHWM starts again from VmRSS
  return { store, port, idleBytes: status('VmRSS') };
}

describe('mailstore serve receiving big LMTP messages', () => {
  it('holds each body about once while it is received (the pieces and their joined copy made it twice), and gives the memory back once idle', async () => {
    const sessions = 6;
    const { store, port, idleBytes } = await startServing(sessions);
    const body = bigMessage(32 * MiB);
    const replies = await deliverAtOnce(port, sessions, body);
    expect(replies).toEqual(Array.from({ length: sessions }, (_, i) => `250 2.0.0 delivered to user/u${i + 1}/INBOX uid ${i === 0 ? 2 : 1}`));
    const total = sessions * body.length;
    // before: 2.0x (384 MiB more for 192 MiB of bodies); now ~1.0x and what V8 had not yet collected of the socket's reads
    expect(status('VmHWM') - idleBytes).toBeLessThan(1.5 * total);
    // before: every body stayed until something else started a full collection (an idle daemon: never)
    await until(() => status('VmRSS') - idleBytes < 0.4 * total, `the daemon's RSS back near its ${idleBytes} bytes before the burst (${status('VmRSS')} now)`);
    daemon!.child.kill('SIGTERM');
    expect(await daemon!.exited).toBe(0);
    daemon = undefined;
    const opened = await Store.open(store);
    try {
      for (let i = 1; i <= sessions; i++) expect((await opened.fetch(`user/u${i}/INBOX`, i === 1 ? 2 : 1)).equals(body)).toBe(true);
    } finally {
      await opened.close();
    }
  });

  it('answers a burst past the default body budget (at most 256 MiB on any machine) 452 4.3.1 for what does not fit, and delivers the rest', async () => {
    expect(daemonLimits.bodyBytesHeldMax).toBeLessThanOrEqual(256 * MiB);
    const body = bigMessage(limits.messageBytesMax - MiB);
    const sessions = Math.floor(daemonLimits.bodyBytesHeldMax / body.length) + 2;
    const { port, idleBytes } = await startServing(sessions);
    const replies = await deliverAtOnce(port, sessions, body);
    const delivered = replies.filter((reply) => reply.startsWith('250 2.0.0 delivered'));
    const deferred = replies.filter((reply) => reply.startsWith('452 4.3.1 insufficient system resources'));
    expect(delivered.length + deferred.length).toBe(sessions);
    expect(deferred.length).toBeGreaterThan(0);
    expect(delivered.length).toBeGreaterThan(0);
    expect(delivered.length * body.length).toBeLessThanOrEqual(daemonLimits.bodyBytesHeldMax);
    expect(status('VmHWM') - idleBytes).toBeLessThan(1.5 * daemonLimits.bodyBytesHeldMax);
  });

  it('keeps the budget an admin gives (--body-bytes-max): two 40 MiB bodies at once fit in 128M, and one of them is answered 452 4.3.1 under 64M', async () => {
    const body = bigMessage(40 * MiB);
    const roomy = await startServing(2, ['--body-bytes-max', '128M']);
    expect(await deliverTogether(roomy.port, 2, body)).toEqual(['250 2.0.0 delivered to user/u1/INBOX uid 2', '250 2.0.0 delivered to user/u2/INBOX uid 1']);
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    const tight = await startServing(2, ['--body-bytes-max', '64M']);
    const replies = await deliverTogether(tight.port, 2, body);
    expect(replies.filter((reply) => reply.startsWith('250 2.0.0 delivered'))).toHaveLength(1);
    expect(replies.filter((reply) => reply.startsWith('452 4.3.1 insufficient system resources'))).toHaveLength(1);
  });

  it('refuses a --body-bytes-max below the largest message it accepts, saying why', async () => {
    const store = await newStore(['user/u1/INBOX'], 'mailstore-lmtp-memory-');
    const refused = spawnSync(process.execPath, [bin, '--store', store, 'serve', '--body-bytes-max', '63M'], { encoding: 'utf8' });
    expect(refused.status).toBe(5);
    expect(refused.stderr).toContain('INVALID: --body-bytes-max 63M is below the largest message the daemon accepts (64.0 MiB, messageBytesMax)');
    expect(existsSync(join(store, 'run', 'mailstore.sock'))).toBe(false);
  });
});
