// Compaction on a replicated store, the replica's side. The primary's compaction reaches a
// replica as ordinary rounds: its new packs' bytes come before the records that relocate blobs
// into them (durableTails lists a new pack once it is named, and a round sends the packs before its
// records), and the primary commits `pack.removed` only after it deleted the old packs. The
// replica deletes its copies of those packs once the round holding `pack.removed` is durable and
// applied. The list is written durably before that round commits, so a crash between the commit
// and the deletions is finished when the replica connects again.
import { join } from 'node:path';
import { fromSystemError } from '../errors.js';
import { removeStoreFile, writeStoreFile } from '../store/setting-file.js';
import { decodeCbor } from '../index/codec.js';
import { limits } from '../limits.js';
import { packsInUse } from '../store/compact-plan.js';
import type { JournalPayload } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Log } from './transport.js';

/** In the replica's root: the packs a committed (or committing) round removed, and that round's last seq. */
export const PACKS_TO_REMOVE_FILE = 'REPLICA-PACKS-TO-REMOVE';
const NEEDLE = Buffer.from('pack.removed');

/** The packs the records' `pack.removed` ops name (only records holding the op name are decoded). */
export function packsRemovedIn(records: { payload: Buffer }[]): number[] {
  const out: number[] = [];
  for (const record of records) {
    if (!record.payload.includes(NEEDLE)) continue;
    for (const op of decodeCbor<JournalPayload>(record.payload).ops) if (op.op === 'pack.removed') out.push(...op.packs);
  }
  return out;
}

/** Before the round commits: the packs it removes, durable. */
export async function notePacksToRemove(store: Store, seq: number, packs: number[]): Promise<void> {
  const earlier = await readNoted(store);
  const all = [...new Set([...(earlier?.packs ?? []), ...packs])];
  await writeStoreFile(store, PACKS_TO_REMOVE_FILE, Buffer.from(JSON.stringify({ seq, packs: all })), 'the list of packs to remove');
}

/**
 * Deletes the noted packs once their round is committed here (a round that did not commit is sent
 * again, and noted again). A pack some blob entry still points into is kept and reported: never
 * deleted on the primary's word alone.
 */
export async function removeNotedPacks(store: Store, log: Log): Promise<number[]> {
  const noted = await readNoted(store);
  if (!noted) return [];
  const removed: number[] = [];
  const left: number[] = [];
  if (store.changes.lastSeq >= noted.seq) {
    const { packs, db } = store.replication();
    const inUse = await packsInUse(db, new Set(noted.packs));
    for (const pack of noted.packs) {
      if (inUse.has(pack)) log(`replication: the primary removed pack ${pack} but blob entries here still point into it: it was kept; run 'mailstore replica check' and 'mailstore scrub'`);
      else if (pack === packs.appendPack) left.push(pack); // this replica's newest pack file: later
      else if (await packs.removePack(pack, limits.compactReaderWaitMs)) removed.push(pack);
      else left.push(pack); // a reader is still inside: later
    }
    if (removed.length > 0) await packs.syncDir();
  }
  if (left.length > 0) await writeStoreFile(store, PACKS_TO_REMOVE_FILE, Buffer.from(JSON.stringify({ seq: noted.seq, packs: left })), 'the list of packs to remove');
  else await removeStoreFile(store, PACKS_TO_REMOVE_FILE, 'the list of packs to remove');
  return removed;
}

async function readNoted(store: Store): Promise<{ seq: number; packs: number[] } | undefined> {
  const path = join(store.root, PACKS_TO_REMOVE_FILE);
  const bytes = await store.fs.readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw fromSystemError(e, 'reading the list of packs to remove', path);
  });
  if (!bytes) return undefined;
  try {
    const noted = JSON.parse(bytes.toString('utf8')) as { seq: number; packs: number[] };
    if (Number.isSafeInteger(noted.seq) && Array.isArray(noted.packs) && noted.packs.every(Number.isSafeInteger)) return noted;
  } catch {
    // a torn write of the list: the round it belongs to had not committed (it is written first)
  }
  return undefined;
}
