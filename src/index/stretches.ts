// A pass over a whole index that leaves only its last stretch's tables mapped: reconstruct's
// comparison of a rebuilt index with the live one (issue 16). Loaded only by such a pass.
import type { IndexDb } from './index-db.js';

/**
 * The raw entries of `range` in key order, LevelDB closed and opened again (IndexDb.reopen) after
 * each `stretchBytes` of keys and values read; the caller holds the Writer, or owns the index alone.
 * LevelDB maps each table a read touches and keeps it mapped while the table stays in its cache
 * (up to 64 tables, limits.indexOpenFilesMax): those pages count in the process's RSS. A rebuilt
 * index's tables are its memtable dumps, ~4 MB uncompressed each, so a pass over the rebuild of a
 * 500k-message mailbox (142 MB in 33 tables) kept all of it resident: reconstruct --check peaked at
 * 248-295 MB (issue 16; BENCHMARKS.md, session 52). Reopened, only the last stretch's tables are mapped.
 */
export async function* entriesInStretches(db: IndexDb, range: { gte: Buffer; lt: Buffer }, stretchBytes: number): AsyncGenerator<[Buffer, Buffer]> {
  let from = range.gte;
  for (;;) {
    let read = 0;
    let next: Buffer | undefined;
    for await (const entry of db.rawIterator({ gte: from, lt: range.lt })) {
      yield entry;
      read += entry[0].length + entry[1].length;
      if (read >= stretchBytes) {
        next = Buffer.concat([entry[0], KEY_SUCCESSOR]); // the least key after it
        break;
      }
    }
    if (next === undefined) return;
    await db.reopen(); // false (another raw iterator open on it): read on, mapped as before
    from = next;
  }
}

const KEY_SUCCESSOR = Buffer.from([0]);
