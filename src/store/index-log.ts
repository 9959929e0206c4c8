// Bounds LevelDB's own bookkeeping files in index/: its info log (LOG) and its MANIFEST grow at
// every memtable flush and compaction for as long as the index is open (LevelDB rolls them only at
// an open), so a daemon that runs for a year reopens its index in place once they pass
// limits.indexLogBytesMax (docs/FORMAT.md, "Index files"). Loaded at the first check, not by a CLI command.
import type { FileSystem } from '../fs/filesystem.js';
import { limits } from '../limits.js';

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
  indexPath: string;
  /** Runs `fn` with snapshots paused and the Writer held (nothing commits). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** IndexDb.reopen of the store's index. */
  reopen(): Promise<boolean>;
}

/**
 * Reopens the index when its LOG and MANIFEST passed limits.indexLogBytesMax. 'reopened', 'under'
 * (nothing to do), or 'busy' (a LevelDB snapshot or raw iterator was open: a backup or scrub
 * reading; the next check tries again).
 */
export async function rollIndexLog(host: IndexLogHost): Promise<'reopened' | 'under' | 'busy'> {
  if ((await indexLogBytes(host.fs, host.indexPath)) <= limits.indexLogBytesMax) return 'under';
  return (await host.exclusive(() => host.reopen())) ? 'reopened' : 'busy';
}
