// The read pipeline: message metadata from the index, bodies from the packs, every body verified
// against its hash before it leaves. Reads see committed state only (the Writer's view is never
// read here) and never wait for the Writer.
import { Buffer } from 'node:buffer';
import os from 'node:os';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { AssertionFailure, MailstoreError, isMailstoreError } from '../errors.js';
import { hashHex } from '../hash/blake3.js';
import type { IndexDb } from '../index/index-db.js';
import { keys, decodeMessageKey, messageKeyUid } from '../keys/index-keys.js';
import { prefixEnd } from '../keys/tuple.js';
import { PACK_NUMBER_MAX, RECORD_HEADER_BYTES } from '../blob/pack-format.js';
import { INLINE_PACK, runEnd, type BlobLocation, type PackStore, type RunItem } from '../blob/pack-store.js';
import type { HashPool } from '../hash/pool.js';
import type { SharedHashPool } from '../hash/shared-pool.js';
import { limits } from '../limits.js';
import type { BlobRecord, MailboxInfo, MessageRecord } from './records.js';
import { toInfo, type Changes, type ChangesSincePart, type MessageInfo, type MessageWithBody, type ReadMessagesOptions } from './types.js';
import { checkBoolean, checkFunction, checkHash, checkModseq, checkOptions, checkUid, parseMailboxName } from './validate.js';

/** What the reader needs of its Store: the current index (replaced by an index swap), the packs. */

/** fetchBlobsAt's options. */
export interface FetchAtOptions {
  /** false: each record's header and length are checked, not its body's BLAKE3; the caller must check it before trusting the body (a backup's compression workers do). Default true. */
  verify?: boolean;
  /** true: the packs are read on the thread pool (ReadOptions.aside): the caller has other work meanwhile (a backup's copy). */
  aside?: boolean;
}

export interface ReaderHost {
  readonly db: IndexDb;
  readonly packs: PackStore;
  /** Throws CLOSED (or the error that stopped the store) when reads are no longer served. */
  live(): void;
  /** A committed mailbox by name, cached; the caller must not change it. */
  committedBox(name: string): Readonly<MailboxInfo>;
}

/** One message of a readMessages batch: where its blob is, then its verified body or why not. */
interface PendingRead {
  info: MessageInfo;
  hash: Buffer;
  location?: BlobLocation;
  /** `location` is its record's blob-location hint, not yet confirmed by a read (relocateStale). */
  hinted?: boolean;
  body?: Buffer;
  error?: unknown;
  /** Settled once its run was read and verified (readMessages' startGroup), and then cleared. */
  ready?: Promise<void>;
  /** lendBodies: the buffer of its group, reused once the consumer moved past every message of it. */
  lease?: GroupLease;
}

/**
 * A PendingRead with every field there from the start: the reader sets ready, lease and body (or
 * error) later, and on an object made with four, each of those added a field to its shape (a new
 * property array for the ones beyond its room, ~45 B a message, issue 16), and the code that
 * read them saw every step of that as a shape of its own.
 */
function pendingRead(info: MessageInfo, hash: Buffer, location: BlobLocation | undefined): PendingRead {
  return { info, hash, location, hinted: location !== undefined, body: undefined, error: undefined, ready: undefined, lease: undefined };
}

/** A lent group's buffer and how many of its messages the consumer has not moved past yet. */
interface GroupLease {
  left: number;
  buffer: SharedArrayBuffer;
}

/** What the groups of one readMessages share: whether the hash pool may take its runs, and how many it has now. */
interface ReadPipeline {
  mailbox: string;
  /** The store has workers, and the mailbox is limits.readPoolMailboxBytesMin or more. */
  pooled: boolean;
  onWorkers: number;
  /** lendBodies: the group buffers to read into. */
  lent?: LentBuffers;
  /** A group's body bytes (limits.readBatchBytes; lending, limits.readLentBatchBytes). */
  groupBytes: number;
  /** A hash job's body bytes (limits.readPoolBatchBytes; lending, limits.readLentBatchBytes). */
  jobBytes: number;
}

export class StoreReader {
  /**
   * `hashPool`: the store's shared workers (scrub uses the same), leased by a group of a big
   * readMessages; `hashThreads`: StoreOptions.readHashThreads, how many it asks for (0: none).
   */
  constructor(private readonly host: ReaderHost, private readonly hashPool: SharedHashPool, private readonly hashThreads = os.availableParallelism() > 1 ? 1 : 0) {}

