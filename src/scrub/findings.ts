// Typed scrub findings: one kind per kind of damage, each with its location. Repair consumes them;
// the CLI prints them as a table or as JSON lines.
import { INLINE_PACK } from '../blob/pack-store.js';
import { isMailstoreError } from '../errors.js';
import { SEEN, meta } from '../store/apply.js';
import type { IndexDb } from '../index/index-db.js';
import { digestHex, emptyDigest, toggleMessage, type DigestLanes } from '../store/mailbox-digest.js';
import type { MailboxInfo, MessageRecord } from '../store/records.js';

export interface MessageRef {
  mailbox: string;
  uid: number;
}

export type Finding =
  | { kind: 'blob-corrupt'; pack: number; offset: number; hash: string; length: number; refs: MessageRef[] }
  | { kind: 'blob-missing'; hash: string; pack: number; offset: number; why: string; refs: MessageRef[] }
  | { kind: 'pack-damage'; pack: number; offset: number; length: number }
  | { kind: 'pack-header'; pack: number }
  /** A pack shorter than its header: its creation was cut short by a crash, it holds nothing. */
  | { kind: 'empty-pack'; pack: number; bytes: number }
  /** A pack whose header does not read and that no blob entry points into (scrub.ts, unreferencedHeaders). */
  | { kind: 'unreferenced-pack-header'; pack: number }
  | { kind: 'journal-damage'; segment: string; offset: number; length: number; where: string }
  | { kind: 'journal-gap'; from: number; to: number }
  /** A snapshot that fails verification; `onlyCover`: retired journal records have no other cover (repair keeps it). */
  | { kind: 'snapshot-damage'; name: string; seq: number; why: string; onlyCover: boolean }
  /**
   * A consumer cursor or the journal archive setting that does not read (store-files.ts): every
   * open and append goes on, but journal retirement and the commands that read it are refused.
   */
  | { kind: 'store-file-damage'; file: string; why: string }
  /**
   * The journal archive (JOURNAL-ARCHIVE) is not there to retire into (journal-archive.ts,
   * journalArchiveProblem: not mounted, an empty mount point, another store's): no segment is
   * retired, none deleted, and the journal grows until it is back.
   */
  | { kind: 'journal-archive-unusable'; archive: string; why: string; todo: string }
  /**
   * A replica's REPLICATION-PENDING frame that does not read and may hold a change its primary
   * acknowledged (store-files.ts): promote refuses it without --quarantine-damaged-pending, and the
   * replica refuses a primary promoted since (replica.ts refuseDamagedHeld). `afterSeq`: the
   * newest seq held before it.
   */
  | { kind: 'pending-round-damage'; offset: number; afterSeq: number }
  | { kind: 'index-value-corrupt'; key: string }
  | { kind: 'index-journal-mismatch'; detail: string }
  /** A LevelDB file of the index failing its own checksums (a table block's CRC32C, the MANIFEST's records): src/index/table-check.ts. */
  | { kind: 'index-table-corrupt'; file: string; detail: string }
  /** LevelDB failed a read during the index pass (a damaged table): the pass stopped there. */
  | { kind: 'index-unreadable'; detail: string }
  | { kind: 'refcount-mismatch'; hash: string; recorded: number; counted: number }
  | { kind: 'name-index-mismatch'; name: string; detail: string }
  | { kind: 'acl-map-mismatch'; identifier: string; name: string; detail: string }
  | { kind: 'mailbox-counts'; mailbox: string; detail: string }
  /** A mailbox's highest modseq not below the store's next one (the modseq offset lost): its next change would go back. */
  | { kind: 'modseq-ahead'; mailbox: string; highestModseq: number; nextModseq: number }
  | { kind: 'change-log-mismatch'; mailbox: string; detail: string }
  | { kind: 'unreferenced-blob'; hash: string; length: number }
  | { kind: 'unreferenced-pack-record'; pack: number; offset: number; length: number }
  /** A pack compaction retired whose file is still there (its deletion waits for open or the next compaction). */
  | { kind: 'retired-pack-present'; pack: number }
  /** A blob entry points into a pack compaction retired: that pack must not be deleted. */
  | { kind: 'blob-in-retired-pack'; hash: string; pack: number }
  /** Damage to a blob no message uses, cleared by `scrub --repair --drop-unreferenced` (drop.ts). */
  | { kind: 'dropped-blob'; hash: string; pack: number; offset: number; length: number; at: number };

