// Pack compaction (restic's prune, Dovecot's purge): the live records of packs that are mostly
// dead are copied into a new pack, the index is switched to the copies in one journaled commit,
// and the old packs are deleted once no reader is inside them. Ordering (docs/FORMAT.md,
// "Compaction"): new pack durable -> journal commit (conditional relocations, forgets, retire
// intent) -> index -> old files removed -> retire intent cleared. The copying runs beside the
// Writer; only the commit goes through it.
import os from 'node:os';
import { MailstoreError } from '../errors.js';
import type { SharedHashPool } from '../hash/shared-pool.js';
import type { InlineRunSource } from './inline-bodies.js';
import type { InlineScan } from './compact-inline.js';
import type { IndexDb, IndexView } from '../index/index-db.js';
import type { BlobBackend, NewPack } from '../blob/backend.js';
import { INLINE_PACK, type RunItem } from '../blob/pack-store.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import { tierMetaName } from './tier.js';
import { meta } from './apply.js';
import { candidateChunks, gateAndTally, graceAt, packsInUse, pastGrace, planCompaction, type CandidateChunk, type CompactionPlan, type Grace, type PlannedBlob } from './compact-plan.js';
import type { BlobRecord, Op } from './records.js';
import { encodeForgetEntries, encodeRelocateEntries, type RelocateEntry } from './blob-runs.js';
import type { Health } from './recovery.js';
import type { CommitChain, Mutation } from './writer.js';
import { monotonicMs } from '../monotonic.js';
import { phase } from '../phases.js';

export interface CompactOptions {
  /** Plan and report only: nothing is sealed, copied or committed. */
  dryRun?: boolean;
  /** Keep blobs released less than this long ago (default 0: the admin asked now). */
  graceMs?: number;
  /** Rewrite packs whose dead share reaches this (default limits.compactDeadRatio). */
  deadRatio?: number;
  onProgress?: (progress: CompactProgress) => void;
  /**
   * Tombstones (expunged uids' change-log entries) older than this are dropped and their
   * mailboxes' vanished floors raised (tombstone-expiry.ts; default limits.tombstoneRetentionMs).
   */
  tombstoneRetentionMs?: number;
}

export interface CompactProgress {
  phase: 'plan' | 'copy' | 'commit' | 'remove';
  bytesDone: number;
  bytesTotal: number;
}

export interface CompactResult {
  dryRun: boolean;
  /** Tombstones past their retention dropped (Store.compact; absent on a dry run). */
  tombstonesExpired?: number;
  /** Packs whose live records were copied and which were retired (or would be). */
  packsRewritten: number[];
  /** New packs written. */
  packsWritten: number[];
  /** Retired packs deleted by this run (earlier runs' leftovers included). */
  packsRemoved: number[];
  /** Retired packs a reader still held: left for the next run (or open). */
  packsPending: number[];
  blobsCopied: number;
  bytesCopied: number;
  /** Blob entries dropped: released past their grace period, in a rewritten pack. */
  blobsReclaimed: number;
  /** Disk bytes of packs/ before and after (after: an estimate on a dry run). */
  bytesBefore: number;
  bytesAfter: number;
  /** Candidate packs left alone this round, and why (a record failed its hash, or its pack would not give it: IO, ACCESS). */
  skipped: { pack: number; why: string }[];
  /**
   * Packs that qualified but were left for a later round because copying their live records would
   * take the file system below the free-space reserve's floor (FreeSpace.roomAboveFloor); absent when none.
   */
  deferredForSpace?: { packs: number[]; roomBytes: number };
  /**
   * Pack files in packs/ whose header names another store or another pack number (copied in by
   * hand: someone's mail, not this store's dead bytes): never rewritten or deleted. One no blob
   * entry refers to is moved into quarantine/ (`setAsideTo`; not on a dry run); absent when none.
   */
  foreignPacks?: { pack: number; why: string; setAsideTo?: string }[];
  ms: number;
  /** Inline bodies moved from the journal into packs (Store.compact, compact-inline.ts). */
  inlineMoved?: number;
  /**
   * Entries of inline bodies released past their grace period that were dropped (would be, on a
   * dry run): their bytes are in journal records, which retire with their segments; none is
   * copied into a pack (forgetInline). Absent when none.
   */
  inlineReclaimed?: number;
  /**
   * Wall-clock ms of each phase (docs/FORMAT.md, "Compaction: where the time goes"): plan (the scans
   * of B and M and the pick), seal, forget (the forgets committed beside the copy: overlaps it),
   * copy (reads, checks, appends), sync (the new packs' fsyncs),
   * commit (relocations, forgets, retire intent: journal fsync and index apply), retire (the
   * in-use check, deletions, the `pack.removed` record), size (packs/ after), inline-forget (the
   * released inline bodies' entries dropped: forgetInline); Store.compact's
   * inline, tombstones (their expiry) and consumer (the background compactor's cursor moved).
   */
  phases: Record<string, number>;
  /** CPU ms of each phase, every thread of the process (the hash worker, the thread pool's writes and syncs included). */
  phasesCpu?: Record<string, number>;
}

