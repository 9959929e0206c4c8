// The scrubber: re-verifies every byte mailstore keeps and cross-checks the derived index against
// the primary data. Check-only; repair.ts consumes its findings.
//
// Where it runs: through the store's own process (the CLI opens the store and takes its lock; a
// daemon calls scrub() on its open Store). Pack records are immutable once written, so the pack
// pass runs beside live writers. The index pass holds the writer (runExclusive) so that the several
// range reads it makes see one consistent state; its memory grows with the number of mailboxes,
// plus one number per blob the pack pass confirmed (so that every blob the index refers to and the
// pack pass did not verify is read and hashed by the index pass: nothing escapes). It reaches the
// store's index, packs and journal only through store.maintenance() (src/store/maintenance.ts).
import os from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextEventLoopTurn } from 'node:timers/promises';
import { MailstoreError, assert, fromSystemError, isMailstoreError } from '../errors.js';
import { writeStoreFile } from '../store/setting-file.js';
import { hashHex } from '../hash/blake3.js';
import { decodeCbor, decodeValue, valueChecksumHolds } from '../index/codec.js';
import { readBlobCounts, type BlobCounts } from '../index/flat-cbor.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { ID_BYTES, decodeMessageKey, decodeNameKey, decodeRightsKey, keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import { checkIndexFiles, type IndexFileDamage } from '../index/table-check.js';
import type { HashPool } from '../hash/pool.js';
import { INLINE_PACK, type ScanHeader, type ScanItem, type ScanOptions } from '../blob/pack-store.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import type { Store } from '../store/store.js';
import { quarantineUse, type QuarantineUse } from '../store/quarantine.js';
import { checkpointBegin, type BlobRecord, type JournalPayload, type MailboxInfo, type MessageRecord, type RightsRecord } from '../store/records.js';
import { formatMailboxName } from '../store/validate.js';
import { meta } from '../store/apply.js';
import { RECOUNT_META, type RecountTotals } from './recount.js';
import { ListingCap, emptyTally, isDamage, mailboxCountsFinding, modseqAheadFinding, nextModseq, tallyMessage, type Finding, type MessageRef, type MessageTally, type UnlistedFindings } from './findings.js';
import { classifyDropped } from './drop.js';
import { tallyOps, type OpsTally } from './journal-tally.js';
import { scrubMailboxes } from './scoped.js';
import { checkSnapshots } from './snapshot-check.js';
import { checkStoreFiles } from './store-files.js';
import type { SnapshotInfo } from '../store/snapshot-file.js';
import { monotonicMs } from '../monotonic.js';
import { InlineScan } from '../store/compact-inline.js';
import { checkInlineBodies } from './inline-check.js';

export interface ScrubOptions {
  /** Throttle for pack reading, bytes per second (0 or undefined: unthrottled). */
  maxRateBytesPerSecond?: number;
  /** Throttle for bytes read from the object store (the network), bytes per second; beside maxRateBytesPerSecond. */
  maxObjectRateBytesPerSecond?: number;
  /**
   * Packs in the object store: 'read' (default) reads and re-hashes every record; 'checksum'
   * trusts an object whose size and ETag (its MD5, recorded when the move verified it) still match,
   * reading none of it, and reads in full the ones that do not match or have none recorded
   * (docs/OBJECT-STORAGE.md, "Scrub"). For the runs between full passes.
   */
  objects?: 'read' | 'checksum';
  /** Stop after this long and remember where (durable cursor); the next run resumes there. */
  timeBudgetMs?: number;
  onProgress?: (progress: ScrubProgress) => void;
  /**
   * Worker threads that hash while the scrub reads (0: hash in this thread). Default: one fewer
   * than the cores when there are at least limits.scrubPoolBytesMin to read and no rate limit,
   * started only once a chunk's records average limits.scanPoolRecordBytesMin (given: started at once).
   */
  hashThreads?: number;
  /**
   * For tests: the clock of the time budget, the rate limits and `seconds` (ms). Default monotonic
   * (performance.now): a wall clock stepped back an hour made a rate-limited scrub sleep that hour,
   * and one stepped forward ended a budgeted run at once.
   */
  now?: () => number;
  /** Check only this mailbox and the ones below it (scoped.ts): their blobs and index records. */
  mailbox?: string;
  /** Stops the pack pass where it is, as the time budget does, and the journal and index passes between batches (nobody waits for the report any more). */
  signal?: AbortSignal;
}

export interface ScrubProgress {
  phase: 'packs' | 'journal' | 'index';
  bytesDone: number;
  bytesTotal: number;
  blobs: number;
}

export interface ScannedRange {
  pack: number;
  from: number;
  to: number;
}

export interface ScrubSummary {
  packs: number;
  blobsVerified: number;
  bytesVerified: number;
  journalRecords: number;
  /** Snapshots that verified (a damaged one is a snapshot-damage finding). */
  snapshotsVerified?: number;
  indexKeys: number;
  seconds: number;
  /** True when this run finished a full cycle (every pack from the cursor to the end, journal and index). */
  cycleComplete: boolean;
  scanned: ScannedRange[];
  damage: number;
  informational: number;
  /** Packs in the object store checked by their checksum alone (objects: 'checksum'), not read. */
  objectsByChecksum?: number;
  /** Bytes read from the object store. */
  objectBytesRead?: number;
  /** Wall seconds of each pass (a full cycle runs the pack pass beside the others). */
  passSeconds?: PassSeconds;
  /** Set by a scoped scrub (--mailbox): what it covered. */
  scope?: { mailbox: string; mailboxes: number };
  /** What quarantine/ holds (never removed automatically: said at every run, so an admin sees it grow). */
  quarantine?: QuarantineUse;
  /**
   * Informational findings counted in `informational` and not in the report's list: those past
   * limits.scrubListedPerKindMax of their kind (ListingCap), by kind with their bytes. Absent when
   * every finding is listed (and from a daemon before session 51, which listed them all).
   */
  unlisted?: UnlistedFindings;
}

export interface PassSeconds {
  packs: number;
  journal: number;
  index: number;
}

export interface ScrubReport {
  findings: Finding[];
  summary: ScrubSummary;
}

const CURSOR_FILE = 'scrub-cursor.json';

interface Cursor {
  cycle: number;
  pack: number;
  offset: number;
}