  async messageInfo(mailbox: string, uid: number): Promise<MessageInfo> {
    parseMailboxName(mailbox);
    const checked = checkUid(uid);
    this.host.live();
    const box = await this.host.db.readNow(() => this.committed(mailbox)); // synchronous reads: not in an index reopen
    const record = await this.host.db.get<MessageRecord>(keys.message(box.id, checked));
    if (!record) throw new MailstoreError('NOT_FOUND', `no message with uid ${uid} in ${mailbox}`, { path: `${mailbox}/${uid}` });
    return toInfo(checked, record);
  }

  /** Every message of a mailbox in uid order (metadata only). */
  async *messages(mailbox: string, options: { fromUid?: number } = {}): AsyncGenerator<MessageInfo> {
    parseMailboxName(mailbox);
    checkOptions(options, ['fromUid'], 'messages option');
    const fromUid = options.fromUid === undefined ? 1 : checkUid(options.fromUid, 'fromUid');
    this.host.live();
    const box = await this.host.db.readNow(() => this.committed(mailbox));
    const gte = keys.message(box.id, fromUid);
    for await (const [key, record] of this.host.db.entries<MessageRecord>({ gte, lt: prefixEnd(keys.messagePrefix(box.id)) })) {
      yield toInfo(decodeMessageKey(key).uid, record);
    }
  }

  /** CONDSTORE/QRESYNC: messages changed and uids expunged after `modseq`. */
  async changesSince(mailbox: string, modseq: number): Promise<Changes> {
    const parts = this.changesSinceParts(mailbox, modseq);
    return (await import('./changes-parts.js')).collectChanges(parts);
  }

  /** changesSince a part at a time, from one point in time (changes-since.ts). */
  async *changesSinceParts(mailbox: string, modseq: number): AsyncGenerator<ChangesSincePart> {
    parseMailboxName(mailbox);
    checkModseq(modseq);
    this.host.live();
    const { id } = await this.host.db.readNow(() => this.committed(mailbox));
    yield* (await import('./changes-since.js')).changesSinceParts(this.host.db, id, mailbox, modseq);
  }

  /**
   * The message's exact bytes, verified against its hash (CORRUPT otherwise). Read where its
   * record's hint says first; a hint that fails the read's checks costs the B lookup it saves.
   */
  async fetch(mailbox: string, uid: number): Promise<Buffer> {
    const { id, record } = await this.messageRecord(mailbox, uid);
    try {
      return await this.fetchRecord(mailbox, uid, record);
    } catch (error) {
      throw await this.reclaimedMeanwhile(error, mailbox, id, uid, record);
    }
  }

  private async fetchRecord(mailbox: string, uid: number, record: MessageRecord): Promise<Buffer> {
    const hash = Buffer.from(record.h);
    const hinted = hintedLocation(record);
    let stale: unknown;
    if (hinted) {
      try {
        return await this.host.packs.read(hinted, hash);
      } catch (error) {
        stale = error;
      }
    }
    const blob = await this.blobOf(mailbox, uid, record);
    const location = { pack: blob.p, offset: blob.o, length: blob.l };
    if (hinted && sameLocation(hinted, location)) throw stale; // read there already: its failure stands
    return this.host.packs.read(location, hash);
  }

  /** Streams a big message: verified in a first pass, then handed out, so no unverified byte leaves. */
  async fetchStream(mailbox: string, uid: number): Promise<Readable> {
    const { id, record } = await this.messageRecord(mailbox, uid);
    const blob = await this.blobOf(mailbox, uid, record);
    const chunks = this.host.packs.readStream({ pack: blob.p, offset: blob.o, length: blob.l }, Buffer.from(record.h), limits.readChunkBytes);
    const reader = this;
    return Readable.from((async function* () {
      try {
        yield* chunks;
      } catch (error) {
        throw await reader.reclaimedMeanwhile(error, mailbox, id, uid, record);
      }
    })());
  }

  /**
   * A read that failed because its blob is gone from the index and from its retired pack: when the
   * message was expunged since it was looked up (a stream opened, then read after another client's
   * expunge and a compaction), that is NOT_FOUND, as it is for a read started a moment later, and
   * no damage: nothing is missing that the index still refers to. Anything else stands.
   */
  private async reclaimedMeanwhile(error: unknown, mailbox: string, id: Uint8Array, uid: number, record: MessageRecord): Promise<unknown> {
    if (!isMailstoreError(error) || error.code !== 'CORRUPT' || !(await this.goneMeanwhile(id, uid, record.h))) return error;
    return new MailstoreError('NOT_FOUND', `message ${uid} in ${mailbox} was expunged while it was being read`, { path: `${mailbox}/${uid}`, cause: error });
  }

