// scrub --repair: heal from good copies, re-derive derived state, never make things worse.
// Damaged records are copied to quarantine/ and left in place (unreferenced once healed); good
// copies come only from --source stores or directories and are verified by hash before use.
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import { writeFileDurable } from '../fs/durable.js';
import { limits } from '../limits.js';
import { LAYOUT } from '../store/identity.js';
import { describeLoss } from '../store/recovery.js';
import { readOnlyReplicaError } from '../store/role.js';
import type { Store } from '../store/store.js';
import { RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import type { Finding } from './findings.js';
import { isDamage } from './findings.js';
import { scrub, type ScrubOptions, type ScrubReport } from './scrub.js';
import { findCopies } from './sources.js';
import { dropUnreferenced, isUnreferencedBlobDamage } from './drop.js';
import { repairSnapshots } from './snapshot-check.js';
import { indexJournalImage } from './reconstruct.js';
import { raiseModseqsAbove } from '../store/modseq-floor.js';
import { recountCounters, type RecountResult } from './recount.js';

export interface RepairOptions {
  sources?: string[];
  /** The key file for a source that is a node (HOST:PORT); default: the one in the store's REPLICATION. */
  replicationKey?: string;
  /** Proceed even when the damage looks like a missing partition rather than a few bad blocks. */
  force?: boolean;
  /** Refuse when more than this share of blobs is damaged or missing (default limits.repairDamagedShareMax). */
  missingShareMax?: number;
  /** Record damaged blobs that no message uses (and no source restored) as dropped (drop.ts). */
  dropUnreferenced?: boolean;
  scrubOptions?: ScrubOptions;
}

export interface RepairResult {
  before: ScrubReport;
  after: ScrubReport;
  blobsRestored: number;
  quarantined: string[];
  indexRebuilt: boolean;
  /** A damaged journal was replaced by one written from the intact index (its old files in quarantine/). */
  journalRewritten: boolean;
  /** Hashes of damaged unreferenced blobs recorded as dropped (--drop-unreferenced). */
  dropped: string[];
  /** Counters and refcounts the rebuilt index still held wrong (the journal's own), recounted from the messages (recount.ts). */
  recounted?: RecountResult;
  /** Mailboxes' modseqs were ahead of the store's: its modseq offset was raised above this one (modseq-ahead). */
  modseqsRaisedAbove?: number;
  /** Damage still present after repair, with the messages it affects. */
  unrepaired: Finding[];
}

/**
 * A replica's packs and journal are its primary's, byte for byte: every repair writes (the index
 * rebuild too), so it is refused before anything, quarantine/ included, and told what heals it.
 */
function refuseOnReplica(store: Store): void {
  const role = store.replication().role();
  if (role?.role === 'replica') {
    throw new MailstoreError('READ_ONLY_REPLICA', `the store at ${store.root} is a replica of ${role.primary ?? 'its primary'}, which takes no repair; nothing was changed. ` +
      `Move its directory aside and start the replica again in an empty one (it copies its primary afresh); once promoted instead, ` +
      `'mailstore scrub --repair --source COPY' heals it from the old primary or a copy`, { path: store.root });
  }
  if (role?.role === 'fenced') throw readOnlyReplicaError(store.root, role);
}

/** Counters an index rebuilt from a whole journal may still hold wrong: written wrong into the journal. */
const COUNTER_KINDS = new Set(['mailbox-counts', 'refcount-mismatch', 'index-journal-mismatch']);

const INDEX_KINDS = new Set(['index-value-corrupt', 'index-table-corrupt', 'index-unreadable', 'index-journal-mismatch', 'refcount-mismatch', 'name-index-mismatch', 'acl-map-mismatch', 'mailbox-counts', 'change-log-mismatch']);

export async function repair(store: Store, before: ScrubReport, options: RepairOptions = {}): Promise<RepairResult> {
  const share = options.missingShareMax ?? limits.repairDamagedShareMax;
  const blobFindings = before.findings.filter((f): f is Extract<Finding, { kind: 'blob-corrupt' | 'blob-missing' }> => f.kind === 'blob-corrupt' || f.kind === 'blob-missing');
  refuseOnReplica(store);
  // not stats(): it reads every consumer cursor, and a damaged one (a finding of this scrub) failed the whole repair CORRUPT
  const blobs = await store.maintenance().blobCount();
  if (!options.force && blobs > 0 && blobFindings.length > Math.max(2, blobs * share)) {
    throw new MailstoreError('REFUSED',
      `${blobFindings.length} of ${blobs} stored messages are damaged or missing: this looks like a missing or wrong partition, not a few bad blocks. ` +
      `Nothing was changed. Check the mounts; to repair anyway, run again with --force.`, { path: store.root });
  }
  const quarantined: string[] = [];
  for (const f of blobFindings) {
    const path = await quarantineRecord(store, f.pack, f.offset, f.hash, f.kind === 'blob-corrupt' ? f.length : undefined);
    if (path) quarantined.push(path);
  }
  let blobsRestored = 0;
  const found = new Map<string, Buffer>();
  if (blobFindings.length > 0 && options.sources?.length) {
    const wanted = new Set(blobFindings.map((f) => f.hash));
    const keyFile = options.replicationKey ?? store.replication().role()?.keyFile;
    for (const source of options.sources) await findCopies(store.fs, source, wanted, found, limits.messageBytesMax, { keyFile });
    const items = [...found].map(([hex, bytes]) => ({ hash: Buffer.from(hex, 'hex'), bytes }));
    // a reduce, not a spread: a failed disk region can damage more blobs than a call takes arguments
    store.maintenance().packs.skipPackNumbersTo(blobFindings.reduce((most, f) => Math.max(most, f.pack), 0));
    for (let i = 0; i < items.length; i += limits.repairRelocateBlobs) blobsRestored += await store.maintenance().relocateBlobs(items.slice(i, i + limits.repairRelocateBlobs));
  }
  // After the restore: only what no copy healed is dropped; quarantined above, so no bytes are lost.
  const dropped = options.dropUnreferenced
    ? await dropUnreferenced(store, blobFindings.filter((f) => isUnreferencedBlobDamage(f) && !found.has(f.hash)))
    : [];
  quarantined.push(...(await repairSnapshots(store, before.findings)));
  let indexRebuilt = false;
  let recounted: RecountResult | undefined;
  if (before.findings.some((f) => INDEX_KINDS.has(f.kind))) {
    const rebuilt = await store.maintenance().reconstructIndex({
      guard: ({ before, after, journalIntact, journalProblems }) => {
        const lost = describeLoss(before, after);
        if (!options.force && lost) {
          throw new MailstoreError('REFUSED',
            `rebuilding the damaged index from the journal would lose ${lost}` +
            (journalIntact ? '' : ` (the journal is damaged or incomplete: ${journalProblems.slice(0, 3).join('; ')})`) +
            `. Nothing was changed. Run 'mailstore reconstruct --check' to compare the sources; --force rebuilds from the journal anyway.`, { path: store.root });
        }
      },
    });
    indexRebuilt = true;
    // What disagrees with the messages after a replay of every record since seq 1 was in the journal
    // itself (rebuilt again, it comes back), and every message there was put by a record. Not after
    // one from a snapshot or a checkpoint: they copy an index, which may have lost messages (a
    // damaged LevelDB table) its counters still count; recounting would call that loss clean.
    if (rebuilt.journalIntact && rebuilt.snapshot === undefined && store.maintenance().journal.firstSeq === 1 && before.findings.some((f) => COUNTER_KINDS.has(f.kind))) {
      recounted = await recountCounters(store, new Set(before.findings.flatMap((f) => (f.kind === 'refcount-mismatch' ? [f.hash] : []))));
    }
  }
  const journalRewritten = await rewriteDamagedJournal(store, before, indexRebuilt, blobFindings.every((f) => found.has(f.hash)));
  const modseqsRaisedAbove = await raiseModseqsAhead(store, before);
  const after = await scrub(store, options.scrubOptions);
  return {
    before, after, blobsRestored, quarantined, indexRebuilt, journalRewritten, dropped, ...(modseqsRaisedAbove === undefined ? {} : { modseqsRaisedAbove }),
    ...(recounted === undefined ? {} : { recounted }),
    unrepaired: after.findings.filter(isDamage),
  };
}

/**
 * A mailbox's modseqs ahead of the store's (modseq-ahead: the offset an undump or XFER raised was
 * lost): a rebuild from the journal gives the same, so the offset is raised past the highest, in
 * a journaled meta.set as XFER raises it. Returns that highest, or undefined when none was ahead.
 */
async function raiseModseqsAhead(store: Store, before: ScrubReport): Promise<number | undefined> {
  const ahead = before.findings.flatMap((f) => (f.kind === 'modseq-ahead' ? [f.highestModseq] : []));
  if (ahead.length === 0) return undefined;
  const highest = Math.max(...ahead);
  await raiseModseqsAbove((prepare) => store.administration().mutate({ prepare }), store.administration().index, highest);
  return highest;
}

/**
 * Damaged or missing journal records with an intact index (no index finding, not rebuilt from
 * the journal: indexJournalImage): the index holds what they did, so a new journal is written from it, as `mailstore
 * reconstruct` chooses then (the old one goes to quarantine/; the new one is verified against the
 * index before it replaces it). Only once every damaged body was restored: an inline body in a
 * damaged record is in no other place until a source gave it back.
 */
async function rewriteDamagedJournal(store: Store, before: ScrubReport, indexRebuilt: boolean, everyBodyRestored: boolean): Promise<boolean> {
  const journalDamaged = before.findings.some((f) => f.kind === 'journal-damage' || f.kind === 'journal-gap');
  if (!journalDamaged || indexRebuilt || (await indexJournalImage(store)) !== undefined || !everyBodyRestored) return false;
  await store.maintenance().rewriteJournalFromIndex();
  return true;
}

/** Copies the bytes of a damaged record into quarantine/ (the pack itself is not changed). */
async function quarantineRecord(store: Store, pack: number, offset: number, hash: string, length: number | undefined): Promise<string | undefined> {
  const source = store.maintenance().packs.path(pack);
  const stat = await store.fs.statIfExists(source);
  if (!stat || offset >= stat.size) return undefined;
  const end = Math.min(stat.size, length === undefined ? offset + RECORD_HEADER_BYTES + limits.readChunkBytes : offset + RECORD_HEADER_BYTES + length);
  const handle = await store.fs.open(source, 'read');
  let bytes: Buffer;
  try {
    bytes = Buffer.alloc(end - offset);
    await handle.read(bytes, 0, bytes.length, offset);
  } finally {
    await handle.close();
  }
  const target = join(store.root, LAYOUT.quarantine, `blob-${hash}-pack${pack}-at${offset}`);
  try {
    if (await store.fs.statIfExists(target)) return target;
    await writeFileDurable(store.fs, target, bytes);
  } catch (error) {
    // a quarantine/ that lost its mode or its space: ACCESS / NO_SPACE naming it, not a plain errno (INTERNAL)
    throw fromSystemError(error, 'copying a damaged record into quarantine/', target);
  }
  return target;
}
