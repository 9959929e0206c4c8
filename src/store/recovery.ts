// Open-time recovery: decide what the journal's tail is, replay what the index has not seen, and
// rebuild the index from the journal when it is missing or damaged. Nothing here deletes mail:
// bytes cut from a journal tail are copied to quarantine/ first.
import { dirname, join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { IndexDb, IndexView, WrittenKeys, indexWriteError } from '../index/index-db.js';
import { INDEX_FORMAT, decodeCbor, decodeValue, encodeCbor, enableNativeCborStrings } from '../index/codec.js';
import { upgradeIndexFormat } from './index-upgrade.js';
import type { Journal, JournalDamage } from '../journal/journal.js';
import type { TailRecords } from '../journal/tail-scan.js';
import { limits } from '../limits.js';
import { fileTimeStamp, unusedPath, writeFileDurable } from '../fs/durable.js';
import { JOURNAL_INCOMPLETE_ADVICE, applyOpsNow, applyStateOp, forgetModseqOffset, meta } from './apply.js';
import { INLINE_PACK, type PackStore } from '../blob/pack-store.js';
import { checkpointBegin, withoutHint, type BlobRecord, type JournalPayload, type MailboxInfo, type MessageRecord, type Op } from './records.js';
import { forEachRelocateEntry } from './blob-runs.js';
import { parseSegmentFileName } from '../journal/journal-format.js';
import { LAYOUT } from './identity.js';
import { keys } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { listSnapshots, readSnapshotFile, type SnapshotInfo } from './snapshot-file.js';
import { newestSnapshotSeq, newestUsableSnapshot } from './snapshots.js';


export interface Health {
  /** True when something was lost or could not be applied; `findings` says what. */
  degraded: boolean;
  findings: string[];
  journalDamage: JournalDamage[];
  /** The index was rebuilt from the journal during this open, and why. */
  rebuilt?: string;
  /** What a rebuild during this open replayed: a snapshot and the journal after it, or the whole journal. */
  rebuiltFrom?: string;
  /** The index was converted from an older value format during this open (nothing lost), and how. */
  indexUpgraded?: string;
  /** STORE was raised to this mailstore's format version during this open (older code refuses it from now on). */
  storeUpgraded?: string;
  /** Bytes of a torn, never-acknowledged journal tail that open cut (after copying them to quarantine). */
  tornTailBytes?: number;
}

export function newHealth(): Health {
  return { degraded: false, findings: [], journalDamage: [] };
}

export interface ReplayResult {
  lastSeq: number;
  records: number;
  /** The replay met damage, a gap or a record it could not apply: what it built lacks their changes. */
  incomplete?: string[];
}

/** Applies every journal record after `afterSeq` to the index, in batches, recording appliedSeq with each. */
export async function replay(journal: Journal, db: IndexDb, afterSeq: number, health: Health, onRecord?: (seq: number) => void, untilSeq = Infinity): Promise<ReplayResult> {
  return replayInto(journal, new IndexView(db), afterSeq, health, onRecord, untilSeq);
}

async function replayInto(journal: Journal, view: IndexView, afterSeq: number, health: Health, onRecord?: (seq: number) => void, untilSeq = Infinity): Promise<ReplayResult> {
  let lastSeq = afterSeq;
  if (journal.nothingAfter(afterSeq) || untilSeq <= afterSeq) {
    // findTail checked the newest segment whole and `afterSeq` is its last record: a rebuild from a
    // snapshot at the journal's end skips a second read of that segment (18 ms of a 20k-message
    // store's 0.23 s rebuild)
    view.put(meta.appliedSeq, lastSeq);
    await view.flush();
    return { lastSeq, records: 0 };
  }
  let records = 0;
  const incomplete: string[] = [];
  const problem = (message: string) => {
    health.degraded = true;
    if (health.findings.length < limits.healthFindingsMax) health.findings.push(message);
    if (incomplete.length < 3) incomplete.push(message);
  };
  const onDamage = (damage: JournalDamage) => {
    if (damage.where === 'tail') return; // decided by resolveTail before replay
    health.degraded = true;
    health.journalDamage.push(damage);
    problem(`journal ${damage.segment} has ${damage.length} damaged bytes at offset ${damage.offset} (${damage.where}); the records after it were kept`);
  };
  for await (const record of journal.read(afterSeq, onDamage)) {
    if (record.seq > untilSeq) break;
    if (record.seq <= lastSeq) continue; // a duplicate seq after damage: the first one wins
    let payload: JournalPayload | undefined;
    let undecodable: Error | undefined;
    try {
      payload = decodeCbor<JournalPayload>(record.payload);
    } catch (error) {
      undecodable = error as Error;
    }
    // A journal that starts with a checkpoint holds the whole state from there (checkJournalStart
    // reports an index older than it).
    if (records === 0 && checkpointBegin(payload)) lastSeq = Math.max(lastSeq, record.seq - 1);
    if (record.seq > lastSeq + 1) {
      problem(`journal records ${lastSeq + 1}..${record.seq - 1} are missing`);
    }
    if (!payload) {
      problem(`journal record ${record.seq} does not decode: ${undecodable?.message}`);
      lastSeq = record.seq;
      continue;
    }
    applyOpsNow(view, record.seq, payload.ops, problem);
    lastSeq = record.seq;
    records++;
    onRecord?.(record.seq);
    if (view.size >= limits.replayBatchKeys) {
      view.put(meta.appliedSeq, lastSeq);
      await view.flushBehind();
    }
  }
  view.put(meta.appliedSeq, lastSeq);
  await view.flush();
  if (incomplete.length > 0) await (await import('./vanished-floor.js')).raiseFloorsPastLoss(view, lastSeq);
  return { lastSeq, records, ...(incomplete.length > 0 ? { incomplete } : {}) };
}

/**
 * The newest segment ends in bytes that are not a valid record. If the index has applied records
 * beyond the last valid one (its appliedSeq is our high-water mark), those bytes were acknowledged
 * records that got damaged: keep them, quarantine a copy, write on in a new segment. Otherwise they
 * are a torn write that was never acknowledged: copy them to quarantine (unless all zeros) and cut.
 */
export async function resolveTail(fs: FileSystem, root: string, journal: Journal, highWater: number, health: Health, covered?: (firstSeq: number) => Promise<boolean>): Promise<number> {
  let found = await journal.findTail();
  // A newest segment with neither a valid header nor a valid record, past the high-water mark, is a
  // torn creation (header and first records are one write, synced before any acknowledgement).
  while (found.empty && highWater < found.empty.firstSeq) {
    await journal.retireNewestSegment(await unusedPath(fs, join(root, LAYOUT.quarantine, `journal-segment-${found.empty.segment}-${Date.now()}`)));
    health.tornTailBytes = (health.tornTailBytes ?? 0) + found.empty.length;
    found = await journal.findTail();
  }
  const { lastSeq, tail } = found;
  if (tail) {
    const allZero = tail.bytes.every((b) => b === 0);
    if (!allZero) await quarantineTail(fs, root, `journal-tail-${tail.segment}-${tail.offset}-`, Buffer.from(tail.bytes));
    if (highWater > lastSeq) {
      health.degraded = true;
      health.journalDamage.push({ segment: tail.segment, offset: tail.offset, length: tail.length, where: 'tail' });
      health.findings.push(`journal ${tail.segment}: acknowledged records ${lastSeq + 1}..${highWater} are damaged at offset ${tail.offset}; the index still holds them; a copy is in quarantine/`);
    } else {
      await journal.cutAt(tail.offset, lastSeq);
      health.tornTailBytes = tail.length;
    }
  } else if (highWater > lastSeq) {
    health.degraded = true;
    health.findings.push(`the index has applied journal records up to ${highWater} but the journal ends at ${lastSeq}: journal records ${lastSeq + 1}..${highWater} are missing; the index still holds them: run 'mailstore reconstruct' to write a new journal from it`);
  }
  if (highWater > lastSeq) journal.keepTailAndStartNewSegment(highWater + 1);
  await checkJournalStart(journal, highWater, health, covered);
  return Math.max(lastSeq, highWater);
}

/**
 * Copies a journal tail's bytes to quarantine/ as `prefix`TIME, unless a copy of the same bytes is
 * there already: damage the index proves acknowledged is kept in place, so every open finds it
 * again until a write starts a new segment (each CLI command, each restart of a daemon), and a copy
 * per open would fill quarantine/, which is never emptied automatically.
 */
async function quarantineTail(fs: FileSystem, root: string, prefix: string, bytes: Buffer): Promise<void> {
  const dir = join(root, LAYOUT.quarantine);
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix) && (await fs.readFile(join(dir, name)).catch(() => undefined))?.equals(bytes)) return;
  }
  const target = await unusedPath(fs, join(dir, `${prefix}${Date.now()}`));
  await writeFileDurable(fs, target, bytes).catch((e) => { throw fromSystemError(e, 'quarantining journal tail', target); });
}