  /** The message is no longer in its mailbox and no message uses its blob any more (else a failed read of it is damage). */
  private goneMeanwhile(id: Uint8Array, uid: number, hash: Uint8Array): boolean | Promise<boolean> {
    return this.host.db.readNow(() => {
      const now = this.host.db.getNow<MessageRecord>(keys.message(id, uid));
      if (now && Buffer.from(now.h).equals(Buffer.from(hash))) return false;
      return (this.host.db.getNow<BlobRecord>(keys.blob(hash))?.r ?? 0) === 0;
    });
  }

  /** Reads a blob by hash (repair sources, export); verified. */
  async fetchBlob(hash: Buffer): Promise<Buffer> {
    hash = checkHash(hash);
    this.host.live();
    const blob = await this.host.db.get<BlobRecord>(keys.blob(hash));
    if (!blob) throw new MailstoreError('NOT_FOUND', `no blob ${hashHex(hash)}`, { path: hashHex(hash) });
    return this.host.packs.read({ pack: blob.p, offset: blob.o, length: blob.l }, hash);
  }

  /**
   * Blobs at the locations a state read gave (a backup's copy), each verified as fetchBlob's is
   * (record header, length, BLAKE3 of the body): the records lying together in a pack read with
   * one pread into one buffer (packRuns), the bodies views into it, and no index lookup. A full
   * backup made an index lookup, a pread and a buffer per blob (20k of each on the bench). A blob
   * whose read fails here gets undefined (its pack was compacted away since, or it is damaged):
   * the caller asks fetchBlob, which looks it up again and says what is wrong. `lend`: a buffer
   * of the caller's for each pack's runs to be read into (used when big enough, else a new one),
   * which the caller takes back once it is done with the bodies: a new buffer of megabytes per
   * batch is fresh memory from the kernel each time (a page fault every 4 KiB). `verify` false
   * (FetchAtOptions): the caller checks each body's BLAKE3 itself before it trusts it.
   */
  async fetchBlobsAt(blobs: readonly { hash: Buffer; location: BlobLocation }[], lend?: () => ArrayBuffer | undefined, options: FetchAtOptions = {}): Promise<(Buffer | undefined)[]> {
    this.host.live();
    const items: RunItem[] = blobs.map(({ hash, location }) => ({ hash: checkHash(hash), location }));
    const sorted = [...items].sort((a, b) => a.location.pack - b.location.pack || a.location.offset - b.location.offset);
    const runs = packRuns(sorted);
    for (let i = 0; i < runs.length;) {
      const pack = runs[i]![0]!.location.pack;
      let j = i + 1;
      while (j < runs.length && runs[j]![0]!.location.pack === pack) j++;
      await this.host.packs.readRuns(pack, runs.slice(i, j), undefined, false, lend?.(), options.verify ?? true, 0, options.aside ?? false);
      i = j;
    }
    return items.map((item) => (item.error === undefined ? item.body : undefined));
  }

  /**
   * Every message of a mailbox with its bytes, in uid order, each verified against its hash before
   * it is yielded (IMAP FETCH 1:* BODY[], export). The index is read a batch at a time, the next
   * batches located (limits.readAheadBatches) while this batch's bodies are read, and the records
   * of the batch after them scanned meanwhile. Bodies are read
   * a group (limits.readBatchBytes) at a time in pack order, the next group's reads started before
   * this group's messages go out, so at most two groups (or one bigger message each) are held. A
   * message goes out as soon as its run was verified, not after its whole group. A message that
   * fails verification throws, as fetch would, once every message before it was yielded.
   */
  readMessages(mailbox: string, options: ReadMessagesOptions = {}): AsyncGenerator<MessageWithBody> {
    return new MessageReads(() => this.host.db.readNow(() => this.startReads(mailbox, options)));
  }

