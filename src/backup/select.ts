// What a restore takes from a snapshot: the selected mailboxes (renamed with --as), their
// messages, change log and the store-wide values they need; and each blob, read and verified.
import { MailstoreError, isMailstoreError } from '../errors.js';
import { MODSEQ_OFFSET_NAME, UID_VALIDITY_LAST_NAME } from '../store/apply.js';
import type { MailboxInfo, Op } from '../store/records.js';
import type { AppendOptions } from '../store/types.js';
import type { QuotaLimits } from '../store/quota.js';
import { formatMailboxName, isAtOrBelow, parseMailboxName, renamedMailboxName } from '../store/validate.js';
import { blobIdOf } from './crypto.js';
import { decodeRecord, recordBytes } from './format.js';
import { listIn, type BlobIndex, type Repository, type SnapshotFile } from './repository.js';
import { scanUnnamed } from './scan.js';

export interface RestoreSelection {
  /** user/NAME and every mailbox below it. */
  user?: string;
  /** One mailbox (not those below it). */
  mailbox?: string;
  /** A new name: for the mailbox, or for the user (user/NAME/... becomes user/AS/..., owner and ACL entries follow). */
  as?: string;
}

export interface RestoreSummary {
  snapshot: string;
  storeId: string;
  seq: number;
  to: string;
  mailboxes: number;
  messages: number;
  /** Message bytes written into the target. */
  bytes: number;
  /** Bytes of the repository's data files read (a one-mailbox restore reads only its blobs). */
  bytesRead: number;
  /**
   * Blobs in no index file that reads (a damaged or lost one), found by scanning the data files no
   * such index file names and verified as read (absent: none). 'mailstore backup repair' indexes them.
   */
  blobsFoundByScan?: number;
  /** Index files that do not read (damaged), left out of the restore's index. */
  damagedIndexFiles?: string[];
  /**
   * With `leaveOutDamaged`: the messages not restored because their blob is damaged or missing in
   * the repository (absent: none). Everything else was restored; their bytes were never written.
   */
  leftOut?: LeftOutMessage[];
  /**
   * A restore into a new store: 'kept' when each mailbox has its uidValidity as the snapshot had
   * it (the default, issue 14: the store as it was), 'new' with `newUidValidity`. Absent into a
   * live store.
   */
  uidValidity?: 'new' | 'kept';
  durationMs: number;
}

export interface RestoreOptions {
  selection?: RestoreSelection;
  /**
   * Into a new store: give each mailbox a new uidValidity (uids, modseqs and flags as they were),
   * so IMAP clients read every mailbox again. For a snapshot older than the store's last state (a
   * nightly backup restored after the disk was lost): the store went on after the snapshot and
   * gave uids from its uidNext on to mail the snapshot does not hold, which clients cached, and
   * under the kept uidValidity the restored store would give those uids to other mail. Without it
   * every uidValidity is kept, as issue 14 asks of a restore into an empty target.
   */
  newUidValidity?: boolean;
  /**
   * A message whose blob is damaged or missing in the repository (CORRUPT) is left out and listed
   * in the summary's `leftOut`, and the restore goes on with the rest (the CLI's way: one bad data
   * file no longer costs every other message). Without it such a message stops the restore with
   * CORRUPT. A read that did not happen (IO, ACCESS, UNMOUNTED) stops it either way.
   */
  leaveOutDamaged?: boolean;
  onProgress?: (messages: number, bytes: number) => void;
}

/** A message a restore left out: its blob does not verify, or is nowhere, in the repository. */
export interface LeftOutMessage {
  /** As the snapshot names it (before any --as). */
  mailbox: string;
  uid: number;
  /** The message's BLAKE3 (hex). */
  blob: string;
  /** The data files the repository's index (or a scan) places the blob in; empty when it is in none. */
  dataFiles: string[];
  /** What the read found. */
  why: string;
}

/** What a restore into a live store needs of it: the Store itself, or later the daemon's client. */
export interface RestoreTarget {
  hasMailbox(name: string): Promise<boolean>;
  /** The new mailbox's id: every batch of it is appended only while its name still names that mailbox. */
  createMailbox(name: string, options: { owner?: string; acl?: Record<string, string> }): Promise<{ id: string }>;
  appendBatch(mailbox: string, items: (AppendOptions & { bytes: Uint8Array })[], options: { mailboxId: string }): Promise<unknown>;
  /** The limits of `root` (none set: neither field). */
  getQuota(root: string): Promise<QuotaLimits>;
  setQuota(root: string, limits: QuotaLimits): Promise<void>;
}

/** The selected part of a snapshot: its mailboxes (named as restored) and their messages. */
export interface Selected {
  meta: [string, unknown][];
  mailboxes: MailboxInfo[];
  messages: Map<string, Extract<Op, { op: 'state.messages' }>['messages']>;
  changes: Extract<Op, { op: 'state.changes' }>[];
}

// ---- selection -------------------------------------------------------------------------------

