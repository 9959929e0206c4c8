// Pack compaction (restic's prune, Dovecot's purge): the live records of packs that are mostly
// dead are copied into a new pack, the index is switched to the copies in one journaled commit,
// and the old packs are deleted once no reader is inside them. Ordering (docs/FORMAT.md,
// "Compaction"): new pack durable -> journal commit (conditional relocations, forgets, retire
// intent) -> index -> old files removed -> retire intent cleared. The copying runs beside the
// Writer; only the commit goes through it.
import { MailstoreError } from '../errors.js';
import type { IndexDb } from '../index/index-db.js';
import type { BlobBackend, NewPack } from '../blob/backend.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import { tierMetaName } from './tier.js';
import { meta } from './apply.js';
import { candidateBlobs, gateAndTally, packsInUse, pastGrace, planCompaction, type CompactionPlan, type PlannedBlob } from './compact-plan.js';
import type { BlobRecord, Op } from './records.js';
import type { Health } from './recovery.js';
import type { CommitChain, Mutation } from './writer.js';

export interface CompactOptions {
  /** Plan and report only: nothing is sealed, copied or committed. */
  dryRun?: boolean;
  /** Keep blobs released less than this long ago (default 0: the admin asked now). */
  graceMs?: number;
  /** Rewrite packs whose dead share reaches this (default limits.compactDeadRatio). */
  deadRatio?: number;
  onProgress?: (progress: CompactProgress) => void;
}

export interface CompactProgress {
  phase: 'plan' | 'copy' | 'commit' | 'remove';
  bytesDone: number;
  bytesTotal: number;
}

export interface CompactResult {
  dryRun: boolean;
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
  /** Candidate packs left alone this round, and why (a record failed its hash). */
  skipped: { pack: number; why: string }[];
  ms: number;
  /** Inline bodies moved from the journal into packs (Store.compact, compact-inline.ts). */
  inlineMoved?: number;
}

/** What compaction needs of its Store. */
export interface CompactHost {
  readonly db: IndexDb;
  readonly packs: BlobBackend;
  readonly health: Health;
  readonly packBytesMax: number;
  submit<T>(mutation: Mutation<T>): Promise<T>;
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
}

export async function compactStore(host: CompactHost, options: CompactOptions = {}): Promise<CompactResult> {
  const started = Date.now();
  const result: CompactResult = {
    dryRun: Boolean(options.dryRun), packsRewritten: [], packsWritten: [], packsRemoved: [], packsPending: [],
    blobsCopied: 0, bytesCopied: 0, blobsReclaimed: 0, bytesBefore: 0, bytesAfter: 0, skipped: [], ms: 0,
  };
  if (!options.dryRun) {
    await host.packs.removePartialPacks();
    await finishRetired(host, result);
  }
  const cutoff = Date.now() - (options.graceMs ?? 0);
  const plan = await planRound(host, options, cutoff);
  result.bytesBefore = plan.bytesBefore;
  if (options.dryRun || plan.candidates.length === 0) {
    result.packsRewritten = plan.candidates;
    result.bytesAfter = options.dryRun ? plan.bytesAfterEstimate : plan.bytesBefore;
    if (options.dryRun) result.blobsReclaimed = (await candidateBlobs(host.db, new Set(plan.candidates), cutoff)).expired.length;
    result.ms = Date.now() - started;
    return result;
  }
  const { kept, expired } = await candidateBlobs(host.db, new Set(plan.candidates), cutoff);
  const copied = await copyLive(host, kept, result, options);
  const retired = plan.candidates.filter((p) => !result.skipped.some((s) => s.pack === p));
  await commit(host, copied, expired.filter((b) => retired.includes(b.pack)), retired, cutoff, result);
  result.packsRewritten = retired;
  await finishRetired(host, result);
  result.bytesAfter = await packsBytes(host.packs);
  result.ms = Date.now() - started;
  return result;
}

/**
 * Gate and plan; when the pack appends go to would be picked, it is sealed (appends move to a new
 * pack) and the plan is made again, since appends may have landed in it meanwhile.
 */
async function planRound(host: CompactHost, options: CompactOptions, cutoff: number): Promise<CompactionPlan> {
  const ratio = options.deadRatio ?? limits.compactDeadRatio;
  const exclusive = <T>(fn: () => Promise<T>) => host.runExclusive(fn);
  const { scan, packs } = await gateAndTally(() => host.db, host.packs, host.health, cutoff, exclusive);
  options.onProgress?.({ phase: 'plan', bytesDone: 0, bytesTotal: 0 });
  const plan = await planCompaction(host.packs, scan, packs, cutoff, ratio, Boolean(options.dryRun));
  const appendPack = host.packs.appendPack;
  if (options.dryRun || appendPack === 0) return plan;
  const whole = await planCompaction(host.packs, scan, packs, cutoff, ratio, true);
  if (!whole.candidates.includes(appendPack)) return plan;
  await host.submit({ exclusive: true, prepare: async () => { host.packs.seal(); return { ops: [], result: undefined }; } });
  const again = await gateAndTally(() => host.db, host.packs, host.health, cutoff, exclusive);
  return planCompaction(host.packs, again.scan, again.packs, cutoff, ratio, false);
}