  /** What readMessages does at its first next(), as an async generator's body would: checks, then the read-ahead. */
  private startReads(mailbox: string, options: ReadMessagesOptions): ReadSession {
    parseMailboxName(mailbox);
    checkOptions(options, ['fromUid', 'onCorrupt', 'lendBodies'], 'readMessages option');
    const fromUid = options.fromUid === undefined ? 1 : checkUid(options.fromUid, 'fromUid');
    if (options.onCorrupt !== undefined) checkFunction(options.onCorrupt, 'onCorrupt');
    if (options.lendBodies !== undefined) checkBoolean(options.lendBodies, 'lendBodies');
    this.host.live();
    const box = this.host.committedBox(mailbox);
    const batches = this.host.db.entryBatches<MessageRecord>({ gte: keys.message(box.id, fromUid), lt: prefixEnd(keys.messagePrefix(box.id)) }, limits.readBatchMessages, limits.readBatchIndexBytes);
    // the index scan runs a batch ahead of the blob lookups: the next batch's records are read
    // (nextv) while this batch's blobs are looked up (getMany), so a batch is located in one
    // thread-pool round trip after the one before it, not two; the reading thread waited on the
    // index at most group boundaries of a SpamAssassin pass
    let records = batches.next();
    const readAhead = () => {
      const these = records;
      records = batches.next(); // runs once `these` came: the generator reads one batch at a time
      records.catch(() => undefined); // awaited by the next locateBatch: a failure meanwhile is not unhandled
      const batch = this.locateBatch(mailbox, these);
      batch.catch(() => undefined); // awaited later: a failure meanwhile is not unhandled
      return batch;
    };
    // limits.readAheadBatches located batches in flight (nextv, then getMany: a thread-pool round
    // trip each) while one goes out
    const ahead = Array.from({ length: limits.readAheadBatches }, readAhead);
    let groups: PendingRead[][] = [];
    const nextGroup = async (): Promise<PendingRead[] | undefined> => {
      while (groups.length === 0) {
        const batch = await ahead.shift();
        if (!batch) return undefined;
        ahead.push(readAhead());
        groups = byteGroups(batch, pipeline.groupBytes);
      }
      return groups.shift();
    };
    // lending: bigger groups and jobs for a worker (its buffers are reused: two or three held whatever their size)
    const pooled = this.hashThreads > 0 && box.bytes >= limits.readPoolMailboxBytesMin;
    const pipeline: ReadPipeline = options.lendBodies
      ? { mailbox, pooled, onWorkers: 0, lent: new LentBuffers(), groupBytes: pooled ? limits.readLentBatchBytes : limits.readLentInThreadBatchBytes, jobBytes: limits.readLentBatchBytes }
      : { mailbox, pooled, onWorkers: 0, groupBytes: limits.readBatchBytes, jobBytes: limits.readPoolBatchBytes };
    const reading: Promise<void>[] = [];
    return {
      reading,
      lent: pipeline.lent,
      onCorrupt: options.onCorrupt,
      goneMeanwhile: (item) => this.goneMeanwhile(box.id, item.info.uid, item.hash),
      // an index failure (CLOSED, IO) is kept until every message of the group going out came out
      following: () => nextGroup().then(
        (group) => { if (group) reading.push(this.startGroup(group, pipeline)); return { group }; },
        (error: unknown) => ({ failure: { error } })),
      close: async () => {
        await Promise.allSettled(reading); // their pool leases released, no pack read left running
        await batches.return(undefined); // closes the iterator once a pending read-ahead is done
      },
    };
  }

  /** The next batch of message records, each with its blob's location (one getMany). */
  private async locateBatch(mailbox: string, records: Promise<IteratorResult<[Buffer, MessageRecord][]>>): Promise<PendingRead[] | undefined> {
    let entries: [Buffer, MessageRecord][] | void;
    try {
      entries = (await records).value;
    } catch (error) {
      this.host.live(); // a store closed meanwhile is CLOSED, not an index read error
      throw error;
    }
    if (!entries) return undefined;
    this.host.live();
    // a record's hint is its location: no getMany (a cold SpamAssassin pass: -15 % of the reading
    // thread's instructions, BENCHMARKS.md); records written before hints are looked up in one
    // indexed, not destructured: an array pattern walks an iterator, objects a message until optimised
    const items: PendingRead[] = new Array(entries.length);
    const unhinted: PendingRead[] = [];
    for (let i = 0; i < entries.length; i++) {
      const record = entries[i][1];
      const info = toInfo(messageKeyUid(entries[i][0]), record);
      const location = hintedLocation(record);
      items[i] = pendingRead(info, record.h, location);
      if (!location) unhinted.push(items[i]);
    }
    if (unhinted.length > 0) await this.locateByBlob(mailbox, unhinted);
    return items;
  }

