// The journal: the commit point, the intent log and the change log. A batch of records is appended
// with one write and one fdatasync (group commit step 3); nothing is acknowledged before that.
import { basename, dirname, join } from 'node:path';
import { MailstoreError, assert, fromSystemError, isOutOfDescriptors } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, encodeRecordHeader, encodeSegmentHeader, fillerToWrite, parseSegmentFileName, segmentFileName } from './journal-format.js';
import { parseSegment, readSegmentBytes, recordAt, segmentHeader } from './segment-reader.js';
import { RecordOffsets, placeRecord } from './record-offsets.js';
import { TailList, TailRecords, scanTail } from './tail-scan.js';
import { limits } from '../limits.js';
import { createFileDurable } from '../fs/durable.js';
import { monotonicMs } from '../monotonic.js';

export interface JournalOptions {
  segmentBytesMax: number;
  recordBytesMax: number;
  checkMounted: (path: string) => Promise<void>;
  /** Filler bytes written ahead of the last record (the store passes limits.journalPreallocateBytes); default 0. */
  preallocateBytes?: number;
}

export interface JournalDamage {
  segment: string;
  offset: number;
  length: number;
  /** 'tail': invalid bytes after the last valid record of the newest segment; 'middle': valid records follow. */
  where: 'tail' | 'middle' | 'header';
}

export interface JournalRecord {
  seq: number;
  payload: Buffer;
}

interface Segment {
  firstSeq: number;
  name: string;
}

/**
 * A remembered record's share of journalRecentBytesMax: its payload and the objects around it
 * (the record, its Buffer), so the bound is memory, not payload (records are ~300 bytes).
 */
/** What `sync` returns when there was nothing to wait for (one settled promise, shared). */
const DONE: Promise<void> = Promise.resolve();

function recentRecordBytes(record: JournalRecord): number {
  return record.payload.length + 160;
}

export class Journal {
  private segments: Segment[] = [];
  private writeHandle?: FileHandle;
  private tailSegment?: Segment;
  private tailOffset = 0;
  /**
   * Size of the newest segment's file: records are written into filler preallocated past the last
   * record (options.preallocateBytes), so most commits' fdatasync has no size change to
   * commit (BENCHMARKS.md, sync-one-zeroed).
   */
  private allocatedEnd = 0;
  /**
   * Segments whose retirement failed (name -> bytes): the unlink or move may have happened and only
   * the directory sync after it failed, so a retry that finds such a file gone syncs and goes on.
   */
  private retireFailed = new Map<string, number>();
  /** Seq of the newest valid record on disk (0 when empty). */
  lastSeq = 0;
  /** Bytes of records this process made durable (automatic snapshots count journal growth with it). */
  appendedBytes = 0;
  /** The end of the newest segment was damaged or torn: new records go to a fresh segment. */
  private startNewSegment = false;
  /** Records written by `write` and not yet synced. */
  private pending?: {
    start: number; end: number; lastSeq: number; path: string; fresh: boolean; records: JournalRecord[];
    segment: Segment; placed: { seq: number; offset: number }[];
    /** Written with writevDurable: already flushed when `write` returned. */
    durable: boolean;
    /** `flush` made them durable; they are the journal's only once `sync` says so (`abort` still takes them back). */
    flushed?: boolean;
  };
  /** Where records start in the segments read or written lately (inline bodies are read by seq). */
  private readonly offsets = new RecordOffsets(limits.journalOffsetEntriesMax);
  /** Segments whose offset table is being built (indexSegment), by name: concurrent reads share the scan. */
  private readonly indexing = new Map<string, Promise<void>>();
  /**
   * Segments scanned whole by this process to find records by seq (an inline body's read): open
   * scans only the newest (findTail), so after a clean stop a start indexes nothing more.
   */
  segmentsIndexed = 0;
  /** Open read handles of segments inline bodies were read from lately (at most limits.journalReadHandlesMax). */
  private readonly readHandles = new Map<string, SharedHandle>();
  /**
   * The newest synced records, up to limits.journalRecentBytesMax: replication sends them to a
   * replica that keeps up without reading a segment back (a segment is read whole).
   */
  private recent: JournalRecord[] = [];
  private recentBytes = 0;
  /**
   * Until when records are remembered for recentAfter (its last call + journalRecentIdleMs), on the
   * monotonic clock: a wall clock stepped forward dropped them under a replica that was reading.
   */
  private recentWantedUntil = -Infinity;
  private tailRecords?: TailList;
  /** The lastSeq at which findTail checked the newest segment whole: a valid header, no damaged byte (else undefined). */
  private cleanTailSeq?: number;
  /** A write failed and could not be undone: refuse all writes until the store is reopened. */
  private poisoned?: MailstoreError;
  /** Bytes filler must leave free on the disk (the store's free-space reserve, src/store/free-space.ts). */
  keepFreeBytes: () => number = () => 0;
  /**
   * The store's cached free-bytes figure (FreeSpace.freeBytesNow), undefined when it has none: the
   * preallocation then statfs's itself, a thread-pool round trip on the path of the delivery that
   * extends the segment (0.1-0.2 ms on a quiet machine, 6-50 ms measured with both cores busy).
   */
  freeBytesNow: () => number | undefined = () => undefined;
  /**
   * The tail segment was created by this process and its first write has not completed: its
   * header goes out in the same write as its first records (so a torn creation never leaves valid
   * records behind an invalid header), and its directory entry still needs an fsync.
   */
  private freshSegment = false;
  /** The segment `path` last joined a path for, and that path. */
  private pathOf?: Segment;
  private pathOfSegment = '';

