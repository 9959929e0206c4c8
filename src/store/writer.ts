// Group commit (DESIGN.md, "Commit protocol"): concurrent mutations are gathered into one batch
// that shares one pack fdatasync and one journal fdatasync. Order inside a batch:
//   1. prepare each mutation against the index view (validate; assign seq, UIDs, blob locations)
//   2. write new blob bodies
//   3. write the journal records, then fdatasync packs and journal at once: the batch is committed
//      (the commit point) when both syncs have succeeded. A blob is durable before any caller
//      learns of a record referring to it, not before the journal is; open cuts a newest batch
//      whose blobs did not survive a crash between the syncs (it was never acknowledged)
//   4. hand the index changes to LevelDB as one batch, sync:false (derived; replay repairs its
//      loss); readers see them at once, the write lands while the next batch runs
//   5. resolve every caller
import { MailstoreError } from '../errors.js';
import { IndexView, type IndexDb } from '../index/index-db.js';
import { encodeCbor } from '../index/codec.js';
import type { PackBatch, PackStore } from '../blob/pack-store.js';
import type { Journal, JournalRecord } from '../journal/journal.js';
import { limits } from '../limits.js';
import { applyOpsNow, meta } from './apply.js';
import type { JournalPayload, Op } from './records.js';

/** MAILSTORE_TRACE=1 prints the time of each commit phase to stderr (for profiling). */
const TRACE = Boolean(process.env.MAILSTORE_TRACE);

export interface PrepareContext {
  view: IndexView;
  /** The seq (and modseq) this mutation's record will carry. */
  seq: number;
  packs: PackBatch;
}

/**
 * Mutations that must commit in order, each only if all before it did (an import's batches, whose
 * resume cursors assume it): once one fails, every later one of the chain is refused with the
 * same error, so a caller may submit the next before the previous has committed.
 */
export interface CommitChain {
  failed?: unknown;
}

export interface Mutation<T> {
  /** Runs alone in its batch, so range reads of the index see everything before it. */
  exclusive?: boolean;
  chain?: CommitChain;
  prepare(ctx: PrepareContext): Promise<{ ops: Op[]; result: T }>;
}

interface Pending {
  mutation: Mutation<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface WriterHooks {
  /** Called when the index write after a durable commit failed: the store must stop. */
  onIndexFailure: (error: MailstoreError) => void;
  /** Called after every committed batch (tests count batches, consumers wake up). */
  onCommit?: (firstSeq: number, lastSeq: number, mutations: number, indexKeys: number) => void;
}

export class Writer {
  private queue: Pending[] = [];
  private running = false;
  private failure?: MailstoreError;
  private idle?: Promise<void>;
  private idleResolve?: () => void;

  constructor(
    private db: IndexDb,
    private readonly packs: PackStore,
    private readonly journal: Journal,
    private readonly hooks: WriterHooks,
  ) {}

