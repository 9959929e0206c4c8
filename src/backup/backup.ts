// `mailstore backup`: one point-in-time snapshot of a store into a repository. The state is read
// at one journal seq beside live writers; only blobs the repository does not hold yet are read
// from the store (the state names every blob by hash, so an incremental run reads what changed),
// written into data files, each indexed once durable, and the snapshot file is written last.
import { hostname } from 'node:os';
import { MailstoreError, isMailstoreError } from '../errors.js';
import { backupLimits } from '../limits.js';
import { formatMailboxName } from '../store/validate.js';
import type { StateSnapshot } from '../store/checkpoint.js';
import type { Op } from '../store/records.js';
import type { StateSince } from '../store/state-since.js';
import { blobIdOf } from './crypto.js';
import { HASH_BYTES, hashMatches } from '../hash/blake3.js';
import { phase } from '../phases.js';
import { neededBlob, type NeededBlob } from './needed-blob.js';
import { CompressPool, InlineCompressor, compressThreadsFor } from './compress-pool.js';
import { applySince, decodedParent, fallbackReason, findParent, modelOf, opsOf, type ParentSnapshot, type StateModel } from './incremental.js';
import { deltaOf } from './delta.js';
import { DATA_HEADER_BYTES, FORMAT_VERSION, RECORD_HEADER_BYTES, contentName, encodeDataHeader, sealRecord, type BlobCodec } from './format.js';
import { encodeTip, searchHash, tipOfModel, tipOfState, writeTip, type Tip } from './tip.js';
import { readHealLists, writeHealList, type HealEntry, type HealLists } from './heal-list.js';
import { applySinceToTip } from './tip-since.js';
import { lockRepository, type DataStream, type IndexFile, type Repository, type SnapshotCounts, type SnapshotFile, type StagedFile } from './repository.js';
import { helperNice } from '../thread-priority.js';
import { monotonicMs } from '../monotonic.js';

/** What a backup needs of a store: the Store itself, or later the daemon's client. */
export interface BackupSource {
  /** The store's id (UUID text). */
  readonly storeId: string;
  snapshotState(): Promise<StateSnapshot>;
  /**
   * What changed since an earlier journal seq (Store.maintenance().stateSince), when the source
   * can tell: an incremental run then reads that instead of the whole state.
   */
  stateSince?(afterSeq: number): Promise<StateSince>;
  /** A blob's bytes, verified against its hash (CORRUPT otherwise). */
  fetchBlob(hash: Buffer): Promise<Buffer>;
  /**
   * Blobs at the locations the state gave, verified as fetchBlob's, many with one read (the
   * store's fetchBlobsAt); undefined for one that did not read there (fetchBlob is asked then).
   * `verify` false: their BLAKE3 is not checked (the compression workers hash them, and the copy
   * checks each before it writes it); a source that verifies anyway may ignore it. `aside`: read
   * off this thread where the source can (the copy has other work meanwhile).
   */
  fetchBlobsAt?(blobs: readonly { hash: Buffer; location: { pack: number; offset: number; length: number } }[], lend?: () => ArrayBuffer | undefined, options?: { verify?: boolean; aside?: boolean }): Promise<(Buffer | undefined)[]>;
}

export interface BackupOptions {
  /** Called as blobs are added: messages and bytes read from the store. */
  onProgress?: (blobs: number, bytes: number) => void;
  /** Called once the state is read: how much there is to copy. */
  onPlan?: (newBlobs: number, newBytes: number) => void;
  /** Write a whole snapshot even when a delta on the parent would do (ends a chain: its older snapshots can then be forgotten). */
  whole?: boolean;
}

export interface BackupSummary {
  snapshot: string;
  storeId: string;
  seq: number;
  mailboxes: number;
  messages: number;
  /** Distinct blobs the snapshot refers to... */
  blobs: number;
  /** ...of which this run copied (the others were in the repository already). */
  newBlobs: number;
  /** Message bytes read from the store. */
  bytesRead: number;
  /** Bytes of new repository files (data, index, snapshot). */
  bytesAdded: number;
  durationMs: number;
  /** The earlier snapshot this run's state was built on (the store's changes since its seq added), if any... */
  parent?: string;
  /** ...and of the mailboxes that changed since, those read whole (their counters disagreed with the changes). */
  mailboxesReadWhole?: number;
  /** Why the run read the whole state although an earlier snapshot of the store was there. */
  fullReadReason?: string;
  /** A delta snapshot was written: how many deltas deep (1 on a whole snapshot; absent: a whole snapshot). */
  deltaDepth?: number;
  /** A compression worker died (why): the rest was compressed on the main thread, more slowly; the snapshot is whole. */
  compressionWorkerLost?: string;
  /**
   * Index files that do not match their names (damaged): blobs the run looked up only there were
   * copied again, but those its parent snapshot or the held-ids table took for held were not; a
   * restore finds them by scanning, and 'mailstore backup repair' writes their index again.
   */
  damagedIndexFiles?: string[];
  /**
   * Blobs 'mailstore backup repair' listed in heal/ as having no good copy in the repository that
   * this run copied again from the store (verified by their hash, as every copy) into a new record:
   * the snapshots that need them restore again (absent: none listed).
   */
  healed?: number;
  /** ...and those it could not: the store no longer has them (their messages were expunged); they stay listed. */
  unhealed?: number;
}

export type { NeededBlob } from './needed-blob.js';

interface StateRead {
  seq: number;
  ops: Op[];
  counts: SnapshotCounts;
  blobs: NeededBlob[];
  journalDigest?: string;
  /** A delta snapshot's fields (`ops` then holds the mailbox records only). */
  delta?: Pick<SnapshotFile, 'parent' | 'depth' | 'delta'>;
  /** Built on an earlier snapshot: its id, and whether a message names a blob its record there did not (else every blob is in the repository already). */
  parent?: { id: string; newHashes: boolean; readWhole: number };
  fullReadReason?: string;
  /** The state's tip (tip.ts), written beside the snapshot for the next run. */
  tip: Tip;
}

