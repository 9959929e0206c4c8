// What the daemon runs for a caller beyond the MailStore interface: the administration and
// maintenance modules that take an open Store (quotas, usage, the mailbox list, user trees, scrub,
// repair). A command calls `procedures(handle).getQuota(root)`: in-process on a Store, over the
// socket on a Client, with the same arguments and results, so no command reaches into a Store's
// internals when a daemon holds it.
import { repair, type RepairOptions, type RepairResult } from '../scrub/repair.js';
import { scrub, type ScrubOptions, type ScrubReport } from '../scrub/scrub.js';
import { listScrubEvents, scrubEvents, type ScrubEvent, type ScrubListing } from './scrub-listing.js';
import { repairEvents, type RepairEvent } from './repair-events.js';
import { daemonLimits, eventLimits, limits } from '../limits.js';
import type { MailStore } from '../store/api.js';
import type { MessageInfo } from '../store/types.js';
import { dumpMailboxes, undumpMailboxes, type DumpedMailbox } from '../store/mailbox-list.js';
import { changeQuota, getQuota, listQuotas, setQuota, type QuotaChange, type QuotaLimits, type QuotaReport } from '../store/quota.js';
import { Store } from '../store/store.js';
import { usage, type UserUsage } from '../store/usage.js';
import { deleteMailboxTree, messagesInTree } from '../store/users.js';
import { MailstoreError, isMailstoreError } from '../errors.js';
import type { Finding } from '../scrub/findings.js';
import { encodeFrame } from './protocol.js';
import type { DeleteOptions } from '../store/validate.js';
import { readEvents, type MailEvent } from '../events/events.js';
import { parseCursor } from '../events/cursor.js';
import { checkString } from '../store/validate.js';
import { followSession } from '../events/follow-looks.js';
import { setConsumerCursor } from '../events/webhook.js';
import type { CompactOptions, CompactResult } from '../store/compact.js';
import type { ConsumerState, DamagedCursor } from '../store/changes.js';
import type { SnapshotResult } from '../store/snapshots.js';
import type { FreeSpaceState } from '../store/free-space.js';
import type { TierFlushResult, TierStatus } from '../store/tier.js';
import type { TierPolicy } from '../store/tier-policy.js';
import type { Op } from '../store/records.js';
import type { BlobLocation } from '../blob/pack-store.js';
import type { FetchAtOptions } from '../store/reader.js';
import { closeSession, openSession, readSession, type ReadPart, type SessionPart, type SessionRead } from './backup-sessions.js';
import { checkReplica, type CheckResult } from '../replication/check.js';
import { promoteStore, type PromoteOptions, type PromoteResult } from '../replication/promote.js';
import { storedReplicationStatus, type StoredReplicationStatus } from '../replication/status.js';
import type { ReplicationRole } from '../store/role.js';
import { xferUser, type XferResult } from '../replication/xfer.js';
import { monotonicMs } from '../monotonic.js';
import { readBackupRecords, recordBackup, type BackupRecord, type BackupRecords } from '../store/backup-records.js';