  submit<T>(mutation: Mutation<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ mutation, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) {
        this.running = true;
        this.idle = new Promise((r) => { this.idleResolve = r; });
        setImmediate(() => void this.run());
      }
    });
  }

  /** Stops accepting work; resolves when the queue is empty. */
  async drain(): Promise<void> {
    if (this.running) await this.idle;
  }

  /** After the index was rebuilt and reopened (only while the writer is held exclusively). */
  replaceIndex(db: IndexDb): void {
    this.db = db;
  }

  fail(error: MailstoreError): void {
    this.failure = error;
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (this.failure) {
          for (const p of this.queue.splice(0)) p.reject(this.failure);
          break;
        }
        await this.commitBatch(this.takeBatch());
      }
    } finally {
      this.running = false;
      this.idleResolve?.();
    }
  }

  /**
   * Steps 2 and 3 with their fdatasyncs overlapped: both writes first, then both syncs at once.
   * A blob is still durable before any caller learns of a record referring to it; a crash between
   * the syncs can leave a journal batch whose blobs are not durable, which open detects (the
   * newest batch's new blobs are verified when the index has not applied it) and cuts, since
   * such a batch was never acknowledged.
   */
  private async write(packBatch: PackBatch, records: JournalRecord[]): Promise<void> {
    await this.packs.write(packBatch);
    try {
      await this.journal.write(records);
    } catch (error) {
      await this.packs.abort();
      throw error;
    }
    const [packs, journal] = await Promise.allSettled([this.packs.sync(), this.journal.sync()]);
    if (packs.status === 'rejected' || journal.status === 'rejected') {
      const error = packs.status === 'rejected' ? packs.reason : (journal as PromiseRejectedResult).reason;
      await this.packs.abort();
      await this.journal.abort(error as MailstoreError);
      throw error;
    }
  }

  private takeBatch(): Pending[] {
    const head = this.queue[0];
    if (head.mutation.exclusive) return this.queue.splice(0, 1);
    let n = 0;
    while (n < this.queue.length && n < limits.batchMutationsMax && !this.queue[n].mutation.exclusive) n++;
    return this.queue.splice(0, n);
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const trace = TRACE ? { start: performance.now(), pack: 0 } : undefined;
    const view = new IndexView(this.db);
    const packBatch = this.packs.beginBatch();
    const firstSeq = this.journal.lastSeq + 1;
    let seq = firstSeq;
    const opsBySeq: Op[][] = [];
    const done: { pending: Pending; result: unknown }[] = [];
    let taken = 0;
    for (const pending of batch) {
      if (packBatch.bytes >= limits.batchBlobBytesMax) break; // the rest waits for the next batch
      taken++;
      const chain = pending.mutation.chain;
      if (chain?.failed !== undefined) {
        pending.reject(chain.failed);
        continue;
      }
      try {
        const { ops, result } = await pending.mutation.prepare({ view, seq, packs: packBatch });
        if (ops.length > 0) {
          applyOpsNow(view, seq, ops, (problem) => { throw new Error(`assertion failed: live apply: ${problem}`); });
          opsBySeq.push(ops);
          seq++;
        }
        done.push({ pending, result });
      } catch (error) {
        if (chain) chain.failed = error;
        pending.reject(error);
      }
    }
    if (taken < batch.length) this.queue.unshift(...batch.slice(taken));
    // The last record of a batch carries `end`: recovery treats a batch without it as never
    // acknowledged, and checks the new blobs of the newest batch the index has not applied.
    const records: JournalRecord[] = opsBySeq.map((ops, i) => ({
      seq: firstSeq + i,
      payload: encodeCbor(i === opsBySeq.length - 1 ? { ops, end: true } satisfies JournalPayload : { ops } satisfies JournalPayload),
    }));
    if (records.length > 0) {
      const t0 = trace ? performance.now() : 0;
      try {
        await this.write(packBatch, records);
        if (trace) trace.pack = performance.now() - t0;
      } catch (error) {
        for (const d of done) {
          if (d.pending.mutation.chain) d.pending.mutation.chain.failed = error;
          d.pending.reject(error);
        }
        return;
      }
      view.put(meta.appliedSeq, seq - 1);
      const indexKeys = view.size;
      // The records are durable (journal fsynced), so callers are answered as soon as the index
      // batch is handed to LevelDB: readers see it through IndexDb until it lands, and the next
      // batch's syncs overlap its write. If it fails, callers still had success (durable), the
      // store stops and the next open replays the records into the index.
      const indexFailed = (error: unknown) => {
        const failure = new MailstoreError('CLOSED', `the index could not be updated (${(error as Error).message}); the change is durable in the journal; reopen the store`, { cause: error });
        this.fail(failure);
        this.hooks.onIndexFailure(failure);
      };
      try {
        const { landed } = await this.db.writeBehind(view.takePending());
        landed.catch(indexFailed);
      } catch (error) {
        indexFailed(error);
      }
      if (trace) {
        process.stderr.write(`mailstore trace: batch ${done.length} mutations, ${packBatch.bytes} blob bytes: prepare ${(t0 - trace.start).toFixed(1)} ms, pack+journal ${trace.pack.toFixed(1)} ms, index ${(performance.now() - t0 - trace.pack).toFixed(1)} ms\n`);
      }
      this.hooks.onCommit?.(firstSeq, seq - 1, done.length, indexKeys);
    }
    for (const d of done) d.pending.resolve(d.result);
  }
}