/** Runs `fn`, adding its wall-clock ms to `result.phases[name]`. */
export async function timed<T>(result: Pick<CompactResult, 'phases' | 'phasesCpu'>, name: string, fn: () => Promise<T>): Promise<T> {
  const started = monotonicMs();
  const cpu = process.cpuUsage();
  try {
    return await fn();
  } finally {
    result.phases[name] = Math.round(((result.phases[name] ?? 0) + monotonicMs() - started) * 10) / 10;
    const used = process.cpuUsage(cpu);
    const phasesCpu = (result.phasesCpu ??= {});
    phasesCpu[name] = Math.round(((phasesCpu[name] ?? 0) + (used.user + used.system) / 1000) * 10) / 10;
  }
}

/** What compaction needs of its Store. */
export interface CompactHost {
  readonly db: IndexDb;
  readonly packs: BlobBackend;
  readonly health: Health;
  readonly packBytesMax: number;
  submit<T>(mutation: Mutation<T>): Promise<T>;
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * The next journal record starts a new segment (the record that lists the removed packs), so a
   * snapshot taken after it lets every segment before it retire: the history the compaction made
   * dead leaves the disk with the packs (docs/FORMAT.md, "Compaction").
   */
  startJournalSegment?(): void;
  /** Where a pack file that is not this store's goes (quarantine/); absent: it is left in packs/. */
  readonly quarantineDir?: string;
  /** The seq of the last batch committed (applied to the index); without it, the copy always scans B again. */
  committedSeq?(): number;
  /** The store's hash workers: the copy verifies its read batches there while it reads the next. */
  readonly hashPool?: SharedHashPool;
  /** Moving inline bodies into packs reads them a group at once (compact-inline.ts). */
  readonly readInlineBodies?: InlineRunSource;
  /**
   * The free-space reserve (free-space.ts): `room` is what the copy may write (a fresh statfs; above
   * the floor: compaction makes room in the end), `take` takes the planned copy off the figure
   * deliveries are admitted by. Absent, or room undefined: no reserve is held.
   */
  readonly space?: { room(): Promise<number | undefined>; take(bytes: number): void };
}

export async function compactStore(host: CompactHost, options: CompactOptions = {}): Promise<CompactResult> {
  const started = monotonicMs();
  const result: CompactResult = {
    dryRun: Boolean(options.dryRun), packsRewritten: [], packsWritten: [], packsRemoved: [], packsPending: [],
    blobsCopied: 0, bytesCopied: 0, blobsReclaimed: 0, bytesBefore: 0, bytesAfter: 0, skipped: [], ms: 0, phases: {},
  };
  if (!options.dryRun) {
    await timed(result, 'retire', async () => {
      await host.packs.removePartialPacks();
      await finishRetired(host, result);
    });
    phase('leftovers retired');
  }
  const warm = options.dryRun ? undefined : await warmHashPool(host);
  try {
    // without a grace every released blob goes, whatever its release says; with one, a release dated
    // past now + grace too (compact-plan.ts Grace)
    const plan = await planRound(host, options, graceAt(Date.now(), options.graceMs ?? 0), result);
    phase('planned');
    result.bytesBefore = plan.bytesBefore;
    if (plan.foreign) await setAsideForeign(host, plan.foreign, result, Boolean(options.dryRun));
    if (!options.dryRun) await timed(result, 'inline-forget', () => forgetInline(host, plan, result));
    else if (plan.inlineExpired > 0) result.inlineReclaimed = plan.inlineExpired;
    if (options.dryRun || plan.candidates.length === 0) {
      result.packsRewritten = plan.candidates;
      const setAside = result.foreignPacks?.some((f) => f.setAsideTo !== undefined);
      result.bytesAfter = options.dryRun ? plan.bytesAfterEstimate : setAside ? await packsBytes(host.packs) : plan.bytesBefore;
      if (options.dryRun) result.blobsReclaimed = plan.blobsExpired;
      result.ms = Math.round(monotonicMs() - started);
      return result;
    }
    await rewrite(host, plan, result, options);
  } finally {
    if (warm) host.hashPool!.release();
  }
  phase('copied and committed');
  await timed(result, 'retire', () => finishRetired(host, result));
  phase('old packs removed');
  result.bytesAfter = await timed(result, 'size', () => packsBytes(host.packs));
  result.ms = Math.round(monotonicMs() - started);
  return result;
}