/**
 * A second check of the journal's end, independent of the index: a snapshot is written only from
 * applied (so acknowledged) state, so its seq proves records up to it existed. A journal and index
 * both ending below it (an older copy of both put back, or their tails lost together) are damage,
 * never a clean end: reported, the store degraded. `top`: what resolveTail returned.
 */
export async function checkSnapshotHighWater(fs: FileSystem, root: string, storeId: Buffer, top: number, health: Health): Promise<void> {
  const proven = await newestSnapshotSeq(fs, root, storeId);
  if (proven <= top) return;
  health.degraded = true;
  health.findings.push(`the snapshot at seq ${proven} proves records up to ${proven} were acknowledged, but the journal and the index end at ${top}: records ${top + 1}..${proven} are missing from both; the snapshot still holds their state: run 'mailstore reconstruct'`);
}

/**
 * The journal must start at seq 1, with a checkpoint, or where a snapshot takes over (`covered`:
 * its segments before were retired): otherwise its first segments are gone (deleted, or lost with
 * a partition), and a rebuild from it would lose what they held. Cheap: only the oldest segment is
 * read, and only when its name says it does not start at 1.
 */
async function checkJournalStart(journal: Journal, highWater: number, health: Health, covered?: (firstSeq: number) => Promise<boolean>): Promise<void> {
  const names = journal.segmentNames;
  if (names.length === 0 || parseSegmentFileName(names[0]) === 1) return;
  const first = await journal.firstRecord();
  if (!first || first.seq === 1) return;
  const begin = checkpointBegin(decodeSafely(first.payload));
  if (!begin && covered && (await covered(first.seq))) return;
  if (!begin) {
    health.degraded = true;
    health.findings.push(`journal records 1..${first.seq - 1} are missing (segments deleted or lost); ` + (highWater > 0
      ? `the index still holds their changes: run 'mailstore reconstruct' to write a new journal from it`
      : `no index or snapshot holds their changes (the index was rebuilt from what is left)`)); // index lost too: nothing to write a journal from
  } else if (highWater > 0 && highWater < begin.appliedSeq) {
    health.degraded = true;
    health.findings.push(`the index (at seq ${highWater}) is older than the journal's checkpoint (seq ${begin.appliedSeq}); run 'mailstore reconstruct' to rebuild it from the journal`);
  }
}