/** Each takes the daemon's Store first, then the caller's arguments (functions among them are dropped on the socket). */
export const PROCEDURES = {
  getQuota: (store: Store, root: string, options?: { nearest?: boolean }): Promise<QuotaReport> => getQuota(store, root, options),
  setQuota: (store: Store, root: string, limits: QuotaLimits): Promise<void> => setQuota(store, root, limits),
  changeQuota: (store: Store, root: string, change: QuotaChange): Promise<void> => changeQuota(store, root, change),
  listQuotas: (store: Store): Promise<{ root: string; limits: QuotaLimits }[]> => listQuotas(store),
  usage: (store: Store, options?: { user?: string }): Promise<UserUsage[]> => usage(store, options),
  dumpMailboxes: (store: Store): AsyncGenerator<DumpedMailbox> => dumpMailboxes(store),
  /** Client.listMailboxes: the list as a listing, since tens of thousands of long names pass one frame (frameBytesMax). */
  mailboxList: async function* (store: Store, options?: { user?: string; pattern?: string }): AsyncGenerator<{ name: string; id: string; rights?: string }> {
    yield* await store.listMailboxes(options);
  },
  /**
   * Client.changesSince: the answer's parts, highestModseq last (~100k changes pass one frame). A
   * client before session 39 (no `ranges` option) takes the ranges' uids as vanished ones instead:
   * it would take a part it does not know for the last.
   */
  changesSinceList: (store: Store, mailbox: string, modseq: number, options?: { ranges?: boolean }): AsyncGenerator<ChangesPart> =>
    listChanges(store, mailbox, modseq, options?.ranges === true ? 'ranges' : 'uids'),
  /** Client.changesSinceParts: the parts in the store's order, the head first. */
  changesSinceParts: (store: Store, mailbox: string, modseq: number): AsyncGenerator<ChangesPart> => listChanges(store, mailbox, modseq, 'parts'),
  undumpMailboxes: (store: Store, entries: DumpedMailbox[]): Promise<{ created: number }> => undumpMailboxes(store, entries),
  messagesInTree: (store: Store, name: string): Promise<number> => messagesInTree(store, name),
  deleteMailboxTree: (store: Store, name: string, options?: DeleteOptions): Promise<{ mailboxes: number; messages: number }> => deleteMailboxTree(store, name, options),
  scrub: (store: Store, options?: ScrubOptions): Promise<ScrubReport> => scrub(store, options),
  scrubEvents: (store: Store, options?: ScrubOptions, listing?: ScrubListing): AsyncGenerator<ScrubEvent> => listScrubEvents(scrubEvents(store, options), listing),
  /** A client before session 51's repair: the result whole, refused when a frame cannot hold it (this version's runs repairEvents). */
  repair: async (store: Store, before: ScrubReport, options?: RepairOptions): Promise<RepairResult> => refuseWholeResult(await repair(store, before, options)),
  /** scrub --repair: the scrub and the repair of its report here, the reports in pieces (repair-events.ts). */
  repairEvents: (store: Store, scrubOptions?: ScrubOptions, options?: RepairOptions): AsyncGenerator<RepairEvent> => repairEvents(store, scrubOptions, options),
  compact: (store: Store, options?: CompactOptions): Promise<CompactResult> => store.compact(options),
  snapshot: async (store: Store, archive?: string | null): Promise<{ result: SnapshotResult; archive: string | null }> => {
    if (archive !== undefined) await store.setJournalArchive(archive ?? undefined);
    return { result: await store.snapshot(), archive: (await store.journalArchive()) ?? null };
  },
  /** The inline-body threshold in force and the store's setting; `bytes` sets it (null: back to the default). */
  inlineBodies: async (store: Store, bytes?: number | null): Promise<{ inlineBytesMax: number; setting: number | null }> => {
    if (bytes !== undefined) await store.setInlineBodies(bytes ?? undefined);
    const { inlineBytesMax, setting } = await store.inlineBodies();
    return { inlineBytesMax, setting: setting ?? null };
  },
  /** The free-space reserve in force, the free space now and the store's setting; `bytes` sets it (null: back to the default). */
  freeSpace: async (store: Store, bytes?: number | null): Promise<FreeSpaceState & { setting: number | null }> => {
    if (bytes !== undefined) await store.setFreeSpaceReserve(bytes ?? undefined);
    const { setting, ...state } = await store.freeSpace();
    return { ...state, setting: setting ?? null };
  },
  consumers: async (store: Store): Promise<{ lastSeq: number; firstSeq: number; consumers: ConsumerState[]; damaged?: DamagedCursor[] }> => ({
    lastSeq: store.changes.lastSeq, firstSeq: store.changes.firstSeq, ...(await store.changes.report()),
  }),
  removeConsumer: (store: Store, name: string): Promise<boolean> => store.changes.remove(name),
  setConsumerCursor: (store: Store, cursor: string, consumer?: string): Promise<{ consumer: string; cursor: string; previous: string }> => setConsumerCursor(store, cursor, consumer),
  tierFlush: (store: Store, options?: { keepLocalBytes?: number; onPack?: (pack: number, bytes: number) => void }): Promise<TierFlushResult> => store.tierFlush(options),
  tierStatus: (store: Store): Promise<TierStatus> => store.tierStatus(),
  tierSetPolicy: (store: Store, change: { [K in keyof TierPolicy]?: number | null }): Promise<TierPolicy> => store.tierSetPolicy(change),
  events: (store: Store, since: string): AsyncGenerator<MailEvent> => readEvents(store, parseCursor(since)),
  /** `events --follow`'s looks: the daemon keeps what follower `id` saw (names, flags) from one look to the next. */
  followEvents: (store: Store, id: string, since: string): AsyncGenerator<MailEvent> => followSession(store, checkString(id, 'follower id'), parseCursor(since), eventLimits.followSessionsMax),
  // what a backup reads through the daemon (src/backup/backup.ts BackupSource)
  storeId: async (store: Store): Promise<string> => store.identity.storeId,
  fetchBlob: (store: Store, hash: Buffer): Promise<Buffer> => store.fetchBlob(hash),
  stateOps: (store: Store): AsyncGenerator<{ appliedSeq: number } | { op: Op }> => stateOps(store),
  // an incremental backup's reads of what changed (backup-sessions.ts), and its blob reads by place
  stateSinceOpen: (store: Store, afterSeq: number): AsyncGenerator<SessionPart> => openSession(store, afterSeq),
  stateSinceRead: (store: Store, session: number, method: SessionRead, args: unknown[]): AsyncGenerator<ReadPart> => readSession(store, session, method, args),
  stateSinceClose: (store: Store, session: number): Promise<void> => closeSession(store, session),
  // which repositories the store was backed up into (BACKUPS): read before a new repository is made, written after each backup
  backupRecords: (store: Store): Promise<BackupRecords> => readBackupRecords(store.fs, store.root),
  recordBackup: (store: Store, record: BackupRecord): Promise<void> => recordBackup(store, record),
  fetchBlobsAt: (store: Store, blobs: { hash: Buffer; location: BlobLocation }[], options?: FetchAtOptions): Promise<(Buffer | null)[]> =>
    store.fetchBlobsAt(blobs.map((b) => ({ hash: Buffer.from(b.hash), location: b.location })), undefined, options).then((bodies) => bodies.map((b) => b ?? null)),
  // replication (src/replication): the daemon of the store runs them
  replicationStatus: (store: Store): Promise<StoredReplicationStatus> => storedReplicationStatus(store),
  /** The role alone (REPLICATION, read at open): what scrub's hint asks, which reads no cursor. */
  replicationRole: async (store: Store): Promise<ReplicationRole['role'] | 'standalone'> => store.replication().role()?.role ?? 'standalone',
  replicaCheck: (store: Store, options: { primary?: string; keyFile?: string; scan?: boolean }): Promise<CheckResult> => {
    const role = store.replication().role();
    const primary = options.primary ?? role?.primary;
    const keyFile = options.keyFile ?? role?.keyFile;
    if (!primary || !keyFile) throw new MailstoreError('INVALID', `the store at ${store.root} is not a replica (no primary and key recorded); pass --primary and --replication-key`);
    return checkReplica(store, { primary, keyFile, scan: options.scan });
  },
  promote: (store: Store, options: PromoteOptions = {}): Promise<PromoteResult> => promoteStore(store, undefined, options),
  xfer: (store: Store, options: { user: string; to: string; mailboxPrefix?: string; keyFile?: string }): Promise<XferResult> => {
    const keyFile = options.keyFile ?? store.replication().role()?.keyFile;
    if (!keyFile) throw new MailstoreError('INVALID', 'pass --replication-key FILE (this store\'s REPLICATION names no key)');
    return xferUser(store, { user: options.user, to: options.to, keyFile, mailboxPrefix: options.mailboxPrefix });
  },
};

