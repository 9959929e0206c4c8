// Where this store was backed up to (BACKUPS, beside STORE): each repository's id, the path it was
// at, its last snapshot and when. A backup that finds no repository at a path recorded here is
// refused rather than making a new one (a backup disk that did not mount: issue 14, docs/BACKUP.md
// "A repository that is not there"). A file of this host, not a journaled record: the paths are
// this host's mount points, which a replica on another host or a restore onto a new machine would
// take for its own; and a replica or a read-only open (a full disk) writes no journal record.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileOwner } from '../fs/durable.js';
import type { FileSystem } from '../fs/filesystem.js';
import { backupLimits } from '../limits.js';
import { readSetting, writeSetting } from './setting-file.js';

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
export async function recordBackup(store: { fs: FileSystem; root: string; readOnly: boolean }, record: BackupRecord, owner?: FileOwner): Promise<void> {
  if (!isRecord(record)) throw new MailstoreError('INVALID', 'a backup record needs an id, a path, a snapshot and a time');
  if (store.readOnly && !owner) throw new MailstoreError('ACCESS', `the store at ${store.root} is open read-only: the backup cannot be recorded there`, { path: store.root });
  const { records } = await readBackupRecords(store.fs, store.root);
  const kept = records.filter((r) => r.id !== record.id);
  kept.push(record);
  kept.sort((a, b) => a.time - b.time);
  const text = JSON.stringify({ records: kept.slice(-backupLimits.recordsMax) });
  await writeSetting(store.fs, store.root, BACKUPS_FILE, text, 'the record of backups', owner);
}
