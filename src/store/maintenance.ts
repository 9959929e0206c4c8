// The maintenance interface: what scrub, repair and reconstruct (src/scrub/) may do to an open
// Store, and nothing more. They read the index (raw included), the packs and the journal; they
// change the store only through the named operations below, each a journaled mutation or an
// index swap made while the Writer is held. Obtain it with `store.maintenance()`.
import { join } from 'node:path';
import { MailstoreError, AssertionFailure } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { IndexDb } from '../index/index-db.js';
import { keys } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import type { PackStore } from '../blob/pack-store.js';
import type { SharedHashPool } from '../hash/shared-pool.js';
import { Journal } from '../journal/journal.js';
import { limits } from '../limits.js';
import { meta } from './apply.js';
import { stateSince, type StateSince } from './state-since.js';
import { snapshotState, swapJournal, writeCheckpointJournal, type StateSnapshot } from './checkpoint.js';
import { LAYOUT, type StoreIdentity } from './identity.js';
import { checkRecordSize, checkUidsLeft, resolveInBatch } from './prepare.js';
import type { BlobRecord, Op } from './records.js';
import type { SnapshotInfo } from './snapshot-file.js';
import { buildIndexAside, chooseRebuildStart, compareIndexes, countSpace, describeLoss, indexCounts, installIndex, newHealth, type Health, type IndexCounts } from './recovery.js';
import type { RebuildComparison } from './types.js';
import { checkArray, checkBytes, checkCount, checkFunction, checkHash, checkObject, checkOptions, ownCopy, parseMailboxName } from './validate.js';
import type { Mutation } from './writer.js';

/** The index as maintenance reads it: committed state, raw records for checks of the bytes. */
export type IndexReader = Pick<IndexDb, 'path' | 'get' | 'getNow' | 'readNow' | 'whenOpen' | 'getMany' | 'entries' | 'rawIterator' | 'settle'>;
/** The packs as maintenance reads them; skipPackNumbersTo keeps a repair off a lost pack's number. */
export type PackAccess = Pick<PackStore, 'listPacks' | 'path' | 'scan' | 'scanBatches' | 'read' | 'checkLocation' | 'skipPackNumbersTo' | 'packBytes' | 'isRemote' | 'remoteChecksumMatches' | 'forgetRemoteCache'>;
/** The journal as scrub reads it. */
export type JournalReader = Pick<Journal, 'read' | 'readRecordsAt' | 'lastSeq' | 'firstSeq'>;

export interface ReconstructOptions {
  check?: boolean;
  onDifference?: (key: Buffer, detail: string) => void;
  /** Called with the comparison before the swap; throwing aborts it (sanity gates). */
  guard?: (result: RebuildComparison) => void;
}

export interface JournalRewrite {
  records: number;
  firstSeq: number;
  lastSeq: number;
  differences: number;
  counts: IndexCounts;
  replaced?: string;
}

export interface BlobToAdopt {
  hash: Buffer;
  size: number;
  date: number;
  pack: number;
  offset: number;
}