export async function runBackup(source: BackupSource, repo: Repository, options: BackupOptions = {}): Promise<BackupSummary> {
  const started = monotonicMs(); // durations on the monotonic clock: a step of the wall clock made them negative
  const writtenBefore = repo.bytesWritten;
  const lock = await lockRepository(repo, false);
  phase('locked');
  const compressors = new Compressors(repo.codec);
  const copier = new BlobCopier(source, repo, compressors, options);
  let staged: Promise<StagedFile> | undefined;
  let published = false;
  let tipWritten: Promise<string | undefined> = Promise.resolve(undefined); // its path once written
  try {
    // one readdir, and a file read only after a repair listed damage (heal-list.ts)
    const heal = await readHealLists(repo);
    // before the state is read: its journal's new blobs start copying then, and one of them listed
    // here (delivered again, restored into the live store) was skipped as indexed (its damaged
    // record is) and never copied again, the run saying the store no longer had it
    copier.force(heal.entries);
    const state = await readState(source, repo, copier, options.whole ?? false);
    // listed blobs are copied again whatever the index, the held-ids table or the parent say (they
    // hold only a damaged record); one the state needs is copied as any of its blobs (the store
    // must have it: invariant 5), one only older snapshots need only if the store still has it
    copier.heal(heal.entries.map((entry) => ({ entry, needed: searchHash(state.tip.hashes, entry.hash).found })));
    // The parent's blobs are in the repository (its snapshot was written after them); the index is
    // read only when there are others, and then every blob is looked up (a lost one is copied again).
    // Those the copy took already (the journal's new blobs, "Incremental runs") are looked up beside it.
    const others = state.parent ? state.parent.newHashes : true;
    const rest = others ? state.blobs.filter((blob) => !copier.has(blob.key)) : [];
    const held = rest.length > 0 ? await repo.indexHolds(rest.map((blob) => idOf(repo, blob))) : [];
    copier.add(rest.filter((_, i) => !held[i]));
    phase('index read');
    options.onPlan?.(copier.blobs, copier.bytes);
    const snapshot: SnapshotFile = {
      version: FORMAT_VERSION, time: Date.now(), storeId: source.storeId, hostname: hostname(), seq: state.seq, counts: state.counts, ops: state.ops,
      ...(state.journalDigest ? { journalDigest: state.journalDigest } : {}), ...state.delta,
    };
    // encoded, written and fsynced under a temp name, and its tip written, while the last data
    // and index files are written and synced (CPU and fsyncs beside the disk's); made visible
    // only after them (invariant 2) and after its tip (a snapshot is never older than its tip)
    let encoded: Buffer | undefined;
    const encode = () => {
      encoded = repo.encodeSnapshot(snapshot);
      state.tip.snapshot = contentName(encoded);
      tipWritten = writeTip(repo, state.tip, encodeTip(state.tip, repo)); // never throws: a run without its tip is still a snapshot
      staged = repo.stageContent('snapshots', encoded);
      staged.catch(() => undefined); // published or aborted below
    };
    const bytesRead = await copier.finish(encode);
    phase('blobs copied');
    // every index file of this run is in view: the next run's table of held ids is written beside
    // the snapshot's publication (a cache: it covers only index files in view, it never fails the run)
    // and every index file is checked against its name (read and hashed, beside the snapshot's
    // fsyncs): the table and the parent snapshot name index files without reading them, so a
    // damaged one would go unseen run after run; the run says so (damagedIndexFiles)
    const heldSaved = repo.verifyIndexFiles().catch((error) => { if (!isMailstoreError(error)) throw error; }).then(() => repo.saveHeld());
    heldSaved.catch(() => undefined); // awaited after the snapshot is published
    if (!encoded) encode();
    await tipWritten;
    phase('tip written');
    await lock.held(); // the point of no return: never a snapshot naming what a prune may have removed
    const id = await (await staged!).publish();
    published = true;
    phase('snapshot written');
    await heldSaved;
    phase('held ids written');
    // the healed blobs' records are durable and indexed (finish): the list shrinks to what is left
    if (copier.healed.size > 0) await writeHealList(repo, heal.entries.filter((entry) => !copier.healed.has(entry.hash.toString('hex'))), heal.names);
    return {
      snapshot: id, storeId: source.storeId, seq: state.seq, mailboxes: state.counts.mailboxes, messages: state.counts.messages, blobs: state.counts.blobs,
      newBlobs: copier.written, bytesRead, bytesAdded: repo.bytesWritten - writtenBefore, durationMs: Math.round(monotonicMs() - started),
      ...(state.parent ? { parent: state.parent.id, mailboxesReadWhole: state.parent.readWhole } : {}),
      ...(state.fullReadReason ? { fullReadReason: state.fullReadReason } : {}),
      ...(state.delta ? { deltaDepth: state.delta.depth } : {}),
      ...(compressors.lost ? { compressionWorkerLost: compressors.lost.message } : {}),
      ...(repo.damagedIndex.size > 0 ? { damagedIndexFiles: [...repo.damagedIndex] } : {}),
      ...healNotes(heal, copier),
    };
  } finally {
    await copier.settled(); // a failed run: nothing is left running behind it (the files written so far are reused next time)
    if (staged && !published) await staged.then((file) => file.abort(), () => undefined); // its temp file (a failure before publish)
    // and its tip (written before the snapshot, for a snapshot that now never comes): a cache of
    // ~56 bytes a stored message that only a forget removed, left by every failed run on a full disk
    if (!published) await removeTip(repo, tipWritten);
    await compressors.close();
    await lock.release();
    phase('unlocked');
  }
}