/**
 * A repair's result for a caller before session 51, which takes it whole: one that a frame cannot
 * hold (the reports before and after, each finding of them) is refused saying so, rather than as a
 * frame too big for the socket protocol. The repair has run by then: the message says what it did.
 */
function refuseWholeResult(result: RepairResult): RepairResult {
  const { before, after, quarantined, dropped } = result;
  if (before.findings.length + after.findings.length + quarantined.length + dropped.length < daemonLimits.backupSessionPartEntries) return result; // well below a frame
  try {
    encodeFrame({ t: 'res', id: 0, v: result });
  } catch (error) {
    if (!isMailstoreError(error, 'INVALID')) throw error;
    throw new MailstoreError('INVALID', `the repair ran (damage before ${before.summary.damage}, after ${after.summary.damage}; ${quarantined.length} record(s) copied into quarantine/), ` +
      `but its result, with ${before.findings.length + after.findings.length} findings, is bigger than one frame of the socket protocol, which a mailstore before session 51 takes whole: ` +
      `run 'mailstore scrub' with the daemon's mailstore version to see what is left (it takes the reports in pieces)`);
  }
  return result;
}

/** The store's state at one seq as a listing: its seq first, then every checkpoint op. */
async function* stateOps(store: Store): AsyncGenerator<{ appliedSeq: number } | { op: Op }> {
  const state = await store.maintenance().snapshotState();
  try {
    yield { appliedSeq: state.appliedSeq };
    for await (const op of state.ops) yield { op };
  } finally {
    await state.close();
  }
}

/** What changesSinceList and changesSinceParts yield: the parts of one changesSince answer, a changed message an item. */
export type ChangesPart = { changed: MessageInfo } | { vanished: number[] } | { vanishedRanges: [number, number][]; vanishedFloor: number } | { highestModseq: number; vanishedFloor?: number };