  /** Sets each item's location from its B entry (one getMany), or its error. */
  private async locateByBlob(mailbox: string, items: PendingRead[]): Promise<void> {
    const blobKeys: Buffer[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) blobKeys[i] = keys.blob(items[i].hash);
    const blobs = await this.host.db.getMany<BlobRecord>(blobKeys);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const blob = blobs[i];
      item.hinted = false;
      item.location = undefined;
      if (blob instanceof MailstoreError) item.error = blob;
      else if (!blob) item.error = unknownBlob(mailbox, item.info.uid, item.hash);
      else item.location = { pack: blob.p, offset: blob.o, length: blob.l };
    }
  }

  /**
   * The items of a run read at their hint that failed the read's checks (a stale hint: compaction
   * moved the blob, a repair re-wrote it; or a damaged one): located by their B entries and read
   * again there, in runs. Where the B entry names the same place, the read's error stands.
   */
  private async relocateStale(run: PendingRead[], mailbox: string): Promise<void> {
    let stale: PendingRead[] | undefined;
    for (let i = 0; i < run.length; i++) if (run[i].hinted && run[i].error !== undefined) (stale ??= []).push(run[i]);
    if (stale === undefined) return;
    const hints = stale.map((item) => item.location!);
    const errors = stale.map((item) => item.error);
    await this.locateByBlob(mailbox, stale);
    const moved: PendingRead[] = [];
    for (let i = 0; i < stale.length; i++) {
      const item = stale[i];
      if (!item.location) continue; // the B lookup's own error
      if (sameLocation(hints[i], item.location)) { item.error = errors[i]; continue; }
      item.error = undefined;
      moved.push(item);
    }
    // in runs as a group's reads (a compacted mailbox: every hint stale, the blobs together again)
    moved.sort((a, b) => a.location!.pack - b.location!.pack || a.location!.offset - b.location!.offset);
    for (const again of packRuns(moved)) await this.host.packs.readRun(again[0].location!.pack, again as RunItem[], undefined, false);
  }

  /**
   * Starts reading a group's bodies in pack order and returns at once; each located item gets
   * `ready`, settled once its run was read and verified (its body or its error set). Neighbours in a
   * pack are read with one pread (packRuns, PackStore.readRun). The returned promise settles when
   * every run is done and the group's pool lease is released.
   */
  private startGroup(group: PendingRead[], pipeline: ReadPipeline): Promise<void> {
    const located = group.filter((item) => item.location);
    located.sort((a, b) => a.location!.pack - b.location!.pack || a.location!.offset - b.location!.offset);
    const runs = packRuns(located);
    const settle: (() => void)[] = runs.map((run) => {
      let resolve!: () => void;
      const ready = new Promise<void>((r) => { resolve = r; });
      for (let i = 0; i < run.length; i++) run[i].ready = ready;
      // a run settled before readMessages reaches its items: they go out without an await each (a
      // promise hop a message, most of them: the group is read ahead of the consumer)
      return () => {
        for (let i = 0; i < run.length; i++) run[i].ready = undefined;
        resolve();
      };
    });
    const done = this.readGroup(runs, settle, pipeline).finally(() => { for (const s of settle) s(); }); // a bug's throw leaves no reader waiting
    done.catch(() => undefined); // awaited by readMessages
    return done;
  }

  /**
   * A group's runs in pack order. Pack reads are synchronous, so it lets the event loop run every
   * limits.readTurnBytes or limits.readTurnMessages: the read-ahead, the messages before these (and a
   * server's other clients) go on meanwhile. In a big mailbox the runs of one pack are hashed on
   * the store's pool, up to pipeline.jobBytes a job (the pool leased by the group's first
   * batch, started then if need be), while this thread reads on, unless limits.readRunsHashing
   * jobs of this read are there already: then this thread hashes the next run itself, so both
   * threads hash instead of one waiting for the other.
   */
  private async readGroup(runs: PendingRead[][], settle: (() => void)[], pipeline: ReadPipeline): Promise<void> {
    let leased: HashPool | undefined | null = null; // null: not asked for yet
    const poolNow = (): HashPool | undefined => {
      if (!pipeline.pooled) return undefined;
      if (pipeline.onWorkers >= limits.readRunsHashing) return undefined;
      if (leased === null) leased = this.hashPool.acquire(this.hashThreads);
      return leased?.ready ? leased : undefined;
    };
    const hashing: Promise<void>[] = []; // runs whose bodies a worker verifies meanwhile
    let bytesSinceTurn = 0, messagesSinceTurn = 0;
    const lease = pipeline.lent && this.lendGroup(runs, pipeline.lent);
    let at = 0; // where in the lease's buffer the next batch goes
    try {
      for (let i = 0; i < runs.length;) {
        // the runs of one pack go to the worker together: one pread each into one buffer and one
        // job for all of them (a job a run made ~1,900 round trips of a 20k pass, each costing
        // this thread more than hashing the run itself saved); hashed here, a run at a time, so
        // that the event loop runs every limits.readTurnBytes
        let j = i + 1;
        let batchBytes = runBytesOf(runs[i]);
        let pool = poolNow();
        if (pool) {
          const pack = runs[i][0].location!.pack;
          while (j < runs.length && runs[j][0].location!.pack === pack && batchBytes < pipeline.jobBytes) batchBytes += runBytesOf(runs[j++]);
          if (batchBytes < limits.readPoolRunBytesMin) pool = undefined;
        }
        const batch = runs.slice(i, j);
        const first = i;
        const into = at;
        if (lease) for (const run of batch) at += spanBytes(run);
        const done = this.readBatch(batch, pool, lease, into).then(async () => { for (const run of batch) await this.relocateStale(run, pipeline.mailbox); });
        const settleBatch = () => { for (let k = first; k < j; k++) settle[k](); };
        if (pool) {
          pipeline.onWorkers++;
          hashing.push(done.finally(() => { pipeline.onWorkers--; settleBatch(); }));
        } else {
          await done;
          settleBatch();
        }
        for (const run of batch) messagesSinceTurn += run.length;
        bytesSinceTurn += batchBytes;
        i = j;
        // counted across runs: a mailbox scattered over the packs makes runs of one message
        if (bytesSinceTurn >= limits.readTurnBytes || messagesSinceTurn >= limits.readTurnMessages) {
          bytesSinceTurn = 0;
          messagesSinceTurn = 0;
          await nextTurn();
        }
      }
      await Promise.all(hashing); // readRuns sets errors on its items, it does not reject
    } finally {
      if (leased) this.hashPool.release();
    }
  }

  /**
   * lendBodies: one buffer for the whole group (limits.readLentBytes, or the size of one bigger
   * record), its batches read into it one after the other, and one lease on it for the group's
   * messages. Shared memory: a hash worker reads it where it is, nothing is handed over and back.
   */
  private lendGroup(runs: PendingRead[][], lent: LentBuffers): GroupLease {
    let bytes = 0, items = 0;
    for (const run of runs) {
      bytes += spanBytes(run);
      items += run.length;
    }
    const lease: GroupLease = { left: items, buffer: lent.take(bytes) }; // given back once the consumer moved past every message of the group
    for (const run of runs) for (let i = 0; i < run.length; i++) run[i].lease = lease;
    return lease;
  }

  /** Runs of one pack, with lendBodies into the group's buffer at `at`. */
  private async readBatch(batch: PendingRead[][], pool: HashPool | undefined, lease: GroupLease | undefined, at: number): Promise<void> {
    const pack = batch[0][0].location!.pack;
    // no record views: only compaction copies records
    await this.host.packs.readRuns(pack, batch as RunItem[][], pool, false, lease?.buffer, true, at);
  }

  /** The message's record and its mailbox's id (the mailbox may be renamed while it is read). */
  private async messageRecord(mailbox: string, uid: number): Promise<{ id: Uint8Array; record: MessageRecord }> {
    parseMailboxName(mailbox);
    const checked = checkUid(uid);
    this.host.live();
    const box = await this.host.db.readNow(() => this.host.committedBox(mailbox));
    const record = await this.host.db.get<MessageRecord>(keys.message(box.id, checked));
    if (!record) throw new MailstoreError('NOT_FOUND', `no message with uid ${uid} in ${mailbox}`, { path: `${mailbox}/${uid}` });
    return { id: box.id, record };
  }

  private async blobOf(mailbox: string, uid: number, record: MessageRecord): Promise<BlobRecord> {
    const blob = await this.host.db.get<BlobRecord>(keys.blob(record.h));
    if (!blob) throw unknownBlob(mailbox, uid, record.h);
    return blob;
  }

  /** committedBox with its id as a Buffer, for the key builders. */
  private committed(mailbox: string): Readonly<MailboxInfo> {
    const box = this.host.committedBox(mailbox);
    return { ...box, id: Buffer.from(box.id) };
  }
}