export async function scrub(store: Store, options: ScrubOptions = {}): Promise<ScrubReport> {
  // every byte of a pack in the object store read from the bucket during this run, none from
  // blocks a read cached earlier (they passed for an object damaged since: a clean report)
  store.maintenance().packs.forgetRemoteCache();
  // Counted first: one it may not read stops the run before its passes (ACCESS, exit 2), as an
  // unreadable pack, snapshots/ or consumer cursor does, not after hours of them; before, it was
  // taken for empty and the notice that mail waits there was never said.
  const quarantine = await quarantineUse(store.fs, store.root);
  if (options.mailbox !== undefined) {
    const report = await scrubMailboxes(store, { ...options, mailbox: options.mailbox }, (findings) => attachRefs(store, findings));
    report.summary.quarantine = quarantine;
    return report;
  }
  const now = options.now ?? monotonicNow;
  const started = now();
  const findings: Finding[] = [];
  const budget = options.timeBudgetMs;
  const cursor = budget !== undefined ? await readCursor(store) : { cycle: 0, pack: 0, offset: 0 };
  const packs = await store.maintenance().packs.listPacks();
  const summary: ScrubSummary = {
    packs: packs.length, blobsVerified: 0, bytesVerified: 0, journalRecords: 0, snapshotsVerified: 0, indexKeys: 0, seconds: 0,
    cycleComplete: false, scanned: [], damage: 0, informational: 0, objectsByChecksum: 0, objectBytesRead: 0,
  };
  const overBudget = () => (budget !== undefined && now() - started >= budget) || options.signal?.aborted === true;
  const cap = new ListingCap(limits.scrubListedPerKindMax);
  const retired = new Set((await store.maintenance().index.get<number[]>(meta.retiredPacks)) ?? []);
  for (const pack of packs) if (retired.has(pack)) cap.push(findings, { kind: 'retired-pack-present', pack });
  const packPass = new PackPass(store, options, findings, summary, cursor, overBudget, cap);
  // Every pass reads the index (the pack pass its blob entries, the index pass all of it, then the
  // message references): a table LevelDB cannot read cuts the pass that met it short, and what
  // follows with it (the totals comparison, the references), all of which read the same index.
  let stoppedInChecks = false;
  const { cut } = await cutByUnreadableIndex(findings, async () => {
    const live = packs.filter((p) => !retired.has(p));
    if (budget === undefined) {
      stoppedInChecks = await stoppable(summary, () => allPassesAtOnce(store, options, findings, summary, packPass, live));
      if (packPass.stoppedAt) summary.cycleComplete = false; // stopped (signal)
    } else {
      // a budgeted run checks the journal and the index only once its pack pass reached the end
      await timed(summary, 'packs', () => packPass.run(live));
      if (!packPass.stoppedAt) stoppedInChecks = await stoppable(summary, () => checkJournalAndIndex(store, options, findings, summary, packPass, undefined));
    }
    await attachRefs(store, findings);
    await classifyDropped(store, findings);
    if (!packPass.stoppedAt) unreferencedHeaders(findings, packPass.confirmed);
  });
  // a cut pass did not finish its cycle: the next run starts where this one did
  // stopped in the journal or index pass: this cycle's packs are done, the next run checks those passes
  const checksPending = { cycle: cursor.cycle, pack: Math.max(0, ...packs) + 1, offset: 0 };
  if (budget !== undefined && !cut) await writeCursor(store, packPass.stoppedAt ?? (stoppedInChecks ? checksPending : { cycle: cursor.cycle + 1, pack: 0, offset: 0 }));
  summary.seconds = (now() - started) / 1000;
  summary.damage = findings.filter(isDamage).length;
  summary.informational = findings.length - summary.damage + cap.unlistedCount();
  if (cap.unlistedCount() > 0) summary.unlisted = cap.unlisted;
  summary.quarantine = quarantine;
  return { findings, summary };
}

/**
 * A full cycle (no time budget): the pack pass, and the journal and index passes, at once. On 2
 * cores one after the other left a core idle through each (the pack pass's reading, parsing and
 * hashing run on the pool's workers, the index pass's checks in this thread and its reads on
 * LevelDB's: issue 16). Findings and summary as the passes in order give them: the pack pass's
 * first, then the journal's and the index's; a pack pass cut by an unreadable index drops what the
 * others found (as when they followed it and did not run).
 */
async function allPassesAtOnce(store: Store, options: ScrubOptions, findings: Finding[], summary: ScrubSummary, packPass: PackPass, packs: number[]): Promise<void> {
  const later: Finding[] = [];
  const side = { ...summary };
  const packsDone = timed(summary, 'packs', () => packPass.run(packs));
  const rest = checkJournalAndIndex(store, options, later, side, packPass, packsDone);
  const [first, then] = await Promise.allSettled([packsDone, rest]);
  if (first.status === 'rejected') throw first.reason;
  for (const finding of later) findings.push(finding);
  const { journalRecords, snapshotsVerified, indexKeys, cycleComplete } = side;
  Object.assign(summary, { journalRecords, snapshotsVerified, indexKeys, cycleComplete });
  summary.passSeconds = { packs: summary.passSeconds?.packs ?? 0, journal: side.passSeconds?.journal ?? 0, index: side.passSeconds?.index ?? 0 };
  if (then.status === 'rejected') throw then.reason;
}

/** Thrown out of the journal and index passes when the scrub is asked to stop (ScrubOptions.signal). */
class ScrubStopped extends Error {}

function stopIfAsked(stop: (() => boolean) | undefined): void {
  if (stop?.()) throw new ScrubStopped('scrub stopped');
}

/**
 * Runs the journal and index passes; whether a stop request ended them. They ran to the end once
 * begun, minutes on a big store: a daemon stopping then ran past systemd's TimeoutStopSec (30 s).
 */
async function stoppable(summary: ScrubSummary, passes: () => Promise<void>): Promise<boolean> {
  try {
    await passes();
    return false;
  } catch (error) {
    if (!(error instanceof ScrubStopped)) throw error;
    summary.cycleComplete = false;
    return true;
  }
}

/** Runs `fn` and adds its seconds to summary.passSeconds[pass] (wall time: the passes overlap). */
async function timed<T>(summary: ScrubSummary, pass: keyof PassSeconds, fn: () => Promise<T>): Promise<T> {
  const started = monotonicMs();
  try {
    return await fn();
  } finally {
    summary.passSeconds = { packs: 0, journal: 0, index: 0, ...summary.passSeconds };
    summary.passSeconds[pass] += (monotonicMs() - started) / 1000;
  }
}

/**
 * Passes 2 and 3, once per full cycle: the journal, then the index (holding the writer). The blob
 * entries' locations need what the pack pass confirmed: while it still runs (`packsDone`), they are
 * checked once it ends, holding the writer a second time, so that writers do not wait on the pack
 * pass; after it, in the same hold.
 */
async function checkJournalAndIndex(store: Store, options: ScrubOptions, findings: Finding[], summary: ScrubSummary, packPass: PackPass, packsDone: Promise<void> | undefined): Promise<void> {
  summary.cycleComplete = true;
  const stop = () => options.signal?.aborted === true;
  options.onProgress?.(packPass.progress('journal'));
  const journalTotals: LiveTotals = { mailboxes: 0, messages: 0 };
  const indexTotals: LiveTotals = { mailboxes: 0, messages: 0 };
  // Snapshots and journal as one pair: no retirement between listing the one and reading the other.
  summary.journalRecords = await timed(summary, 'journal', () => store.maintenance().withoutSnapshots(async () => {
    const snapshots = await checkSnapshots(store, findings);
    summary.snapshotsVerified = snapshots.length;
    await checkStoreFiles(store, findings);
    return checkJournal(store, findings, journalTotals, snapshots, stop);
  }));
  options.onProgress?.(packPass.progress('index'));
  // an unreadable index ends this here (cutByUnreadableIndex): the index totals would be partial
  const maintenance = store.maintenance();
  const locations = (index: IndexChecked) => checkBlobs(store, findings, index.blobs, packPass, summary.scanned);
  let comparable = false;
  const index = await timed(summary, 'index', () => maintenance.runExclusive(async () => {
    const checked = await checkIndex(store, findings, indexTotals, stop, packPass.cap);
    comparable = await countSince(store, journalTotals);
    if (!packsDone) await locations(checked);
    return checked;
  }));
  if (packsDone) {
    await packsDone;
    await timed(summary, 'index', () => maintenance.runExclusive(() => locations(index)));
  }
  for (const { file, detail } of index.tables) findings.push({ kind: 'index-table-corrupt', file, detail });
  summary.indexKeys = index.keys;
  if (comparable) compareTotals(findings, journalTotals, indexTotals);
}

/**
 * Runs scrub's passes in order. LevelDB failing a read (a damaged table block: CORRUPT) ends the
 * pass that met it, and the passes after it, with one finding (`cut`), not an error out of scrub:
 * the index is derived state that `--repair` rebuilds from the journal; the scrub after that
 * rebuild reads it whole. One wrap for all passes: what a cut skips is exactly what follows it.
 * Found by the damage explorer: a flipped byte in a table made scrub throw "Corruption: corrupted
 * internal key in DBIter", or a flipped key byte left a name key that does not decode. A full
 * disk or an I/O error still stops scrub (nothing to rebuild).
 */