/**
 * The store's hash worker, leased now when the copy may take it (copyLive: a second core, at least
 * limits.compactHashWorkerBytesMin to copy, which the local packs' bytes bound from above), so
 * that it starts beside the planning scans: started by the copy, its start (~37 M instructions, tens
 * of ms in a cold process) fell inside the copy, whose first read batches were hashed on this
 * thread meanwhile (7 of the churn's 130 MB). A plan that finds nothing to copy started it for
 * nothing; the lease ends after the copy (the idle clock closes it, or the store's close).
 */
async function warmHashPool(host: CompactHost): Promise<SharedHashPool | undefined> {
  if (!host.hashPool || os.availableParallelism() < 2) return undefined;
  let bytes = 0;
  for (const pack of await host.packs.listPacks()) if (!host.packs.isRemote(pack)) bytes += await host.packs.packBytes(pack);
  if (bytes < limits.compactHashWorkerBytesMin) return undefined;
  return host.hashPool.acquire(1) ? host.hashPool : undefined;
}

/**
 * Pack files the plan found not to be this store's (CompactionPlan.foreign): one blob entries point
 * into stays (an older mailstore appended to it) and is reported as skipped; the others go to
 * quarantine/, as the admin's to look at, never deleted.
 */
async function setAsideForeign(host: CompactHost, foreign: NonNullable<CompactionPlan['foreign']>, result: CompactResult, dryRun: boolean): Promise<void> {
  for (const { pack, why, referenced } of foreign) {
    if (referenced) {
      result.skipped.push({ pack, why: `${why}; blob entries point into it, so it is left where it is` });
      continue;
    }
    const setAsideTo = dryRun || !host.quarantineDir ? undefined : await host.packs.setAsidePack(pack, host.quarantineDir);
    (result.foreignPacks ??= []).push({ pack, why, ...(setAsideTo ? { setAsideTo } : {}) });
  }
}

/**
 * Rewrites the candidates a bounded run of their blob entries at a time (candidate-chunks of at
 * most limits.compactChunkEntries): copy the run's kept records, make the new pack durable, commit
 * the run's relocations and forgets; after the last run, the retire intent. Memory follows the
 * run, not the packs (1M entries of a 1 GiB pack are never held at once). A run committed stays
 * committed when a later one fails: its records are valid copies, and the old packs, not retired,
 * keep serving the rest.
 */
async function rewrite(host: CompactHost, plan: CompactionPlan, result: CompactResult, options: CompactOptions): Promise<void> {
  const outputs = new Outputs(host);
  const chain: CommitChain = {};
  const skipped = () => new Set(result.skipped.map((s) => s.pack));
  let forgetting: Promise<void> | undefined;
  try {
    const candidates = new Set(plan.candidates);
    // With the planning scan's entries (all of the candidates'), the forgets go first, on their own,
    // while the copy runs: they drop entries no message refers to, whatever the copy does.
    if (plan.seen) forgetting = timed(result, 'forget', () => commitRun(host, chain, [], plan.seen!.expiredOf(candidates), plan.grace, result, undefined, plan.scannedAt));
    forgetting?.catch(() => undefined); // awaited below; the chain refuses every later commit if it failed
    const chunks: { next(): IteratorResult<CandidateChunk> | Promise<IteratorResult<CandidateChunk>> } = plan.seen
      ? plan.seen.chunksOf(candidates, limits.compactChunkEntries, true) // the planning scan's entries: no second scan of B
      : candidateChunks(host.db, candidates, plan.grace, limits.compactChunkEntries);
    let next = await chunks.next();
    let retired: number[] | undefined;
    while (!next.done) {
      const chunk = next.value;
      const copied = await timed(result, 'copy', () => copyLive(host, outputs, chunk.kept, result, (done) => options.onProgress?.({ phase: 'copy', bytesDone: done, bytesTotal: plan.bytesToCopy })));
      await timed(result, 'sync', () => outputs.sync());
      next = await chunks.next(); // read ahead: the last run's commit carries the retire intent (one journal sync fewer)
      const bad = skipped();
      if (next.done) retired = plan.candidates.filter((p) => !bad.has(p));
      options.onProgress?.({ phase: 'commit', bytesDone: result.bytesCopied, bytesTotal: plan.bytesToCopy });
      outputs.mayBeReferenced(); // from here a record naming them may be durable, even if the commit fails
      await timed(result, 'commit', () => commitRun(host, chain, copied.filter((c) => !bad.has(c.blob.pack)), chunk.expired.filter((b) => !bad.has(b.pack)), plan.grace, result, retired, plan.scannedAt));
    }
    if (!retired) { // no entry to copy in any candidate (all dead): the retire intent alone
      retired = plan.candidates.filter((p) => !skipped().has(p));
      await commitRun(host, chain, [], [], plan.grace, result, retired);
    }
    await forgetting;
    result.packsRewritten = retired;
  } catch (error) {
    await forgetting?.catch(() => undefined); // its records settle before the new packs are judged
    await outputs.abandon();
    throw error;
  } finally {
    result.packsWritten = outputs.numbers();
  }
  await outputs.close();
}