export type FindingKind = Finding['kind'];

/** Findings that are not damage: space a cleanup pass will reclaim. They do not make scrub exit 1. */
// A damaged pack range is damage only through the blobs the index keeps there, which the index pass
// reports as blob-missing; the range itself (a torn tail, a replaced copy) is informational.
export const INFORMATIONAL: ReadonlySet<FindingKind> = new Set(['unreferenced-blob', 'unreferenced-pack-record', 'pack-damage', 'dropped-blob', 'retired-pack-present', 'empty-pack', 'unreferenced-pack-header']);

export function isDamage(finding: Finding): boolean {
  return !INFORMATIONAL.has(finding.kind);
}

/** The bytes a finding stands for (what a cleanup reclaims, or what is damaged), when it says. */
export function findingBytes(f: Finding): number | undefined {
  switch (f.kind) {
    case 'unreferenced-blob': case 'unreferenced-pack-record': case 'pack-damage': case 'dropped-blob': return f.length;
    case 'empty-pack': return f.bytes;
    default: return undefined;
  }
}

/** Informational findings a report counts and does not list, by kind: how many, and their bytes. */
export type UnlistedFindings = { [K in FindingKind]?: { count: number; bytes: number } };

/**
 * A report's list of findings, informational ones past limits.scrubListedPerKindMax of a kind
 * counted (with their bytes) instead of listed: 400k unreferenced blobs (expunged, awaiting
 * compaction), an object each for the whole scrub, held a daemon at 384 MB (its bound is 256 MB)
 * and crossed the socket as 40 MB of findings, each read only for its count. Damage is always listed.
 */
export class ListingCap {
  private readonly listed = new Map<FindingKind, number>();
  readonly unlisted: UnlistedFindings = {};

  constructor(private readonly perKindMax: number) {}

  /** Adds `finding` to `findings`, or counts it when its kind is informational and listed perKindMax times already. */
  push(findings: Finding[], finding: Finding): void {
    if (isDamage(finding)) {
      findings.push(finding);
      return;
    }
    const listed = this.listed.get(finding.kind) ?? 0;
    if (listed < this.perKindMax) {
      this.listed.set(finding.kind, listed + 1);
      findings.push(finding);
      return;
    }
    const kind = (this.unlisted[finding.kind] ??= { count: 0, bytes: 0 });
    kind.count++;
    kind.bytes += findingBytes(finding) ?? 0;
  }

  /** How many findings were counted and not listed. */
  unlistedCount(): number {
    return Object.values(this.unlisted).reduce((sum, kind) => sum + kind.count, 0);
  }
}

/** Where a blob is: a pack record, or an inline body (pack -1: the journal record of that seq). */
function blobWhere(pack: number, offset: number): string {
  return pack === INLINE_PACK ? `journal record ${offset} (inline body)` : `pack ${pack} @${offset}`;
}