/**
 * changesSince listed as the store reads it (Store.changesSinceParts), a changed message an item:
 * the daemon holds one part at a time, whatever the mailbox (changesSince(0) of 1M messages held
 * 1M records, 935 MB). `parts`: in the store's order, the head first. `ranges`: as changesSinceList
 * has always answered, highestModseq last, since a client takes the part after the others for the
 * last. `uids`: that, with the ranges' uids given as vanished ones in place of the exact list.
 */
async function* listChanges(store: Store, mailbox: string, modseq: number, shape: 'parts' | 'ranges' | 'uids'): AsyncGenerator<ChangesPart> {
  let highestModseq = 0;
  let expanded = 0; // `uids`: how many uids of ranges were given so far
  let ranges = false; // the head said vanished ranges follow
  for await (const part of store.changesSinceParts(mailbox, modseq)) {
    if ('changed' in part) for (const info of part.changed) yield { changed: info };
    else if ('highestModseq' in part) {
      ({ highestModseq } = part);
      ranges = part.vanishedFloor !== undefined;
      if (shape === 'parts') yield part;
    } else if (!('vanishedRanges' in part)) {
      if (shape !== 'uids' || !ranges) yield part; // the ranges' uids include these
    } else if (shape !== 'uids') yield part;
    else {
      const uids = uidsOfRanges(part.vanishedRanges, mailbox, expanded);
      expanded += uids.length;
      const size = daemonLimits.backupSessionPartEntries;
      for (let at = 0; at < uids.length; at += size) yield { vanished: uids.slice(at, at + size) };
    }
  }
  if (shape !== 'parts') yield { highestModseq };
}

/**
 * Vanished ranges as the uids in them, for a client that knows no ranges: a superset of what it
 * cached there, which RFC 7162 lets it ignore; UNAVAILABLE past vanishedExpandedUidsMax.
 */
export function uidsOfRanges(ranges: [number, number][], mailbox: string, givenBefore = 0): number[] {
  let count = givenBefore;
  for (const [first, last] of ranges) count += last - first + 1;
  if (count > daemonLimits.vanishedExpandedUidsMax) {
    throw new MailstoreError('UNAVAILABLE', `the changes in ${mailbox} since that modseq include ${count} uids that hold no message (its older expunges are no longer listed one by one): too many for a client before mailstore session 39; upgrade the client`, { path: mailbox });
  }
  const uids: number[] = [];
  for (const [first, last] of ranges) for (let uid = first; uid <= last; uid++) uids.push(uid);
  return uids;
}

export type ProcedureName = keyof typeof PROCEDURES;

export { MUTATING_PROCEDURES } from './procedure-names.js';
export { collectScrubReport, listScrubEvents, scrubEvents, type ScrubEvent, type ScrubListing } from './scrub-listing.js';

/** Procedures that answer with a listing (items, then end) rather than one value. */
export const LISTING_PROCEDURES: ReadonlySet<string> = new Set(['dumpMailboxes', 'mailboxList', 'changesSinceList', 'changesSinceParts', 'scrubEvents', 'repairEvents', 'events', 'followEvents', 'stateOps', 'stateSinceOpen', 'stateSinceRead']);

type Rest<F> = F extends (store: Store, ...args: infer A) => infer R ? (...args: A) => R : never;
export type Procedures = { [K in ProcedureName]: Rest<(typeof PROCEDURES)[K]> };

/** What a Client offers to run procedures remotely (client.ts). */
export interface ProcedureRunner {
  procedure(name: string, args: unknown[]): Promise<unknown>;
  procedureListing(name: string, args: unknown[]): AsyncGenerator<unknown>;
}

function isRunner(handle: unknown): handle is ProcedureRunner {
  return typeof (handle as ProcedureRunner).procedure === 'function';
}

/** The procedures of `handle`: run here on a Store, in the daemon on a Client. */
export function procedures(handle: MailStore): Procedures {
  const out: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of Object.keys(PROCEDURES) as ProcedureName[]) {
    const local = PROCEDURES[name] as (store: Store, ...args: unknown[]) => unknown;
    if (handle instanceof Store) out[name] = (...args) => local(handle, ...args);
    else if (isRunner(handle)) out[name] = LISTING_PROCEDURES.has(name) ? (...args) => handle.procedureListing(name, args) : (...args) => handle.procedure(name, args);
    else out[name] = () => { throw new MailstoreError('INVALID', `${name} needs a Store or a daemon Client`); };
  }
  return out as unknown as Procedures;
}
