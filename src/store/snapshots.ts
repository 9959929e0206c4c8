// Snapshots and journal retirement (DESIGN.md, "Background work": the snapshot consumer). A
// snapshot is the index's state at one seq, read beside live writers (checkpoint.ts,
// snapshotState) and written by snapshot-file.ts. After it is durable and verified: the snapshot
// consumer's cursor moves to its seq, snapshots older than the limits.snapshotsKept newest
// verified ones are deleted (a damaged one moved to quarantine/), and the journal segments that the
// oldest kept snapshot and every consumer are past are retired (deleted, or moved to the journal
// archive) — none while fewer than limits.snapshotsKept snapshots verify, so that no snapshot file
// is ever the only copy of the metadata: a damaged newest one still has the one before it, or the
// whole journal, to fall back to. Each step only after the one before is durable, so a crash
// anywhere leaves every record either in the journal or under a verified snapshot (docs/FORMAT.md,
// "Journal retirement").
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import type { IndexDb } from '../index/index-db.js';
import type { Journal } from '../journal/journal.js';
import { limits } from '../limits.js';
import type { ChangeFeed, ConsumerState } from './changes.js';
import type { StoreRoot } from './setting-file.js';
import { JOURNAL_INCOMPLETE_ADVICE, meta } from './apply.js';
import { snapshotEntries } from './checkpoint.js';
import { LAYOUT } from './identity.js';
import { fileTimeStamp, unusedPath } from '../fs/durable.js';
import {
  SNAPSHOT_HEADER_BYTES, decodeSnapshotHeader, listSnapshots, readSnapshotFile, snapshotsDir, writeSnapshotFile, type SnapshotInfo,
} from './snapshot-file.js';
import { monotonicMs } from '../monotonic.js';
import { parseSegmentFileName } from '../journal/journal-format.js';

/** The consumer whose cursor is the newest snapshot's seq. */
export const SNAPSHOT_CONSUMER = 'snapshot';

export interface SnapshotResult {
  name: string;
  seq: number;
  bytes: number;
  records: number;
  /** The snapshot's format (snapshot-file.ts): 1 checkpoint ops, 2 index entries. */
  format: number;
  durationMs: number;
  /** A verified snapshot of this seq was already there: nothing new was written. */
  reused: boolean;
  /** Older snapshots deleted (newer verified ones replace them). */
  removedSnapshots: string[];
  /**
   * Damaged snapshots older than the kept ones: moved to quarantine/ (`quarantined`: where), or
   * deleted once limits.snapshotsQuarantinedMax are there already.
   */
  damagedSnapshots: DamagedSnapshot[];
  retired: RetireResult;
}

export interface DamagedSnapshot {
  name: string;
  why: string;
  quarantined?: string;
}

export interface RetireResult {
  /** The highest seq retirement could pass: min(oldest kept snapshot, slowest consumer, the record before the oldest inline body left). */
  throughSeq: number;
  segments: string[];
  bytes: number;
  /** Where the segments went when the store has a journal archive. */
  archive?: string;
  /** Why nothing was retired although segments qualified (a missing archive directory). */
  skipped?: string;
  /** Why retirement waits: fewer than limits.snapshotsKept snapshots verify (the journal is kept whole). */
  held?: string;
  /**
   * The consumer whose cursor stopped retirement below the older kept snapshot (the slowest), and
   * its lag: reported, so that a journal that keeps growing under a consumer left behind (a webhook
   * whose receiver is gone, a replica gone for good) is never a silent "nothing to retire".
   */
  heldBy?: { consumer: string; seq: number; lagRecords: number };
  /**
   * A file retirement must read is damaged (a consumer cursor, JOURNAL-ARCHIVE: scrub's
   * store-file-damage): nothing was retired until it is mended; `why` names it and what to do.
   * The snapshot itself is durable and verified.
   */
  damagedFile?: { path: string; why: string };
}

/** What the snapshotter needs of its Store. */
export interface SnapshotHost extends StoreRoot {
  storeId: Buffer;
  journal: Journal;
  changes: ChangeFeed;
  db(): IndexDb;
  /**
   * Lowers a retirement bound below the records that still hold inline bodies (moving what it can
   * into packs first: compact-inline.ts); absent: no bound.
   */
  boundRetirement?(throughSeq: number): Promise<number>;
  /** A retirement run after a consumer caught up (consumerReleased) failed: nothing was lost, the next snapshot retires (it is not tried again before). */
  retireFailed?(error: unknown): void;
  /** A replica: the oldest seq its primary's journal still holds (its rounds' `kept`), once known. */
  primaryKept?(): number | undefined;
}

