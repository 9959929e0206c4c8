// The primary's side of a resync (issue 15): a replica whose seq the retained journal no longer
// continues (segments retired below it, or a new replica of an old primary) gets a snapshot taken
// for it (or the newest verified one the journal continues), then every pack byte it lacks, then goes on with
// ordinary rounds from the snapshot's seq. Its cursor is set to that seq before the first byte is
// sent, so retirement cannot take the records after it meanwhile.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import { newestUsableSnapshot } from '../store/snapshots.js';
import type { Store } from '../store/store.js';
import type { Connection } from './transport.js';

/** Sends the pack bytes after `from` (per pack) up to the durable tails; returns those tails and their sum. */
export async function sendPackBytes(store: Store, connection: Connection, from: Map<number, number>): Promise<{ tails: Map<number, number>; packBytes: number }> {
  const { packs } = store.replication();
  const tails = await packs.durableTails();
  let packBytes = 0;
  for (const [pack, end] of [...tails].sort((a, b) => a[0] - b[0])) {
    for (let offset = from.get(pack) ?? 0; offset < end;) {
      const bytes = await packs.readRange(pack, offset, Math.min(limits.replicationPackChunkBytes, end - offset));
      if (bytes.length === 0) break;
      // room: a compaction's new pack, which a replica below its reserve must take to make room
      await connection.send({ t: 'pack', pack, offset, bytes, ...(packs.isSidePack(pack) ? { room: true } : {}) });
      offset += bytes.length;
    }
    packBytes += end;
  }
  return { tails, packBytes };
}

/**
 * Streams a snapshot and the packs to the replica and waits until it has swapped them in; returns
 * the seq its rounds go on from and the pack tails it now holds.
 */
export async function sendResync(store: Store, connection: Connection, nodeId: string, replicaTails: Map<number, number>, log: (line: string) => void): Promise<{ seq: number; tails: Map<number, number> }> {
  if (store.readOnly) throw new MailstoreError('REFUSED', 'a read-only primary cannot resync a replica (it cannot pin its journal)');
  // A fresh snapshot names only packs that exist now: an older one may name packs a compaction
  // removed since (the records after it relocate those blobs, but until they arrive the replica's
  // index would point into packs it cannot get). When it cannot be taken, the newest one serves.
  await store.snapshot().catch((error: unknown) => log(`replication: a snapshot for the resync of ${nodeId} failed (${(error as Error).message}); the newest existing one is used`));
  const { snapshot } = await newestUsableSnapshot(store.fs, store.root, store.storeId, store.changes.firstSeq);
  if (!snapshot) {
    throw new MailstoreError('UNAVAILABLE', `the replica needs a resync but this primary has no verified snapshot that its journal continues; run 'mailstore snapshot' on the primary`);
  }
  const cursorName = `replica-${nodeId}`;
  const cursor = await store.changes.register(cursorName, snapshot.seq);
  if (cursor.seq < snapshot.seq) await store.changes.advance(cursorName, snapshot.seq);
  if (snapshot.seq + 1 < store.changes.firstSeq) throw new MailstoreError('UNAVAILABLE', `the journal after snapshot seq ${snapshot.seq} was retired meanwhile; the replica tries again`);
  // The replica gets the snapshot and the records after it: a body inline in a record the snapshot
  // covers would be in neither (every read of it CORRUPT there, 'replica check' identical). Moved
  // into a pack by records after the snapshot, it reaches the replica as any append does. A
  // synchronous-replica gate that refuses writes (this replica not yet counted) refuses the move
  // too: the resync goes on, and those bodies reach the replica with the next move (a retirement's).
  await store.replication().moveInlineBodies(snapshot.seq).catch((error: unknown) => {
    if (!(error instanceof MailstoreError) || error.code !== 'UNAVAILABLE') throw error;
    log(`replication: the inline bodies snapshot ${snapshot.name} covers stay in the journal for now (${error.message}): until a later move ships them, replica ${nodeId} cannot read those messages`);
  });
  log(`replication: replica ${nodeId} is behind the retained journal (it starts at ${store.changes.firstSeq}): resyncing it from snapshot ${snapshot.name} (seq ${snapshot.seq}, ${snapshot.bytes} bytes) and the packs`);
  // read from one open handle: a snapshot pruned meanwhile stays readable until it is closed
  const handle = await store.fs.open(snapshot.path, 'read');
  try {
    await connection.send({ t: 'resync', seq: snapshot.seq, name: snapshot.name, bytes: snapshot.bytes });
    for (let offset = 0; offset < snapshot.bytes;) {
      const length = Math.min(limits.replicationPackChunkBytes, snapshot.bytes - offset);
      const bytes = Buffer.allocUnsafe(length);
      const n = await handle.read(bytes, 0, length, offset);
      if (n <= 0) throw new MailstoreError('CORRUPT', `snapshot ${snapshot.name} ended at ${offset} of ${snapshot.bytes} bytes`, { path: snapshot.path });
      await connection.send({ t: 'snapshot', offset, bytes: bytes.subarray(0, n) });
      offset += n;
    }
  } finally {
    await handle.close();
  }
  const { tails } = await sendPackBytes(store, connection, replicaTails);
  await connection.send({ t: 'resync-end', tails: [...tails] });
  const ack = await connection.expect('ack', limits.replicaApplyTimeoutMs);
  if (Number(ack.seq) !== snapshot.seq) throw new MailstoreError('INVALID', `the replica acknowledged seq ${String(ack.seq)} after a resync to ${snapshot.seq}`);
  log(`replication: replica ${nodeId} resynced to seq ${snapshot.seq}`);
  return { seq: snapshot.seq, tails };
}