export function selectState(snapshot: SnapshotFile, selection: RestoreSelection): Selected {
  if (selection.user !== undefined && selection.mailbox !== undefined) throw new MailstoreError('INVALID', 'give --user or --mailbox, not both');
  if (selection.as !== undefined && selection.user === undefined && selection.mailbox === undefined) throw new MailstoreError('INVALID', '--as renames a restored --user or --mailbox; a whole store keeps its names');
  const rename = renamer(selection);
  const chosen = new Set<string>();
  const selected: Selected = { meta: [], mailboxes: [], messages: new Map(), changes: [] };
  const whole = selection.user === undefined && selection.mailbox === undefined;
  for (const op of snapshot.ops) {
    if (op.op === 'state.meta') selected.meta.push(...keptMeta(op.entries, whole, rename));
    else if (op.op === 'state.mailbox' && !op.info.deleting && rename.matches(op.info.name)) {
      chosen.add(Buffer.from(op.info.id).toString('hex'));
      selected.mailboxes.push(rename.apply(op.info));
    } else if (op.op === 'state.messages' && chosen.has(Buffer.from(op.id).toString('hex'))) {
      const key = Buffer.from(op.id).toString('hex');
      listIn(selected.messages, key).push(...op.messages);
    } else if (op.op === 'state.changes' && chosen.has(Buffer.from(op.id).toString('hex'))) selected.changes.push(op);
  }
  if (!whole && selected.mailboxes.length === 0) {
    throw new MailstoreError('NOT_FOUND', `the snapshot holds no ${selection.user !== undefined ? `user ${selection.user}` : `mailbox ${selection.mailbox}`}`, { path: selection.user ?? selection.mailbox });
  }
  selected.mailboxes.sort((a, b) => formatMailboxName(a.name).localeCompare(formatMailboxName(b.name)));
  return selected;
}

export const QUOTA_PREFIX = 'quota/';

/** The tree the selected part is restored as (user/AS, or the mailbox's new name): the quota roots at or below it are the part's own. */
export function restoredTree(selection: RestoreSelection): string[] | undefined {
  if (selection.mailbox !== undefined) return parseMailboxName(selection.as ?? selection.mailbox);
  if (selection.user !== undefined) return ['user', userName(selection.as ?? selection.user)];
  return undefined;
}

/**
 * Marks of blobs the snapshot does not carry (dropped damage) and of deletes in progress (their
 * mailboxes are left out) stay behind; a part of a store takes only what keeps its names unique
 * and its modseqs growing,
 * and the quota roots that cover what it restores, named as restored (a user's own roots follow
 * --as as they follow a user rename; another user's are not this part's).
 */
function keptMeta(entries: [string, unknown][], whole: boolean, rename: Renamer): [string, unknown][] {
  const kept: [string, unknown][] = [];
  for (const [key, value] of entries) {
    if (key.startsWith('scrub/dropped/') || key.startsWith('deleting/')) continue;
    if (whole) kept.push([key, value]);
    // the modseq offset too: restored modseqs may be above the seqs (an undump's, an XFER's), and
    // without it the next change's modseq fell below them, highestModseq going back (RFC 7162)
    else if (key === UID_VALIDITY_LAST_NAME || key === MODSEQ_OFFSET_NAME) kept.push([key, value]);
    else if (key.startsWith(QUOTA_PREFIX)) {
      const root = quotaRootName(key.slice(QUOTA_PREFIX.length));
      const restored = root && rename.quotaRoot(root);
      if (restored) kept.push([QUOTA_PREFIX + formatMailboxName(restored), value]);
    }
  }
  return kept;
}

/** A stored root's components; undefined for a name no mailbox could have (it covers nothing restored). */
function quotaRootName(name: string): string[] | undefined {
  try {
    return parseMailboxName(name);
  } catch {
    return undefined;
  }
}

interface Renamer {
  matches(name: string[]): boolean;
  apply(info: MailboxInfo): MailboxInfo;
  /** A quota root's name in the restored part, or undefined when it covers none of it. */
  quotaRoot(root: readonly string[]): readonly string[] | undefined;
}


/** A user's name as the store keeps it: checked as the component of user/NAME, in NFC. */
function userName(name: string): string {
  return formatMailboxName(parseMailboxName(`user/${name}`).slice(1));
}

function renamer(selection: RestoreSelection): Renamer {
  if (selection.mailbox !== undefined) {
    const from = parseMailboxName(selection.mailbox);
    const wanted = formatMailboxName(from);
    const to = selection.as !== undefined ? parseMailboxName(selection.as) : from;
    return {
      matches: (name) => formatMailboxName(name) === wanted,
      apply: (info) => (selection.as !== undefined ? { ...info, name: to } : info),
      // its own root goes with it; a root above it stays while it still covers the new name
      quotaRoot: (root) => (formatMailboxName(root) === wanted ? to : isAtOrBelow(from, root) && isAtOrBelow(to, root) ? root : undefined),
    };
  }
  if (selection.user !== undefined) {
    // as the store keeps names and identifiers (NFC): a name typed decomposed is the same user
    const user = userName(selection.user);
    const as = selection.as === undefined ? undefined : userName(selection.as);
    const tree = ['user', user];
    return {
      // the user's roots follow --as; a root above user/ (user itself) covers the new name too
      quotaRoot: (root) => (isAtOrBelow(root, tree) ? ['user', as ?? user, ...root.slice(2)] : isAtOrBelow(tree, root) ? root : undefined),
      matches: (name) => name[0] === 'user' && name[1] === user,
      apply: (info) => {
        if (as === undefined) return info;
        const acl = Object.fromEntries(Object.entries(info.acl).map(([who, rights]) => [who === user ? as : who, rights]));
        // a longer user name must not take a mailbox past the name bounds (refused before any blob is read)
        const name = renamedMailboxName(info.name, tree, ['user', as], `restoring user ${user} as ${as}`);
        const renamed: MailboxInfo = { ...info, name, acl };
        if (info.owner === user) renamed.owner = as;
        return renamed;
      },
    };
  }
  return { matches: () => true, apply: (info) => info, quotaRoot: (root) => root };
}

