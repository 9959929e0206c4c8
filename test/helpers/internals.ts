// Where a test reaches past the Store's interfaces (store.maintenance(), store.administration()) to
// its private parts: to damage the raw index under it, make a write fail, or force a rotation. Only
// fault and damage injection belongs here; reads go through store.maintenance().
import type { PackStore } from '../../src/blob/pack-store.js';
import type { IndexDb } from '../../src/index/index-db.js';
import type { Journal } from '../../src/journal/journal.js';
import type { Store } from '../../src/store/store.js';

export interface StoreInternals {
  db: IndexDb;
  packs: PackStore;
  journal: Journal;
}

export function internalsOf(store: Store): StoreInternals {
  return store as unknown as StoreInternals;
}

/** The raw LevelDB under the index (classic-level), for writing damaged values past the codec. */
export function rawLevelOf(store: Store): { get(key: Buffer): Promise<Uint8Array>; put(key: Buffer, value: Uint8Array): Promise<void>; del(key: Buffer): Promise<void> } {
  return (internalsOf(store).db as unknown as { db: ReturnType<typeof rawLevelOf> }).db;
}
