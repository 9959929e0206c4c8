// A replica's cursor on its primary (consumers/replica-NODEID) that does not read (a flipped byte):
// before, that replica's every connection was refused CORRUPT until an admin removed the file. The
// replica's hello says what it holds, so the primary can write the cursor again: the damaged bytes
// are copied into quarantine/ first, then the cursor is replaced in one rename (never absent, so
// retirement is never left unpinned by it). While it was damaged no retirement ran (every one is
// refused on a cursor that does not read), so the journal still continues the replica's seq unless
// the replica itself went back (an older image): then it is resynced, as any replica behind.
import { join, relative } from 'node:path';
import { isMailstoreError } from '../errors.js';
import { fileTimeStamp, unusedPath } from '../fs/durable.js';
import { CONSUMERS_DIR } from '../store/changes.js';
import { LAYOUT } from '../store/identity.js';
import { writeStoreFile } from '../store/setting-file.js';
import type { Store } from '../store/store.js';
import type { Log } from './transport.js';

/**
 * Replaces a damaged `replica-NODEID` cursor by one at `replicaSeq` (the seq the replica's hello
 * names), its bytes kept in quarantine/; logs it once (the next read succeeds). Nothing when the
 * cursor reads, is absent, or the store is open read-only.
 */
export async function replaceDamagedCursor(store: Store, nodeId: string, replicaSeq: number, log: Log): Promise<void> {
  if (store.readOnly) return;
  const name = `replica-${nodeId}`;
  const damaged = await store.changes.cursor(name).then(() => false, (error: unknown) => {
    if (isMailstoreError(error, 'CORRUPT')) return true;
    throw error;
  });
  if (!damaged) return;
  const path = join(store.root, CONSUMERS_DIR, name);
  const kept = await unusedPath(store.fs, join(store.root, LAYOUT.quarantine, `consumer-${name}-${fileTimeStamp()}-${process.pid}`));
  // through the mount check, as every write under the root: a root that left its file system (umount -l) gets nothing
  await writeStoreFile(store, relative(store.root, kept), await store.fs.readFile(path), `the damaged cursor's copy ${kept}`);
  await store.changes.register(name, replicaSeq, { replaceDamaged: true });
  const resync = replicaSeq + 1 < store.changes.firstSeq;
  log(`replication: replica ${nodeId}'s cursor ${path} was damaged; kept as ${kept} and written again at seq ${replicaSeq}, the seq the replica holds: ` +
    (resync ? `the journal no longer continues it (it starts at ${store.changes.firstSeq}: the replica went back to an older copy?), so it is resynced from a snapshot`
      : 'it catches up from there (no record it lacks was retired: no retirement runs while a cursor is damaged)'));
}