async function cutByUnreadableIndex(findings: Finding[], passes: () => Promise<void>): Promise<{ cut: boolean }> {
  try {
    await passes();
    return { cut: false };
  } catch (error) {
    // LevelDB's own read failures (index-db.ts) and a key that does not decode (keys/tuple.ts)
    if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT' || !/^(reading the index|an index key)/.test(error.message)) throw error;
    findings.push({ kind: 'index-unreadable', detail: error.message });
    return { cut: true };
  }
}

/**
 * Pass 1: the packs from the cursor on, sequentially, every record re-hashed. `confirmed` ends up
 * holding the index entries whose location the scan saw holding a valid record of their hash;
 * `stoppedAt` is where the time budget ran out, if it did.
 */
class PackPass {
  readonly confirmed = new Confirmed();
  stoppedAt: Cursor | undefined;
  private bytesDone = 0;
  private bytesTotal = 0;
  private records = 0;
  private readonly classifier: RecordClassifier;
  private throttle: (n: number) => Promise<unknown> = async () => undefined;
  private objectThrottle: (n: number) => Promise<unknown> = async () => undefined;
  /** Packs in the object store whose checksum matched (objects: 'checksum'): not read, their blob entries trusted. */
  readonly byChecksum = new Set<number>();

  constructor(
    private readonly store: Store,
    private readonly options: ScrubOptions,
    /** The pack pass's findings (scrub's list: the others' follow them). */
    readonly findings: Finding[],
    private readonly summary: ScrubSummary,
    private readonly cursor: Cursor,
    private readonly overBudget: () => boolean,
    /** The scrub's list of informational findings, capped by kind (shared with the index pass). */
    readonly cap: ListingCap,
  ) {
    this.classifier = new RecordClassifier(store, findings, this.confirmed, cap);
  }

  progress(phase: ScrubProgress['phase']): ScrubProgress {
    return { phase, bytesDone: this.bytesDone, bytesTotal: this.bytesTotal, blobs: this.summary.blobsVerified };
  }

  async run(packs: number[]): Promise<void> {
    for (const p of packs) if (p >= this.cursor.pack) this.bytesTotal += await this.packBytes(p);
    const { hashThreads, maxRateBytesPerSecond, now } = this.options;
    this.throttle = makeThrottle(maxRateBytesPerSecond, now ?? monotonicNow);
    this.objectThrottle = makeThrottle(this.options.maxObjectRateBytesPerSecond, now ?? monotonicNow);
    const threads = hashThreads ?? (this.bytesTotal >= limits.scrubPoolBytesMin && !maxRateBytesPerSecond ? Math.max(1, os.availableParallelism() - 1) : 0);
    // the store's shared pool (a big readMessages leases the same workers): no isolate of its own;
    // unless told how many threads, leased only once the scan meets big records (scanPoolRecordBytesMin)
    const shared = this.store.maintenance().hashPool;
    let pool: HashPool | undefined;
    let leased = false;
    const lease = () => {
      leased = true;
      return (pool = shared.acquire(threads));
    };
    if (hashThreads !== undefined) lease();
    try {
      for (const pack of packs) {
        if (pack < this.cursor.pack) continue;
        if (await this.checksumMatches(pack)) continue;
        await this.scanPack(pack, pool ?? (leased || threads === 0 ? undefined : lease));
        if (this.stoppedAt) break;
      }
      await this.classifier.flush();
    } finally {
      if (pool) shared.release();
    }
  }

  /** With objects: 'checksum', a pack in the object store whose size and ETag still match is not read. */
  private async checksumMatches(pack: number): Promise<boolean> {
    if (this.options.objects !== 'checksum') return false;
    if ((await this.store.maintenance().packs.remoteChecksumMatches(pack)) !== true) return false;
    this.byChecksum.add(pack);
    this.summary.objectsByChecksum! += 1;
    this.bytesDone += await this.packBytes(pack);
    return true;
  }

  /**
   * A pack whose header does not read: damaged or foreign, unless the file is shorter than a header
   * (a crash after the pack was created and before its first bytes were durable: nothing can be in
   * it, since the header is written first; the writer goes on in the next pack), which is no damage.
   */
  private async headerFinding(pack: number): Promise<Finding> {
    const bytes = await this.store.maintenance().packs.packBytes(pack);
    return bytes < PACK_HEADER_BYTES ? { kind: 'empty-pack', pack, bytes } : { kind: 'pack-header', pack };
  }

  /** One pack, from the cursor's offset in the cursor's pack and from its start in the others. */
  private async scanPack(pack: number, pool: ScanOptions['pool']): Promise<void> {
    const { store, summary, cursor } = this;
    const from = pack === cursor.pack ? cursor.offset : 0;
    const range: ScannedRange = { pack, from, to: from };
    summary.scanned.push(range);
    await this.classifier.submitAll(); // the records of the pack before: their lookups start
    const remote = store.maintenance().packs.isRemote(pack);
    // the throttles once per batch the scan yields (a chunk's records); progress and
    // bytesVerified per record this pass went through (not past where a time budget stopped it)
    const onBytes = async (n: number) => {
      if (remote) {
        summary.objectBytesRead! += n;
        await this.objectThrottle(n);
      }
      await this.throttle(n);
    };
    // unthrottled, the worker reads on far ahead (limits.scrubChunksAhead): it no longer waits for
    // this thread, busy with the index pass, to ask for each next chunk
    const { maxRateBytesPerSecond, maxObjectRateBytesPerSecond } = this.options;
    const aheadChunks = maxRateBytesPerSecond || maxObjectRateBytesPerSecond ? undefined : limits.scrubChunksAhead;
    try {
      await this.scanRecords(pack, range, store.maintenance().packs.scanBatches(pack, { onBytes, from, pool, aheadChunks }));
    } catch (error) {
      // an object missing from a bucket that is there (remote-packs.ts: CORRUPT) is damage to
      // report, not a reason to stop checking: the records not confirmed yet are left to the index
      // pass, which reports each blob entry into it as blob-missing with its messages
      if (!remote || !isMailstoreError(error, 'CORRUPT') || !isMailstoreError(error.cause, 'NOT_FOUND')) throw error;
    }
    if (this.stoppedAt) return;
    range.to = Math.max(range.to, await this.packBytes(pack));
  }

  /** The pack pass over the records `batches` yields: findings, progress, the time budget. */
  private async scanRecords(pack: number, range: ScannedRange, batches: AsyncGenerator<(ScanItem | ScanHeader)[]>): Promise<void> {
    const { store, findings, summary, cursor } = this;
    const from = range.from;
    for await (const batch of batches) {
      for (const item of batch) {
        if (item.kind === 'header') {
          if (from === 0 && (!item.valid || !item.storeId?.equals(store.storeId))) findings.push(await this.headerFinding(pack));
          continue;
        }
        if (item.kind === 'damage') {
          await this.classifier.flush();
          this.cap.push(findings, { kind: 'pack-damage', pack, offset: item.offset, length: item.length });
        } else {
          summary.blobsVerified++;
          summary.bytesVerified += item.length;
          this.bytesDone += item.length;
          this.options.onProgress?.(this.progress('packs'));
          this.classifier.push(pack, item);
        }
        range.to = item.next;
        if (this.overBudget()) {
          this.stoppedAt = { cycle: cursor.cycle, pack, offset: item.next };
          return;
        }
        if (++this.records % limits.scrubRecordsPerTurn === 0) {
          await this.classifier.submitFull();
          await nextEventLoopTurn();
        }
      }
      await this.classifier.submitFull();
    }
  }

  /** 0 for a pack compaction deleted since it was listed. */
  private async packBytes(pack: number): Promise<number> {
    return this.store.maintenance().packs.packBytes(pack);
  }
}

/**
 * A pack whose header does not read, when no blob entry of the whole index points into it (the
 * pack pass confirmed none there, and no entry was found missing or damaged there): nothing any
 * message holds is in it (as when a crash lost the header of a pack no batch had committed into
 * yet: its later, unsynced writes survived and the first did not): dead bytes, not damage.
 */