export class Snapshotter {
  private chain: Promise<unknown> = Promise.resolve();
  private busy = 0;
  private paused = 0;
  /** Seq and journal bytes at the newest snapshot (for automatic snapshots). */
  private lastSeq = 0;
  private bytesAtLast = 0;
  private started = false;
  /**
   * No automatic snapshot starts before this monotonicMs() (ms): limits.snapshotAutoPauseFactor
   * times the last one's duration after it. Monotonic: a wall clock stepped back a day held every
   * automatic snapshot (and the journal's retirement) back for that day.
   */
  private autoNotBefore = 0;
  /** The wait after the next failed automatic snapshot (doubling while they fail; limits.snapshotAutoRetryMs again after a success). */
  private autoRetryMs = 0;
  /**
   * The journal was retired below the one snapshot there (before session 30 one snapshot retired
   * it): that file is then the only copy of the metadata before it, so the first change snapshots
   * again rather than waiting for limits.snapshotEveryRecords.
   */
  private lone = false;
  /**
   * The snapshots the last retirement kept, while a consumer's cursor held it below the older of
   * them (a replica that was away, a webhook behind its receiver): once that consumer catches up
   * the journal is retired again on them (consumerReleased), not a snapshotEveryRecords later.
   */
  private heldByConsumer?: SnapshotInfo[];
  private retireQueued = false;

  constructor(private readonly host: SnapshotHost) {}

  /** Reads where the newest snapshot is (its name; not verified) so automatic snapshots count from it. */
  async init(): Promise<void> {
    const listed = await listSnapshots(this.host.fs, this.host.root);
    this.lastSeq = listed[0]?.seq ?? 0;
    this.bytesAtLast = this.host.journal.appendedBytes;
    this.lone = listed.length > 0 && listed.length < limits.snapshotsKept && this.host.journal.firstSeq > 1;
  }

  /** Takes a snapshot and retires what it allows; one at a time (a second call waits for the first). */
  take(): Promise<SnapshotResult> {
    return this.queue(() => this.takeNow());
  }

  /**
   * A compaction's tidy (Store.tidyAfterCompaction): a snapshot, and when what held its retirement
   * back was only the rule of two (fewer than limits.snapshotsKept verify, or the older kept one
   * is below a segment this one covers whole) and no consumer, `advance` commits a record that
   * changes nothing and a second snapshot is taken above it. Without it the history the compaction
   * made dead stayed in the journal until the next snapshot, limits.snapshotEveryRecords later
   * (20k messages, 80 % expunged: 4.2 MB of journal beside 122 MB of live mail). `advance` returns
   * false when this store may not commit (a replica): then one snapshot, as take(). `took` hears
   * of the first before the second starts; the second's result (or failure) is the promise's.
   */
  tidy(advance: () => Promise<boolean>, took: (first: SnapshotResult) => void): Promise<SnapshotResult | undefined> {
    return this.queue(async () => {
      const first = await this.takeNow();
      took(first);
      if (!(await this.secondRetiresMore(first)) || !(await advance())) return undefined;
      return this.takeNow();
    });
  }

  /**
   * A second snapshot would retire a segment `first` left: one wholly at or below `first.seq`
   * (the bound a second generation gives) that is not the newest, with no consumer below it.
   */
  private async secondRetiresMore(first: SnapshotResult): Promise<boolean> {
    if (first.retired.damagedFile) return false; // a second would meet the same damaged file
    const segments = this.host.journal.segmentNames;
    const second = segments.length >= 2 ? parseSegmentFileName(segments[1]) : undefined;
    if (second === undefined || second - 1 > first.seq || first.retired.throughSeq >= second - 1) return false;
    const slowest = await this.host.changes.slowest();
    return slowest === undefined || slowest >= second - 1;
  }