// ---- reading blobs ---------------------------------------------------------------------------

/** The message bytes of `hash` (`sizeBytes` long, as its snapshot says), verified; tries every place the index knows; CORRUPT naming `what` otherwise. */
export async function readBlob(repo: Repository, index: BlobIndex, hash: Buffer, what: string, sizeBytes: number): Promise<Buffer> {
  const id = blobIdOf(hash, repo.keys);
  const key = id.toString('hex');
  let entries = index.places.get(key);
  let scanned = false;
  if (!entries || entries.length === 0) {
    // In no index file that reads (one is damaged, or lost): the data files none of them names are
    // walked once for their records' headers (scan.ts); a record found so is verified as any other.
    const scan = await (index.scan ??= scanUnnamed(repo, index.named));
    entries = scan.places.get(key);
    scanned = true;
  }
  if (!entries || entries.length === 0) {
    const damaged = index.unreadable.length > 0 ? `in no index file that reads (${index.unreadable.length} of them are damaged, e.g. ${index.unreadable[0]!.slice(0, 12)}), ` : 'in no index file, ';
    const scan = await index.scan!;
    throw new MailstoreError('CORRUPT', `${what}: its blob ${hash.toString('hex').slice(0, 16)} is missing from the repository (${damaged}nor in the ${scan.files.length} data files no index file names, scanned); nothing wrong was written (run 'mailstore backup check')`, { path: what });
  }
  let last: unknown;
  let unread: MailstoreError | undefined;
  for (const entry of entries) {
    try {
      const record = await repo.readRecord(entry, recordBytes(entry.length));
      const bytes = await decodeRecord(record, id, hash, repo.keys, repo.path('data', entry.file), sizeBytes);
      if (scanned) index.foundByScan.add(key);
      return bytes;
    } catch (error) {
      if (!(error instanceof MailstoreError)) throw error; // a bug
      last = error;
      // a place that did not answer (an s3: repository's 503 or cut answer: IO) is not a damaged one
      if (error.code !== 'CORRUPT') unread ??= error;
    }
  }
  if (unread) throw unread;
  const why = last instanceof Error ? last.message : String(last);
  throw new MailstoreError('CORRUPT', `${what}: its blob is damaged in the repository; nothing wrong was written (${why})`, { path: what, cause: last });
}

/**
 * readBlob, or, when `leftOut` is given, undefined for a blob damaged or missing in the repository
 * (CORRUPT): the message is listed there with the data files that hold its blob, and left out. Any
 * other failure (a read that did not happen, a bug) still throws.
 */
export async function readBlobOrLeaveOut(repo: Repository, index: BlobIndex, hash: Buffer, message: { mailbox: string; uid: number; what: string; sizeBytes: number }, leftOut: LeftOutMessage[] | undefined): Promise<Buffer | undefined> {
  try {
    return await readBlob(repo, index, hash, message.what, message.sizeBytes);
  } catch (error) {
    if (!leftOut || !isMailstoreError(error, 'CORRUPT')) throw error;
    leftOut.push({ mailbox: message.mailbox, uid: message.uid, blob: hash.toString('hex'), dataFiles: await dataFilesOf(repo, index, hash), why: error.message });
    return undefined;
  }
}

/** The data files the index, or the scan of the unnamed ones, places a blob in. */
async function dataFilesOf(repo: Repository, index: BlobIndex, hash: Buffer): Promise<string[]> {
  const key = blobIdOf(hash, repo.keys).toString('hex');
  const entries = index.places.get(key) ?? (index.scan ? (await index.scan).places.get(key) : undefined) ?? [];
  return [...new Set(entries.map((entry) => repo.path('data', entry.file)))];
}

/** What a restore says of a damaged map: the index files that do not read, and the blobs found by scanning. */
export function indexRepairNotes(index: BlobIndex, leftOut: LeftOutMessage[] = []): Pick<RestoreSummary, 'blobsFoundByScan' | 'damagedIndexFiles' | 'leftOut'> {
  return {
    ...(leftOut.length > 0 ? { leftOut } : {}),
    ...(index.foundByScan.size > 0 ? { blobsFoundByScan: index.foundByScan.size } : {}),
    ...(index.unreadable.length > 0 ? { damagedIndexFiles: index.unreadable } : {}),
  };
}