/** A failed run's tip, if it wrote one, removed (best effort, as it was written: a cache no snapshot names). */
async function removeTip(repo: Repository, written: Promise<string | undefined>): Promise<void> {
  const path = await written;
  if (path) await repo.fs.unlink(path).catch(() => undefined);
}

/** What the summary says of the heal list: absent when there was none. */
function healNotes(heal: HealLists, copier: BlobCopier): Pick<BackupSummary, 'healed' | 'unhealed'> {
  if (heal.entries.length === 0) return {};
  return { healed: copier.healed.size, unhealed: heal.entries.length - copier.healed.size };
}

/**
 * The state at one seq: the newest earlier snapshot of this store plus the store's changes since
 * (incremental.ts) when the source can tell them, else the whole state read from the store. On the
 * parent's tip when it has one and the run writes a delta (tip-since.ts); else on the parent decoded.
 */
async function readState(source: BackupSource, repo: Repository, copier: BlobCopier, whole: boolean): Promise<StateRead> {
  let fullReadReason: string | undefined;
  const parent = source.stateSince ? await findParent(repo, source.storeId) : undefined;
  phase('parent read');
  if (parent && source.stateSince) {
    try {
      const depth = (parent.tip ? parent.tip.depth : parent.snapshot?.depth ?? 0) + 1;
      const delta = !whole && depth <= backupLimits.deltaChainMax; // else a whole snapshot again (the chain is at its cap)
      if (parent.tip && delta) return await onTip(source, parent.id, parent.tip, copier);
      return await onDecoded(source, repo, parent, copier, delta);
    } catch (error) {
      fullReadReason = fallbackReason(error);
    }
  }
  // a repository without index files holds no blob (nothing to look up): the copy starts while the
  // state is read, on each message's blob-location hint (BlobCopier.fromState), and takes the
  // blobs without one as soon as it is read, beside the journal digest and the tip
  const fresh = (await repo.list('index')).length === 0;
  const state = await fullState(source, fresh ? copier : undefined);
  if (fresh) copier.add(state.blobs);
  phase('state read');
  const journalDigest = await digestAt(source, state.seq);
  const tip = tipOfState(state.ops, state.seq, { snapshot: '', storeId: source.storeId, journalDigest, depth: 0, chain: [], counts: state.counts });
  return { ...state, journalDigest, tip, ...(fullReadReason ? { fullReadReason } : {}) };
}

/** The store's changes since the parent's seq, refused when the store's record at that seq is not the one the parent recorded. */
async function changesSince<T>(source: BackupSource, parent: { id: string; seq: number; journalDigest?: string }, copier: BlobCopier, work: (since: StateSince) => Promise<T>): Promise<T> {
  const since = await source.stateSince!(parent.seq);
  phase('journal since read');
  try {
    if (!parent.journalDigest || since.afterDigest !== parent.journalDigest) {
      throw new MailstoreError('INVALID', `the store's journal record ${parent.seq} is not the one snapshot ${parent.id.slice(0, 12)} was taken at (${parent.journalDigest ? 'the store was rolled back and went on' : 'an older snapshot without its digest'})`);
    }
    copier.early(since); // the new blobs copied while the state is built
    return await work(since);
  } finally {
    await since.close();
  }
}

/** A delta on the parent's tip: nothing of the parent decoded (tip-since.ts). */
async function onTip(source: BackupSource, id: string, tip: Tip, copier: BlobCopier): Promise<StateRead> {
  const run = await changesSince(source, { id, seq: tip.seq, journalDigest: tip.journalDigest }, copier, (since) => applySinceToTip(tip, since, { depth: tip.depth + 1, chain: [...tip.chain, id] }));
  phase('changes applied');
  return {
    seq: run.tip.seq, ops: run.ops, counts: run.counts, blobs: run.needed, journalDigest: run.tip.journalDigest, tip: run.tip,
    delta: { parent: id, depth: run.tip.depth, delta: run.delta }, parent: { id, newHashes: run.needed.length > 0, readWhole: run.readWhole },
  };
}

/** On the parent decoded whole and modelled: a delta when the parent has no tip, or a whole snapshot (--whole, the chain's cap). */
async function onDecoded(source: BackupSource, repo: Repository, parent: ParentSnapshot, copier: BlobCopier, asDelta: boolean): Promise<StateRead> {
  const { snapshot, chain } = await decodedParent(repo, parent);
  const model = modelOf(snapshot);
  phase('parent modelled');
  const { readWhole, journalDigest } = await changesSince(source, { id: parent.id, seq: snapshot.seq, journalDigest: snapshot.journalDigest }, copier,
    async (since) => ({ readWhole: await applySince(model, since), journalDigest: since.appliedDigest }));
  phase('changes applied');
  const depth = (snapshot.depth ?? 0) + 1;
  const delta = asDelta ? { parent: parent.id, depth, delta: deltaOf(model) } : undefined;
  const ops = opsOf(model, { mailboxesOnly: Boolean(delta) });
  const counted = tally(modelOps(model), new Map());
  phase('state counted');
  const tip = tipOfModel(model, { snapshot: '', storeId: source.storeId, journalDigest, depth: delta ? depth : 0, chain: delta ? [...chain, parent.id] : [], counts: counted.counts });
  return { ...counted, seq: model.seq, ops, delta, journalDigest, tip, parent: { id: parent.id, newHashes: Boolean(model.newHashes), readWhole } };
}

/** The digest of the store's journal record at `seq` (for the next run to check its history), when it can tell. */
async function digestAt(source: BackupSource, seq: number): Promise<string | undefined> {
  if (!source.stateSince) return undefined;
  try {
    const since = await source.stateSince(seq);
    await since.close();
    return since.afterDigest;
  } catch (error) {
    fallbackReason(error); // the world's failures only: the snapshot is then never built on
    return undefined;
  }
}