/**
 * Gate and plan; when the pack appends go to would be picked, it is sealed (appends move to a new
 * pack) and stays picked. The tallies are not made again after the seal: an append that landed in
 * it meanwhile only makes the estimate low, since the copy takes the entries as they are when it
 * starts (after the seal, so every append into that pack is in them) and the commit is
 * conditional. One scan of B and M instead of two (a third of a compaction of 20k entries).
 */
async function planRound(host: CompactHost, options: CompactOptions, grace: Grace, result: CompactResult): Promise<CompactionPlan> {
  const ratio = options.deadRatio ?? limits.compactDeadRatio;
  const exclusive = <T>(fn: () => Promise<T>) => host.runExclusive(fn);
  const scanned = host.committedSeq?.();
  const db = host.db;
  const { scan, packs } = await timed(result, 'plan', () => gateAndTally(() => host.db, host.packs, host.health, grace, exclusive));
  options.onProgress?.({ phase: 'plan', bytesDone: 0, bytesTotal: 0 });
  const appendPack = host.packs.appendPack;
  const room = (await host.space?.room()) ?? Infinity;
  const plan = await timed(result, 'plan', () => planCompaction(host.packs, scan, packs, grace, ratio, true, room, host.packBytesMax * limits.compactSmallPackShare));
  if (plan.noRoom) result.deferredForSpace = { packs: plan.noRoom, roomBytes: room };
  if (!options.dryRun && plan.bytesToCopy > 0) host.space?.take(plan.bytesToCopy + PACK_HEADER_BYTES);
  // The scan's entries are all of the candidates' when no batch committed since it began: a batch
  // could have added entries to the pack appends went to (the one sealed below, or one that filled
  // up meanwhile); no other pack gains entries. Otherwise the copy scans B again (candidateChunks).
  const unchanged = (seq: number | undefined) => !scan.seen.full && scanned !== undefined && seq === scanned;
  const keep = (seq: number | undefined) => {
    if (!unchanged(seq)) return;
    plan.seen = scan.seen;
    plan.scannedAt = { db, seq: scanned! };
  };
  if (options.dryRun || appendPack === 0 || !plan.candidates.includes(appendPack)) {
    keep(host.committedSeq?.());
    return plan;
  }
  // the seal writes no record: its batch takes no seq
  const before = await timed(result, 'seal', () => host.submit({ exclusive: true, prepare: async ({ seq }) => { host.packs.seal(); return { ops: [], result: seq - 1 }; } }));
  keep(before);
  return plan;
}

/**
 * Drops the entries of inline bodies released past the grace period (docs/FORMAT.md, "Compaction"):
 * their bytes are in journal records, which retire with their segments once no entry points at
 * them, so there is nothing to copy. Left to the move (compact-inline.ts), a big delete's bodies
 * were written into a new pack only for the next round to drop them: 94,960 bodies of a 190k-message
 * mailbox delete grew the store from 209 to 226 MB. Before the pack rewrite, so its forgets commit
 * on the planning scan's entries. Conditional like every forget: an append of the same bytes
 * meanwhile wrote a fresh copy (a released blob is never deduplicated against), which stays.
 */
async function forgetInline(host: CompactHost, plan: CompactionPlan, result: CompactResult): Promise<void> {
  if (plan.inlineExpired === 0) return;
  const dropped = { blobsReclaimed: 0 };
  const chain: CommitChain = {};
  if (plan.seen) await commitRun(host, chain, [], plan.seen.expiredOf(INLINE_ONLY), plan.grace, dropped, undefined, plan.scannedAt);
  else for await (const chunk of candidateChunks(host.db, INLINE_ONLY, plan.grace, limits.compactChunkEntries)) await commitRun(host, chain, [], chunk.expired, plan.grace, dropped);
  if (dropped.blobsReclaimed > 0) result.inlineReclaimed = dropped.blobsReclaimed;
}

const INLINE_ONLY: ReadonlySet<number> = new Set([INLINE_PACK]);

/**
 * The forget of forgetInline for the move out of the journal (compact-inline.ts moveInlineBodies:
 * a retirement's, a resync's, a journal rewrite's): `released` as its scan found them, in records
 * of limits.compactOpsPerRecord entries, each entry dropped only if it is still that inline body,
 * unreferenced, past `grace` when its record is prepared (the apply decides alike). An identical
 * message appended meanwhile wrote a fresh copy, which stays. `oldestStayed`: the oldest record
 * of one still at its body but not dropped (referred to again: never, as a released blob is never
 * deduplicated against), below which the caller keeps the journal.
 */