/**
 * The newest batch of the journal that the index has not applied (seq above the high-water mark)
 * may be one that was never acknowledged: the writer syncs packs and journal at the same time, so a
 * crash can keep the records and lose the blobs, and a torn write can keep only some records of a
 * batch. Records after the last batch-end marker are an incomplete batch; a complete batch whose new
 * blobs do not all read back with their hash was not durable when the crash came. Either is copied
 * to quarantine/ and cut, never partly applied. A batch the index has applied is never touched.
 * `packsLost` (the local packs were lost with the disk): bodies missing from a complete batch are
 * no sign of a crash, so the batch is kept and its messages are reported by scrub, never cut.
 */
export async function resolveNewestBatch(
  fs: FileSystem, root: string, journal: Journal, packs: PackStore, highWater: number, health: Health, packsLost = false, acknowledgedIndex?: IndexDb,
): Promise<void> {
  const tail = journal.takeTailRecords();
  // Only the newest batch and what follows it are read and decoded, from the end backwards: the
  // segment can hold a great many records, and open must not decode them all (nor hold them).
  const bodies = new Map<number, JournalPayload | undefined>();
  const body = async (i: number) => {
    if (!bodies.has(i)) bodies.set(i, decodeSafely(await tail.payload(i)));
    return bodies.get(i);
  };
  const lastEnd = await lastBatchEnd(tail.length, body);
  let cutFrom = tail.indexAbove(highWater, lastEnd + 1);
  if (cutFrom === -1 && lastEnd >= 0 && tail.seq(lastEnd) > highWater) {
    const { first, batch } = await batchEndingAt(lastEnd, body);
    const lost = packsLost ? [] : await packsOfLostCopies(batch, packs);
    const firstSeq = tail.seq(tail.indexAbove(highWater, first));
    if (lost.length > 0 && (await everyPackLostAfterUse(fs, packs, lost, acknowledgedIndex, batch, journal.firstSeq))) {
      health.findings.push(`journal records ${firstSeq}..${tail.seq(lastEnd)} were kept although pack ${lost.join(', ')}, which holds their message bodies, is missing: ` +
        `acknowledged messages before them are in that pack too, so it was lost, not cut short by a crash; put it back, or run 'mailstore scrub'`);
    } else if (lost.length > 0) {
      cutFrom = tail.indexAbove(highWater, first);
      health.findings.push(`journal records ${tail.seq(cutFrom)}..${tail.seq(lastEnd)}: a batch whose message bodies were not durable at the crash (never acknowledged) was cut; a copy is in quarantine/`);
    }
  }
  if (cutFrom === -1) return;
  const last = tail.length - 1;
  const from = { seq: tail.seq(cutFrom), offset: tail.offset(cutFrom) };
  const to = { seq: tail.seq(last), end: tail.end(last) };
  const segmentPath = journal.tailPath!;
  const target = await unusedPath(fs, join(root, LAYOUT.quarantine, `journal-batch-${from.seq}-${to.seq}-${Date.now()}`));
  const handle = await fs.open(segmentPath, 'read');
  try {
    const bytes = Buffer.alloc(to.end - from.offset);
    await handle.read(bytes, 0, bytes.length, from.offset);
    await writeFileDurable(fs, target, bytes);
  } finally {
    await handle.close();
  }
  await journal.cutAt(from.offset, cutFrom > 0 ? tail.seq(cutFrom - 1) : from.seq - 1);
  health.tornTailBytes = (health.tornTailBytes ?? 0) + (to.end - from.offset);
  if (highWater > journal.lastSeq) journal.keepTailAndStartNewSegment(highWater + 1);
}

