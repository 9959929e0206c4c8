// The library's API types: what a caller gives a Store and what it gets back. Kept apart from the
// Store so that the read pipeline, the maintenance hooks and the administration modules can name
// them without importing the Store (store.ts and src/index.ts re-export them).
import { Buffer } from 'node:buffer';
import type { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { hashHex } from '../hash/blake3.js';
import type { MessageRecord } from './records.js';
import type { IndexCounts } from './recovery.js';
import type { AutoCompactSettings } from './compactor.js';
import type { AutoTierSettings } from './tier-mover.js';
import type { SnapshotResult } from './snapshots.js';
import type { FreeSpaceState } from './free-space.js';
import type { QuarantineUse } from './quarantine.js';

export interface StoreOptions {
  /** Create the store when the directory is empty or missing. */
  create?: boolean;
  fs?: FileSystem;
  messageBytesMax?: number;
  /**
   * Messages up to this many bytes are stored inside their journal record, so a delivery writes
   * one file with one fdatasync (docs/FORMAT.md, "Inline bodies"); compaction moves them into
   * packs before their journal segment is retired. Only a message delivered alone (one in its
   * record). 0: every body goes to a pack. Default: the store's setting (INLINE-BODIES, `mailstore
   * config --inline-bytes-max`), else limits.inlineBodyBytesDefault (32 KiB, measured: BENCHMARKS.md).
   */
  inlineBodyBytesMax?: number;
  /**
   * The free-space reserve (src/store/free-space.ts, limits.freeSpaceReserveBytesMax): changes that
   * add mail are refused NO_SPACE, before anything is written, when the free space on the store's
   * file system less what they would write falls below it; other changes only below an eighth of
   * it. 0: off. Default: the store's setting (FREE-SPACE-RESERVE, `mailstore config
   * --free-space-reserve`), else the smaller of 64 MiB and 5 % of the file system's size.
   */
  freeSpaceReserveBytes?: number;
  /**
   * Told once when changes adding mail start being refused for the reserve (`refusing` true), and
   * once when they are admitted again (the daemon logs both at warn).
   */
  onFreeSpace?: (refusing: boolean, state: FreeSpaceState) => void;
  /**
   * Worker threads that verify readMessages' bodies while the reading thread reads on (0: the
   * reading thread hashes). Default: 1 on a machine with two or more cores, else 0. Used for
   * mailboxes of limits.readPoolMailboxBytesMin and more.
   */
  readHashThreads?: number;
  packBytesMax?: number;
  journalSegmentBytesMax?: number;
  /**
   * Open the index in a child process first, because LevelDB can abort the process on some damaged
   * files: 'after-crash' (default: when the previous owner died holding the lock), 'always', 'never'.
   */
  probeIndex?: 'after-crash' | 'always' | 'never';
  /** While another process holds the store, retry this long before LOCKED (default 0: at once). */
  lockWaitMs?: number;
  /** Called on each retry while waiting for the lock, with the holder ("process 1234") and the time waited. */
  onLockWait?: (holder: string, waitedMs: number) => void;
  /**
   * Open without writing anything in the store: no lock, no recovery, no quarantine, the index read
   * through a private shadow (src/fs/level-shadow.ts). Every change throws ACCESS. An index that
   * is missing, damaged or behind the journal is REFUSED (only a read-write open repairs it, and
   * serving it would show an older state than was acknowledged); LOCKED while a writer runs.
   * README, "Read-only open".
   */
  readOnly?: boolean;
  /**
   * Open even when packs/ (its marker present) holds no pack file while the index refers to blobs,
   * which is otherwise UNMOUNTED: for `scrub --repair --force --source`, which restores them.
   */
  allowMissingPacks?: boolean;
  /**
   * The local packs were lost with the disk (`mailstore rebuild-from-bucket`): the newest complete
   * journal batch is kept even when its bodies do not read back (they were in a lost pack, not torn
   * by a crash), so scrub reports its messages missing instead of open cutting the batch.
   */
  packsLost?: boolean;
  /**
   * Called after each group commit with its seq range, number of mutations and index keys written,
   * and the seconds its pack and journal writes and fdatasyncs took.
   */
  onCommit?: (firstSeq: number, lastSeq: number, mutations: number, indexKeys: number, writeSeconds: number) => void;
  /**
   * Compact packs in the background (compactor.ts) when their dead bytes pass a threshold, keeping
   * released blobs for a grace period (default off: the CLI's one-shot opens; the daemon turns it on).
   */
  autoCompact?: boolean | AutoCompactSettings;
  /**
   * With an object store: move sealed packs to the bucket in the background under the store's
   * policy (tier-mover.ts, tier-policy.ts). Default off (the CLI's one-shot opens); serve turns it on.
   */
  autoTier?: boolean | AutoTierSettings;
  /**
   * Called when a background compaction or tier round fails, or LevelDB's rewrite of its files
   * after a compaction (the store stays usable; the next round retries). Without it, the last is a
   * health finding. An automatic snapshot's failure goes to onSnapshot.
   */
  onBackgroundError?: (error: unknown) => void;
  /**
   * Snapshot the index by itself (and retire the journal below it) when the journal grew by
   * limits.snapshotEveryRecords or snapshotEveryBytes since the last snapshot. Default on for a
   * read-write store; the CLI's one-shot commands turn it off (`mailstore snapshot` is for cron).
   */
  autoSnapshot?: boolean;
  /** Called after each automatic snapshot with its result, or with the error that stopped it (the store goes on). */
  onSnapshot?: (result?: SnapshotResult, error?: unknown) => void;
  /**
   * Called once when the store stops itself: CLOSED (the index write after a durable commit failed,
   * or the journal could not take back a failed write) or HALTED (an invariant failed). Every later
   * change fails the same way until the store is reopened, whoever calls it: a server learns it here
   * rather than from the next failed call (the daemon exits so that its supervisor reopens the store).
   */
  onStop?: (error: MailstoreError) => void;
}

export interface AppendOptions {
  flags?: string[];
  internalDate?: Date | number | string;
  /**
   * Optional metadata kept with the message (docs/FORMAT.md); leaving one out records "unknown".
   * envelopeFrom: the envelope sender of an mbox From_ line, one printable ASCII token without
   * spaces, at most limits.envelopeFromBytesMax bytes.
   */
  envelopeFrom?: string;
  /** The zone the internal date was written in, whole minutes east of UTC (limits.dateZoneMinutes{Min,Max}). */
  dateZoneMinutes?: number;
  /** The message was not yet seen by a mail client (Maildir new/); export writes it to new/ again. */
  recent?: boolean;
}

export interface AppendResult {
  uid: number;
  uidValidity: number;
  /** BLAKE3-256 of the message, hex. */
  hash: string;
  size: number;
  /** The bytes were already stored: no new blob was written. */
  deduplicated: boolean;
}

export interface MessageInfo {
  uid: number;
  hash: string;
  size: number;
  internalDate: Date;
  flags: string[];
  modseq: number;
  /** Present only when stored (AppendOptions): absent means unknown. */
  envelopeFrom?: string;
  dateZoneMinutes?: number;
  /** Present (true) only for a message stored as recent. */
  recent?: true;
}

export interface ReadMessagesOptions {
  /** Start at this uid (the first message at or above it). */
  fromUid?: number;
  /**
   * Called with a message whose bytes fail verification (or whose blob the index does not know),
   * which is then skipped; without it readMessages throws that CORRUPT error when the message's turn comes.
   */
  onCorrupt?: (info: MessageInfo, error: MailstoreError) => void;
  /**
   * Lend each body instead of giving it: it is valid only until the generator is resumed (the
   * next message, a break or return), after which its bytes may be overwritten by a later
   * message's. Copy what must outlive that. The reader then reads into a few buffers it reuses
   * rather than a new one for each run of messages (fewer page faults and collections; issue 16).
   * A lent body's `buffer` is a SharedArrayBuffer (the hash worker reads it where it lies): it
   * cannot go in a postMessage transfer list. Not across the daemon's socket: its server gives every body.
   */
  lendBodies?: boolean;
}

export interface MessageWithBody {
  info: MessageInfo;
  /** The exact bytes, verified against `info.hash`. */
  body: Buffer;
}

export interface MailboxStatus {
  messages: number;
  unseen: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  /** Sum of the sizes of the mailbox's messages (RFC 8438 STATUS SIZE). */
  bytes: number;
}

/** What changesSince answers (CONDSTORE/QRESYNC, RFC 7162). */
export interface Changes {
  /** Messages added or whose flags changed after the modseq asked about, in uid order. */
  changed: MessageInfo[];
  /** Uids expunged after it that the change log lists, in order: every one unless `vanishedRanges` is there. */
  vanished: number[];
  highestModseq: number;
  /**
   * Only when the modseq asked about is below the mailbox's vanished floor (its older tombstones
   * expired, or it came without its history: XFER, undump, a rebuild past journal damage), so
   * `vanished` may lack uids: every uid below uidNext that holds no message, as [first, last]
   * ranges in order (at most one more than the mailbox has messages). Each uid the client cached
   * there is gone: an IMAP server answers them as VANISHED (EARLIER), narrowed to the client's
   * known uids when it gave them (RFC 7162 3.2.5.1 lets a server list uids the client never had).
   */
  vanishedRanges?: [first: number, last: number][];
  /** With `vanishedRanges`: the floor, the lowest modseq whose changesSince is exact. */
  vanishedFloor?: number;
}

/**
 * A part of a changesSince answer as changesSinceParts gives it, in this order: one head (the
 * answer's highestModseq, and `vanishedFloor` when vanishedRanges parts follow), the vanished uids,
 * the vanished ranges, then the changed messages, each list ascending and in pieces (their sizes
 * are not part of the contract). Vanished before changed, as RFC 7162 3.2.6 wants VANISHED
 * (EARLIER) before any FETCH: a server writes each part out as it comes and holds none of it.
 */
export type ChangesSincePart =
  | { highestModseq: number; vanishedFloor?: number }
  | { vanished: number[] }
  | { vanishedRanges: [first: number, last: number][]; vanishedFloor: number }
  | { changed: MessageInfo[] };

export interface MailboxSummary {
  name: string;
  id: string;
  uidValidity: number;
  created: Date;
  pastNames: string[];
  owner?: string;
  acl: Record<string, string>;
}

export interface FlagChange {
  add?: string[];
  remove?: string[];
  replace?: string[];
  /** CONDSTORE: only change messages whose modseq is not above this; the others are returned as `modified`. */
  unchangedSince?: number;
  /** Only while the name still names this mailbox (the one whose uids were read), else NOT_FOUND, nothing changed. */
  mailboxId?: string;
}

import type { ConsumerState, DamagedCursor } from './changes.js';

export interface StoreStats {
  mailboxes: number;
  messages: number;
  bytesReferenced: number;
  blobs: number;
  bytesStored: number;
  unreferencedBlobs: number;
  packs: number;
  packBytes: number;
  journalSegments: number;
  journalBytes: number;
  /** Bytes of journal segments on disk (the same as journalBytes: what retirement has not yet removed). */
  journalBytesRetained: number;
  /** The oldest seq still in the journal (above 1 once segments were retired under a snapshot). */
  journalFirstSeq: number;
  /** The newest seq in the journal: with newestSnapshotSeq, how far the journal grew past the newest snapshot. */
  journalLastSeq: number;
  /** Snapshot files in snapshots/ and their bytes; the newest one's seq (null: none). */
  snapshots: number;
  snapshotBytes: number;
  newestSnapshotSeq: number | null;
  dedupRatio: number;
  /** Change-log consumers with their cursors and lag (changes.ts); `behind` ones are reported, never skipped. */
  consumers: ConsumerState[];
  /** Consumer cursors that do not read (CORRUPT): each holds retirement until mended or removed; absent when none. */
  consumersDamaged?: DamagedCursor[];
  /** Bytes of pack records some message refers to (headers included). */
  bytesLive: number;
  /** Bytes in packs no message refers to (records of released blobs, torn or replaced records, headers included); compaction reclaims them. */
  bytesDead: number;
  /**
   * Body bytes of released inline bodies (docs/FORMAT.md, "Inline bodies"): in journal records no
   * message refers to, not in bytesDead; compaction drops their entries and their segments retire.
   * Absent from a daemon before session 52.
   */
  bytesDeadInline?: number;
  /** The free-space reserve and the free space now (free-space.ts): mail is refused below reserveBytes. */
  freeSpace: FreeSpaceState;
  /** What quarantine/ holds (quarantine.ts): never removed automatically, so an admin must see it grow. */
  quarantine: QuarantineUse;
  /**
   * The journal archive, when one is set (journal-archive.ts); `retirementHeld`: why nothing can be
   * retired into it now (not mounted, an empty mount point, another store's) and what to do.
   * Absent from a daemon before session 48, and when the setting is damaged (scrub reports that).
   */
  journalArchive?: { path: string; retirementHeld?: string };
}

/** A lone writer's journal flush: in this thread or through the thread pool, the faster median of the last commits each way (ms; null until measured). */
export interface JournalFlushChoice {
  preferThread: boolean;
  threadMedianMs: number | null;
  poolMedianMs: number | null;
}

/** A rebuild of the index from the journal compared with the index it would replace. */
export interface RebuildComparison {
  /** Keys (meta aside) that differ between the current index and a rebuild from the journal. */
  differences: number;
  /** Journal records a rebuild from the journal replays. */
  records: number;
  messagesBefore: number;
  messagesAfter: number;
  before: IndexCounts;
  after: IndexCounts;
  /** The journal replayed without damage or gaps and reaches the index's appliedSeq. */
  journalIntact: boolean;
  /** Why not (damage, missing records), as replay reported it. */
  journalProblems: string[];
  /** The snapshot the rebuild started from (the journal after its seq was replayed); absent: the whole journal. */
  snapshot?: { name: string; seq: number };
  /** What the rebuild replayed, in words. */
  rebuiltFrom: string;
}

export function uuidString(id: Buffer): string {
  const h = id.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A message's index record as the API shows it. The flags are copied with slice(), not a spread:
 * a bulk read makes one a message, and a spread is slow while code is cold.
 */
export function toInfo(uid: number, record: MessageRecord): MessageInfo {
  // the envelope sender (every message of an mbox import has one) in the literal: added after, it
  // gave the object a property array of its own, one more allocation a message of a bulk read
  const hash = hashHex(record.h), internalDate = new Date(record.d), flags = record.f.slice();
  const info: MessageInfo = record.e === undefined
    ? { uid, hash, size: record.s, internalDate, flags, modseq: record.m }
    : { uid, hash, size: record.s, internalDate, flags, modseq: record.m, envelopeFrom: record.e };
  if (record.z !== undefined) info.dateZoneMinutes = record.z;
  if (record.n) info.recent = true;
  return info;
}