  private constructor(private readonly fs: FileSystem, readonly dir: string, private readonly storeId: Buffer, private readonly options: JournalOptions) {}

  static async open(fs: FileSystem, dir: string, storeId: Buffer, options: JournalOptions): Promise<Journal> {
    const journal = new Journal(fs, dir, storeId, options);
    const names = await fs.readdir(dir);
    for (const name of names) {
      const firstSeq = parseSegmentFileName(name);
      if (firstSeq !== undefined) journal.segments.push({ firstSeq, name });
    }
    journal.segments.sort((a, b) => a.firstSeq - b.firstSeq);
    return journal;
  }

  path(segment: Segment | string): string {
    if (typeof segment === 'string') return join(this.dir, segment);
    // asked at every commit: joined once a segment
    if (segment !== this.pathOf) {
      this.pathOf = segment;
      this.pathOfSegment = join(this.dir, segment.name);
    }
    return this.pathOfSegment;
  }

  /** Segments are rotated at this size (a journal written from the index follows it too). */
  get segmentBytesMax(): number {
    return this.options.segmentBytesMax;
  }

  /** The seq of the oldest record still in the journal (1 when nothing was ever retired). */
  get firstSeq(): number {
    return this.segments[0]?.firstSeq ?? this.lastSeq + 1;
  }

  /** The first seq of the newest segment (records below it are in segments no longer written). */
  get tailFirstSeq(): number {
    return this.segments[this.segments.length - 1]?.firstSeq ?? this.lastSeq + 1;
  }

  get segmentNames(): string[] {
    return this.segments.map((s) => s.name);
  }