/**
 * A record's blob-location hint as a location (its length the record's size: a blob's length is
 * its message's), or undefined when it has none or one of the wrong shape (then the B entry).
 */
function hintedLocation(record: MessageRecord): BlobLocation | undefined {
  const { p, o, s } = record;
  if (p === undefined) return undefined;
  const packOk = p === INLINE_PACK || (Number.isInteger(p) && p >= 1 && p <= PACK_NUMBER_MAX);
  return packOk && Number.isSafeInteger(o) && o! >= 0 && Number.isSafeInteger(s) && s >= 0 ? { pack: p, offset: o!, length: s } : undefined;
}

function sameLocation(a: BlobLocation, b: BlobLocation): boolean {
  return a.pack === b.pack && a.offset === b.offset && a.length === b.length;
}

function unknownBlob(mailbox: string, uid: number, hash: Uint8Array): MailstoreError {
  return new MailstoreError('CORRUPT', `message ${uid} in ${mailbox} refers to blob ${hashHex(hash)}, which the index does not know; run 'mailstore scrub'`, { path: `${mailbox}/${uid}` });
}

/**
 * Splits items sorted by pack and offset into runs read with one pread each: same pack, at most
 * limits.readGapBytes between two records (skipped bytes are read too), at most
 * limits.readTurnBytes of records (or one bigger record) and limits.readTurnMessages messages. A
 * body is a view into its run's buffer, so a consumer that keeps one body keeps at most that much.
 */
