// Compaction's reading half: one scan of B (blob locations) tallies what every pack still needs,
// one scan of M checks that the refcounts add up, and the plan picks the packs worth rewriting.
// Nothing here writes; compact.ts does the copying and the commit.
import { MailstoreError } from '../errors.js';
import type { IndexDb } from '../index/index-db.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import type { BlobBackend } from '../blob/backend.js';
import { INLINE_PACK } from '../blob/pack-store.js';
import { limits } from '../limits.js';
import { HASH_BYTES } from '../hash/blake3.js';
import type { BlobRecord, MessageRecord } from './records.js';
import type { Health } from './recovery.js';

/** A blob entry of a candidate pack: copied (kept) or forgotten (expired). */
export interface PlannedBlob {
  hash: Buffer;
  pack: number;
  offset: number;
  length: number;
  /**
   * An entry from the planning scan (SeenEntries): its `r` and `z` as the scan read them (`z` null:
   * the entry had none). What a commit's prepare rebuilds the entry from when the index has not
   * changed since the scan (compact.ts asScanned).
   */
  refs?: number;
  released?: number | null;
}

export interface PackTally {
  pack: number;
  /** Bytes of the file. */
  bytes: number;
  /** Record bytes (header + body) of blobs that must stay: referenced, or released within the grace period. */
  keptBytes: number;
  /** Record bytes of referenced blobs alone. */
  liveBytes: number;
  /** Blob entries released past their grace period (a rewrite forgets them). */
  expiredBlobs: number;
}

export interface CompactionPlan {
  tallies: PackTally[];
  /** Packs to rewrite, in order. */
  candidates: number[];
  /** Which released blobs are past their grace period. */
  grace: Grace;
  bytesBefore: number;
  /** What packs/ would hold after (candidates' kept records in new packs). */
  bytesAfterEstimate: number;
  /** Dead record bytes the candidates hold. */
  bytesReclaimable: number;
  /** Record bytes of the candidates' kept blobs (what the rewrite copies). */
  bytesToCopy: number;
  /** Blob entries of the candidates released past their grace period (what the rewrite forgets). */
  blobsExpired: number;
  /**
   * Inline bodies' entries released past their grace period (docs/FORMAT.md, "Inline bodies"):
   * forgotten by every round, candidates or not (compact.ts forgetInline), never copied.
   */
  inlineExpired: number;
  /** Packs that qualified but whose live records would not fit in the room given (left for a later round). */
  noRoom?: number[];
  /**
   * Pack files that would have been rewritten but whose header names another store or pack number
   * (copied into packs/ by hand): never rewritten or deleted. `referenced`: blob entries point into
   * it (an older mailstore appended to it), so it stays where it is; otherwise it is set aside.
   */
  foreign?: { pack: number; why: string; referenced: boolean }[];
  /** Every B entry as the planning scan saw it, when that is still all of the candidates' (compact.ts planRound). */
  seen?: SeenEntries;
  /**
   * With `seen`: the index the scan read and the journal's last seq before it began. A commit
   * prepared right after that seq, in that index, meets every entry as the scan saw it; it moves
   * `seq` on to its own (compact.ts asScanned): a compaction's records change only their own entries.
   */
  scannedAt?: { db: IndexDb; seq: number };
}

/** Lane sums of the first 8 hash bytes (times a count): equal multisets give equal sums. */
class HashDigest {
  private a = 0;
  private b = 0;
  /**
   * The hash at `at` in `bytes` (a B key's hash follows its space byte), read in place: a view
   * an entry (two for a B entry, with SeenEntries') was ~60k typed arrays made and collected
   * in a compaction of 20k entries, in the planning scan every other step waits for.
   */
  add(bytes: Uint8Array, times: number, at = 0): void {
    this.a = (this.a + times * word(bytes, at)) % 4294967296;
    this.b = (this.b + times * word(bytes, at + 4)) % 4294967296;
  }
  equals(other: HashDigest): boolean {
    return this.a === other.a && this.b === other.b;
  }
}

