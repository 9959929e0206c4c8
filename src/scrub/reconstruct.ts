// mailstore reconstruct: recover from the best surviving source. The journal rebuilds the index
// when it replays whole; an intact index rewrites a lost or damaged journal (a checkpoint of its
// state); the packs are the last resort (--from-packs: messages no source knows go into
// lost+found by date). A rebuild that would keep less than the index has now is refused without
// --force, and the result says which source was used.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { ensureDir, fileTimeStamp, writeFileDurable } from '../fs/durable.js';
import { keys } from '../keys/index-keys.js';
import { LAYOUT, recreateLostIdentity, storeIdAt, takeLock, verifyIdentity, type LockWait } from '../store/identity.js';
import { decodeSegmentHeader, parseSegmentFileName, SEGMENT_HEADER_BYTES } from '../journal/journal-format.js';
import { decodePackHeader, PACK_HEADER_BYTES, parsePackFileName } from '../blob/pack-format.js';
import { uuidString } from '../store/types.js';
import { finishJournalSwap } from '../store/checkpoint.js';
import { describeLoss, moveAside } from '../store/recovery.js';
import { meta } from '../store/apply.js';
import { Store, type RebuildComparison } from '../store/store.js';
import type { BlobRecord, JournalPayload } from '../store/records.js';
import { decodeCbor } from '../index/codec.js';
import { hashBytes } from '../hash/blake3.js';
import { keyInSubtree, mailboxesUnder, normalizePrefix } from './scoped.js';
import { unreadableInlineBodies } from './scrub.js';
import type { Finding } from './findings.js';

/** 'snapshot': the newest valid snapshot and the journal after it (the journal, read from a snapshot). */
export type RecoverySource = 'journal' | 'snapshot' | 'index' | 'packs';

export interface ReconstructOptions {
  fs?: FileSystem;
  /** Compare a fresh rebuild with the current index and say which source would be used; change nothing. */
  check?: boolean;
  /** The last resort: also file messages found only in the packs into lost+found. */
  fromPacks?: boolean;
  /** Use this source instead of the best one. */
  from?: 'journal' | 'index';
  /** Proceed even when the result would keep less than the index has now. */
  force?: boolean;
  /**
   * STORE lost while the store is mounted: write it again from the packs/ and journal/ markers.
   * Only when asked: a missing STORE otherwise looks like an unmounted partition, and nothing is written.
   */
  identityFromMarkers?: boolean;
  onDifference?: (key: Buffer, detail: string) => void;
  /** Wait this long for another process holding the store (default 0: LOCKED at once), telling onLockWait meanwhile. */
  lockWaitMs?: number;
  onLockWait?: (holder: string, waitedMs: number) => void;
  /**
   * With `check` only: compare just this mailbox's subtree (its I, M, C, N and R keys) and report
   * only its differences (onDifference, `scope`). The rebuild aside is still of the whole journal.
   */
  mailbox?: string;
}

/** The comparison of the index with a rebuild from the journal (RebuildComparison), and what was done. */
export interface ReconstructResult extends RebuildComparison {
  /** What the store was recovered from. */
  source: RecoverySource;
  /** Why that source. */
  reason: string;
  /** Set when a new journal was written from the index. */
  journalRewritten?: { records: number; firstSeq: number; lastSeq: number; replaced?: string };
  lostAndFound?: { mailbox: string; messages: number };
  journalRecreated: boolean;
  /** STORE was missing and was written again from the packs/ and journal/ markers: the store id. */
  identityRecreated?: string;
  /** packs/ or journal/ whose STORE-ID marker alone was lost or damaged, written again from their files' headers. */
  markersRestored?: string[];
  findings: string[];
  /** Set by a scoped check (`mailbox`): the subtree and the keys of it that differ. */
  scope?: { mailbox: string; mailboxes: number; differences: number };
  /**
   * Inline bodies the index keeps that do not read back from their journal records (scrub's
   * blob-missing findings, with the messages using each), and how many messages use them: mail
   * the rebuilt index lists and fetch refuses CORRUPT. Set by every run but a scoped check.
   */
  unreadable?: { messages: number; bodies: Finding[] };
}

/** Aborts the index swap inside reconstructIndex when the index is the better source. */
class KeepIndex extends Error {
  constructor(readonly comparison: RebuildComparison) {
    super('the index is kept');
  }
}