export interface StoreMaintenance {
  /** The current index (after a swap, the new one). */
  readonly index: IndexReader;
  readonly packs: PackAccess;
  readonly journal: JournalReader;
  /** The store's one hash worker pool (readMessages leases it too): scrub's pack pass leases it. */
  readonly hashPool: SharedHashPool;
  /** Runs `fn` while no batch commits: a consistent view of the index for cross-checks. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Writes verified good copies of damaged blobs (from a replica or a copy) as new pack records and
   * points the index at them. The damaged records stay where they are, unreferenced.
   */
  relocateBlobs(given: { hash: Buffer; bytes: Buffer }[]): Promise<number>;
  /**
   * Files blobs that are already in the packs (found by a pack scan) as messages of `mailbox`,
   * without rewriting their bytes: reconstruct --from-packs uses it for lost+found.
   */
  adoptBlobs(mailbox: string, given: BlobToAdopt[]): Promise<number>;
  /**
   * Rebuilds the index from the journal into a fresh LevelDB while the writer is held, then swaps
   * it in. With `check`, builds aside and only compares. Returns the keys that differ, what each
   * index holds, and whether the journal replayed whole (no damage, no gap, reaching the index's
   * appliedSeq): when it did not, the index it would replace may hold more than the journal.
   */
  reconstructIndex(options?: ReconstructOptions): Promise<RebuildComparison>;
  /**
   * Writes a new journal from the index (a checkpoint of its whole state, docs/FORMAT.md) and swaps
   * it in, the old journal to quarantine/: when the journal is lost or damaged and the index holds
   * more. Before the swap the new journal is replayed aside and must reproduce this index's
   * messages, mailboxes and ACL entries; that replayed index then replaces this one.
   */
  rewriteJournalFromIndex(): Promise<JournalRewrite>;
  /** Drops the Store's mailbox cache (after the index was changed underneath it, in tests). */
  forgetMailboxes(): void;
  /**
   * The whole metadata state at one journal seq (checkpoint ops), read from a LevelDB snapshot
   * beside live writers: backups take it. Read every op or close it.
   */
  snapshotState(): Promise<StateSnapshot>;
  /**
   * What changed since journal seq `afterSeq`, read from a LevelDB snapshot (state-since.ts): an
   * incremental backup's state. NOT_FOUND or INVALID when the journal cannot tell; close it.
   */
  stateSince(afterSeq: number): Promise<StateSince>;
  /** The index's blob entries (B), counted alone: repair's gate reads nothing else (stats() reads every consumer cursor too). */
  blobCount(): Promise<number>;
  /**
   * Runs `fn` once no snapshot runs and keeps new ones (and their journal retirement) out while it
   * runs: scrub reads the snapshots and the journal as one consistent pair.
   */
  withoutSnapshots<T>(fn: () => Promise<T>): Promise<T>;
}

/** What the maintenance operations need of their Store. */
export interface MaintenanceHost {
  readonly root: string;
  readonly fs: FileSystem;
  readonly identity: StoreIdentity;
  readonly storeId: Buffer;
  readonly db: IndexDb;
  readonly packs: PackStore;
  readonly journal: Journal;
  readonly hashPool: SharedHashPool;
  readonly readOnly: boolean;
  /** Released inline bodies past this grace are forgotten, not moved, before a journal rewrite (compact-inline.ts). */
  readonly releasedGraceMs: number;
  live(): void;
  /** Throws ACCESS on a read-only open. */
  writable(): void;
  /** Runs `fn` once no snapshot runs, keeping new ones out meanwhile (an index or journal swap). */
  withoutSnapshots<T>(fn: () => Promise<T>): Promise<T>;
  /** Hands a mutation to the Writer (live and writable checked). */
  submit<T>(mutation: Mutation<T>): Promise<T>;
  /**
   * Holds the Writer for a mutation that commits nothing (runExclusive): live checked, but not the
   * role or the synchronous-replica gate, which guard writes: a replica's scrub holds its writer too.
   */
  hold<T>(mutation: Mutation<T>): Promise<T>;
  /** Points the Store and its Writer at a newly installed index. */
  useIndex(db: IndexDb): void;
  forgetMailboxes(): void;
}

export class Maintenance implements StoreMaintenance {
  constructor(private readonly host: MaintenanceHost) {}

  get index(): IndexReader {
    return this.host.db;
  }

  get packs(): PackAccess {
    return this.host.packs;
  }

  get journal(): JournalReader {
    return this.host.journal;
  }

  get hashPool(): SharedHashPool {
    return this.host.hashPool;
  }

  forgetMailboxes(): void {
    this.host.forgetMailboxes();
  }

  snapshotState(): Promise<StateSnapshot> {
    this.host.live();
    return snapshotState(this.host.db);
  }

  stateSince(afterSeq: number): Promise<StateSince> {
    this.host.live();
    return stateSince(this.host.db, this.host.journal, afterSeq);
  }