function unreferencedHeaders(findings: Finding[], confirmed: Confirmed): void {
  const referenced = new Set<number>();
  for (const f of findings) if (f.kind === 'blob-missing' || f.kind === 'blob-corrupt') referenced.add(f.pack);
  findings.forEach((f, i) => {
    if (f.kind === 'pack-header' && !referenced.has(f.pack) && !confirmed.inPack(f.pack)) findings[i] = { kind: 'unreferenced-pack-header', pack: f.pack };
  });
}

type ScannedBlob = { offset: number; hash: Buffer; length: number; valid: boolean };

/**
 * Index entries the pack pass saw at a valid record: per pack, their offsets in file order, in
 * typed arrays (a number array held ~8-12 MiB of the heap at 1M blobs, to the pass's end: issue 16).
 */
export class Confirmed {
  n = 0;
  private readonly byPack = new Map<number, OffsetList>();

  add(pack: number, offset: number): void {
    let list = this.byPack.get(pack);
    if (!list) this.byPack.set(pack, (list = new OffsetList()));
    list.push(offset);
    this.n++;
  }

  has(pack: number, offset: number): boolean {
    return this.byPack.get(pack)?.includes(offset) ?? false;
  }

  /** Whether any index entry was confirmed in `pack`. */
  inPack(pack: number): boolean {
    return this.byPack.has(pack);
  }
}

/** Ascending offsets: 4 bytes each while they fit in 32 bits, 8 from the first that does not. */
class OffsetList {
  private values: Uint32Array | Float64Array = new Uint32Array(1024);
  private length = 0;

  push(offset: number): void {
    const narrow = this.values instanceof Uint32Array;
    const widen = narrow && offset > 0xffffffff;
    if (this.length === this.values.length || widen) {
      const size = this.values.length * 2;
      const grown = narrow && !widen ? new Uint32Array(size) : new Float64Array(size);
      grown.set(this.values.subarray(0, this.length));
      this.values = grown;
    }
    this.values[this.length++] = offset;
  }