export async function reconstruct(root: string, options: ReconstructOptions = {}): Promise<ReconstructResult> {
  const fs = options.fs ?? nodeFileSystem;
  let journalRecreated = false;
  let identityRecreated: string | undefined;
  let markersRestored: string[] = [];
  if (options.mailbox !== undefined && !options.check) {
    throw new MailstoreError('INVALID', 'reconstruct --mailbox only checks (with --check): a recovery rebuilds the whole index or journal, since one record can touch several mailboxes');
  }
  const wait = { waitMs: options.lockWaitMs, onWaiting: options.onLockWait };
  if (!options.check) {
    // Holding the lock: a journal/ missing for a moment is another process swapping in a rebuilt
    // journal (a repair), whose files these must not touch (a fresh empty journal/ made in that
    // moment kept the rebuilt one from being installed).
    await holdingLock(fs, root, wait, async () => {
      if (options.identityFromMarkers) identityRecreated = await recreateLostIdentity(fs, root);
      markersRestored = await restoreLostMarkers(fs, root);
      await finishJournalSwap(fs, root);
      // A lost journal/ is started afresh when something can fill it: the index (rewritten into it)
      // or, asked for, the packs. Otherwise open refuses (UNMOUNTED): it may be an unmounted partition.
      if (options.fromPacks || (await fs.statIfExists(join(root, LAYOUT.index)))) journalRecreated = await recreateLostJournal(fs, root);
    });
  }
  const store = await Store.open(root, { fs, probeIndex: 'always', autoSnapshot: false, lockWaitMs: options.lockWaitMs, onLockWait: options.onLockWait });
  try {
    const scope = options.mailbox === undefined ? undefined : await subtreeScope(store, options.mailbox);
    const onDifference = !scope ? options.onDifference : (key: Buffer, detail: string) => {
      if (!scope.inSubtree(key)) return;
      scope.result.differences++;
      options.onDifference?.(key, detail);
    };
    const journalImage = await indexJournalImage(store);
    const indexIsJournalImage = journalImage !== undefined;
    const packs = (await store.maintenance().packs.listPacks()).length;
    let decision: { source: RecoverySource; reason: string } | undefined;
    let comparison: RebuildComparison;
    try {
      comparison = await store.maintenance().reconstructIndex({
        check: options.check,
        onDifference,
        guard: (c) => {
          decision = chooseSource(c, options, journalImage);
          if (decision.source === 'index') throw new KeepIndex(c);
          refuseLoss(c, options, root, store.maintenance().journal.lastSeq === 0 && packs > 0 && indexIsJournalImage);
        },
      });
    } catch (error) {
      if (!(error instanceof KeepIndex)) throw error;
      comparison = error.comparison;
    }
    decision ??= chooseSource(comparison, options, journalImage);
    const result: ReconstructResult = {
      ...decision, records: comparison.records, differences: comparison.differences, messagesBefore: comparison.messagesBefore,
      messagesAfter: decision.source === 'index' ? comparison.before.messages : comparison.messagesAfter,
      before: comparison.before, after: decision.source === 'index' ? comparison.before : comparison.after,
      journalIntact: comparison.journalIntact, journalProblems: comparison.journalProblems, journalRecreated, ...(identityRecreated ? { identityRecreated } : {}),
      ...(markersRestored.length > 0 ? { markersRestored } : {}), findings: store.health.findings,
      rebuiltFrom: comparison.rebuiltFrom, ...(comparison.snapshot ? { snapshot: comparison.snapshot } : {}),
    };
    if (scope) {
      if (scope.result.mailboxes === 0 && scope.result.differences === 0) throw new MailstoreError('NOT_FOUND', `no mailbox ${scope.result.mailbox} or below it, in the index or the journal`, { path: scope.result.mailbox });
      result.scope = scope.result;
    }
    if (!options.check) {
      if (decision.source === 'index') result.journalRewritten = await store.maintenance().rewriteJournalFromIndex();
      if (options.fromPacks) {
        result.lostAndFound = await adoptUnreferenced(store);
        if (result.before.messages === 0 && result.lostAndFound.messages > 0) {
          result.source = 'packs';
          result.reason = 'neither the journal nor the index holds any message: the messages were recovered from the packs';
        }
        result.messagesAfter += result.lostAndFound.messages;
      }
    }
    if (!scope) {
      // A rebuild from a snapshot reads no record below it: "rebuilt" said nothing of the bodies there
      const bodies = await unreadableInlineBodies(store);
      result.unreadable = { messages: bodies.reduce((sum, f) => sum + ('refs' in f ? f.refs.length : 0), 0), bodies };
    }
    return result;
  } finally {
    await store.close();
  }
}