export function describeFinding(f: Finding): { where: string; what: string } {
  const refs = (r: MessageRef[]) => (r.length ? ` used by ${r.slice(0, 5).map((m) => `${m.mailbox}:${m.uid}`).join(', ')}${r.length > 5 ? ` and ${r.length - 5} more` : ''}` : ' (no message uses it)');
  switch (f.kind) {
    case 'blob-corrupt': return { where: blobWhere(f.pack, f.offset), what: `message body ${f.hash.slice(0, 16)}… does not match its hash;${refs(f.refs)}` };
    case 'blob-missing': return { where: blobWhere(f.pack, f.offset), what: `blob ${f.hash.slice(0, 16)}… is not where the index says (${f.why});${refs(f.refs)}` };
    case 'pack-damage': return { where: `pack ${f.pack} @${f.offset}`, what: `${f.length} bytes are not a valid record` };
    case 'pack-header': return { where: `pack ${f.pack}`, what: 'pack header is damaged or foreign' };
    case 'unreferenced-pack-header': return { where: `pack ${f.pack}`, what: 'pack header does not read (damaged, or another store\'s), and no message refers to anything in the pack (as a crash leaves a new pack nothing had committed into): dead bytes; compaction moves a file with another store\'s header to quarantine/, never deletes it' };
    case 'empty-pack': return { where: `pack ${f.pack}`, what: `${f.bytes} bytes, shorter than a pack header: a crash cut its creation short; it holds nothing (new mail goes to the next pack)` };
    case 'journal-damage': return { where: `journal ${f.segment} @${f.offset}`, what: `${f.length} damaged bytes (${f.where})` };
    case 'journal-gap': return { where: 'journal', what: `records ${f.from}..${f.to} are missing (when the index holds what they did, 'mailstore reconstruct' writes a new journal from it)` };
    case 'snapshot-damage': return {
      where: `snapshot ${f.name}`,
      what: f.onlyCover
        ? `${f.why}. IT IS THE ONLY COVER of journal records already retired: it is kept in place (not quarantined); copy the store aside and keep the index, which still holds their effects ('mailstore reconstruct --from-index' writes a new journal from it), unless it was rebuilt since (then the open says 'rebuilt from a damaged or incomplete journal': RECOVERY.md)`
        : `${f.why}; a rebuild uses the snapshot before it or the journal ('--repair' moves it to quarantine/)`,
    };
    case 'store-file-damage': return { where: f.file, what: `${f.why} (until then no journal segment is retired: the journal grows)` };
    case 'pending-round-damage': return {
      where: `REPLICATION-PENDING @${f.offset}`,
      what: `a tentative round after seq ${f.afterSeq} does not read (a torn write or bit rot): it may hold a change the primary acknowledged. ` +
        'Kept; a primary promoted since is refused. Promote this replica with --quarantine-damaged-pending, or stop it, move REPLICATION-PENDING into ' +
        "quarantine/ and start it again to follow the new primary without it (docs/REPLICATION.md, 'Successive failovers')",
    };
    case 'journal-archive-unusable': return { where: 'JOURNAL-ARCHIVE', what: `${f.why}: until it is back no journal segment is retired (none is deleted; the journal grows); ${f.todo}` };
    case 'index-value-corrupt': return { where: `index key ${f.key}`, what: 'value fails its checksum' };
    case 'index-table-corrupt': return { where: `index/${f.file}`, what: `${f.detail} (a damaged LevelDB file: lookups can miss entries iteration still finds, or reads fail); '--repair' rebuilds the index from the journal` };
    case 'index-unreadable': return { where: 'index', what: `${f.detail} (the index pass stopped there; '--repair' rebuilds the index from the journal)` };
    case 'index-journal-mismatch': return { where: 'index', what: `${f.detail}: the index lost entries (a damaged LevelDB table can read as empty); '--repair' rebuilds it from the journal` };
    case 'refcount-mismatch': return { where: `blob ${f.hash.slice(0, 16)}…`, what: `refcount ${f.recorded} but ${f.counted} messages refer to it` };
    case 'name-index-mismatch': return { where: `mailbox ${f.name}`, what: f.detail };
    case 'acl-map-mismatch': return { where: `acl ${f.identifier} on ${f.name}`, what: f.detail };
    case 'mailbox-counts': return { where: `mailbox ${f.mailbox}`, what: f.detail };
    case 'modseq-ahead': return { where: `mailbox ${f.mailbox}`, what: `highest modseq ${f.highestModseq}, but the store's next change gets modseq ${f.nextModseq} (its journal seq plus the modseq offset: the offset an undump or XFER raised was lost): modseqs would go back and CONDSTORE clients miss changes; '--repair' raises the offset above it` };
    case 'change-log-mismatch': return { where: `mailbox ${f.mailbox}`, what: f.detail };
    case 'unreferenced-blob': return { where: `blob ${f.hash.slice(0, 16)}…`, what: `${f.length} bytes no message refers to (reclaimed by a future cleanup)` };
    case 'dropped-blob': return { where: `pack ${f.pack} @${f.offset}`, what: `damaged blob ${f.hash.slice(0, 16)}… no message uses, dropped on ${new Date(f.at).toISOString()} (its bytes are in quarantine/)` };
    case 'retired-pack-present': return { where: `pack ${f.pack}`, what: 'retired by compaction, not yet deleted (open or the next compaction deletes it once no reader holds it)' };
    case 'blob-in-retired-pack': return { where: `pack ${f.pack}`, what: `retired by compaction, but blob ${f.hash.slice(0, 16)}… still points into it: it is kept; 'mailstore compact' relocates it` };
    case 'unreferenced-pack-record': return { where: `pack ${f.pack} @${f.offset}`, what: `${f.length}-byte record the index does not use (a batch that never committed, or a replaced copy)` };
  }
}

