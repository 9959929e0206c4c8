// `mailstore restore` into a new store: a snapshot (or one user, or one mailbox of it) exactly as
// it was. The blobs go into the new store's packs and the selected state is written as its
// journal (a checkpoint starting above the snapshot's seq, docs/FORMAT.md), so uids,
// uidValidity, modseqs, flags, dates, ACLs and owners are as they were; the store is built
// inside the target and moved into place (STORE last) once it opens and holds what it should.
// Every blob is verified by its hash on the way. Into a live store: restore-live.ts.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { PackStore, type BlobLocation } from '../blob/pack-store.js';
import { backupLimits, limits } from '../limits.js';
import { UID_VALIDITY_LAST_NAME, UID_VALIDITY_MAX, uidValidityAfter, uidValidityLastAfter } from '../store/apply.js';
import { writeStateSegments } from '../store/checkpoint.js';
import { LAYOUT, initStore, refuseOthersMayWrite, refuseStoreInsideStore, storeIdBytes } from '../store/identity.js';
import { withoutHint, type Op } from '../store/records.js';
import { Store } from '../store/store.js';
import { formatMailboxName } from '../store/validate.js';
import { createFileDurable } from '../fs/durable.js';
import { lockRepository, processGone, type BlobIndex, type Repository } from './repository.js';
import { indexRepairNotes, readBlobOrLeaveOut, selectState, type LeftOutMessage, type RestoreOptions, type RestoreSummary, type Selected } from './select.js';
import { toggleMessage } from '../store/mailbox-digest.js';
import { SEEN } from '../store/apply.js';
import { monotonicMs } from '../monotonic.js';

export { restoreIntoStore } from './restore-live.js';
export { selectState, readBlob, type LeftOutMessage, type RestoreSelection, type RestoreSummary, type RestoreOptions, type RestoreTarget } from './select.js';

/**
 * A new store is built in TARGET/.restoring (on the target's own file system, which may be a
 * freshly mounted disk), announced by TARGET/RESTORING, and moved up into TARGET when complete,
 * STORE last: until STORE is there, TARGET is no store, and the next restore clears it.
 */
const BUILD_DIR = '.restoring';
const RESTORING_MARK = LAYOUT.restoring;
/** How every restore's mark begins (since the first: older ones wrote no pid). */
const CLAIM_PREFIX = 'restoring snapshot ';
/** A file system root's lost+found is not content. */
const IGNORED = new Set(['lost+found']);

export async function restoreToNewStore(fs: FileSystem, repo: Repository, snapshotRef: string, target: string, options: RestoreOptions = {}): Promise<RestoreSummary> {
  const started = monotonicMs();
  const readBefore = repo.dataBytesRead;
  await refuseStoreInsideStore(fs, target);
  const lock = await lockRepository(repo, false, { readOnly: true });
  try {
    const { id, snapshot } = await repo.findSnapshot(snapshotRef);
    const selected = selectState(snapshot, options.selection ?? {});
    if (options.newUidValidity) giveNewUidValidities(selected, snapshot.time);
    const index = await repo.loadIndex();
    const created = await prepareTarget(fs, target, id);
    let written: WrittenBlobs;
    try {
      written = await buildStore(fs, repo, index, join(target, BUILD_DIR), snapshot.seq, selected, options);
    } catch (error) {
      await clearTarget(fs, target, created); // all of it made here from the repository: nothing is lost
      throw error;
    }
    await installBuilt(fs, join(target, BUILD_DIR), target);
    return {
      snapshot: id, storeId: snapshot.storeId, seq: snapshot.seq, to: target, mailboxes: selected.mailboxes.length,
      uidValidity: options.newUidValidity ? 'new' : 'kept', messages: written.messages, bytes: written.bytes, bytesRead: repo.dataBytesRead - readBefore, durationMs: Math.round(monotonicMs() - started), ...indexRepairNotes(index, written.leftOut),
    };
  } finally {
    await lock.release();
  }
}

