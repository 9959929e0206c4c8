// What `replica status` shows when no daemon runs: the store's role, and on a primary each
// replica's durable cursor (replica-NODEID) with its lag in records and when it last moved. A
// running primary has more (connected, lag in bytes, last contact): PrimaryHandle.status().
import type { Store } from '../store/store.js';
import type { ReplicationRole } from '../store/role.js';
import { lastSeqOf, readPendingRounds } from './pending-rounds.js';

export interface StoredReplicationStatus {
  role: ReplicationRole['role'] | 'standalone';
  epoch: number;
  primary?: string;
  lastSeq: number;
  /**
   * A replica: the newest seq it holds as a tentative round (REPLICATION-PENDING) past lastSeq, when
   * it holds one: a change its primary may have acknowledged, which `promote` commits. After a
   * primary's death the replica to promote is the one whose held (or else last) seq is highest.
   */
  heldSeq?: number;
  /** resyncingTo: only from a running primary (PrimaryHandle.status), while it resyncs that replica. */
  replicas: { nodeId: string; seq: number; lagRecords: number; lastContact: number; resyncingTo?: number }[];
}

export async function storedReplicationStatus(store: Store): Promise<StoredReplicationStatus> {
  const role = store.replication().role();
  const replicas = (await store.changes.consumers())
    .filter((c) => c.name.startsWith('replica-'))
    .map((c) => ({ nodeId: c.name.slice('replica-'.length), seq: c.seq, lagRecords: c.lagRecords, lastContact: c.updated }));
  const lastSeq = store.changes.lastSeq;
  const heldSeq = role?.role === 'replica' ? Math.max(0, ...(await readPendingRounds(store)).rounds.map(lastSeqOf)) : 0;
  return { role: role?.role ?? 'standalone', epoch: role?.epoch ?? 0, primary: role?.primary, lastSeq, ...(heldSeq > lastSeq ? { heldSeq } : {}), replicas };
}