/**
 * For a read-only open (which may not cut or quarantine anything): the seq of the last record the
 * index may apply from the journal's tail above `highWater` — the end of the newest complete batch
 * whose new blobs all read back with their hash, as resolveNewestBatch would keep it. Records after
 * the last batch end (a batch being written when a file-system snapshot or image was taken) and a
 * newest batch whose bodies are not in the packs (never acknowledged) lie past it (open.ts refuses
 * a read-only open then: only a read-write one may cut them).
 * `tail` is the journal's tail records (Journal.takeTailRecords after findTail).
 */
export async function durableTailEnd(tail: TailRecords, packs: PackStore, highWater: number): Promise<number> {
  const body = async (i: number) => decodeSafely(await tail.payload(i));
  const lastEnd = await lastBatchEnd(tail.length, body);
  if (lastEnd < 0 || tail.seq(lastEnd) <= highWater) return highWater;
  const { first, batch } = await batchEndingAt(lastEnd, body);
  if ((await packsOfLostCopies(batch, packs)).length === 0) return tail.seq(lastEnd);
  return Math.max(highWater, first > 0 ? tail.seq(first - 1) : tail.seq(first) - 1);
}

/** The index of the newest batch-end record among `count` tail records (-1: none): the newest complete batch ends there (resolveNewestBatch and durableTailEnd apply one rule). */
async function lastBatchEnd(count: number, body: TailBody): Promise<number> {
  let lastEnd = count - 1;
  while (lastEnd >= 0 && !(await body(lastEnd))?.end) lastEnd--;
  return lastEnd;
}

/** The batch whose end record is at `lastEnd`: its first record's index (just after the previous batch end) and its payloads. */
async function batchEndingAt(lastEnd: number, body: TailBody): Promise<{ first: number; batch: (JournalPayload | undefined)[] }> {
  let first = lastEnd;
  while (first > 0 && !(await body(first - 1))?.end) first--;
  const batch: (JournalPayload | undefined)[] = [];
  for (let i = first; i <= lastEnd; i++) batch.push(await body(i));
  return { first, batch };
}

/** The decoded payload of tail record `i` (undefined: it does not decode). */
type TailBody = (i: number) => Promise<JournalPayload | undefined>;

function decodeSafely(payload: Buffer): JournalPayload | undefined {
  try {
    return decodeCbor<JournalPayload>(payload);
  } catch {
    return undefined;
  }
}

/**
 * A crash loses at most a pack the newest batch created (its directory entry not yet synced). A
 * pack was durable before that crash, and its file gone is a loss (deleted, restored without it),
 * when the acknowledged state (the index, or the snapshot a rebuild starts from) already has blobs
 * in it, or when the batch moved into it inline bodies whose journal records are retired since
 * (retirement deletes them only once the move is durable). Cutting the batch then would drop
 * acknowledged records that are right again once the pack is put back.
 */
async function everyPackLostAfterUse(
  fs: FileSystem, packs: PackStore, lost: number[], acknowledged: IndexDb | undefined, batch: (JournalPayload | undefined)[], journalFirstSeq: number,
): Promise<boolean> {
  if (!acknowledged) return false;
  for (const pack of lost) if (await fs.statIfExists(packs.path(pack))) return false; // torn, not gone: a crash's
  const used = new Set<number>();
  const space = keys.space(SPACE.blob);
  for await (const [key, raw] of acknowledged.rawIterator({ gte: space, lt: prefixEnd(space) })) {
    try {
      used.add(decodeValue<BlobRecord>(raw, Buffer.from(key)).p);
    } catch { /* a damaged value: scrub reports it */ }
  }
  for (const body of batch) {
    for (const copy of freshCopies(body?.ops ?? [])) {
      if (used.has(copy.pack) || !lost.includes(copy.pack)) continue;
      const was = await acknowledged.get<BlobRecord>(keys.blob(Buffer.from(copy.hash))).catch(() => undefined);
      if (was?.p === INLINE_PACK && was.o < journalFirstSeq) used.add(copy.pack);
    }
  }
  return lost.every((pack) => used.has(pack));
}

/** The packs of the blobs a batch wrote (fresh adds, relocations) that do not read back with their hash. */
async function packsOfLostCopies(bodies: (JournalPayload | undefined)[], packs: PackStore): Promise<number[]> {
  const lost = new Set<number>();
  const checked = new Set<string>();
  for (const body of bodies) {
    for (const fresh of freshCopies(body?.ops ?? [])) {
      if (fresh.pack === INLINE_PACK) continue; // an inline body is durable with its record
      const key = `${fresh.pack}:${fresh.offset}`;
      if (checked.has(key)) continue;
      checked.add(key);
      try {
        await packs.read({ pack: fresh.pack, offset: fresh.offset, length: fresh.size }, Buffer.from(fresh.hash));
      } catch (error) {
        if (!(error instanceof MailstoreError && (error.code === 'CORRUPT' || error.code === 'NOT_FOUND'))) throw error;
        lost.add(fresh.pack);
      }
    }
  }
  return [...lost];
}

