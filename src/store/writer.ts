// Group commit (DESIGN.md, "Commit protocol"): concurrent mutations are gathered into one batch
// that shares one pack fdatasync and one journal fdatasync. Order inside a batch:
//   1. prepare each mutation against the index view (validate; assign seq, UIDs, blob locations)
//      and apply its ops to the view, so the next mutation sees them
//   2. write the new blob bodies, then the journal records; then fdatasync both at once. The batch
//      is committed when both syncs succeeded; a crash between them can leave journal records
//      whose blobs are not durable, which open cuts (that batch was never acknowledged). The
//      bodies' write starts once the batch's last mutation has placed its blobs, so it overlaps
//      that mutation's apply and the records' encoding; a batch that goes no further takes it back
//   3. hand the index changes to LevelDB as one batch, sync:false (derived; replay repairs its
//      loss); readers see them at once, the write lands while the next batch runs
//   4. resolve every caller
// Pipelined: while a batch's fdatasyncs run, the next batch is prepared (step 1) when it holds only
// mutations of a chain that batch holds (an import's next batch): over its pending set, at the seq
// and pack offset after it, and its bodies are copied into the pack right after the bytes being
// synced (PackStore.writeAfter). Its journal record is written only once the batch before it
// committed; when that one failed, it is refused with the same error and its bodies are taken back
// (a chain's later mutations are refused then anyway).
// An invariant failing in 1 or 2 halts the store (HALTED): nothing of that batch is written (bodies
// already copied to the pack are taken back first).
import { MailstoreError, assert } from '../errors.js';
import { IndexView, type IndexDb } from '../index/index-db.js';
import { encodeJournalPayload } from '../index/codec.js';
import type { PackBatch, PackStore } from '../blob/pack-store.js';
import type { Journal, JournalRecord } from '../journal/journal.js';
import { limits } from '../limits.js';
import { applyOpsNow, meta } from './apply.js';
import { FlushChoice } from './flush-choice.js';
import { Fifo } from './fifo.js';
import { decodeForeignRecord } from './op-shape.js';
import type { JournalPayload, Op } from './records.js';
import type { FreeSpace, SpaceNeed } from './free-space.js';
import { monotonicMs } from '../monotonic.js';

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
  /** A part of a call in parts: never flushed in this thread (flushesInThread). */
  partOfMany?: boolean;
  chain?: CommitChain;
  /**
   * What it may write, for the free-space reserve (free-space.ts): checked before its prepare, so a
   * refused change (NO_SPACE) wrote nothing. Absent: a metadata change, held to the floor only.
   */
  space?: SpaceNeed;
  /**
   * Its outcome at once when it waited for nothing (a delivery's common case: no quota root, the
   * mailbox read synchronously), else a promise of it: no suspended frame and promise a commit.
   */
  prepare(ctx: PrepareContext): Promise<Prepared<T>> | Prepared<T>;
}

export interface Prepared<T> {
  ops: Op[];
  result: T;
}

/**
 * A batch a replica received from its primary (src/replication): the primary's new pack bytes at
 * their offsets and its journal records verbatim, seqs fixed. Committed in the primary's order:
 * pack bytes fsynced, then the records appended and fsynced (the replica's commit point), then
 * applied to the index through the same apply path as a live commit.
 */
export interface ReplicatedBatch {
  packs: { pack: number; offset: number; bytes: Buffer }[];
  records: JournalRecord[];
  /** Index meta entries written in the same index batch (the replica's durable pack tails). */
  meta?: [key: Buffer, value: unknown][];
  /** Held rounds promote commits: to the floor, not the mail reserve. */
  held?: boolean;
}

interface Pending {
  mutation: Mutation<unknown>;
  replicated?: ReplicatedBatch;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * A submitted mutation's caller, answered once: a halt rejects every pending of its batch, also
 * one its prepare already answered. Its methods are the prototype's: no closures a submit.
 */
class Submitted implements Pending {
  private open = true;

  constructor(
    private readonly writer: { outstanding: number },
    readonly mutation: Mutation<unknown>,
    private readonly answer: (value: unknown) => void,
    private readonly refuse: (error: unknown) => void,
  ) {}

  resolve(value: unknown): void {
    if (this.settled()) this.answer(value);
  }

  reject(error: unknown): void {
    if (this.settled()) this.refuse(error);
  }