/** A decoded snapshot (or a daemon's answer) holds Uint8Arrays: a view, not a copy, per message. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Copies of message hashes, packed into shared buffers: a message entry read from the index holds
 * its hash as a view into that entry's own value buffer (~330 bytes, an ArrayBuffer each: LevelDB
 * hands every value out as a buffer of its own), or into a whole received frame through the
 * daemon, and a full backup holds every entry until its snapshot is written. A 100k-message store:
 * 41 MB of those buffers and their objects (heap snapshot, session 24).
 */
export class HashSlab {
  private slab = Buffer.alloc(0);
  private used = 0;

  constructor(private readonly slabBytes = 64 * 1024) {}

  copy(hash: Uint8Array): Buffer {
    if (this.used + hash.byteLength > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(this.slabBytes, hash.byteLength));
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + hash.byteLength);
    out.set(hash);
    this.used += hash.byteLength;
    return out;
  }
}

/** The whole state read from the store (without state.blobs: pack locations are the store's own); `copier` copies as it comes. */
async function fullState(source: BackupSource, copier?: BlobCopier): Promise<Omit<StateRead, 'tip'>> {
  const snapshot = await source.snapshotState();
  const ops: Op[] = [];
  const positions = new Map<string, BlobPlace>();
  const hashes = new HashSlab();
  // whether every message read so far is being copied from its blob-location hint (copier.fromState)
  let allHinted = copier !== undefined;
  try {
    for await (const op of snapshot.ops) {
      if (op.op === 'state.messages') for (const m of op.messages) m[1] = hashes.copy(m[1]);
      if (op.op !== 'state.blobs') {
        ops.push(op);
        if (copier && !copier.fromState(op)) allHinted = false;
        continue;
      }
      // the blob index comes last and gives only places: with every blob already being copied from
      // its message's hint (a new repository, a store whose messages all carry one) it is not read
      // (~19k entries of the bench's 20k store, ~0.1 s of the main thread's CPU)
      if (allHinted) break;
      for (const [hash, pack, offset, length] of op.blobs) positions.set(hash.toString('hex'), { position: placeOf(pack, offset), length });
    }
  } finally {
    await snapshot.close();
  }
  return { ...tally(ops, positions), seq: snapshot.appliedSeq, ops };
}

/** Offsets within a pack stay below this, so pack * PACK_SPAN + offset orders blobs by pack, then offset. */
const PACK_SPAN = 2 ** 40;

/** A blob's place in the copy's order (placeOf; read back where the copy reads it). */
function placeOf(pack: number, offset: number): number {
  return pack * PACK_SPAN + offset;
}

/** Where the store keeps a blob: placeOf(pack, offset) (the copy's order), and its body length. */
interface BlobPlace { position: number; length: number }

/** The model's mailboxes and messages as ops, unsorted (for tally: a delta snapshot does not list them). */
function* modelOps(model: StateModel): Generator<Op> {
  for (const box of model.boxes.values()) yield { op: 'state.mailbox', info: box.info };
  for (const box of model.boxes.values()) yield { op: 'state.messages', id: box.info.id, messages: [...box.messages.values()] };
}

/**
 * The mailboxes of a state as its ops come (mailbox records before their messages), under the one
 * rule tally and the copier's early start share: a mailbox being deleted is kept in the state as
 * it was, but its messages are not restored, so their blobs are not needed.
 */
class RestoredMailboxes {
  private readonly names = new Map<string, string>();
  private readonly beingDeleted = new Set<string>();

  /** Records a mailbox; true when its messages are restored (it is not being deleted). */
  see(op: Extract<Op, { op: 'state.mailbox' }>): boolean {
    const key = Buffer.from(op.info.id).toString('hex');
    this.names.set(key, formatMailboxName(op.info.name));
    if (op.info.deleting) this.beingDeleted.add(key);
    return !op.info.deleting;
  }

  deleting(id: Uint8Array): boolean {
    return this.beingDeleted.has(Buffer.from(id).toString('hex'));
  }

  /** The mailbox's name, or undefined when no record of it was seen. */
  nameOf(id: Uint8Array): string | undefined {
    return this.names.get(Buffer.from(id).toString('hex'));
  }
}

/**
 * The counts of a state and the blobs its messages use, in pack order when `positions` knows it
 * (the messages of a mailbox being deleted are not counted: RestoredMailboxes).
 */
function tally(ops: Iterable<Op>, positions: Map<string, BlobPlace>): { counts: SnapshotCounts; blobs: NeededBlob[] } {
  const boxes = new RestoredMailboxes();
  const blobs = new Map<string, NeededBlob>();
  const counts: SnapshotCounts = { mailboxes: 0, messages: 0, bytes: 0, blobs: 0 };
  for (const op of ops) {
    if (op.op === 'state.mailbox') {
      if (boxes.see(op)) counts.mailboxes++;
    } else if (op.op === 'state.messages' && !boxes.deleting(op.id)) {
      const mailbox = boxes.nameOf(op.id) ?? '?';
      for (const [uid, hash, size] of op.messages) {
        counts.messages++;
        counts.bytes += size;
        const view = asBuffer(hash); // a view into the state's own bytes, not a copy per message
        const key = view.toString('hex');
        if (!blobs.has(key)) {
          const place = positions.get(key);
          blobs.set(key, neededBlob(view, key, size, mailbox, uid, place?.position ?? 0, place?.length));
        }
      }
    }
  }
  counts.blobs = blobs.size;
  const list = [...blobs.values()];
  return { counts, blobs: positions.size > 0 ? list.sort((a, b) => a.position - b.position) : list };
}

/** A blob's id in the repository: unencrypted, its hash. */
function idOf(repo: Repository, blob: NeededBlob): Buffer {
  return repo.keys ? blobIdOf(blob.hash, repo.keys) : blob.hash;
}

/**
 * A batch read and compressed. `buffers`: the copier's read buffers its bytes are views into, taken
 * back once its records are made; `unverified` the indexes of bodies read without their BLAKE3
 * checked; `digests` the workers' BLAKE3 of each body (when they hashed it).
 */