  private queue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn).catch((error: unknown) => {
      // Every step names its own failure where it can; a system error from a step that does not
      // (the cursor file, a directory sync) still leaves as a MailstoreError with its code.
      throw error instanceof MailstoreError ? error : fromSystemError(error, 'taking a snapshot', snapshotsDir(this.host.root));
    });
    this.busy++;
    this.chain = run.catch(() => undefined).finally(() => { this.busy--; });
    return run;
  }

  /**
   * After a commit: starts a snapshot in the background when the journal grew by
   * limits.snapshotEveryRecords or snapshotEveryBytes since the last one, and the last automatic
   * one ended at least limits.snapshotAutoPauseFactor times its own duration ago.
   */
  maybeAuto(lastSeq: number, report: (result?: SnapshotResult, error?: unknown) => void): void {
    if (this.busy > 0 || this.paused > 0 || !this.started || monotonicMs() < this.autoNotBefore) return;
    const grown = lastSeq - this.lastSeq >= limits.snapshotEveryRecords || this.host.journal.appendedBytes - this.bytesAtLast >= limits.snapshotEveryBytes
      || (this.lone && lastSeq > this.lastSeq) || this.primaryRetiredPast();
    if (!grown) return;
    const started = monotonicMs();
    // a snapshot reads the whole index: however large the store grows and however fast mail comes
    // in, the next one waits a multiple of this one's time, so they never run back to back; one
    // that failed waits at least a retry delay that doubles while they keep failing (a full disk
    // fails them in milliseconds, and every commit would start the next)
    const spaced = (failed: boolean) => {
      const pause = (monotonicMs() - started) * limits.snapshotAutoPauseFactor;
      const retry = failed ? this.nextRetryMs() : 0;
      if (!failed) this.autoRetryMs = 0;
      this.autoNotBefore = monotonicMs() + Math.max(pause, retry);
    };
    this.take().then((result) => { spaced(false); report(result); }, (error) => { spaced(true); report(undefined, error); });
  }

  /**
   * A replica whose primary retired its journal past this store's newest snapshot, with a whole
   * segment here below what the primary keeps: a snapshot now lets this journal follow the
   * primary's (retirement here stays below the primary's kept seq and the older kept snapshot).
   * A primary snapshots after every compaction (Store.tidyAfterCompaction) and so retires its
   * journal often; a replica compacts nothing itself, and on the records and bytes rule alone its
   * journal grew to limits.snapshotEveryRecords (100k records) while its primary's held a few
   * hundred KB. At most one snapshot per retirement of the primary: once taken, its seq is at or
   * past the primary's kept seq until the primary retires again.
   */
  private primaryRetiredPast(): boolean {
    const kept = this.host.primaryKept?.();
    if (kept === undefined || kept - 1 <= this.lastSeq) return false;
    const segments = this.host.journal.segmentNames;
    const second = segments.length >= 2 ? parseSegmentFileName(segments[1]) : undefined;
    return second !== undefined && second <= kept;
  }

  private nextRetryMs(): number {
    this.autoRetryMs = this.autoRetryMs === 0 ? limits.snapshotAutoRetryMs : Math.min(this.autoRetryMs * 2, limits.snapshotAutoRetryMsMax);
    return this.autoRetryMs;
  }

  /**
   * A consumer's cursor moved or a consumer went (ChangeFeed): when one held the last retirement
   * back and it (and every other) is now past the journal's first segment, the journal is retired
   * again below the snapshots kept then, in the background, one run at a time with snapshots. The
   * rules are retire()'s: below the older kept snapshot that still verifies, every consumer and
   * the oldest inline body. Without it a replica back from a day away pinned that day's journal
   * until the next snapshot (limits.snapshotEveryRecords later) although it had caught up.
   */
  consumerReleased(): void {
    const kept = this.heldByConsumer;
    if (!kept || this.retireQueued || this.busy > 0 || this.paused > 0 || !this.started) return;
    const segments = this.host.journal.segmentNames;
    const second = segments.length >= 2 ? parseSegmentFileName(segments[1]) : undefined;
    if (second === undefined || kept[kept.length - 1].seq < second - 1) return; // nothing whole below the kept snapshots
    this.retireQueued = true;
    this.queue(async () => {
      this.retireQueued = false;
      if (this.heldByConsumer !== kept) return; // a snapshot ran meanwhile and retired on its own
      const slowest = await this.host.changes.slowest();
      if (slowest !== undefined && slowest < second - 1) return; // still held: a later move tries again
      const listed = new Set((await listSnapshots(this.host.fs, this.host.root)).map((s) => s.name));
      if (!kept.every((s) => listed.has(s.name))) { this.heldByConsumer = undefined; return; } // scrub moved one away: the next snapshot decides
      await this.retire(kept);
    }).catch((error: unknown) => {
      // not again at every cursor move (a replica moves its own at every round, and each failure
      // was a health finding or a daemon warning): the next snapshot retires, or says why not
      if (this.heldByConsumer === kept) this.heldByConsumer = undefined;
      this.host.retireFailed?.(error);
    });
  }

  /** Automatic snapshots may start (after open has finished its own work). */
  start(): void {
    this.started = true;
  }

  /** Waits for a running snapshot and keeps new ones out while `fn` runs (index or journal swaps). */
  pause<T>(fn: () => Promise<T>): Promise<T> {
    this.paused++;
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined).finally(() => { this.paused--; });
    return run;
  }

  /** Resolves once no snapshot runs (close). */
  async idle(): Promise<void> {
    this.started = false;
    await this.chain;
  }

  private async takeNow(): Promise<SnapshotResult> {
    const started = monotonicMs();
    const { fs, root, storeId } = this.host;
    await this.refuseIncompleteImage();
    await removeTemporaries(fs, root);
    const state = await snapshotEntries(this.host.db());
    let info: SnapshotInfo | undefined;
    let reused = false;
    try {
      info = await verifiedAt(fs, root, storeId, state.appliedSeq);
      reused = Boolean(info);
      if (!info) {
        await this.host.checkMounted(snapshotsDir(root)); // umount -l: not into the empty mount point (setting-file.ts)
        const written = await writeSnapshotFile(fs, root, storeId, state.appliedSeq, state.entries);
        // Verified as a reader will read it: "verified" is a property of the bytes on disk.
        info = await readSnapshotFile(fs, written.path, written.name, storeId);
      }
    } finally {
      await state.close();
    }
    this.lastSeq = info.seq;
    this.bytesAtLast = this.host.journal.appendedBytes;
    await this.moveCursor(info.seq);
    const { kept, removed, damaged } = await this.pruneSnapshots(info);
    this.lone &&= kept.length < limits.snapshotsKept;
    const retired = await this.retire(kept);
    return {
      name: info.name, seq: info.seq, bytes: info.bytes, records: info.records, format: info.format, durationMs: Math.round(monotonicMs() - started), reused,
      removedSnapshots: removed, damagedSnapshots: damaged, retired,
    };
  }

  /**
   * An index rebuilt from a damaged or incomplete journal lacks what the missing records did. A
   * snapshot of it would cover them (the gap no longer reported, the store called clean) and let
   * retirement delete the segments that still hold the rest, inline bodies included.
   */
  private async refuseIncompleteImage(): Promise<void> {
    const why = await this.host.db().get<string>(meta.journalIncomplete);
    if (why === undefined) return;
    throw new MailstoreError('REFUSED',
      `no snapshot taken: the index was rebuilt from a damaged or incomplete journal (${why}), so it lacks what the missing records did; ` +
      `a snapshot would hide that. Nothing was written. ${JOURNAL_INCOMPLETE_ADVICE}`,
      { path: snapshotsDir(this.host.root) });
  }

  private async moveCursor(seq: number): Promise<void> {
    const { changes } = this.host;
    const cursor = await changes.register(SNAPSHOT_CONSUMER, Math.min(seq, changes.lastSeq), { replaceDamaged: true });
    if (seq > cursor.seq && seq <= changes.lastSeq) await changes.advance(SNAPSHOT_CONSUMER, seq);
  }

  /**
   * Keeps the limits.snapshotsKept newest snapshots that verify; deletes the verified ones older
   * than those. A damaged one among the newest is passed over and left for scrub (which reports it
   * and moves it to quarantine); a damaged one older than the kept ones is no longer needed by any
   * rebuild and goes to quarantine/ here, as evidence, up to limits.snapshotsQuarantinedMax there.
   */
  private async pruneSnapshots(fresh: SnapshotInfo): Promise<{ kept: SnapshotInfo[]; removed: string[]; damaged: DamagedSnapshot[] }> {
    const { fs, root } = this.host;
    const kept: SnapshotInfo[] = [];
    const removed: string[] = [];
    const damaged: DamagedSnapshot[] = [];
    for (const entry of await listSnapshots(fs, root)) {
      const verified = entry.name === fresh.name ? fresh : await this.verify(entry);
      if (kept.length < limits.snapshotsKept) {
        if ('seq' in verified) kept.push(verified);
        continue;
      }
      if ('why' in verified) {
        damaged.push(await this.setAsideDamaged(entry, verified.why));
        continue;
      }
      await fs.unlink(entry.path).catch((e) => { throw fromSystemError(e, 'removing an old snapshot', entry.path); });
      await fs.syncDir(snapshotsDir(root));
      removed.push(entry.name);
    }
    return { kept, removed, damaged };
  }

  /** The snapshot verified whole, or why it is damaged (CORRUPT); any other failure is thrown. */
  private async verify(entry: { name: string; path: string }): Promise<SnapshotInfo | { why: string }> {
    try {
      return await readSnapshotFile(this.host.fs, entry.path, entry.name, this.host.storeId);
    } catch (error) {
      if (error instanceof MailstoreError && error.code === 'CORRUPT') return { why: error.message };
      throw error;
    }
  }

  /**
   * A damaged snapshot older than the kept ones: to quarantine/ while fewer than
   * limits.snapshotsQuarantinedMax snapshots are there, else deleted (the evidence of the first
   * ones is kept; quarantine/ is never emptied automatically, so it must not grow per snapshot).
   */
  private async setAsideDamaged(entry: { name: string; path: string }, why: string): Promise<DamagedSnapshot> {
    const { fs, root } = this.host;
    if ((await quarantinedSnapshotCount(fs, root)) < limits.snapshotsQuarantinedMax) {
      return { name: entry.name, why, quarantined: await quarantineSnapshot(fs, root, entry.name) };
    }
    await fs.unlink(entry.path).catch((e) => { throw fromSystemError(e, 'removing an old damaged snapshot', entry.path); });
    await fs.syncDir(snapshotsDir(root));
    return { name: entry.name, why };
  }

  /**
   * Retires the journal below the oldest of the limits.snapshotsKept kept snapshots, and nothing
   * while fewer verify (so that a damaged newest snapshot still has the one before it, or the
   * whole journal, plus the journal after it to fall back to), and below every consumer's cursor.
   */
  private async retire(kept: SnapshotInfo[]): Promise<RetireResult> {
    const { fs, root, journal } = this.host;
    this.heldByConsumer = undefined;
    if (kept.length < limits.snapshotsKept) {
      const held = `${kept.length} verified snapshot${kept.length === 1 ? '' : 's'} of the ${limits.snapshotsKept} kept: the journal is retired only below the older of ${limits.snapshotsKept}, so it is kept whole until then`;
      return { throughSeq: Math.max(0, journal.firstSeq - 1), segments: [], bytes: 0, held };
    }
    const read = await this.retirementFiles();
    if ('damagedFile' in read) return { throughSeq: Math.max(0, journal.firstSeq - 1), segments: [], bytes: 0, damagedFile: read.damagedFile };
    const { slowest, archive } = read;
    const olderKept = kept[kept.length - 1].seq;
    this.heldByConsumer = slowest !== undefined && slowest.seq < olderKept ? kept : undefined;
    const heldBy = this.heldByConsumer && { consumer: slowest!.name, seq: slowest!.seq, lagRecords: slowest!.lagRecords };
    let throughSeq = Math.min(olderKept, slowest?.seq ?? Infinity);
    if (this.host.boundRetirement) throughSeq = await this.host.boundRetirement(throughSeq);
    if (archive) {
      const { journalArchiveProblem, markJournalArchive } = await import('./journal-archive.js');
      const problem = await journalArchiveProblem(fs, root, archive, this.host.storeId);
      if (problem) return { throughSeq, segments: [], bytes: 0, archive, skipped: `${problem.why}: nothing was retired; ${problem.todo}`, ...(heldBy ? { heldBy } : {}) };
      await markJournalArchive(fs, archive, this.host.storeId); // one an older mailstore set holds segments, not yet the marker
    }
    const done = await journal.retireThrough(throughSeq, archive);
    return { throughSeq, ...done, ...(archive ? { archive } : {}), ...(heldBy ? { heldBy } : {}) };
  }

  /**
   * The slowest consumer's cursor and the journal archive, or the damaged file among them: the
   * snapshot before is durable and verified, so that is a result (scrub's store-file-damage), not
   * the snapshot's failure (before session 48 it failed CORRUPT, exit 6, the snapshot written).
   */
  private async retirementFiles(): Promise<{ slowest: ConsumerState | undefined; archive: string | undefined } | { damagedFile: { path: string; why: string } }> {
    try {
      const slowest = (await this.host.changes.consumers()).reduce<ConsumerState | undefined>((min, c) => (min === undefined || c.seq < min.seq ? c : min), undefined);
      // loaded here, not with the store: an append never needs it (test/cli/start-up.test.ts)
      return { slowest, archive: await (await import('./journal-archive.js')).readJournalArchive(this.host.fs, this.host.root) };
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT' || error.path === undefined) throw error;
      return { damagedFile: { path: error.path, why: error.message } };
    }
  }
}

