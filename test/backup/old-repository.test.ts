// A backup repository written by the mailstore of commit f76e064 (session 30), as a store being
// upgraded brings it along (fixtures/backup-f76e064, made by its make.sh): this code checks it
// clean, restores both snapshots (the second a delta) byte-exact, and adds its own backups to it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt, tempDir } from '../cli/helpers.js';
// what is tried is the repository's format: the command lines run in this process (in-process.ts,
// a sample checked against the spawned command)
import { json, ok, run } from '../cli/in-process.js';

beforeAll(requireBuilt);

const FIXTURE = new URL('../../fixtures/backup-f76e064/repo.tar.gz', import.meta.url).pathname;

/** Message n as make.sh wrote it. */
function message(n: number): Buffer {
  const lines = [`Subject: ${n}`, '', ...Array.from({ length: n }, (_, i) => `line ${n}.${i + 1}`), ...(n % 3 === 0 ? Array.from({ length: 60 }, () => 'x'.repeat(200)) : [])];
  return Buffer.from(`${lines.join('\r\n')}\r\n`);
}

async function fetched(store: string, mailbox: string, uid: number): Promise<Buffer> {
  const result = await run(['fetch', mailbox, String(uid)], { store });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

describe('a backup repository of session 30 (f76e064)', () => {
  it('checks clean, restores both snapshots byte-exact, and takes backups of this code beside them', async () => {
    const work = tempDir('mailstore-oldrepo-');
    execFileSync('tar', ['-xzf', FIXTURE, '-C', work]);
    const repo = join(work, 'repo');
    expect(await ok(['backup', 'check', '--repo', repo, '--read-data'])).toMatch(/^clean: 2 snapshots/);
    const { snapshots } = await json<{ snapshots: { id: string; seq: number }[] }>(['backups', '--repo', repo]);
    expect(snapshots.map((s) => s.seq).sort((a, b) => a - b)).toEqual([6, 11]);

    const latest = join(work, 'latest');
    await ok(['restore', '--repo', repo, '--to', latest]);
    expect((await json<{ uid: number; flags: string[] }[]>(['messages', 'INBOX'], { store: latest })).map((m) => [m.uid, m.flags])).toEqual([[1, []], [3, []], [4, ['\\Seen']], [5, []], [6, []]]);
    for (const n of [1, 3, 4, 5, 6]) expect((await fetched(latest, 'INBOX', n)).equals(message(n)), `INBOX ${n}`).toBe(true);
    expect((await fetched(latest, 'Sent', 1)).equals(message(1))).toBe(true);

    const first = join(work, 'first');
    await ok(['restore', '--repo', repo, '--to', first, '--snapshot', snapshots.find((s) => s.seq === 6)!.id]);
    for (const n of [1, 2, 3, 4]) expect((await fetched(first, 'INBOX', n)).equals(message(n)), `INBOX ${n}`).toBe(true);

    await ok(['append', 'INBOX', '-'], { store: latest, input: message(7) });
    await ok(['backup', '--repo', repo], { store: latest });
    expect(await ok(['backup', 'check', '--repo', repo, '--read-data'])).toMatch(/^clean: 3 snapshots/);
    const again = join(work, 'again');
    await ok(['restore', '--repo', repo, '--to', again]);
    expect((await fetched(again, 'INBOX', 7)).equals(message(7))).toBe(true);
    expect((await run(['scrub'], { store: again })).code).toBe(0);
  }, 60_000);
});