  private settled(): boolean {
    if (!this.open) return false;
    this.open = false;
    this.writer.outstanding--;
    return true;
  }
}

export interface WriterHooks {
  /**
   * Called when the store must stop: the index write after a durable commit failed (CLOSED), or an
   * invariant failed while a batch was prepared or written (HALTED).
   */
  onStop: (error: MailstoreError) => void;
  /**
   * Called after every committed batch (tests count batches, consumers wake up); `writeSeconds`:
   * the pack and journal writes and their fdatasyncs (the metrics' batch fsync latency).
   */
  onCommit?: (firstSeq: number, lastSeq: number, mutations: number, indexKeys: number, writeSeconds: number) => void;
  /**
   * Synchronous replication: called once a batch is durable here and in the index, before its
   * callers are answered; they are answered when the promise settles (rejected: with its error,
   * which says the change may have committed). The next batch does not wait for it.
   */
  afterDurable?: (lastSeq: number) => Promise<void> | undefined;
  /**
   * Synchronous replication: the batch's pack bytes and records are written here and their
   * fdatasyncs started; a replica may take them as tentative (pending-rounds.ts) while those run,
   * so the replica's path (frame, write, fdatasync, ack) overlaps this store's flushes: a
   * synchronous change waits for the slower of the two paths, not for their sum. A tentative round
   * commits on the replica only when this store says it committed.
   */
  onWritten?: (records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch) => void;
  /**
   * Whether onWritten has anyone to tell now (a synchronous replica is connected); absent: always.
   * When not, a batch with no pack bytes is written and flushed in one call (writeJournalOnly).
   */
  wantsWritten?: () => boolean;
  /** The batch passed to onWritten did not commit (a sync here failed). */
  onWriteFailed?: () => void;
  /** The free-space reserve every mutation is admitted by before its prepare (absent: none). */
  space?: FreeSpace;
}

export class Writer {
  private readonly queue = new Fifo<Pending>();
  /** The next batch, prepared while the one before it syncs (pipelined). */
  private ahead?: { after: PreparedBatch; prepared: Promise<PreparedBatch | undefined> };
  private running = false;
  private failure?: MailstoreError;
  private idle?: Promise<void>;
  private idleResolve?: () => void;
  /** Submitted mutations not yet settled (Submitted counts them down), and the most of them seen since the last batch was taken. */
  outstanding = 0;
  private outstandingPeak = 0;
  /** While the writer gathers a batch: how many queued mutations end the wait, and how to end it. */
  private gathering?: { target: number; wake: () => void };
  /** A lone writer's small journal-only commits: flushed in this thread or through the pool, whichever measures faster. */
  readonly flushChoice = new FlushChoice();
  /** A commit flushed in this thread and the event loop has not turned since (start). */
  private flushedInThreadThisTurn = false;
  /** afterTurn's Immediate is scheduled; and whether it starts the run loop. */
  private turnPending = false;
  private runAfterTurn = false;
  /** The index batch landIndex last watched for a failure (IndexDb merges many commits into one). */
  private watchedLanding?: Promise<void>;

  constructor(
    private db: IndexDb,
    private readonly packs: PackStore,
    private readonly journal: Journal,
    private readonly hooks: WriterHooks,
  ) {}

