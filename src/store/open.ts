// Opening a store: verify STORE and the markers, take the lock, open the packs and the journal,
// and bring the index up to the journal (recovery.ts does the work). A read-only open writes
// nothing: it serves a shadow of the index only when that index is current. Either way the
// result is the store's parts, which the Store wraps with its Writer.
import { journalInlineSource } from './inline-bodies.js';
import { finishResync, refuseHalfResync, stagedJournalToFinish } from './resync.js';
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileStat, FileSystem } from '../fs/filesystem.js';
import { shadowLevelDb } from '../fs/level-shadow.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { IndexDb } from '../index/index-db.js';
import { keys } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import { INLINE_PACK, PackStore } from '../blob/pack-store.js';
import { Journal } from '../journal/journal.js';
import { limits } from '../limits.js';
import { durableTempPid, refuseIgnoredSync } from '../fs/durable.js';
import { processAlive } from '../fs/process-files.js';
import { CONSUMERS_DIR } from './changes.js';
import { LAYOUT, checkNoWriter, initStore, lockTempPid, storeIdBytes, takeLock, upgradeIdentity, verifyIdentity, type StoreIdentity } from './identity.js';
import {
  checkSnapshotHighWater, chooseRebuildStart, moveAside, newHealth, openExistingIndex, rebuildIndex, replay, reportIncompleteImage, resolveNewestBatch, resolveTail, type Health, type RebuildStart,
  durableTailEnd,
} from './recovery.js';
import { snapshotCovers } from './snapshots.js';
import type { StoreOptions } from './types.js';
import type { BlobRecord } from './records.js';
import { TIER_META } from './tier-names.js';
import { checkByteBound } from './validate.js';

/** An opened store's parts. `db` is replaced when maintenance installs a rebuilt index. */
export interface StoreParts {
  root: string;
  fs: FileSystem;
  identity: StoreIdentity;
  storeId: Buffer;
  db: IndexDb;
  packs: PackStore;
  journal: Journal;
  /** UNMOUNTED when the root is no longer the file system this open found there (every file written under it asks: setting-file.ts). */
  checkMounted: CheckMounted;
  /** Releases the lock (read-write) or removes the index shadow (read-only). */
  release: () => Promise<void>;
  health: Health;
  readOnly: boolean;
}

type Opened = { db?: IndexDb; packs?: PackStore; journal?: Journal };
type CheckMounted = (path: string) => Promise<void>;

/**
 * Verifies STORE and the markers, takes the lock, resolves the journal tail, replays what the
 * index has not applied (or rebuilds the index from the journal). Interrupted deletes are the
 * Store's to finish (they are mutations).
 */
export async function openStoreParts(root: string, options: StoreOptions): Promise<StoreParts> {
  // bounds of files, checked before anything is opened: NaN rotated a segment or pack never, and a
  // segment is read whole, with one read (node's reads stop at 2^31 - 1 bytes)
  if (options.journalSegmentBytesMax !== undefined) checkByteBound(options.journalSegmentBytesMax, 'journalSegmentBytesMax', 1, 2 ** 31 - 1);
  if (options.packBytesMax !== undefined) checkByteBound(options.packBytesMax, 'packBytesMax', 1, Number.MAX_SAFE_INTEGER);
  // A rebuild from the bucket that stopped part-way: an ordinary open would cut a newest batch whose
  // pack was lost and number new packs over lost ones (src/store/rebuild-from-bucket.ts).
  const marker = join(root, LAYOUT.rebuilding);
  if (!options.packsLost && (await (options.fs ?? nodeFileSystem).statIfExists(marker).catch(() => undefined))) {
    throw new MailstoreError('REFUSED', `${root} is being rebuilt from its bucket (${marker}) and that did not finish: run 'mailstore rebuild-from-bucket' into it again. Nothing was changed.`, { path: marker });
  }
  return options.readOnly ? openReadOnly(root, options) : openReadWrite(root, options);
}

/** Closes what an open produced, in the order close does, for an open that fails part-way. */
export async function closeOpened(opened: Opened, release: () => Promise<void>): Promise<void> {
  await opened.db?.close().catch(() => undefined);
  await opened.packs?.close();
  await opened.journal?.close();
  await release().catch(() => undefined);
}