function packRuns<T extends { location?: BlobLocation }>(located: T[]): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let runStart = 0, runEnd = 0;
  for (let i = 0; i < located.length; i++) {
    const item = located[i];
    const { pack, offset, length } = item.location!;
    const end = offset + RECORD_HEADER_BYTES + length;
    const joins = run.length > 0 && run.length < limits.readTurnMessages && pack === run[0].location!.pack &&
      offset - runEnd <= limits.readGapBytes && Math.max(end, runEnd) - runStart <= limits.readTurnBytes;
    if (!joins) {
      if (run.length > 0) runs.push(run);
      run = [];
      runStart = offset;
      runEnd = end;
    }
    run.push(item);
    runEnd = Math.max(runEnd, end);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** One readMessages under way, as StoreReader.startReads set it up. */
interface ReadSession {
  /** The next group located, its reads started (pushed to `reading`); or the index failure met meanwhile. */
  following(): Promise<{ group?: PendingRead[]; failure?: { error: unknown } }>;
  /** The group going out, then the one read meanwhile. */
  readonly reading: Promise<void>[];
  readonly lent?: LentBuffers;
  readonly onCorrupt?: ReadMessagesOptions['onCorrupt'];
  /** StoreReader.goneMeanwhile for a message of this read. */
  goneMeanwhile(item: PendingRead): boolean | Promise<boolean>;
  /** Waits for every read started, then closes the index iterator. */
  close(): Promise<void>;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * readMessages' iterator, written out by hand. An async generator costs a message several objects
 * and promise hops more (its yield awaits, its resumption is a job of its own): measured in a cold
 * process, 6,046 yields took ~32 ms against ~18 ms for a next() that hands over a message already
 * verified (most of them: a group is read ahead of the consumer) as a resolved promise. Anything
 * else goes through `pull`, which behaves as the generator's loop did; next() calls are served in
 * order, and return()/throw() end it as a generator's finally would.
 */
class MessageReads implements AsyncGenerator<MessageWithBody> {
  private session?: ReadSession;
  private group?: PendingRead[];
  private index = 0;
  private after?: ReturnType<ReadSession['following']>;
  /** The message last handed out: its lent bytes are free to reuse once the consumer asks for the next. */
  private handedOut?: PendingRead;
  private pulling?: Promise<IteratorResult<MessageWithBody>>;
  private ended = false;

  /** `start`: StoreReader.startReads, which reads the mailbox synchronously (IndexDb.readNow: not in an index reopen). */
  constructor(private readonly start: () => ReadSession | Promise<ReadSession>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<MessageWithBody>> {
    if (this.pulling) return this.pulling.then(() => this.next(), () => this.next());
    if (this.ended) return Promise.resolve(DONE);
    this.letGo();
    const group = this.group;
    if (group !== undefined && this.index < group.length) {
      const item = group[this.index];
      const body = item.body;
      if (item.ready === undefined && item.error === undefined && body !== undefined) {
        this.index++;
        return Promise.resolve(this.handOut(item, body));
      }
    }
    const pulled = this.pull();
    this.pulling = pulled;
    pulled.then(() => { this.pulling = undefined; }, () => { this.pulling = undefined; });
    return pulled;
  }

  async return(): Promise<IteratorResult<MessageWithBody>> {
    if (this.pulling) await this.pulling.catch(() => undefined);
    await this.end();
    return DONE;
  }

  async throw(error: unknown): Promise<IteratorResult<MessageWithBody>> {
    if (this.pulling) await this.pulling.catch(() => undefined);
    await this.end();
    throw error;
  }

  /** The generator's loop from where it stopped to the next message to yield, or to its end. */
  private async pull(): Promise<IteratorResult<MessageWithBody>> {
    try {
      if (!this.session) {
        this.session = await this.start();
        this.after = this.session.following();
      }
      const session = this.session;
      for (;;) {
        if (this.group === undefined) {
          const next = await this.after!;
          if (next.failure) throw next.failure.error;
          if (!next.group) {
            await this.end();
            return DONE;
          }
          this.group = next.group;
          this.index = 0;
          this.after = session.following(); // not awaited: this group goes out meanwhile
        }
        const group = this.group;
        while (this.index < group.length) {
          const item = group[this.index++];
          if (item.ready) await item.ready;
          if (item.error === undefined) {
            const body = item.body;
            if (body === undefined) {
              await session.reading[0]; // a bug that stopped the group: its own error first
              throw new AssertionFailure(`readMessages: uid ${item.info.uid} settled with neither body nor error`);
            }
            return this.handOut(item, body);
          }
          // expunged by another client since this read began, and compaction took its blob: it
          // is left out, as from a read begun a moment later (no damage, nothing to report)
          const gone = isMailstoreError(item.error, 'CORRUPT') && await session.goneMeanwhile(item);
          if (!gone && (!session.onCorrupt || !isMailstoreError(item.error, 'CORRUPT'))) throw item.error;
          if (!gone) session.onCorrupt!(item.info, item.error as MailstoreError);
          this.handedOut = item;
          this.letGo();
        }
        await session.reading.shift();
        this.group = undefined;
      }
    } catch (error) {
      await this.end();
      throw error;
    }
  }

  private handOut(item: PendingRead, body: Buffer): IteratorYieldResult<MessageWithBody> {
    item.body = undefined; // the consumer may let go of it before the group ends
    this.handedOut = item;
    return { done: false, value: { info: item.info, body } };
  }

  /** The consumer is back for the next message: a lent body's bytes are free to reuse. */
  private letGo(): void {
    const item = this.handedOut;
    if (item === undefined) return;
    this.handedOut = undefined;
    if (item.lease && --item.lease.left === 0) this.session!.lent!.give(item.lease.buffer);
  }

  /** As the generator's finally: every read started settled, the index iterator closed; once. */
  private async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.group = undefined;
    await this.session?.close();
  }
}

/**
 * The group buffers of one readMessages with lendBodies: a group is read into the smallest free
 * one big enough (limits.readLentBytes, or whole readTurnBytes for a bigger group: one big record,
 * or runs with gaps), given back once the consumer moved past every message of the group. At most
 * limits.readLentBytesKept of them wait free; the rest are the collector's. In use at once: the
 * group going out and the one read meanwhile, two or three buffers.
 *
 * A buffer a run (until session 27) made ~12 buffers of 1-5 MiB in use at once on the bench's 20k pass,
 * and the smaller ones free kept the bigger ones from being kept: 20-190 MiB of new buffers a
 * pass, fresh memory from the kernel each (a page fault every 4 KiB, ~2.6 µs each here, in the
 * reading thread's preads). Shared memory (SharedArrayBuffer): a hash worker reads a group's
 * batch where it lies, nothing is transferred, and nothing in this thread is ever detached.
 */
class LentBuffers {
  private readonly free: SharedArrayBuffer[] = [];
  private bytesFree = 0;

  take(bytes: number): SharedArrayBuffer {
    let i = -1; // the smallest that fits: a small group does not take the one a big record needs
    for (let j = 0; j < this.free.length; j++) {
      if (this.free[j].byteLength >= bytes && (i < 0 || this.free[j].byteLength < this.free[i].byteLength)) i = j;
    }
    // whole readTurnBytes beyond the usual size: a buffer made for one big record fits the next
    // ones of about its size. Untouched pages of one cost nothing (the kernel maps them when written).
    if (i < 0) return new SharedArrayBuffer(bytes <= limits.readLentBytes ? limits.readLentBytes : Math.ceil(bytes / limits.readTurnBytes) * limits.readTurnBytes);
    const [buffer] = this.free.splice(i, 1);
    this.bytesFree -= buffer.byteLength;
    return buffer;
  }

  give(buffer: SharedArrayBuffer): void {
    if (this.bytesFree + buffer.byteLength > limits.readLentBytesKept) return;
    this.free.push(buffer);
    this.bytesFree += buffer.byteLength;
  }
}

/**
 * What a run takes of its group's lent buffer: its bytes in its pack, from its first record's
 * header to its last record's end; none for bodies inside their journal records (INLINE_PACK),
 * each read into a buffer of its own.
 */
function spanBytes(run: PendingRead[]): number {
  const first = run[0].location!;
  return first.pack === INLINE_PACK ? 0 : runEnd(run as RunItem[]) - first.offset;
}

/** A run's body bytes. */
function runBytesOf(run: readonly PendingRead[]): number {
  let bytes = 0;
  for (let i = 0; i < run.length; i++) bytes += run[i].location!.length;
  return bytes;
}

/** Splits a batch, in order, into runs of at most `bytesMax` body bytes (a bigger message alone). */
function byteGroups(batch: PendingRead[], bytesMax: number): PendingRead[][] {
  const groups: PendingRead[][] = [];
  let group: PendingRead[] = [];
  let bytes = 0;
  for (let i = 0; i < batch.length; i++) {
    const item = batch[i];
    const length = item.location?.length ?? 0;
    if (group.length > 0 && bytes + length > bytesMax) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += length;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
