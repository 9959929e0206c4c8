// The recipe of README and RECOVERY.md, "Restore after losing the whole disk", step by step with
// the built CLI: nightly encrypted backups to another disk, the store's disk lost, a new store
// restored from the latest snapshot, scrubbed clean, and backed up again into the same repository.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireBuilt, tempDir } from '../cli/helpers.js';
// command lines in this process (in-process.ts, which checks a sample against the spawned command);
// what only a process shows is commands.test.ts's and environment.test.ts's
import { json, ok, run } from '../cli/in-process.js';

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
    // step 1: check the repository (every byte) with the key kept elsewhere
    await ok(['backup', 'check', '--repo', repo, '--key-file', key, '--read-data']);
    // step 2: list the snapshots, pick the latest
    const list = await json(['backups', '--repo', repo, '--key-file', key]);
    expect(list.snapshots.at(-1).id).toBe(nightly.snapshot);
    // step 3: restore into the new disk's (missing) store directory
    const newStore = join(dir, 'disk2', 'mailstore');
    mkdirSync(join(dir, 'disk2'));
    const restored = await json(['restore', '--repo', repo, '--key-file', key, '--snapshot', 'latest', '--new-uidvalidity', '--to', newStore]);
    expect(restored.messages).toBe(11);
    expect(restored.uidValidity).toBe('new');
    // step 4: scrub the restored store, compare, and go on backing up into the same repository
    await ok(['--store', newStore, 'scrub']);
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
