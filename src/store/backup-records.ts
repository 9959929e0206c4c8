// Where this store was backed up to (BACKUPS, beside STORE): each repository's id, the path it was
// at, its last snapshot and when. A backup that finds no repository at a path recorded here is
// refused rather than making a new one (a backup disk that did not mount: issue 14, docs/BACKUP.md
// "A repository that is not there"). A file of this host, not a journaled record: the paths are
// this host's mount points, which a replica on another host or a restore onto a new machine would
// take for its own; and a replica or a read-only open (a full disk) writes no journal record.
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileOwner } from '../fs/durable.js';
import type { FileSystem } from '../fs/filesystem.js';
import { kernelLockAvailable, takeKernelLock, type KernelLock } from '../fs/kernel-lock.js';
import { backupLimits, limits } from '../limits.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicMs } from '../monotonic.js';
import { LAYOUT } from './identity.js';
import { readSetting, writeSetting, type StoreRoot } from './setting-file.js';

export const BACKUPS_FILE = 'BACKUPS';

export interface BackupRecord {
  /** The repository's id (its config's). */
  id: string;
  /** Where it was: an absolute directory, or an s3: URL. */
  path: string;
  /** The last snapshot this store saved there, and when (ms since the epoch). */
  snapshot: string;
  time: number;
}

export interface BackupRecords {
  records: BackupRecord[];
  /** The file's path when it is damaged (its records unknown). */
  damaged?: string;
}

function isRecord(value: unknown): value is BackupRecord {
  const r = value as BackupRecord;
  return typeof r === 'object' && r !== null && typeof r.id === 'string' && typeof r.path === 'string' && typeof r.snapshot === 'string' && Number.isFinite(r.time);
}

export async function readBackupRecords(fs: FileSystem, root: string): Promise<BackupRecords> {
  const stored = await readSetting(fs, root, BACKUPS_FILE, 'the record of backups');
  if (!stored) return { records: [] };
  let value: { records?: unknown } | undefined;
  try {
    value = stored.intact ? (JSON.parse(stored.text) as { records?: unknown }) : undefined;
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value?.records) || !value.records.every(isRecord)) return { records: [], damaged: join(root, BACKUPS_FILE) };
  return { records: value.records };
}

/**
 * Records a backup of the store (durably, replacing the repository's older record); the oldest
 * records go past backupLimits.recordsMax. A damaged file is replaced. `owner`: root recording the
 * backup of a store another user owns, open read-only for that reason alone (its nightly cron job
 * with the daemon stopped): the file is written as that user's, as the daemon would write it.
 */
export async function recordBackup(store: StoreRoot & { readOnly: boolean }, record: BackupRecord, owner?: FileOwner,
  lockWaitMs = backupLimits.recordLockWaitMs): Promise<void> {
  if (!isRecord(record)) throw new MailstoreError('INVALID', 'a backup record needs an id, a path, a snapshot and a time');
  if (store.readOnly && !owner) throw new MailstoreError('ACCESS', `the store at ${store.root} is open read-only: the backup cannot be recorded there`, { path: store.root });
  // a writer's own record is serialised by the lock it holds; root's, beside no writer, takes it now
  const lock = store.readOnly ? await takeRecordLock(store.root, lockWaitMs) : undefined;
  try {
    const { records } = await readBackupRecords(store.fs, store.root);
    const kept = records.filter((r) => r.id !== record.id);
    kept.push(record);
    kept.sort((a, b) => a.time - b.time);
    const text = JSON.stringify({ records: kept.slice(-backupLimits.recordsMax) });
    await writeSetting(store, BACKUPS_FILE, text, 'the record of backups', owner);
  } finally {
    await lock?.release();
  }
}

/**
 * Root's record beside no writer (its read-only open) is a read, a change and a rename that
 * nothing else serialises: two nightly jobs into two repositories would each rename its own file
 * over the other's, and a daemon started since the open checked would do the same, one record
 * lost with no word. The writer's kernel lock (lock/LOCK) is taken for the moment of the read and
 * write; it is never made here (a file of root's in the store would lock its daemon out): where
 * it is missing, or fs-ext is not installed, the record is written as before. A lock still held
 * after `waitMs` belongs to a writer that started meanwhile, which holds it for its life: LOCKED,
 * and the caller warns that the backup was saved but not recorded.
 */
async function takeRecordLock(root: string, waitMs: number): Promise<KernelLock | undefined> {
  if (!kernelLockAvailable()) return undefined;
  const path = join(root, LAYOUT.lockDb, 'LOCK');
  const started = monotonicMs();
  for (;;) {
    const lock = await takeKernelLock(path, { create: false }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw fromSystemError(error, 'taking the lock to record the backup', path);
    });
    if (lock !== undefined) return lock ?? undefined;
    const waited = monotonicMs() - started;
    if (waited >= waitMs) {
      throw new MailstoreError('LOCKED', `the store at ${root} was opened for writing since this backup began (${path} is held): its record is not written beside that writer`, { path });
    }
    await sleep(Math.min(limits.lockRetryMs, waitMs - waited));
  }
}
