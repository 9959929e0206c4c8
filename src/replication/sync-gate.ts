// Synchronous replicas (`--sync-replicas N`): a change is acknowledged only once N replicas have
// it durable. The policy when fewer are there is explicit, never a silent timeout-then-success:
// `refuse` fails the change before anything is written (UNAVAILABLE, temporary), or, when a
// replica went away while a change waited, after limits.syncReplicaWaitMs with an error saying
// the change may have committed; `async` lets it through and says so (log line, counter).
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { PackBatch } from '../blob/pack-store.js';
import type { JournalRecord } from '../journal/journal.js';
import type { Op } from '../store/records.js';
import type { ReplicationGate } from '../store/store.js';
import type { Log } from './transport.js';

export type SyncFallback = 'refuse' | 'async';

/** A replica session taking batches as tentative rounds while the primary syncs them (primary.ts). */
export interface BatchListener {
  written(records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch): void;
  writeFailed(): void;
  committed(lastSeq: number): void;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

export class SyncGate implements ReplicationGate {
  /** Each connected replica's durable seq (what it acknowledged). */
  private readonly acked = new Map<string, number>();
  private waiters: Waiter[] = [];
  /** Commits acknowledged without N replicas holding them (fallback async). */
  unprotectedCommits = 0;
  private unprotected = false;
  private readonly listeners = new Set<BatchListener>();

  constructor(readonly replicasNeeded: number, readonly fallback: SyncFallback, private readonly log: Log, private readonly waitMs: number = limits.syncReplicaWaitMs) {}

  /** Until the returned function is called, `listener` hears of every batch (synchronous replicas only). */
  listen(listener: BatchListener): () => void {
    if (this.replicasNeeded === 0) return () => undefined;
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether any synchronous replica listens for tentative rounds (none: commits skip `written`). */
  listening(): boolean {
    return this.listeners.size > 0;
  }

  written(records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch): void {
    for (const l of this.listeners) l.written(records, opsBySeq, packBatch);
  }

  writeFailed(): void {
    for (const l of this.listeners) l.writeFailed();
  }

  committed(lastSeq: number): void {
    for (const l of this.listeners) l.committed(lastSeq);
  }

  get connected(): number {
    return this.acked.size;
  }

  replicaConnected(nodeId: string, seq: number): void {
    this.acked.set(nodeId, seq);
    this.settle();
  }

  replicaAcked(nodeId: string, seq: number): void {
    if (!this.acked.has(nodeId)) return;
    this.acked.set(nodeId, Math.max(seq, this.acked.get(nodeId)!));
    this.settle();
  }

  replicaGone(nodeId: string): void {
    this.acked.delete(nodeId);
    this.settle();
  }

  /** Before a change is queued: with `refuse`, too few replicas means nothing is written. */
  admit(): void {
    if (this.replicasNeeded === 0 || this.connected >= this.replicasNeeded) {
      this.markProtected();
      return;
    }
    if (this.fallback === 'refuse') {
      throw new MailstoreError('UNAVAILABLE', `only ${this.connected} of the ${this.replicasNeeded} synchronous replicas are connected; nothing was written (temporary: retry once they are back)`, { mayHaveCommitted: false });
    }
    this.markUnprotected(`only ${this.connected} of ${this.replicasNeeded} synchronous replicas are connected`);
  }

  /** After a batch is durable here: resolves once N replicas hold it (see the policies above). */
  afterDurable(seq: number): Promise<void> | undefined {
    if (this.replicasNeeded === 0 || this.holding(seq) >= this.replicasNeeded) return undefined;
    if (this.fallback === 'async' && this.connected < this.replicasNeeded) {
      this.markUnprotected(`only ${this.connected} of ${this.replicasNeeded} synchronous replicas are connected`);
      return undefined;
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        seq, resolve, reject,
        timer: setTimeout(() => this.expire(waiter), this.waitMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Fails every waiting change (the primary is shutting down or was fenced). */
  failAll(error: MailstoreError): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  private holding(seq: number): number {
    let n = 0;
    for (const acked of this.acked.values()) if (acked >= seq) n++;
    return n;
  }

  private settle(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.holding(w.seq) < this.replicasNeeded) return true;
      clearTimeout(w.timer);
      w.resolve();
      return false;
    });
  }

  private expire(waiter: Waiter): void {
    this.waiters = this.waiters.filter((w) => w !== waiter);
    if (this.fallback === 'async') {
      this.markUnprotected(`seq ${waiter.seq} was not confirmed by ${this.replicasNeeded} replicas within ${this.waitMs} ms`);
      waiter.resolve();
      return;
    }
    waiter.reject(new MailstoreError('UNAVAILABLE',
      `the change (seq ${waiter.seq}) is durable here but ${this.replicasNeeded} synchronous replicas did not confirm it within ${this.waitMs} ms: it may have committed; check before retrying`,
      { mayHaveCommitted: true }));
  }

  private markUnprotected(why: string): void {
    this.unprotectedCommits++;
    if (this.unprotected) return;
    this.unprotected = true;
    this.log(`replication: UNPROTECTED: ${why}; changes are acknowledged without synchronous replicas (--sync-fallback async)`);
  }

  private markProtected(): void {
    if (!this.unprotected) return;
    this.unprotected = false;
    this.log(`replication: protected again: ${this.connected} synchronous replicas connected`);
  }
}