/**
 * Each selected mailbox gets a uidValidity above every one the snapshot's store gave (counted on
 * from its uidValidityLast, as createMailbox does), its uids, modseqs and flags staying as they
 * were. The store lived on after the snapshot: it gave uids from the snapshot's uidNext on to mail
 * this restore does not hold, IMAP clients cached them, and under the same uidValidity the restored
 * store gave those uids again to other mail (a client showed its cached message for the new one's
 * uid) and modseqs went back below what clients had seen (RFC 9051 2.3.1.1, RFC 7162). A new
 * uidValidity makes every client drop its cache of the mailbox and read it again.
 * The count starts the seconds since the snapshot above its last one: a store whose last ran ahead
 * of the clock (mailboxes made faster than one a second: an undump, a migration) gave the same
 * values at every restore of one snapshot, so a second restore gave the first one's again, to
 * mailboxes whose clients had cached what the first restored store gave out since.
 */
function giveNewUidValidities(selected: Selected, snapshotTimeMs: number): void {
  const at = selected.meta.findIndex(([key]) => key === UID_VALIDITY_LAST_NAME);
  const recorded = at >= 0 && typeof selected.meta[at]![1] === 'number' ? selected.meta[at]![1] as number : 0;
  const secondsSince = Math.max(0, Math.floor((Date.now() - snapshotTimeMs) / 1000));
  // a reduce, not a spread: a store of 120k mailboxes and more (a spread threw RangeError)
  let last = Math.min(UID_VALIDITY_MAX, selected.mailboxes.reduce((highest, box) => Math.max(highest, box.uidValidity), recorded) + secondsSince);
  selected.mailboxes = selected.mailboxes.map((box) => {
    const uidValidity = uidValidityAfter(last);
    last = uidValidityLastAfter(last, uidValidity);
    return { ...box, uidValidity };
  });
  if (at >= 0) selected.meta[at] = [UID_VALIDITY_LAST_NAME, last];
  else selected.meta.push([UID_VALIDITY_LAST_NAME, last]);
}

/** Blobs into packs, the state as the journal, then an open that must find every selected mailbox as it was. */
async function buildStore(fs: FileSystem, repo: Repository, index: BlobIndex, build: string, seq: number, selected: Selected, options: RestoreOptions): Promise<WrittenBlobs> {
  const identity = await initStore(fs, build);
  const written = await writeBlobs(fs, repo, index, build, storeIdBytes(identity), selected, options);
  leaveOut(selected, written.leftOutIds);
  const ops = stateOps(seq, selected, written.blobs);
  await writeStateSegments(fs, join(build, LAYOUT.journal), storeIdBytes(identity), seq + 1, ops[Symbol.iterator](), limits.journalSegmentBytesMax)
    .catch((error) => { throw fromSystemError(error, 'writing the restored journal', build); });
  await verifyBuilt(fs, build, selected);
  return written;
}

/** After a failed build: the target as it was (removed when this restore created it). */
async function clearTarget(fs: FileSystem, target: string, created: boolean): Promise<void> {
  if (created) {
    await fs.removeTree(target).catch(() => undefined);
    return;
  }
  for (const name of await fs.readdir(target).catch(() => [] as string[])) {
    if (!IGNORED.has(name)) await fs.removeTree(join(target, name)).catch(() => undefined);
  }
}

/**
 * The target must be missing, empty, or what an interrupted restore left (RESTORING and no STORE:
 * all of it made by that restore from the repository, so it is cleared). RESTORING is this
 * restore's claim on the target (claimTarget): taken before anything there is removed, so a second
 * restore into the same directory is refused (LOCKED) instead of clearing the first one's build.
 */
