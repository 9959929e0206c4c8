// The recipe of README and RECOVERY.md, "Restore after losing the whole disk", step by step with
// the built CLI: nightly encrypted backups to another disk, the store's disk lost, a new store
// restored from the latest snapshot, scrubbed clean, and backed up again into the same repository.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, requireBuilt, tempDir } from '../cli/helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from '../cli/in-process.js';

/**
 * The command lines of README's numbered steps, as printed (code spans, joined across line breaks),
 * with its paths put in: the test runs what an admin pastes, so a step cannot drift from the code.
 */
function readmeSteps(paths: Record<string, string>): string[][] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('**Restore after losing the whole disk, step by step**');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  return [...section.matchAll(/`(mailstore [^`]+)`/g)]
    .map((m) => m[1]!.replace(/\s*\n\s*/g, ' '))
    .filter((line) => !line.includes('…')) // `runuser -u mailstore -- mailstore restore …`: the same step as another user
    .map((line) => line.split(' ').slice(1).map((word) => paths[word] ?? word));
}

describe('disaster recipe', () => {
  it('restore after losing the whole disk, step by step', { timeout: 60_000 }, async () => {
    requireBuilt();
    const dir = tempDir('mailstore-disaster-');
    const store = join(dir, 'disk1', 'mailstore');
    const repo = join(dir, 'backup-disk', 'repo');
    const key = join(dir, 'elsewhere', 'backup.key');
    // before: a store, a key kept away from both disks, a nightly backup
    for (const d of ['disk1', 'backup-disk', 'elsewhere']) mkdirSync(join(dir, d));
    writeFileSync(key, randomBytes(32), { mode: 0o600 });
    await ok(['--store', store, 'init']);
    await ok(['--store', store, 'mailbox', 'create', 'user/alice/INBOX', '--owner', 'alice']);
    const messages = Array.from({ length: 12 }, (_, i) => `From: x${i}@example.org\r\nSubject: ${i}\r\n\r\n${randomBytes(600).toString('base64')}\r\n`);
    for (const text of messages) await ok(['--store', store, 'append', 'user/alice/INBOX', '-'], { input: text });
    await ok(['--store', store, 'flags', 'user/alice/INBOX', '2:4', '--add', '\\Seen']);
    await ok(['--store', store, 'expunge', 'user/alice/INBOX', '1']);
    const nightly = await json(['--store', store, 'backup', '--repo', repo, '--key-file', key]);
    expect(nightly.messages).toBe(11);
    const statusBefore = await json(['--store', store, 'mailbox', 'status', 'user/alice/INBOX']);
    // the disk is lost
    rmSync(join(dir, 'disk1'), { recursive: true });
    expect((await run(['--store', store, 'mailbox', 'list'])).code).not.toBe(0);
    // README's steps 2 to 5, as printed there
    const newStore = join(dir, 'disk2', 'mailstore');
    mkdirSync(join(dir, 'disk2'));
    const [check, backups, restore, scrub, ...more] = readmeSteps({ '/mnt/backup/mail': repo, 'backup.key': key, '/var/spool/mailstore': newStore });
    expect(more).toEqual([]);
    expect([check![0], backups![0], restore![0], scrub![2]]).toEqual(['backup', 'backups', 'restore', 'scrub']);
    // step 2: check the repository (every byte) with the key kept elsewhere
    await ok(check!);
    // step 3: list the snapshots, pick the latest
    await ok(backups!);
    const list = await json(backups!);
    expect(list.snapshots.at(-1).id).toBe(nightly.snapshot);
    // step 4: restore into the new disk's (missing) store directory
    const restored = await json(restore!);
    expect(restored.messages).toBe(11);
    expect(restored.uidValidity).toBe('new'); // README's step gives --new-uidvalidity
    // step 5: scrub the restored store, compare, and go on backing up into the same repository
    await ok(scrub!);
    // as it was, under a new uidValidity: IMAP clients read the mailbox again, so none shows its cache of mail
    // the lost disk took after the backup for the mail the restored store gives those uids
    const statusAfter = await json(['--store', newStore, 'mailbox', 'status', 'user/alice/INBOX']);
    expect(statusAfter.uidValidity).toBeGreaterThan(statusBefore.uidValidity);
    expect({ ...statusAfter, uidValidity: 0 }).toEqual({ ...statusBefore, uidValidity: 0 });
    for (const uid of [2, 7, 12]) expect(await ok(['--store', newStore, 'fetch', 'user/alice/INBOX', String(uid)])).toBe(messages[uid - 1]);
    expect((await json(['--store', newStore, 'fetch', 'user/alice/INBOX', '3', '--info'])).flags).toContain('\\Seen');
    const after = await json(['--store', newStore, 'backup', '--repo', repo, '--key-file', key]);
    expect(after.newBlobs).toBe(0); // the restored store's messages are all in the repository
  });
});
