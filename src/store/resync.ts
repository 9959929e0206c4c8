// A replica's resync from its primary's snapshot (issue 15: a replica that fell behind the
// primary's journal retention resyncs by itself). The new state is staged in resync/ beside the
// live one, which stays whole and keeps being served: the primary's snapshot file, an index built
// from it, and a journal of one empty segment that continues at the snapshot's seq + 1. Only once
// all of it is durable is the RESYNC marker written; from then on the swap is finished by whoever
// comes next (the running replica, or open after a crash): old journal and index to quarantine/,
// the staged ones in, the snapshot into snapshots/, the marker removed. Without the marker the
// staging is a leftover and is removed; the live state was never touched (pack bytes received for
// it only extend the packs, which are byte-identical to the primary's). docs/FORMAT.md, RECOVERY.md.
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { ensureDir, writeFileDurable } from '../fs/durable.js';
import { IndexDb, IndexView } from '../index/index-db.js';
import { Journal } from '../journal/journal.js';
import { encodeSegmentHeader, segmentFileName } from '../journal/journal-format.js';
import { limits } from '../limits.js';
import { LAYOUT } from './identity.js';
import { buildIndexAside, moveAside, newHealth } from './recovery.js';
import { readSnapshotFile, snapshotsDir } from './snapshot-file.js';

/** The staging directory and the marker that makes its content the store's next state. */
export const RESYNC_DIR = 'resync';
export const RESYNC_MARKER = 'RESYNC';
const STAGED_JOURNAL = 'journal';
const STAGED_INDEX = 'index';
const STAGED_SNAPSHOT = 'snapshot';

export function resyncDir(root: string): string {
  return join(root, RESYNC_DIR);
}

/** A fresh, empty staging directory (a leftover without the marker is derived data: removed). */
export async function startStaging(fs: FileSystem, root: string): Promise<string> {
  const dir = resyncDir(root);
  if (await fs.statIfExists(join(root, RESYNC_MARKER))) {
    throw new MailstoreError('INVALID', `a staged resync of ${root} is waiting to be swapped in; reopen the store to finish it`, { path: root });
  }
  await fs.removeTree(dir).catch((e) => { throw fromSystemError(e, 'removing an unfinished resync', dir); });
  await ensureDir(fs, dir);
  return dir;
}

/** Where the primary's snapshot bytes are written while they arrive. */
export function stagedSnapshotPath(root: string): string {
  return join(resyncDir(root), STAGED_SNAPSHOT);
}

export interface StagedResync {
  seq: number;
  snapshotName: string;
  /** Index meta entries to set in the new index besides the snapshot's (the replica's pack tails). */
  meta: [Buffer, unknown][];
}

/**
 * Verifies the staged snapshot, builds the journal and the index from it in resync/, and writes the
 * RESYNC marker last (every staged file durable before it). Throws CORRUPT for a damaged snapshot:
 * nothing is swapped, the live state stays.
 */
export async function stageResync(fs: FileSystem, root: string, storeId: Buffer, storeIdText: string, staged: StagedResync, segmentBytesMax: number): Promise<void> {
  const dir = resyncDir(root);
  const snapshotPath = stagedSnapshotPath(root);
  const info = await readSnapshotFile(fs, snapshotPath, staged.snapshotName, storeId);
  if (info.seq !== staged.seq) throw new MailstoreError('CORRUPT', `the resync snapshot is of seq ${info.seq}, not ${staged.seq}`, { path: snapshotPath });
  const journalDir = join(dir, STAGED_JOURNAL);
  await ensureDir(fs, journalDir);
  await writeFileDurable(fs, join(journalDir, LAYOUT.marker), Buffer.from(storeIdText + '\n'));
  // one segment with a header and no record: the journal continues at seq + 1 (its lastSeq is seq)
  await writeFileDurable(fs, join(journalDir, segmentFileName(staged.seq + 1)), encodeSegmentHeader(storeId, staged.seq + 1));
  const journal = await Journal.open(fs, journalDir, storeId, {
    segmentBytesMax, recordBytesMax: limits.journalRecordBytesMax,
    checkMounted: async () => { throw new MailstoreError('INVALID', 'a staged journal is not written to'); },
  });
  try {
    await journal.findTail();
    const health = newHealth();
    const built = await buildIndexAside(fs, root, journal, storeId, health, { snapshot: info, damaged: [] });
    if (health.degraded) throw new MailstoreError('CORRUPT', `the resync snapshot did not load cleanly: ${health.findings.slice(0, 3).join('; ')}`, { path: snapshotPath });
    const db = await IndexDb.open(built.path, false);
    try {
      const view = new IndexView(db);
      for (const [key, value] of staged.meta) view.put(key, value);
      await view.flush();
    } finally {
      await db.close();
    }
    await fs.rename(built.path, join(dir, STAGED_INDEX));
  } finally {
    await journal.close();
  }
  await fs.syncDir(dir);
  await writeFileDurable(fs, join(root, RESYNC_MARKER), Buffer.from(`${staged.seq} ${staged.snapshotName}\n`));
}