/** The big-endian u32 at `at` (any Uint8Array: cbor-x may hand back one that is not a Buffer). */
function word(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function recordBytes(length: number): number {
  return RECORD_HEADER_BYTES + length;
}

/**
 * Released blobs dated at or before `cutoff` (ms) are past their grace period, and so are those
 * dated after `aheadAfter`: released while the clock was far ahead (a VM booted with a wrong RTC,
 * then put right by NTP), their age is unknown, and waiting for that date kept their dead bytes
 * for as long as the clock had been wrong, with no way for the background compactor to shorten
 * it. The grace is a courtesy (the explicit command has none), so they go now.
 */
export interface Grace {
  cutoff: number;
  aheadAfter: number;
}

/** No grace: every released blob goes, whatever its date. */
export const NO_GRACE: Grace = { cutoff: Number.MAX_SAFE_INTEGER, aheadAfter: Number.MAX_SAFE_INTEGER };

/** The grace of a compaction starting at `now` that keeps released blobs `graceMs` (0: none). */
export function graceAt(now: number, graceMs: number): Grace {
  return graceMs > 0 ? { cutoff: now - graceMs, aheadAfter: now + graceMs } : NO_GRACE;
}

/** A released blob stays while its grace period runs; one released before `at` existed has none left. */
export function pastGrace(blob: BlobRecord, grace: Grace): boolean {
  return blob.r === 0 && (blob.z === undefined || blob.z <= grace.cutoff || blob.z > grace.aheadAfter);
}

/**
 * The blob entries one scan of B saw, kept flat (a hash and four numbers, ~65 bytes an entry, no
 * object per entry) while there are at most `max` of them: then the candidates' entries need no
 * second scan (chunksOf). Past `max` it gives up and frees what it held (`full`).
 */
export class SeenEntries {
  private hashes: Buffer;
  private packs: Float64Array; // not Uint32Array: INLINE_PACK is -1
  private offsets: Float64Array;
  private lengths: Float64Array;
  private expired: Uint8Array;
  private refs: Float64Array;
  private released: Float64Array; // z of each entry; NaN: none
  count = 0;
  full = false;

  constructor(private readonly max: number) {
    const initial = Math.min(max, 1024);
    this.hashes = Buffer.allocUnsafe(initial * HASH_BYTES);
    this.packs = new Float64Array(initial);
    this.offsets = new Float64Array(initial);
    this.lengths = new Float64Array(initial);
    this.expired = new Uint8Array(initial);
    this.refs = new Float64Array(initial);
    this.released = new Float64Array(initial);
  }

  /**
   * The entry of B key `key`: its hash (after the space byte) copied a byte at a time, as
   * Buffer#copy from an offset makes a view of the source first (node's _copyActual).
   */
  add(key: Buffer, blob: BlobRecord, expired: boolean): void {
    if (this.full) return;
    if (this.count === this.packs.length) {
      if (this.count >= this.max) return this.giveUp();
      this.grow(Math.min(this.max, this.count * 2));
    }
    const i = this.count++;
    const hashes = this.hashes;
    for (let at = i * HASH_BYTES, from = 1; from <= HASH_BYTES; at++, from++) hashes[at] = key[from];
    this.packs[i] = blob.p;
    this.offsets[i] = blob.o;
    this.lengths[i] = blob.l;
    this.expired[i] = expired ? 1 : 0;
    this.refs[i] = blob.r;
    this.released[i] = blob.z ?? NaN;
  }

  /**
   * The entries in `packs`, in B order, in chunks of at most `chunkEntries` (kept entries sorted by pack and
   * offset); `keptOnly`: only those to copy (the caller forgets the expired ones apart: expiredOf).
   */
  *chunksOf(packs: ReadonlySet<number>, chunkEntries: number, keptOnly = false): Generator<CandidateChunk> {
    let chunk: CandidateChunk = { kept: [], expired: [] };
    for (let i = 0; i < this.count; i++) {
      if (!packs.has(this.packs[i]) || (keptOnly && this.expired[i])) continue;
      (this.expired[i] ? chunk.expired : chunk.kept).push(this.planned(i));
      if (chunk.kept.length + chunk.expired.length >= chunkEntries) {
        yield sortChunk(chunk);
        chunk = { kept: [], expired: [] };
      }
    }
    if (chunk.kept.length + chunk.expired.length > 0) yield sortChunk(chunk);
  }

  /**
   * The entries in `packs` released past their grace period (what a rewrite forgets), in B order
   * (see sortChunk). Their hashes (here and in chunksOf) are views into this scan's buffer, not
   * copies: they are only read, and the buffer is never written again once the scan ended. Each
   * carries its `r` and `z` as read.
   */
  expiredOf(packs: ReadonlySet<number>): PlannedBlob[] {
    const out: PlannedBlob[] = [];
    for (let i = 0; i < this.count; i++) if (this.expired[i] && packs.has(this.packs[i])) out.push(this.planned(i));
    return out;
  }

  private planned(i: number): PlannedBlob {
    const released = Number.isNaN(this.released[i]) ? null : this.released[i];
    return { hash: this.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES), pack: this.packs[i], offset: this.offsets[i], length: this.lengths[i], refs: this.refs[i], released };
  }

  private grow(size: number): void {
    const hashes = Buffer.allocUnsafe(size * HASH_BYTES);
    this.hashes.copy(hashes, 0, 0, this.count * HASH_BYTES);
    this.hashes = hashes;
    const copy = <A extends Float64Array | Uint8Array>(from: A, to: A): A => { to.set(from.subarray(0, this.count)); return to; };
    this.packs = copy(this.packs, new Float64Array(size));
    this.offsets = copy(this.offsets, new Float64Array(size));
    this.lengths = copy(this.lengths, new Float64Array(size));
    this.expired = copy(this.expired, new Uint8Array(size));
    this.refs = copy(this.refs, new Float64Array(size));
    this.released = copy(this.released, new Float64Array(size));
  }

  private giveUp(): void {
    this.full = true;
    this.count = 0;
    this.hashes = Buffer.alloc(0);
    this.packs = new Float64Array(0);
    this.offsets = this.lengths = this.refs = this.released = new Float64Array(0);
    this.expired = new Uint8Array(0);
  }
}