/** The verified snapshot of exactly `seq`, if one is there (a damaged one is overwritten by the new). */
async function verifiedAt(fs: FileSystem, root: string, storeId: Buffer, seq: number): Promise<SnapshotInfo | undefined> {
  const entry = (await listSnapshots(fs, root)).find((s) => s.seq === seq);
  if (!entry) return undefined;
  return readSnapshotFile(fs, entry.path, entry.name, storeId).catch(() => undefined);
}

/** Temp files of snapshots a crash interrupted: derived data this code made. */
async function removeTemporaries(fs: FileSystem, root: string): Promise<void> {
  const dir = snapshotsDir(root);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) if (name.startsWith('.') && name.endsWith('.tmp')) await fs.unlink(join(dir, name)).catch(() => undefined);
}

/**
 * The newest snapshot that verifies and that the journal continues (its seq + 1 at or after the
 * journal's first seq), for a rebuild; each damaged one passed on the way is in `damaged`.
 */
export async function newestUsableSnapshot(fs: FileSystem, root: string, storeId: Buffer, journalFirstSeq: number): Promise<{ snapshot?: SnapshotInfo; damaged: { name: string; why: string }[] }> {
  const damaged: { name: string; why: string }[] = [];
  for (const entry of await listSnapshots(fs, root)) {
    if (entry.seq + 1 < journalFirstSeq) continue; // the journal after it was retired: it cannot be continued
    try {
      return { snapshot: await readSnapshotFile(fs, entry.path, entry.name, storeId), damaged };
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
      damaged.push({ name: entry.name, why: error.message });
    }
  }
  return { damaged };
}