/**
 * Finishes a staged resync (marker present): each step is done only if its source is still
 * there, so it can be repeated after a crash at any point. Returns the snapshot's seq, or
 * undefined when there was nothing to finish. A staging without the marker is removed.
 */
export async function finishResync(fs: FileSystem, root: string): Promise<number | undefined> {
  const dir = resyncDir(root);
  const marker = await fs.readFile(join(root, RESYNC_MARKER)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw fromSystemError(e, 'reading the resync marker', join(root, RESYNC_MARKER));
  });
  if (!marker) {
    if (await fs.statIfExists(dir)) await fs.removeTree(dir);
    return undefined;
  }
  const [seqText, snapshotName] = marker.toString('utf8').trim().split(' ');
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || !snapshotName) throw new MailstoreError('CORRUPT', `${join(root, RESYNC_MARKER)} is damaged; remove the replica directory and start the replica again`, { path: root });
  await swapIn(fs, root, join(dir, STAGED_JOURNAL), join(root, LAYOUT.journal), 'journal-before-resync');
  await swapIn(fs, root, join(dir, STAGED_INDEX), join(root, LAYOUT.index), 'index-before-resync');
  const snapshot = stagedSnapshotPath(root);
  if (await fs.statIfExists(snapshot)) {
    await ensureDir(fs, snapshotsDir(root));
    await fs.rename(snapshot, join(snapshotsDir(root), snapshotName));
    await fs.syncDir(snapshotsDir(root));
  }
  await fs.unlink(join(root, RESYNC_MARKER));
  await fs.syncDir(root);
  await fs.removeTree(dir).catch(() => undefined);
  return seq;
}

/** staged -> live, the live one to quarantine/ first; a crash between leaves only the staged one, renamed on the next run. */
async function swapIn(fs: FileSystem, root: string, staged: string, live: string, label: string): Promise<void> {
  if (!(await fs.statIfExists(staged))) return;
  await moveAside(fs, root, live, label);
  await fs.rename(staged, live).catch((e) => { throw fromSystemError(e, 'installing the resynced state', live); });
  await fs.syncDir(root);
}

/**
 * The staged journal when a resync's swap is to be finished (its marker written) and the staged
 * journal is still in the staging directory: an open verifies the store's identity against it when
 * a crash left no live journal (between moving the old one aside and renaming this one in).
 */
export async function stagedJournalToFinish(fs: FileSystem, root: string): Promise<string | undefined> {
  try {
    if (!(await fs.statIfExists(join(root, RESYNC_MARKER)))) return undefined;
    const staged = join(resyncDir(root), STAGED_JOURNAL);
    return (await fs.statIfExists(staged)) ? staged : undefined;
  } catch {
    return undefined; // an unreadable or missing root: the identity check says what is wrong
  }
}

/** A read-only open cannot finish a staged resync: it refuses instead of serving either half. */
export async function refuseHalfResync(fs: FileSystem, root: string): Promise<void> {
  if (await fs.statIfExists(join(root, RESYNC_MARKER))) {
    throw new MailstoreError('UNAVAILABLE', `the replica at ${root} is in the middle of a resync from its primary; open it read-write (or start its daemon) once to finish it`, { path: root });
  }
}