/** The blob copies a batch's ops wrote: fresh adds and relocations (a relocateRun's every entry). */
function* freshCopies(ops: Op[]): Generator<{ hash: Uint8Array; pack: number; offset: number; size: number }> {
  for (const op of ops) {
    if (op.op === 'message.add' && op.fresh) yield { hash: op.hash, pack: op.pack, offset: op.offset, size: op.size };
    else if (op.op === 'blob.relocate') yield { hash: op.hash, pack: op.pack, offset: op.offset, size: op.size };
    else if (op.op === 'blob.relocateRun') {
      const copies: { hash: Uint8Array; pack: number; offset: number; size: number }[] = [];
      forEachRelocateEntry(op.entries, ({ hash, to, size }) => copies.push({ hash: Buffer.from(hash), pack: op.to, offset: to, size }));
      yield* copies;
    }
  }
}

/** Opens the index if it is healthy and belongs to this store; undefined when it must be rebuilt. */
export async function openExistingIndex(fs: FileSystem, path: string, storeId: Buffer, health: Health): Promise<{ db: IndexDb; appliedSeq: number } | undefined> {
  let db: IndexDb;
  try {
    db = await IndexDb.open(path, false);
  } catch (error) {
    // Only damage is rebuilt: a full disk, a refused permission or an I/O error is reported as itself
    // (NO_SPACE, ACCESS, IO) and nothing is moved to quarantine for it.
    if (error instanceof MailstoreError && error.code !== 'CORRUPT') throw error;
    health.rebuilt = `index could not be opened: ${(error as Error).message}`;
    return undefined;
  }
  try {
    await upgradeIndexFormat(fs, db, health); // an index of format 1 is converted first: damage found doing so is CORRUPT
    const id = await db.get<Buffer>(meta.storeId);
    const appliedSeq = await db.get<number>(meta.appliedSeq);
    if (!id || !Buffer.from(id).equals(storeId) || typeof appliedSeq !== 'number') {
      health.rebuilt = id ? 'index belongs to another store or lacks its watermark' : 'index has no store id (empty or reset)';
      await db.close();
      return undefined;
    }
    return { db, appliedSeq };
  } catch (error) {
    await db.close();
    if (error instanceof MailstoreError && error.code !== 'CORRUPT') throw error; // a read the OS refused is not damage
    health.rebuilt = `index is damaged: ${(error as Error).message}`;
    return undefined;
  }
}

/**
 * An index an earlier open rebuilt from a damaged or incomplete journal still lacks what the
 * missing records did, though its own replay now finds nothing wrong: degraded at every open, so
 * nothing (compaction above all, which would take the packs' unknown records for dead ones) acts
 * on its word, until the records are put back or the loss is accepted.
 */
export async function reportIncompleteImage(db: IndexDb, health: Health): Promise<void> {
  const why = await db.get<string>(meta.journalIncomplete);
  if (why === undefined) return;
  health.degraded = true;
  health.findings.push(`the index was rebuilt from a damaged or incomplete journal (${why}) and lacks what the missing records did: ${JOURNAL_INCOMPLETE_ADVICE}`);
}

/** A snapshot a rebuild starts from (verified by newestUsableSnapshot), and the damaged ones passed over. */
export interface RebuildStart {
  snapshot?: SnapshotInfo;
  damaged: { name: string; why: string }[];
  /**
   * The index being built aside with `snapshot` already loaded into it (chooseRebuildStart with
   * `load`: the snapshot verified while it loaded, one read instead of two); buildIndexAside goes
   * on from it. Whoever holds a start with one either builds from it or closes its db.
   */
  loaded?: AsideIndex;
}

/** A fresh index in `index.rebuild/`, written only by the rebuild (so its key filter knows every key). */
interface AsideIndex {
  db: IndexDb;
  /** The rebuild's key filter; none when no journal record follows the snapshot it loads. */
  written: WrittenKeys | undefined;
  /**
   * The loaded snapshot's memtable being written into tables (started once the snapshot verified),
   * while the open reads the journal's tail on the main thread: LevelDB's background thread did it
   * alone at the rebuild's end before (~30 ms of a 20k-message store's ~0.2 s, issue 16).
   */
  flushed?: Promise<void>;
}

/**
 * Where a rebuild starts: the newest snapshot that verifies and that the journal continues. Each
 * damaged one passed over is a finding that says what the rebuild fell back to; it does not mark
 * the store degraded (nothing is lost while a fallback covers it: replay reports a real gap).
 * `load`: each candidate is verified by loading it into a fresh aside index (damage found by the
 * end of the file: that index is discarded and the next candidate tried), which the start carries.
 */
