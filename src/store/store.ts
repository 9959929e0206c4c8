// The public library: a mail server mounts a Store as its message spool. Public methods check and
// normalise their arguments, then hand a Mutation to the group-commit Writer (writes) or read the
// index directly (reads, which see only committed state).
//
// Where things are: the API types in types.ts; opening and recovery wiring in open.ts; the read
// pipeline in reader.ts; the changes (mailboxes, messages, flags, ACLs) here; the hooks scrub,
// repair and reconstruct use in maintenance.ts (`store.maintenance()`); those of the day-2
// modules (users, quotas, mailbox lists) in administration.ts (`store.administration()`).
//
// Where the next layers plug in: every change of the store is a `Mutation` (writer.ts) passing
// through `Store.submit` into the Writer, one journal record each; after each group commit the
// Writer's onCommit hook fires (`StoreOptions.onCommit`, wired in the constructor below) with the
// batch's seq range, and `store.changes` (changes.ts) hands out the committed records from any seq
// and keeps the consumers' durable cursors: a change-log consumer, the daemon, events or replication
// read there; the mutations here need not change for them.
import { CopyPool } from './copy-pool.js';
import { join } from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Readable } from 'node:stream';
import { MailstoreError, assert, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { hashBytes, hashHex, hashReady } from '../hash/blake3.js';
import { IndexDb } from '../index/index-db.js';
import { keys, decodeNameKey, decodeRightsKey } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { INLINE_PACK, type BlobLocation, type PackBatch, type PackStore } from '../blob/pack-store.js';
import type { Journal, JournalRecord } from '../journal/journal.js';
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import { SEEN, meta, modseqAt, uidValidityAfter } from './apply.js';
import type { StoreAdministration } from './administration.js';
import { finishMailboxDeletes, type DeleteHost } from './delete-chunks.js';
import { ChangeFeed } from './changes.js';
import { StoreClock } from './clock.js';
import type { ClockReport } from './clock-report.js';
import { LAYOUT, initStore, realRoot, type StoreIdentity } from './identity.js';
import type { TierFlushResult, TierHost, TierStatus } from './tier.js';
import { TIER_SETTINGS_FILE, noObjectStore } from './tier-names.js';
import type { BackgroundTierMover } from './tier-mover.js';
import type { TierPolicy } from './tier-policy.js';
import type { RemotePacks } from '../objstore/remote-packs.js';
import { Maintenance, type MaintenanceHost, type StoreMaintenance } from './maintenance.js';
import { closeOpened, openStoreParts, type StoreParts } from './open.js';
import { checkInlineBodyBytes, readInlineBodyBytes, writeInlineBodyBytes } from './inline-setting.js';
import { Snapshotter, type SnapshotResult } from './snapshots.js';
import { listSnapshots } from './snapshot-file.js';
import { checkMetaUnchanged, checkRecordSize, checkUidsLeft, inUidParts, mailboxInBatchNow, messagesOfPart, resolveInBatch } from './prepare.js';
import { StoreReader, type FetchAtOptions, type ReaderHost } from './reader.js';
import { SharedHashPool } from '../hash/shared-pool.js';
import { type BlobRecord, type MailboxInfo, type MessageAddExtras, type MessageRecord, type Op, type RightsRecord } from './records.js';
import type { Health } from './recovery.js';
import {
  ALL_RIGHTS, mailboxIdBytes, checkArray, checkBytes, checkComponents, checkDeletable, checkModseq, checkObject, checkOptions, checkString, normalizeAcl, normalizeOwner,
  changedFlags, formatMailboxName, listPatternMatcher, normalizeDate, normalizeFlags, normalizeMessageExtras, normalizeIdentifier, normalizePattern, normalizeRights, normalizeUids,
  ownCopy, parseMailboxName, patternPrefixComponents, renamedMailboxName, checkByteBound, type DeleteOptions,
} from './validate.js';
import { checkQuota, checkRenameQuota, moveQuotaRoots } from './quota.js';
import { transfer, undoInterruptedCopies, type TransferHost, type TransferResult } from './transfer.js';
import { movedName, movedOp, movedUsers, orMoved, type MovedMarker, type MovedUser } from './moved.js';
import {
  uuidString, type AppendOptions, type AppendResult, type Changes, type ChangesSincePart, type FlagChange, type MailboxStatus, type MailboxSummary, type MessageInfo,
  type MessageWithBody, type ReadMessagesOptions, type StoreOptions, type StoreStats, type JournalFlushChoice,
} from './types.js';
import type { DeleteUserResult, RenameUserResult } from './users.js';
import type { CompactHost, CompactOptions, CompactResult } from './compact.js';
import type { BackgroundCompactor } from './compactor.js';
import { journalInlineRuns } from './inline-bodies.js';
import { PACK_HEADER_BYTES, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import type { AppendBatchMeta, MailStore } from './api.js';
import { FreeSpace, type FreeSpaceState, type SpaceNeed } from './free-space.js';
import { checkReserveBytes, readReserveBytes, writeReserveBytes } from './reserve-setting.js';
import { Writer, type CommitChain, type Mutation, type PrepareContext, type Prepared, type ReplicatedBatch } from './writer.js';
import { finishResync, stageResync, type StagedResync } from './resync.js';
import { readOnlyReplicaError, readRole, unreplicatedError, writeRole, type ReplicationRole } from './role.js';


/**
 * What replication (src/replication) needs of a Store beyond its public API: the raw packs and
 * journal, the replicated-batch commit, the synchronous-replica gate and the role.
 */
export interface StoreReplication {
  readonly packs: PackStore;
  readonly journal: Journal;
  readonly db: IndexDb;
  /**
   * The newest seq whose whole batch committed (pack and journal synced, index handed over):
   * journal.lastSeq moves as soon as the journal is synced, before the pack sync is known to have
   * succeeded, so a replica is never sent more than this.
   */
  committedSeq(): number;
  role(): ReplicationRole | undefined;
  /** Writes REPLICATION and applies it at once (a replica refuses client writes from then on). */
  setRole(role: ReplicationRole): Promise<void>;
  applyReplicated(batch: ReplicatedBatch): Promise<void>;
  /**
   * Replicated pack bytes written ahead of their round: held to the free-space reserve as a
   * delivery's (NO_SPACE), or to the floor when they are `room`: a compaction's new pack, which
   * the primary wrote down to its floor (held to the reserve, a replica there could never take the
   * compaction that frees its space, and stopped for good).
   */
  admitPackBytes(bytes: number, room?: boolean): Promise<void>;
  /** admit: before a client change is queued (may refuse); afterDurable: WriterHooks.afterDurable. */
  setGate(gate: ReplicationGate | undefined): void;
  /**
   * A replica's resync (resync.ts): stages the primary's snapshot (already written to
   * resync/snapshot) as a journal and an index, then swaps them in while nothing commits.
   */
  installResync(staged: StagedResync): Promise<void>;
  /** Commits one meta.set record (the epoch), whatever the role; returns its seq. */
  commitMeta(key: string, value: unknown): Promise<number>;
  /** Commits ops whatever the role and with no replica (a promotion's, before the store takes writes). */
  commitAnyRole<T>(prepare: Mutation<T>['prepare']): Promise<T>;
  /** Finishes the mailbox deletes and undoes the copies in parts the journal left half-done (open does for a writable role; a promoted replica inherits its old primary's). */
  finishInterrupted(): Promise<void>;
  /** Commits ops prepared by the caller against the batch's view (XFER's mailbox import). */
  commitOps<T>(prepare: Mutation<T>['prepare'], space?: SpaceNeed): Promise<T>;
  /**
   * A write fence (XFER's switch): every change submitted from outside `work` waits until it is
   * done; changes already queued commit first. Keep `work` short.
   */
  fenced<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Moves the inline bodies of records at or below `throughSeq` into packs (compact-inline.ts), by
   * records after it that ship with the pack bytes like any append: what a resync's snapshot covers
   * must not be left in journal records the replica never gets.
   */
  moveInlineBodies(throughSeq: number): Promise<void>;
  /**
   * A replica: the oldest seq its primary's journal still holds (sent with its rounds). Its own
   * retirement stays below it: until known, nothing is retired.
   */
  setPrimaryKept(seq: number): void;
}

export interface ReplicationGate {
  admit(): void;
  afterDurable(lastSeq: number): Promise<void> | undefined;
  /** WriterHooks.onWritten: a batch about to be written and synced here (synchronous replicas take it as tentative meanwhile). */
  written?(records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch): void;
  /** Whether `written` has anyone to tell now (absent: always); when not, a commit skips it (writer.ts wantsWritten). */
  listening?(): boolean;
  /** WriterHooks.onWriteFailed. */
  writeFailed?(): void;
  /** After every committed batch (its tentative rounds may be committed on the replicas). */
  committed?(lastSeq: number): void;
}

/** Marks the work running inside a write fence (StoreReplication.fenced): its changes pass. */
const fenceScope = new AsyncLocalStorage<boolean>();

/** The meta key a compaction's tidy sets to null (never set: the record changes nothing, Store.commitNothing). */
const TIDY_META_NAME = 'snapshot/tidy';

/** The keys of AppendOptions (an unknown one is refused). */
const APPEND_OPTIONS = ['flags', 'internalDate', 'envelopeFrom', 'dateZoneMinutes', 'recent'];

/** appendBatch's largest-record bound's mailbox id: only its length counts. */
const LARGEST_ID = Buffer.alloc(16);

/** One message of appendBatch, checked and hashed. */
interface PreparedAppend {
  bytes: Buffer;
  hash: Buffer;
  flags: string[];
  date: number;
  extras: MessageAddExtras;
  inline: boolean;
  /** bytes is recycled memory (CopyPool), given back when the append settles. */
  recycled: boolean;
}

/** Checked before any blob is reserved: the largest uid, pack and offset a message's op could carry. */
function largestAdd(item: PreparedAppend): Op {
  return {
    op: 'message.add', id: LARGEST_ID, uid: 0xffffffff, hash: item.hash, size: item.bytes.length, date: item.date, flags: item.flags,
    pack: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, fresh: true, ...item.extras,
  };
}

/** A message's op (its fields in this order: the record's bytes follow it). */
function messageAdd(id: Buffer, uid: number, item: PreparedAppend, location: { pack: number; offset: number }, deduplicated: boolean): Op {
  const op: Op = { op: 'message.add', id, uid, hash: item.hash, size: item.bytes.length, date: item.date, flags: item.flags, pack: location.pack, offset: location.offset, ...item.extras };
  if (!deduplicated) op.fresh = true;
  if (!deduplicated && location.pack === INLINE_PACK) op.body = item.bytes;
  return op;
}

export type {
  StoreOptions, AppendOptions, AppendResult, MessageInfo, ReadMessagesOptions, MessageWithBody, MailboxStatus, MailboxSummary,
  FlagChange, StoreStats, RebuildComparison, JournalFlushChoice, Changes,
} from './types.js';
export type { StoreMaintenance } from './maintenance.js';
export type { CompactOptions, CompactResult } from './compact.js';
export type { StoreAdministration } from './administration.js';
export { openNotices } from './recovery.js';
export { uuidString };

/**
 * A mailbox id read from the index: 16 bytes. Anything else is damage (a flipped bit in a LevelDB
 * key can move an entry into another key space, where its checksummed value has another shape):
 * CORRUPT, not a TypeError (found by the damage explorer).
 */
function indexId(value: unknown, key: Buffer): Uint8Array {
  if (value instanceof Uint8Array && value.length === 16) return value;
  throw new MailstoreError('CORRUPT', `the index entry ${key.toString('hex')} does not hold a mailbox id; run 'mailstore scrub --repair' to rebuild the index from the journal`);
}

export class Store implements MailStore {
  readonly root: string;
  readonly fs: FileSystem;
  readonly identity: StoreIdentity;
  readonly storeId: Buffer;
  readonly health: Health;
  /** Opened with `readOnly`: nothing is written; every change throws ACCESS. */
  readonly readOnly: boolean;
  /** UNMOUNTED when the root left the file system this open found (every file written under it asks: setting-file.ts). */
  readonly checkMounted: (path: string) => Promise<void>;
  private db: IndexDb;
  private readonly packs: PackStore;
  private readonly journal: Journal;
  private readonly release: () => Promise<void>;
  private readonly writer: Writer;
  private readonly reader: StoreReader;
  /** The one hash worker pool of this store: readMessages and scrub lease it (src/hash/shared-pool.ts). */
  private readonly hashPool = new SharedHashPool();
  private readonly maintenanceHooks: Maintenance;
  private readonly administrationHooks: StoreAdministration;
  private readonly messageBytesMax: number;
  /** Messages up to this size go inside their journal record (0: never; docs/FORMAT.md "Inline bodies"). */
  private inlineBodyBytesMax: number;
  /** The free-space reserve every change is admitted by (free-space.ts). */
  private readonly space: FreeSpace;
  private readonly clock: StoreClock;
  /** Recycled memory for the copies of callers' large messages (copy-pool.ts). */
  private readonly copies = new CopyPool();
  private closed = false;
  private closing?: Promise<void>;
  private partsStopping = false;
  private readonly mailboxCache = new Map<string, MailboxInfo>();
  private cacheGeneration = 0;
  private failure?: MailstoreError;
  /** The bucket sealed packs move to, when the store has one (tier.ts). */
  private remote?: RemotePacks;
  private replicationRole?: ReplicationRole;
  private gate?: ReplicationGate;
  /** A replica: the oldest seq its primary's journal holds (StoreReplication.setPrimaryKept). */
  private primaryKeptSeq?: number;
  /** Opened with no primary running on a store whose synchronous replicas refuse unprotected writes (role.ts). */
  private unreplicatedRefused = false;
  /** StoreReplication.committedSeq. */
  private committed: number;
  /** A resync's swap is under way (installResync): the index is being replaced. */
  private swapping = false;
  /** A write fence in force: changes from outside it wait for this. */
  private fence?: Promise<void>;
  /** The change log: committed journal records from a seq on, and the consumers' cursors (changes.ts). */
  readonly changes: ChangeFeed;
  private readonly packBytesMax: number;
  /** Deletes whose intent record committed and whose chunks are still running (close waits for them). */
  private readonly deletes = new Set<Promise<void>>();
  /** Mailboxes (name components joined by NUL) a copy or move in parts adds to: other additions wait (holdAdditions). */
  private readonly additions = new Map<string, Promise<void>>();
  /** The compaction running now (one at a time). */
  private compaction?: Promise<unknown>;
  private compactor?: BackgroundCompactor;
  /**
   * How long released inline bodies are kept before the move out of the journal (a retirement, a
   * resync, a journal rewrite) forgets them instead of moving them: the background compactor's
   * grace (StoreOptions.autoCompact), limits.compactGraceMs without one (compact-inline.ts).
   */
  private readonly releasedGraceMs: number;
  /** Moves sealed packs to the bucket under the store's policy (tier-mover.ts, StoreOptions.autoTier). */
  private tierMover?: BackgroundTierMover;
  /** Snapshots of the index and journal retirement (snapshots.ts). */
  private readonly snapshots: Snapshotter;
  /** Automatic snapshots are on (StoreOptions.autoSnapshot), and where their outcome goes. */
  private readonly autoSnapshot: boolean;
  private readonly reportSnapshot: (result?: SnapshotResult, error?: unknown) => void;
  /** Background work that is neither a compaction round nor a snapshot failed: onBackgroundError, else a health finding. */
  private readonly reportBackground: (error: unknown, what: string) => void;
  /** When index/LOG and MANIFEST were last measured (maybeRollIndexLog). */
  private indexLogCheckedMs = monotonicMs();

  private constructor(parts: StoreParts, options: StoreOptions) {
    ({ root: this.root, fs: this.fs, identity: this.identity, storeId: this.storeId, health: this.health, readOnly: this.readOnly, checkMounted: this.checkMounted } = parts);
    ({ db: this.db, packs: this.packs, journal: this.journal, release: this.release } = parts);
    // a message must read back (NaN once meant no limit at all)
    this.messageBytesMax = checkByteBound(options.messageBytesMax ?? limits.messageBytesMax, 'messageBytesMax', 0, limits.messageBytesSettingMax);
    this.inlineBodyBytesMax = checkInlineBodyBytes(options.inlineBodyBytesMax ?? limits.inlineBodyBytesDefault, 'inlineBodyBytesMax');
    this.space = new FreeSpace(this.fs, this.root, options.freeSpaceReserveBytes === undefined ? undefined : checkReserveBytes(options.freeSpaceReserveBytes, 'freeSpaceReserveBytes'), options.onFreeSpace);
    this.journal.keepFreeBytes = () => this.space.keepFreeBytes();
    this.journal.freeBytesNow = () => this.space.freeBytesNow();
    this.clock = new StoreClock(() => this.db, Date.parse(this.identity.created), this.readOnly);
    this.committed = this.journal.lastSeq;
    this.changes = new ChangeFeed({
      fs: this.fs, root: this.root, checkMounted: this.checkMounted, journal: this.journal, committedSeq: () => this.committed, readOnly: this.readOnly,
      released: () => this.snapshots.consumerReleased(),
    });
    this.packBytesMax = options.packBytesMax ?? limits.packBytesMax;
    this.releasedGraceMs = (typeof options.autoCompact === 'object' ? options.autoCompact.graceMs : undefined) ?? limits.compactGraceMs;
    this.snapshots = new Snapshotter({
      fs: this.fs, root: this.root, checkMounted: this.checkMounted, storeId: this.storeId, journal: this.journal, changes: this.changes, db: () => this.db,
      boundRetirement: (throughSeq) => this.boundRetirement(throughSeq),
      primaryKept: () => (this.replicationRole?.role === 'replica' ? this.primaryKeptSeq : undefined),
      retireFailed: (error) => this.reportBackground(error, 'retiring the journal after a consumer caught up failed (no record was lost; the next snapshot retires it, or says why not)'),
    });
    const autoSnapshot = !this.readOnly && options.autoSnapshot !== false;
    this.autoSnapshot = autoSnapshot;
    this.reportSnapshot = (result, error) => this.reportAutoSnapshot(options, result, error);
    this.reportBackground = (error, what) => {
      if (options.onBackgroundError) options.onBackgroundError(error);
      else if (this.health.findings.length < limits.healthFindingsMax) this.health.findings.push(`${what}: ${(error as Error).message}`);
    };
    // The plug-in point for the next layers: onCommit fires after every group commit.
    this.writer = new Writer(this.db, this.packs, this.journal, {
      onStop: (error) => {
        this.failure = error;
        options.onStop?.(error);
      },
      onCommit: (first, last, mutations, indexKeys, writeSeconds) => {
        this.committed = last;
        this.forgetMailboxes();
        this.changes.notify(last);
        this.gate?.committed?.(last);
        this.tierMover?.noteCommit();
        this.clock.committed();
        if (autoSnapshot) this.snapshots.maybeAuto(last, (result, error) => this.reportAutoSnapshot(options, result, error));
        this.maybeRollIndexLog();
        options.onCommit?.(first, last, mutations, indexKeys, writeSeconds);
      },
      afterDurable: (lastSeq) => this.gate?.afterDurable(lastSeq),
      onWritten: (records, opsBySeq, packBatch) => this.gate?.written?.(records, opsBySeq, packBatch),
      wantsWritten: () => this.gate?.written !== undefined && (this.gate.listening?.() ?? true),
      onWriteFailed: () => this.gate?.writeFailed?.(),
      space: this.space,
    });
    // a read whose pack compaction retired meanwhile finds the blob's new copy here
    this.packs.setLocator(async (hash) => {
      const blob = await this.db.get<BlobRecord>(keys.blob(hash));
      return blob && { pack: blob.p, offset: blob.o, length: blob.l };
    });
    this.reader = new StoreReader(this.readerHost(), this.hashPool, options.readHashThreads);
    this.maintenanceHooks = new Maintenance(this.maintenanceHost());
    this.administrationHooks = this.administrationInterface();
  }

  /** Creates a store in an empty or missing directory. */
  static async init(root: string, options: StoreOptions = {}): Promise<Store> {
    await initStore(options.fs ?? nodeFileSystem, root);
    return Store.open(root, options);
  }

  /**
   * Opens the store (open.ts: verify, lock, recover the index; or a read-only open), then finishes
   * deletes that a crash interrupted.
   */
  static async open(root: string, options: StoreOptions = {}): Promise<Store> {
    await hashReady; // settled already, except in the CLI bundle without the native binding (blake3-core.ts)
    root = await realRoot(options.fs ?? nodeFileSystem, root);
    const parts = await openStoreParts(root, options);
    try {
      // the store's own inline threshold when the caller names none (inline-setting.ts)
      const setting = options.inlineBodyBytesMax === undefined ? await readInlineBodyBytes(parts.fs, root) : undefined;
      const reserve = options.freeSpaceReserveBytes === undefined ? await readReserveBytes(parts.fs, root) : undefined;
      const store = new Store(parts, {
        ...options,
        ...(setting === undefined ? {} : { inlineBodyBytesMax: setting }),
        ...(reserve === undefined ? {} : { freeSpaceReserveBytes: reserve }),
      });
      if (!parts.readOnly) await store.space.start(); // before open's own maintenance writes
      await store.clock.start();
      store.replicationRole = await readRole(parts.fs, root);
      // tier.ts and its S3 client load only for a store that has an object store (issue 16: start-up)
      const tier = (await parts.fs.statIfExists(join(root, TIER_SETTINGS_FILE))) ? await import('./tier.js') : undefined;
      // before the tier removes any local copy: a replica keeps its own packs (docs/OBJECT-STORAGE.md, "Replicas")
      if (tier && store.replicationRole?.role === 'replica' && (await tier.readTierSettings(parts.fs, root))) {
        throw new MailstoreError('REFUSED', `${root} is a replica and has an object store (${join(root, TIER_SETTINGS_FILE)}): a replica keeps its own copy of every pack locally, it does not share or move packs (docs/OBJECT-STORAGE.md, "Replicas"); remove that file. Nothing was changed.`, { path: join(root, TIER_SETTINGS_FILE) });
      }
      store.remote = await tier?.attachTier(store.tierHost());
      // A replica's interrupted delete is finished by its primary, whose records it receives.
      if (!parts.readOnly && store.writableRole()) {
        await store.finishInterrupted();
        await store.finishInterruptedCompaction();
        if (options.autoCompact) await store.startCompactor(options); // a primary's compaction reaches its replicas (src/replication/pack-removal.ts)
        if (options.autoTier && store.remote) await store.startTierMover(options);
      }
      await store.snapshots.init();
      store.snapshots.start();
      // after open's own maintenance writes (the daemon sets its gate only once the store is open)
      const role = store.replicationRole;
      store.unreplicatedRefused = role?.role === 'primary' && (role.syncReplicas ?? 0) > 0 && role.syncFallback !== 'async';
      return store;
    } catch (error) {
      await closeOpened(parts, parts.release);
      throw error instanceof MailstoreError ? error : fromSystemError(error, 'opening store', root);
    }
  }

  /**
   * Closes the store once every change under way is done. A second call waits for the first: it
   * returned at once, and a reopen right after it found the store still open (LOCKED).
   */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  /** Calls in parts (expunge, setFlags, copy, move) end at their next part boundary, UNAVAILABLE saying how far they got (a daemon's stop; close). */
  stopCallsInParts(): void {
    this.partsStopping = true;
  }

  private async closeNow(): Promise<void> {
    this.stopCallsInParts();
    this.closed = true;
    await this.tierMover?.stop();
    await this.compactor?.stop();
    await this.compaction?.catch(() => undefined);
    while (this.deletes.size > 0) await Promise.allSettled([...this.deletes]);
    await this.writer.drain();
    await this.snapshots.idle(); // a background snapshot reads the index and retires segments
    await this.writer.drain(); // what that snapshot committed (its move of inline bodies)
    this.writer.fail(new MailstoreError('CLOSED', 'the store is closed'));
    this.changes.wakeAll();
    await this.hashPool.close();
    await this.packs.close();
    await this.journal.close();
    this.space.stop();
    await this.clock.settled();
    await this.db.close();
    await this.release();
  }

  /**
   * Seals the open pack and moves sealed packs to the store's bucket (tier.ts), keeping the newest
   * `keepLocalBytes` local. INVALID when the store has no object store.
   */
  async tierFlush(options: { keepLocalBytes?: number; onPack?: (pack: number, bytes: number) => void } = {}): Promise<TierFlushResult> {
    this.live();
    this.writable();
    const remote = this.requireRemote();
    while (this.compaction) await this.compaction.catch(() => undefined);
    this.live(); // as compact()
    return this.holdPacks(import('./tier.js').then((tier) => tier.flushTier(this.tierHost(), remote, options)));
  }

  /**
   * Changes the move policy kept in the store (tier-policy.ts); null returns a field to its
   * default. Takes effect at the background mover's next round.
   */
  async tierSetPolicy(change: { [K in keyof TierPolicy]?: number | null }): Promise<TierPolicy> {
    this.live();
    this.writable();
    const remote = this.requireRemote();
    remote.policy = await (await import('./tier.js')).setTierPolicy(this, change);
    return remote.policy;
  }

  /** One policy round unless compaction or a flush holds the packs (the background mover's trylock). */
  private async tryTierMove(): Promise<TierFlushResult | undefined> {
    if (this.compaction || this.closed || this.failure || !this.remote) return undefined;
    const remote = this.remote;
    return this.holdPacks(import('./tier.js').then((tier) => tier.moveByPolicy(this.tierHost(), remote)));
  }

  /** Compaction and tier moves both retire local packs: one at a time (compact() waits on this). */
  private holdPacks<T>(work: Promise<T>): Promise<T> {
    this.compaction = work;
    const clear = () => { if (this.compaction === work) this.compaction = undefined; };
    work.then(clear, clear);
    return work;
  }

  private async startTierMover(options: StoreOptions): Promise<void> {
    const settings = typeof options.autoTier === 'object' ? options.autoTier : {};
    const { BackgroundTierMover } = await import('./tier-mover.js');
    this.tierMover = new BackgroundTierMover({
      tryMove: () => this.tryTierMove(),
      onError: (error) => options.onBackgroundError?.(error),
    }, settings);
  }

  /** Where the packs are: local and in the bucket. INVALID when the store has no object store. */
  async tierStatus(): Promise<TierStatus> {
    this.live();
    const remote = this.requireRemote();
    return (await import('./tier.js')).tierStatus(this.tierHost(), remote);
  }

  /** Records packs lost with the local disk (`rebuild-from-bucket`, tier.ts TIER_LOST): new packs are numbered above them. */
  async tierRecordLostPacks(packs: number[]): Promise<void> {
    this.live();
    this.writable();
    this.requireRemote();
    await (await import('./tier.js')).recordLostPacks(this.tierHost(), packs);
  }

  private requireRemote(): RemotePacks {
    if (!this.remote) throw noObjectStore(this.root);
    return this.remote;
  }

  private tierHost(): TierHost {
    return {
      root: this.root, fs: this.fs, storeIdText: this.identity.storeId, db: this.db, packs: this.packs, readOnly: this.readOnly,
      submit: (mutation) => this.submit(mutation),
      runExclusive: (fn) => this.maintenanceHooks.runExclusive(fn),
    };
  }

  // ---- compaction (compact.ts) -------------------------------------------------------------------

  /**
   * Rewrites packs whose dead share passed limits.compactDeadRatio: live records copied into a new
   * pack, the index switched in one commit, the old packs deleted once no reader holds them.
   * Released blobs younger than `graceMs` (default 0) are kept. Waits for a compaction already running.
   */
  async compact(options: CompactOptions = {}): Promise<CompactResult> {
    checkCompactOptions(options);
    this.live();
    if (!options.dryRun) this.writable();
    while (this.compaction) await this.compaction.catch(() => undefined);
    // closed meanwhile: close() waited for the compaction before this one, not for this one
    this.live();
    const startSeq = this.committed;
    const result = await this.runCompaction(options);
    if (!options.dryRun) {
      const { timed } = await import('./compact.js'); // loaded by runCompaction
      result.tombstonesExpired = await timed(result, 'tombstones', () => this.expireTombstones(options.tombstoneRetentionMs));
      await timed(result, 'consumer', () => this.advanceCompactConsumer(startSeq));
    }
    return result;
  }

  /** compact()'s expiry of tombstones (tombstone-expiry.ts): none once the store closed meanwhile (the compaction itself is done). */
  private async expireTombstones(retentionMs: number | undefined): Promise<number> {
    if (this.closed || !(await this.clockTrusted())) return 0;
    try {
      return (await (await import('./tombstone-expiry.js')).expireTombstones(this.administration(), retentionMs)).expired;
    } catch (error) {
      if (this.closed && error instanceof MailstoreError && error.code === 'CLOSED') return 0;
      throw error;
    }
  }

  /**
   * An explicit compaction saw every release committed before it started: the background
   * compactor's cursor (when one was ever registered) moves there, so a store opened without
   * autoCompact does not keep the journal pinned for it.
   */
  private async advanceCompactConsumer(seq: number): Promise<void> {
    const { COMPACT_CONSUMER } = await import('./compactor.js');
    const cursor = await this.changes.cursor(COMPACT_CONSUMER).catch((error: unknown) => {
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
      return this.changes.register(COMPACT_CONSUMER, seq, { replaceDamaged: true }); // derived: as if lost, at the seq this compaction saw
    });
    if (cursor && cursor.seq < seq) await this.changes.advance(COMPACT_CONSUMER, seq, { ifBehind: true });
  }

  /** One compaction unless one is running (the background compactor's trylock). */
  private async tryCompact(options: CompactOptions): Promise<CompactResult | undefined> {
    if (this.compaction || this.closed || this.failure) return undefined;
    return this.runCompaction(options);
  }

  private runCompaction(options: CompactOptions): Promise<CompactResult> {
    const running = import('./compact.js').then(async (compact) => {
      const result = await compact.compactStore(this.compactHost(), options);
      // inline bodies in segments no longer written go to packs, so those segments can be retired
      // (released ones past this compaction's grace are dropped, not moved: those released since its forgetInline)
      const { moved, forgotten } = options.dryRun ? { moved: 0, forgotten: 0 } : await compact.timed(result, 'inline', async () => (await import('./compact-inline.js')).moveInlineBodies(this.compactHost(), this.journal.tailFirstSeq - 1, options.graceMs ?? 0));
      if (moved > 0) result.inlineMoved = moved;
      if (forgotten > 0) result.inlineReclaimed = (result.inlineReclaimed ?? 0) + forgotten;
      return result;
    });
    this.compaction = running;
    const clear = () => { if (this.compaction === running) this.compaction = undefined; };
    running.then((result) => {
      clear();
      // released inline bodies dropped: their segments retire once a snapshot is above them
      if (result.packsRemoved.length > 0 || result.inlineReclaimed) this.tidyAfterCompaction();
    }, clear);
    return running;
  }

  /** A snapshot's size for stats; 0 when a snapshot taken meanwhile pruned it (never an error). */
  private async snapshotFileBytes(path: string): Promise<number> {
    try {
      return (await this.fs.stat(path)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
  }

  /**
   * Journal retirement stops below the oldest record still holding an inline body; a writable
   * store first moves the bodies at or below the bound into packs (compact-inline.ts). A replica
   * receives its primary's moves.
   */
  private async boundRetirement(throughSeq: number): Promise<number> {
    // A replica keeps what its primary keeps: the primary retires only below every consumer of
    // its own (a webhook behind its receiver, another replica), which need those records here once
    // this one is promoted. Retired here on its own snapshots, a promoted replica's webhook found
    // its cursor's records gone (NOT_FOUND): the events in between could never be sent.
    if (this.replicationRole?.role === 'replica') throughSeq = Math.min(throughSeq, (this.primaryKeptSeq ?? 1) - 1);
    if (!(await this.db.get<number>(meta.inlineUsed))) return throughSeq; // no inline body was ever stored
    // loaded here, not with the store: an append never needs it (test/cli/start-up.test.ts)
    const inline = await import('./compact-inline.js');
    const oldest = this.writableRole() && !this.readOnly
      ? (await inline.moveInlineBodies(this.compactHost(), throughSeq, this.releasedGraceMs)).oldestInlineSeq
      : await inline.oldestInlineSeq(this.db);
    return oldest === undefined ? throughSeq : Math.min(throughSeq, oldest - 1);
  }

  private compactHost(): CompactHost {
    const store = this;
    return {
      get db() { return store.db; },
      packs: this.packs, health: this.health, packBytesMax: this.packBytesMax,
      submit: <T>(mutation: Mutation<T>) => this.submit(mutation, true),
      runExclusive: <T>(fn: () => Promise<T>) => this.maintenanceHooks.runExclusive(fn),
      startJournalSegment: () => this.journal.keepTailAndStartNewSegment(this.journal.lastSeq + 1),
      committedSeq: () => this.committed,
      quarantineDir: join(this.root, LAYOUT.quarantine),
      hashPool: this.hashPool,
      readInlineBodies: journalInlineRuns(this.journal),
      space: { room: () => this.space.roomAboveFloor(), take: (bytes) => this.space.took(bytes) },
    };
  }

  /**
   * After a compaction removed packs or dropped released inline bodies, in the background (close waits for it): LevelDB rewrites its
   * files without the forgotten entries, and a snapshot lets the journal segments before the
   * compaction's last record retire. Disk use then follows live data: at 20k messages, 80 %
   * expunged, the store was 8.8 % above the live bytes after compaction alone, 1 % after this.
   */
  private tidyAfterCompaction(): void {
    if (!this.autoSnapshot || this.closed) return;
    const report = this.reportSnapshot;
    // LevelDB's rewrite is no snapshot (the one after it still runs and retires): its failure is the
    // compaction's background error, never "a snapshot failed, the journal was not retired"
    this.snapshots.pause(() => this.db.compactFiles()).then(() => this.maybeRollIndexLog(), (error: unknown) => this.reportBackground(error, 'tidying the index files after a compaction failed'));
    // a second snapshot above the first when only the rule of two held the journal back (Snapshotter.tidy)
    this.snapshots.tidy(() => this.commitNothing(), (first) => report(first))
      .then((second) => { if (second) report(second); }, (error: unknown) => report(undefined, error));
  }

  /** index-log.ts, at most every limits.indexLogCheckMs, in the compaction slot. */
  private maybeRollIndexLog(): void {
    if (this.readOnly || this.closed || this.failure || this.compaction || this.swapping || monotonicMs() - this.indexLogCheckedMs < limits.indexLogCheckMs) return;
    this.indexLogCheckedMs = monotonicMs();
    const host = { fs: this.fs, index: () => this.db, maintenance: this.maintenanceHooks, closed: () => this.closed, stop: (failure: MailstoreError) => this.writer.stop(failure) };
    this.holdPacks(import('./index-log.js').then((indexLog) => indexLog.rollIndexLog(host))).catch((error: unknown) => {
      if (!this.closed) this.reportBackground(error, 'reopening the index to roll its LOG and MANIFEST failed');
    });
  }

  /**
   * A record that changes nothing (a `meta.set` to null of a key never set: docs/FORMAT.md,
   * "Compaction"), so the tidy's second snapshot has a seq of its own; false where this store
   * may not write its journal (a replica, a read-only open) or has stopped.
   */
  private async commitNothing(): Promise<boolean> {
    if (this.readOnly || this.failure || !this.writableRole()) return false;
    await this.submit({ prepare: async () => ({ ops: [{ op: 'meta.set', key: TIDY_META_NAME, value: null }], result: undefined }) }, true);
    return true;
  }

  /**
   * Deletes packs a compaction retired before a crash (only those no blob entry points into). Not
   * in a degraded store (its index may lack entries: nothing is deleted on its word), and a failed
   * deletion does not fail the open: the next compaction tries again.
   */
  private async finishInterruptedCompaction(): Promise<void> {
    const highest = await this.db.get<number>(meta.highestRetiredPack);
    if (highest) this.packs.reserveNumbersTo(highest);
    // The newest pack, which the open took to append to, may be one a compaction retired (every
    // message in it gone) before the crash that kept it from being deleted: appends go to a new
    // pack (a retired pack is never written again; deleting it below asserts it is not the append pack).
    if (highest && this.packs.appendPack !== 0 && this.packs.appendPack <= highest) this.packs.seal();
    // a compaction's new pack that a crash left half-written was never named: nothing refers to it
    // (until now only the next compaction removed it, and a daemon compacts only past
    // limits.compactDeadBytesMin, so a copy of the live data could stay on disk for good)
    await this.packs.removePartialPacks().catch((error: unknown) => {
      if (!(error instanceof MailstoreError)) throw error;
      this.health.findings.push(`a compaction's half-written new pack could not be removed yet (${error.message}); the next compaction tries again`);
    });
    if (this.health.degraded) return;
    // nothing retired (every open but one after a compaction's crash): compact.ts is not loaded
    if (!(await this.db.get<number[]>(meta.retiredPacks))?.length) return;
    try {
      const done = await (await import('./compact.js')).finishRetired(this.compactHost());
      for (const pack of done.inUse) {
        this.health.findings.push(`pack ${pack} was retired by a compaction but blob entries still point into it: it was kept; run 'mailstore scrub'`);
      }
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code === 'HALTED') throw error;
      this.health.findings.push(`packs retired by a compaction could not be deleted yet (${error.message}); the next compaction tries again`);
    }
  }

  private async startCompactor(options: StoreOptions): Promise<void> {
    const settings = typeof options.autoCompact === 'object' ? options.autoCompact : {};
    const { BackgroundCompactor } = await import('./compactor.js');
    this.compactor = new BackgroundCompactor({
      feed: this.changes,
      // released inline bodies too: a store whose dead bytes were all in the journal never compacted by itself
      deadBytes: async () => {
        const stats = await this.stats();
        return stats.bytesDead + (stats.bytesDeadInline ?? 0);
      },
      tryCompact: (graceMs) => this.tryCompact({ graceMs }),
      // on a writable store only: a replica's floors come with its primary's records
      expireTombstones: async () => {
        if (!this.closed && !this.failure && !this.readOnly && this.writableRole()) await (await import('./tombstone-expiry.js')).expireWhenDue(this.administration(), settings.tombstoneRetentionMs, () => this.clockTrusted());
      },
      onError: (error) => options.onBackgroundError?.(error),
    }, settings);
  }

  /**
   * Writes a snapshot of the index at its current seq (beside live writers), verifies it, keeps
   * the limits.snapshotsKept newest, and retires the journal segments that the oldest kept snapshot
   * and every consumer are past (snapshots.ts, docs/FORMAT.md "Journal retirement").
   */
  async snapshot(): Promise<SnapshotResult> {
    this.live();
    this.writable();
    return this.snapshots.take();
  }

  /** The journal archive (retired segments are moved there), or undefined: they are deleted. */
  async journalArchive(): Promise<string | undefined> {
    return (await import('./journal-archive.js')).readJournalArchive(this.fs, this.root);
  }

  /** Sets the journal archive (an absolute path to an existing directory) or, with undefined, clears it. */
  async setJournalArchive(dir: string | undefined): Promise<void> {
    this.live();
    this.writable();
    if (dir !== undefined) checkString(dir, 'journal archive');
    const archive = await import('./journal-archive.js');
    await archive.writeJournalArchive(this, dir, this.storeId);
  }

  /** Messages up to this many bytes, delivered alone, go inside their journal record (0: none); and the store's own setting. */
  async inlineBodies(): Promise<{ inlineBytesMax: number; setting: number | undefined }> {
    this.live();
    return { inlineBytesMax: this.inlineBodyBytesMax, setting: await readInlineBodyBytes(this.fs, this.root) };
  }

  /**
   * Stores the store's inline threshold (INLINE-BODIES; undefined: back to the default) and uses it
   * from the next append on. Bodies already inline stay where they are (compaction moves them).
   */
  async setInlineBodies(bytes: number | undefined): Promise<void> {
    this.live();
    if (this.readOnly) this.writable(); // per node: a replica sets its own
    if (bytes !== undefined) checkInlineBodyBytes(bytes, 'inline bytes max');
    await writeInlineBodyBytes(this, bytes);
    this.inlineBodyBytesMax = bytes ?? limits.inlineBodyBytesDefault;
  }

  /** The free-space reserve in force, the free space now, and the store's own setting (FREE-SPACE-RESERVE). */
  async freeSpace(): Promise<FreeSpaceState & { setting: number | undefined }> {
    this.live();
    return { ...(await this.space.state()), setting: await readReserveBytes(this.fs, this.root) };
  }

  /**
   * Stores the store's free-space reserve (FREE-SPACE-RESERVE; undefined: back to the default) and
   * holds it from the next change on.
   */
  async setFreeSpaceReserve(bytes: number | undefined): Promise<void> {
    this.live();
    if (this.readOnly) this.writable(); // per node: a replica sets its own
    if (bytes !== undefined) checkReserveBytes(bytes, 'free space reserve');
    await writeReserveBytes(this, bytes);
    this.space.setReserve(bytes);
  }

  /** An automatic snapshot's outcome goes to onSnapshot; without one, a failure is a health finding (the store goes on). */
  private reportAutoSnapshot(options: StoreOptions, result?: SnapshotResult, error?: unknown): void {
    if (options.onSnapshot) return options.onSnapshot(result, error);
    if (error && this.health.findings.length < limits.healthFindingsMax) {
      this.health.findings.push(`an automatic snapshot failed (the journal was not retired): ${(error as Error).message}`);
    }
    // the journal archive not mounted, a damaged cursor: said once (every snapshot retires nothing until then), as serve's journal-not-retired warning
    const why = result?.retired.skipped ?? result?.retired.damagedFile?.why;
    const notRetired = why && `automatic snapshots retire no journal segment: ${why}`;
    if (notRetired && !this.health.findings.includes(notRetired) && this.health.findings.length < limits.healthFindingsMax) this.health.findings.push(notRetired);
    for (const d of result?.damagedSnapshots ?? []) {
      if (this.health.findings.length >= limits.healthFindingsMax) break;
      this.health.findings.push(`snapshot ${d.name} (older than the kept ones) is damaged: ${d.why}; ${d.quarantined ? `moved to ${d.quarantined}` : 'deleted (quarantine/ holds enough damaged snapshots)'}`);
    }
  }

  /** The hooks of scrub, repair and reconstruct (maintenance.ts). */
  maintenance(): StoreMaintenance {
    return this.maintenanceHooks;
  }

  /** The hooks of the day-2 administration modules (administration.ts). */
  administration(): StoreAdministration {
    return this.administrationHooks;
  }

  private live(): void {
    if (this.closed) throw new MailstoreError('CLOSED', `the store at ${this.root} is closed`, { path: this.root });
    if (this.failure) throw this.failure;
    if (this.swapping) throw new MailstoreError('UNAVAILABLE', `the replica at ${this.root} is swapping in a resync from its primary; retry in a moment`, { path: this.root });
  }

  /**
   * Every change (and every maintenance write) enters the Writer here. `whileClosing`: maintenance
   * that close() waits for (a snapshot's move of inline bodies before retirement, a compaction) may
   * still commit after close began; the writer stops only once they are done.
   */
  private submit<T>(mutation: Mutation<T>, whileClosing = false): Promise<T> {
    if (!whileClosing || !this.closed) this.live();
    else if (this.failure) throw this.failure;
    this.writable();
    if (this.fence && !fenceScope.getStore()) return this.fence.then(() => this.submit(mutation, whileClosing));
    if (this.gate) this.gate.admit();
    else if (this.unreplicatedRefused) throw unreplicatedError(this.root, this.replicationRole!);
    return this.writer.submit(mutation);
  }

  /**
   * Every change (and every maintenance write) starts here: refused on a read-only open, and on a
   * replica or a fenced primary (its packs and journal are its primary's, byte for byte).
   */
  private writable(): void {
    if (this.readOnly) throw new MailstoreError('ACCESS', `the store at ${this.root} is open read-only: nothing can be changed`, { path: this.root });
    if (!this.writableRole()) throw readOnlyReplicaError(this.root, this.replicationRole!);
  }

  private writableRole(): boolean {
    return !this.replicationRole || this.replicationRole.role === 'primary';
  }

  /** Replication's hooks (StoreReplication); not for mail servers. */
  replication(): StoreReplication {
    const store = this;
    return {
      packs: this.packs,
      journal: this.journal,
      get db() { return store.db; },
      committedSeq: () => this.committed,
      role: () => this.replicationRole,
      setRole: async (role) => {
        if (this.readOnly) this.writable();
        await writeRole(this, role);
        this.replicationRole = role;
      },
      applyReplicated: (batch) => {
        this.live();
        if (this.readOnly) this.writable();
        return this.writer.submitReplicated(batch);
      },
      admitPackBytes: async (bytes, room) => {
        const refusal = await this.space.refusal({ bytes, mail: room !== true });
        if (refusal) throw refusal;
      },
      installResync: (staged) => this.installResync(staged),
      setGate: (gate) => {
        this.gate = gate;
        this.unreplicatedRefused = false; // a primary runs in this process: its gate decides from now on
      },
      commitMeta: (key, value) => store.replication().commitAnyRole(async ({ seq }) => ({ ops: [{ op: 'meta.set', key, value } as Op], result: seq })),
      commitAnyRole: (prepare) => {
        this.live();
        if (this.readOnly) this.writable();
        return this.writer.submit({ exclusive: true, prepare });
      },
      commitOps: (prepare, space) => this.submit({ exclusive: true, space, prepare }),
      finishInterrupted: () => this.finishInterrupted(),
      moveInlineBodies: async (throughSeq) => {
        await (await import('./compact-inline.js')).moveInlineBodies(this.compactHost(), throughSeq, this.releasedGraceMs);
      },
      setPrimaryKept: (seq) => {
        this.primaryKeptSeq = seq;
      },
      fenced: async (work) => {
        while (this.fence) await this.fence;
        let lift!: () => void;
        this.fence = new Promise((resolve) => { lift = resolve; });
        try {
          await this.writer.drain();
          return await fenceScope.run(true, work);
        } finally {
          this.fence = undefined;
          lift();
        }
      },
    };
  }

  /** Stages and swaps in a resync (resync.ts) with the Writer idle and snapshots held off. */
  private installResync(staged: StagedResync): Promise<void> {
    this.live();
    if (this.readOnly) this.writable();
    return this.snapshots.pause(async () => {
      await this.writer.drain();
      await stageResync(this.fs, this.root, this.storeId, this.identity.storeId, staged, this.journal.segmentBytesMax);
      // from here the marker makes the staged state the store's: reads wait out the swap (live())
      this.swapping = true;
      try {
        await this.db.close();
        await this.journal.close();
        await finishResync(this.fs, this.root);
        this.db = await IndexDb.open(join(this.root, LAYOUT.index), false);
        this.writer.replaceIndex(this.db);
        this.forgetMailboxes();
        await this.packs.forgetReadHandles();
        await this.journal.reload();
        this.committed = this.journal.lastSeq;
        this.changes.notify(this.committed);
      } catch (error) {
        // half swapped in this process; open finishes it (the marker is still there)
        this.failure = new MailstoreError('CLOSED', `swapping in a resync failed (${(error as Error).message}); restart the replica: open finishes the swap`, { cause: error });
        throw this.failure;
      } finally {
        this.swapping = false;
      }
    });
  }

  private readerHost(): ReaderHost {
    const store = this;
    return {
      get db() { return store.db; },
      get packs() { return store.packs; },
      live: () => this.live(),
      committedBox: (name: string) => this.committedBox(name),
    };
  }

  private maintenanceHost(): MaintenanceHost {
    const store = this;
    return {
      root: this.root, fs: this.fs, identity: this.identity, storeId: this.storeId, readOnly: this.readOnly, packs: this.packs, journal: this.journal,
      hashPool: this.hashPool, releasedGraceMs: this.releasedGraceMs,
      get db() { return store.db; },
      live: () => this.live(),
      writable: () => this.writable(),
      withoutSnapshots: <T>(fn: () => Promise<T>) => this.snapshots.pause(fn),
      submit: <T>(mutation: Mutation<T>) => this.submit(mutation),
      hold: <T>(mutation: Mutation<T>) => {
        this.live();
        return this.writer.submit({
          ...mutation,
          prepare: async (context) => {
            const prepared = await mutation.prepare(context);
            assert(prepared.ops.length === 0, 'a hold of the writer commits nothing');
            return prepared;
          },
        });
      },
      useIndex: (db: IndexDb) => {
        this.db = db;
        this.writer.replaceIndex(db);
        this.forgetMailboxes();
      },
      forgetMailboxes: () => this.forgetMailboxes(),
    };
  }

  private administrationInterface(): StoreAdministration {
    const store = this;
    return {
      get index() { return store.db; },
      mutate: (mutation) => this.submit(mutation),
      finishMailboxDeletes: (ids) => this.finishDeletes(ids),
    };
  }

  // ---- users (src/store/users.ts) ----------------------------------------------------------------

  /** Renames user/OLD/... to user/NEW/..., its owner and every ACL entry naming OLD, in one record. */
  async renameUser(from: string, to: string): Promise<RenameUserResult> {
    return (await import('./users.js')).renameUser(this, from, to);
  }

  /** Deletes user/NAME/... and every ACL entry naming NAME (intent-logged like deleteMailbox). */
  async deleteUser(name: string, options?: DeleteOptions): Promise<DeleteUserResult> {
    return (await import('./users.js')).deleteUser(this, name, options);
  }

  /**
   * Tombstone expiry goes by the wall clock (its marks): under a clock retention would refuse
   * (stepped, or before the store was created) it waits for `clock trust` like retention, so a clock
   * put years ahead does not expire the tombstones of clients that synced yesterday (they would
   * read the vanished ranges again: nothing lost, but the resync the tombstones exist to spare).
   */
  private async clockTrusted(): Promise<boolean> {
    return (await this.clock.report()).untrusted === undefined;
  }

  /** The clock as the store judges it (clock.ts): retention refuses while `untrusted` says why. */
  async clockReport(): Promise<ClockReport> {
    this.live();
    return this.clock.report();
  }

  /** The admin's word that the system clock is right now: the store's clock reference starts again from it. */
  async trustClock(): Promise<ClockReport> {
    this.live();
    this.writable();
    return this.clock.trust();
  }

  /** The users XFER moved away from here (moved.ts), and where to. */
  async movedUsers(): Promise<MovedUser[]> {
    this.live();
    return movedUsers(this.db);
  }

  /** Removes a moved user's marker by hand: their mail is then refused as NOT_FOUND (550 5.1.1) again. */
  async forgetMovedUser(name: string): Promise<MovedUser> {
    const user = formatMailboxName(parseMailboxName(`user/${checkString(name, 'user')}`).slice(1));
    return this.submit({
      prepare: async ({ view }) => {
        const marker = await view.get<MovedMarker>(keys.meta(movedName(user)));
        if (!marker) throw new MailstoreError('NOT_FOUND', `user ${user} is not marked as moved here`, { path: `user/${user}` });
        return { ops: [movedOp(user, null)], result: { user, to: marker.to, at: marker.at } };
      },
    });
  }

  // ---- mailboxes -------------------------------------------------------------------------------

  async createMailbox(name: string, options: { owner?: string; acl?: Record<string, string> } = {}): Promise<MailboxSummary> {
    const components = parseMailboxName(name);
    name = formatMailboxName(components);
    checkOptions(options, ['owner', 'acl'], 'createMailbox option');
    const acl = normalizeAcl(options.acl === undefined ? {} : checkObject(options.acl, 'acl'));
    const owner = options.owner === undefined ? undefined : normalizeOwner(options.owner);
    if (owner) acl[owner] = normalizeRights(ALL_RIGHTS);
    checkAclSize(acl, name);
    return this.submit({
      prepare: async ({ view }) => {
        if (await view.get(keys.name(components))) throw new MailstoreError('EXISTS', `mailbox ${name} already exists`, { path: name });
        const uidValidity = uidValidityAfter((await view.get<number>(meta.uidValidityLast)) ?? 0);
        const id = Buffer.from(crypto.randomUUID().replace(/-/g, ''), 'hex'); // the global: node:crypto loads only here (issue 16)
        const created = Date.now();
        const op: Op = { op: 'mailbox.create', id, name: components, uidValidity, acl, created };
        if (owner) op.owner = owner;
        return { ops: [op], result: { name, id: uuidString(id), uidValidity, created: new Date(created), pastNames: [], owner, acl } };
      },
    });
  }

  /** Renames a mailbox and its descendants. Moves no data: N, I and R keys only. */
  async renameMailbox(from: string, to: string): Promise<{ renamed: number }> {
    const source = parseMailboxName(from);
    const target = parseMailboxName(to);
    if (target.length > source.length && source.every((c, i) => c === target[i])) {
      throw new MailstoreError('INVALID', `cannot rename ${from} into its own descendant ${to}`, { path: to });
    }
    return this.submit({
      exclusive: true,
      prepare: async ({ view }) => {
        const ops: Op[] = [];
        const moved: { from: string[]; to: string[]; box: MailboxInfo }[] = [];
        for await (const [key, id] of this.db.entries<Buffer>({ prefix: keys.name(source) })) {
          const name = decodeNameKey(key);
          const renamed = renamedMailboxName(name, source, target, `renaming ${from} to ${to}`);
          if (await view.get(keys.name(renamed))) throw new MailstoreError('EXISTS', `mailbox ${formatMailboxName(renamed)} already exists`, { path: formatMailboxName(renamed) });
          ops.push({ op: 'mailbox.rename', id: Buffer.from(id), to: renamed });
          const box = view.getNow<MailboxInfo>(keys.info(Buffer.from(id)));
          if (box) moved.push({ from: name, to: renamed, box });
        }
        if (ops.length === 0) throw new MailstoreError('NOT_FOUND', `no mailbox named ${from} (nor any below it)`, { path: from });
        await checkRenameQuota(this.db, view, source, moved);
        const renamed = ops.length;
        ops.push(...await moveQuotaRoots(this.db, source, target));
        checkRecordSize(ops, `renaming ${from}`);
        return { ops, result: { renamed } };
      },
    });
  }

  /**
   * Deletes a mailbox: an intent record frees the name at once, then its messages are expunged in
   * chunks, then a done record removes it. A crash in between is finished by the next open.
   */
  async deleteMailbox(name: string, options?: DeleteOptions): Promise<{ messages: number }> {
    const components = parseMailboxName(name);
    checkDeletable(name, 0, options);
    const { id, messages } = await this.submit({
      exclusive: true,
      prepare: async ({ view }) => {
        const box = await resolveInBatch(view, components, name);
        checkDeletable(name, box.messages, options);
        const ops: Op[] = [{ op: 'mailbox.deleteBegin', id: box.id }];
        // A root is a name: one at or below a mailbox with nothing below it limits nothing once it
        // goes, and a new mailbox of the name inherited it; it goes with it, as with --recursive
        // (Cyrus's quota -f drops a root no mailbox uses). Over mailboxes that stay, it still limits them.
        if (!(await this.hasMailboxesBelow(components))) ops.push(...await moveQuotaRoots(this.db, components, undefined));
        return { ops, result: { id: box.id, messages: box.messages } };
      },
    });
    await this.finishDeletes([id]);
    return { messages };
  }

  /** Whether a mailbox's name has mailboxes below it (its own N key aside). */
  private async hasMailboxesBelow(components: readonly string[]): Promise<boolean> {
    let names = 0;
    for await (const _ of this.db.entries({ prefix: keys.name(components) })) if (++names > 1) return true;
    return false;
  }

  /**
   * Runs the chunks of deletes whose intent record committed. close() waits for it: the caller
   * was not answered yet, and a close between two chunks failed it CLOSED although the delete was
   * done (the mailbox gone, open finishing the rest).
   */
  private finishDeletes(ids: readonly Buffer[]): Promise<void> {
    const store = this;
    const host: DeleteHost = { get index() { return store.db; }, submit: (mutation) => this.submit(mutation, true) };
    const running = finishMailboxDeletes(host, ids);
    this.deletes.add(running);
    const forget = () => this.deletes.delete(running);
    running.then(forget, forget);
    return running;
  }

  private async finishInterrupted(): Promise<void> {
    const pending: Buffer[] = [];
    for await (const [key] of this.db.entries({ prefix: meta.deletingPrefix })) {
      const hex = key.toString('latin1').split('deleting/')[1]?.replace(/\0$/, '');
      if (hex) pending.push(Buffer.from(hex, 'hex'));
    }
    await this.finishDeletes(pending);
    // a copy in parts cut short by a crash: RFC 9051 wants a failed COPY to leave its target as it was
    await undoInterruptedCopies(this.transferHost());
  }

  async listMailboxes(options: { user?: string; pattern?: string } = {}): Promise<{ name: string; id: string; rights?: string }[]> {
    checkOptions(options, ['user', 'pattern'], 'listMailboxes option');
    const pattern = normalizePattern(options.pattern);
    const user = options.user === undefined ? undefined : normalizeIdentifier(options.user);
    this.live();
    const matches = listPatternMatcher(pattern);
    const prefix = patternPrefixComponents(pattern);
    const out: { name: string; id: string; rights?: string }[] = [];
    if (user === undefined) {
      for await (const [key, id] of this.db.entries<Buffer>({ prefix: keys.name(prefix) })) {
        const name = formatMailboxName(decodeNameKey(key));
        if (matches(name)) out.push({ name, id: uuidString(Buffer.from(indexId(id, key))) });
      }
      return out;
    }
    const seen = new Map<string, { name: string; id: string; rights: string }>();
    const holders = user === 'anyone' ? ['anyone'] : [user, 'anyone'];
    // the user's entries and anyone's from one point in time: read one after the other, a mailbox
    // renamed in between was listed twice, under its old name and its new one
    const snapshot = await this.db.snapshot();
    const entriesOf = async function* (who: string) {
      const from = keys.rights(who, prefix);
      for await (const batch of snapshot.entryBatches<RightsRecord>({ gte: from, lt: prefixEnd(from) }, limits.indexEntriesBatchMax)) yield* batch;
    };
    try {
      for (const who of holders) {
        for await (const [key, value] of entriesOf(who)) {
          const name = formatMailboxName(decodeRightsKey(key).components);
          if (!matches(name)) continue;
          const had = seen.get(name);
          const rights = normalizeRights((had?.rights ?? '') + value.rights);
          seen.set(name, { name, id: uuidString(Buffer.from(indexId(value.id, key))), rights });
        }
      }
      // RFC 4314 negative rights: "-carol" (and "-anyone") take away what carol has by any entry;
      // ignored, SETACL -carol l left the mailbox listed for her through anyone's l
      for (const who of holders) {
        for await (const [key, value] of entriesOf(`-${who}`)) {
          const entry = seen.get(formatMailboxName(decodeRightsKey(key).components));
          if (entry) entry.rights = [...entry.rights].filter((letter) => !value.rights.includes(letter)).join('');
        }
      }
    } finally {
      await snapshot.close();
    }
    return [...seen.values()].filter((entry) => entry.rights.includes('l'))
      .sort((a, b) => Buffer.compare(keys.name(parseMailboxName(a.name)), keys.name(parseMailboxName(b.name))));
  }

  async mailbox(name: string): Promise<MailboxSummary> {
    parseMailboxName(name);
    this.live();
    const box = await this.resolveCommitted(name);
    const summary: MailboxSummary = {
      name: formatMailboxName(box.name), id: uuidString(Buffer.from(box.id)), uidValidity: box.uidValidity, created: new Date(box.created),
      pastNames: box.pastNames.map(formatMailboxName), acl: { ...box.acl },
    };
    if (box.owner !== undefined) summary.owner = box.owner;
    return summary;
  }

  async status(name: string): Promise<MailboxStatus> {
    parseMailboxName(name);
    this.live();
    const box = await orMoved(this.db, name, () => this.resolveCommitted(name));
    return { messages: box.messages, unseen: box.unseen, uidNext: box.uidNext, uidValidity: box.uidValidity, highestModseq: box.highestModseq, bytes: box.bytes };
  }

  // ---- ACLs ------------------------------------------------------------------------------------

  /**
   * Sets (or with '' removes) the RFC 4314 rights of `identifier`; "+rights" adds to its entry and
   * "-rights" takes from it (SETACL's mod-rights), decided against the entry in this commit's
   * batch: a caller's read-then-write lost one of two changes in flight. The reverse map changes
   * in the same record.
   */
  async setAcl(mailbox: string, identifier: string, rights: string): Promise<void> {
    const components = parseMailboxName(mailbox);
    const who = normalizeIdentifier(identifier);
    if (who === '-' && rights !== '') throw new MailstoreError('INVALID', 'ACL identifier "-" names no one: negative rights are "-USER" or "-anyone"'); // an old entry may go
    const mode = typeof rights === 'string' && (rights.startsWith('+') || rights.startsWith('-')) ? rights[0] : '';
    const given = normalizeRights(mode ? rights.slice(1) : rights);
    await this.submit({
      prepare: async ({ view }) => {
        const box = await resolveInBatch(view, components, mailbox);
        const had = box.acl[who] ?? '';
        const normalized = mode === '+' ? normalizeRights(had + given) : mode === '-' ? [...had].filter((letter) => !given.includes(letter)).join('') : given;
        // an entry with no rights (kept by an older createMailbox) is there to remove
        if (had === normalized && !(normalized === '' && Object.hasOwn(box.acl, who))) return { ops: [], result: undefined };
        if (normalized !== '') checkAclSize({ ...box.acl, [who]: normalized }, mailbox);
        return { ops: [{ op: 'acl.set', id: box.id, identifier: who, rights: normalized } as Op], result: undefined };
      },
    });
  }

  async getAcl(mailbox: string): Promise<Record<string, string>> {
    parseMailboxName(mailbox);
    this.live();
    return { ...(await this.resolveCommitted(mailbox)).acl };
  }

  // ---- messages --------------------------------------------------------------------------------

  async append(mailbox: string, bytes: Uint8Array, options: AppendOptions = {}): Promise<AppendResult> {
    checkOptions(options, APPEND_OPTIONS, 'append option');
    const { flags, internalDate, envelopeFrom, dateZoneMinutes, recent } = options;
    // a delivery for a user XFER moved away (one waiting on its fence too) is told where, not NOT_FOUND
    return orMoved(this.db, mailbox, () => this.appendOne(mailbox, { bytes, flags, internalDate, envelopeFrom, dateZoneMinutes, recent }));
  }

  /**
   * appendBatch for one message (a delivery): the same checks, mutation and record, without the
   * batch's arrays, loops, dedup map, prefetch and meta: less for a cold process to compile.
   */
  private appendOne(mailbox: string, entry: AppendOptions & { bytes: Uint8Array }): Promise<AppendResult> {
    const components = parseMailboxName(mailbox);
    const item = this.preparedAppend(entry, 1, mailbox);
    checkRecordSize([largestAdd(item)], 'appending 1 messages', item.inline ? item.bytes.length + 16 : 0);
    const committed = this.afterAdditions(components, () => this.submit({
      space: { bytes: item.bytes.length + limits.freeSpaceMessageOverheadBytes, mail: true },
      // answered at once (no promise, no suspended frame) unless a quota root is above the mailbox
      prepare: (ctx) => {
        const box = mailboxInBatchNow(ctx.view, components, mailbox);
        checkUidsLeft(box, 1, mailbox);
        const quota = checkQuota(this.db, ctx.view, box.name, item.bytes.length, 1);
        return quota ? quota.then(() => this.placedAppend(ctx, box, item)) : this.placedAppend(ctx, box, item);
      },
    }));
    if (!item.recycled) return committed;
    const giveBack = (): void => this.copies.giveBack(item.bytes);
    committed.then(giveBack, giveBack);
    return committed;
  }

  /** appendOne's mutation once its checks passed: the blob placed, the message added at the mailbox's next uid. */
  private placedAppend(ctx: PrepareContext, box: Readonly<MailboxInfo>, item: PreparedAppend): Prepared<AppendResult> {
    const { location, deduplicated } = this.placeBlob(ctx, item.hash, item.bytes, undefined, item.inline);
    const uid = box.uidNext;
    return { ops: [messageAdd(box.id, uid, item, location, deduplicated)], result: { uid, uidValidity: box.uidValidity, hash: hashHex(item.hash), size: item.bytes.length, deduplicated } };
  }

  /**
   * One message of an append, checked, copied and hashed. The caller may reuse its buffer as soon
   * as we return: hash and write our own copy. One bound for a pack goes into recycled memory,
   * given back when the append settles (an inline body is kept in its op, which a synchronous
   * replica's round may hold).
   */
  private preparedAppend(entry: unknown, messages: number, mailbox: string): PreparedAppend {
    const item = checkObject(entry, 'appendBatch item');
    const given = checkBytes(item.bytes);
    if (given.length > this.messageBytesMax) {
      throw new MailstoreError('TOO_LARGE', `message of ${given.length} bytes exceeds the limit of ${this.messageBytesMax} bytes`, { path: mailbox });
    }
    const inline = this.inlinesBody(messages, given.length);
    const bytes = ownCopy(given, inline ? undefined : this.copies);
    const recycled = !inline && bytes.buffer !== given.buffer && this.copies.recycles(given.length);
    return { bytes, hash: hashBytes(bytes), flags: normalizeFlags(item.flags), date: normalizeDate(item.internalDate ?? this.clock.now()), extras: normalizeMessageExtras(item), inline, recycled };
  }

  /**
   * Appends several messages as one all-or-nothing record (imports). `meta` is stored in the same
   * record, so an import's resume cursor can never disagree with what was imported. Batches
   * given the same `chain` commit in call order, each only if every earlier one did.
   */
  async appendBatch(mailbox: string, items: (AppendOptions & { bytes: Uint8Array })[], options: { meta?: AppendBatchMeta; chain?: CommitChain; mailboxId?: string } = {}): Promise<AppendResult[]> {
    const components = parseMailboxName(mailbox);
    checkOptions(options, ['meta', 'chain', 'mailboxId'], 'appendBatch option');
    const pin = options.mailboxId === undefined ? undefined : mailboxIdBytes(options.mailboxId);
    if (options.meta !== undefined) checkString(checkObject(options.meta, 'meta').key, 'meta key');
    const metaKey = options.meta && meta.named(`user/${options.meta.key}`);
    if (options.chain !== undefined) checkObject(options.chain, 'chain');
    const entries = checkArray(items, 'appendBatch items');
    let recycled = false;
    // pushed, not mapped (tuple.ts encodeComponents): appendBatch deoptimised
    const prepared: PreparedAppend[] = [];
    let totalBytes = 0;
    let inlineBytes = 0;
    for (const entry of entries) {
      const item = this.preparedAppend(entry, entries.length, mailbox);
      recycled ||= item.recycled;
      prepared.push(item);
      totalBytes += item.bytes.length;
      if (item.inline) inlineBytes += item.bytes.length + 16;
    }
    // Checked before any blob is reserved: the largest uid, pack and offset the record could carry.
    const largest: Op[] = [];
    for (const item of prepared) largest.push(largestAdd(item));
    if (options.meta) largest.push({ op: 'meta.set', key: `user/${options.meta.key}`, value: options.meta.value });
    checkRecordSize(largest, `appending ${prepared.length} messages`, inlineBytes);
    // placeBlob and the op's apply read each blob entry with getShared: an import's batch reads
    // them in one LevelDB read, started now, while the writer still commits the batch before it
    const ahead = prepared.length >= limits.appendPrefetchMessagesMin ? this.db.readAhead(prepared.map((item) => keys.blob(item.hash))) : undefined;
    // what the record may write, for the free-space reserve (an upper bound: before dedup)
    const spaceBytes = totalBytes + prepared.length * limits.freeSpaceMessageOverheadBytes;
    const committed = this.afterAdditions(components, () => this.submit({
      chain: options.chain,
      space: { bytes: spaceBytes, mail: true },
      prepare: async (ctx) => {
        const box = await resolveInBatch(ctx.view, components, mailbox);
        if (pin && !pin.equals(box.id)) {
          throw new MailstoreError('NOT_FOUND', `${mailbox} is no longer the mailbox ${uuidString(pin)}: it was renamed or deleted (and the name made again); nothing was appended`, { path: mailbox });
        }
        checkUidsLeft(box, prepared.length, mailbox);
        if (metaKey && 'expected' in options.meta!) await checkMetaUnchanged(ctx.view, metaKey, options.meta!);
        await checkQuota(this.db, ctx.view, box.name, totalBytes, prepared.length);
        if (ahead) await ctx.view.adopt(ahead);
        const ops: Op[] = [];
        const results: AppendResult[] = [];
        const fresh = new Map<string, BlobLocation>();
        let uid = box.uidNext;
        for (const item of prepared) {
          const { location, deduplicated } = this.placeBlob(ctx, item.hash, item.bytes, fresh, item.inline);
          ops.push(messageAdd(box.id, uid, item, location, deduplicated));
          results.push({ uid, uidValidity: box.uidValidity, hash: hashHex(item.hash), size: item.bytes.length, deduplicated });
          uid++;
        }
        if (options.meta) ops.push({ op: 'meta.set', key: `user/${options.meta.key}`, value: options.meta.value });
        return { ops, result: results };
      },
    }));
    if (ahead) committed.then(() => ahead.release(), () => ahead.release()); // refused before its prepare ran: no longer watched
    if (!recycled) return committed;
    const giveBack = (): void => { for (const item of prepared) this.copies.giveBack(item.bytes); };
    committed.then(giveBack, giveBack);
    return committed;
  }

  /** Where a blob lives: an existing copy (dedup, also within the batch) or a new pack record. */
  /**
   * Which messages of one record go inside it: a single message up to inlineBodyBytesMax (a
   * delivery: one file, one fdatasync). A batch (an import) already shares one fdatasync among
   * its messages, and a read of an inline body decodes its whole record: its bodies go to packs.
   */
  private inlinesBody(messages: number, bytes: number): boolean {
    return messages === 1 && bytes <= this.inlineBodyBytesMax;
  }

  private placeBlob(ctx: PrepareContext, hash: Buffer, bytes: Buffer, fresh: Map<string, BlobLocation> | undefined, inline = false): { location: { pack: number; offset: number }; deduplicated: boolean } {
    // fresh: the blobs placed earlier in the same call (a batch's duplicates); none for one message
    const key = fresh ? hash.toString('latin1') : '';
    const pending = fresh?.get(key);
    if (pending) return { location: pending, deduplicated: true };
    const existing = ctx.view.getShared<BlobRecord>(keys.blob(hash)); // read only (appendBatch may have prefetched it)
    // A copy no message uses (expunged, or dropped by scrub as damaged) is never trusted for a new
    // message: its bytes were last verified who knows when. The new bytes are written and the blob
    // entry moves to them (apply: a fresh add of a known blob takes the new location).
    if (existing && existing.r > 0) return { location: { pack: existing.p, offset: existing.o }, deduplicated: true };
    // an inline body's location is its record: this mutation's seq (docs/FORMAT.md, "Inline bodies")
    const location = inline ? { pack: INLINE_PACK, offset: ctx.seq, length: bytes.length } : ctx.packs.reserve(hash, bytes);
    fresh?.set(key, location);
    return { location, deduplicated: false };
  }

  /**
   * Stores a value under `key` (read back with getMeta) as a journaled record of its own: a
   * consumer's durable cursor (the events webhook). undefined or null removes the key.
   */
  async setMeta(key: string, value: unknown): Promise<void> {
    checkString(key, 'meta key');
    checkRecordSize([{ op: 'meta.set', key: `user/${key}`, value }], `setting ${key}`);
    await this.submit({ prepare: async () => ({ ops: [{ op: 'meta.set', key: `user/${key}`, value } as Op], result: undefined }) });
  }

  /** A value stored with appendBatch's `meta` option or setMeta (import and consumer cursors). */
  async getMeta<T>(key: string): Promise<T | undefined> {
    checkString(key, 'meta key');
    this.live();
    return this.db.get<T>(meta.named(`user/${key}`));
  }


  async setFlags(mailbox: string, uids: number | number[], change: FlagChange): Promise<{ modseq: number; updated: number[]; modified: number[] }> {
    const components = parseMailboxName(mailbox);
    const list = normalizeUids(uids);
    checkOptions(checkObject(change, 'flag change'), ['add', 'remove', 'replace', 'unchangedSince', 'mailboxId'], 'flag change field');
    const pin = change.mailboxId === undefined ? undefined : mailboxIdBytes(change.mailboxId);
    const add = normalizeFlags(change.add);
    const remove = normalizeFlags(change.remove);
    const replace = change.replace === undefined ? undefined : normalizeFlags(change.replace);
    if (replace && (add.length || remove.length)) throw new MailstoreError('INVALID', 'use either replace or add/remove, not both');
    const since = change.unchangedSince === undefined ? undefined : checkModseq(change.unchangedSince, 'unchangedSince');
    const parts = await inUidParts(list, components, mailbox, (part, resolve) => this.submit({
      partOfMany: list.length > limits.uidChangePartMessages,
      prepare: async ({ view, seq }) => {
        const box = await resolve(view);
        const set: [number, string[]][] = [];
        const modified: number[] = [];
        const records = await messagesOfPart(view, box.id, part);
        for (const [i, uid] of part.entries()) {
          const record = records[i];
          if (!record) continue;
          if (since !== undefined && record.m > since) { modified.push(uid); continue; }
          const next = changedFlags(record.f, { add, remove, replace });
          if (next.length > limits.flagsPerMessageMax) {
            throw new MailstoreError('INVALID', `message ${uid} in ${mailbox} would have ${next.length} flags; at most ${limits.flagsPerMessageMax} are kept per message`, { path: `${mailbox}/${uid}` });
          }
          if (next.length !== record.f.length || next.some((f, i) => f !== record.f[i])) set.push([uid, next]);
        }
        if (set.length === 0) return { ops: [], result: { modseq: box.highestModseq, updated: [], modified } };
        const ops: Op[] = [{ op: 'message.flags', id: box.id, set }];
        checkRecordSize(ops, `setting flags on ${set.length} messages`);
        return { ops, result: { modseq: modseqAt(view, seq), updated: set.map(([u]) => u), modified } };
      },
    }), pin, this.stoppingParts);
    return { modseq: Math.max(...parts.map((p) => p.modseq)), updated: parts.flatMap((p) => p.updated), modified: parts.flatMap((p) => p.modified) };
  }

  /**
   * `unchangedSince` (RFC 7162's, as for setFlags): a message changed after that modseq is left
   * alone and listed in `modified`, so a caller that chose messages by their flags (retention's
   * --seen) never expunges one whose flags changed after it looked.
   */
  async expunge(mailbox: string, uids: number | number[], options?: { unchangedSince?: number; mailboxId?: string }): Promise<{ expunged: number[]; modseq: number; modified?: number[] }> {
    const components = parseMailboxName(mailbox);
    const list = normalizeUids(uids);
    const { unchangedSince, mailboxId } = checkOptions(options, ['unchangedSince', 'mailboxId'], 'expunge option');
    const since = unchangedSince === undefined ? undefined : checkModseq(unchangedSince, 'unchangedSince');
    const pin = mailboxId === undefined ? undefined : mailboxIdBytes(mailboxId);
    const parts = await inUidParts(list, components, mailbox, (part, resolve) => this.submit({
      partOfMany: list.length > limits.uidChangePartMessages,
      prepare: async ({ view, seq }) => {
        const box = await resolve(view);
        const present: number[] = [];
        const modified: number[] = [];
        const records = await messagesOfPart(view, box.id, part, true);
        for (const [i, uid] of part.entries()) {
          const record = records[i];
          if (record && since !== undefined && record.m > since) modified.push(uid);
          else if (record) present.push(uid);
        }
        const also = since === undefined ? {} : { modified };
        if (present.length === 0) return { ops: [], result: { expunged: [], modseq: box.highestModseq, ...also } };
        const ops: Op[] = [{ op: 'message.expunge', id: box.id, uids: present, at: Date.now() }];
        checkRecordSize(ops, `expunging ${present.length} messages`);
        return { ops, result: { expunged: present, modseq: modseqAt(view, seq), ...also } };
      },
    }), pin, this.stoppingParts);
    const modseq = Math.max(...parts.map((p) => p.modseq));
    const expunged = parts.flatMap((p) => p.expunged);
    return since === undefined ? { expunged, modseq } : { expunged, modseq, modified: parts.flatMap((p) => p.modified ?? []) };
  }

  /** Copies messages (no new blob: references only). Returns COPYUID-style pairs; one that fails part way is undone (transfer.ts). */
  copy(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer(from, uids, to, false, options);
  }

  /** Moves messages: each part's copy and expunge are one record, so a crash never leaves a message in both or neither (transfer.ts). */
  move(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer(from, uids, to, true, options);
  }

  private transfer(from: string, uids: number | number[], to: string, expungeSource: boolean, options?: { mailboxId?: string }): Promise<TransferResult> {
    try {
      const list = normalizeUids(uids);
      const { mailboxId } = checkOptions(options, ['mailboxId'], `${expungeSource ? 'move' : 'copy'} option`);
      this.live();
      return transfer(this.transferHost(), from, list, to, expungeSource, mailboxId === undefined ? undefined : mailboxIdBytes(mailboxId));
    } catch (error) {
      return Promise.reject(error); // a bad name or uid set is the promise's error, as from every other call
    }
  }

  private readonly stoppingParts = (): boolean => this.partsStopping;

  private transferHost(): TransferHost {
    const store = this;
    return {
      get index() { return store.db; },
      stopping: this.stoppingParts,
      submit: (mutation) => this.submit(mutation),
      holdAdditions: (components) => this.holdAdditions(components),
      afterAdditions: (components, start) => this.afterAdditions(components, start),
    };
  }

  /**
   * Makes every other addition to the mailbox (append, copy, move into it) wait until the returned
   * release: a copy or move in parts (transfer.ts) keeps its uids there one run given out in order.
   */
  private holdAdditions(components: readonly string[]): Promise<() => void> {
    return this.afterAdditions(components, async () => {
      const key = components.join('\0');
      let release!: () => void;
      this.additions.set(key, new Promise((done) => { release = done; }));
      return () => { this.additions.delete(key); release(); };
    });
  }

  /** Starts `start` once no call in parts adds to the mailbox (holdAdditions): at once when none does, else in the same turn its hold ends. */
  private afterAdditions<T>(components: readonly string[], start: () => Promise<T>): Promise<T> {
    // nearly always none held: no key joined a delivery
    const held = this.additions.size === 0 ? undefined : this.additions.get(components.join('\0'));
    return held ? held.then(() => this.afterAdditions(components, start)) : start();
  }

  /** How this process flushes a lone writer's small journal-only commits (src/store/flush-choice.ts): measured as it goes, so process state, not the store's. */
  journalFlush(): JournalFlushChoice {
    return this.writer.flushChoice.describe();
  }

  async stats(): Promise<StoreStats> {
    this.live();
    let mailboxes = 0, messages = 0, bytesReferenced = 0, blobs = 0, bytesStored = 0, unreferencedBlobs = 0, liveBytes = 0, bytesLive = 0, bytesDeadInline = 0;
    for await (const [, box] of this.db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
      if (box.deleting) continue;
      mailboxes++;
      messages += box.messages;
      bytesReferenced += box.bytes;
    }
    for await (const [, blob] of this.db.entries<BlobRecord>({ prefix: keys.space(SPACE.blob) })) {
      blobs++;
      bytesStored += blob.l;
      if (blob.r === 0) {
        unreferencedBlobs++;
        if (blob.p === INLINE_PACK) bytesDeadInline += blob.l; // in the journal, not in a pack: apart from bytesDead
      } else {
        liveBytes += blob.l;
        if (blob.p !== INLINE_PACK) bytesLive += RECORD_HEADER_BYTES + blob.l; // pack bytes (an inline body is in the journal)
      }
    }
    let packBytes = 0;
    const packList = await this.packs.listPacks();
    for (const p of packList) packBytes += await this.packs.packBytes(p); // local or in the object store
    let journalBytes = 0;
    for (const name of this.journal.segmentNames) journalBytes += (await this.fs.stat(this.journal.path(name))).size;
    let snapshotBytes = 0;
    const snapshotList = await listSnapshots(this.fs, this.root);
    for (const s of snapshotList) snapshotBytes += await this.snapshotFileBytes(s.path);
    const { consumers, damaged: consumersDamaged } = await this.changes.report(); // a damaged cursor is listed, not the report's failure
    return {
      mailboxes, messages, bytesReferenced, blobs, bytesStored, unreferencedBlobs, packs: packList.length, packBytes,
      journalSegments: this.journal.segmentNames.length, journalBytes, journalBytesRetained: journalBytes, journalFirstSeq: this.journal.firstSeq, journalLastSeq: this.journal.lastSeq,
      snapshots: snapshotList.length, snapshotBytes, newestSnapshotSeq: snapshotList[0]?.seq ?? null, dedupRatio: liveBytes === 0 ? 1 : bytesReferenced / liveBytes,
      consumers, ...(consumersDamaged ? { consumersDamaged } : {}),
      bytesLive, bytesDead: Math.max(0, packBytes - packList.length * PACK_HEADER_BYTES - bytesLive), bytesDeadInline,
      freeSpace: await this.space.state(),
      quarantine: await (await import('./quarantine.js')).quarantineUse(this.fs, this.root), // loaded here: an append never needs it
      ...(await (await import('./journal-archive.js')).journalArchiveState(this.fs, this.root, this.storeId)),
    };
  }

  // ---- reads (reader.ts) -------------------------------------------------------------------------

  messageInfo(mailbox: string, uid: number): Promise<MessageInfo> {
    return this.reader.messageInfo(mailbox, uid);
  }

  /** Every message of a mailbox in uid order (metadata only). */
  messages(mailbox: string, options: { fromUid?: number } = {}): AsyncGenerator<MessageInfo> {
    return this.reader.messages(mailbox, options);
  }

  /** The message's exact bytes, verified against its hash (CORRUPT otherwise). */
  fetch(mailbox: string, uid: number): Promise<Buffer> {
    return this.reader.fetch(mailbox, uid);
  }

  /** Every message of a mailbox with its verified bytes, in uid order (reader.ts, readMessages). */
  readMessages(mailbox: string, options: ReadMessagesOptions = {}): AsyncGenerator<MessageWithBody> {
    return this.reader.readMessages(mailbox, options);
  }

  /** Streams a big message: verified in a first pass, then handed out, so no unverified byte leaves. */
  fetchStream(mailbox: string, uid: number): Promise<Readable> {
    return this.reader.fetchStream(mailbox, uid);
  }

  /** Reads a blob by hash (repair sources, export); verified. */
  fetchBlob(hash: Buffer): Promise<Buffer> {
    return this.reader.fetchBlob(hash);
  }

  /** Blobs at the locations a state read gave them (a backup), verified (unless `options.verify` is false); undefined for one whose read failed there (ask fetchBlob). `lend`: buffers to read into (StoreReader.fetchBlobsAt). */
  fetchBlobsAt(blobs: readonly { hash: Buffer; location: BlobLocation }[], lend?: () => ArrayBuffer | undefined, options?: FetchAtOptions): Promise<(Buffer | undefined)[]> {
    return this.reader.fetchBlobsAt(blobs, lend, options);
  }

  /** CONDSTORE/QRESYNC: messages changed and uids expunged after `modseq`. */
  changesSince(mailbox: string, modseq: number): Promise<Changes> {
    return this.reader.changesSince(mailbox, modseq);
  }

  /** changesSince a part at a time (api.ts): what a caller holds is one part, whatever the mailbox. */
  changesSinceParts(mailbox: string, modseq: number): AsyncGenerator<ChangesSincePart> {
    return this.reader.changesSinceParts(mailbox, modseq);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /**
   * Committed mailbox by name, through a small cache that every commit (and an index swap) clears:
   * a read-heavy server resolves the same few names again and again.
   */
  private async resolveCommitted(name: string): Promise<MailboxInfo> {
    const box = await this.db.readNow(() => this.committedBox(name)); // synchronous reads: not in an index reopen
    return { ...box, id: Buffer.from(box.id) };
  }

  /** resolveCommitted without the copy, for per-message reads: the caller must not change it. */
  private committedBox(name: string): Readonly<MailboxInfo> {
    const cached = this.mailboxCache.get(name);
    if (cached) return cached;
    const generation = this.cacheGeneration;
    const components = parseMailboxName(name);
    const id = this.db.getNow<Buffer>(keys.name(components));
    const box = id ? this.db.getNow<MailboxInfo>(keys.info(Buffer.from(id))) : undefined;
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
    if (generation === this.cacheGeneration) {
      if (this.mailboxCache.size >= limits.mailboxCacheEntries) this.mailboxCache.clear();
      this.mailboxCache.set(name, box);
    }
    return box;
  }

  /** Called on every commit (and index swap): the cache must never show an older state than the index. */
  private forgetMailboxes(): void {
    this.cacheGeneration++;
    this.mailboxCache.clear();
  }
}

function checkCompactOptions(options: CompactOptions): void {
  checkOptions(checkObject(options, 'compact options'), ['dryRun', 'graceMs', 'deadRatio', 'onProgress', 'tombstoneRetentionMs'], 'compact option');
  if (options.tombstoneRetentionMs !== undefined && !(Number.isFinite(options.tombstoneRetentionMs) && options.tombstoneRetentionMs >= 0)) throw new MailstoreError('INVALID', `compact tombstoneRetentionMs must be a number of ms >= 0, got ${String(options.tombstoneRetentionMs)}`);
  if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean') throw new MailstoreError('INVALID', 'compact dryRun must be a boolean');
  if (options.graceMs !== undefined && !(Number.isFinite(options.graceMs) && options.graceMs >= 0)) throw new MailstoreError('INVALID', `compact graceMs must be a number of ms >= 0, got ${String(options.graceMs)}`);
  if (options.deadRatio !== undefined && !(typeof options.deadRatio === 'number' && options.deadRatio > 0 && options.deadRatio <= 1)) throw new MailstoreError('INVALID', `compact deadRatio must be in (0, 1], got ${String(options.deadRatio)}`);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new MailstoreError('INVALID', 'compact onProgress must be a function');
}

/** The ACL a change would leave must stay within limits.aclEntriesPerMailboxMax entries. */
function checkAclSize(acl: Record<string, string>, mailbox: string): void {
  const entries = Object.values(acl).filter((rights) => rights !== '').length;
  if (entries > limits.aclEntriesPerMailboxMax) {
    throw new MailstoreError('INVALID', `the ACL of ${mailbox} would have ${entries} entries; at most ${limits.aclEntriesPerMailboxMax} are kept per mailbox`, { path: mailbox });
  }
}

export { SEEN };
