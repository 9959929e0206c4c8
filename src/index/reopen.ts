// IndexDb.reopen's work, loaded only once a reopen is due (src/store/index-log.ts) and by a range
// read that a reopen crossed: LevelDB closed and opened again in place, to roll its LOG and write a
// fresh MANIFEST (docs/FORMAT.md, "Index files"), and the read going on from its last key.
import type { Level } from 'level';
import { AssertionFailure, assert } from '../errors.js';

/** LevelDB's iterator, as a range read holds it. */
type Iterator = { nextv(size: number): Promise<[Buffer, Buffer][]>; close(): Promise<void> };

/** A range read's options (IndexDb's RangeOptions). */
type Range = { gte: Buffer; lt: Buffer; limit?: number; reverse?: boolean };

/** The fields of an IndexDb a reopen changes and waits on (IndexDb's own, by these names). */
export interface Reopenable {
  readonly path: string;
  db: Level<Buffer, Buffer>;
  reopening?: Promise<void>;
  duringReopen?: (key: Buffer) => never;
  generation: number;
  inFlight: number;
  onIdle?: () => void;
  pinned: number;
  behind: { handed: boolean; written: Promise<void> }[];
}

/**
 * Closes LevelDB and opens it again (`open`), the caller holding the Writer: what reaches LevelDB
 * meanwhile waits for `reopening`. Batches already handed to LevelDB land first (the others wait
 * for the new handle), then every call in flight. False, nothing closed, while a snapshot or raw
 * iterator is open (one can be made while this waits: a raw iterator is synchronous). A failed open
 * leaves `db` closed: the store must stop, and its next open recovers. `broken` is told of a
 * synchronous read made meanwhile (readDuringReopen), on which the store stops.
 */
export async function reopenLevel(index: Reopenable, open: () => Promise<Level<Buffer, Buffer>>, broken?: (bug: Error) => void): Promise<boolean> {
  assert(!index.reopening, 'one reopen of the index at a time');
  if (index.pinned > 0) return false;
  let lift!: () => void;
  index.reopening = new Promise((resolve) => { lift = resolve; });
  index.duringReopen = (key) => readDuringReopen(index.path, key, broken);
  try {
    for (const behind of index.behind.filter((b) => b.handed)) await behind.written.catch(() => undefined);
    while (index.inFlight > 0) await new Promise<void>((resolve) => { index.onIdle = resolve; });
    if (index.pinned > 0) return false;
    await index.db.close();
    index.generation++;
    index.db = await open();
    return true;
  } finally {
    index.reopening = undefined;
    index.duringReopen = undefined;
    lift();
  }
}

/**
 * A synchronous read (IndexDb.getNow) while a reopen is under way: one outside the Writer that did
 * not go through IndexDb.readNow (inside it none can run: the reopen holds the Writer). Between
 * LevelDB's close and its open it would fail UNAVAILABLE, a retry a caller may never make; before
 * the close it works by luck. A broken invariant either way: an assertion, and the store stops
 * (`broken`) whenever such a read meets a reopen, not only in that moment.
 */
function readDuringReopen(path: string, key: Buffer, broken: ((bug: Error) => void) | undefined): never {
  const bug = new AssertionFailure(`a synchronous read of the index at ${path} (key ${key.subarray(0, 24).toString('hex')}) during its reopen: a read outside the Writer must go through IndexDb.readNow (docs/FORMAT.md, "Index files")`);
  broken?.(bug);
  throw bug;
}

/**
 * A range read's iterator after a reopen closed `old`: a new one from after `last` (the last key
 * read; undefined: none yet), with `left` entries still to come (-1: all), and the generation it
 * was made in; made in the turn that found no reopen under way. No iterator when nothing is left.
 */
export async function resumed(index: Reopenable, old: Iterator | undefined, options: Range, last: Buffer | undefined, left: number): Promise<[Iterator | undefined, number]> {
  await old?.close().catch(() => undefined);
  while (index.reopening) await index.reopening;
  if (left === 0) return [undefined, index.generation];
  const { gte, lt, ...rest } = options;
  const range = last === undefined ? options : options.reverse ? { ...rest, gte, lt: last, limit: left } : { ...rest, gt: last, lt, limit: left };
  return [index.db.iterator(range as Range), index.generation];
}