interface Batch { blobs: NeededBlob[]; bytes: Buffer[]; unverified: Set<number>; gone: Set<number>; compressed: Buffer[]; digests?: Buffer; headroom?: number; buffers: ArrayBuffer[]; out?: SharedArrayBuffer }

/**
 * A read buffer of the copier's: a batch's blobs (compressBatchBytes, and the last blob over it)
 * read into it, taken back when the batch's records are made. Bigger runs get a buffer of their own.
 */
const READ_BUFFER_BYTES = 2 * backupLimits.compressBatchBytes;

/**
 * A batch's output buffer (compress-pool.ts `out`): the digests and zstd's bound of a read buffer's
 * worth of blobs (compressBound: the bytes, 1/256 of them and a little per blob), and room for each
 * record's header before its body (RECORD_HEADER_BYTES). A batch whose bound is bigger gets a
 * buffer of its own from the worker.
 */
const OUT_BUFFER_BYTES = READ_BUFFER_BYTES + READ_BUFFER_BYTES / 128 + (1024 + RECORD_HEADER_BYTES) * backupLimits.compressBatchBlobs;

/**
 * Reads, compresses, seals and writes the blobs it is given (`add`, any number of times; each blob
 * once). Blobs go to the compression workers in batches, batchesInFlight batches at once, so every
 * core compresses while the main thread reads the next blobs, seals finished ones, and a full data
 * file is written in the background (compress-pool.ts says why not zlib's own async calls). An
 * incremental run hands it the journal's new blobs (`early`) before it builds the state, so the
 * copy runs beside the state's reads instead of after them; `finish` takes what is left.
 */
class BlobCopier {
  private readonly queue: NeededBlob[] = [];
  private readonly queued = new Set<string>();
  private next = 0;
  private readonly window: Promise<Batch>[] = [];
  /** Read buffers free for the next batch (a new one each time made fresh pages: measured 84k page faults a full run against 52k). */
  private readonly free: ArrayBuffer[] = [];
  /** Output buffers free for the next batch (OUT_BUFFER_BYTES), taken back once its records are written. */
  private readonly freeOut: SharedArrayBuffer[] = [];
  private readonly writer: DataFileWriter;
  private draining: Promise<void> | undefined;
  private inIndex: Promise<Set<string>> = Promise.resolve(new Set());
  private failure: { error: unknown } | undefined;
  private finishing: (() => void) | undefined;
  private bytesRead = 0;
  private done = 0;
  /** Blobs written to data files (of those given: the index listed the others). */
  written = 0;
  /** Blobs and their bytes given to copy so far. */
  blobs = 0;
  bytes = 0;

  constructor(private readonly source: BackupSource, private readonly repo: Repository, private readonly compressors: Compressors, private readonly options: BackupOptions) {
    this.writer = new DataFileWriter(repo);
  }

  has(key: string): boolean {
    return this.queued.has(key);
  }

  /** Blobs written whatever the index says (heal/ lists them: only damaged records hold them), by hash (hex)... */
  private readonly forced = new Set<string>();
  /** ...of which those the state does not need: one the store no longer has is left out, not an error. */
  private readonly optional = new Set<string>();
  /** The listed blobs written (by hash, hex). */
  readonly healed = new Set<string>();

  /** The heal list's blobs are written whatever the index says, and counted healed when they are: set before any is copied. */
  force(entries: HealEntry[]): void {
    for (const entry of entries) this.forced.add(entry.hash.toString('hex'));
  }

  /**
   * The blobs of the heal list (heal-list.ts), copied again from the store by hash. `needed`: the
   * state names it (fetched as any of its blobs: a store that cannot give it stops the run).
   */
  heal(list: { entry: HealEntry; needed: boolean }[]): void {
    const blobs: NeededBlob[] = [];
    for (const { entry, needed } of list) {
      const key = entry.hash.toString('hex');
      this.forced.add(key);
      if (!needed) this.optional.add(key);
      const [mailbox, uid] = whereOf(entry.what);
      blobs.push(neededBlob(entry.hash, key, 0, mailbox, uid, 0, undefined));
    }
    if (blobs.length === 0) return;
    // a blob queued already (the journal's new blobs) is written once: the drain writes it even
    // when the index lists it
    this.add(blobs);
  }

  /**
   * The journal's new blobs (`since.fresh`) that no index file lists, copied from now on. They
   * are blobs of the state being built (their messages were not expunged, their mailbox is
   * there and not being deleted); one that were not would only be an unreferenced record, which
   * prune removes. The index is read beside the state's reads.
   */
  early(since: StateSince): void {
    this.compressors.lowerWorkers(); // an incremental run: its main thread first (Compressors.lowerWorkers)
    this.compressors.expect(since.freshBytes); // the workers start while the state is built
    if (since.fresh.length === 0) return;
    const names = new Map<string, string>();
    for (const info of since.mailboxes) if (!info.deleting) names.set(Buffer.from(info.id).toString('hex'), formatMailboxName(info.name));
    const blobs: NeededBlob[] = [];
    const keys = new Set<string>();
    for (const blob of since.fresh) {
      const mailbox = names.get(Buffer.from(blob.id).toString('hex'));
      const hash = asBuffer(blob.hash);
      const key = hash.toString('hex');
      if (mailbox === undefined || keys.has(key)) continue;
      keys.add(key);
      blobs.push(neededBlob(hash, key, blob.size, mailbox, blob.uid, placeOf(blob.pack, blob.offset), blob.size));
    }
    blobs.sort((a, b) => a.position - b.position);
    // copied from now on; the index is read meanwhile, and a blob it lists is read and compressed
    // for nothing but not written (rare: another store's, or a run that stopped after copying it)
    this.inIndex = this.repo.indexHolds(blobs.map((blob) => idOf(this.repo, blob)))
      .then((held) => new Set(blobs.filter((_, i) => held[i]).map((blob) => blob.key)));
    this.inIndex.catch(() => undefined); // awaited by the drain
    this.add(blobs);
  }

