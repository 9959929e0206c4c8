// Bounds LevelDB's own bookkeeping files in index/: its info log (LOG) and its MANIFEST grow at
// every memtable flush and compaction for as long as the index is open (LevelDB rolls them only at
// an open), so a daemon that runs for a year reopens its index in place once they pass
// limits.indexLogBytesMax (docs/FORMAT.md, "Index files"). Loaded at the first check, not by a CLI command.
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import type { IndexDb } from '../index/index-db.js';
import { limits } from '../limits.js';
import type { Maintenance } from './maintenance.js';

/** Bytes of LevelDB's info log (LOG, not LOG.old: that one is replaced at each open) and MANIFEST-* in `indexPath`. */
export async function indexLogBytes(fs: FileSystem, indexPath: string): Promise<number> {
  let total = 0;
  for (const name of await fs.readdir(indexPath)) {
    if (name !== 'LOG' && !name.startsWith('MANIFEST-')) continue;
    total += (await fs.statIfExists(`${indexPath}/${name}`))?.size ?? 0; // gone meanwhile: LevelDB's own rotation
  }
  return total;
}

export interface IndexLogHost {
  fs: FileSystem;
  /** The store's index now (a repair may have installed another since the check began). */
  index(): IndexDb;
  /** The store's maintenance hooks: snapshots paused (withoutSnapshots), the Writer held (runExclusive). */
  maintenance: Pick<Maintenance, 'withoutSnapshots' | 'runExclusive'>;
  closed(): boolean;
  /** Stops the store (Writer.stop: every change fails with it, onStop is told). */
  stop(failure: MailstoreError): void;
}

/**
 * Reopens the index (IndexDb.reopen) when its LOG and MANIFEST passed limits.indexLogBytesMax, with
 * snapshots paused and the Writer held: nothing commits meanwhile, and reads that reach LevelDB wait
 * for it (IndexDb.readNow for the synchronous ones). 'reopened', 'under' (nothing to do), or 'busy'
 * (a LevelDB snapshot or raw iterator was open: a backup or scrub reading; the next check tries
 * again). An open that fails after LevelDB's close stops the store (CLOSED): nothing acknowledged is
 * lost, the journal holds it, and the next open recovers the index.
 */
export async function rollIndexLog(host: IndexLogHost): Promise<'reopened' | 'under' | 'busy'> {
  if (host.closed() || (await indexLogBytes(host.fs, host.index().path)) <= limits.indexLogBytesMax) return 'under';
  return (await host.maintenance.withoutSnapshots(() => host.maintenance.runExclusive(async () => {
    const db = host.index();
    // a synchronous read that met the reopen (a bug: it did not go through readNow) stops the store at once
    const broken = (bug: Error) => host.stop(new MailstoreError('HALTED', `the store stopped itself: ${bug.message}; nothing acknowledged is lost; open it again, and report this message`, { path: db.path, cause: bug }));
    try {
      return await db.reopen(broken);
    } catch (error) {
      const failure = new MailstoreError('CLOSED', `reopening the index at ${db.path} (to roll its LOG and MANIFEST) failed: ${(error as Error).message}; the store stopped: nothing acknowledged is lost (the journal holds it); open it again, which recovers the index`, { path: db.path, cause: error });
      host.stop(failure);
      throw failure;
    }
  }))) ? 'reopened' : 'busy';
}