/**
 * Whether a snapshot with a valid header of this store covers every seq below `firstSeq` (open's
 * cheap check of a retired journal's start: scrub verifies the whole file).
 */
export async function snapshotCovers(fs: FileSystem, root: string, storeId: Buffer, firstSeq: number): Promise<boolean> {
  for (const entry of await listSnapshots(fs, root)) {
    if (entry.seq + 1 < firstSeq) return false;
    if (await snapshotHeaderHolds(fs, entry, storeId)) return true;
  }
  return false;
}

/**
 * The seq of the newest snapshot whose header checks (this store, the seq its name says), or 0:
 * durable proof, outside the journal and the index, that records up to it were acknowledged.
 */
export async function newestSnapshotSeq(fs: FileSystem, root: string, storeId: Buffer): Promise<number> {
  for (const entry of await listSnapshots(fs, root)) if (await snapshotHeaderHolds(fs, entry, storeId)) return entry.seq;
  return 0;
}

async function snapshotHeaderHolds(fs: FileSystem, entry: { path: string; seq: number }, storeId: Buffer): Promise<boolean> {
  const handle = await fs.open(entry.path, 'read').catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
    await handle.read(head, 0, head.length, 0);
    const header = decodeSnapshotHeader(head, storeId);
    return 'seq' in header && header.seq === entry.seq;
  } finally {
    await handle.close();
  }
}

/** How many snapshots quarantine/ holds (moved there by scrub --repair or by pruning). */
async function quarantinedSnapshotCount(fs: FileSystem, root: string): Promise<number> {
  const names = await fs.readdir(join(root, LAYOUT.quarantine)).catch(() => [] as string[]);
  return names.filter((name) => name.startsWith('snapshot-')).length;
}

/** Moves a damaged snapshot to quarantine/ (never deleted); returns where it went. */
export async function quarantineSnapshot(fs: FileSystem, root: string, name: string): Promise<string> {
  const from = join(snapshotsDir(root), name);
  const target = await unusedPath(fs, join(root, LAYOUT.quarantine, `snapshot-${name}-${fileTimeStamp()}`));
  await fs.rename(from, target).catch((e) => { throw fromSystemError(e, 'moving a damaged snapshot to quarantine', from); });
  await fs.syncDir(join(root, LAYOUT.quarantine));
  await fs.syncDir(snapshotsDir(root));
  return target;
}