async function openReadWrite(root: string, options: StoreOptions): Promise<StoreParts> {
  const fs = options.fs ?? nodeFileSystem;
  await refuseIgnoredSync(fs, root, 'the store');
  if (options.create && !(await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined))) {
    await initStore(fs, root);
  }
  const checked = await verifyIdentity(fs, root, { stagedJournal: () => stagedJournalToFinish(fs, root) });
  const rootDev = await fs.stat(root);
  const { release, stale } = await takeLock(fs, root, { waitMs: options.lockWaitMs, onWaiting: options.onLockWait });
  const health = newHealth();
  const opened: Opened = {};
  try {
    const identity = await identityAfterWait(fs, root, checked);
    const storeId = storeIdBytes(identity);
    health.storeUpgraded = await upgradeIdentity(fs, root, identity);
    const checkMounted = mountCheck(fs, root, rootDev);
    const packs = opened.packs = await openPacks(fs, root, storeId, options, checkMounted);
    // a replica's resync staged before a crash: swapped in whole (marker written), else discarded
    const resynced = await finishResync(fs, root);
    if (resynced !== undefined) {
      health.findings.push(`a resync from the primary (snapshot seq ${resynced}) interrupted by a crash was finished`);
      await verifyIdentity(fs, root); // the journal swapped in carries the store's marker
    }
    const journal = opened.journal = await openJournal(fs, root, storeId, options, checkMounted);
    packs.setInlineSource(journalInlineSource(journal));
    const db = await recoverIndex({ fs, root, storeId, packs, journal, health, opened }, options, stale);
    await removeCrashTemporaries(fs, root);
    return { root, fs, identity, storeId, db, packs, journal, checkMounted, release, health, readOnly: false };
  } catch (error) {
    await closeOpened(opened, release);
    throw error instanceof MailstoreError ? error : fromSystemError(error, 'opening store', root);
  }
}

/**
 * Temp files a writer killed between its write and its rename left in the store's root (settings,
 * REPLICATION, LOCK, the scrub cursor) and in consumers/ (a cursor is written at every compactor
 * round, snapshot and replication round): nothing else ever names them, so each such crash left one
 * for good. Only a dead writer's: a live process's (a CLI command writing a setting) is its write
 * in flight. snapshots/ and packs/ clear their own (snapshots.ts, removePartialPacks).
 */
async function removeCrashTemporaries(fs: FileSystem, root: string): Promise<void> {
  for (const dir of [root, join(root, CONSUMERS_DIR)]) {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const pid = durableTempPid(name) ?? (dir === root ? lockTempPid(name) : undefined);
      if (pid === undefined || pid === process.pid || processAlive(pid)) continue;
      await fs.unlink(join(dir, name)).catch(() => undefined); // tried again at the next open
    }
  }
}

/**
 * STORE once more after the wait for a writer: the writer may have been a newer mailstore that
 * upgraded the store meanwhile (refused here from now on), or another directory was mounted here.
 * The check before the wait stays: it keeps the lock from being created in a directory that is no store.
 */
async function identityAfterWait(fs: FileSystem, root: string, checked: StoreIdentity): Promise<StoreIdentity> {
  const identity = await verifyIdentity(fs, root, { stagedJournal: () => stagedJournalToFinish(fs, root) });
  if (identity.storeId !== checked.storeId) {
    throw new MailstoreError('UNMOUNTED', `${root} holds store ${identity.storeId} now, not ${checked.storeId} as when this open began: was another directory mounted here? Nothing was changed.`, { path: join(root, LAYOUT.identity) });
  }
  return identity;
}

/** Before a new pack, segment or any other file under the root is written, and when packs/ is gone: the store's file system must still be the one opened. */
// by inode too: another store moved into the root's place (mv) took the next pack or segment
function mountCheck(fs: FileSystem, root: string, opened: FileStat): CheckMounted {
  return async (path: string) => {
    const now = await fs.statIfExists(root).catch(() => undefined);
    const id = await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined);
    if (!now || now.dev !== opened.dev || now.ino !== opened.ino || !id) {
      throw new MailstoreError('UNMOUNTED', `${path}: the store's file system changed under it (unmounted or replaced, or its directory moved away: mv); nothing was written: mount it, or move it back, there again`, { path });
    }
  };
}