export async function chooseRebuildStart(fs: FileSystem, root: string, journal: Journal, storeId: Buffer, health: Health, options: { load?: boolean } = {}): Promise<RebuildStart> {
  const start = options.load ? await loadNewestUsable(fs, root, journal, storeId) : await newestUsableSnapshot(fs, root, storeId, journal.firstSeq);
  const fallback = start.snapshot ? `the older snapshot ${start.snapshot.name} (seq ${start.snapshot.seq}) and the journal after it` : 'the whole retained journal';
  for (const d of start.damaged) health.findings.push(`${d.why}; rebuilt from ${fallback} instead ('mailstore scrub --repair' moves it to quarantine/)`);
  return start;
}

/** newestUsableSnapshot's choice, each candidate verified while it loads into a fresh aside index. */
async function loadNewestUsable(fs: FileSystem, root: string, journal: Journal, storeId: Buffer): Promise<RebuildStart> {
  const damaged: { name: string; why: string }[] = [];
  for (const entry of await listSnapshots(fs, root)) {
    if (entry.seq + 1 < journal.firstSeq) continue; // the journal after it was retired: it cannot be continued
    const aside = await openAside(fs, root, journal, entry.seq, (await fs.statIfExists(entry.path))?.size);
    try {
      const snapshot = await loadSnapshot(fs, aside, entry, storeId);
      aside.flushed = aside.db.flushMemtable();
      aside.flushed.catch(() => undefined); // awaited by buildIndexAside; an open that fails before closes the db, which waits for it
      return { snapshot, damaged, loaded: aside };
    } catch (error) {
      await aside.db.close();
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT' || error.path !== entry.path) throw error;
      damaged.push({ name: entry.name, why: error.message });
    }
  }
  return { damaged };
}

/**
 * An empty index in `index.rebuild/` (a leftover of an interrupted rebuild is derived data this
 * code made: removed), its memtable large for the bulk load.
 */
async function openAside(fs: FileSystem, root: string, journal: Journal, startSeq: number, snapshotBytes?: number): Promise<AsideIndex> {
  const fresh = join(root, `${LAYOUT.index}.rebuild`);
  if (await fs.statIfExists(fresh)) await fs.removeTree(fresh);
  // Snappy was ~10 % of a rebuild's instructions a message, most of it in the flush that ends the
  // rebuild (issue 16), to shrink tables of hashes and CBOR by little; the index's own compactions
  // compress what they rewrite.
  const db = await IndexDb.open(fresh, true, { writeBufferBytes: limits.rebuildWriteBufferBytes, compression: false });
  // Native CBOR strings pay off over many journal records (~0.4 us a message op) but cost ~12 ms
  // to load: not for the short tail after a snapshot.
  if (journal.lastSeq - startSeq >= limits.rebuildNativeCborRecordsMin) await enableNativeCborStrings();
  // The new index is empty and the rebuild its only writer: the filter spares a LevelDB lookup for
  // every key the rebuild never wrote. Only the journal's replay asks it: with no record after the
  // snapshot (one taken at the journal's end) it would only hash every key loaded (~10M
  // instructions at 20k messages), and a view without one reads LevelDB, which is never wrong.
  const tailRecords = journal.lastSeq - startSeq;
  return { db, written: tailRecords > 0 ? new WrittenKeys(keyFilterBytes(tailRecords, snapshotBytes)) : undefined };
}

/**
 * The rebuild's key filter for a snapshot of `snapshotBytes` and `tailRecords` journal records
 * after it: a bit per snapshot byte (an entry is at least ~30 bytes: 30 bits a key or more) and
 * limits.rebuildKeyFilterRecordBytes a record, at least 64 KiB; the whole limits.rebuildKeyFilterBytes
 * without a snapshot. Its pages are faulted in as keys land all over it: 8 MiB were ~2,000 page
 * faults in a 20k-message rebuild whose 60k keys need a few hundred KiB. Too small only costs time.
 */
function keyFilterBytes(tailRecords: number, snapshotBytes?: number): number {
  if (snapshotBytes === undefined) return limits.rebuildKeyFilterBytes;
  const wanted = snapshotBytes / 8 + Math.max(0, tailRecords) * limits.rebuildKeyFilterRecordBytes;
  return Math.min(limits.rebuildKeyFilterBytes, Math.max(64 * 1024, wanted));
}

/**
 * Builds a fresh index beside the live one (in `index.rebuild/`): from `start.snapshot` (already
 * loaded when the start carries its index) and the journal after its seq, or (no snapshot) from
 * the whole journal.
 */
