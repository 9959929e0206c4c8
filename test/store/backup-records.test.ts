// The store's record of where it was backed up (BACKUPS) as root writes it beside no writer: its
// read-only open of a store another user owns (the daemon stopped). Nothing else serialises that
// read, change and rename, so two nightly jobs, or a daemon started meanwhile, must not drop one.
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeFileSystem } from '../../src/fs/node-fs.js';
import { kernelLockAvailable } from '../../src/fs/kernel-lock.js';
import { BACKUPS_FILE, readBackupRecords, recordBackup, type BackupRecord } from '../../src/store/backup-records.js';
import { closedStoreWithInbox, kernelLockHolder, releaseHolder } from '../helpers/lock-holder.js';
import { expectCode } from '../sim/helpers.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';

const fs = new NodeFileSystem();
// the store directory's owner as root would give it: here the caller itself, so no root is needed
const owner = { uid: process.getuid!(), gid: process.getgid!() };
const record = (n: number): BackupRecord => ({ id: `repo-${n}`, path: `/backup/${n}`, snapshot: `snap-${n}`, time: 1_000 + n });
const readOnly = (root: string) => ({ ...unopenedRoot(fs, root), readOnly: true });

describe.skipIf(!kernelLockAvailable())('root recording a backup beside no writer', () => {
  it('eight records written at once (nightly jobs into eight repositories) all stay: each takes the writer lock for its read and rename', async () => {
    const root = await closedStoreWithInbox();
    await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) => recordBackup(readOnly(root), record(n), owner)));
    expect((await readBackupRecords(fs, root)).records.map((r) => r.id).sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => `repo-${n}`));
  });

  it('a writer that started since the backup opened (a daemon) holds the lock: LOCKED after the wait, BACKUPS as it was', async () => {
    const root = await closedStoreWithInbox();
    await recordBackup(readOnly(root), record(1), owner);
    const before = readFileSync(join(root, BACKUPS_FILE));
    const holder = await kernelLockHolder(root);
    try {
      const error = await expectCode(recordBackup(readOnly(root), record(2), owner, 300), 'LOCKED');
      expect(error.message).toMatch(/opened for writing since this backup began/);
      expect(readFileSync(join(root, BACKUPS_FILE))).toEqual(before);
    } finally {
      await releaseHolder(holder);
    }
    // let go: the next record is written beside the first
    await recordBackup(readOnly(root), record(2), owner);
    expect((await readBackupRecords(fs, root)).records.map((r) => r.id)).toEqual(['repo-1', 'repo-2']);
  });

  it('a lock file that cannot be opened (a directory in its place: EISDIR) fails the record with IO naming it, BACKUPS as it was', async () => {
    const root = await closedStoreWithInbox();
    await recordBackup(readOnly(root), record(1), owner);
    const before = readFileSync(join(root, BACKUPS_FILE));
    renameSync(join(root, 'lock', 'LOCK'), join(root, 'lock', 'LOCK.aside'));
    mkdirSync(join(root, 'lock', 'LOCK'));
    const error = await expectCode(recordBackup(readOnly(root), record(2), owner), 'IO');
    expect(error.message).toMatch(/taking the lock to record the backup .*lock\/LOCK: EISDIR/);
    expect(readFileSync(join(root, BACKUPS_FILE))).toEqual(before);
  });

  it('a store whose lock file is missing gets its record as before, and no lock file of the recorder is made there', async () => {
    const root = await closedStoreWithInbox();
    renameSync(join(root, 'lock', 'LOCK'), join(root, 'lock', 'LOCK.aside'));
    await recordBackup(readOnly(root), record(1), owner);
    expect((await readBackupRecords(fs, root)).records.map((r) => r.id)).toEqual(['repo-1']);
    expect(existsSync(join(root, 'lock', 'LOCK'))).toBe(false);
  });
});
