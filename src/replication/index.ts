// The entry points `mailstore serve` wires (--replication-listen, --replication-key, --replica-of,
// --sync-replicas, --sync-fallback) and the commands use.
export { startPrimary, startReplicaListener, type PrimaryHandle, type PrimaryOptions, type PrimaryStatus, type ReplicaState } from './primary.js';
export { startReplica, type ReplicaHandle, type ReplicaOptions, type ReplicaStatus } from './replica.js';
export { checkReplica, type CheckResult, type Difference } from './check.js';
export { promoteStore, type PromoteOptions, type PromoteResult } from './promote.js';
export { xferUser, type XferOptions, type XferResult } from './xfer.js';
export { storedReplicationStatus, type StoredReplicationStatus } from './status.js';
export type { SyncFallback } from './sync-gate.js';
