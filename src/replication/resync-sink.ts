// The replica's side of a resync (resync-source.ts): the snapshot is written into resync/, the
// pack bytes at the primary's offsets into packs/ (they only extend what the live state uses),
// then the store stages and swaps in the new state (src/store/resync.ts). Until the swap the
// replica keeps serving its older, whole state; a crash before the RESYNC marker leaves that state
// and the next connection starts the resync again, a crash after it is finished by open.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import { startStaging, stagedSnapshotPath } from '../store/resync.js';
import type { Store } from '../store/store.js';
import { PACK_TAILS_KEY } from './replica.js';
import { notePacksToRemove, removeNotedPacks } from './pack-removal.js';
import { inlineGapAdvice, noteInlineGap } from './inline-gap.js';
import { peerError, type Connection, type Log, type Message } from './transport.js';

export async function receiveResync(store: Store, connection: Connection, offer: Message, log: Log): Promise<number> {
  const seq = Number(offer.seq);
  const size = Number(offer.bytes);
  const name = String(offer.name);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(size) || !/^[\w.-]+$/.test(name)) throw new MailstoreError('INVALID', 'the primary offered a resync without a snapshot seq, name and size');
  log(`replication: this replica is behind the primary's retained journal: resyncing from its snapshot ${name} (seq ${seq}, ${size} bytes)`);
  const control = store.replication();
  await store.checkMounted(stagedSnapshotPath(store.root)); // a stream into resync/, not setting-file.ts's whole files: umount -l, not into the empty mount point
  await startStaging(store.fs, store.root);
  const handle = await store.fs.open(stagedSnapshotPath(store.root), 'createNew');
  let received = 0;
  let tails: [number, number][];
  try {
    for (;;) {
      const message = await connection.next(3 * limits.replicationPingMs);
      if (!message) throw new MailstoreError('UNAVAILABLE', `the primary closed the connection during a resync (${received} of ${size} snapshot bytes)`);
      if (message.t === 'snapshot') {
        const bytes = Buffer.from(message.bytes as Uint8Array);
        const offset = Number(message.offset);
        // inside the snapshot offered: a stream that went on past it (or wrote far beyond it) filled the replica's disk
        if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > size || received + bytes.length > size) {
          throw new MailstoreError('INVALID', `the primary sent snapshot bytes at ${String(message.offset)} past the ${size} bytes it offered (${received} received)`);
        }
        await handle.write(bytes, offset);
        received += bytes.length;
      } else if (message.t === 'pack') {
        await control.packs.writeReplicated(Number(message.pack), Number(message.offset), Buffer.from(message.bytes as Uint8Array));
      } else if (message.t === 'resync-end') {
        tails = message.tails as [number, number][];
        break;
      } else if (message.t === 'error') {
        throw peerError(message, 'the primary');
      } else {
        throw new MailstoreError('INVALID', `the primary sent ${message.t} during a resync`);
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (received !== size) throw new MailstoreError('CORRUPT', `the resync snapshot arrived with ${received} of ${size} bytes`);
  await control.packs.syncReplicated();
  await control.installResync({ seq, snapshotName: name, meta: [[PACK_TAILS_KEY, tails]] });
  log(`replication: resync installed: this replica is at seq ${seq}`);
  // a reminder for status, check and promote: scrub finds the same; a failure here must not undo the resync
  const missing = await noteInlineGap(store).catch((error: unknown) => { log(`replication: could not count the inline bodies the resync left out: ${(error as Error).message}`); return 0; });
  if (missing > 0) log(`replication: the resync left out ${inlineGapAdvice(missing)}`);
  // packs the primary no longer has (a compaction removed them while this replica was away): gone
  // here too, through the same durable list as a shipped compaction (never one the index uses)
  const theirs = new Set(tails.map(([pack]) => pack));
  const orphans = (await control.packs.listPacks()).filter((pack) => !theirs.has(pack));
  if (orphans.length > 0) {
    await notePacksToRemove(store, seq, orphans);
    await removeNotedPacks(store, log);
  }
  await connection.send({ t: 'ack', seq });
  return seq;
}