  /**
   * Reads every valid record with seq > afterSeq in order, reporting damage as it goes. Segments
   * that end before afterSeq are skipped without reading them. `skipRead`: so are the bytes before
   * record afterSeq + 1 where the offset table has it (and it is there), unchecked (an incremental backup).
   */
  async *read(afterSeq: number, onDamage: (damage: JournalDamage) => void, options: { views?: boolean; skipRead?: boolean } = {}): AsyncGenerator<JournalRecord> {
    // One segment in memory at a time, and payloads handed out as copies: a consumer that keeps a
    // record (or a view into one, as decoded ids are) must not keep a whole segment alive. With
    // `views`, payloads are views into the buffer the next segment is read into, valid only until
    // the reader asks for the next record: for readers that keep nothing (the background
    // compactor looks at each record's op kinds), a copy of every record was a malloc each. Each
    // segment is read into the buffer the one before it was read into (nothing else refers to it
    // once its records are handed out): a replay of many segments held two or three of them, the
    // ones left to the garbage collector (1M messages, whole-journal rebuild).
    let bytes: Buffer | undefined;
    let buffer: Buffer | undefined;
    // The list as it is now: retirement replaces it (never edits it) while a reader goes on.
    const segments = this.segments;
    let skip = options.skipRead === true;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i];
      const next = segments[i + 1];
      if (next && next.firstSeq <= afterSeq + 1) continue;
      const from = skip && afterSeq + 1 > segment.firstSeq ? this.offsets.find(segment.name, afterSeq + 1) : undefined;
      skip = false; // the first segment read only
      bytes = await this.readSegment(segment, Infinity, buffer, from);
      if (bytes.buffer !== buffer?.buffer) buffer = Buffer.from(bytes.buffer); // a fresh allocation of its own: kept for the next
      let start: number | undefined;
      if (from !== undefined) {
        const first = recordAt(bytes, from, this.options.recordBytesMax);
        // not there (cut and written again by another process): the whole segment
        if (first?.kind === 'record' && first.seq === afterSeq + 1) start = from;
        else bytes = await this.readSegment(segment, Infinity, buffer);
      }
      const header = segmentHeader(bytes);
      if (!header || !header.storeId.equals(this.storeId)) {
        onDamage({ segment: segment.name, offset: 0, length: Math.min(bytes.length, SEGMENT_HEADER_BYTES), where: 'header' });
      }
      // a segment before the newest read whole gives its table of record offsets as locate would
      // build it (inline bodies are read by seq: scrub's check after its journal pass, reconstruct's
      // after its rebuild), instead of a second read and CRC of every segment
      const table = start === undefined && next && !this.offsets.has(segment.name) ? { offsets: [] as number[], generation: this.offsets.generation } : undefined;
      for (const item of parseSegment(bytes, this.options.recordBytesMax, start)) {
        if (item.kind === 'damage') {
          const last = !next && item.offset + item.length >= bytes.length;
          onDamage({ segment: segment.name, offset: item.offset, length: item.length, where: last ? 'tail' : 'middle' });
        } else {
          if (table) placeRecord(table.offsets, segment.firstSeq, item.seq, item.offset);
          if (item.seq > afterSeq) yield { seq: item.seq, payload: options.views ? item.payload : Buffer.from(item.payload) };
        }
      }
      // read to its end, and still the journal it was read from (no cut, reload or retirement since)
      if (table && table.generation === this.offsets.generation && this.segments.includes(segment) && !this.offsets.has(segment.name)) {
        this.offsets.set(segment.name, { firstSeq: segment.firstSeq, offsets: Int32Array.from(table.offsets) });
      }
    }
    bytes = undefined;
  }

  /** The first valid record of the oldest segment (whether the journal starts at seq 1 or at a checkpoint). */
  async firstRecord(): Promise<JournalRecord | undefined> {
    for (const segment of this.segments) {
      // Open calls this after every journal rewrite: the first record (a checkpoint's begin) is
      // small, so a prefix of the segment is read first, the whole one only when it is not enough.
      const head = parseSegment(await this.readSegment(segment, limits.journalFirstRecordReadBytes), this.options.recordBytesMax).next();
      if (!head.done && head.value.kind === 'record') return { seq: head.value.seq, payload: Buffer.from(head.value.payload) };
      for (const item of parseSegment(await this.readSegment(segment), this.options.recordBytesMax)) {
        if (item.kind === 'record') return { seq: item.seq, payload: Buffer.from(item.payload) };
      }
    }
    return undefined;
  }

  /**
   * Forgets everything known about the directory and reads it again: after reconstruct swapped
   * a rewritten journal in (only while nothing is being written).
   */
  async reload(): Promise<void> {
    assert(!this.pending, 'journal reload while a write is pending');
    this.forgetRecent();
    this.offsets.clear();
    this.closeReadHandles();
    await this.writeHandle?.close().catch(() => undefined);
    this.writeHandle = undefined;
    this.segments = [];
    this.startNewSegment = false;
    this.freshSegment = false;
    for (const name of await this.fs.readdir(this.dir)) {
      const firstSeq = parseSegmentFileName(name);
      if (firstSeq !== undefined) this.segments.push({ firstSeq, name });
    }
    this.segments.sort((a, b) => a.firstSeq - b.firstSeq);
    await this.findTail();
    this.tailRecords = undefined;
  }

  private async readSegment(segment: Segment, prefixBytes = Infinity, into?: Buffer, from?: number): Promise<Buffer> {
    return this.withSegmentFile(segment, async (handle) => {
      if (prefixBytes !== Infinity) {
        const buf = Buffer.alloc(Math.min(prefixBytes, await handle.size()));
        return buf.subarray(0, await handle.read(buf, 0, buf.length, 0));
      }
      return readSegmentBytes(handle, into, from);
    });
  }

  /** Runs `read` with the segment opened for reading (a retired or vanished one: NOT_FOUND or UNMOUNTED); errors leave as MailstoreErrors. */
  private async withSegmentFile<T>(segment: Segment, read: (handle: FileHandle) => Promise<T>): Promise<T> {
    const path = this.path(segment);
    let handle: FileHandle;
    try {
      handle = await this.openForRead(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') await this.options.checkMounted(path); // a vanished partition: UNMOUNTED
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !this.segments.includes(segment)) {
        throw new MailstoreError('NOT_FOUND', `journal segment ${segment.name} was retired while it was being read (the journal now starts at ${this.firstSeq}); start again from a snapshot`, { path });
      }
      throw fromSystemError(error, 'opening journal segment', path);
    }
    try {
      return await read(handle);
    } catch (error) {
      throw fromSystemError(error, 'reading journal segment', path);
    } finally {
      await handle.close();
    }
  }

  /**
   * Whether reading the journal after `seq` would find no record and no damage: findTail read the
   * newest segment whole (its header valid, no damaged byte) and nothing was written or cut since,
   * and `seq` is its last record. Open then skips the replay's second read of that segment (up to
   * journalSegmentBytesMax; issue 16, a CLI command's start).
   */
  nothingAfter(seq: number): boolean {
    return this.cleanTailSeq !== undefined && this.cleanTailSeq === this.lastSeq && seq === this.lastSeq;
  }

  /**
   * Finds where the next record goes. Returns the damaged or torn bytes at the end of the newest
   * segment (if any); the store decides with its high-water mark whether to cut them.
   */
  async findTail(): Promise<{
    lastSeq: number;
    tail?: { segment: string; offset: number; length: number; bytes: Buffer };
    /** The newest segment has no valid header and no valid record: its creation was torn, or it is damaged. */
    empty?: { segment: string; firstSeq: number; length: number };
  }> {
    this.tailSegment = undefined;
    this.tailOffset = 0;
    this.lastSeq = 0;
    this.cleanTailSeq = undefined;
    this.tailRecords = undefined;
    const segment = this.segments[this.segments.length - 1];
    if (!segment) return { lastSeq: 0 };
    const scan = await this.withSegmentFile(segment, (handle) => scanTail(handle, segment.firstSeq, this.options.recordBytesMax, limits.journalTailWindowBytes));
    this.tailRecords = scan.tail;
    // what locate() would read the segment again for (read's skipRead); writes extend it, a cut clears it
    this.offsets.set(segment.name, { firstSeq: segment.firstSeq, offsets: scan.offsets });
    this.tailSegment = segment;
    this.tailOffset = scan.end;
    this.allocatedEnd = scan.size;
    this.lastSeq = scan.lastSeq;
    if (scan.headerValid && !scan.damaged) this.cleanTailSeq = scan.lastSeq;
    if (!scan.headerValid) this.startNewSegment = true;
    if (!scan.headerValid && scan.records === 0) {
      return { lastSeq: scan.lastSeq, empty: { segment: segment.name, firstSeq: segment.firstSeq, length: scan.size } };
    }
    // filler after the last record is preallocated space; zeros or anything else there is a torn
    // write or damage (resolveTail tells which by the high-water mark), as before preallocation
    if (scan.torn) return { lastSeq: scan.lastSeq, tail: { segment: segment.name, ...scan.torn } };
    return { lastSeq: scan.lastSeq };
  }

  /**
   * A read-only open's counterpart of retireNewestSegment: the empty newest segment findTail found
   * (its file made, nothing written in it: see createSegment) is left where it is and read as if it
   * were not there; it holds no record. Call findTail again afterwards.
   */
  passOverEmptyNewestSegment(): void {
    const segment = this.segments[this.segments.length - 1];
    assert(segment && this.tailSegment === segment, 'passOverEmptyNewestSegment only after findTail');
    this.segments.pop();
    this.closeReadHandles([segment.name]);
    this.tailSegment = undefined;
    this.cleanTailSeq = undefined;
    this.startNewSegment = false;
  }

  /**
   * Moves the newest segment to `target` (in quarantine/; never deleted) when findTail found it
   * empty and the store knows nothing in it was acknowledged. Call findTail again afterwards.
   */
  async retireNewestSegment(target: string): Promise<void> {
    const segment = this.segments[this.segments.length - 1];
    assert(segment && this.tailSegment === segment, 'retireNewestSegment only after findTail');
    await this.fs.rename(this.path(segment), target).catch((e) => { throw fromSystemError(e, 'moving an empty journal segment to quarantine', this.path(segment)); });
    await this.fs.syncDir(this.dir);
    await this.fs.syncDir(dirname(target));
    this.segments.pop();
    this.closeReadHandles([segment.name]);
    this.tailSegment = undefined;
    this.cleanTailSeq = undefined;
    this.startNewSegment = false;
  }

  /**
   * The valid records of the newest segment after its last damaged range, as findTail found them
   * (recovery looks for the newest batch among them; their payloads are read again when asked
   * for, before anything cuts the segment). Released by cutAt or when taken.
   */
  takeTailRecords(): TailRecords {
    const records = this.tailRecords ?? new TailList();
    this.tailRecords = undefined;
    const segment = this.tailSegment;
    const read = async (start: number, length: number) => {
      assert(segment, 'tail records read without a tail segment');
      const bytes = Buffer.allocUnsafe(length);
      return bytes.subarray(0, await this.withSegmentFile(segment, (handle) => handle.read(bytes, 0, length, start)));
    };
    return new TailRecords(records, segment ? this.path(segment) : this.dir, read, this.options.recordBytesMax, limits.journalTailWindowBytes);
  }

  /**
   * Cuts the newest segment at `offset` (a record boundary found by findTail): a torn tail or an
   * incomplete, never-acknowledged batch. The caller copied the bytes to quarantine first.
   */
  async cutAt(offset: number, lastSeqBefore: number): Promise<void> {
    assert(this.tailSegment && offset >= SEGMENT_HEADER_BYTES, 'cutAt only inside the segment found by findTail');
    const path = this.path(this.tailSegment);
    const handle = await this.fs.open(path, 'readWrite');
    try {
      await handle.truncate(offset);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.tailOffset = offset;
    this.allocatedEnd = offset;
    this.lastSeq = lastSeqBefore;
    this.cleanTailSeq = undefined;
    this.forgetRecent();
    this.offsets.clear();
  }

  /** The path of the newest segment (for quarantine copies). */
  get tailPath(): string | undefined {
    return this.tailSegment && this.path(this.tailSegment);
  }

  /** Set once a failed write could not be taken back: every later write fails with it (CLOSED) until a reopen. */
  get refusal(): MailstoreError | undefined {
    return this.poisoned;
  }

  /** Leaves the damaged tail in place and puts new records in a fresh segment. */
  keepTailAndStartNewSegment(nextSeq: number): void {
    this.startNewSegment = true;
    this.lastSeq = Math.max(this.lastSeq, nextSeq - 1);
  }

  /**
   * Writes records (consecutive seqs, one batch: never split across segments) without making
   * them durable; `sync` does that, `abort` takes them back. The group-commit writer runs this
   * journal's sync and the packs' sync at the same time.
   *
   * `durable`: the write and its fdatasync are one call (FileHandle.writevDurable: in the calling
   * thread when small), for a batch with nothing else to sync (one delivery with an inline body).
   * `sync` must still be called: it does the bookkeeping (and nothing more for such a batch).
   * A fresh segment takes the two-step path (its directory entry needs an fsync as well).
   * `written` is called once the bytes are written, before any flush (a synchronous replica's
   * round goes out there), and not at all when the write fails.
   */
  async write(records: JournalRecord[], options: { durable?: boolean; written?: () => void } = {}): Promise<void> {
    if (this.poisoned) throw this.poisoned;
    assert(!this.pending, 'journal write while another is not yet synced');
    if (records.length === 0) return;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      assert(r.seq === this.lastSeq + 1 + i, `journal seq ${r.seq} after ${this.lastSeq + i}`);
      assert(r.payload.length > 0 && r.payload.length <= this.options.recordBytesMax, `journal record ${r.seq} of ${r.payload.length} bytes`);
    }
    // header and payload of each record side by side, written with one vectored write: an import
    // batch's records carry its inline bodies, and two concatenations of them per batch were
    // garbage that V8 collects only every ~64 MiB (the tier step's RSS, docs/OBJECT-STORAGE.md)
    const data: Buffer[] = [];
    const placed: { seq: number; offset: number }[] = [];
    let dataBytes = 0;
    for (const r of records) {
      placed.push({ seq: r.seq, offset: dataBytes });
      data.push(encodeRecordHeader(r.seq, r.payload), r.payload);
      dataBytes += RECORD_HEADER_BYTES + r.payload.length;
    }
    if (!this.tailSegment || this.startNewSegment || this.tailOffset + dataBytes > this.options.segmentBytesMax && this.tailOffset > SEGMENT_HEADER_BYTES) {
      await this.createSegment(records[0].seq);
    }
    const segment = this.tailSegment!;
    const start = this.tailOffset;
    const path = this.path(segment);
    const fresh = this.freshSegment;
    for (const p of placed) p.offset += start;
    const durable = options.durable === true && !fresh;
    this.pending = { start: fresh ? 0 : start, end: start + dataBytes, lastSeq: records[records.length - 1].seq, path, fresh, records, segment, placed, durable };
    const parts = fresh ? [encodeSegmentHeader(this.storeId, segment.firstSeq), ...data] : data;
    let filler = this.preallocation(start + dataBytes);
    if (filler > 0) filler = await this.fillerRoom(filler); // once a preallocation: most commits need no await here
    let told = false;
    const written = () => {
      told = true;
      options.written?.();
    };
    try {
      await this.writeParts(path, parts, start, durable, filler, written);
    } catch (error) {
      let failure = fromSystemError(error, 'writing journal', path);
      // The filler only takes space ahead of need: a disk too full for it may still hold the
      // records (else, once full, every commit would want a whole preallocateBytes free again)
      if (filler > 0 && failure.code === 'NO_SPACE' && !told) {
        await this.undo(this.pending!.start, failure);
        if (!this.poisoned) {
          try {
            await this.writeParts(path, parts, start, durable, 0, written);
            return;
          } catch (again) {
            failure = fromSystemError(again, 'writing journal', path);
          }
        }
      }
      await this.abort(failure);
      throw failure;
    }
  }

  /** `write`'s records (`parts`) at `start`, and `filler` bytes of preallocation after them. */
  private writeParts(path: string, parts: Buffer[], start: number, durable: boolean, filler: number, written: () => void): Promise<void> {
    if (!this.writeHandle) {
      return this.fs.open(path, 'readWrite').then((handle) => {
        this.writeHandle = handle;
        return this.writeParts(path, parts, start, durable, filler, written);
      });
    }
    const fresh = this.pending!.fresh;
    const end = this.pending!.end;
    const all = filler > 0 ? [...parts, fillerToWrite(end, filler)] : parts;
    // counted before the write is done (no frame kept to count it after): a write that fails is
    // undone by `write`'s caller path (undo truncates back to its start and sets it there)
    this.allocatedEnd = Math.max(this.allocatedEnd, end + filler);
    if (durable) return this.writeHandle.writevDurable(all, start, written);
    return this.writeHandle.writev(all, fresh ? 0 : start).then(written);
  }

  /**
   * Filler bytes to write after records ending at `end`: none while the file already reaches past
   * them; else as many as the segment holds (limits.journalPreallocateMinBytes at least), up to
   * options.preallocateBytes, within the segment's size (the readers take
   * filler after the last record for unused space, journal-format.ts FILLER_PATTERN).
   */
  private preallocation(end: number): number {
    const most = this.options.preallocateBytes ?? 0;
    if (end <= this.allocatedEnd || most <= 0) return 0;
    // grows with the segment (the segment's size so far, limits.journalPreallocateMinBytes at least):
    // du counts filler, and a segment of a few records kept a whole 1 MiB of it for good
    const ahead = Math.min(most, Math.max(limits.journalPreallocateMinBytes, end));
    return Math.max(0, Math.min(end + ahead, this.options.segmentBytesMax) - end);
  }

  /**
   * Filler takes at most half of the space left on the disk: written into the last of it, it
   * would leave none to the index write running beside it (the previous batch's), which then
   * fails and stops the store (CLOSED) while there was room for the mail. Nor does it take from the
   * store's free-space reserve (keepFreeBytes): records later fill filler without statfs seeing it,
   * so filler in the reserve would be mail in the reserve. The free space is the store's cached
   * figure where it keeps one (the commit path does no statfs: at most limits.freeSpaceRefreshMs
   * old, lowered by every change admitted since, as deliveries are admitted by it), else a statfs.
   */
  private async fillerRoom(filler: number): Promise<number> {
    let free = this.freeBytesNow();
    if (free === undefined) {
      if (!this.fs.spaceBytes) return filler;
      free = (await this.fs.spaceBytes(this.dir).catch(() => undefined))?.freeBytes;
    }
    return free === undefined ? filler : Math.min(filler, Math.max(0, Math.floor((free - this.keepFreeBytes()) / 2)));
  }

  /**
   * Makes the written records durable without making them the journal's yet: the writer flushes
   * the journal beside the pack, and only when both succeeded calls `sync` (the commit point, now
   * bookkeeping only). When the pack's fdatasync failed, `abort` takes the flushed records back
   * (truncated and synced): they refer to bodies that are not durable, and their caller was told
   * the batch failed, so no later replay may find them.
   */
  async flush(): Promise<void> {
    const pending = this.pending;
    if (!pending || pending.flushed) return;
    try {
      if (!pending.durable) await this.writeHandle!.sync();
      if (pending.fresh) await this.fs.syncDir(this.dir);
    } catch (error) {
      const failure = fromSystemError(error, 'writing journal', pending.path);
      await this.abort(failure);
      throw failure;
    }
    pending.flushed = true;
  }

  /**
   * Makes the written records durable (`flush`, unless it ran): the commit point. Records already
   * flushed (writevDurable, or `flush`) take bookkeeping only: done at once, nothing to wait for.
   */
  sync(): Promise<void> {
    const pending = this.pending;
    if (!pending || pending.durable || pending.flushed) {
      try {
        if (pending) this.synced(pending);
      } catch (error) {
        return Promise.reject(error); // a promise either way, as when this was async
      }
      return DONE;
    }
    return this.flush().then(() => {
      if (this.pending) this.synced(this.pending);
    });
  }

  private synced(pending: NonNullable<Journal['pending']>): void {
    this.pending = undefined;
    this.freshSegment = false;
    this.appendedBytes += pending.end - pending.start;
    this.tailOffset = pending.end;
    this.lastSeq = pending.lastSeq;
    this.remember(pending.records);
    this.offsets.extend(pending.segment.name, pending.segment.firstSeq, pending.placed, pending.fresh);
  }

  /**
   * The payload of the durable record `seq` (an inline body's record, docs/FORMAT.md "Inline
   * bodies"), its checksums verified; undefined when no segment holds a valid record of that seq.
   * Reads one record with one pread once the segment's offset table is known (RecordOffsets).
   */
  async readRecordAt(seq: number): Promise<Buffer | undefined> {
    const at = await this.locate(seq);
    return at ? this.readOneRecord(at.segment, at.offset, seq) : undefined;
  }

  /**
   * The payloads of the durable records `seqs` (ascending), as readRecordAt gives them, but read
   * with one pread per run of records that lie at most `gapBytes` apart in one segment, all into
   * one buffer: `into` when it is big enough (a caller reading many groups reuses its buffers),
   * else a new one. The payloads are views into `buffer`. A seq missing from `payloads` was not
   * found or not valid there: its caller reads it alone (readRecordAt) for the reason. Moving inline
   * bodies into packs reads tens of thousands of records so; one allocation a record there left
   * ~60-90 MB of garbage buffers behind in a daemon (BENCHMARKS.md, session 23).
   */
  async readRecordsAt(seqs: number[], gapBytes: number, into?: Buffer): Promise<{ payloads: Map<number, Buffer>; buffer: Buffer }> {
    const runs: { segment: Segment; start: number; end: number; items: { seq: number; offset: number }[] }[] = [];
    for (const seq of seqs) {
      const at = await this.locate(seq);
      if (!at) continue;
      const last = runs[runs.length - 1];
      const lastItem = last?.items[last.items.length - 1];
      if (last && last.segment === at.segment && lastItem!.seq < seq && at.offset > lastItem!.offset && at.offset - lastItem!.offset <= gapBytes) last.items.push({ seq, offset: at.offset });
      else runs.push({ segment: at.segment, start: at.offset, end: 0, items: [{ seq, offset: at.offset }] });
    }
    const payloads = new Map<number, Buffer>();
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    for (const run of runs) {
      const last = run.items[run.items.length - 1]!;
      // where the last record ends: the next record's offset when known, else its own header says
      const next = this.offsets.find(run.segment.name, last.seq + 1);
      if (next !== undefined && next > last.offset) run.end = next;
      else run.end = await this.withReadHandle(run.segment, async (handle) => {
        if (await handle.read(header, 0, header.length, last.offset) < header.length) return last.offset;
        const length = header.readUInt32BE(4);
        return length > this.options.recordBytesMax ? last.offset : last.offset + RECORD_HEADER_BYTES + length;
      }) ?? last.offset;
    }
    const total = runs.reduce((sum, run) => sum + Math.max(0, run.end - run.start), 0);
    // a new buffer has room to spare, so that a caller's next group of about the same size fits it
    // (else every group of a few MiB allocated its own, and glibc served the later ones from its heap)
    const buffer = into && into.length >= total ? into : Buffer.allocUnsafeSlow(Math.ceil((total * 1.25) / 65536) * 65536);
    let at = 0;
    for (const run of runs) {
      const length = Math.max(0, run.end - run.start);
      const view = buffer.subarray(at, at + length);
      at += length;
      const n = await this.withReadHandle(run.segment, (handle) => handle.read(view, 0, length, run.start));
      if (n === undefined) continue; // retired meanwhile
      const bytes = view.subarray(0, n);
      for (const { seq, offset } of run.items) {
        const item = recordAt(bytes, offset - run.start, this.options.recordBytesMax);
        if (item && item.kind === 'record' && item.seq === seq) payloads.set(seq, item.payload);
      }
    }
    return { payloads, buffer };
  }

  /** The segment and offset of durable record `seq` (the segment's offset table built by one whole read when unknown). */
  private async locate(seq: number): Promise<{ segment: Segment; offset: number } | undefined> {
    const segments = this.segments;
    let lo = 0, hi = segments.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid].firstSeq <= seq) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const segment = segments[found];
    let offset = this.offsets.find(segment.name, seq);
    if (offset === undefined) {
      await this.indexSegment(segment);
      offset = this.offsets.find(segment.name, seq);
      if (offset === undefined) return undefined;
    }
    return { segment, offset };
  }

  /**
   * Builds `segment`'s table of record offsets by scanning it (segmentsIndexed counts these).
   * Through the tail scan's window (journalTailWindowBytes a read), not read whole and parsed in
   * one go: a 16 MiB segment of small inline records was one turn of the event loop of ~0.2 s of
   * CPU (~1-2.5 s at load), which every client of a daemon waited out behind the first fetch of an
   * old message after a start. Fetches of one segment at once share the scan.
   */
  private indexSegment(segment: Segment): Promise<void> {
    let building = this.indexing.get(segment.name);
    if (!building) {
      const generation = this.offsets.generation;
      building = this.withReadHandle(segment, (handle) => scanTail(handle, segment.firstSeq, this.options.recordBytesMax, limits.journalTailWindowBytes)).then((scan) => {
        this.segmentsIndexed++;
        // still the journal it was read from (no cut, reload or retirement since), and not built meanwhile
        if (scan && generation === this.offsets.generation && this.segments.includes(segment) && !this.offsets.has(segment.name)) {
          this.offsets.set(segment.name, { firstSeq: segment.firstSeq, offsets: scan.offsets });
        }
      }).finally(() => this.indexing.delete(segment.name));
      this.indexing.set(segment.name, building);
    }
    return building;
  }

  /**
   * Runs `read` with the segment's shared read handle; undefined when the segment is gone (retired
   * meanwhile; a vanished partition is UNMOUNTED). Errors leave as MailstoreErrors.
   */
  private async withReadHandle<T>(segment: Segment, read: (handle: FileHandle) => Promise<T>): Promise<T | undefined> {
    const path = this.path(segment);
    const shared = this.readHandle(segment.name, path);
    let handle: FileHandle;
    try {
      handle = await shared.handle;
    } catch (error) {
      releaseHandle(shared);
      if (this.readHandles.get(segment.name) === shared) this.readHandles.delete(segment.name); // not kept: the next read tries again
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.options.checkMounted(path);
        return undefined;
      }
      throw fromSystemError(error, 'opening journal segment', path);
    }
    try {
      return await read(handle);
    } catch (error) {
      throw fromSystemError(error, 'reading journal segment', path);
    } finally {
      releaseHandle(shared);
    }
  }

  private async readOneRecord(segment: Segment, offset: number, seq: number): Promise<Buffer | undefined> {
    return this.withReadHandle(segment, async (handle) => {
      const header = Buffer.alloc(RECORD_HEADER_BYTES);
      if (await handle.read(header, 0, header.length, offset) < header.length) return undefined;
      const length = header.readUInt32BE(4);
      if (length > this.options.recordBytesMax) return undefined;
      const bytes = Buffer.alloc(RECORD_HEADER_BYTES + length);
      const n = await handle.read(bytes, 0, bytes.length, offset);
      const item = recordAt(bytes.subarray(0, n), 0, this.options.recordBytesMax);
      return item && item.kind === 'record' && item.seq === seq ? item.payload : undefined;
    });
  }

  /**
   * A read handle of a segment shared by concurrent reads (released by releaseHandle); beyond
   * limits.journalReadHandlesMax the least recently used is closed once its last reader is done.
   */
  private readHandle(name: string, path: string): SharedHandle {
    let shared = this.readHandles.get(name);
    if (shared) this.readHandles.delete(name);
    else {
      shared = { handle: this.openForRead(path), users: 0, closing: false };
      shared.handle.catch(() => undefined);
    }
    this.readHandles.set(name, shared);
    shared.users++;
    for (const [old, evicted] of this.readHandles) {
      if (this.readHandles.size <= limits.journalReadHandlesMax) break;
      this.readHandles.delete(old);
      retireHandle(evicted);
    }
    return shared;
  }

  /**
   * Opens a segment to read. Out of descriptors (EMFILE, ENFILE), the cached read handles no reader
   * is inside let theirs go and the open is tried once more, as packs do: an inline read failed IO
   * while idle handles held descriptors it could have had.
   */
  private async openForRead(path: string): Promise<FileHandle> {
    try {
      return await this.fs.open(path, 'read');
    } catch (error) {
      if (!isOutOfDescriptors(error) || !(await this.closeIdleReadHandles())) throw error;
      return this.fs.open(path, 'read');
    }
  }

  /** Closes the cached read handles no reader is inside; whether any was. */
  private async closeIdleReadHandles(): Promise<boolean> {
    const idle = [...this.readHandles].filter(([, shared]) => shared.users === 0);
    for (const [name] of idle) this.readHandles.delete(name);
    await Promise.all(idle.map(([, shared]) => shared.handle.then((h) => h.close()).catch(() => undefined)));
    return idle.length > 0;
  }

  /** Closes the read handles (all, or the named segments'), each once its readers are done. */
  private closeReadHandles(names?: string[]): void {
    for (const name of names ?? [...this.readHandles.keys()]) {
      const shared = this.readHandles.get(name);
      this.readHandles.delete(name);
      if (shared) retireHandle(shared);
    }
  }

  private remember(records: JournalRecord[]): void {
    if (monotonicMs() > this.recentWantedUntil) {
      if (this.recent.length > 0) this.forgetRecent(); // no replica reads them: keep none
      return;
    }
    if (this.recent.length > 0 && this.recent[this.recent.length - 1].seq + 1 !== records[0].seq) this.forgetRecent();
    for (const r of records) {
      this.recent.push(r);
      this.recentBytes += recentRecordBytes(r);
    }
    let drop = 0;
    while (this.recentBytes > limits.journalRecentBytesMax && drop < this.recent.length - 1) this.recentBytes -= recentRecordBytes(this.recent[drop++]);
    if (drop > 0) this.recent = this.recent.slice(drop);
  }

  private forgetRecent(): void {
    this.recent = [];
    this.recentBytes = 0;
  }

  /**
   * The synced records after `afterSeq` from memory, or undefined when they are not all there
   * (then read them with `read`). The caller must not change them.
   */
  recentAfter(afterSeq: number): JournalRecord[] | undefined {
    this.recentWantedUntil = monotonicMs() + limits.journalRecentIdleMs;
    const first = this.recent[0]?.seq;
    if (first === undefined || afterSeq + 1 < first) return afterSeq === this.lastSeq ? [] : undefined;
    return this.recent.slice(afterSeq + 1 - first);
  }

  /** Takes back written, not yet synced records (the batch failed elsewhere). */
  async abort(failure: MailstoreError): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    await this.undo(pending.start, failure);
  }

  private async createSegment(firstSeq: number): Promise<void> {
    const segment = { firstSeq, name: segmentFileName(firstSeq) };
    const path = this.path(segment);
    await this.options.checkMounted(path);
    await this.writeHandle?.close().catch(() => undefined);
    this.writeHandle = undefined;
    let handle: FileHandle;
    try {
      handle = await this.fs.open(path, 'createNew');
    } catch (error) {
      throw fromSystemError(error, 'creating journal segment', path);
    }
    // The header is written with the first records (append), so the segment is never half-born.
    this.writeHandle = handle;
    this.segments.push(segment);
    this.tailSegment = segment;
    this.tailOffset = SEGMENT_HEADER_BYTES;
    this.allocatedEnd = 0;
    this.startNewSegment = false;
    this.freshSegment = true;
  }

  /**
   * A failed append must leave nothing that a later replay would trust, or a retried batch could
   * reuse its seqs and UIDs. Truncate back and sync; if that fails too, refuse further writes.
   */
  private async undo(start: number, failure: MailstoreError): Promise<void> {
    if (!this.writeHandle) return; // the open failed: nothing was written
    try {
      await this.writeHandle!.truncate(start);
      await this.writeHandle!.sync();
      this.allocatedEnd = start;
    } catch {
      this.poisoned = new MailstoreError('CLOSED',
        `the journal could not be rolled back after: ${failure.message}; reopen the store (recovery resolves it)`,
        { path: failure.path, cause: failure });
    }
  }

  /**
   * Retires the segments whose every record has seq <= `bound`, oldest first and never the newest
   * one (it is being written): each is deleted, or moved into `archiveDir`. A segment leaves the
   * list before its file goes and the directory is synced after each, so a crash leaves a journal
   * that is contiguous from its first segment on (docs/FORMAT.md, "Journal retirement").
   */
  async retireThrough(bound: number, archiveDir?: string): Promise<{ segments: string[]; bytes: number }> {
    const retired: string[] = [];
    let bytes = 0;
    while (this.segments.length > 1 && this.segments[1].firstSeq - 1 <= bound) {
      const segment = this.segments[0];
      assert(segment !== this.tailSegment, 'retiring the segment being written');
      const path = this.path(segment);
      const stat = await this.fs.statIfExists(path).catch((e) => { throw fromSystemError(e, 'retiring a journal segment', path); });
      // gone without a failed retirement of ours before: never taken as retired (principle 3)
      if (!stat && !this.retireFailed.has(segment.name)) throw new MailstoreError('NOT_FOUND', `retiring a journal segment ${path}: it is missing; run 'mailstore scrub'`, { path });
      const size = stat?.size ?? this.retireFailed.get(segment.name)!;
      this.segments = this.segments.slice(1);
      try {
        if (!stat) await this.syncRetired(archiveDir); // removed by the failed attempt; only its sync is missing
        else if (archiveDir) await archiveSegment(this.fs, path, join(archiveDir, segment.name));
        else await this.fs.unlink(path);
        await this.fs.syncDir(this.dir);
      } catch (error) {
        this.segments = [segment, ...this.segments]; // still there (or its move is not yet durable)
        this.retireFailed.set(segment.name, size);
        throw fromSystemError(error, archiveDir ? 'moving a journal segment to the archive' : 'retiring a journal segment', path);
      }
      this.retireFailed.delete(segment.name);
      this.closeReadHandles([segment.name]);
      this.offsets.forget(segment.name); // its records are no longer read by seq
      retired.push(segment.name);
      bytes += size;
    }
    return { segments: retired, bytes };
  }

  /** A retirement whose file already went: the archive's directory too must hold the move durably. */
  private async syncRetired(archiveDir: string | undefined): Promise<void> {
    if (archiveDir) await this.fs.syncDir(archiveDir);
  }

  async close(): Promise<void> {
    this.closeReadHandles();
    await this.writeHandle?.close().catch(() => undefined);
    this.writeHandle = undefined;
  }
}

