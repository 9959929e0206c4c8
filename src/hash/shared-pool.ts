// One pool of hash workers per store, shared by everything that verifies in bulk (readMessages'
// big runs, scrub's pack pass). Each worker thread is a V8 isolate plus a glibc malloc arena that
// stay resident after its work: when every feature owned its own pool, a process that read a big
// mailbox and then scrubbed held one more of each per feature (docs/OBJECT-STORAGE.md, "Memory").
// Started at the first lease, grown to the most threads a user asked for (at most
// limits.hashPoolThreadsMax), closed with the store or after limits.hashPoolIdleMs without a lease.
import { limits } from '../limits.js';
import { HashPool } from './pool.js';

export class SharedHashPool {
  private pool?: HashPool;
  private leases = 0;
  private idleTimer?: NodeJS.Timeout;
  private closed = false;
  /** No pool could be made (no native binding, no thread): not tried again for this store. */
  private unavailable = false;

  /**
   * The pool with at least `threads` workers (bounded), started now if it is not running; pair
   * every lease with release(). Undefined: hash in this thread (threads 0, no native binding, closed).
   * A pool whose worker failed keeps failing its jobs (their callers hash themselves) until no
   * lease holds it; the next lease then starts a new one.
   */
  acquire(threads: number): HashPool | undefined {
    if (this.closed || this.unavailable || threads < 1) return undefined;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.pool?.failed && this.leases === 0) this.drop();
    const wanted = Math.min(threads, limits.hashPoolThreadsMax);
    if (this.pool) this.pool.grow(wanted);
    else this.pool = HashPool.create(wanted);
    if (!this.pool) {
      this.unavailable = true;
      return undefined;
    }
    this.leases++;
    return this.pool;
  }

  /** Ends a lease; the last one starts the idle clock. */
  release(): void {
    this.leases = Math.max(0, this.leases - 1);
    if (this.leases > 0 || !this.pool || this.closed) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => { if (this.leases === 0) this.drop(); }, limits.hashPoolIdleMs);
    this.idleTimer.unref(); // an idle pool never keeps the process alive
  }

  /** The workers now (0: none running), for tests and the bench's memory probe. */
  get threads(): number {
    return this.pool?.threads ?? 0;
  }

  /** The running pool, if any (tests). */
  get current(): HashPool | undefined {
    return this.pool;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  private drop(): void {
    const pool = this.pool;
    this.pool = undefined;
    void pool?.close(); // its workers end on their own; nothing waits on them
  }
}
