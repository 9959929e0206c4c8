// Moves inline bodies (docs/FORMAT.md, "Inline bodies") out of the journal into packs, so the
// journal segments holding them can be retired. The ordering of any append: the pack bytes are
// durable before the journal record that relocates the blobs (each relocation conditional on the
// blob still being at its inline location), and a segment is retired only below the oldest inline
// body still referred to. A body that fails its hash is left where it is: its segment stays.
// Released bodies past their grace period are not moved but forgotten (nothing refers to them).
import { MailstoreError, assert } from '../errors.js';
import type { IndexDb } from '../index/index-db.js';
import type { BlobBackend } from '../blob/backend.js';
import { INLINE_PACK } from '../blob/pack-store.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { limits } from '../limits.js';
import { HASH_BYTES } from '../hash/blake3.js';
import type { BlobRecord, Op } from './records.js';
import { meta } from './apply.js';
import type { CommitChain, Mutation, PrepareContext } from './writer.js';
import type { InlineBodyRef, InlineRunSource } from './inline-bodies.js';

export interface InlineMoveHost {
  readonly db: IndexDb;
  readonly packs: BlobBackend;
  submit<T>(mutation: Mutation<T>): Promise<T>;
  /** Reads a group's bodies at once (journalInlineRuns); absent: each body is read alone (packs.read). */
  readonly readInlineBodies?: InlineRunSource;
}

export interface InlineMoveResult {
  moved: number;
  /** Released inline bodies at or below the bound past their grace period whose entries were dropped, not moved. */
  forgotten: number;
  /** Body bytes of the inline blobs found at or below the bound to move. */
  bytes: number;
  /** Inline bodies at or below the bound that could not be read (CORRUPT): left in the journal. */
  unreadable: { hash: string; seq: number; why: string }[];
  /** The seq of the oldest inline body still referred to afterwards (undefined: none). */
  oldestInlineSeq?: number;
}

/**
 * The inline blob entries whose record seq is at most a bound, packed into a few typed arrays: a
 * daemon's move after a snapshot of a 1M-message store finds ~300k of them, which as objects with a
 * Buffer each took ~45 MB of heap. Also the oldest seq of those above the bound.
 */
export class InlineScan {
  count = 0;
  /** Body bytes of the blobs found at or below the bound. */
  bytes = 0;
  /** The oldest record seq of an inline blob above the bound (undefined: none). */
  oldestAbove?: number;
  /** With scanInline's `released`: the blobs at or below the bound it picked, kept apart (not in count). */
  released?: InlineScan;
  private hashes = Buffer.allocUnsafeSlow(0);
  private seqs = new Float64Array(0);
  private lengths = new Float64Array(0);

  add(hash: Buffer, seq: number, length: number): void {
    assert(hash.length === HASH_BYTES, `an inline blob key of ${hash.length} hash bytes`);
    if (this.count === this.seqs.length) this.grow(Math.max(1024, this.count * 2));
    hash.copy(this.hashes, this.count * HASH_BYTES);
    this.seqs[this.count] = seq;
    this.lengths[this.count] = length;
    this.count++;
    this.bytes += length;
  }

  /** Blob `i` as the move reads it (its hash copied out). */
  blob(i: number): InlineBodyRef {
    return { hash: Buffer.from(this.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)), seq: this.seqs[i]!, length: this.lengths[i]! };
  }

  /** The blobs' indices in the order of their records (the journal is read front to back). */
  inSeqOrder(): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < order.length; i++) order[i] = i;
    return order.sort((x, y) => this.seqs[x]! - this.seqs[y]!);
  }

  private grow(to: number): void {
    const hashes = Buffer.allocUnsafeSlow(to * HASH_BYTES);
    this.hashes.copy(hashes, 0, 0, this.count * HASH_BYTES);
    const seqs = new Float64Array(to), lengths = new Float64Array(to);
    seqs.set(this.seqs.subarray(0, this.count));
    lengths.set(this.lengths.subarray(0, this.count));
    this.hashes = hashes;
    this.seqs = seqs;
    this.lengths = lengths;
  }
}

/**
 * Scans the blob entries for inline ones: those whose record seq is at most `throughSeq` are kept,
 * in `scan.released` (in B order) those of them `released` picks.
 */
export async function scanInline(db: IndexDb, throughSeq: number, released?: (blob: BlobRecord) => boolean): Promise<InlineScan> {
  const scan = new InlineScan();
  if (released) scan.released = new InlineScan();
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of db.entryBatches<BlobRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [key, blob] of batch) {
      if (blob.p !== INLINE_PACK) continue;
      if (blob.o <= throughSeq) (released?.(blob) ? scan.released! : scan).add(key.subarray(1), blob.o, blob.l);
      else scan.oldestAbove = scan.oldestAbove === undefined ? blob.o : Math.min(scan.oldestAbove, blob.o);
    }
  }
  return scan;
}

/** The seq of the oldest record still holding an inline body that an index entry refers to (undefined: none). */
export async function oldestInlineSeq(db: IndexDb): Promise<number | undefined> {
  return (await scanInline(db, -Infinity)).oldestAbove;
}

/**
 * Moves every inline body of a record at or below `throughSeq` into the pack appends go to, through
 * the ordinary commit path: each mutation reserves the bodies in its batch's pack write (durable
 * before its journal record, and shipped to replicas like any append) and relocates the blobs,
 * each only if it is still inline at that seq. Returns the oldest inline seq left, which bounds
 * journal retirement. The bodies go in groups of about limits.inlineMoveBatchBytes, each read at
 * once into a buffer that is used again once its group has committed (host.readInlineBodies): a
 * running daemon moves ~100k bodies a snapshot, and a buffer per body left its malloc arena
 * ~70 MB larger for good (BENCHMARKS.md, session 23).
 *
 * Released bodies past `releasedGraceMs` (0: every released one; compact-plan.ts graceAt) are not
 * moved: their entries are forgotten first (compact.ts forgetReleasedInline, conditional like a
 * compaction's), so their segments retire without their bytes being written into a pack. Moved,
 * a big delete's bodies were copied by the next snapshot only for a later compaction to drop them
 * (bytes written twice, and pack space meanwhile). Those within the grace move like live ones.
 */