  private readonly boxes = new RestoredMailboxes();

  /**
   * A whole state's op as it is read: the blobs of a mailbox's messages that carry a blob-location
   * hint are copied from now on, read at the hint (checked as every read is; one that does not
   * read there is fetched by hash). Mailbox records come before their messages; a mailbox being
   * deleted is left out as tally leaves it out. Returns false when a message of the op is not
   * being copied that way (no hint, or no record of its mailbox seen): the blob index is read then.
   */
  fromState(op: Op): boolean {
    if (op.op === 'state.mailbox') { this.boxes.see(op); return true; }
    if (op.op !== 'state.messages' || this.boxes.deleting(op.id)) return true;
    const mailbox = this.boxes.nameOf(op.id);
    if (mailbox === undefined) return false; // no record seen for it: tally copies its blobs later, by hash
    const blobs: NeededBlob[] = [];
    for (const [uid, hash, size, , , , extras] of op.messages) {
      if (extras?.p === undefined || extras.o === undefined) continue;
      const view = asBuffer(hash);
      blobs.push(neededBlob(view, view.toString('hex'), size, mailbox, uid, placeOf(extras.p, extras.o), size));
    }
    this.add(blobs);
    return blobs.length === op.messages.length;
  }

  /** Copies `blobs` (those not given before). */
  add(blobs: NeededBlob[]): void {
    for (const blob of blobs) {
      if (this.queued.has(blob.key)) continue;
      this.queued.add(blob.key);
      this.queue.push(blob);
      this.blobs++;
      this.bytes += blob.size;
    }
    this.fill();
    if (!this.draining && this.window.length > 0) {
      this.draining = this.drain();
      this.draining.catch((error) => this.fail(error));
    }
  }

  /**
   * Copies what is left, then finishes the last data file; `beforeLastSync` runs once every blob
   * is asked for (the snapshot is encoded while the workers compress the last batches and the last
   * files sync). Returns the message bytes read.
   */
  async finish(beforeLastSync: () => void): Promise<number> {
    let encoded = false;
    // its own mark before the encode's: 'snapshot encoded' measured from the state's end, so the copy's
    // wait for its last batches (most of an incremental run) showed as the snapshot's encode
    const encodeOnce = () => { if (!encoded) { encoded = true; phase('last blobs asked for'); beforeLastSync(); } };
    if (this.next >= this.queue.length) encodeOnce();
    else this.finishing = encodeOnce;
    while (this.draining) await this.draining.catch(() => undefined);
    if (this.failure) throw this.failure.error;
    // every blob compressed: the workers stop while the last files sync, not after them
    this.compressors.close().catch(() => undefined); // awaited (and reported) by runBackup
    await this.writer.flush(false);
    encodeOnce();
    await this.writer.flush(true);
    return this.bytesRead;
  }

  /** Every batch and file settled (a failed run waits for this before it returns: nothing runs behind it). */
  async settled(): Promise<void> {
    while (this.draining) await this.draining.catch(() => undefined);
    await Promise.allSettled(this.window);
    await this.writer.settled();
  }

  private fail(error: unknown): void {
    this.failure ??= { error };
  }

  private fill(): void {
    while (!this.failure && this.next < this.queue.length && this.window.length < backupLimits.batchesInFlight) this.start();
  }

  private start(): void {
    const blobs: NeededBlob[] = [];
    let size = 0;
    while (this.next < this.queue.length && blobs.length < backupLimits.compressBatchBlobs && size < backupLimits.compressBatchBytes) {
      size += this.queue[this.next]!.size;
      blobs.push(this.queue[this.next++]!);
    }
    const pool = this.compressors.for(this.bytes);
    const buffers: ArrayBuffer[] = [];
    // shared, so the compression workers read the blobs where they lie (compress-pool.ts); readRuns
    // without a hash pool only reads into it, and the bodies are views of it as of any ArrayBuffer
    const lend = () => { const buffer = this.free.pop() ?? (new SharedArrayBuffer(READ_BUFFER_BYTES) as unknown as ArrayBuffer); buffers.push(buffer); return buffer; };
    // workers that hash what they compress check the bodies read unverified (drain compares);
    // else they are read verified, in this thread
    const hashedThere = pool instanceof CompressPool && pool.hashes;
    const out = pool instanceof CompressPool ? this.freeOut.pop() ?? new SharedArrayBuffer(OUT_BUFFER_BYTES) : undefined;
    const pending = fetchBatch(this.source, blobs, lend, !hashedThere, this.optional)
      .then(async ({ bytes, unverified, gone }) => ({ blobs, bytes, unverified, gone, ...await pool.compressChecked(bytes, true, out, RECORD_HEADER_BYTES), buffers, out }));
    pending.catch(() => undefined); // handled when its turn comes; a failure must not crash the process before then
    this.window.push(pending);
  }

