// The benchmark's LMTP client (tools/bench/peers/lmtp-client.mjs: the same client for Cyrus,
// Dovecot and mailstore) against mailstore's LMTP server: what it counts as delivered is in the
// store, and --connections / --count / --received do what the lmtp bench step relies on.
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

async function setup(users: string[]) {
  const dir = tmpDir('lmtp-client');
  const store = await Store.open(join(dir, 'store'), { create: true });
  for (const user of users) await store.createMailbox(`user/${user}/INBOX`);
  const server = await startLmtp(store, { listen: `unix:${join(dir, 'lmtp.sock')}` });
  open.push({ server, store });
  const files = [1, 2, 3].map((i) => {
    const file = join(dir, `m${i}.eml`);
    // bare LF and a line starting with "." (dot-stuffed on the wire, stored as it was)
    writeFileSync(file, `From: a@example.org\nSubject: m${i}\n\nbody ${i}\n.leading dot\n`);
    return file;
  });
  writeFileSync(join(dir, 'list.txt'), `${files.join('\n')}\n`);
  // a child process: the server runs in this one
  const runClient = (args: string[]) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const p = spawn(process.execPath, [client, '--socket', join(dir, 'lmtp.sock'), '--list', join(dir, 'list.txt'), ...args]);
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

  it('an unknown recipient: every delivery failed, an error line (not a result)', async () => {
    const { runClient } = await setup(['bench']);
    const result = await runClient(['--rcpt', 'nobody@example.com']);
    expect(result.error).toMatch(/550/);
  });
});