function openPacks(fs: FileSystem, root: string, storeId: Buffer, options: StoreOptions, checkMounted: CheckMounted): Promise<PackStore> {
  return PackStore.open(fs, join(root, LAYOUT.packs), storeId, { packBytesMax: options.packBytesMax ?? limits.packBytesMax, checkMounted });
}

function openJournal(fs: FileSystem, root: string, storeId: Buffer, options: StoreOptions, checkMounted: CheckMounted): Promise<Journal> {
  return Journal.open(fs, join(root, LAYOUT.journal), storeId, {
    segmentBytesMax: options.journalSegmentBytesMax ?? limits.journalSegmentBytesMax,
    recordBytesMax: limits.journalRecordBytesMax, checkMounted, preallocateBytes: limits.journalPreallocateBytes,
  });
}

interface Recovering {
  fs: FileSystem;
  root: string;
  storeId: Buffer;
  packs: PackStore;
  journal: Journal;
  health: Health;
  /** Where the index opened is recorded, so that a failure closes it. */
  opened: Opened;
}

/** Brings the index up to the journal: probe, open, cut the tail, replay; or rebuild it. */
async function recoverIndex(r: Recovering, options: StoreOptions, stale: boolean): Promise<IndexDb> {
  const indexPath = join(r.root, LAYOUT.index);
  const haveIndex = Boolean(await r.fs.statIfExists(indexPath)) && (await indexPassesProbe(r, indexPath, options, stale));
  let existing = haveIndex ? await openExistingIndex(r.fs, indexPath, r.storeId, r.health) : undefined;
  r.opened.db = existing?.db;
  if (!existing && !r.health.rebuilt) r.health.rebuilt = 'index is missing';
  // A rebuild starts from the newest snapshot that verifies: what it holds was applied to an index,
  // so acknowledged, and its seq is a high-water mark as an index's appliedSeq is.
  // (index missing: the snapshot is verified while it loads into the index built aside, one read)
  let start: RebuildStart | undefined = existing ? undefined : await chooseRebuildStart(r.fs, r.root, r.journal, r.storeId, r.health, { load: true });
  if (start?.loaded) r.opened.db = start.loaded.db; // closed by a failing open like any index
  if (existing && existing.appliedSeq + 1 < r.journal.firstSeq) {
    // An index older than the retired part of the journal (an old copy put back) cannot catch up
    // by replay; a snapshot at or past the journal's start can replace it.
    const candidate = await chooseRebuildStart(r.fs, r.root, r.journal, r.storeId, newHealth());
    if (candidate.snapshot && candidate.snapshot.seq > existing.appliedSeq) {
      r.health.rebuilt = `the index (at seq ${existing.appliedSeq}) is older than the journal, which was retired up to seq ${r.journal.firstSeq - 1}`;
      await existing.db.close();
      r.opened.db = existing = undefined;
      start = candidate;
    }
  }
  const highWater = existing?.appliedSeq ?? start?.snapshot?.seq ?? 0;
  if (existing && !options.allowMissingPacks) await checkPacksPresent(existing.db, r.packs, r.root);
  const covered = async (firstSeq: number) => start ? (start.snapshot?.seq ?? -1) + 1 >= firstSeq : snapshotCovers(r.fs, r.root, r.storeId, firstSeq);
  const top = await resolveTail(r.fs, r.root, r.journal, highWater, r.health, covered);
  await checkSnapshotHighWater(r.fs, r.root, r.storeId, top, r.health);
  await resolveNewestBatch(r.fs, r.root, r.journal, r.packs, highWater, r.health, Boolean(options.packsLost), existing?.db ?? start?.loaded?.db);
  if (existing) {
    // Nothing past the index's high-water mark, and resolveTail checked the newest segment whole and
    // found no damage: a replay would read and check it all again to find no record (issue 16).
    if (!r.journal.nothingAfter(existing.appliedSeq)) await replay(r.journal, existing.db, existing.appliedSeq, r.health);
    await reportIncompleteImage(existing.db, r.health);
    return existing.db;
  }
  if (await r.fs.statIfExists(indexPath)) await moveAside(r.fs, r.root, indexPath, 'index-damaged');
  await rebuildIndex(r.fs, r.root, r.journal, r.storeId, r.health, start);
  return (r.opened.db = await IndexDb.open(indexPath, false));
}

