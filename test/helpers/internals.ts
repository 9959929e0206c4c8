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

/**
 * The raw LevelDB under the index (classic-level), for writing damaged values past the codec. Each
 * call first waits for the index batches still behind the commit (IndexDb.writeBehind: merged and
 * handed to LevelDB up to limits.indexBehindMs later), so what it reads or overwrites is there.
 */
export function rawLevelOf(store: Store): RawLevel {
  const db = internalsOf(store).db;
  const level = (db as unknown as { db: RawLevel }).db;
  return {
    get: async (key) => { await db.settle(); return level.get(key); },
    put: async (key, value) => { await db.settle(); return level.put(key, value); },
    del: async (key) => { await db.settle(); return level.del(key); },
    batch: async (ops) => { await db.settle(); return level.batch(ops); },
  };
}

export interface RawLevel {
  get(key: Buffer): Promise<Uint8Array>;
  put(key: Buffer, value: Uint8Array): Promise<void>;
  del(key: Buffer): Promise<void>;
  /** Many puts in one LevelDB write (damage of a size one put at a time would take minutes to write). */
  batch(ops: { type: 'put'; key: Buffer; value: Uint8Array }[]): Promise<void>;
}
