// The administration interface: what the day-2 modules (users.ts, quota.ts, mailbox-list.ts,
// usage.ts) need of an open Store beyond its public methods: committed index reads for their
// range scans, and raw mutations for changes the Store has no method for (one journal record that
// renames a whole user, say). Obtain it with `store.administration()`.
import type { IndexDb } from '../index/index-db.js';
import type { Mutation } from './writer.js';

/** The committed index: point reads and range scans (settle first, inside an exclusive mutation). */
export type AdminIndexReader = Pick<IndexDb, 'get' | 'getNow' | 'getMany' | 'readNow' | 'whenOpen' | 'entries' | 'settle'>;

export interface StoreAdministration {
  /** The current index (after an index swap, the new one). */
  readonly index: AdminIndexReader;
  /** Hands a mutation to the group-commit Writer: one journal record, all or nothing. */
  mutate<T>(mutation: Mutation<T>): Promise<T>;
  /** Expunges and removes mailboxes whose deleteBegin is committed, in chunks of many mailboxes (delete-chunks.ts). */
  finishMailboxDeletes(ids: readonly Buffer[]): Promise<void>;
}