/**
 * LevelDB can abort the process on some damaged files, so after a crash (or always, if asked) the
 * index is first opened in a child process; one that fails is moved aside and rebuilt.
 */
async function indexPassesProbe(r: Recovering, indexPath: string, options: StoreOptions, stale: boolean): Promise<boolean> {
  const probe = options.probeIndex ?? 'after-crash';
  if (!(probe === 'always' || (probe === 'after-crash' && stale))) return true;
  const { probeIndex } = await import('../index/probe.js'); // only an open after a crash probes: not in every append's start-up
  const result = probeIndex(indexPath);
  if (result.locked) throw new MailstoreError('LOCKED', `the index at ${indexPath} is held by another process: ${result.detail}`, { path: indexPath });
  if (result.system) throw new MailstoreError(result.system, result.detail, { path: indexPath });
  if (result.ok) return true;
  r.health.rebuilt = `index failed its probe: ${result.detail}`;
  await moveAside(r.fs, r.root, indexPath, 'index-damaged');
  return false;
}

/**
 * Open without writing: verify, check that no writer runs, open a shadow of the index, and serve
 * it only if it has applied every record the journal holds. No replay, no tail cut, no rebuild.
 */
async function openReadOnly(root: string, options: StoreOptions): Promise<StoreParts> {
  const fs = options.fs ?? nodeFileSystem;
  if (options.create) throw new MailstoreError('INVALID', 'a read-only open cannot create a store', { path: root });
  const checked = await verifyIdentity(fs, root, { stagedJournal: () => stagedJournalToFinish(fs, root) }); // refused below (refuseHalfResync)
  const rootDev = await fs.stat(root); // root's backup record is written beside a read-only open (backup-records.ts)
  const { stale } = await checkNoWriter(fs, root, { waitMs: options.lockWaitMs, onWaiting: options.onLockWait });
  const identity = await identityAfterWait(fs, root, checked);
  const storeId = storeIdBytes(identity);
  await refuseHalfResync(fs, root);
  const indexPath = join(root, LAYOUT.index);
  // on read-only media (an image, a read-only snapshot) no open can write: the copy is the way
  const repairHint = 'a read-only open does not repair it: open the store read-write once (any writing command, as a user who may write it) and retry; on read-only media (an image, a read-only snapshot), copy the store to writable storage (cp -a) and open the copy';
  if (!(await fs.statIfExists(indexPath))) throw new MailstoreError('REFUSED', `the index at ${indexPath} is missing; ${repairHint}`, { path: indexPath });
  const shadow = await shadowLevelDb(indexPath);
  const health = newHealth();
  const opened: Opened = {};
  try {
    const probe = options.probeIndex ?? 'after-crash';
    if (probe === 'always' || (probe === 'after-crash' && stale)) {
      const { probeIndex } = await import('../index/probe.js');
      const result = probeIndex(shadow.path);
      if (result.system) throw new MailstoreError(result.system, result.detail, { path: indexPath });
      if (!result.ok) throw new MailstoreError('REFUSED', `the index at ${indexPath} failed its probe (${result.detail}); ${repairHint}`, { path: indexPath });
    }
    const existing = await openExistingIndex(fs, shadow.path, storeId, health);
    if (!existing) throw new MailstoreError('REFUSED', `the index at ${indexPath} cannot be used (${health.rebuilt}); ${repairHint}`, { path: indexPath });
    const db = opened.db = existing.db;
    const noMount = async (path: string) => { throw new MailstoreError('ACCESS', `the store at ${root} is open read-only: not creating ${path}`, { path }); };
    const packs = opened.packs = await openPacks(fs, root, storeId, options, noMount);
    const journal = opened.journal = await openJournal(fs, root, storeId, options, noMount);
    packs.setInlineSource(journalInlineSource(journal));
    await checkPacksPresent(db, packs, root);
    await catchUpShadow(journal, packs, db, existing.appliedSeq, health, indexPath, repairHint);
    return { root, fs, identity, storeId, db, packs, journal, checkMounted: mountCheck(fs, root, rootDev), release: shadow.remove, health, readOnly: true };
  } catch (error) {
    await closeOpened(opened, shadow.remove);
    throw error instanceof MailstoreError ? error : fromSystemError(error, 'opening store read-only', root);
  }
}