const byPackAndOffset = (a: PlannedBlob, b: PlannedBlob) => a.pack - b.pack || a.offset - b.offset;

/**
 * The kept entries in pack and offset order (the copy reads neighbours together); the expired ones
 * stay in B order, the order of their keys: the forget's commit reads each one's entry again
 * (IndexView.prefetch), and keys already in order go to LevelDB as they are (getManyInKeyOrder),
 * where 16k sorted by offset were put back in key order first (and sorted by offset before that).
 */
function sortChunk(chunk: CandidateChunk): CandidateChunk {
  return { kept: chunk.kept.sort(byPackAndOffset), expired: chunk.expired };
}

interface BlobScan {
  byPack: Map<number, { keptBytes: number; liveBytes: number; expiredBlobs: number }>;
  references: number;
  digest: HashDigest;
  /** Blob entries whose pack is not in packs/: how many, and the first (the message names one). */
  strays: number;
  firstStray?: { hash: string; pack: number };
  /** Every entry, while there are at most limits.compactPlanEntriesMax. */
  seen: SeenEntries;
}

async function scanBlobs(db: IndexDb, packs: Set<number>, grace: Grace): Promise<BlobScan> {
  const scan: BlobScan = { byPack: new Map(), references: 0, digest: new HashDigest(), strays: 0, seen: new SeenEntries(limits.compactPlanEntriesMax) };
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of db.entryBatches<BlobRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [key, blob] of batch) {
      scan.references += blob.r;
      scan.digest.add(key, blob.r, 1);
      if (!packs.has(blob.p) && blob.p !== INLINE_PACK && scan.strays++ === 0) scan.firstStray = { hash: key.subarray(1).toString('hex'), pack: blob.p };
      let tally = scan.byPack.get(blob.p);
      if (!tally) scan.byPack.set(blob.p, (tally = { keptBytes: 0, liveBytes: 0, expiredBlobs: 0 }));
      if (blob.r > 0) tally.liveBytes += recordBytes(blob.l);
      const expired = pastGrace(blob, grace);
      if (!expired) tally.keptBytes += recordBytes(blob.l);
      else tally.expiredBlobs++;
      scan.seen.add(key, blob, expired);
    }
  }
  return scan;
}

async function scanMessages(db: IndexDb): Promise<{ messages: number; digest: HashDigest }> {
  const out = { messages: 0, digest: new HashDigest() };
  const range = { gte: keys.space(SPACE.message), lt: prefixEnd(keys.space(SPACE.message)) };
  for await (const batch of db.entryBatches<MessageRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [, record] of batch) {
      out.messages++;
      out.digest.add(record.h, 1);
    }
  }
  return out;
}