export async function buildIndexAside(fs: FileSystem, root: string, journal: Journal, storeId: Buffer, health: Health, start: RebuildStart = { damaged: [] }): Promise<ReplayResult & { path: string; snapshot?: SnapshotInfo }> {
  const snapshot = start.snapshot;
  const aside = start.loaded ?? await openAside(fs, root, journal, snapshot?.seq ?? 0);
  const { db } = aside;
  try {
    if (snapshot && !start.loaded) await loadSnapshot(fs, aside, snapshot, storeId);
    await aside.flushed;
    // the store id goes through the view, so the filter knows it
    const view = new IndexView(db, aside.written);
    view.put(meta.storeId, storeId);
    view.put(meta.indexFormat, INDEX_FORMAT);
    if (snapshot) view.put(meta.appliedSeq, snapshot.seq);
    const replayed = await replayInto(journal, view, snapshot?.seq ?? 0, health);
    if (replayed.incomplete) { // not a snapshot newer than the journal: then this index holds more than it
      view.put(meta.journalIncomplete, replayed.incomplete.join('; '));
      await view.flush();
    }
    health.rebuiltFrom = snapshot
      ? `snapshot ${snapshot.name} (seq ${snapshot.seq}) and ${replayed.records} journal records after it`
      : `the whole journal (${replayed.records} records)`;
    await db.flushMemtable(); // the index is opened again where it is installed
    return { ...replayed, path: db.path, ...(snapshot ? { snapshot } : {}) };
  } catch (error) {
    throw indexWriteError(error, db.path);
  } finally {
    await db.close();
  }
}

/**
 * Puts a snapshot's state into a fresh aside index, straight into LevelDB batches: a format 2
 * snapshot's entries as they are (the index's own bytes, checksums included), a format 1
 * snapshot's checkpoint ops as a checkpoint replays them. Every key goes into the rebuild's
 * filter, so the journal replayed after it still finds them. The file is verified as it is read:
 * damage (CORRUPT, the snapshot's path) leaves a partly loaded index for the caller to discard.
 */
async function loadSnapshot(fs: FileSystem, aside: AsideIndex, snapshot: { path: string; name: string }, storeId: Buffer): Promise<SnapshotInfo> {
  const load = aside.db.bulkLoad(limits.snapshotLoadBatchKeys, aside.written);
  const info = await readSnapshotFile(fs, snapshot.path, snapshot.name, storeId, {
    op: (op) => applyStateOp(load, op),
    entry: (key, value) => load.putRaw(key, value),
    recordDone: () => load.maybeFlush(),
    keepsNoViews: true, // LevelDB's batch copies each key and value as it is put; ops are encoded afresh
  });
  await load.finish();
  forgetModseqOffset(aside.db); // the snapshot may carry an XFER-raised offset: read it from the index again
  return info;
}

/** Swaps a built index in for `index/`; the old one is moved to quarantine/, not deleted. */
export async function installIndex(fs: FileSystem, root: string, built: string): Promise<void> {
  const path = join(root, LAYOUT.index);
  await moveAside(fs, root, path, 'index-replaced');
  await fs.rename(built, path).catch((e) => { throw fromSystemError(e, 'installing rebuilt index', path); });
  await fs.syncDir(root);
}

export async function rebuildIndex(fs: FileSystem, root: string, journal: Journal, storeId: Buffer, health: Health, start?: RebuildStart): Promise<ReplayResult> {
  const built = await buildIndexAside(fs, root, journal, storeId, health, start);
  await installIndex(fs, root, built.path);
  return built;
}

/**
 * Key-by-key comparison of two indexes (raw value bytes compared: the encoding is deterministic).
 * `stretchBytes`: each is read in stretches, reopened between them (index/stretches.ts).
 */
export async function* compareIndexes(a: IndexDb, b: IndexDb, stretchBytes?: number): AsyncGenerator<{ key: Buffer; detail: string }> {
  const all = { gte: Buffer.alloc(0), lt: Buffer.from([0xff, 0xff]) };
  const ia = entries(a, all, stretchBytes)[Symbol.asyncIterator]();
  const ib = entries(b, all, stretchBytes)[Symbol.asyncIterator]();
  let ra = await ia.next();
  let rb = await ib.next();
  while (!ra.done || !rb.done) {
    const ka = ra.done ? undefined : Buffer.from(ra.value[0]);
    const kb = rb.done ? undefined : Buffer.from(rb.value[0]);
    const order = ka === undefined ? 1 : kb === undefined ? -1 : Buffer.compare(ka, kb);
    if (order < 0) {
      yield { key: ka!, detail: 'only in the current index' };
      ra = await ia.next();
    } else if (order > 0) {
      yield { key: kb!, detail: 'missing from the current index' };
      rb = await ib.next();
    } else {
      const va = Buffer.from(ra.value![1]);
      const vb = Buffer.from(rb.value![1]);
      if (!va.equals(vb) && !sameButHint(ka!, va, vb)) yield { key: ka!, detail: 'values differ' };
      ra = await ia.next();
      rb = await ib.next();
    }
  }
}

/**
 * Two message records that differ only in their blob-location hints (docs/FORMAT.md): an index
 * applied before hints existed against its rebuild, which writes them. A hint is advisory (a read
 * checks it and falls back to the B entry), so the indexes hold the same mail.
 */
function sameButHint(key: Buffer, a: Buffer, b: Buffer): boolean {
  if (key[0] !== SPACE.message) return false;
  try {
    const [x, y] = [decodeValue<MessageRecord>(a, key), decodeValue<MessageRecord>(b, key)];
    return encodeCbor(withoutHint(x)).equals(encodeCbor(withoutHint(y)));
  } catch {
    return false; // a damaged value differs
  }
}

