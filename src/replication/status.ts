// What `replica status` shows when no daemon runs: the store's role, and on a primary each
// replica's durable cursor (replica-NODEID) with its lag in records and when it last moved. A
// running primary has more (connected, lag in bytes, last contact): PrimaryHandle.status().
import type { Store } from '../store/store.js';
import type { ReplicationRole } from '../store/role.js';
import type { ReplicaStatus } from './replica.js';
import { doubtfulDamage, lastSeqOf, readPendingRounds } from './pending-rounds.js';

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
  /**
   * A replica whose REPLICATION-PENDING has a damaged frame that may hold a change its primary
   * acknowledged (no later frame shows its seqs committed): where, and the newest seq held before
   * it. promote refuses it (CORRUPT) without --quarantine-damaged-pending; a primary promoted
   * since is refused by the replica (replica.ts refuseDamagedHeld).
   */
  pendingDamage?: { offset: number; afterSeq: number };
  /** A replica's daemon: its replication client's live state, with why it does not follow its primary (lastError, since failingSince). */
  replica?: Pick<ReplicaStatus, 'connected' | 'lastError' | 'failingSince'>;
  /** resyncingTo: only from a running primary (PrimaryHandle.status), while it resyncs that replica. */
  replicas: { nodeId: string; seq: number; lagRecords: number; lastContact: number; resyncingTo?: number }[];
}

export async function storedReplicationStatus(store: Store): Promise<StoredReplicationStatus> {
  const role = store.replication().role();
  const replicas = (await store.changes.consumers())
    .filter((c) => c.name.startsWith('replica-'))
    .map((c) => ({ nodeId: c.name.slice('replica-'.length), seq: c.seq, lagRecords: c.lagRecords, lastContact: c.updated }));
  const lastSeq = store.changes.lastSeq;
  const pending = role?.role === 'replica' ? await readPendingRounds(store) : { rounds: [] };
  const heldSeq = Math.max(0, ...[...pending.rounds, ...(pending.damage?.following ?? [])].map(lastSeqOf));
  const pendingDamage = doubtfulDamage(pending, lastSeq);
  return {
    role: role?.role ?? 'standalone', epoch: role?.epoch ?? 0, primary: role?.primary, lastSeq, ...(heldSeq > lastSeq ? { heldSeq } : {}),
    ...(pendingDamage ? { pendingDamage } : {}), replicas,
  };
}