async function prepareTarget(fs: FileSystem, target: string, snapshot: string): Promise<boolean> {
  let created = false;
  try {
    const existing = await fs.statIfExists(target);
    if (existing?.isDirectory) refuseOthersMayWrite(existing, target);
    if (!existing) {
      try {
        await fs.mkdir(target);
        await fs.syncDir(dirname(target));
        created = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another restore made it meanwhile: its claim decides
      }
    }
    const names = await contentOf(fs, target);
    const restoring = names.includes(RESTORING_MARK) || names.some(isClaimTemp);
    if (names.includes(LAYOUT.identity) || (names.length > 0 && !restoring)) throw notEmpty(target);
    const tookOver = await claimTarget(fs, target, snapshot);
    // under our claim: anything else there was left by a restore that is gone, unless a restore
    // finished meanwhile (STORE) or something else appeared
    const left = (await contentOf(fs, target)).filter((name) => name !== RESTORING_MARK && !isClaimTemp(name));
    if (left.includes(LAYOUT.identity) || (left.length > 0 && !tookOver && !restoring)) {
      await fs.unlink(join(target, RESTORING_MARK));
      throw notEmpty(target);
    }
    for (const name of left) await fs.removeTree(join(target, name));
  } catch (error) {
    throw fromSystemError(error, 'preparing the restore target', target);
  }
  return created;
}

/** The target's entries but lost+found ('?' for a path that is no directory: never empty). */
async function contentOf(fs: FileSystem, target: string): Promise<string[]> {
  const stat = await fs.stat(target);
  return stat.isDirectory ? (await fs.readdir(target)).filter((n) => !IGNORED.has(n)) : ['?'];
}

function notEmpty(target: string): MailstoreError {
  return new MailstoreError('EXISTS', `${target} exists and is not empty: a whole-store restore goes into a new directory (a --mailbox or --user restore into a live store needs a store there)`, { path: target });
}

/** A mark being written by claimTarget (renamed to RESTORING an instant later). */
function isClaimTemp(name: string): boolean {
  return name.startsWith(`.${RESTORING_MARK}.`) && name.endsWith('.tmp');
}

/**
 * Writes RESTORING naming this process (renameNoReplace: of two restores, one gets it). A mark
 * already there whose process runs (or runs on another host: it cannot be asked) refuses with
 * LOCKED; one of a process that is gone, or of an older mailstore (no pid in it), is taken over
 * (returns true). A RESTORING that no restore wrote (it does not begin as a mark does) is someone's
 * file in a directory that is not empty: EXISTS, and nothing is removed. The mark is set aside before the claim and checked to be the one judged stale,
 * so a restore that took it over a moment earlier keeps its claim.
 */
async function claimTarget(fs: FileSystem, target: string, snapshot: string): Promise<boolean> {
  const mark = join(target, RESTORING_MARK);
  const claim = Buffer.from(`${CLAIM_PREFIX}${snapshot} here (pid ${process.pid} on ${hostname()}); an interrupted restore is cleared by the next one\n`);
  let tookOver = false;
  for (let attempt = 0; ; attempt++) {
    try {
      await createFileDurable(fs, mark, claim);
      return tookOver;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= backupLimits.restoreClaimAttempts) throw error;
    }
    const text = await fs.readFile(mark).then((bytes) => bytes.toString('utf8'), () => undefined);
    if (text === undefined) continue; // removed meanwhile: try again
    if (!text.startsWith(CLAIM_PREFIX)) throw notEmpty(target); // a file of that name that no restore wrote: nothing there is ours to clear
    const owner = /\(pid ([0-9]+) on ([^)]*)\)/.exec(text);
    if (owner && !(await processGone(Number(owner[1]), owner[2]))) throw restoreRunning(target, owner[1], owner[2]);
    const aside = join(target, `.${RESTORING_MARK}.${process.pid}.${randomBytes(6).toString('hex')}.stale.tmp`);
    try {
      await fs.rename(mark, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const moved = await fs.readFile(aside).then((bytes) => bytes.toString('utf8'), () => undefined);
    if (moved !== text) {
      await fs.renameNoReplace(aside, mark).catch(() => undefined); // another restore's fresh claim: back in place
      throw restoreRunning(target, '?', 'this or another host');
    }
    await fs.unlink(aside);
    tookOver = true;
  }
}

function restoreRunning(target: string, pid: string, host: string): MailstoreError {
  return new MailstoreError('LOCKED', `another restore (pid ${pid} on ${host}) is building a store in ${target}; wait for it to finish (if it is not running any more, remove ${join(target, RESTORING_MARK)} and restore again)`, { path: join(target, RESTORING_MARK) });
}