/** The best surviving source: a journal that replays whole, else an index that was not rebuilt from it. */
function chooseSource(c: RebuildComparison, options: ReconstructOptions, journalImage: string | undefined): { source: RecoverySource; reason: string } {
  const journal = c.snapshot ? 'snapshot' : 'journal';
  const from = c.snapshot ? `snapshot ${c.snapshot.name} (seq ${c.snapshot.seq}) and the journal after it` : 'the journal';
  if (options.from) return { source: options.from === 'journal' ? journal : 'index', reason: `--from-${options.from} was given${options.from === 'journal' ? ` (rebuilt from ${from})` : ''}` };
  if (c.journalIntact) return { source: journal, reason: `${c.snapshot ? `the newest valid snapshot (${c.snapshot.name}, seq ${c.snapshot.seq}) and the journal after it are` : 'the journal is'} complete: the index is rebuilt from ${c.snapshot ? 'them' : 'it'}` };
  if (journalImage === undefined) {
    return { source: 'index', reason: `the journal is damaged or incomplete: ${c.journalProblems.slice(0, 3).join('; ')}; the index holds more, so a new journal is written from it` };
  }
  return { source: journal, reason: `the index was itself rebuilt from ${from} (${journalImage}): that is all there is` };
}

/**
 * Why the index knows nothing its journal lacks, or undefined: this open rebuilt it from the
 * journal (missing or damaged), or an earlier open did from a damaged or incomplete journal (the
 * index's marker: a scrub or the daemon may well be the first to open after the index was lost).
 */
export async function indexJournalImage(store: Store): Promise<string | undefined> {
  if (store.health.rebuilt) return `at open: ${store.health.rebuilt}`;
  const marked = await store.maintenance().index.get<string>(meta.journalIncomplete);
  return marked === undefined ? undefined : `at an earlier open, from a journal that was damaged or incomplete: ${marked}`;
}

/** A rebuild from the journal must not keep less than the index has now, unless forced. */
function refuseLoss(c: RebuildComparison, options: ReconstructOptions, root: string, emptyJournalOverPacks: boolean): void {
  if (options.force) return;
  if (emptyJournalOverPacks && !options.fromPacks) {
    throw new MailstoreError('REFUSED',
      `the journal holds no records and there is no index, but the packs hold messages: rebuilding from the journal would produce an empty store. ` +
      `Nothing was changed. Use 'mailstore reconstruct --from-packs' to recover the messages from the packs (into lost+found).`, { path: root });
  }
  const lost = describeLoss(c.before, c.after);
  if (!lost) return;
  throw new MailstoreError('REFUSED',
    `a rebuild of the index from the journal would lose ${lost} the index has now` +
    (c.journalIntact ? '' : ` (the journal is damaged or incomplete: ${c.journalProblems.slice(0, 3).join('; ')})`) +
    `. Nothing was changed. 'mailstore reconstruct --from-index' writes a new journal from the index instead; --force rebuilds from the journal anyway.`, { path: root });
}

/**
 * Runs the repairs made before the store opens under the store's lock (released before the open
 * takes it again; a process that takes it between finds them done). Only in a store that looks
 * like itself but for its journal (what these repair): one that does not (packs/ or STORE gone: an
 * unmounted partition?) is refused by them or the open, and gets not one byte written for a lock.
 */
async function holdingLock(fs: FileSystem, root: string, wait: LockWait, work: () => Promise<void>): Promise<void> {
  const lockable = await verifyIdentity(fs, root).then(() => true, (error: unknown) => markerLost(error, root) !== undefined);
  if (!lockable) return work();
  const { release } = await takeLock(fs, root, wait);
  try {
    await work();
  } finally {
    await release();
  }
}

/** The journal directory is gone or foreign: set it aside (never delete) and start an empty one. */
async function recreateLostJournal(fs: FileSystem, root: string): Promise<boolean> {
  try {
    await verifyIdentity(fs, root);
    return false;
  } catch (error) {
    if (!journalLost(error, root)) throw error;
  }
  // checked as verifyIdentity checked it before it looked at the markers; gone since: the open says why
  const storeId = await storeIdAt(fs, root);
  if (storeId === undefined) return false;
  await moveAside(fs, root, join(root, LAYOUT.journal), 'journal-lost');
  await ensureDir(fs, join(root, LAYOUT.journal));
  await writeFileDurable(fs, join(root, LAYOUT.journal, LAYOUT.marker), Buffer.from(storeId + '\n'));
  await verifyIdentity(fs, root); // packs and STORE must still be right
  return true;
}