interface SharedHandle {
  handle: Promise<FileHandle>;
  users: number;
  /** Closed as soon as `users` drops to 0. */
  closing: boolean;
}

function retireHandle(shared: SharedHandle): void {
  shared.closing = true;
  if (shared.users === 0) void shared.handle.then((h) => h.close()).catch(() => undefined);
}

function releaseHandle(shared: SharedHandle): void {
  shared.users--;
  if (shared.closing && shared.users === 0) void shared.handle.then((h) => h.close()).catch(() => undefined);
}

/**
 * Moves a retired segment into the archive: a rename on the same file system, else a durable copy
 * (the archive may be another mount) made before the original is removed. Never over a file of
 * that name: segment names are seqs, so two stores sharing an archive (or a store restored beside
 * its old archive) have the same ones, and the archive is history someone chose to keep.
 */
async function archiveSegment(fs: FileSystem, from: string, to: string): Promise<void> {
  try {
    await fs.renameNoReplace(from, to);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return archivedBefore(fs, from, to);
    if (code !== 'EXDEV') throw error;
    try {
      await createFileDurable(fs, to, await fs.readFile(from));
    } catch (copyError) {
      if ((copyError as NodeJS.ErrnoException).code === 'EEXIST') return archivedBefore(fs, from, to);
      throw copyError;
    }
    await fs.unlink(from);
    return;
  }
  await fs.syncDir(dirname(to));
}

/**
 * The archive holds a file of the segment's name: the same bytes (a copy whose source a crash left)
 * count as archived and the source goes; other bytes are another segment, never overwritten (EXISTS).
 */
async function archivedBefore(fs: FileSystem, from: string, to: string): Promise<void> {
  // read through a link, the bytes could be the segment's own (a link back at it, planted by whoever
  // may write the archive): the segment would be unlinked and the archive hold a dangling link
  const held = await fs.lstat(to);
  const [ours, theirs] = held.isFile && !held.isSymbolicLink ? await Promise.all([fs.readFile(from), fs.readFile(to)]) : [undefined, undefined];
  if (!ours || !theirs || !ours.equals(theirs)) {
    throw new MailstoreError('EXISTS', `the journal archive ${dirname(to)} already holds ${basename(to)} with other bytes or as no regular file (another store's archive, or this store's before it was restored or rebuilt?): it was not overwritten and the segment stays in the journal; give this store an archive of its own ('mailstore snapshot --journal-archive DIR')`, { path: to });
  }
  await fs.unlink(from);
  await fs.syncDir(dirname(to));
}