/** What a mailbox's messages add up to, counted from its M entries. */
export interface MessageTally {
  messages: number;
  unseen: number;
  bytes: number;
  maxUid: number;
  maxModseq: number;
  /** The XOR of the messages' mixes (mailbox-digest.ts), to compare with the one apply keeps for `replica check`. */
  digest: DigestLanes;
}

/** Adds one message (its M entry) to a tally. */
export function tallyMessage(tally: MessageTally, uid: number, record: MessageRecord): void {
  tally.messages++;
  tally.bytes += record.s;
  if (!record.f.includes(SEEN)) tally.unseen++;
  tally.maxUid = Math.max(tally.maxUid, uid);
  tally.maxModseq = Math.max(tally.maxModseq, record.m);
  toggleMessage(tally.digest, uid, record);
}

export function emptyTally(): MessageTally {
  return { messages: 0, unseen: 0, bytes: 0, maxUid: 0, maxModseq: 0, digest: emptyDigest() };
}

/** A mailbox's stored counts against its messages' tally: a `mailbox-counts` finding, or none. */
export function mailboxCountsFinding(mailbox: string, info: Pick<MailboxInfo, 'messages' | 'unseen' | 'bytes' | 'uidNext' | 'highestModseq' | 'digest'>, counted: MessageTally): Finding | undefined {
  const wrong: string[] = [];
  if (info.messages !== counted.messages) wrong.push(`messages ${info.messages}, counted ${counted.messages}`);
  if (info.unseen !== counted.unseen) wrong.push(`unseen ${info.unseen}, counted ${counted.unseen}`);
  if (info.bytes !== counted.bytes) wrong.push(`bytes ${info.bytes}, counted ${counted.bytes}`);
  if (info.uidNext <= counted.maxUid) wrong.push(`uidNext ${info.uidNext} not above the largest uid ${counted.maxUid}`);
  if (info.highestModseq < counted.maxModseq) wrong.push(`highestModseq ${info.highestModseq} below a message's ${counted.maxModseq}`);
  // absent on a mailbox created before digests existed: `replica check` scans such a mailbox instead
  if (info.digest && digestHex(info.digest) !== digestHex(counted.digest)) wrong.push(`replica-check digest ${digestHex(info.digest)}, computed from the messages ${digestHex(counted.digest)}`);
  return wrong.length ? { kind: 'mailbox-counts', mailbox, detail: wrong.join('; ') } : undefined;
}

/**
 * The modseq the store's next change gets (apply.ts modseqAt of the seq after `appliedSeq`). Read
 * after the mailboxes: a writer meanwhile only raises it, never making a sound mailbox look ahead.
 */
export async function nextModseq(index: Pick<IndexDb, 'get'>): Promise<number | undefined> {
  // a value failing its checksum is index damage, reported as such: this check then has no floor
  const read = (key: Buffer) => index.get<number>(key).catch((error: unknown) => {
    if (isMailstoreError(error, 'CORRUPT')) return null;
    throw error;
  });
  const [applied, offset] = [await read(meta.appliedSeq), await read(meta.modseqOffset)];
  return typeof applied === 'number' && offset !== null ? applied + 1 + (typeof offset === 'number' ? offset : 0) : undefined;
}

/** A mailbox whose highest modseq, kept or a message's, is not below the store's next one: `modseq-ahead`, or none. */
export function modseqAheadFinding(mailbox: string, info: Pick<MailboxInfo, 'highestModseq'>, counted: MessageTally, next: number | undefined): Finding | undefined {
  if (next === undefined) return undefined;
  const highestModseq = Math.max(info.highestModseq, counted.maxModseq);
  return highestModseq >= next ? { kind: 'modseq-ahead', mailbox, highestModseq, nextModseq: next } : undefined;
}