  /** Takes finished batches in order, refilling the window, until none is in flight. */
  private async drain(): Promise<void> {
    await undefined; // assigned to `draining` before its finally can clear it
    try {
      while (this.window.length > 0 && !this.failure) {
        const batch = await this.window.shift()!;
        this.fill();
        if (this.finishing && this.next >= this.queue.length) this.finishing();
        const inIndex = await this.inIndex;
        for (const [i, blob] of batch.blobs.entries()) {
          if (batch.gone.has(i)) continue; // a listed blob the store no longer has: it stays listed
          let bytes = batch.bytes[i]!, compressed = batch.compressed[i]!, headroom = batch.headroom ?? 0;
          if (batch.unverified.has(i) && !bodyMatches(batch.digests, i, bytes, blob.hash)) {
            // not the blob the state named at that place (damaged, or moved since): read by hash,
            // verified (or CORRUPT, which stops the run), and compressed here
            bytes = await fetchNamed(this.source, blob);
            compressed = (await this.compressors.here(bytes))!;
            headroom = 0;
          }
          this.bytesRead += bytes.length;
          if (inIndex.has(blob.key) && !this.forced.has(blob.key)) continue;
          if (this.forced.has(blob.key)) this.healed.add(blob.key);
          const id = blobIdOf(blob.hash, this.repo.keys);
          // the header written in the room the worker left before the body: a batch's records lie
          // together in its output buffer, one part to write and to hash instead of two a blob
          const parts = sealRecord(id, bytes, compressed, this.repo.codec, this.repo.keys, headroom);
          // stored as read (not worth compressing, no key): a copy, the read buffer is reused
          if (parts[1] === bytes && batch.buffers.length > 0) parts[1] = Buffer.from(parts[1]);
          this.writer.add(id, parts);
          this.written++;
        }
        this.free.push(...batch.buffers); // every view into them is done with (compressed, copied or counted)
        this.done += batch.blobs.length;
        this.options.onProgress?.(this.done, this.bytesRead);
        if (this.writer.bytes >= backupLimits.packBytesTarget) await this.writer.flush(false);
        else await this.writer.push();
        // its records (views into it) are in the data file once the writes pushed so far are done
        const out = batch.out;
        if (out) void this.writer.written.then(() => this.freeOut.push(out));
      }
    } finally {
      this.draining = undefined; // at once as the loop ends: an add after this starts a new drain
    }
  }
}

/**
 * The compression workers, or the main thread for a few blobs (starting the workers, tens of ms,
 * would cost more than they save). An incremental run learns from the journal how many new bytes
 * there may be before it builds its state, and starts the workers then, so they are up when the
 * copy begins; otherwise the choice is made when the copy starts.
 */
class Compressors {
  private pool: CompressPool | InlineCompressor | undefined;
  private inline: InlineCompressor | undefined;
  /** The workers' nice value (lowerWorkers), or undefined: the main thread's. */
  private nice: number | undefined;

  constructor(private readonly codec: BlobCodec) {}

  /**
   * Workers started from now on go as low as the runtime's helpers, when the process asked for
   * that (favourMainThread): an incremental run, whose main thread builds the state while they
   * copy the new blobs and is the one the run waits for (8 of 12 alternating pairs faster, median
   * -6 %). A full run keeps them at the main thread's: its compression is what it waits for
   * (lowered, 6 of 8 pairs slower).
   */
  lowerWorkers(): void {
    this.nice = helperNice();
  }

  /** Up to `bytes` of new blobs are coming: the workers start now when that is more than a few. */
  expect(bytes: number): void {
    if (!this.pool && bytes > backupLimits.inlineCompressBytesMax) this.pool = new CompressPool(this.codec, compressThreadsFor(bytes), undefined, undefined, this.nice);
  }

  /**
   * What compresses when `bytes` of blobs are to be copied in all: the workers if started, else
   * chosen by the amount (the workers once it grows past a few MB; batches on the main thread
   * before that finish there).
   */
  for(bytes: number): CompressPool | InlineCompressor {
    if (bytes > backupLimits.inlineCompressBytesMax && !(this.pool instanceof CompressPool)) {
      this.inline ??= this.pool as InlineCompressor | undefined;
      this.pool = new CompressPool(this.codec, compressThreadsFor(bytes), undefined, undefined, this.nice);
    } else if (this.pool instanceof CompressPool) {
      this.pool.grow(compressThreadsFor(bytes)); // more to copy than the workers were started for: the rest start (grow does nothing else)
    }
    this.pool ??= new InlineCompressor(this.codec);
    return this.pool;
  }

  /** One blob compressed in this thread (a body read again by hash), with the same codec. */
  async here(bytes: Buffer): Promise<Buffer | undefined> {
    this.inline ??= new InlineCompressor(this.codec);
    return (await this.inline.compress([bytes]))[0];
  }

  /** The first compression worker that died, if one did. */
  get lost(): Error | undefined {
    return this.pool instanceof CompressPool ? this.pool.lost : undefined;
  }

  private closing: Promise<void> | undefined;

  /** Stops the workers (once; BlobCopier.finish starts it as the last batch is done, runBackup awaits it). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.pool?.close();
      await this.inline?.close();
    })();
    return this.closing;
  }
}

/**
 * A batch's blobs: those whose place in the store is known read there together (fetchBlobsAt: one
 * pread per run of neighbouring records, no index lookup each), the others and any that did not
 * read there (moved by a compaction since, damaged) one by one by hash, as before.
 */
async function fetchBatch(source: BackupSource, blobs: NeededBlob[], lend: () => ArrayBuffer, verify: boolean, optional: Set<string>): Promise<{ bytes: Buffer[]; unverified: Set<number>; gone: Set<number> }> {
  const placed = source.fetchBlobsAt ? blobs.filter((blob) => blob.length !== undefined) : [];
  const read = placed.length > 0 ? await source.fetchBlobsAt!(placed.map((blob) => ({ hash: blob.hash, location: locationOf(blob) })), lend, { verify, aside: true }) : [];
  const got = new Map<NeededBlob, Buffer>();
  placed.forEach((blob, i) => { if (read[i]) got.set(blob, read[i]!); });
  const unverified = new Set<number>();
  const gone = new Set<number>();
  const bytes = await Promise.all(blobs.map((blob, i) => {
    const body = got.get(blob);
    if (body && !verify) unverified.add(i);
    if (body) return body;
    if (!optional.has(blob.key)) return fetchNamed(source, blob);
    return fetchIfThere(source, blob).then((found) => found ?? (gone.add(i), Buffer.alloc(0)));
  }));
  return { bytes, unverified, gone };
}

/** A blob no message of the state uses (heal/ lists it for older snapshots): undefined when the store no longer has it whole. */
async function fetchIfThere(source: BackupSource, blob: NeededBlob): Promise<Buffer | undefined> {
  try {
    return await source.fetchBlob(blob.hash);
  } catch (error) {
    if (isMailstoreError(error, 'CORRUPT') || isMailstoreError(error, 'NOT_FOUND')) return undefined;
    throw error;
  }
}

/** The mailbox and uid in a heal entry's "snapshot S MAILBOX uid N" (an error names them). */
function whereOf(what: string): [string, number] {
  const match = /^snapshot \S+ (.*) uid (\d+)$/.exec(what);
  return match ? [match[1]!, Number(match[2])] : [what, 0];
}

/** Whether a body read unverified is the blob: the worker's digest of it when there is one, else hashed here. */
function bodyMatches(digests: Buffer | undefined, i: number, body: Buffer, hash: Buffer): boolean {
  return digests ? digests.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES).equals(hash) : hashMatches(body, hash);
}

