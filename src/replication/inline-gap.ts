// A replica whose resync did not carry every inline body: the index refers to bodies inside
// journal records the resync's snapshot covers, which the replica's journal never held, and no
// pack copy came (a primary before session 32, or a move its synchronous-replica gate refused).
// Those messages read CORRUPT until the primary's next move of inline bodies ships them; scrub finds
// them, but `replica status`, `replica check` (index only) and `promote` looked healthy. The resync
// counts them once and leaves REPLICA-INLINE-GAP while any is missing; status, check and promote
// read the count the file holds; promote counts again (the whole blob index) and removes it once
// none is missing. Only a round that moves bodies (blob.relocate) shrinks the gap: the replica counts
// again then (recountInlineGap), not at every status or check, which scanned every blob entry each.
import { INLINE_PACK } from '../blob/pack-store.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import type { BlobRecord } from '../store/records.js';
import { readSetting, writeSetting } from '../store/setting-file.js';
import type { Store } from '../store/store.js';

export const INLINE_GAP_FILE = 'REPLICA-INLINE-GAP';
const NOTE = 'the note of missing inline bodies';

/** What status and promote say: the remedy is on the primary. */
export function inlineGapAdvice(blobs: number): string {
  return `${blobs} message bod${blobs === 1 ? 'y' : 'ies'} this replica's index refers to inside journal records it never received (its resync left out inline bodies, ` +
    `docs/FORMAT.md "Compatibility"): run 'mailstore snapshot' on the primary (a second one when the first retires nothing) and look again; promoted now, those messages would be lost`;
}

/** Referenced blobs whose body is inside a record before the journal's first seq: not on this store. */
export async function countInlineGap(store: Store): Promise<number> {
  const firstSeq = store.changes.firstSeq;
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  let missing = 0;
  for await (const batch of store.replication().db.entryBatches<BlobRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [, blob] of batch) if (blob.p === INLINE_PACK && blob.o < firstSeq && blob.r > 0) missing++;
  }
  return missing;
}

/** After a resync is installed: counts the gap, and keeps REPLICA-INLINE-GAP while there is one. */
export async function noteInlineGap(store: Store): Promise<number> {
  const missing = await countInlineGap(store);
  if (missing > 0) await writeSetting(store, INLINE_GAP_FILE, JSON.stringify({ blobs: missing, firstSeq: store.changes.firstSeq }), NOTE);
  else if (await readSetting(store.fs, store.root, INLINE_GAP_FILE, NOTE)) await writeSetting(store, INLINE_GAP_FILE, undefined, NOTE);
  return missing;
}

/**
 * What REPLICA-INLINE-GAP says is missing, without counting (replica status and check): 0 without
 * the file. A note that does not read is counted again (and written again unless read-only).
 */
export async function notedInlineGap(store: Store): Promise<number> {
  const note = await readSetting(store.fs, store.root, INLINE_GAP_FILE, NOTE);
  if (!note) return 0;
  const blobs = note.intact ? noteBlobs(note.text) : undefined;
  if (blobs !== undefined) return blobs;
  return store.readOnly ? countInlineGap(store) : noteInlineGap(store);
}

function noteBlobs(text: string): number | undefined {
  try {
    const { blobs } = JSON.parse(text) as { blobs?: unknown };
    return Number.isSafeInteger(blobs) && (blobs as number) > 0 ? blobs as number : undefined;
  } catch {
    return undefined;
  }
}

const RELOCATE = Buffer.from('blob.relocate');

/**
 * When the note is there, counts again and rewrites or removes it: as a replica starts (a stop
 * between a move and its count left the old count), and after each round applied that moved bodies
 * (`records` with blob.relocate or blob.relocateRun: the primary's move of inline bodies into
 * packs). Other rounds leave the count as it was (an expunge may leave it too high until then).
 */
export async function recountInlineGap(store: Store, records?: { payload: Buffer }[]): Promise<void> {
  if (records && !records.some((r) => r.payload.includes(RELOCATE))) return;
  if (await readSetting(store.fs, store.root, INLINE_GAP_FILE, NOTE)) await noteInlineGap(store);
}

/**
 * The inline bodies a replica still lacks, counted (promote: 0 without REPLICA-INLINE-GAP); the
 * note goes once none is missing (a read-only open only counts).
 */
export async function inlineGap(store: Store): Promise<number> {
  if (!(await readSetting(store.fs, store.root, INLINE_GAP_FILE, NOTE))) return 0;
  const missing = await countInlineGap(store);
  if (missing === 0 && !store.readOnly) await writeSetting(store, INLINE_GAP_FILE, undefined, NOTE);
  return missing;
}