  blobCount(): Promise<number> {
    this.host.live();
    return countSpace(this.host.db, SPACE.blob);
  }

  withoutSnapshots<T>(fn: () => Promise<T>): Promise<T> {
    checkFunction(fn, 'withoutSnapshots argument');
    return this.host.withoutSnapshots(fn);
  }

  async runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    checkFunction(fn, 'runExclusive argument');
    if (this.host.readOnly) { // nothing commits in a read-only store: every read is already consistent
      this.host.live();
      return fn();
    }
    // What fn throws is its caller's (a scrub, a guard refusing a rebuild), not a broken invariant
    // of the writer's, which would halt the store: it is carried out as a result and thrown here.
    const outcome = await this.host.hold<{ value: T } | { error: unknown }>({
      exclusive: true,
      prepare: async () => {
        await this.host.db.settle(); // raw iterators (scrub, compare) must not miss a batch still landing
        try {
          return { ops: [], result: { value: await fn() } };
        } catch (error) {
          return { ops: [], result: { error } };
        }
      },
    });
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }

  async relocateBlobs(given: { hash: Buffer; bytes: Buffer }[]): Promise<number> {
    const items = checkArray(given, 'relocateBlobs items').map((entry) => {
      const item = checkObject(entry, 'relocateBlobs item');
      const hash = checkHash(item.hash);
      const bytes = ownCopy(checkBytes(item.bytes)); // hashed and written as it is now, whatever the caller does next
      if (!hashBytes(bytes).equals(hash)) throw new MailstoreError('INVALID', `relocate of ${hashHex(hash)} with bytes of another hash`, { path: hashHex(hash) });
      return { hash, bytes };
    });
    checkRecordSize(items.map((item) => ({ op: 'blob.relocate', hash: item.hash, pack: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, size: item.bytes.length })), `relocating ${items.length} blobs`);
    return this.host.submit({
      space: { bytes: items.reduce((sum, item) => sum + item.bytes.length, 0), mail: false }, // a repair: held to the floor only
      prepare: async ({ view, packs }) => {
        const ops: Op[] = [];
        for (const item of items) {
          if (!(await view.get<BlobRecord>(keys.blob(item.hash)))) continue;
          const location = packs.reserve(item.hash, item.bytes);
          ops.push({ op: 'blob.relocate', hash: item.hash, pack: location.pack, offset: location.offset, size: item.bytes.length });
        }
        return { ops, result: ops.length };
      },
    });
  }

  async adoptBlobs(mailbox: string, given: BlobToAdopt[]): Promise<number> {
    const components = parseMailboxName(mailbox);
    const items = checkArray(given, 'adoptBlobs items').map((entry) => {
      const item = checkObject(entry, 'adoptBlobs item');
      return {
        hash: checkHash(item.hash), size: checkCount(item.size, 'size'), date: adoptedDate(item.date),
        pack: checkCount(item.pack, 'pack'), offset: checkCount(item.offset, 'offset'),
      };
    });
    return this.host.submit({
      prepare: async ({ view }) => {
        const box = await resolveInBatch(view, components, mailbox);
        checkUidsLeft(box, items.length, mailbox);
        let uid = box.uidNext;
        const ops: Op[] = items.map((item) => ({ op: 'message.add', id: box.id, uid: uid++, hash: item.hash, size: item.size, date: item.date, flags: [], pack: item.pack, offset: item.offset }));
        checkRecordSize(ops, `adopting ${ops.length} blobs`);
        return { ops, result: ops.length };
      },
    });
  }

  async reconstructIndex(options: ReconstructOptions = {}): Promise<RebuildComparison> {
    checkReconstructOptions(options);
    // It builds index.rebuild/ in the store, even with `check`: refused on a read-only open. A check
    // changes nothing else, so a replica takes it (as it takes a check-only scrub); a recovery is a write.
    if (!options.check || this.host.readOnly) this.host.writable();
    return this.host.withoutSnapshots(() => this.runExclusive(async () => {
      const { fs, root, journal, storeId } = this.host;
      const health = newHealth();
      // the snapshot verified while it loads into the index built aside (one read of it)
      const start = await chooseRebuildStart(fs, root, journal, storeId, health, { load: true });
      const built = await buildIndexAside(fs, root, journal, storeId, health, start);
      return this.installUnlessKept(built.path, async () => {
        const appliedSeq = (await this.host.db.get<number>(meta.appliedSeq)) ?? 0;
        const result = await inspectBuilt(built.path, (fresh) => this.compareRebuilt(fresh, built, appliedSeq, health, options.onDifference));
        if (options.check) return { result, install: false };
        options.guard?.(result);
        return { result, install: true };
      });
    }));
  }

  async rewriteJournalFromIndex(): Promise<JournalRewrite> {
    // runExclusive alone runs fn on a read-only open, and this writes a journal and an index.
    this.host.writable();
    // The new journal holds no message bodies: inline ones move into packs first (those in a damaged
    // record cannot, and stay in the old journal, which goes to quarantine; scrub reports them;
    // released ones past the grace are forgotten instead).
    const { moveInlineBodies } = await import('./compact-inline.js');
    await moveInlineBodies({ db: this.host.db, packs: this.host.packs, submit: (m) => this.host.submit(m) }, Infinity, this.host.releasedGraceMs);
    return this.host.withoutSnapshots(() => this.runExclusive(async () => {
      const { fs, root, storeId } = this.host;
      const written = await this.writeCheckpoint();
      const health = newHealth();
      const built = await buildIndexAside(fs, root, await this.openForVerifying(written.path), storeId, health);
      let replaced: string | undefined;
      const verified = await this.installUnlessKept(built.path, async () => {
        const result = await inspectBuilt(built.path, (fresh) => this.verifyCheckpoint(fresh, health));
        await this.host.journal.close();
        replaced = await swapJournal(fs, root);
        return { result, install: true };
      }, written.path);
      await this.host.journal.reload();
      return { records: written.records, firstSeq: written.firstSeq, lastSeq: written.lastSeq, ...verified, replaced };
    }));
  }

  /**
   * Runs `decide` on an index built aside at `builtPath`; installs it when asked to, and otherwise
   * (or on any failure) removes it, with `alsoRemove` (a journal written for it).
   */
  private async installUnlessKept<T>(builtPath: string, decide: () => Promise<{ result: T; install: boolean }>, alsoRemove?: string): Promise<T> {
    let installed = false;
    try {
      const { result, install } = await decide();
      if (install) {
        await this.swapIndex(builtPath);
        installed = true;
      }
      return result;
    } finally {
      if (!installed) {
        await this.host.fs.removeTree(builtPath).catch(() => undefined);
        if (alsoRemove) await this.host.fs.removeTree(alsoRemove).catch(() => undefined);
      }
    }
  }

  /** The keys (meta aside) in which a rebuilt index differs from the live one, and what each holds. */
  private async compareRebuilt(
    fresh: IndexDb, built: { records: number; lastSeq: number; snapshot?: SnapshotInfo }, appliedSeq: number, health: Health, onDifference: ReconstructOptions['onDifference'],
  ): Promise<RebuildComparison> {
    let differences = 0;
    for await (const diff of compareIndexes(this.host.db, fresh, limits.indexPassStretchBytes)) {
      if (diff.key[0] === SPACE.meta) continue;
      differences++;
      onDifference?.(diff.key, diff.detail);
    }
    const before = await indexCounts(this.host.db, limits.indexPassStretchBytes);
    const after = await indexCounts(fresh, limits.indexPassStretchBytes);
    const reaches = built.lastSeq >= appliedSeq;
    return {
      differences, records: built.records, messagesBefore: before.messages, messagesAfter: after.messages, before, after,
      journalIntact: !health.degraded && reaches,
      journalProblems: reaches ? health.findings : [...health.findings, `the journal ends at ${built.lastSeq}, the index has applied ${appliedSeq}`],
      ...(built.snapshot ? { snapshot: { name: built.snapshot.name, seq: built.snapshot.seq } } : {}),
      rebuiltFrom: health.rebuiltFrom ?? 'the whole journal',
    };
  }

  /** A checkpoint journal of the whole index, written beside the live journal (checkpoint.ts). */
  private async writeCheckpoint() {
    const { fs, root, storeId, identity, journal } = this.host;
    const appliedSeq = (await this.host.db.get<number>(meta.appliedSeq)) ?? 0;
    const firstSeq = Math.max(appliedSeq, journal.lastSeq) + 1;
    return writeCheckpointJournal(fs, root, this.host.db, storeId, identity.storeId, appliedSeq, firstSeq, journal.segmentBytesMax);
  }

  private openForVerifying(path: string): Promise<Journal> {
    return Journal.open(this.host.fs, path, this.host.storeId, {
      segmentBytesMax: this.host.journal.segmentBytesMax, recordBytesMax: limits.journalRecordBytesMax,
      checkMounted: async () => { throw new AssertionFailure('a journal being verified is never written'); },
    });
  }

  /** The index replayed from the checkpoint must hold what the live index holds. */
  private async verifyCheckpoint(fresh: IndexDb, health: Health): Promise<{ differences: number; counts: IndexCounts }> {
    let differences = 0;
    // the checkpoint carries no index-own meta; appliedSeq and the clock reference (clock.ts) are the ones a live index has
    for await (const diff of compareIndexes(this.host.db, fresh, limits.indexPassStretchBytes)) if (!diff.key.equals(meta.appliedSeq) && !diff.key.equals(meta.clock)) differences++;
    const counts = await indexCounts(this.host.db, limits.indexPassStretchBytes);
    const after = await indexCounts(fresh, limits.indexPassStretchBytes);
    const lost = describeLoss(counts, after);
    if (health.degraded || lost || after.messages !== counts.messages || after.mailboxes !== counts.mailboxes) {
      throw new AssertionFailure(`the journal written from the index does not reproduce it (${lost || health.findings.slice(0, 3).join('; ')}); nothing was changed`);
    }
    return { differences, counts };
  }

  /** Installs a built index (the old one to quarantine/) and points everything at it. */
  private async swapIndex(builtPath: string): Promise<void> {
    await this.host.db.close();
    await installIndex(this.host.fs, this.host.root, builtPath);
    this.host.useIndex(await IndexDb.open(join(this.host.root, LAYOUT.index), false));
    await this.host.packs.forgetReadHandles();
  }
}