/** Why the index does not add up, or undefined when it does. */
function disagreement(blobs: BlobScan, messages: { messages: number; digest: HashDigest }): string | undefined {
  if (blobs.strays > 0) {
    const first = blobs.firstStray!;
    return `${blobs.strays} blob entries point into packs that do not exist (e.g. ${first.hash} in pack ${first.pack})`;
  }
  if (blobs.references !== messages.messages) return `the blob refcounts add up to ${blobs.references} but there are ${messages.messages} messages`;
  if (!blobs.digest.equals(messages.digest)) return 'the blob refcounts disagree with the messages that refer to them';
  return undefined;
}

/**
 * The sanity gate and the tallies. Refuses a degraded store and an index whose refcounts do not
 * add up (a message whose blob compaction would think dead). The scans run beside writers; a
 * disagreement is checked again holding the Writer (`exclusive`) before it refuses.
 */
export async function gateAndTally(db: () => IndexDb, backend: BlobBackend, health: Health, grace: Grace, exclusive: <T>(fn: () => Promise<T>) => Promise<T>): Promise<{ scan: BlobScan; packs: number[] }> {
  if (health.degraded) {
    throw new MailstoreError('REFUSED', `the store opened degraded (${health.findings.slice(0, 2).join('; ')}); compaction rewrites packs only in a healthy store: run 'mailstore scrub' and repair first`);
  }
  const once = async () => {
    const packs = await backend.listPacks();
    // both scans at once: LevelDB reads one's next batch on its thread pool while this thread decodes the other's
    const [scan, messages] = await Promise.all([scanBlobs(db(), new Set(packs), grace), scanMessages(db())]);
    return { scan, packs, why: disagreement(scan, messages) };
  };
  let result = await once();
  if (result.why) result = await exclusive(once);
  if (result.why) {
    throw new MailstoreError('REFUSED', `the index does not add up (${result.why}); compaction would drop bytes a message may need, so nothing was changed: run 'mailstore scrub' (and 'scrub --repair')`);
  }
  return { scan: result.scan, packs: result.packs };
}

/**
 * Picks the packs whose dead share reaches limits.compactDeadRatio (a pack no entry refers to at
 * all, such as the partial output of a crashed compaction, is 100 % dead). The pack appends go to
 * is left out: compact.ts seals it first when it would be picked.
 */
/**
 * `roomBytes`: what the copy may write (the free space above the reserve's floor: the old packs go
 * only after it); a pack whose live records would not fit beside the candidates before it is left
 * (`noRoom`), so a nearly full disk still reclaims what fits — every wholly dead pack at least.
 */
export async function planCompaction(backend: BlobBackend, scan: BlobScan, packs: number[], grace: Grace, deadRatio: number, includeAppendPack: boolean, roomBytes = Infinity, smallPackBytes = 0): Promise<CompactionPlan> {
  const inlineExpired = scan.byPack.get(INLINE_PACK)?.expiredBlobs ?? 0;
  const plan: CompactionPlan = { tallies: [], candidates: [], grace, bytesBefore: 0, bytesAfterEstimate: 0, bytesReclaimable: 0, bytesToCopy: 0, blobsExpired: 0, inlineExpired };
  const small: { pack: number; bytes: number; keptBytes: number }[] = [];
  for (const pack of packs) {
    const bytes = await backend.packBytes(pack);
    const tally = scan.byPack.get(pack) ?? { keptBytes: 0, liveBytes: 0, expiredBlobs: 0 };
    plan.tallies.push({ pack, bytes, ...tally });
    plan.bytesBefore += bytes;
    const dead = Math.max(0, bytes - PACK_HEADER_BYTES - tally.keptBytes);
    const eligible = includeAppendPack || pack !== backend.appendPack;
    const qualifies = eligible && dead > 0 && dead >= deadRatio * bytes;
    const why = (qualifies || bytes < smallPackBytes) && !backend.isRemote(pack) ? await backend.foreignPack(pack) : undefined;
    if (why !== undefined) {
      const referenced = scan.byPack.has(pack);
      (plan.foreign ??= []).push({ pack, why, referenced });
      if (referenced) plan.bytesAfterEstimate += bytes; // else it goes to quarantine/
    } else if (qualifies && tally.keptBytes > 0 && plan.bytesToCopy + tally.keptBytes + PACK_HEADER_BYTES > roomBytes) {
      (plan.noRoom ??= []).push(pack);
      plan.bytesAfterEstimate += bytes;
    } else if (qualifies) {
      plan.candidates.push(pack);
      plan.bytesReclaimable += dead;
      plan.bytesAfterEstimate += tally.keptBytes;
      plan.bytesToCopy += tally.keptBytes;
      plan.blobsExpired += tally.expiredBlobs;
    } else {
      plan.bytesAfterEstimate += bytes;
      if (bytes < smallPackBytes && pack !== backend.appendPack && !backend.isRemote(pack)) small.push({ pack, bytes, keptBytes: tally.keptBytes });
    }
  }
  if (plan.candidates.length > 0) mergeSmallPacks(plan, small, scan, roomBytes);
  if (plan.candidates.some((p) => (scan.byPack.get(p)?.keptBytes ?? 0) > 0)) plan.bytesAfterEstimate += PACK_HEADER_BYTES;
  return plan;
}