interface WrittenBlobs {
  blobs: Map<string, { location: BlobLocation; references: number }>;
  messages: number;
  bytes: number;
  /** The messages left out (leaveOutDamaged), as reported... */
  leftOut: LeftOutMessage[];
  /** ...and by mailbox id (hex): their uids. */
  leftOutIds: Map<string, Set<number>>;
}

/**
 * Every selected message's blob, verified, into the new store's packs (once per blob); refcounts
 * counted. With leaveOutDamaged a message whose blob is damaged or missing is left out (noted in
 * `leftOut`; another message of the same blob is left out with it, without reading it again).
 */
async function writeBlobs(fs: FileSystem, repo: Repository, index: BlobIndex, build: string, storeId: Buffer, selected: Selected, options: RestoreOptions): Promise<WrittenBlobs> {
  const packs = await PackStore.open(fs, join(build, LAYOUT.packs), storeId, { packBytesMax: limits.packBytesMax, checkMounted: async () => undefined });
  const result: WrittenBlobs = { blobs: new Map(), messages: 0, bytes: 0, leftOut: [], leftOutIds: new Map() };
  const damaged = new Map<string, LeftOutMessage>();
  const leftOut = options.leaveOutDamaged ? result.leftOut : undefined;
  try {
    let batch = packs.beginBatch();
    for (const box of selected.mailboxes) {
      const boxKey = Buffer.from(box.id).toString('hex');
      const mailbox = formatMailboxName(box.name);
      for (const [uid, hash, size] of selected.messages.get(boxKey) ?? []) {
        const key = Buffer.from(hash).toString('hex');
        const known = result.blobs.get(key);
        const bad = damaged.get(key);
        let bytes: Buffer | undefined;
        if (!known && !bad) bytes = await readBlobOrLeaveOut(repo, index, Buffer.from(hash), { mailbox, uid, what: `${mailbox} uid ${uid}`, sizeBytes: size }, leftOut);
        if (bad) result.leftOut.push({ ...bad, mailbox, uid });
        if (bad || (!known && !bytes)) {
          if (!bad) damaged.set(key, result.leftOut.at(-1)!);
          listIn(result.leftOutIds, boxKey).add(uid);
          continue;
        }
        result.messages++;
        result.bytes += size;
        if (known) { known.references++; continue; }
        result.blobs.set(key, { location: batch.reserve(Buffer.from(hash), bytes!), references: 1 });
        if (batch.bytes >= backupLimits.restoreBatchBytes) {
          await packs.write(batch);
          await packs.sync();
          batch = packs.beginBatch();
        }
        options.onProgress?.(result.messages, result.bytes);
      }
    }
    await packs.write(batch);
    await packs.sync();
  } finally {
    await packs.close();
  }
  return result;
}

function listIn<K, V>(map: Map<K, Set<V>>, key: K): Set<V> {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  return set;
}

/**
 * Takes the left-out messages out of the state the new store is written from: their entries and
 * change-log entries, and their share of each mailbox's counts and digest (so scrub and `replica
 * check` find the mailbox as its messages are). Their uids stay given out (uidNext as it was, never
 * reused), and the mailbox's vanished floor rises to its highest modseq: a client that cached one
 * of them is told it is gone, as after an expunge (changesSince answers the uids that hold none).
 */
function leaveOut(selected: Selected, left: Map<string, Set<number>>): void {
  if (left.size === 0) return;
  selected.mailboxes = selected.mailboxes.map((box) => {
    const key = Buffer.from(box.id).toString('hex');
    const uids = left.get(key);
    if (!uids) return box;
    const digest = box.digest ? [...box.digest] as [number, number, number, number] : undefined;
    let { messages, unseen, bytes } = box;
    const kept = [];
    for (const entry of selected.messages.get(key) ?? []) {
      const [uid, h, s, d, f, m] = entry;
      if (!uids.has(uid)) { kept.push(entry); continue; }
      messages--;
      bytes -= s;
      if (!f.includes(SEEN)) unseen--;
      if (digest) toggleMessage(digest, uid, { h, s, d, f, m });
    }
    selected.messages.set(key, kept);
    const out = { ...box, messages, unseen, bytes, vanishedFloor: Math.max(box.vanishedFloor ?? 0, box.highestModseq) };
    if (digest) out.digest = digest;
    return out;
  });
  selected.changes = selected.changes.map((op) => {
    const uids = left.get(Buffer.from(op.id).toString('hex'));
    return uids ? { ...op, entries: op.entries.filter(([, uid]) => !uids.has(uid)) } : op;
  });
}

