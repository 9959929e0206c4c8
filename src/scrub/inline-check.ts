// Scrub's and reconstruct's check of inline bodies (docs/FORMAT.md, "Inline bodies"): a store holds
// hundreds of thousands (the newest day's small deliveries), and each read alone (a journal
// lookup, a pread and a buffer of its own) cost ~100 µs of CPU. Here they are read in groups in
// the order of their records, one pread per run of neighbouring records (journalInlineRuns, as
// compaction reads the bodies it moves); a body that does not read back so is read alone, for the
// reason that names its damage, exactly as before.
import { hashHex } from '../hash/blake3.js';
import { INLINE_PACK } from '../blob/pack-store.js';
import { limits } from '../limits.js';
import { groupsOf, type InlineScan } from '../store/compact-inline.js';
import { journalInlineRuns } from '../store/inline-bodies.js';
import type { Store } from '../store/store.js';
import type { Finding } from './findings.js';

/** Checks every inline body of `scan` (index entries into the journal): a blob-missing into `found` for each that does not read back. */
export async function checkInlineBodies(store: Store, scan: InlineScan, found: Finding[]): Promise<void> {
  const read = journalInlineRuns(store.maintenance().journal);
  let buffer: Buffer | undefined;
  for (const group of groupsOf(scan, limits.inlineCheckBatchBytes, limits.inlineCheckBatchBodies)) {
    const result = await read(group, buffer);
    buffer = result.buffer; // the next group reads into it (bounded: limits.inlineCheckBatchBytes)
    for (const [i, blob] of group.entries()) {
      if (result.bodies[i]) continue;
      const why = await store.maintenance().packs.checkLocation({ pack: INLINE_PACK, offset: blob.seq, length: blob.length }, blob.hash);
      if (why) found.push({ kind: 'blob-missing', hash: hashHex(blob.hash), pack: INLINE_PACK, offset: blob.seq, why, refs: [] });
    }
  }
}
