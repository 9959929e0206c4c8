// A replica whose resync did not carry every inline body: the index refers to bodies inside
// journal records the resync's snapshot covers, which the replica's journal never held, and no
// pack copy came (a primary before session 32, or a move its synchronous-replica gate refused).
// Those messages read CORRUPT until the primary's next move of inline bodies ships them; scrub finds
// them, but `replica status`, `replica check` (index only) and `promote` looked healthy. The resync
// counts them once and leaves REPLICA-INLINE-GAP while any is missing; status, check and promote
// count again only while the file is there (one stat otherwise), and remove it once none is.
import { INLINE_PACK } from '../blob/pack-store.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import type { BlobRecord } from '../store/records.js';
import { readSetting, writeSetting } from '../store/setting-file.js';
import type { Store } from '../store/store.js';

export const INLINE_GAP_FILE = 'REPLICA-INLINE-GAP';

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
  if (missing > 0) await writeSetting(store, INLINE_GAP_FILE, JSON.stringify({ blobs: missing, firstSeq: store.changes.firstSeq }), 'the note of missing inline bodies');
  else if (await readSetting(store.fs, store.root, INLINE_GAP_FILE, 'the note of missing inline bodies')) await writeSetting(store, INLINE_GAP_FILE, undefined, 'the note of missing inline bodies');
  return missing;
}

/**
 * The inline bodies a replica still lacks (0 without REPLICA-INLINE-GAP: no count); the note goes
 * once none is missing (a read-only open only counts).
 */
export async function inlineGap(store: Store): Promise<number> {
  if (!(await readSetting(store.fs, store.root, INLINE_GAP_FILE, 'the note of missing inline bodies'))) return 0;
  const missing = await countInlineGap(store);
  if (missing === 0 && !store.readOnly) await writeSetting(store, INLINE_GAP_FILE, undefined, 'the note of missing inline bodies');
  return missing;
}