  /** Binary search: pushed in file order. */
  includes(offset: number): boolean {
    const values = this.values;
    let lo = 0, hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (values[mid] === offset) return true;
      if (values[mid] < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

/**
 * Classifies the pack pass's records against the index: a record is damage only when the index
 * relies on this copy. Records are looked up in groups (one getMany, on LevelDB's thread pool,
 * while the scan goes on) and classified in file order; `confirmed` counts index entries whose
 * location holds a record that verified.
 */
class RecordClassifier {
  private items: ScannedBlob[] = [];
  private pack = 0;
  private previous: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store, private readonly findings: Finding[], private readonly confirmed: Confirmed, private readonly cap: ListingCap) {}

  /** Adds a record of `pack`; submitFull (or flush) starts the lookups. One pack at a time: flush between packs. */
  push(pack: number, item: ScannedBlob): void {
    assert(this.items.length === 0 || pack === this.pack, 'scrub classifies one pack at a time');
    this.pack = pack;
    this.items.push(item);
  }

  /** Looks up the records added so far once there are limits.scrubLookupBatch of them. */
  async submitFull(): Promise<void> {
    if (this.items.length >= limits.scrubLookupBatch) await this.submit();
  }

  /** Starts the lookups of every record added so far. */
  async submitAll(): Promise<void> {
    if (this.items.length > 0) await this.submit();
  }

  /** Every record added so far is classified. */
  async flush(): Promise<void> {
    if (this.items.length > 0) await this.submit();
    await this.previous;
  }

  /** Starts the lookups of the group; waits for the group before it (at most two in flight). */
  private async submit(): Promise<void> {
    const items = this.items;
    const pack = this.pack;
    this.items = [];
    const lookup = this.store.maintenance().index.getMany<BlobRecord>(items.map((item) => keys.blob(item.hash)));
    lookup.catch(() => undefined); // awaited below
    await this.previous;
    this.previous = lookup.then((blobs) => {
      for (let i = 0; i < items.length; i++) if (this.classify(pack, items[i], blobs[i])) this.confirmed.add(pack, items[i].offset);
    });
    this.previous.catch(() => undefined); // awaited by the next submit or flush
  }

  private classify(pack: number, item: ScannedBlob, blob: BlobRecord | MailstoreError | undefined): boolean {
    if (blob instanceof MailstoreError) {
      if (blob.code === 'CORRUPT') return false; // reported by the index pass
      throw blob;
    }
    const used = blob !== undefined && blob.p === pack && blob.o === item.offset && blob.l === item.length;
    if (!item.valid && used) {
      this.findings.push({ kind: 'blob-corrupt', pack, offset: item.offset, hash: hashHex(item.hash), length: item.length, refs: [] });
    } else if (!used) {
      this.cap.push(this.findings, { kind: 'unreferenced-pack-record', pack, offset: item.offset, length: item.length });
    }
    return used && item.valid;
  }
}

/**
 * What the journal says should be live: mailboxes and messages. A replay derives the index from the
 * same ops, so these totals must equal the index's; LevelDB can silently drop keys of a damaged
 * table (docs/FAULTS.md), which every cross-check inside the index then agrees with.
 */
interface LiveTotals {
  mailboxes: number;
  messages: number;
  /** The journal's: the seq of the last record counted. */
  throughSeq?: number;
}

function countLive(totals: LiveTotals, payload: JournalPayload, inCheckpoint: boolean): void {
  for (const op of payload.ops) {
    switch (op.op) {
      case 'mailbox.create': totals.mailboxes++; break;
      // a checkpoint's brings a mailbox; outside one (XFER's reconcile raising uidNext) it restates one already counted
      case 'state.mailbox': if (inCheckpoint) totals.mailboxes++; break;
      case 'mailbox.deleteEnd': totals.mailboxes--; break;
      case 'message.add': totals.messages++; break;
      case 'state.messages': totals.messages += op.messages.length; break;
      case 'message.expunge': totals.messages -= op.uids.length; break;
      // counters recounted (recount.ts): the records before it may have counted adds the index never held
      case 'meta.set': if (op.key === RECOUNT_META) restateTotals(totals, op.value); break;
      default: break;
    }
  }
}

/** The index's totals a recount record stated (recount.ts): the tally goes on from them. */
function restateTotals(totals: LiveTotals, value: unknown): void {
  const stated = value as Partial<RecountTotals> | null;
  if (typeof stated?.mailboxes !== 'number' || typeof stated.messages !== 'number') return;
  totals.mailboxes = stated.mailboxes;
  totals.messages = stated.messages;
}

/**
 * Every journal record's frame, and coverage: the journal must start at seq 1, with a checkpoint,
 * or where a verified snapshot takes over (the segments before were retired; the totals then start
 * from the snapshot's), have no gaps, and reach the index's appliedSeq (read first: the journal is
 * always written before the index, so a writer running meanwhile cannot make this report a false gap).
 */
async function checkJournal(store: Store, findings: Finding[], totals: LiveTotals, snapshots: SnapshotInfo[], stop?: () => boolean): Promise<number> {
  const appliedSeq = (await store.maintenance().index.get<number>(meta.appliedSeq)) ?? 0;
  let records = 0;
  let last = 0;
  let countAfter = 0; // records up to this seq are counted in the snapshot's totals
  let inCheckpoint = false;
  for await (const record of store.maintenance().journal.read(0, (damage) => {
    findings.push({ kind: 'journal-damage', segment: damage.segment, offset: damage.offset, length: damage.length, where: damage.where });
  })) {
    stopIfAsked(stop);
    let payload: RecordOps | undefined;
    try {
      payload = readRecordOps(record.payload);
    } catch {
      findings.push({ kind: 'journal-damage', segment: '?', offset: 0, length: record.payload.length, where: `record ${record.seq} does not decode` });
    }
    if (records === 0 && record.seq > 1 && !payload?.begin) {
      const cover = snapshots.find((s) => s.seq + 1 >= record.seq);
      if (cover) {
        totals.mailboxes = cover.mailboxes;
        totals.messages = cover.messages;
        countAfter = cover.seq;
      } else {
        findings.push({ kind: 'journal-gap', from: 1, to: record.seq - 1 });
      }
    }
    if (payload?.begin) inCheckpoint = true;
    if (payload && (payload.tally || payload.decoded) && record.seq > countAfter) countRecord(totals, payload, inCheckpoint);
    if (payload?.end) inCheckpoint = false; // a checkpoint is one batch
    if (last > 0 && record.seq > last + 1) findings.push({ kind: 'journal-gap', from: last + 1, to: record.seq - 1 });
    last = Math.max(last, record.seq);
    records++;
  }
  if (last < appliedSeq) findings.push({ kind: 'journal-gap', from: last + 1, to: appliedSeq });
  totals.throughSeq = last;
  return records;
}

/**
 * A journal record's payload as the journal pass counts it: tallied from its bytes (journal-tally.ts),
 * or, for a shape the tally leaves to cbor-x, decoded (throws when it does not decode).
 */
interface RecordOps {
  begin: boolean;
  end: boolean;
  tally?: OpsTally;
  decoded?: JournalPayload;
}

function readRecordOps(bytes: Buffer): RecordOps {
  const tally = tallyOps(bytes);
  if (tally) return { begin: tally.begin, end: tally.end, tally };
  const decoded = decodeCbor<JournalPayload>(bytes);
  return { begin: checkpointBegin(decoded) !== undefined, end: Boolean(decoded?.end), decoded };
}

/** countLive of the record's ops, from its tally or its decoded payload. */
function countRecord(totals: LiveTotals, ops: RecordOps, inCheckpoint: boolean): void {
  const { tally } = ops;
  if (!tally) return countLive(totals, ops.decoded!, inCheckpoint);
  totals.mailboxes += tally.mailboxCreates - tally.mailboxDeleteEnds + (inCheckpoint ? tally.stateMailboxes : 0);
  totals.messages += tally.messageAdds + tally.stateMessages - tally.expungedUids;
}

/**
 * Counts the records committed since the journal pass read the journal (writers go on between
 * the passes), so that its totals are those of the seq the index pass sees: compared as they
 * were, every message delivered meanwhile was reported as index-journal-mismatch, damage, on a
 * healthy store. False when they are not all there to count (retired meanwhile, unreadable):
 * the totals are then not compared this run. Called with the writer held.
 */
async function countSince(store: Store, totals: LiveTotals): Promise<boolean> {
  if (totals.throughSeq === undefined) return false;
  let next = totals.throughSeq + 1;
  let whole = true;
  for await (const record of store.maintenance().journal.read(totals.throughSeq, () => { whole = false; })) {
    if (!whole || record.seq !== next++) return false;
    let payload: RecordOps;
    try {
      payload = readRecordOps(record.payload);
    } catch {
      return false;
    }
    countRecord(totals, payload, false); // no checkpoint is written beside a scrub (a journal rewrite holds the store)
  }
  return whole;
}

interface BoxCheck extends MessageTally {
  info: MailboxInfo;
  name: string;
  seenInNames: boolean;
}

/** Lane sums of the first 8 hash bytes: equal multisets give equal sums. */
class Digest {
  private a = 0;
  private b = 0;
  add(bytes: Buffer, times = 1): void {
    this.addWords(bytes.readUInt32BE(0), bytes.readUInt32BE(4), times);
  }
  addWords(a: number, b: number, times = 1): void {
    this.a = (this.a + times * a) % 4294967296;
    this.b = (this.b + times * b) % 4294967296;
  }
  equals(other: Digest): boolean {
    return this.a === other.a && this.b === other.b;
  }
}

/** One key space, values checked and decoded; read in batches of limits.scrubIndexReadEntries. */
async function* entryBatches<T>(store: Store, space: number, findings: Finding[], counter: IndexCounter): AsyncGenerator<[Buffer, T][]> {
  for await (const batch of rawBatches(store, space, counter)) yield decodeBatch<T>(batch, findings, counter);
}

/** One key space as LevelDB hands it back, in batches of limits.scrubIndexReadEntries, the next read while one is used. */
async function* rawBatches(store: Store, space: number, counter: IndexCounter): AsyncGenerator<[Buffer, Buffer][]> {
  const iterator = store.maintenance().index.rawIterator({ gte: Buffer.of(space), lt: Buffer.of(space + 1) });
  let next: Promise<[Buffer, Buffer][]> | undefined;
  try {
    next = iterator.nextv(limits.scrubIndexReadEntries);
    next.catch(() => undefined);
    for (;;) {
      const batch = await next;
      next = undefined;
      if (batch.length === 0) break;
      stopIfAsked(counter.stop);
      // LevelDB reads the next batch on its thread while this one is checked: waiting for each
      // batch in turn left the index pass idle half of its time (100k messages, issue 16)
      next = iterator.nextv(limits.scrubIndexReadEntries);
      next.catch(() => undefined); // a failure is rethrown where it is awaited, not unhandled meanwhile
      yield batch;
    }
  } finally {
    await next?.catch(() => undefined);
    await iterator.close();
  }
}

/**
 * One batch of entryBatches, values checked and decoded, in a plain function: V8 compiles it once
 * and small, where the loop inside the async generator (three of them at once) was compiled on
 * the stack and again after each deoptimisation (issue 16).
 */
function decodeBatch<T>(batch: [Buffer | Uint8Array, Buffer][], findings: Finding[], counter: IndexCounter): [Buffer, T][] {
  const out: [Buffer, T][] = [];
  for (const [rawKey, rawValue] of batch) {
    counter.n++;
    const key = Buffer.isBuffer(rawKey) ? rawKey : Buffer.from(rawKey);
    try {
      out.push([key, decodeValue<T>(rawValue, key)]);
    } catch {
      findings.push({ kind: 'index-value-corrupt', key: key.toString('hex') });
    }
  }
  return out;
}

async function* entries<T>(store: Store, space: number, findings: Finding[], counter: { n: number }): AsyncGenerator<[Buffer, T]> {
  for await (const batch of entryBatches<T>(store, space, findings, counter)) yield* batch;
}

/** What checkIndex found and what it leaves to checkBlobs: the keys it read, the blob entries' tallies, the damaged tables. */
interface IndexChecked {
  keys: number;
  blobs: BlobTallies;
  tables: IndexFileDamage[];
}

/**
 * Cross-checks the index: its LevelDB files' own checksums, N against I, R against the ACLs,
 * counts, the change log, and tallies the blob entries for checkBlobs. The damaged tables are
 * returned (reported after checkBlobs's findings), or reported at once when a check fails.
 */
/** The index pass's count of keys read, and its stop request (checked between batches). */
interface IndexCounter {
  n: number;
  stop?: () => boolean;
}

async function checkIndex(store: Store, findings: Finding[], totals: LiveTotals, stop: (() => boolean) | undefined, cap: ListingCap): Promise<IndexChecked> {
  // LevelDB's own checksums, every live table read once beside the reads below: a flipped bit in a
  // table's filter or index block hides entries from point lookups that iteration still finds
  const files = checkIndexFiles(store.fs, store.maintenance().index.path);
  files.catch(() => undefined); // awaited below
  const pass = { store, findings, counter: { n: 0, stop }, cap };
  let blobs: BlobTallies;
  try {
    blobs = await crossCheckIndex(pass, totals);
  } catch (error) {
    if (error instanceof ScrubStopped) throw error; // not damage: the table check below is not waited for
    const { damage } = await files;
    for (const { file, detail } of damage) findings.push({ kind: 'index-table-corrupt', file, detail });
    // A key a flip moved into a shape the checks do not expect (a RangeError or TypeError out of
    // them, damage explorer) in a table that fails its checksums: the pass ends with that finding
    // (index-unreadable, as a read LevelDB fails), not an error out of scrub.
    if (damage.length > 0 && (error instanceof TypeError || error instanceof RangeError)) {
      throw new MailstoreError('CORRUPT', `reading the index: ${error.message} (index/${damage[0].file} is damaged)`, { cause: error });
    }
    throw error;
  }
  return { keys: pass.counter.n, blobs, tables: (await files).damage };
}

/** The cross-checks of checkIndex; returns the blob entries' tallies for checkBlobs. */
async function crossCheckIndex(pass: IndexPass, totals: LiveTotals): Promise<BlobTallies> {
  const { findings } = pass;
  const boxes = await readMailboxes(pass);
  await checkNames(pass, boxes);
  await checkRights(pass, boxes);
  // The three big key spaces are read at once (each iterator on its own LevelDB thread: reading
  // one after the other left the pass waiting on LevelDB most of its time); their findings are
  // kept apart and reported in the order of the checks, as before.
  const [messages, changeLog, blobs] = [fork(pass), fork(pass), fork(pass)];
  const [fromMessages, changes, recorded] = await Promise.all([countMessages(messages, boxes), readChangeLog(changeLog, boxes), readBlobs(blobs)]);
  // one at a time: damage can make more findings than a call takes arguments (~120k: RangeError)
  for (const finding of messages.findings) findings.push(finding);
  checkCounts(findings, boxes);
  const next = await nextModseq(pass.store.maintenance().index);
  for (const box of boxes.values()) {
    const ahead = box.info.deleting ? undefined : modseqAheadFinding(box.name, box.info, box, next);
    if (ahead) findings.push(ahead);
  }
  for (const finding of changeLog.findings) findings.push(finding);
  if (!changes.equals(fromMessages.changes)) {
    findings.push({ kind: 'change-log-mismatch', mailbox: '*', detail: 'the change log (C) disagrees with the messages\' modseqs' });
  }
  for (const finding of blobs.findings) findings.push(finding);
  totals.mailboxes = boxes.size;
  for (const box of boxes.values()) totals.messages += box.messages;
  return { count: recorded.blobs, refcountsDiffer: !recorded.recorded.equals(fromMessages.referenced) };
}

/** The blob entries as checkIndex read them: how many, and whether their refcounts disagree with the messages. */
interface BlobTallies {
  count: number;
  refcountsDiffer: boolean;
}

/** What every step of the index pass reads through, reports to, and counts keys in. */
interface IndexPass {
  store: Store;
  findings: Finding[];
  counter: { n: number };
  /** The scrub's cap on informational findings listed (unreferenced blobs: one per expunged message until compaction). */
  cap: ListingCap;
}

/** A pass of its own for a step run beside others: its own findings, the shared key counter. */
function fork(pass: IndexPass): IndexPass {
  return { store: pass.store, findings: [], counter: pass.counter, cap: pass.cap };
}

function spaceBatches<T>(pass: IndexPass, space: number): AsyncGenerator<[Buffer, T][]> {
  return entryBatches<T>(pass.store, space, pass.findings, pass.counter);
}

/** I: every mailbox, by hex id, with zeroed tallies for the steps below. */
async function readMailboxes(pass: IndexPass): Promise<Map<string, BoxCheck>> {
  const boxes = new Map<string, BoxCheck>();
  for await (const batch of spaceBatches<MailboxInfo>(pass, SPACE.info)) for (const [key, info] of batch) {
    if (!Array.isArray((info as Partial<MailboxInfo> | undefined)?.name)) {
      // a checksummed value of another shape: a flipped key byte moved it here (damage explorer)
      pass.findings.push({ kind: 'index-value-corrupt', key: key.toString('hex') });
      continue;
    }
    const id = key.subarray(1).toString('hex');
    boxes.set(id, { info, name: formatMailboxName(info.name), seenInNames: false, ...emptyTally() });
  }
  return boxes;
}

/** N <-> I: each name points to the live mailbox of that name, and each live mailbox has its name. */
async function checkNames(pass: IndexPass, boxes: Map<string, BoxCheck>): Promise<void> {
  const { findings } = pass;
  for await (const batch of spaceBatches<Buffer>(pass, SPACE.name)) for (const [key, idValue] of batch) {
    const name = formatMailboxName(decodeNameKey(key));
    const box = boxes.get(Buffer.from(idValue).toString('hex'));
    if (!box) findings.push({ kind: 'name-index-mismatch', name, detail: 'the name points to a mailbox that does not exist' });
    else if (box.info.deleting) findings.push({ kind: 'name-index-mismatch', name, detail: 'the name points to a mailbox being deleted' });
    else if (box.name !== name) findings.push({ kind: 'name-index-mismatch', name, detail: `the name points to mailbox ${box.name}` });
    else box.seenInNames = true;
  }
  for (const box of boxes.values()) {
    if (!box.info.deleting && !box.seenInNames) findings.push({ kind: 'name-index-mismatch', name: box.name, detail: 'the mailbox has no name entry' });
  }
}

/**
 * R <-> ACLs: each reverse-map entry agrees with its mailbox's ACL; only when there are fewer
 * entries than ACL entries are the ACLs looked up one by one for the missing ones.
 */
async function checkRights(pass: IndexPass, boxes: Map<string, BoxCheck>): Promise<void> {
  const { store, findings } = pass;
  let aclEntries = 0;
  const byName = new Map<string, BoxCheck>();
  for (const box of boxes.values()) {
    if (box.info.deleting) continue;
    byName.set(box.name, box);
    aclEntries += Object.keys(box.info.acl).length;
  }
  let rightsEntries = 0;
  for await (const batch of spaceBatches<RightsRecord>(pass, SPACE.rights)) for (const [key, value] of batch) {
    const { user, components } = decodeRightsKey(key);
    const name = formatMailboxName(components);
    const box = byName.get(name);
    rightsEntries++;
    if (!box || !Buffer.from(value.id).equals(Buffer.from(box.info.id))) findings.push({ kind: 'acl-map-mismatch', identifier: user, name, detail: 'reverse map entry for a mailbox that does not have this name' });
    else if (box.info.acl[user] !== value.rights) findings.push({ kind: 'acl-map-mismatch', identifier: user, name, detail: `reverse map says '${value.rights}', the ACL says '${box.info.acl[user] ?? ''}'` });
  }
  if (rightsEntries >= aclEntries) return;
  for (const box of byName.values()) {
    for (const user of Object.keys(box.info.acl)) {
      // a value failing its checksum is there (and already reported as index-value-corrupt)
      const present = await store.maintenance().index.get(keys.rights(user, box.info.name)).then(Boolean, (error: unknown) => {
        if (isMailstoreError(error, 'CORRUPT')) return true;
        throw error;
      });
      if (!present) findings.push({ kind: 'acl-map-mismatch', identifier: user, name: box.name, detail: 'ACL entry missing from the reverse map' });
    }
  }
}

/** M: tallies each mailbox's messages, and digests of the blobs they refer to and of their change entries. */
async function countMessages(pass: IndexPass, boxes: Map<string, BoxCheck>): Promise<{ referenced: Digest; changes: Digest }> {
  const referenced = new Digest();
  const changes = new Digest();
  const lookup = new MailboxLookup(boxes);
  for await (const batch of spaceBatches<MessageRecord>(pass, SPACE.message)) countBatch(pass, lookup, batch, referenced, changes);
  return { referenced, changes };
}

/**
 * One batch of countMessages, in a function of its own: a plain loop that V8 compiles small and
 * once, where the loop inside the async generator's consumer was compiled on the stack (OSR),
 * again after a deoptimisation, at several times the cost (issue 16: a cold scrub's compiles were
 * ~0.3 s of CPU on the helper threads).
 */
function countBatch(pass: IndexPass, lookup: MailboxLookup, batch: [Buffer, MessageRecord][], referenced: Digest, changes: Digest): void {
  for (const [key, record] of batch) {
    // the key's fields read in place (decodeMessageKey's id is a view and an object a key); a key
    // too short to hold them throws here as it did there (RangeError: the index pass's damage)
    const uid = key.readUInt32BE(MESSAGE_UID_AT);
    const box = lookup.get(key);
    // the hash is a view in the value LevelDB handed back (no copy: its first 8 bytes are read)
    referenced.add(Buffer.isBuffer(record.h) ? record.h : Buffer.from(record.h));
    addChange(changes, key, uid, record.m);
    if (!box) {
      pass.findings.push({ kind: 'mailbox-counts', mailbox: key.toString('hex', 1, ID_END), detail: `message ${uid} belongs to no mailbox` });
      continue;
    }
    tallyMessage(box, uid, record);
  }
}

/** Where a message key (M) and a change key (C) hold their fields: the space byte, the mailbox id, then these. */
const ID_END = 1 + ID_BYTES;
const MESSAGE_UID_AT = ID_END;
const CHANGE_MODSEQ_AT = ID_END;
const CHANGE_UID_AT = ID_END + 8;

/**
 * A mailbox by the id in a key (M or C: bytes 1 to ID_END). Keys come in mailbox order, so the
 * mailbox of the key before is asked for again and again: compared as bytes, not looked up by the
 * id in hex (a string made and hashed per message and per change entry).
 */
class MailboxLookup {
  private id: Buffer | undefined;
  private box: BoxCheck | undefined;

  constructor(private readonly boxes: Map<string, BoxCheck>) {}

  get(key: Buffer): BoxCheck | undefined {
    if (this.id === undefined || key.compare(this.id, 0, ID_BYTES, 1, ID_END) !== 0) {
      this.id = key.subarray(1, ID_END);
      this.box = this.boxes.get(this.id.toString('hex'));
    }
    return this.box;
  }
}

/** Each mailbox's stored counts against the messages countMessages tallied. */
function checkCounts(findings: Finding[], boxes: Map<string, BoxCheck>): void {
  for (const box of boxes.values()) {
    const counts = mailboxCountsFinding(box.name, box.info, box);
    if (counts) findings.push(counts);
  }
}

/** C: a digest of the 'changed' entries (each message must have one at its modseq); no entry may name a missing mailbox. */
async function readChangeLog(pass: IndexPass, boxes: Map<string, BoxCheck>): Promise<Digest> {
  const changes = new Digest();
  const lookup = new MailboxLookup(boxes);
  for await (const batch of spaceBatches<number>(pass, SPACE.change)) changeBatch(pass, lookup, batch, changes);
  return changes;
}

/** One batch of readChangeLog (a function of its own, as countBatch). */
function changeBatch(pass: IndexPass, lookup: MailboxLookup, batch: [Buffer, number][], changes: Digest): void {
  for (const [key, value] of batch) {
    // in place, as countBatch: the same fields and the same RangeError as decodeChangeKey's
    const modseq = key.readUInt32BE(CHANGE_MODSEQ_AT) * 0x1_0000_0000 + key.readUInt32BE(CHANGE_MODSEQ_AT + 4);
    const uid = key.readUInt32BE(CHANGE_UID_AT);
    if (value === 0) addChange(changes, key, uid, modseq);
    if (!lookup.get(key)) pass.findings.push({ kind: 'change-log-mismatch', mailbox: key.toString('hex', 1, ID_END), detail: `change entry for uid ${uid} of a mailbox that does not exist` });
  }
}

/** B: a digest of the entries' refcounts, their number, and every entry nothing refers to. */
async function readBlobs(pass: IndexPass): Promise<{ recorded: Digest; blobs: number }> {
  const tally = { recorded: new Digest(), blobs: 0 };
  const retired = new Set((await pass.store.maintenance().index.get<number[]>(meta.retiredPacks)) ?? []);
  for await (const batch of rawBatches(pass.store, SPACE.blob, pass.counter)) blobBatch(pass, retired, batch, tally);
  return tally;
}

/** Where blobBatch reads an entry's fields into (one object for every entry). */
const blobCounts: BlobCounts = { p: 0, l: 0, r: 0 };

/**
 * One batch of readBlobs (a function of its own, as countBatch). Only p, l and r of each value are
 * read, in place (readBlobCounts): decoded whole, each entry was a record object and a [key, value]
 * pair the pass never kept. A value of another shape is decoded in full, as before; one that does
 * not check or decode is index-value-corrupt, reported, as before, ahead of the batch's other findings.
 */
function blobBatch(pass: IndexPass, retired: ReadonlySet<number>, batch: [Buffer, Buffer][], tally: { recorded: Digest; blobs: number }): void {
  const found: Finding[] = [];
  for (const [rawKey, value] of batch) {
    pass.counter.n++;
    const key = Buffer.isBuffer(rawKey) ? rawKey : Buffer.from(rawKey);
    let blob: BlobCounts = blobCounts;
    if (!valueChecksumHolds(key, value) || !readBlobCounts(value, 4, blobCounts)) {
      try {
        blob = decodeValue<BlobRecord>(value, key);
      } catch {
        pass.findings.push({ kind: 'index-value-corrupt', key: key.toString('hex') });
        continue;
      }
    }
    tally.blobs++;
    if (retired.has(blob.p)) found.push({ kind: 'blob-in-retired-pack', hash: hashHex(key.subarray(1)), pack: blob.p });
    // the hash's first 8 bytes, as Digest.add reads them, from the key (no view an entry)
    tally.recorded.addWords(key.readUInt32BE(1), key.readUInt32BE(5), blob.r);
    if (blob.r === 0) found.push({ kind: 'unreferenced-blob', hash: hashHex(key.subarray(1)), length: blob.l });
  }
  for (const finding of found) pass.cap.push(pass.findings, finding);
}

/**
 * B: every entry's location holds its record; refcounts agree with the messages. `blobs` comes
 * from checkIndex, `confirmed` from the pack pass: when it confirmed as many entries as there are,
 * their locations need no second look.
 */
async function checkBlobs(store: Store, findings: Finding[], blobs: BlobTallies, packPass: PackPass, scanned: ScannedRange[]): Promise<void> {
  if (blobs.count !== packPass.confirmed.n) {
    // the blobs the pack pass found corrupt (in its own findings when it ran beside this pass)
    const corrupt = new Set([...packPass.findings, ...findings].filter((f) => f.kind === 'blob-corrupt').map((f) => (f as { hash: string }).hash));
    await checkBlobLocations(store, findings, corrupt, packPass.confirmed, scanned, packPass.byChecksum);
  }
  if (blobs.refcountsDiffer) await localizeRefcounts(store, blobs.count, findings);
}

/** Only when the journal read whole: a damaged or incomplete journal is reported on its own. */
function compareTotals(findings: Finding[], journal: LiveTotals, index: LiveTotals): void {
  if (findings.some((f) => f.kind === 'journal-damage' || f.kind === 'journal-gap')) return;
  if (journal.mailboxes === index.mailboxes && journal.messages === index.messages) return;
  findings.push({ kind: 'index-journal-mismatch', detail: `the journal holds ${journal.mailboxes} mailboxes and ${journal.messages} messages, the index ${index.mailboxes} and ${index.messages}` });
}

/**
 * The blob entries the pack pass did not confirm: each location must hold a valid header of its
 * hash and length (a pread), and, when it lies in a range this run scanned (so the pack pass walked
 * past it: inside a torn or damaged record, or inside another record), a body that matches its hash
 * (a read). A location outside this run's ranges was verified by an earlier run of the cycle, or
 * was written after its pack was scanned (the next cycle verifies it). An entry into an object
 * whose checksum matched is not read: its object holds the bytes a full pass verified.
 */
async function checkBlobLocations(store: Store, findings: Finding[], corrupt: ReadonlySet<string>, confirmed: Confirmed, scanned: ScannedRange[], byChecksum: ReadonlySet<number>, only?: (blob: BlobRecord) => boolean): Promise<void> {
  const inScanned = (pack: number, offset: number) => scanned.some((r) => r.pack === pack && offset >= r.from && offset < r.to);
  // inline entries are gathered (up to limits.inlineCheckEntriesMax) and read in the order of their
  // records (checkInlineBodies); the window's findings go out in index order (by hash), as before
  let inline = new InlineScan();
  const window: Finding[] = [];
  const flush = async () => {
    await checkInlineBodies(store, inline, window);
    inline = new InlineScan();
    for (const finding of window.sort(byHash)) findings.push(finding);
    window.length = 0;
  };
  for await (const [key, blob] of entries<BlobRecord>(store, SPACE.blob, [], { n: 0 })) {
    if ((only && !only(blob)) || confirmed.has(blob.p, blob.o) || byChecksum.has(blob.p)) continue;
    const hash = key.subarray(1);
    const hex = hashHex(hash);
    if (corrupt.has(hex)) continue;
    if (blob.p === INLINE_PACK) {
      inline.add(hash, blob.o, blob.l);
      if (inline.count >= limits.inlineCheckEntriesMax) await flush();
      continue;
    }
    const location = { pack: blob.p, offset: blob.o, length: blob.l };
    const why = await store.maintenance().packs.checkLocation(location, hash);
    if (why) {
      window.push({ kind: 'blob-missing', hash: hex, pack: blob.p, offset: blob.o, why, refs: [] });
    } else if (inScanned(blob.p, blob.o)) {
      try {
        await store.maintenance().packs.read(location, hash);
      } catch (error) {
        if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
        window.push({ kind: 'blob-corrupt', pack: blob.p, offset: blob.o, hash: hex, length: blob.l, refs: [] });
      }
    }
  }
  await flush();
}

/** Blob findings in the order of their index entries (B keys: the hash's bytes, as its hex sorts). */
function byHash(a: Finding, b: Finding): number {
  const x = (a as { hash: string }).hash, y = (b as { hash: string }).hash;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The inline bodies (docs/FORMAT.md, "Inline bodies") the index refers to that do not read back
 * from their journal records, found and reported as scrub finds them (blob-missing, with the
 * messages using each). For reconstruct: a rebuild from a snapshot reads none of the records below
 * it, and a journal written from the index leaves a body it could not move in the old journal
 * (quarantine/), so "rebuilt" said nothing of these bodies, each the only copy of its message.
 */
export async function unreadableInlineBodies(store: Store): Promise<Finding[]> {
  const findings: Finding[] = [];
  if (!(await store.maintenance().index.get<number>(meta.inlineUsed))) return findings; // no inline body was ever stored: no scan
  await store.maintenance().runExclusive(async () => {
    await checkBlobLocations(store, findings, new Set(), new Confirmed(), [], new Set(), (blob) => blob.p === INLINE_PACK);
    await attachRefs(store, findings);
    await classifyDropped(store, findings);
  });
  return findings.filter(isDamage);
}

/** murmur3's 32-bit finalizer: spreads (mailbox, uid, modseq) over both digest lanes. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Adds a change entry, its mailbox id read from `key` (an M or a C key: bytes 1 to ID_END). */
function addChange(digest: Digest, key: Buffer, uid: number, modseq: number): void {
  const low = modseq >>> 0;
  const high = Math.floor(modseq / 4294967296);
  const a = mix32(key.readUInt32BE(1) ^ mix32(uid ^ mix32(low)));
  const b = mix32(key.readUInt32BE(5) ^ mix32(key.readUInt32BE(9) ^ mix32(low + 0x9e3779b9) ^ mix32(high ^ uid)));
  digest.addWords(a, b);
}

/** Exact refcount comparison, in hash partitions so memory stays bounded. */
async function localizeRefcounts(store: Store, blobs: number, findings: Finding[]): Promise<void> {
  const partitions = Math.max(1, Math.ceil(blobs / limits.refcountPartitionBlobs));
  for (let part = 0; part < partitions; part++) {
    const counts = new Map<string, { recorded: number; counted: number }>();
    const slot = (hash: Buffer) => {
      const k = hash.toString('hex');
      let c = counts.get(k);
      if (!c) counts.set(k, (c = { recorded: 0, counted: 0 }));
      return c;
    };
    for await (const [key, rawValue] of store.maintenance().index.rawIterator({ gte: Buffer.of(SPACE.blob), lt: Buffer.of(SPACE.blob + 1) })) {
      const hash = Buffer.from(key).subarray(1);
      if (hash[0] % partitions !== part) continue;
      try {
        slot(hash).recorded = decodeValue<BlobRecord>(rawValue, key).r;
      } catch { /* reported as index-value-corrupt */ }
    }
    for await (const [key, rawValue] of store.maintenance().index.rawIterator({ gte: Buffer.of(SPACE.message), lt: Buffer.of(SPACE.message + 1) })) {
      let record: MessageRecord;
      try {
        record = decodeValue<MessageRecord>(rawValue, key);
      } catch { continue; }
      const hash = Buffer.from(record.h);
      if (hash[0] % partitions === part) slot(hash).counted++;
    }
    for (const [hash, c] of counts) if (c.recorded !== c.counted) findings.push({ kind: 'refcount-mismatch', hash, recorded: c.recorded, counted: c.counted });
  }
}

/** Fills in which messages use each damaged blob (one pass over the messages). */
async function attachRefs(store: Store, findings: Finding[]): Promise<void> {
  const wanted = new Map<string, MessageRef[]>();
  for (const f of findings) if (f.kind === 'blob-corrupt' || f.kind === 'blob-missing') wanted.set(f.hash, f.refs);
  if (wanted.size === 0) return;
  const names = new Map<string, string>();
  for await (const [key, rawValue] of store.maintenance().index.rawIterator({ gte: Buffer.of(SPACE.info), lt: Buffer.of(SPACE.info + 1) })) {
    try {
      names.set(Buffer.from(key).subarray(1).toString('hex'), formatMailboxName(decodeValue<MailboxInfo>(rawValue, key).name));
    } catch { /* reported elsewhere */ }
  }
  for await (const [key, rawValue] of store.maintenance().index.rawIterator({ gte: Buffer.of(SPACE.message), lt: prefixEnd(Buffer.of(SPACE.message)) })) {
    let record: MessageRecord;
    try {
      record = decodeValue<MessageRecord>(rawValue, key);
    } catch { continue; }
    const refs = wanted.get(hashHex(record.h));
    if (!refs) continue;
    const { id, uid } = decodeMessageKey(Buffer.from(key));
    refs.push({ mailbox: names.get(id.toString('hex')) ?? id.toString('hex'), uid });
  }
}

const monotonicNow = (): number => monotonicMs();

function makeThrottle(bytesPerSecond: number | undefined, now: () => number) {
  if (!bytesPerSecond || bytesPerSecond <= 0) return async (_n: number) => undefined;
  const start = now();
  let total = 0;
  return async (n: number) => {
    total += n;
    const due = start + (total / bytesPerSecond) * 1000;
    const wait = due - now();
    if (wait > limits.throttleSleepMsMin) await new Promise((r) => setTimeout(r, wait));
  };
}

async function readCursor(store: Store): Promise<Cursor> {
  try {
    const parsed = JSON.parse((await store.fs.readFile(join(store.root, CURSOR_FILE))).toString('utf8')) as Cursor;
    if (Number.isInteger(parsed.pack) && Number.isInteger(parsed.offset) && Number.isInteger(parsed.cycle)) return parsed;
  } catch { /* missing or unreadable: start a new cycle */ }
  return { cycle: 0, pack: 0, offset: 0 };
}

async function writeCursor(store: Store, cursor: Cursor): Promise<void> {
  await writeStoreFile(store, CURSOR_FILE, Buffer.from(JSON.stringify(cursor) + '\n'), 'the scrub cursor');
}
