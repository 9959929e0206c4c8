// Replication as `mailstore serve` runs it: a primary (--replication-listen) starts its listener
// on the open store before the socket answers, so no client write slips past a synchronous
// replica; a replica (--replica-of) opens the store itself (startReplica) and the daemon serves
// that store, reads only, until `mailstore promote` through the daemon stops the replication
// client and, with --replication-listen, starts the primary's listener in the same process.
import { resolve } from 'node:path';
import { MailstoreError } from '../errors.js';
import { promoteStore, startPrimary, startReplica, storedReplicationStatus, type PrimaryHandle, type PromoteOptions, type ReplicaHandle, type SyncFallback } from '../replication/index.js';
import { Store } from '../store/store.js';
import type { StoreOptions } from '../store/types.js';
import type { Logger } from './log.js';
import type { DaemonServer } from './server.js';

export interface ServeReplicationOptions {
  replicationListen?: string;
  replicationKey?: string;
  replicaOf?: string;
  syncReplicas?: number;
  syncFallback?: SyncFallback;
}

export class ServeReplication {
  private primary?: PrimaryHandle;
  private replica?: ReplicaHandle;
  /** The replica handle this daemon promoted (its replication stopped; it may still be fencing the old primary). */
  private promoted?: ReplicaHandle;
  private readonly keyFile?: string;

  constructor(private readonly options: ServeReplicationOptions, private readonly logger: Logger) {
    this.keyFile = options.replicationKey === undefined ? undefined : resolve(options.replicationKey);
    checkOptions(options);
  }

  private readonly log = (line: string): void => this.logger.info('replication', { message: line });

  /** Opens the store: a replica through startReplica (it clones the primary into an empty directory), else as usual. */
  async open(dir: string, storeOptions: StoreOptions): Promise<Store> {
    if (this.options.replicaOf === undefined) return Store.open(dir, storeOptions);
    this.replica = await startReplica(dir, { primary: this.options.replicaOf, keyFile: this.keyFile!, listen: this.options.replicationListen, log: this.log, storeOptions });
    return this.replica.store;
  }

  /** A primary's listener, on the open store (closed by `stop`). */
  async startPrimary(store: Store): Promise<void> {
    if (this.replica || this.options.replicationListen === undefined) return;
    this.primary = await startPrimary(store, {
      listen: this.options.replicationListen, keyFile: this.keyFile!, syncReplicas: this.options.syncReplicas, syncFallback: this.options.syncFallback, log: this.log,
    });
  }

  /** The procedures the daemon runs its own way: promote (a replica) and replicationStatus (live figures). */
  wire(server: DaemonServer): void {
    server.procedureOverrides.promote = (options?: unknown) => this.promote(server.store, options as PromoteOptions | undefined);
    server.procedureOverrides.replicationStatus = () => this.status(server.store);
    server.onStopping.push(() => this.stop());
  }

  private async promote(store: Store, options: PromoteOptions = {}) {
    if (!this.replica) return promoteStore(store, this.log, options);
    const result = await this.replica.promote(options);
    this.promoted = this.replica; // its stop() ends the old primary's fencing (keepFencing)
    this.replica = undefined;
    this.logger.info('promoted', { epoch: result.epoch, seq: result.seq, oldPrimaryFenced: result.oldPrimaryFenced, uidValidity: result.uidValidity, mailboxesRenewed: result.mailboxesRenewed, heldSeq: result.heldSeq, ...(result.oldPrimarySeq === undefined ? {} : { oldPrimarySeq: result.oldPrimarySeq }) });
    await this.startPrimary(store);
    return result;
  }

  private async status(store: Store) {
    const stored = await storedReplicationStatus(store);
    if (this.primary) {
      const live = await this.primary.status();
      return { ...stored, ...live, role: live.role };
    }
    if (this.replica) return { ...stored, replica: this.replica.status() };
    return stored;
  }

  /** Stops replicating; the daemon closes the store after. */
  async stop(): Promise<void> {
    await this.promoted?.stop();
    await this.replica?.stop();
    await this.primary?.close();
    this.primary = undefined;
  }
}

function checkOptions(options: ServeReplicationOptions): void {
  const wantsKey = options.replicaOf !== undefined || options.replicationListen !== undefined;
  if (wantsKey && options.replicationKey === undefined) throw new MailstoreError('INVALID', '--replica-of and --replication-listen need --replication-key FILE');
  if (options.syncReplicas !== undefined && (!Number.isSafeInteger(options.syncReplicas) || options.syncReplicas < 0)) {
    throw new MailstoreError('INVALID', `--sync-replicas must be a whole number >= 0 (got ${options.syncReplicas})`);
  }
  if (options.syncFallback !== undefined && options.syncFallback !== 'refuse' && options.syncFallback !== 'async') {
    throw new MailstoreError('INVALID', `--sync-fallback must be refuse or async (got ${String(options.syncFallback)})`);
  }
  if (options.replicaOf === undefined && (options.syncReplicas ?? 0) > 0 && options.replicationListen === undefined) {
    throw new MailstoreError('INVALID', '--sync-replicas needs --replication-listen (the replicas connect there)');
  }
  if (options.replicaOf !== undefined && options.syncReplicas !== undefined) throw new MailstoreError('INVALID', '--sync-replicas is for a primary, not with --replica-of');
}