interface Copied {
  blob: PlannedBlob;
  to: { pack: number; offset: number };
}

/**
 * Copies every kept record of the candidates into new packs (each read verified by its hash),
 * then makes them durable. A candidate with a record that fails its hash is left out of this
 * round (its copies stay unreferenced in the new pack). Any other failure (ENOSPC, EIO) removes
 * the new packs and is thrown: the old packs were not touched and keep serving.
 */
async function copyLive(host: CompactHost, kept: PlannedBlob[], result: CompactResult, options: CompactOptions): Promise<Copied[]> {
  const copied: Copied[] = [];
  const outputs: NewPack[] = [];
  const bytesTotal = kept.reduce((sum, b) => sum + b.length, 0);
  try {
    for (const blob of kept) {
      if (result.skipped.some((s) => s.pack === blob.pack)) continue;
      let bytes: Buffer;
      try {
        bytes = await host.packs.read({ pack: blob.pack, offset: blob.offset, length: blob.length }, blob.hash);
      } catch (error) {
        if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
        result.skipped.push({ pack: blob.pack, why: error.message });
        continue;
      }
      const output = await outputFor(host, outputs, bytes.length);
      copied.push({ blob, to: await output.append(blob.hash, bytes) });
      result.blobsCopied++;
      result.bytesCopied += bytes.length;
      options.onProgress?.({ phase: 'copy', bytesDone: result.bytesCopied, bytesTotal });
    }
    for (const output of outputs) {
      await output.sync();
      await output.close();
    }
  } catch (error) {
    for (const output of outputs) await output.abort();
    throw error;
  }
  result.packsWritten = outputs.map((o) => o.pack);
  const skipped = new Set(result.skipped.map((s) => s.pack));
  return copied.filter((c) => !skipped.has(c.blob.pack));
}

/** The new pack to append a record of `length` bytes to: the last one, or a new one when it is full. */
async function outputFor(host: CompactHost, outputs: NewPack[], length: number): Promise<NewPack> {
  const last = outputs[outputs.length - 1];
  if (last && (last.size + RECORD_HEADER_BYTES + length <= host.packBytesMax || last.size <= PACK_HEADER_BYTES)) return last;
  if (last) await last.sync(); // full: durable now, closed with the others
  const output = await host.packs.createSidePack();
  outputs.push(output);
  return output;
}

/**
 * One commit (records of at most limits.compactOpsPerRecord ops, submitted together so they share
 * one group-commit batch, chained so none commits after one failed): relocations conditional on
 * the blob still being at its old copy, forgets conditional on it still being released past its
 * grace period at that copy, and last the retire intent. A failure leaves the new packs in place:
 * unreferenced, they are reclaimed by the next compaction, and a record that might after all be
 * durable never points at a removed file.
 */
async function commit(host: CompactHost, copied: Copied[], expired: PlannedBlob[], retired: number[], cutoff: number, result: CompactResult): Promise<void> {
  if (retired.length === 0) return;
  const chain: CommitChain = {};
  const per = limits.compactOpsPerRecord;
  const pending: Promise<number>[] = [];
  for (let i = 0; i < copied.length; i += per) {
    const slice = copied.slice(i, i + per);
    pending.push(host.submit({ chain, prepare: async () => ({ ops: slice.map(relocateOp), result: 0 }) }));
  }
  for (let i = 0; i < expired.length; i += per) {
    const slice = expired.slice(i, i + per);
    pending.push(host.submit({ chain, prepare: async ({ view }) => {
      const ops: Op[] = [];
      for (const blob of slice) {
        const now = await view.get<BlobRecord>(keys.blob(blob.hash));
        if (now && now.p === blob.pack && now.o === blob.offset && pastGrace(now, cutoff)) ops.push({ op: 'blob.forget', hash: blob.hash, pack: blob.pack, offset: blob.offset });
      }
      return { ops, result: ops.length };
    } }));
  }
  pending.push(host.submit({ chain, prepare: async () => ({ ops: [{ op: 'pack.retire', packs: retired }], result: 0 }) }));
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  result.blobsReclaimed = settled.reduce((sum, s) => sum + (s.status === 'fulfilled' ? s.value : 0), 0);
}

function relocateOp(c: Copied): Op {
  return { op: 'blob.relocate', hash: c.blob.hash, pack: c.to.pack, offset: c.to.offset, size: c.blob.length, from: [c.blob.pack, c.blob.offset] };
}

/**
 * Deletes the packs the index lists as retired, once no reader is inside them, then clears them
 * from the list. A retired pack some blob entry still points into is kept and reported (scrub
 * says so too): never deleted because the plan said so.
 */
export async function finishRetired(host: Pick<CompactHost, 'db' | 'packs' | 'submit'>, result?: Pick<CompactResult, 'packsRemoved' | 'packsPending'>): Promise<{ removed: number[]; pending: number[]; inUse: number[] }> {
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
    await host.submit({ prepare: async () => ({ ops: [{ op: 'pack.removed', packs: out.removed }, ...untier], result: undefined }) });
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