function locationOf(blob: NeededBlob): { pack: number; offset: number; length: number } {
  const pack = Math.floor(blob.position / PACK_SPAN);
  return { pack, offset: blob.position - pack * PACK_SPAN, length: blob.length! };
}

/**
 * A damaged message stops the backup (no snapshot is written, earlier ones stay): a snapshot that
 * could not restore it would be a backup that lies. The store's scrub --repair, or an expunge of
 * the message, lets the next run through.
 */
async function fetchNamed(source: BackupSource, blob: NeededBlob): Promise<Buffer> {
  try {
    return await source.fetchBlob(blob.hash);
  } catch (error) {
    if (!isMailstoreError(error, 'CORRUPT') && !isMailstoreError(error, 'NOT_FOUND')) throw error;
    const what = `${blob.mailbox} uid ${blob.uid}`;
    throw new MailstoreError('CORRUPT', `${what} is damaged in the store, so no snapshot was written (run 'mailstore scrub'; ${error.message})`, { path: what, cause: error });
  }
}

/**
 * Gathers records for one data file and appends them to it a batch at a time (`push`), so the
 * bytes reach the page cache while the next blobs are read and compressed; `flush` hands the file
 * to the background, where it is finished (fsync, rename), then its index file is written (the
 * index refers to the data file only once it is durable).
 * Files are finished one at a time, in order; `flush(true)` waits for all.
 */
class DataFileWriter {
  private file: DataStream | undefined;
  private pending: Buffer[] = [];
  /** The last parts added, lying together in `memory` from `start` to `end` (put), not yet in `pending`. */
  private run: { memory: ArrayBufferLike; start: number; end: number } | undefined;
  private blobs: [Buffer, number, number][] = [];
  private writing: Promise<void> = Promise.resolve();
  bytes = 0;

  constructor(private readonly repo: Repository) {}

  add(id: Buffer, parts: Buffer[]): void {
    if (this.bytes === 0) {
      this.put(encodeDataHeader(Boolean(this.repo.keys)));
      this.bytes = DATA_HEADER_BYTES;
    }
    this.blobs.push([id, this.bytes, parts[1].length]);
    for (const part of parts) this.put(part);
    this.bytes += parts[0].length + parts[1].length;
  }

  /**
   * A part after the others; one that starts where the last one ends, in the same memory (a record's
   * header written before its body, the next record after it: sealRecord's headroom), extends it.
   * A part per record was a napi call each to the data file's BLAKE3, most of it on the hash's
   * slower one-chunk path, and an iovec each to the write.
   */
  private put(part: Buffer): void {
    const run = this.run;
    if (run && run.memory === part.buffer && run.end === part.byteOffset) { run.end += part.length; return; }
    this.closeRun();
    this.run = { memory: part.buffer, start: part.byteOffset, end: part.byteOffset + part.length };
  }

  /** The parts joined so far, as one view after the pending ones. */
  private closeRun(): void {
    if (this.run) this.pending.push(Buffer.from(this.run.memory, this.run.start, this.run.end - this.run.start));
    this.run = undefined;
  }

  /** Settles once everything pushed so far is written (or failed: the run stops on it elsewhere). */
  written: Promise<unknown> = Promise.resolve();

  /** Appends what was added since the last push to the open data file (opened on first use). */
  async push(): Promise<void> {
    this.closeRun();
    if (this.pending.length === 0) return;
    this.file ??= await this.repo.openData();
    this.written = this.file.append(this.pending).catch(() => undefined);
    this.pending = [];
  }

  /** Finishes the current file once the previous one is finished; `wait`: until it is. */
  async flush(wait: boolean): Promise<void> {
    await this.writing; // the previous file's failure stops the run here
    await this.push();
    if (this.file && this.blobs.length > 0) {
      const file = this.file;
      const index: IndexFile = { files: [{ file: '', blobs: this.blobs }] };
      this.file = undefined;
      this.blobs = [];
      this.bytes = 0;
      this.writing = this.finish(file, index);
      this.writing.catch(() => undefined); // reported by the next flush or settled, not as an unhandled rejection
    }
    if (wait) await this.writing;
  }

  /** The background work done or failed, and a file never finished removed (a failed run waits for this before it returns). */
  async settled(): Promise<void> {
    await this.writing.catch(() => undefined);
    const file = this.file;
    this.file = undefined;
    await file?.abort();
  }

  /**
   * The data file made durable (fsync, rename, directory fsync) while its index file is written and
   * fsynced under a temp name; the index is renamed into view only once the data file is durable.
   */
  private async finish(file: DataStream, index: IndexFile): Promise<void> {
    index.files[0]!.file = file.name();
    const durable = file.finish();
    durable.catch(() => undefined); // awaited below
    let staged: StagedFile;
    try {
      staged = await this.repo.stageIndex(index);
    } catch (error) {
      await durable.catch(() => undefined);
      throw error;
    }
    try {
      await durable;
    } catch (error) {
      await staged.abort();
      throw error;
    }
    await staged.publish();
  }
}