export async function moveInlineBodies(host: InlineMoveHost, throughSeq: number, releasedGraceMs: number): Promise<InlineMoveResult> {
  const result: InlineMoveResult = { moved: 0, forgotten: 0, bytes: 0, unreadable: [] };
  if (!(await host.db.get<number>(meta.inlineUsed))) return result; // no inline body was ever stored: no scan
  // loaded here, not with the store: an append never needs them (test/cli/start-up.test.ts)
  const { graceAt, pastGrace } = await import('./compact-plan.js');
  const grace = graceAt(Date.now(), releasedGraceMs);
  const scan = await scanInline(host.db, throughSeq, (blob) => pastGrace(blob, grace));
  let stayed: number | undefined;
  if (scan.released!.count > 0) {
    const forget = await (await import('./compact.js')).forgetReleasedInline(host, scan.released!, grace);
    result.forgotten = forget.forgotten;
    stayed = forget.oldestStayed;
  }
  scan.released = undefined; // its memory goes before the bodies are read
  const chain: CommitChain = {};
  const pending: Promise<number>[] = [];
  const spare: Buffer[] = [];
  for (const group of groupsOf(scan)) {
    const read = host.readInlineBodies ? await host.readInlineBodies(group, spare.pop()) : undefined;
    const items: { blob: InlineBodyRef; bytes: Buffer }[] = [];
    for (const [i, blob] of group.entries()) {
      let bytes = read?.bodies[i];
      if (!bytes) {
        try {
          bytes = await host.packs.read({ pack: INLINE_PACK, offset: blob.seq, length: blob.length }, blob.hash);
        } catch (error) {
          if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
          result.unreadable.push({ hash: blob.hash.toString('hex'), seq: blob.seq, why: error.message });
          continue;
        }
      }
      items.push({ blob, bytes });
    }
    if (items.length > 0) {
      // maintenance: held to the floor only (the journal segments it lets retire give the space back)
      const space = { bytes: items.reduce((sum, item) => sum + item.bytes.length + limits.freeSpaceMessageOverheadBytes, 0), mail: false };
      const committed = host.submit({ chain, space, prepare: (ctx) => relocateInBatch(ctx, items) });
      // the group's buffer serves again once its bytes are in the pack (the commit is durable)
      pending.push(read ? committed.then((n) => { spare.push(read.buffer); return n; }) : committed);
    } else if (read) spare.push(read.buffer);
    // at most two groups in flight: the bodies read wait in memory until their batch commits
    if (pending.length >= 2) result.moved += await settleFirst(pending);
  }
  while (pending.length > 0) result.moved += await settleFirst(pending);
  result.bytes = scan.bytes;
  // what stays inline: the bodies that could not be read, released ones the forget found referred
  // to again, and those above the bound (a body delivered since the scan is above it too: its
  // record is newer than any snapshot's seq)
  const left = stayed === undefined ? scan.oldestAbove : Math.min(stayed, scan.oldestAbove ?? Infinity);
  result.oldestInlineSeq = result.unreadable.reduce<number | undefined>((oldest, u) => (oldest === undefined ? u.seq : Math.min(oldest, u.seq)), left);
  return result;
}

/**
 * The blobs in seq order, in groups of about `bytesMax` body bytes and at most `bodiesMax` bodies
 * (the move's: limits.inlineMoveBatchBytes, and limits.compactOpsPerRecord a record; scrub's
 * check: limits.inlineCheckBatchBytes and limits.inlineCheckBatchBodies).
 */
export function* groupsOf(scan: InlineScan, bytesMax: number = limits.inlineMoveBatchBytes, bodiesMax: number = limits.compactOpsPerRecord): Generator<InlineBodyRef[]> {
  let group: InlineBodyRef[] = [];
  let bytes = 0;
  for (const i of scan.inSeqOrder()) {
    const blob = scan.blob(i);
    group.push(blob);
    bytes += blob.length;
    if (bytes >= bytesMax || group.length >= bodiesMax) {
      yield group;
      group = [];
      bytes = 0;
    }
  }
  if (group.length > 0) yield group;
}

async function relocateInBatch(ctx: PrepareContext, items: { blob: InlineBodyRef; bytes: Buffer }[]): Promise<{ ops: Op[]; result: number }> {
  const ops: Op[] = [];
  for (const { blob, bytes } of items) {
    const now = await ctx.view.get<BlobRecord>(keys.blob(blob.hash));
    if (!now || now.p !== INLINE_PACK || now.o !== blob.seq) continue; // moved or forgotten meanwhile
    const to = ctx.packs.reserve(blob.hash, bytes);
    ops.push({ op: 'blob.relocate', hash: blob.hash, pack: to.pack, offset: to.offset, size: blob.length, from: [INLINE_PACK, blob.seq] });
  }
  return { ops, result: ops.length };
}

/** Awaits the oldest pending commit; when it failed, the later ones (chained: failing too) are settled quietly. */
async function settleFirst(pending: Promise<number>[]): Promise<number> {
  try {
    return await pending.shift()!;
  } catch (error) {
    for (const p of pending.splice(0)) p.catch(() => undefined);
    throw error;
  }
}