export async function countMessages(db: IndexDb): Promise<number> {
  return countSpace(db, SPACE.message);
}

/** Keys in one space of the index (M messages, I mailboxes, R reverse ACL entries), in stretches as compareIndexes. */
export async function countSpace(db: IndexDb, space: number, stretchBytes?: number): Promise<number> {
  let n = 0;
  const prefix = keys.space(space);
  for await (const _ of entries(db, { gte: prefix, lt: prefixEnd(prefix) }, stretchBytes)) n++;
  return n;
}

/** The raw entries of `range`, in stretches when `stretchBytes` is given (index/stretches.ts, loaded only then). */
function entries(db: IndexDb, range: { gte: Buffer; lt: Buffer }, stretchBytes: number | undefined): AsyncIterable<[Buffer, Buffer]> {
  return stretchBytes === undefined ? db.rawIterator(range) : inStretches(db, range, stretchBytes);
}

async function* inStretches(db: IndexDb, range: { gte: Buffer; lt: Buffer }, stretchBytes: number): AsyncGenerator<[Buffer, Buffer]> {
  yield* (await import('../index/stretches.js')).entriesInStretches(db, range, stretchBytes);
}

/** What an index holds that a replacement must not lose. */
export interface IndexCounts {
  messages: number;
  mailboxes: number;
  aclEntries: number;
}

/** ACL entries are counted in the mailboxes' own ACLs (the reverse map R is derived from them). */
export async function indexCounts(db: IndexDb, stretchBytes?: number): Promise<IndexCounts> {
  let mailboxes = 0;
  let aclEntries = 0;
  for await (const [key, raw] of db.rawIterator({ gte: keys.space(SPACE.info), lt: prefixEnd(keys.space(SPACE.info)) })) {
    mailboxes++;
    try {
      const info = decodeValue<MailboxInfo>(raw, Buffer.from(key));
      if (!info.deleting) aclEntries += Object.keys(info.acl).length;
    } catch { /* a damaged value: scrub reports it */ }
  }
  return { messages: await countSpace(db, SPACE.message, stretchBytes), mailboxes, aclEntries };
}

/** The parts of `before` that `after` lacks, as words ("3 messages, 1 mailbox"); empty when none. */
export function describeLoss(before: IndexCounts, after: IndexCounts): string {
  const parts: string[] = [];
  if (after.messages < before.messages) parts.push(`${before.messages - after.messages} of ${before.messages} messages`);
  if (after.mailboxes < before.mailboxes) parts.push(`${before.mailboxes - after.mailboxes} of ${before.mailboxes} mailboxes`);
  if (after.aclEntries < before.aclEntries) parts.push(`${before.aclEntries - after.aclEntries} of ${before.aclEntries} ACL entries`);
  return parts.join(', ');
}

/** Moves a directory into quarantine/ (never deletes it); a no-op when it does not exist. */
export async function moveAside(fs: FileSystem, root: string, path: string, label: string): Promise<string | undefined> {
  if (!(await fs.statIfExists(path))) return undefined;
  const target = await unusedPath(fs, join(root, LAYOUT.quarantine, `${label}-${fileTimeStamp()}-${process.pid}`));
  await fs.rename(path, target).catch(async (e) => {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw fromSystemError(e, 'moving aside', path);
    await (await import('./move-entries.js')).moveEntriesAside(fs, root, path, target);
  });
  // the new name is durable with quarantine/ synced; the old one's directory too, so it cannot come back
  await fs.syncDir(dirname(target));
  if (dirname(path) !== dirname(target)) await fs.syncDir(dirname(path));
  return target;
}

/**
 * What an open did that an admin should hear of, one sentence each (the CLI prints them on stderr,
 * the daemon logs them): a rebuilt or converted index, a torn tail cut, a degraded open. Empty for
 * an ordinary open, and for a new store (its index is "missing" with nothing to replay).
 */
export function openNotices(health: Health): string[] {
  const out: string[] = [];
  const empty = health.rebuiltFrom === 'the whole journal (0 records)';
  if (health.rebuilt && !empty) out.push(`the index was rebuilt at open (${health.rebuilt}) from ${health.rebuiltFrom ?? 'the journal'}`);
  if (health.storeUpgraded) out.push(health.storeUpgraded);
  if (health.indexUpgraded) out.push(health.indexUpgraded);
  if (health.tornTailBytes) out.push(`a torn journal tail of ${health.tornTailBytes} bytes (never acknowledged) was cut (a copy is in quarantine/ unless it was all zeros)`);
  if (health.degraded) {
    const shown = health.findings.slice(0, 3).join('; ');
    const more = health.findings.length > 3 ? ` (and ${health.findings.length - 3} more)` : '';
    out.push(`the store opened degraded: ${shown}${more}; run 'mailstore scrub' to see every finding`);
  }
  return out;
}
