// What `replica status` shows when no daemon runs: the store's role, and on a primary each
// replica's durable cursor (replica-NODEID) with its lag in records and when it last moved. A
// running primary has more (connected, lag in bytes, last contact): PrimaryHandle.status().
import { join } from 'node:path';
import { isMailstoreError } from '../errors.js';
import { CONSUMERS_DIR } from '../store/changes.js';
import type { Store } from '../store/store.js';
import type { ReplicationRole } from '../store/role.js';
import type { ReplicaStatus } from './replica.js';
import { doubtfulDamage, lastSeqOf, readPendingRounds } from './pending-rounds.js';
import { notedInlineGap } from './inline-gap.js';

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
  /** A replica's daemon: its replication client's live state, with why its last session failed (lastError at lastErrorAt; failing since failingSince) until it takes a round. */
  replica?: Pick<ReplicaStatus, 'connected' | 'lastError' | 'lastErrorAt' | 'failingSince'>;
  /** resyncingTo: only from a running primary (PrimaryHandle.status), while it resyncs that replica. */
  replicas: { nodeId: string; seq: number; lagRecords: number; lastContact: number; resyncingTo?: number }[];
  /**
   * Replicas whose cursor (consumers/replica-NODEID) does not read: each a finding (`replica status`
   * exits 1), not a failure of the whole status. Absent when there is none.
   */
  damagedCursors?: DamagedReplicaCursor[];
  /** A replica: bodies its index refers to that it never received (inline-gap.ts); promote refuses it without --force. */
  inlineBodiesMissing?: number;
}

export interface DamagedReplicaCursor {
  nodeId: string;
  path: string;
  /** What to do (RECOVERY.md, consumers/NAME). */
  todo: string;
}

export async function storedReplicationStatus(store: Store): Promise<StoredReplicationStatus> {
  const role = store.replication().role();
  const lastSeq = store.changes.lastSeq;
  const { replicas, damagedCursors } = await replicaCursors(store);
  const pending = role?.role === 'replica' ? await readPendingRounds(store) : { rounds: [] };
  const heldSeq = Math.max(0, ...[...pending.rounds, ...(pending.damage?.following ?? [])].map(lastSeqOf));
  const pendingDamage = doubtfulDamage(pending, lastSeq);
  const inlineBodiesMissing = role?.role === 'replica' ? await notedInlineGap(store) : 0;
  return {
    role: role?.role ?? 'standalone', epoch: role?.epoch ?? 0, primary: role?.primary, lastSeq, ...(heldSeq > lastSeq ? { heldSeq } : {}),
    ...(pendingDamage ? { pendingDamage } : {}), replicas,
    ...(damagedCursors.length > 0 ? { damagedCursors } : {}), ...(inlineBodiesMissing > 0 ? { inlineBodiesMissing } : {}),
  };
}

/** Each replica's durable cursor, read alone: one that does not read (CORRUPT) is that replica's finding. */
export async function replicaCursors(store: Store): Promise<{ replicas: StoredReplicationStatus['replicas']; damagedCursors: DamagedReplicaCursor[] }> {
  const replicas: StoredReplicationStatus['replicas'] = [];
  const damagedCursors: DamagedReplicaCursor[] = [];
  for (const name of (await store.changes.names()).filter((n) => n.startsWith('replica-'))) {
    const cursor = await store.changes.cursor(name).catch((error: unknown) => {
      if (isMailstoreError(error, 'CORRUPT')) return void damagedCursors.push(damagedCursor(store, name));
      throw error;
    });
    if (cursor) replicas.push({ nodeId: name.slice('replica-'.length), seq: cursor.seq, lagRecords: Math.max(0, store.changes.lastSeq - cursor.seq), lastContact: cursor.updated });
  }
  return { replicas, damagedCursors };
}

/**
 * A damaged cursor stops every retirement (it cannot say what it pins): when its replica next
 * connects, the primary keeps it in quarantine/ and writes it again at the seq the replica holds
 * (damaged-cursor.ts). One of a replica that is gone for good is removed.
 */
function damagedCursor(store: Store, name: string): DamagedReplicaCursor {
  return {
    nodeId: name.slice('replica-'.length), path: join(store.root, CONSUMERS_DIR, name),
    todo: `when the replica next connects, its primary keeps it in quarantine/ and writes it again at the seq the replica holds (until then no journal segment is retired); ` +
      `for a replica gone for good, 'mailstore consumers --remove ${name}' forgets it`,
  };
}