/**
 * A read-only open serves the index once it has applied every acknowledged record of the journal.
 * Records beyond its watermark (a live writer hands its index to LevelDB up to
 * limits.indexBehindMs after a commit, so a file-system snapshot or image of a running store
 * nearly always has some) are replayed into the shadow — the private copy LevelDB writes in
 * (level-shadow.ts), never the store — up to the end of the newest complete batch whose bodies
 * read back (recovery.ts durableTailEnd). A batch in flight, or one whose bodies never reached the packs,
 * was not acknowledged: a read-write open cuts it, a read-only one refuses (REFUSED) rather than
 * serve a journal with records past its index. Torn bytes after the last valid record are ignored
 * (a read-write open cuts them); an index ahead of the journal is served, as a read-write open would.
 */
async function catchUpShadow(journal: Journal, packs: PackStore, db: IndexDb, appliedSeq: number, health: Health, indexPath: string, repairHint: string): Promise<void> {
  let found = await journal.findTail();
  // A newest segment with neither header nor record past the index (a writer between making a
  // segment's file and its first write): a read-write open moves it to quarantine (resolveTail);
  // the records before it are the tail.
  while (found.empty && appliedSeq < found.empty.firstSeq) {
    journal.passOverEmptyNewestSegment();
    found = await journal.findTail();
  }
  const { lastSeq } = found;
  const tail = journal.takeTailRecords();
  if (lastSeq > appliedSeq) {
    const upTo = await durableTailEnd(tail, packs, appliedSeq);
    // A newest batch that was not complete or whose bodies are not in the packs (never
    // acknowledged) is cut by a read-write open; a read-only one cannot cut it, and the journal's
    // readers (changes since a seq: backup, events) would still meet it past the index: refused,
    // as before, with the reason.
    if (upTo < lastSeq) {
      throw new MailstoreError('REFUSED', `journal records ${upTo + 1}..${lastSeq} are a batch that was not complete or whose message bodies are not in the packs (never acknowledged), which only a read-write open cuts; ${repairHint}`, { path: indexPath });
    }
    await replay(journal, db, appliedSeq, health, undefined, upTo);
    return;
  }
  if (appliedSeq > lastSeq) {
    health.degraded = true;
    health.findings.push(`the index has applied journal records up to ${appliedSeq} but the journal ends at ${lastSeq}: journal records are missing`);
  }
}

/** packs/ with no pack files while the index refers to blobs: a vanished partition, not an empty store. */
async function checkPacksPresent(db: IndexDb, packs: PackStore, root: string): Promise<void> {
  if ((await packs.listPacks()).length > 0) return;
  // Packs that moved to the object store (tier.ts) are not in packs/: the index records them.
  for await (const _ of db.entries({ prefix: keys.meta(TIER_META).subarray(0, -1), limit: 1 })) return;
  // Inline bodies live in the journal (docs/FORMAT.md, "Inline bodies"): a store of small messages
  // may have no pack at all. Blob keys are hashes, so the first entries are a random sample.
  for await (const [, blob] of db.entries<BlobRecord>({ prefix: keys.space(SPACE.blob), limit: limits.packsPresentSampleEntries })) {
    if (blob.p === INLINE_PACK) continue;
    throw new MailstoreError('UNMOUNTED', `${join(root, LAYOUT.packs)} holds no packs but the index refers to stored messages: is the partition mounted? Nothing was changed.`, { path: join(root, LAYOUT.packs) });
  }
}