/** verifyIdentity's refusal of a store whose journal/ alone is gone or foreign. */
function journalLost(error: unknown, root: string): boolean {
  return markerLost(error, root) === LAYOUT.journal;
}

/** The directory (packs/ or journal/) whose marker verifyIdentity refused, STORE itself being right. */
function markerLost(error: unknown, root: string): string | undefined {
  if (!(error instanceof MailstoreError) || error.code !== 'UNMOUNTED') return undefined;
  return [LAYOUT.packs, LAYOUT.journal].find((dir) => error.path?.startsWith(join(root, dir)) === true);
}

/**
 * A packs/ or journal/ marker alone lost or damaged (a deleted file, a flipped byte) while the
 * files beside it are this store's: their checksummed headers name it, and none names another,
 * so the directory is neither an empty mount point nor a foreign one. The damaged marker goes to
 * quarantine/ and a new one is written. Before, a journal whose marker alone was damaged was set
 * aside whole as lost and a new one written from the index: every inline body in its records
 * (acknowledged mail that no pack holds) read CORRUPT, and no command brought it back. Returns the
 * directories whose marker was written again.
 */
async function restoreLostMarkers(fs: FileSystem, root: string): Promise<string[]> {
  const restored: string[] = [];
  for (let tries = 0; tries < 2; tries++) {
    const error = await verifyIdentity(fs, root).then(() => undefined, (e: unknown) => e);
    const dir = markerLost(error, root);
    if (!dir || restored.includes(dir)) break;
    const storeId = await storeIdAt(fs, root); // as recreateLostJournal
    if (storeId === undefined || !(await headersAllName(fs, join(root, dir), dir === LAYOUT.packs, storeId))) break;
    const marker = join(root, dir, LAYOUT.marker);
    await moveAside(fs, root, marker, `${dir}-marker-damaged`);
    await writeFileDurable(fs, marker, Buffer.from(storeId + '\n'));
    restored.push(dir);
  }
  return restored;
}

/**
 * Whether the valid headers of the segments (or packs) in `dir` all name `storeId`, and at least
 * one does; it stops at the first that names another store.
 */
async function headersAllName(fs: FileSystem, dir: string, packs: boolean, storeId: string): Promise<boolean> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  let named = false;
  for (const name of names) {
    if ((packs ? parsePackFileName(name) : parseSegmentFileName(name)) === undefined) continue;
    const head = Buffer.alloc(packs ? PACK_HEADER_BYTES : SEGMENT_HEADER_BYTES);
    const handle = await fs.open(join(dir, name), 'read').catch(() => undefined);
    if (!handle) continue;
    try {
      await handle.read(head, 0, head.length, 0);
    } catch {
      continue; // an unreadable file names no store; open and scrub report it
    } finally {
      await handle.close();
    }
    const header = packs ? decodePackHeader(head) : decodeSegmentHeader(head);
    if (!header) continue;
    if (uuidString(header.storeId) !== storeId) return false;
    named = true;
  }
  return named;
}

/** Messages in the packs that the index does not know go to lost+found, oldest first, fresh UIDVALIDITY. */
async function adoptUnreferenced(store: Store): Promise<{ mailbox: string; messages: number }> {
  const found: { hash: Buffer; size: number; date: number; pack: number; offset: number; order: number }[] = [];
  const seen = new Set<string>();
  let order = 0;
  for (const pack of await store.maintenance().packs.listPacks()) {
    for await (const item of store.maintenance().packs.scan(pack)) {
      if (item.kind !== 'blob' || !item.valid) continue;
      const hex = item.hash.toString('hex');
      if (seen.has(hex) || (await store.maintenance().index.get<BlobRecord>(keys.blob(item.hash)))) continue;
      seen.add(hex);
      const head = await store.maintenance().packs.read({ pack, offset: item.offset, length: item.length }, item.hash);
      found.push({ hash: item.hash, size: item.length, date: headerDate(head), pack, offset: item.offset, order: order++ });
    }
  }
  const inline = await unreferencedInlineBodies(store, seen);
  if (found.length + inline.length === 0) return { mailbox: '', messages: 0 };
  found.sort((a, b) => a.date - b.date || a.order - b.order);
  let mailbox = 'lost+found';
  const existing = await store.listMailboxes({ pattern: 'lost+found' });
  if (existing.length > 0) mailbox = `lost+found/${fileTimeStamp()}`;
  await store.createMailbox(mailbox);
  for (let i = 0; i < found.length; i += limits.lostFoundAdoptBlobs) await store.maintenance().adoptBlobs(mailbox, found.slice(i, i + limits.lostFoundAdoptBlobs));
  // appended again (a new copy of their bytes; adoptBlobs takes pack records only), by date
  for (let i = 0; i < inline.length; i += limits.lostFoundAdoptBlobs) {
    await store.appendBatch(mailbox, inline.slice(i, i + limits.lostFoundAdoptBlobs).map((m) => ({ bytes: m.body, internalDate: m.date })));
  }
  return { mailbox, messages: found.length + inline.length };
}

