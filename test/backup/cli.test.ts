// The backup commands as a script sees them: --json documents and the exit codes of README's table.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { json, ok, requireBuilt, run, tempDir } from '../cli/helpers.js';

describe('backup commands', () => {
  it('json documents, exit codes: 1 on damage, 5 for a wrong key, a taken name or no policy, 6 for a damaged message', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-backup-cli-');
    const store = join(dir, 's');
    const repo = join(dir, 'repo');
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'M']);
    for (let i = 0; i < 4; i++) await ok(['--store', store, 'append', 'M', '-'], { input: `Subject: ${i}\r\n\r\n${randomBytes(3000).toString('hex')}\r\n` });
    const summary = await json(['--store', store, 'backup', '--repo', repo]);
    expect(summary).toMatchObject({ messages: 4, newBlobs: 4, mailboxes: 1 });
    expect(summary.bytesAdded).toBeGreaterThan(0);
    const list = await json(['backups', '--repo', repo]);
    expect(list.snapshots).toEqual([expect.objectContaining({ id: summary.snapshot, messages: 4, seq: summary.seq })]);
    expect((await run(['backup', 'check', '--repo', repo, '--read-data'])).code).toBe(0);
    // a taken name in a live store: EXISTS (5); --as: restored beside it
    const taken = await run(['restore', '--repo', repo, '--mailbox', 'M', '--to', store]);
    expect(taken.code).toBe(5);
    expect(taken.stderr).toMatch(/EXISTS: .*--as/);
    expect((await json(['restore', '--repo', repo, '--mailbox', 'M', '--as', 'M2', '--to', store])).messages).toBe(4);
    expect((await run(['backup', 'forget', '--repo', repo])).code).toBe(5);
    expect((await run(['backups', '--repo', join(dir, 'none')])).code).toBe(4);
    // damage: check exits 1 naming the message; restore exits 6 (CORRUPT) and leaves no store
    const [data] = readdirSync(join(repo, 'data'));
    const bytes = readFileSync(join(repo, 'data', data));
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(join(repo, 'data', data), bytes);
    const check = await run(['backup', 'check', '--repo', repo, '--read-data', '--json']);
    expect(check.code).toBe(1);
    expect(JSON.parse(check.stdout.toString()).findings.map((f: { kind: string }) => f.kind)).toEqual(['damaged-data', 'damaged-blob']);
    const corrupt = await run(['restore', '--repo', repo, '--to', join(dir, 'r')]);
    expect(corrupt.code).toBe(6);
    expect(corrupt.stderr).toMatch(/CORRUPT: M uid 4/);
    expect(existsSync(join(dir, 'r'))).toBe(false);
    // encryption: a wrong key is INVALID (5), before anything is written
    const key = join(dir, 'k');
    writeFileSync(key, randomBytes(32));
    writeFileSync(join(dir, 'k2'), randomBytes(32));
    await ok(['--store', store, 'backup', '--repo', join(dir, 'erepo'), '--key-file', key]);
    const wrong = await run(['restore', '--repo', join(dir, 'erepo'), '--key-file', join(dir, 'k2'), '--to', join(dir, 'r5')]);
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toMatch(/INVALID: the key file does not open/);
    expect(existsSync(join(dir, 'r5'))).toBe(false);
    expect((await run(['backups', '--repo', join(dir, 'erepo')])).code).toBe(5); // no key at all
  });
});