export async function forgetReleasedInline(host: Pick<CompactHost, 'submit'>, released: InlineScan, grace: Grace): Promise<{ forgotten: number; oldestStayed?: number }> {
  const chain: CommitChain = {};
  const stayed: PlannedBlob[] = [];
  let forgotten = 0;
  for (let from = 0; from < released.count; from += limits.compactOpsPerRecord) {
    const slice: PlannedBlob[] = [];
    for (let i = from; i < Math.min(released.count, from + limits.compactOpsPerRecord); i++) {
      const { hash, seq, length } = released.blob(i);
      slice.push({ hash, pack: INLINE_PACK, offset: seq, length });
    }
    forgotten += await host.submit({ chain, prepare: async ({ view }) => forgetOps(view, slice, grace, false, stayed) });
  }
  const oldestStayed = stayed.reduce<number | undefined>((oldest, b) => (oldest === undefined ? b.offset : Math.min(oldest, b.offset)), undefined);
  return oldestStayed === undefined ? { forgotten } : { forgotten, oldestStayed };
}

interface Copied {
  blob: PlannedBlob;
  to: { pack: number; offset: number };
}

/**
 * The new packs a compaction writes into, rotated at packBytesMax. A pack a run's commit may refer
 * to is never removed on a later failure (its unreferenced tail is dead bytes the next
 * compaction reclaims); one nothing committed refers to is removed.
 */
class Outputs {
  private readonly list: NewPack[] = [];
  private referenced = 0;

  constructor(private readonly host: CompactHost) {}

  /** The pack to append a record of `length` bytes to: the last one, or a new one when it is full. */
  async for(length: number): Promise<NewPack> {
    const last = this.list[this.list.length - 1];
    if (last && (last.size + RECORD_HEADER_BYTES + length <= this.host.packBytesMax || last.size <= PACK_HEADER_BYTES)) return last;
    if (last) await last.sync(); // full: durable now, closed with the others
    const output = await this.host.packs.createSidePack();
    this.list.push(output);
    return output;
  }

  /** Everything appended so far is durable. */
  async sync(): Promise<void> {
    for (const output of this.list.slice(Math.max(0, this.referenced - 1))) await output.sync();
  }

  /** A run's relocations into every pack so far are being committed. */
  mayBeReferenced(): void {
    this.referenced = this.list.length;
  }

  /** NewPack.writeBehind of the pack being written (the ones before it were synced when it was made). */
  async writeBehind(): Promise<void> {
    await this.list[this.list.length - 1]?.writeBehind();
  }

  numbers(): number[] {
    return this.list.map((o) => o.pack);
  }

  async close(): Promise<void> {
    for (const output of this.list) await output.close();
  }

  async abandon(): Promise<void> {
    for (const [i, output] of this.list.entries()) await (i < this.referenced ? output.close() : output.abort());
  }
}

/**
 * Copies the kept records of one run into the new packs, byte for byte: neighbours in a pack are
 * read with one pread (liveRuns), each record verified (header, length, hash) and appended as it
 * is, so 4 000 live records of a 600 MB pack cost a few thousand reads and no per-record buffer.
 * The reads go in batches of about compactWriteBytes (one buffer, one hashing job on the store's
 * worker when it has one): batch i+1 is read while batch i is hashed and batch i-1 written.
 * A candidate with a record that fails its hash, or that its pack will not give (IO, ACCESS), is left out of this round (its copies stay
 * unreferenced in the new pack). Any other failure (ENOSPC, EIO) is thrown: the old packs were
 * not touched and keep serving.
 */
async function copyLive(host: CompactHost, outputs: Outputs, kept: PlannedBlob[], result: CompactResult, progress: (bytesDone: number) => void): Promise<Copied[]> {
  const copied: Copied[] = [];
  const skipped = new Set(result.skipped.map((s) => s.pack));
  const bytes = kept.reduce((sum, blob) => sum + RECORD_HEADER_BYTES + blob.length, 0);
  // one core: the worker would only take turns with this thread; little to hash: not worth its isolate's memory
  const threads = os.availableParallelism() > 1 && bytes >= limits.compactHashWorkerBytesMin ? 1 : 0;
  const leased = threads > 0 ? host.hashPool?.acquire(threads) : undefined;
  const buffers = new ReadBuffers();
  const read = (batch: ReadBatch): InFlight => {
    const into = buffers.take(batch.bytes);
    const pool = leased?.ready ? leased : undefined;
    // a batch's read never rejects (readRuns sets each item's error); anything else is kept, not left unhandled
    const done = host.packs.readRuns(batch.runs[0][0].blob.pack, batch.runs, pool, true, into).then(() => undefined, (error: unknown) => ({ error }));
    return { runs: batch.runs, recycle: into !== undefined, done };
  };
  try {
    let reading: InFlight | undefined;
    for (const batch of readBatches(liveRuns(kept.filter((blob) => !skipped.has(blob.pack))))) {
      const next = read(batch);
      if (reading) await appendBatch(outputs, reading, copied, skipped, result, buffers);
      progress(result.bytesCopied);
      reading = next;
    }
    if (reading) await appendBatch(outputs, reading, copied, skipped, result, buffers);
    progress(result.bytesCopied);
  } finally {
    if (leased) host.hashPool!.release();
  }
  return copied;
}