/** The journal of the new store: the snapshot's state with the blobs where this restore put them (exported for tests). */
export function stateOps(seq: number, selected: Selected, written: Map<string, { location: BlobLocation; references: number }>): Op[] {
  const per = limits.checkpointEntriesPerRecord;
  const ops: Op[] = [{ op: 'state.begin', appliedSeq: seq }];
  for (let i = 0; i < selected.meta.length; i += per) ops.push({ op: 'state.meta', entries: selected.meta.slice(i, i + per) });
  for (const info of selected.mailboxes) ops.push({ op: 'state.mailbox', info });
  for (const info of selected.mailboxes) {
    const list = (selected.messages.get(Buffer.from(info.id).toString('hex')) ?? []).map((entry) => hintedHere(entry, written));
    for (let i = 0; i < list.length; i += per) ops.push({ op: 'state.messages', id: info.id, messages: list.slice(i, i + per) });
  }
  // one at a time: a store of more than ~120k mailboxes with mail has as many of them (a spread threw RangeError)
  for (const op of selected.changes) ops.push(op);
  const blobs = [...written].map(([key, b]): [Buffer, number, number, number, number] => [Buffer.from(key, 'hex'), b.location.pack, b.location.offset, b.location.length, b.references]);
  for (let i = 0; i < blobs.length; i += per) ops.push({ op: 'state.blobs', blobs: blobs.slice(i, i + per) });
  return ops;
}

type StateMessage = Extract<Op, { op: 'state.messages' }>['messages'][number];

/**
 * A state entry with its blob-location hint where this restore wrote the blob (the source store's
 * hint names its own packs: a read there would fail its checks and fall back, every time).
 */
function hintedHere(entry: StateMessage, written: Map<string, { location: BlobLocation }>): StateMessage {
  const [uid, h, s, d, f, m, x] = entry;
  const extras = withoutHint(x ?? {});
  const location = written.get(Buffer.from(h).toString('hex'))?.location;
  const out = { ...extras, ...(location ? { p: location.pack, o: location.offset } : {}) };
  return Object.keys(out).length > 0 ? [uid, h, s, d, f, m, out] : [uid, h, s, d, f, m];
}

/** Opens the built store (its index is rebuilt from the new journal) and checks it holds what was selected. */
async function verifyBuilt(fs: FileSystem, build: string, selected: Selected): Promise<void> {
  const store = await Store.open(build, { fs });
  try {
    for (const box of selected.mailboxes) {
      const status = await store.status(formatMailboxName(box.name));
      const expected = selected.messages.get(Buffer.from(box.id).toString('hex'))?.length ?? 0;
      if (status.messages !== expected || status.uidNext !== box.uidNext || status.uidValidity !== box.uidValidity) {
        throw new MailstoreError('CORRUPT', `the restored store does not hold ${formatMailboxName(box.name)} as the snapshot does (${status.messages} messages, expected ${expected}); nothing was installed`, { path: build });
      }
    }
  } finally {
    await store.close();
  }
}

/** Moves the built store up into the target, STORE last, then drops the build directory and the mark. */
async function installBuilt(fs: FileSystem, build: string, target: string): Promise<void> {
  try {
    const names = await fs.readdir(build);
    for (const name of names) if (name !== LAYOUT.identity) await fs.rename(join(build, name), join(target, name));
    await fs.syncDir(target);
    await fs.rename(join(build, LAYOUT.identity), join(target, LAYOUT.identity));
    await fs.syncDir(target);
    await fs.rmdir(build);
    await fs.unlink(join(target, RESTORING_MARK));
    await fs.syncDir(target);
  } catch (error) {
    throw fromSystemError(error, `installing the restored store (built in ${build}) at`, target);
  }
}