/** Opens an index built aside, hands it to `inspect`, and closes it again. */
async function inspectBuilt<T>(path: string, inspect: (fresh: IndexDb) => Promise<T>): Promise<T> {
  const fresh = await IndexDb.open(path, false);
  try {
    return await inspect(fresh);
  } finally {
    await fresh.close();
  }
}

function checkReconstructOptions(options: ReconstructOptions): void {
  checkOptions(options, ['check', 'onDifference', 'guard'], 'reconstructIndex option');
  if (options.check !== undefined && typeof options.check !== 'boolean') throw new MailstoreError('INVALID', 'reconstructIndex check must be a boolean');
  if (options.onDifference !== undefined) checkFunction(options.onDifference, 'onDifference');
  if (options.guard !== undefined) checkFunction(options.guard, 'guard');
}

/**
 * A found message's date comes from its Date: header, which may say anything: one outside the
 * store's range is filed as unknown (the epoch, as an unreadable header is) rather than refused,
 * since refusing would leave the message out of lost+found.
 */
function adoptedDate(date: unknown): number {
  if (typeof date !== 'number' || !Number.isFinite(date)) throw new MailstoreError('INVALID', `adoptBlobs date must be a number of ms, got ${String(date)}`);
  const ms = Math.trunc(date);
  return ms < limits.internalDateMsMin || ms > limits.internalDateMsMax ? limits.internalDateMsMin : ms;
}