interface ReadBatch {
  runs: LiveItem[][];
  /** From the first record's start to the last one's end, gaps included: what the read buffer holds. */
  bytes: number;
}

interface InFlight {
  runs: LiveItem[][];
  /** Read into a buffer of ReadBuffers: it goes back there once no write reads it. */
  recycle: boolean;
  done: Promise<{ error: unknown } | undefined>;
}

/**
 * The copy's read buffers (compactWriteBytes each), reused: a buffer whose records were appended
 * goes back once the writes that may still read it finished (`written`, after the NewPack's
 * writeBehind returned twice since: see there). A batch bigger than one (a record over
 * compactWriteBytes) gets a buffer of its own, never reused.
 */
class ReadBuffers {
  private readonly spare: ArrayBuffer[] = [];
  private appended: ArrayBuffer[] = [];

  take(bytes: number): ArrayBuffer | undefined {
    if (bytes > limits.compactWriteBytes) return undefined;
    // a small batch with no spare reads into a buffer of its size (readRuns makes it): a run of
    // scattered small records (the 1M churn: ~130 KB a run) would otherwise leave a 4 MiB buffer
    // per run to the garbage collector (~40 MB of them at once)
    if (this.spare.length === 0 && bytes < limits.compactWriteBytes / 8) return undefined;
    return this.spare.pop() ?? new ArrayBuffer(limits.compactWriteBytes);
  }

  /**
   * A writeBehind returned: every write started before it finished, so the buffers appended
   * before the previous one are free. Called with what was appended since then.
   */
  written(sinceLast: ArrayBuffer[]): void {
    // never a slice of node's shared pool: readRuns reads a batch given `into` into a buffer of its own
    this.spare.push(...this.appended.filter((b) => b.byteLength === limits.compactWriteBytes && !sinceLast.includes(b)));
    this.appended = sinceLast;
  }
}

/**
 * Appends a batch's verified records once its read is done (a CORRUPT record skips its pack for
 * this round), then writes them behind: the buffers of the batch before are free after that.
 */
async function appendBatch(outputs: Outputs, reading: InFlight, copied: Copied[], skipped: Set<number>, result: CompactResult, buffers: ReadBuffers): Promise<void> {
  const failed = await reading.done;
  if (failed) throw failed.error;
  let buffer: ArrayBuffer | undefined; // where the records are (after a hash worker, a new object for the same memory)
  for (const run of reading.runs) {
    if (skipped.has(run[0].blob.pack)) continue;
    for (const item of run) {
      if (item.error !== undefined) {
        // a record that does not verify, or that its old pack will not give (an unreadable sector:
        // EIO; a file whose mode changed: ACCESS), leaves that pack for a later round; the round
        // goes on with the others (one bad sector failed every compaction of the store)
        const error = item.error;
        if (!skipsPack(error)) throw error;
        result.skipped.push({ pack: item.blob.pack, why: error.message });
        skipped.add(item.blob.pack);
        break;
      }
      const output = await outputs.for(item.blob.length);
      copied.push({ blob: item.blob, to: await output.appendRecord(item.record!) });
      buffer ??= item.record!.buffer as ArrayBuffer;
      result.blobsCopied++;
      result.bytesCopied += item.blob.length;
    }
  }
  const appended = reading.recycle && buffer ? [buffer] : [];
  await outputs.writeBehind();
  buffers.written(appended);
}

/**
 * Whether an error reading a record from its old pack leaves that pack out of the round
 * (appendBatch): the record does not verify, the device failed the read (EIO), or the file's mode
 * refuses it. Anything else (no descriptor left, memory) is not about the pack: the round fails.
 */
function skipsPack(error: unknown): error is MailstoreError {
  if (!(error instanceof MailstoreError)) return false;
  if (error.code === 'CORRUPT') return true;
  const sys = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  return sys === 'EIO' || sys === 'EACCES' || sys === 'EPERM';
}

/** Consecutive runs of one pack, about limits.compactWriteBytes of them at a time (a run longer than that alone). */
function* readBatches(runs: LiveItem[][]): Generator<ReadBatch> {
  let batch: ReadBatch = { runs: [], bytes: 0 };
  for (const run of runs) {
    const last = run[run.length - 1].location;
    const runBytes = last.offset + RECORD_HEADER_BYTES + last.length - run[0].location.offset;
    if (batch.runs.length > 0 && (run[0].blob.pack !== batch.runs[0][0].blob.pack || batch.bytes + runBytes > limits.compactWriteBytes)) {
      yield batch;
      batch = { runs: [], bytes: 0 };
    }
    batch.runs.push(run);
    batch.bytes += runBytes;
  }
  if (batch.runs.length > 0) yield batch;
}