/**
 * Message bodies inline in journal records (docs/FORMAT.md, "Inline bodies": their only copy)
 * that the index does not know, the message still there at the end of the journal as far as its
 * records say (not expunged, its mailbox not deleted), oldest first. Their records' mailboxes are
 * gone with the journal before them (both snapshots damaged over a retired journal): the replay
 * skipped them, so before, --from-packs left these acknowledged messages out of lost+found, and
 * --from-index then set the journal holding them aside.
 */
async function unreferencedInlineBodies(store: Store, seen: Set<string>): Promise<{ body: Buffer; date: number }[]> {
  const bodies = new Map<string, { body: Buffer; date: number; seq: number; refs: number }>();
  const messages = new Map<string, string>(); // mailbox id and uid -> blob hash, of the messages added in the journal
  const mailboxOf = (key: string) => key.slice(0, key.indexOf('/'));
  const drop = (key: string) => {
    const hex = messages.get(key);
    const body = hex === undefined ? undefined : bodies.get(hex);
    if (body) body.refs--;
    messages.delete(key);
  };
  for await (const { seq, payload } of store.maintenance().journal.read(0, () => {})) {
    for (const op of decodeCbor<JournalPayload>(payload).ops) {
      const id = 'id' in op && op.id instanceof Uint8Array ? Buffer.from(op.id).toString('hex') : undefined;
      if (op.op === 'message.add' && id) {
        const hex = Buffer.from(op.hash).toString('hex');
        messages.set(`${id}/${op.uid}`, hex);
        const known = bodies.get(hex);
        if (known) known.refs++;
        else if (op.body && !seen.has(hex) && hashBytes(op.body).equals(op.hash)) bodies.set(hex, { body: Buffer.from(op.body), date: op.date, seq, refs: 1 });
      } else if (op.op === 'message.expunge' && id) {
        for (const uid of op.uids) drop(`${id}/${uid}`);
      } else if ((op.op === 'mailbox.deleteBegin' || op.op === 'mailbox.deleteEnd') && id) {
        for (const key of [...messages.keys()]) if (mailboxOf(key) === id) drop(key);
      }
    }
  }
  const out: { body: Buffer; date: number; seq: number }[] = [];
  for (const [hex, body] of bodies) {
    if (body.refs <= 0 || (await store.maintenance().index.get<BlobRecord>(keys.blob(Buffer.from(hex, 'hex'))))) continue;
    seen.add(hex);
    out.push(body);
  }
  return out.sort((a, b) => a.date - b.date || a.seq - b.seq);
}

function headerDate(message: Buffer): number {
  const head = message.subarray(0, limits.dateHeaderScanBytes).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const m = /^Date:[ \t]*(.+(?:\r?\n[ \t].+)*)/im.exec(end === -1 ? head : head.slice(0, end));
  const ms = m ? Date.parse(m[1].replace(/\r?\n[ \t]+/g, ' ').replace(/\s*\([^)]*\)\s*$/, '')) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}

/** The subtree a scoped check compares: the mailboxes under PREFIX in the current index. */
async function subtreeScope(store: Store, mailbox: string) {
  const prefix = normalizePrefix(mailbox);
  // None in the index is no reason to stop: the journal's replay may hold them (their N keys differ).
  const boxes = await store.maintenance().runExclusive(() => mailboxesUnder(store, prefix));
  const ids = new Set(boxes.map((box) => Buffer.from(box.id).toString('hex')));
  return { inSubtree: keyInSubtree(prefix, ids), result: { mailbox: prefix, mailboxes: boxes.length, differences: 0 } };
}