/**
 * A compaction that runs anyway takes in the small sealed local packs too (limits.compactSmallPackShare):
 * each one's survivors are one such pack, which no later round would pick (it stays live), so they
 * piled up one a compaction. Merged, they are one pack with the round's own output.
 */
function mergeSmallPacks(plan: CompactionPlan, small: { pack: number; bytes: number; keptBytes: number }[], scan: BlobScan, roomBytes: number): void {
  for (const { pack, bytes, keptBytes } of small) {
    if (plan.bytesToCopy + keptBytes + PACK_HEADER_BYTES > roomBytes) continue; // the round's own candidates first
    plan.candidates.push(pack);
    plan.bytesReclaimable += Math.max(0, bytes - PACK_HEADER_BYTES - keptBytes);
    plan.bytesAfterEstimate -= bytes - keptBytes;
    plan.bytesToCopy += keptBytes;
    plan.blobsExpired += scan.byPack.get(pack)?.expiredBlobs ?? 0;
  }
  plan.candidates.sort((a, b) => a - b);
}

/** A bounded run of the candidates' blob entries: those to copy (in pack and offset order) and those to forget (in B order). */
export interface CandidateChunk {
  kept: PlannedBlob[];
  expired: PlannedBlob[];
}

/**
 * The blob entries of the candidate packs, in runs of at most `chunkEntries` (B is keyed by hash,
 * so a pack's entries are spread over the whole space: one scan, handed over a run at a time, so
 * memory stays bounded however many messages the packs held). The scan reads one LevelDB
 * iterator, a point-in-time view: what commits meanwhile is caught by the conditional ops.
 */
export async function* candidateChunks(db: IndexDb, candidates: ReadonlySet<number>, grace: Grace, chunkEntries: number): AsyncGenerator<CandidateChunk> {
  let chunk: CandidateChunk = { kept: [], expired: [] };
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of db.entryBatches<BlobRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [key, blob] of batch) {
      if (!candidates.has(blob.p)) continue;
      const planned = { hash: Buffer.from(key.subarray(1)), pack: blob.p, offset: blob.o, length: blob.l };
      (pastGrace(blob, grace) ? chunk.expired : chunk.kept).push(planned);
      if (chunk.kept.length + chunk.expired.length >= chunkEntries) {
        yield sortChunk(chunk);
        chunk = { kept: [], expired: [] };
      }
    }
  }
  if (chunk.kept.length + chunk.expired.length > 0) yield sortChunk(chunk);
}

/** Packs among `packs` that some blob entry still points into (then they must not be deleted). */
export async function packsInUse(db: IndexDb, packs: Set<number>): Promise<Set<number>> {
  const used = new Set<number>();
  if (packs.size === 0) return used;
  const range = { gte: keys.space(SPACE.blob), lt: prefixEnd(keys.space(SPACE.blob)) };
  for await (const batch of db.entryBatches<BlobRecord>(range, limits.scrubIndexReadEntries)) {
    for (const [, blob] of batch) if (packs.has(blob.p)) used.add(blob.p);
  }
  return used;
}