type LiveItem = RunItem & { blob: PlannedBlob };

/** `kept` (in pack and offset order) in runs of neighbours: one pack, gaps of at most compactReadGapBytes, at most compactWriteBytes long. */
function liveRuns(kept: PlannedBlob[]): LiveItem[][] {
  const runs: LiveItem[][] = [];
  let run: LiveItem[] = [];
  let runStart = 0, runEnd = 0;
  for (const blob of kept) {
    const end = blob.offset + RECORD_HEADER_BYTES + blob.length;
    const joins = run.length > 0 && blob.pack === run[0].blob.pack && blob.offset >= runEnd &&
      blob.offset - runEnd <= limits.compactReadGapBytes && end - runStart <= limits.compactWriteBytes;
    if (!joins) {
      if (run.length > 0) runs.push(run);
      run = [];
      runStart = blob.offset;
    }
    run.push({ blob, hash: blob.hash, location: { pack: blob.pack, offset: blob.offset, length: blob.length } });
    runEnd = end;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/**
 * One run's commit (records of at most limits.compactOpsPerRecord ops, submitted together so they
 * share a group-commit batch, chained so none commits after one failed): relocations conditional
 * on the blob still being at its old copy, forgets conditional on it still being released past its
 * grace period at that copy; with the last run, the retire intent (after them in the same batch).
 * A failure leaves the new packs in place: unreferenced, they are
 * reclaimed by the next compaction, and a record that might after all be durable never points at
 * a removed file.
 */
async function commitRun(host: CompactHost, chain: CommitChain, copied: Copied[], expired: PlannedBlob[], grace: Grace, result: Pick<CompactResult, 'blobsReclaimed'>, retire?: number[], scannedAt?: CompactionPlan['scannedAt']): Promise<void> {
  const per = limits.compactOpsPerRecord;
  const pending: Promise<number>[] = [];
  for (let i = 0; i < copied.length; i += per) {
    const slice = copied.slice(i, i + per);
    const ops = relocateOps(slice);
    // the apply reads each entry (getShared): fetched here in one read
    pending.push(host.submit({ chain, prepare: async ({ view, seq }) => {
      const blobKeys = slice.map((c) => keys.blob(c.blob.hash));
      if (asScanned(scannedAt, view, seq, slice.map((c) => c.blob))) view.remember(blobKeys, slice.map((c) => scannedRecord(c.blob)));
      else await view.prefetch(blobKeys);
      return { ops, result: 0 };
    } }));
  }
  for (let i = 0; i < expired.length; i += per) {
    const slice = expired.slice(i, i + per);
    pending.push(host.submit({ chain, prepare: async ({ view, seq }) => forgetOps(view, slice, grace, asScanned(scannedAt, view, seq, slice)) }));
  }
  if (retire && retire.length > 0) pending.push(host.submit({ chain, prepare: async () => ({ ops: [{ op: 'pack.retire', packs: retire }], result: 0 }) }));
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  result.blobsReclaimed += settled.reduce((sum, s) => sum + (s.status === 'fulfilled' ? s.value : 0), 0);
}

/**
 * One `blob.forgetRun` per pack for the entries of `expired` still released past the grace period
 * at their copy (the op checks again when applied: a replay decides alike); `stayed` gets those
 * still at their copy but not past it. Read with getShared,
 * so the apply's second read of each entry in this batch costs a map lookup. `asScanned`: the index
 * holds each entry as the planning scan read it (`released`), so they are not read again: 15k
 * entries of the churn were a LevelDB getMany and 15k checksums and decodes on the thread the copy
 * shares, and LevelDB charged the lookups to its files until one was compacted, inside the call.
 */
async function forgetOps(view: IndexView, expired: PlannedBlob[], grace: Grace, asScanned = false, stayed?: PlannedBlob[]): Promise<{ ops: Op[]; result: number }> {
  // by pack, and apart those past the grace only by a date ahead of the clock: their op carries no
  // cutoff (2^53 - 1, as a compaction without a grace), so a replay, which knows no clock, decides alike
  const runs = new Map<string, { pack: number; cutoff: number; list: PlannedBlob[] }>();
  const blobKeys = expired.map((blob) => keys.blob(blob.hash));
  // remembered: what getShared reads of each entry, without reading it again here
  const remembered = asScanned ? view.remember(blobKeys, expired.map(scannedRecord)) : undefined;
  if (!remembered) await view.prefetch(blobKeys); // one read on LevelDB's thread pool, not 16k on this thread
  for (const [i, blob] of expired.entries()) {
    const now = remembered ? remembered[i] : view.getShared<BlobRecord>(blobKeys[i]);
    if (!now || now.p !== blob.pack || now.o !== blob.offset) continue;
    if (!pastGrace(now, grace)) { stayed?.push(blob); continue; }
    const cutoff = now.z !== undefined && now.z > grace.cutoff ? Number.MAX_SAFE_INTEGER : grace.cutoff;
    const key = `${blob.pack}/${cutoff}`;
    let run = runs.get(key);
    if (!run) runs.set(key, (run = { pack: blob.pack, cutoff, list: [] }));
    run.list.push(blob);
  }
  const ops: Op[] = [...runs.values()].map(({ pack, cutoff, list }) => ({ op: 'blob.forgetRun', pack, cutoff, entries: encodeForgetEntries(list) }));
  return { ops, result: [...runs.values()].reduce((sum, run) => sum + run.list.length, 0) };
}

/**
 * Whether a compaction record prepared at `seq` meets `blobs` as the planning scan read them: it is
 * the first record of its batch right after the scanned seq (moved on by the compaction's own
 * records before it, which change only their own entries), in the index the scan read. The index
 * changes only by the Writer's records, or a rebuild that replaces it; anything else committed in
 * between (an append that moved a released blob to a fresh copy, an expunge) and the entries are
 * read again. When it holds, `seq` is the new scanned seq: the record changes only `blobs`.
 */
function asScanned(scannedAt: CompactionPlan['scannedAt'], view: IndexView, seq: number, blobs: PlannedBlob[]): boolean {
  if (!scannedAt || view.db !== scannedAt.db || seq - 1 !== scannedAt.seq || !blobs.every((b) => b.refs !== undefined && b.released !== undefined)) return false;
  scannedAt.seq = seq;
  return true;
}

/** An entry as the planning scan read it: its `r`, and its `z` if it had one. */
function scannedRecord(blob: PlannedBlob): BlobRecord {
  const record: BlobRecord = { p: blob.pack, o: blob.offset, l: blob.length, r: blob.refs! };
  if (blob.released !== null && blob.released !== undefined) record.z = blob.released;
  return record;
}

/** One `blob.relocateRun` per pair of old and new pack (the op is conditional: a replay decides alike). */
function relocateOps(copied: Copied[]): Op[] {
  const byPair = new Map<string, { from: number; to: number; entries: RelocateEntry[] }>();
  for (const c of copied) {
    const pair = `${c.blob.pack}>${c.to.pack}`;
    let run = byPair.get(pair);
    if (!run) byPair.set(pair, (run = { from: c.blob.pack, to: c.to.pack, entries: [] }));
    run.entries.push({ hash: c.blob.hash, from: c.blob.offset, to: c.to.offset, size: c.blob.length });
  }
  return [...byPair.values()].map(({ from, to, entries }) => ({ op: 'blob.relocateRun', from, to, entries: encodeRelocateEntries(entries) }));
}

/**
 * Deletes the packs the index lists as retired, once no reader is inside them, then clears them
 * from the list. A retired pack some blob entry still points into is kept and reported (scrub
 * says so too): never deleted because the plan said so.
 */
export async function finishRetired(host: Pick<CompactHost, 'db' | 'packs' | 'submit' | 'startJournalSegment'>, result?: Pick<CompactResult, 'packsRemoved' | 'packsPending'>): Promise<{ removed: number[]; pending: number[]; inUse: number[] }> {
  const listed = (await host.db.get<number[]>(meta.retiredPacks)) ?? [];
  const out = { removed: [] as number[], pending: [] as number[], inUse: [] as number[] };
  if (listed.length === 0) return out;
  host.packs.reserveNumbersTo(Math.max(...listed));
  const inUse = await packsInUse(host.db, new Set(listed));
  for (const pack of listed) {
    if (inUse.has(pack)) out.inUse.push(pack);
    else if (await host.packs.removePack(pack, limits.compactReaderWaitMs)) out.removed.push(pack);
    else out.pending.push(pack);
  }
  if (out.removed.length > 0) {
    await host.packs.syncDir();
    // A pack in the object store (tier.ts) leaves the tier's list in the same record; its object
    // is deleted only after that record is durable (a crash between leaves an orphan object, never
    // a listed pack without its object, which scrub would call damage).
    const remote = out.removed.filter((pack) => host.packs.isRemote(pack));
    const untier: Op[] = remote.map((pack) => ({ op: 'meta.set', key: tierMetaName(pack), value: null }));
    await host.submit({ prepare: async () => {
      host.startJournalSegment?.();
      return { ops: [{ op: 'pack.removed', packs: out.removed }, ...untier], result: undefined };
    } });
    for (const pack of remote) await host.packs.removeRemote(pack);
  }
  result?.packsRemoved.push(...out.removed);
  result?.packsPending.push(...out.pending, ...out.inUse);
  return out;
}

async function packsBytes(packs: BlobBackend): Promise<number> {
  let total = 0;
  for (const pack of await packs.listPacks()) total += await packs.packBytes(pack);
  return total;
}
