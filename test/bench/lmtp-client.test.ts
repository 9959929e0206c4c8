// The benchmark's LMTP client (tools/bench/peers/lmtp-client.mjs: the same client for Cyrus,
// Dovecot and mailstore) against mailstore's LMTP server: what it counts as delivered is in the
// store, and --connections / --count / --received / --warmup do what the lmtp bench step relies on.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startLmtp, type LmtpServer } from '../../src/daemon/lmtp.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { repoRoot } from '../cli/helpers.js';

const client = join(repoRoot, 'tools/bench/peers/lmtp-client.mjs');
const open: { server: LmtpServer; store: Store }[] = [];
afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    await server.close();
    await store.close();
  }
});

async function setup(users: string[], messages = 3) {
  const dir = tmpDir('lmtp-client');
  const store = await Store.open(join(dir, 'store'), { create: true });
  for (const user of users) await store.createMailbox(`user/${user}/INBOX`);
  const server = await startLmtp(store, { listen: `unix:${join(dir, 'lmtp.sock')}` });
  open.push({ server, store });
  const files = Array.from({ length: messages }, (_, n) => n + 1).map((i) => {
    const file = join(dir, `m${i}.eml`);
    // bare LF and a line starting with "." (dot-stuffed on the wire, stored as it was)
    writeFileSync(file, `From: a@example.org\nSubject: m${i}\n\nbody ${i}\n.leading dot\n`);
    return file;
  });
  writeFileSync(join(dir, 'list.txt'), `${files.join('\n')}\n`);
  // a child process: the server runs in this one
  const runClient = (args: string[], env: NodeJS.ProcessEnv = {}) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const p = spawn(process.execPath, [client, '--socket', join(dir, 'lmtp.sock'), '--list', join(dir, 'list.txt'), ...args], { env: { ...process.env, ...env } });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('error', reject);
    p.on('close', () => resolve(JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>));
  });
  return { store, runClient };
}

async function bodies(store: Store, user: string): Promise<string[]> {
  const out: string[] = [];
  for await (const m of store.readMessages(`user/${user}/INBOX`)) out.push(m.body.toString());
  return out;
}

describe('lmtp-client.mjs', () => {
  it('one connection: every listed message once, each acknowledged and stored (CRLF, dot-stuffing undone)', async () => {
    const { store, runClient } = await setup(['bench']);
    const result = await runClient(['--rcpt', 'bench@example.com', '--peer', 'mailstore']);
    expect(result).toMatchObject({ peer: 'mailstore', measurement: 'deliver', messages: 3, failed: 0 });
    expect(result.connections).toBeUndefined();
    expect(await bodies(store, 'bench')).toEqual([1, 2, 3].map((i) => `From: a@example.org\r\nSubject: m${i}\r\n\r\nbody ${i}\r\n.leading dot\r\n`));
  });

  it('--connections 4 --count 10 --received: ten deliveries spread over four users, each with a Received: header of its own', async () => {
    const { store, runClient } = await setup(['b0', 'b1', 'b2', 'b3']);
    const result = await runClient(['--rcpt', 'b{n}@example.com', '--connections', '4', '--count', '10', '--received']);
    expect(result).toMatchObject({ messages: 10, failed: 0, connections: 4 });
    expect(result.note).toMatch(/4 LMTP connections at once.*a Received: header of its own/);
    const all = (await Promise.all(['b0', 'b1', 'b2', 'b3'].map((u) => bodies(store, u)))).flat();
    expect(all).toHaveLength(10);
    for (const b of all) expect(b).toMatch(/^Received: from bench by bench\.localhost with LMTP id d\d+; /);
    expect(new Set(all).size).toBe(10); // no two alike: nothing deduplicates
    const ids = all.map((b) => Number(/id d(\d+);/.exec(b)![1])).sort((a, b) => a - b);
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await store.stats()).blobs).toBe(10);
  });

  it('--warmup 3 with --limit 2: the three messages after the timed two go first, untimed, then the two timed; both figures in one line', async () => {
    const { store, runClient } = await setup(['bench'], 5);
    const result = await runClient(['--rcpt', 'bench@example.com', '--limit', '2', '--warmup', '3']);
    expect(result).toMatchObject({ messages: 2, failed: 0, warmup: 3, cold_messages: 3 });
    for (const field of ['cold_seconds', 'cold_msg_per_s', 'cold_p50_ms', 'cold_p99_ms', 'p50_ms', 'p99_ms', 'cpu_us_per_message', 'cold_cpu_us_per_message']) expect(result[field]).toEqual(expect.any(Number));
    expect(result.cold_bytes).toBe((result.bytes as number) * 3 / 2); // same-sized messages: 3 against 2
    expect(result.note).toMatch(/3 untimed warm-up deliveries went first .*messages 3–5, after the timed ones.*cold_\* fields/);
    // warm-up first, then the timed ones: all five distinct messages stored, each once
    expect((await bodies(store, 'bench')).map((b) => /Subject: (m\d)/.exec(b)![1])).toEqual(['m3', 'm4', 'm5', 'm1', 'm2']);
  });

  it('LMTP_WARMUP in the environment, over 2 connections with --count and --received: W + N delivered, warm-up ids apart', async () => {
    const { store, runClient } = await setup(['b0', 'b1'], 6);
    const result = await runClient(['--rcpt', 'b{n}@example.com', '--connections', '2', '--count', '4', '--received'], { LMTP_WARMUP: '2' });
    expect(result).toMatchObject({ messages: 4, failed: 0, connections: 2, warmup: 2, cold_messages: 2 });
    const all = (await Promise.all(['b0', 'b1'].map((u) => bodies(store, u)))).flat();
    expect(all).toHaveLength(6);
    const ids = all.map((b) => /with LMTP id ([dw]\d+);/.exec(b)![1]).sort();
    expect(ids).toEqual(['d0', 'd1', 'd2', 'd3', 'w0', 'w1']);
    // the warm-up took messages 5 and 6 of the list, the timed ones 1-4
    expect(all.filter((b) => /id w/.test(b)).map((b) => /Subject: (m\d)/.exec(b)![1]).sort()).toEqual(['m5', 'm6']);
  });

  it('without --warmup: no cold_* fields, no warm-up note', async () => {
    const { runClient } = await setup(['bench']);
    const result = await runClient(['--rcpt', 'bench@example.com'], { LMTP_WARMUP: '' });
    expect(result).toMatchObject({ messages: 3 });
    expect(result.cold_messages).toBeUndefined();
    expect(result.note).not.toMatch(/warm-up/);
  });

  it('reads every message of a phase before its clock starts: a file that cannot be read fails the run before any delivery', async () => {
    const { store, runClient } = await setup(['bench']);
    const list = join(tmpDir('lmtp-client-list'), 'list.txt');
    const fine = join(tmpDir('lmtp-client-m'), 'ok.eml');
    writeFileSync(fine, 'Subject: ok\r\n\r\nok\r\n');
    writeFileSync(list, `${fine}\n${fine}\n/nonexistent/missing.eml\n`);
    const result = await runClient(['--rcpt', 'bench@example.com', '--list', list]);
    expect(result.error).toMatch(/before any delivery of this phase: .*missing\.eml/);
    expect((await store.status('user/bench/INBOX')).messages).toBe(0); // not two delivered, then the failure
  });

  it('an unknown recipient: every delivery failed, an error line (not a result)', async () => {
    const { runClient } = await setup(['bench']);
    const result = await runClient(['--rcpt', 'nobody@example.com']);
    expect(result.error).toMatch(/550/);
  });
});