  submit<T>(mutation: Mutation<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.outstanding++;
      this.outstandingPeak = Math.max(this.outstandingPeak, this.outstanding);
      this.queue.push(new Submitted(this, mutation, resolve as (value: unknown) => void, reject));
      if (this.gathering && this.queue.length >= this.gathering.target) this.gathering.wake();
      if (!this.running) this.start(this.outstandingPeak <= 1 && this.outstanding === 1);
    });
  }

  /**
   * Starts the run loop. `alone`: the only mutation in flight, and no other was since the last
   * batch was taken (a single writer delivering one message after another): it starts in this
   * turn, once the caller's synchronous work is done (a microtask), instead of one event-loop turn
   * later. The turn is what lets many writers answered together by the previous batch queue
   * their next mutations into one batch (group commit), so any writer that had company waits for
   * it as before. Measured on one inline delivery: the setImmediate turn cost 3-13 µs of its
   * critical path (docs/bench/onesync-2026-12-02-s12.md).
   */
  private start(alone: boolean): void {
    this.running = true;
    // After an in-thread flush nothing of the commit waited on the event loop: a caller appending
    // in a loop would otherwise run on microtasks alone, and timers (the index hand-over of
    // limits.indexBehindMs) and I/O would starve; its next commit starts one turn later.
    if (alone && !this.flushedInThreadThisTurn) queueMicrotask(this.runLoop);
    else this.afterTurn(true);
  }

  private readonly runLoop = (): void => void this.run();

  /**
   * At the event loop's next turn (setImmediate): flushedInThreadThisTurn cleared, and with `run`
   * the run loop started. One Immediate serves both: a lone writer's in-thread commit asks for the
   * turn, and its caller's next mutation, submitted before the turn came, waits for the same one
   * (it made two Immediates and two closures a delivery).
   */
  private afterTurn(run: boolean): void {
    if (run) this.runAfterTurn = true;
    if (this.turnPending) return;
    this.turnPending = true;
    setImmediate(this.turned);
  }

  private readonly turned = (): void => {
    this.turnPending = false;
    this.flushedInThreadThisTurn = false;
    if (!this.runAfterTurn) return;
    this.runAfterTurn = false;
    void this.run();
  };

  /** A replica's batch from its primary (ReplicatedBatch); runs alone, in submission order. */
  submitReplicated(batch: ReplicatedBatch): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const mutation: Mutation<void> = { exclusive: true, prepare: async () => assert(false, 'a replicated batch is not prepared') as never };
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ mutation, replicated: batch, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) this.start(false);
    });
  }

  /** Stops accepting work; resolves when the queue is empty. */
  async drain(): Promise<void> {
    if (!this.running) return;
    // made when someone waits, not at every start (a lone writer starts the loop once a delivery)
    this.idle ??= new Promise((r) => { this.idleResolve = r; });
    await this.idle;
  }

  /** After the index was rebuilt and reopened (only while the writer is held exclusively). */
  replaceIndex(db: IndexDb): void {
    this.db = db;
  }

  fail(error: MailstoreError): void {
    this.failure = error;
  }

  /** fail, and onStop told (once), as every stop. */
  stop(error: MailstoreError): void {
    if (this.failure) return;
    this.fail(error);
    this.hooks.onStop(error);
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.ahead) {
        const ahead = this.ahead;
        this.ahead = undefined;
        if (this.failure) {
          const prepared = await ahead?.prepared; // settled once: a halted prepare answered its own
          await this.takeBack(prepared?.packWrite);
          for (const d of prepared?.done ?? []) d.pending.reject(this.failure);
          for (const p of this.queue.take(this.queue.length)) p.reject(this.failure);
          break;
        }
        if (ahead) await this.commitAhead(ahead.after, ahead.prepared);
        else if (this.queue.at(0)!.replicated) await this.commitReplicated(this.queue.take(1)[0]!);
        else {
          const gathering = this.gather();
          if (gathering) await gathering; // nearly always none: no suspended frame
          await this.commitBatch(this.takeBatch());
        }
      }
    } finally {
      this.running = false;
      this.idleResolve?.();
      this.idle = undefined;
      this.idleResolve = undefined;
    }
  }

  /**
   * Step 2, the pack and journal fdatasyncs overlapped: both writes first, then both syncs at once.
   * A blob is still durable before any caller learns of a record referring to it; a crash between
   * the syncs can leave a journal batch whose blobs are not durable, which open detects (the
   * newest batch's new blobs are verified when the index has not applied it) and cuts, since
   * such a batch was never acknowledged.
   */
  private write(packBatch: PackBatch, records: JournalRecord[], opsBySeq: Op[][], packWrite?: Promise<void>, syncing?: PreparedBatch): Promise<void> {
    if (packBatch.blobs.length === 0) {
      const replicated = !!this.hooks.onWritten && (this.hooks.wantsWritten?.() ?? true);
      if (this.flushesInThread(records, syncing)) return this.writeChosen(packBatch, records, opsBySeq, replicated);
      if (!replicated) return this.writeJournalOnly(records);
    }
    return this.writeBoth(packBatch, records, opsBySeq, packWrite, syncing);
  }

  /** A lone writer's journal-only commit, flushed the way FlushChoice picks, its latency recorded for the next choice. */
  private async writeChosen(packBatch: PackBatch, records: JournalRecord[], opsBySeq: Op[][], replicated: boolean): Promise<void> {
    const inThread = this.flushChoice.inThread();
    const started = monotonicMs();
    if (!inThread) await (replicated ? this.writeBoth(packBatch, records, opsBySeq) : this.writeJournalOnly(records));
    else if (replicated) await this.writeJournalOnlyReplicated(records, opsBySeq, packBatch);
    else {
      await this.journal.write(records, { durable: true });
      await this.journal.sync(); // bookkeeping only (and the directory fsync of a fresh segment)
    }
    this.flushChoice.record(inThread, monotonicMs() - started);
    if (inThread && !this.flushedInThreadThisTurn) {
      this.flushedInThreadThisTurn = true;
      this.afterTurn(false); // the loop turned: a commit after it starts at once again
    }
  }

  /** `write`'s general form: pack bytes (if any) and journal records written, then both flushed through the pool at once. */
  private async writeBoth(packBatch: PackBatch, records: JournalRecord[], opsBySeq: Op[][], packWrite?: Promise<void>, syncing?: PreparedBatch): Promise<void> {
    await (packWrite ?? this.packs.write(packBatch));
    try {
      await this.journal.write(records);
    } catch (error) {
      await this.packs.abort();
      throw error;
    }
    // the journal's records become its own (sync) only once both flushes succeeded: a pack flush
    // that fails takes them back (journal.abort), or a later replay would find the failed batch
    const syncs = Promise.allSettled([this.packs.sync(), this.journal.flush()]);
    // The fdatasyncs are on their way (thread pool): a synchronous replica's round goes out now, so
    // its write and fdatasync overlap ours, and ours starts without waiting for the frame's encoding
    // and encryption (on one disk the two flushes queue: the sooner ours starts, the sooner the
    // replica's can). It holds the round as tentative until the commit below; a failure says so.
    this.hooks.onWritten?.(records, opsBySeq, packBatch);
    this.db.startBehind(); // the previous batch's index write: its CPU work overlaps these syncs
    if (syncing) this.prepareAhead(syncing, syncing.firstSeq + syncing.opsBySeq.length - 1); // the next batch of a chain is prepared while they run
    const [packs, journal] = await syncs;
    if (packs.status === 'rejected' || journal.status === 'rejected') {
      this.hooks.onWriteFailed?.();
      const error = packs.status === 'rejected' ? packs.reason : (journal as PromiseRejectedResult).reason;
      await this.packs.abort();
      await this.journal.abort(error as MailstoreError);
      throw error;
    }
    await this.journal.sync(); // flushed: bookkeeping only
  }

  /**
   * A batch with no pack bytes (a delivery whose body is inline, a flag change) and no synchronous
   * replica to tell, flushed through the pool: only the journal is written and flushed. (A lone
   * writer's small commit may instead be written and flushed in this thread, `write`.) While the
   * pool flushes, the previous batch's index write is handed to LevelDB — unless this writer is
   * alone (no other mutation in flight since this batch was taken): then the index batches of a
   * few milliseconds merge and go to LevelDB together (at the latest limits.indexBehindMs after
   * the first, IndexDb.writeBehind), so a delivery neither builds a LevelDB batch on its critical
   * path nor wakes a second pool thread per commit. Measured (tmpfs, loaded): p50 178-210 ->
   * 104-131 µs, CPU 276-300 -> 210-236 µs a delivery.
   */
  private async writeJournalOnly(records: JournalRecord[]): Promise<void> {
    await this.journal.write(records);
    const synced = this.journal.sync(); // on its way in the pool before the index batch is built
    if (this.outstandingPeak > 1) this.db.startBehind();
    await synced;
  }

  /**
   * writeJournalOnly's in-thread flush with synchronous replicas listening (otherwise their batch
   * takes the two-file path's order, with no pack bytes): the round goes out between our write
   * and our flush (FileHandle.writevDurable's `written`), so a write that fails here still fails
   * before any round went out, and the replica's write, fdatasync and ack run while this thread
   * flushes (the ack waits in the socket until the flush returns). The replica holds the round as
   * tentative until this batch commits here; if our flush fails, it is told (onWriteFailed).
   */
  private async writeJournalOnlyReplicated(records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch): Promise<void> {
    let sent = false;
    const written = (): void => {
      sent = true;
      this.hooks.onWritten!(records, opsBySeq, packBatch);
    };
    try {
      await this.journal.write(records, { durable: true, written });
      await this.journal.sync(); // bookkeeping only (and the directory fsync of a fresh segment)
    } catch (error) {
      if (sent) this.hooks.onWriteFailed?.();
      throw error;
    }
  }

  /**
   * A commit of only these journal records may be written and flushed in one call in this thread
   * (FileHandle.writevDurable, no thread-pool hop; FlushChoice decides by measuring both ways):
   * when this writer is alone (no other mutation was in flight since the batch was taken, so
   * nobody else waits on the event loop while it blocks in fdatasync) and the payloads total at
   * most limits.journalInThreadFlushBytesMax, and it holds no part of a call in parts (a daemon's
   * other clients wait on this thread too). Its index writes are then not started here but merge
   * and go to LevelDB together (IndexDb.writeBehind, limits.indexBehindMs).
   */
  private flushesInThread(records: JournalRecord[], prepared?: PreparedBatch): boolean {
    if (this.outstandingPeak > 1 || prepared?.done.some((d) => d.pending.mutation.partOfMany)) return false;
    let bytes = 0;
    for (const record of records) bytes += record.payload.length;
    return bytes <= limits.journalInThreadFlushBytesMax;
  }

  /**
   * Group commit across round trips (PostgreSQL's commit_delay with commit_siblings): when many
   * writers were in flight (≥ limits.commitGatherWritersMin) but fewer are queued now — those
   * just answered are still sending their next mutation (a daemon's clients come back one socket
   * round trip later) — wait up to limits.commitGatherMs for them, so they share this
   * batch's fdatasyncs instead of splitting into two alternating groups that pay twice the syncs.
   * One writer, or a few, never waits. Off by default (limits.commitGatherWritersMin: measured, it
   * cost 64 in-process writers more than it gave 64 daemon clients).
   */
  private gather(): Promise<void> | undefined {
    const peak = this.outstandingPeak;
    this.outstandingPeak = this.outstanding;
    const target = Math.min(limits.batchMutationsMax, peak);
    if (peak < limits.commitGatherWritersMin || this.queue.length >= target || this.queue.at(0)!.mutation.exclusive) return undefined;
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.gathering = undefined;
        resolve();
      };
      const timer = setTimeout(wake, limits.commitGatherMs);
      this.gathering = { target, wake };
    });
  }

  private takeBatch(): Pending[] {
    const head = this.queue.at(0)!;
    if (head.mutation.exclusive) return this.queue.take(1);
    let n = 0;
    while (n < this.queue.length && n < limits.batchMutationsMax && !this.queue.at(n)!.mutation.exclusive) n++;
    return this.queue.take(n);
  }

  private async commitBatch(batch: Pending[], given?: PreparedBatch): Promise<void> {
    const started = TRACE ? monotonicMs() : 0;
    const prepared = given ?? await this.prepareBatch(batch);
    if (!prepared) return; // halted
    const { view, packBatch, firstSeq, opsBySeq, done, packWrite } = prepared;
    if (this.failure) {
      // the previous batch's index write failed while this one was prepared: what it read may
      // lack that batch, so nothing of it is written (the store is stopping; a reopen replays)
      await this.takeBack(packWrite);
      for (const d of done) d.pending.reject(this.failure);
      return;
    }
    if (opsBySeq.length === 0) await this.takeBack(packWrite); // every mutation refused: the bodies of none are kept
    if (opsBySeq.length > 0) {
      const lastSeq = firstSeq + opsBySeq.length - 1;
      const records = journalRecords(firstSeq, opsBySeq);
      const t0 = monotonicMs();
      try {
        await this.write(packBatch, records, opsBySeq, packWrite, prepared);
      } catch (error) {
        if (!(error instanceof MailstoreError)) return this.halt(error, batch);
        this.stopIfJournalRefuses();
        if (error.code === 'NO_SPACE') this.hooks.space?.sawFull();
        prepared.failed = error;
        for (const d of done) {
          if (d.pending.mutation.chain) d.pending.mutation.chain.failed = error;
          d.pending.reject(error);
        }
        return;
      }
      const t1 = monotonicMs();
      view.put(meta.appliedSeq, lastSeq);
      const indexKeys = view.size;
      // deferred: the callers are answered before the LevelDB batch is built (reads see it already)
      const registering = this.landIndex(view, true);
      if (registering) await registering; // nearly always registered at once

      if (TRACE) {
        process.stderr.write(`mailstore trace: batch ${done.length} mutations, ${packBatch.bytes} blob bytes: prepare ${(t0 - started).toFixed(1)} ms, pack+journal ${(t1 - t0).toFixed(1)} ms, index ${(monotonicMs() - t1).toFixed(1)} ms\n`);
      }
      this.hooks.onCommit?.(firstSeq, lastSeq, done.length, indexKeys, (t1 - t0) / 1000);
      const gate = this.hooks.afterDurable?.(lastSeq);
      if (gate) {
        gate.then(() => { for (const d of done) d.pending.resolve(d.result); }, (error) => { for (const d of done) d.pending.reject(error); });
        return;
      }
    }
    for (const d of done) d.pending.resolve(d.result);
  }

  /**
   * Pipelined: called once `after`'s writes are done and its fdatasyncs on their way. Takes the
   * mutations at the head of the queue that belong to a chain `after` holds (an import's next
   * batch; none exclusive) and prepares them now, over `after`'s view, at the seq and pack offset
   * after it. Anything else waits for the batch to commit, as before.
   */
  private prepareAhead(after: PreparedBatch, lastSeq: number): void {
    if (!limits.writerPipelined || this.failure || this.ahead || this.queue.length === 0) return;
    const chains = new Set<CommitChain>();
    for (const d of after.done) if (d.pending.mutation.chain && !d.pending.mutation.exclusive) chains.add(d.pending.mutation.chain);
    if (chains.size === 0) return;
    let n = 0;
    while (n < this.queue.length && n < limits.batchMutationsMax) {
      const { mutation, replicated } = this.queue.at(n)!;
      if (replicated || mutation.exclusive || !mutation.chain || !chains.has(mutation.chain)) break;
      n++;
    }
    if (n === 0) return;
    const batch = this.queue.take(n);
    const prepared = this.prepareBatch(batch, { view: after.view, lastSeq });
    this.ahead = { after, prepared };
  }

  /**
   * A batch prepared ahead (prepareAhead), once the batch before it is settled: committed as any
   * other if that one committed; refused with its error if it failed (its chains failed with it,
   * and what this one read and placed assumed it). Nothing of it was written before this.
   */
  private async commitAhead(after: PreparedBatch, ahead: Promise<PreparedBatch | undefined>): Promise<void> {
    const prepared = await ahead;
    if (!prepared) return; // halted: its callers were answered
    if (after.failed !== undefined) {
      await this.takeBack(prepared.packWrite); // mostly taken back already, with the bytes before it
      for (const d of prepared.done) {
        const chain = d.pending.mutation.chain!;
        chain.failed ??= after.failed;
        d.pending.reject(chain.failed);
      }
      return;
    }
    await this.commitBatch(prepared.done.map((d) => d.pending), prepared);
  }

  /**
   * A replica's commit of its primary's batch (ReplicatedBatch): the same order as a live commit,
   * with nothing to prepare (the records are resolved). A record that does not apply cleanly means
   * the replica is not a prefix of its primary: the store halts rather than diverge further.
   */
  private async commitReplicated(pending: Pending): Promise<void> {
    const batch = pending.replicated!;
    const { records } = batch;
    const firstSeq = records[0]?.seq;
    if (firstSeq !== this.journal.lastSeq + 1) {
      return pending.reject(new MailstoreError('INVALID', `replicated records start at seq ${firstSeq}, but this store's journal ends at ${this.journal.lastSeq}`));
    }
    // the primary's bytes, checked as the journal asserts its own: a seq that skipped stopped the
    // replica with a bug's message, and a payload that was no CBOR left its session waiting for ever
    const unfit = records.findIndex((r, i) => r.seq !== firstSeq + i || r.payload.length === 0 || r.payload.length > limits.journalRecordBytesMax);
    if (unfit >= 0) return pending.reject(new MailstoreError('INVALID', `replicated record ${records[unfit]!.seq} (${unfit + 1} of ${records.length}, ${records[unfit]!.payload.length} bytes) does not follow seq ${firstSeq + unfit - 1} or is not a journal record`));
    // the ops too, before anything is written: apply trusts the journal, and a durable record it
    // cannot apply stopped the replica (HALTED) at once and again at every open
    let decoded: JournalPayload[];
    try {
      decoded = records.map(decodeForeignRecord);
    } catch (error) {
      return pending.reject(new MailstoreError('INVALID', `replicated ${(error as Error).message}; nothing of records ${firstSeq}..${records[records.length - 1]!.seq} was written`, { cause: error }));
    }
    if (decoded[decoded.length - 1]?.end !== true) {
      return pending.reject(new MailstoreError('INVALID', `replicated records ${firstSeq}..${records[records.length - 1].seq} do not end a batch`));
    }
    const space = this.hooks.space;
    if (space) {
      // The primary's mail is mail here too: held to the reserve like a delivery, so the replica's
      // own index never meets a full disk (it stopped, CLOSED, and needed a restart once room was
      // made). Expunges and flag changes go on down to the floor: they are how room is made.
      const need: SpaceNeed = {
        bytes: batch.packs.reduce((n, c) => n + c.bytes.length, 0) + records.reduce((n, r) => n + r.payload.length, 0),
        mail: batch.held !== true && (batch.packs.length > 0 || decoded.some((p) => p.ops.some((op) => op.op === 'message.add' && op.fresh === true))),
      };
      const refusal = await space.refusal(need);
      if (refusal) return pending.reject(refusal);
    }
    try {
      for (const chunk of batch.packs) await this.packs.writeReplicated(chunk.pack, chunk.offset, chunk.bytes);
      // A compaction's pack.removed starts a new segment on the primary (compact.ts finishRetired),
      // so the history it made dead retires at the next snapshot: here too, or the replica's journal
      // stayed one segment that no retirement passes until it reached journalSegmentBytesMax
      if (decoded.some((p) => p.ops.some((op) => op.op === 'pack.removed'))) this.journal.keepTailAndStartNewSegment(firstSeq);
      // Both syncs at once, as a live commit: open cuts a newest batch whose blobs did not survive.
      await this.journal.write(records);
      const [packs, journal] = await Promise.allSettled([this.packs.syncReplicated(), this.journal.sync()]);
      if (packs.status === 'rejected' && journal.status === 'fulfilled') {
        // the records are durable, their blobs maybe not: open sorts that out (the newest batch is checked)
        const failure = new MailstoreError('CLOSED', `replicated pack bytes could not be synced (${(packs.reason as Error).message}); reopen the store`, { cause: packs.reason });
        this.fail(failure);
        this.hooks.onStop(failure);
        return pending.reject(failure);
      }
      if (packs.status === 'rejected') throw packs.reason;
      if (journal.status === 'rejected') throw journal.reason;
    } catch (error) {
      await this.journal.abort(error as MailstoreError);
      this.stopIfJournalRefuses();
      return pending.reject(error);
    }
    const view = new IndexView(this.db);
    try {
      decoded.forEach((payload, i) => applyOpsNow(view, records[i].seq, payload.ops, (problem) => assert(false, `replicated apply: ${problem}`)));
    } catch (error) {
      this.halt(error, [pending]);
      return;
    }
    const lastSeq = records[records.length - 1].seq;
    for (const [key, value] of batch.meta ?? []) view.put(key, value);
    view.put(meta.appliedSeq, lastSeq);
    const indexKeys = view.size;
    await this.landIndex(view);
    this.hooks.onCommit?.(firstSeq, lastSeq, records.length, indexKeys, 0);
    pending.resolve(undefined);
  }

  /**
   * Step 1 for every mutation that fits this batch (the rest goes back to the head of the queue).
   * A MailstoreError from prepare is that caller's alone: prepare only reads the view. Anything
   * else, and any error while the ops are applied to the view (which may hold half a mutation
   * then), is a broken invariant: the store halts and nothing of the batch is written.
   */
  private async prepareBatch(batch: Pending[], after?: { view: IndexView; lastSeq: number }): Promise<PreparedBatch | undefined> {
    const prepared: PreparedBatch = after
      ? { view: after.view.stacked(), packBatch: this.packs.beginBatch(true), firstSeq: after.lastSeq + 1, opsBySeq: [], done: [] }
      : { view: new IndexView(this.db), packBatch: this.packs.beginBatch(), firstSeq: this.journal.lastSeq + 1, opsBySeq: [], done: [] };
    let taken = 0;
    for (const pending of batch) {
      if (prepared.packBatch.bytes >= limits.batchBlobBytesMax) break; // the rest waits for the next batch
      taken++;
      const chain = pending.mutation.chain;
      if (chain?.failed !== undefined) {
        pending.reject(chain.failed);
        continue;
      }
      const space = this.hooks.space;
      if (space && !space.admit(pending.mutation.space)) {
        // below the reserve by the cached figure: statfs again (room may have been freed), then refuse
        const refusal = await space.recheck(pending.mutation.space);
        if (refusal) {
          if (chain) chain.failed = refusal;
          pending.reject(refusal);
          continue;
        }
      }
      const seq = prepared.firstSeq + prepared.opsBySeq.length;
      let outcome: Prepared<unknown>;
      try {
        const answer = pending.mutation.prepare({ view: prepared.view, seq, packs: prepared.packBatch });
        outcome = answer instanceof Promise ? await answer : answer;
      } catch (error) {
        if (!(error instanceof MailstoreError)) return this.halt(error, batch);
        if (chain) chain.failed = error;
        pending.reject(error);
        continue;
      }
      // the last mutation this batch takes: no more queued, or the next one would not fit (above)
      const last = taken === batch.length || prepared.packBatch.bytes >= limits.batchBlobBytesMax;
      if (last && prepared.packBatch.blobs.length > 0) {
        // Every blob of the batch is placed: its bodies are copied into the page cache on the thread
        // pool while this thread applies the last ops and encodes the records (an import's batch
        // is one mutation: its apply and CBOR, ~0.85 ms of every 20k-corpus batch, overlap the ~2.5 ms
        // copy instead of preceding it). Not durable, and nothing refers to them, until the journal
        // record is written and both are synced (step 2); a batch that goes no further takes them back.
        // Prepared ahead, they are copied while the batch before syncs, when they follow its bytes
        // in the same pack (PackStore.writeAfter); else once it committed.
        if (!after) prepared.packWrite = this.packs.write(prepared.packBatch);
        else if (this.packs.canWriteAfter(prepared.packBatch)) prepared.packWrite = this.packs.writeAfter(prepared.packBatch);
        prepared.packWrite?.catch(() => undefined); // awaited by write(), or by takeBack
      }
      if (outcome.ops.length > 0) {
        try {
          applyOpsNow(prepared.view, seq, outcome.ops, (problem) => assert(false, `live apply: ${problem}`));
        } catch (error) {
          await this.takeBack(prepared.packWrite);
          return this.halt(error, batch);
        }
        prepared.opsBySeq.push(outcome.ops);
      }
      prepared.done.push({ pending, result: outcome.result });
    }
    if (taken < batch.length) this.queue.putBack(batch.slice(taken));
    return prepared;
  }

  /**
   * Step 3. The records are durable (journal fsynced), so callers are answered as soon as the index
   * batch is registered with IndexDb (`deferred`: built and handed to LevelDB while the next batch's
   * fdatasync runs): readers see it through IndexDb until it lands, and the next batch's syncs
   * overlap its write. If it fails, callers still had success (durable), the store stops and
   * the next open replays the records into the index.
   */
  private landIndex(view: IndexView, deferred = false): Promise<void> | undefined {
    const pending = view.takePending();
    try {
      // a commit's usual case: registered at once (IndexDb.registerBehind), nothing to await
      const landed = deferred ? this.db.registerBehind(pending) : undefined;
      if (landed) {
        this.watchLanding(landed);
        return undefined;
      }
    } catch (error) {
      this.indexFailed(error);
      return undefined;
    }
    return this.db.writeBehind(pending, { deferred }).then(({ landed }) => this.watchLanding(landed), this.indexFailed);
  }

  /** A batch's landing, watched once however many commits merged into it (each watched it before). */
  private watchLanding(landed: Promise<void>): void {
    if (landed === this.watchedLanding) return;
    this.watchedLanding = landed;
    landed.catch(this.indexFailed);
  }

  /** The index write after a durable commit failed: callers had success, the store stops (CLOSED) and the next open replays. */
  private readonly indexFailed = (error: unknown): void => {
    const failure = new MailstoreError('CLOSED', `the index could not be updated (${(error as Error).message}); the change is durable in the journal; reopen the store`, { cause: error });
    this.fail(failure);
    this.hooks.onStop(failure);
  };

  /**
   * A pack write started early (prepareBatch) for a batch that is not written after all: its bytes
   * are taken back (PackStore.abort) once it finished; a write that failed took them back itself.
   */
  private async takeBack(packWrite: Promise<void> | undefined): Promise<void> {
    if (!packWrite) return;
    try {
      await packWrite;
    } catch {
      return;
    }
    await this.packs.abort();
  }

  /**
   * A failed write the journal could not take back (its truncate failed too) leaves it refusing
   * every write (CLOSED) until a reopen: the store stops now, told like any other stop, rather than
   * failing call by call with nobody told (a daemon serving only LMTP answered 451 for ever).
   */
  private stopIfJournalRefuses(): void {
    const refusal = this.journal.refusal;
    if (!refusal || this.failure) return;
    this.fail(refusal);
    this.hooks.onStop(refusal);
  }

  /** Fail-stop: the store refuses everything until it is reopened (recovery starts from the journal). */
  private halt(error: unknown, batch: Pending[]): undefined {
    const reason = error instanceof Error ? error.message : String(error);
    const failure = new MailstoreError('HALTED', `the store stopped itself: ${reason}; nothing of this batch was written; reopen the store and report this message`, { cause: error });
    this.fail(failure);
    this.hooks.onStop(failure);
    for (const pending of batch) pending.reject(failure);
    return undefined;
  }
}

interface PreparedBatch {
  view: IndexView;
  packBatch: PackBatch;
  /** The pack write of packBatch, started once its last mutation was prepared (see prepareBatch). */
  packWrite?: Promise<void>;
  firstSeq: number;
  opsBySeq: Op[][];
  done: { pending: Pending; result: unknown }[];
  /** Its write or a sync failed (a batch prepared ahead of it is refused with this). */
  failed?: unknown;
}

/**
 * The batch's journal records, consecutive seqs; the last carries `end`: recovery treats a batch
 * without it as never acknowledged, and checks the new blobs of the newest batch the index has not
 * applied. Asserted before they are written, not only when read back.
 */
function journalRecords(firstSeq: number, opsBySeq: Op[][]): JournalRecord[] {
  // pushed, not mapped (tuple.ts encodeComponents): Journal.write deoptimised
  const records: JournalRecord[] = [];
  for (let i = 0; i < opsBySeq.length; i++) {
    const ops = opsBySeq[i]!;
    assert(ops.length > 0, `record ${firstSeq + i} without ops`);
    const last = i === opsBySeq.length - 1;
    records.push({ seq: firstSeq + i, payload: encodeJournalPayload(ops, last) }); // JournalPayload's bytes
  }
  return records;
}

