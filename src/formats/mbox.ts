// mbox in and out: the format every mail program can export, so it is how mail arrives in and
// leaves the store. Byte-exact both ways: what the writer was given is what the reader returns.
//
// The file is a sequence of [From_ line][quoted message bytes][one line terminator]. The reader
// streams it in chunks (never the whole file in memory) and strips exactly one terminator per
// message; the writer always appends exactly one. That pair is what makes a message without a
// final newline survive export -> import unchanged. A message whose Content-Length header ends it
// right before a From_ line (or the end of the file) is those bytes as they are (mboxcl2, as
// Dovecot and Solaris mailx write it: bodies unquoted, `From ` lines in them and all).
import { dirname } from 'node:path';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { importLimits, limits } from '../limits.js';

/**
 * How `>From ` lines are quoted. mboxrd quotes `^>*From ` (reversible); mboxo quotes only
 * `^From ` (so a body line `>From ` cannot be told from a quoted `From `).
 */
export type MboxStyle = 'mboxrd' | 'mboxo' | 'auto';

export interface MboxMessage {
  bytes: Buffer;
  /** From the From_ line, else (none we can read there) from the Date header; undefined when neither has one. */
  internalDate?: Date;
  /** The From_ line's envelope sender; undefined when it has none the store could keep (see parseFromLineEnvelope). */
  sender?: string;
  /** The numeric zone the From_ line's date is written in (minutes east of UTC); undefined when it names none. */
  zoneMinutes?: number;
  /** Without zoneMinutes: the Date header's zone when it names the same instant as internalDate (zoneFromDateHeader). */
  headerZoneMinutes?: number;
  /** IMAP flags from the Status/X-Status headers (the bytes are not changed). */
  flags: string[];
  /**
   * 0-based position of the message's From_ line among the file's lines that look like one
   * (messages skipped as too large count too, and so do From_ lines inside a Content-Length body).
   */
  index: number;
  /** Byte offset of the message's From_ line in the file. */
  offset: number;
}

/** A message as the parser split it, with where its Content-Length header, if any, says it ends. */
interface ParsedMessage extends MboxMessage {
  /** Byte offset in the file of the first byte after the From_ line. */
  bodyOffset: number;
  /** bodyOffset + the header block as in the file + its empty line + Content-Length. */
  contentEnd?: number;
}

export type MboxWarning =
  /** Bytes before the first From_ line (or a whole file without one); they are not a message. */
  | { kind: 'leadingGarbage'; bytes: number }
  /** A message larger than messageBytesMax; skipped, reading continued with the next one. */
  | { kind: 'tooLarge'; index: number; offset: number; bytes: number };

export interface ReadMboxOptions {
  style?: MboxStyle;
  onWarning?: (warning: MboxWarning) => void;
  messageBytesMax?: number;
  /** Read size; tests make it tiny to put boundaries everywhere. */
  chunkBytes?: number;
  /**
   * A message that does not fit a chunk of chunkBytes is read again from its From_ line into one
   * of this size (at least chunkBytes; by default chunkBytes: no larger reads), so it is one view
   * of one chunk instead of a concatenation of pieces. Small chunks stay in the CPU's cache from
   * the read to the parse; large ones hold the large messages whole.
   */
  wholeChunkBytes?: number;
  /**
   * The caller is done with every message whose index is below `doneBelow` (an import: their
   * batch committed, nothing views their bytes any more), and raises it as it goes: read chunks
   * that only such messages view are read into again (ChunkRing) instead of allocated afresh.
   * Without it every message's bytes stay the caller's for good.
   */
  recycle?: { doneBelow: number };
}

const LF = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const FROM_SPACE = Buffer.from('From ', 'latin1');
const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Streams the messages of an mbox file.
 *
 * A Content-Length header is trusted only where it ends the message at a From_ line (or at the
 * end of the file), as mutt and Dovecot read one: a wrong one (a message that kept the header
 * from an mbox it once lived in, its body since quoted or changed) is no such place, and the
 * message reads as if it had none.
 *
 * `auto` reads as mboxrd: the two styles differ only on lines `>>From ` (two or more `>`), which
 * mboxrd unquotes by one `>` and mboxo leaves alone. Such lines are rare in real mail, and when an
 * mboxo file has one, mboxrd's reading is off by one `>` on one line, whereas guessing mboxo for
 * an mboxrd file would corrupt every `>>From ` line it quoted; no byte pattern tells them apart.
 */
export async function* readMbox(
  fs: FileSystem, path: string, options: ReadMboxOptions = {},
): AsyncGenerator<MboxMessage> {
  const chunkBytes = options.chunkBytes ?? limits.readChunkBytes;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw new MailstoreError('INVALID', `chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const wholeChunkBytes = options.wholeChunkBytes ?? chunkBytes;
  if (!Number.isInteger(wholeChunkBytes) || wholeChunkBytes < chunkBytes) {
    throw new MailstoreError('INVALID', `wholeChunkBytes must be an integer of at least chunkBytes (${chunkBytes}), got ${wholeChunkBytes}`);
  }
  const stat = await fs.stat(path).catch((error) => { throw fromSystemError(error, 'stat mbox', path); });
  if (!stat.isFile) throw new MailstoreError('INVALID', `not a regular file: ${path}`, { path });
  const handle = await fs.open(path, 'read').catch((error) => { throw fromSystemError(error, 'open mbox', path); });
  const messageBytesMax = options.messageBytesMax ?? limits.messageBytesMax;
  const onWarning = options.onWarning ?? (() => {});
  // The parser's tooLarge wait until the messages before them are taken: one about a piece that a
  // Content-Length covers is body, not a message to skip (it was reported as a second one).
  const tooLarge: Extract<MboxWarning, { kind: 'tooLarge' }>[] = [];
  const parser = new MboxParser(options.style === 'mboxo' ? 'mboxo' : 'mboxrd', messageBytesMax, (warning) => {
    if (warning.kind === 'tooLarge') tooLarge.push(warning);
    else onWarning(warning);
  });
  // The parser split at every From_ line; one of them inside a message whose Content-Length
  // covers it is body, not a new message.
  let coveredTo = 0;
  const reportTooLarge = (before: number) => {
    while (tooLarge.length > 0 && tooLarge[0]!.offset < before) {
      const warning = tooLarge.shift()!;
      if (warning.offset >= coveredTo) onWarning(warning);
    }
  };
  async function* taken(messages: ParsedMessage[]): AsyncGenerator<MboxMessage> {
    for (const { bodyOffset, contentEnd, ...message } of messages) {
      reportTooLarge(message.offset);
      if (message.offset < coveredTo) continue;
      if (contentEnd === undefined || !(await endsAtFromLine(handle, contentEnd, stat.size))) {
        yield message;
        continue;
      }
      coveredTo = contentEnd + 1;
      const bytes = contentEnd - bodyOffset;
      if (bytes > messageBytesMax) {
        onWarning({ kind: 'tooLarge', index: message.index, offset: message.offset, bytes });
        continue;
      }
      // As long as the length says: nothing was unquoted nor split off (its bytes as they are).
      yield message.bytes.length === bytes ? message : { ...message, bytes: await readRange(handle, bodyOffset, bytes) };
    }
  }
  const ring = options.recycle ? new ChunkRing(options.recycle) : undefined;
  // Messages are views of their chunk and outlive the next read: a fresh buffer each time, or one
  // of the ring's that no message still in use views. The next chunk is read (on another thread,
  // where the file system can) while the caller takes the messages of this one; it is taken only
  // after push, which is done with the carry that viewed the chunk before.
  const readNext = (position: number, bytes: number): Promise<{ chunk: ReadChunk; bytesRead: number }> => {
    const chunk = ring ? ring.take(bytes) : { buffer: Buffer.allocUnsafe(bytes), viewedBelow: 0 };
    const read = readAt(handle, chunk.buffer, position).then((bytesRead) => ({ chunk, bytesRead }));
    read.catch(() => undefined); // awaited once the caller took this chunk's messages: no unhandled rejection meanwhile
    return read;
  };
  let next: Promise<unknown> | undefined;
  try {
    // A UTF-8 byte-order mark (an mbox saved by an editor) hid the first From_ line: that message went as garbage.
    let position = (await readRange(handle, 0, UTF8_BOM.length)).equals(UTF8_BOM) ? UTF8_BOM.length : 0;
    parser.skipLeading(position);
    let reading = readNext(position, chunkBytes);
    next = reading;
    for (;;) {
      const { chunk, bytesRead } = await reading;
      if (bytesRead === 0) break;
      const messages = parser.push(chunk.buffer.subarray(0, bytesRead), chunk);
      const size = chunk.buffer.length;
      const after = bytesRead < size
        ? { position: position + bytesRead, whole: false }
        : parser.rewind(position, size < wholeChunkBytes, chunkBytes / 4);
      position = after.position;
      reading = readNext(position, after.whole ? wholeChunkBytes : chunkBytes);
      next = reading;
      yield* taken(messages);
    }
    yield* taken(parser.end());
    reportTooLarge(Infinity);
  } finally {
    await next?.catch(() => undefined); // never close the file under a read in flight
    await handle.close();
  }
}

/**
 * Whether `position` is the end of the file, or a line terminator is there and then a line the
 * parser takes for a From_ line (so it split there too).
 */
async function endsAtFromLine(handle: FileHandle, position: number, sizeBytes: number): Promise<boolean> {
  if (position >= sizeBytes) return position === sizeBytes;
  const bytes = await readRange(handle, position, 2 + limits.mboxFromLineBytesMax + 1);
  const terminator = bytes[0] === LF ? 1 : bytes[0] === CR && bytes[1] === LF ? 2 : 0;
  if (terminator === 0) return false;
  if (bytes.length === terminator) return true;
  if (!startsWithAt(bytes, terminator, FROM_SPACE)) return false;
  const newline = bytes.indexOf(LF, terminator);
  return (newline < 0 ? bytes.length : newline) - terminator <= limits.mboxFromLineBytesMax;
}

/** `length` bytes at `position`, fewer only where the file ends. */
async function readRange(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let total = 0;
  while (total < length) {
    const bytesRead = await handle.read(buffer, total, length - total, position + total)
      .catch((error) => { throw fromSystemError(error, 'read mbox', handle.path); });
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  return buffer.subarray(0, total);
}

async function readAt(handle: FileHandle, chunk: Buffer, position: number): Promise<number> {
  try {
    return await handle.read(chunk, 0, chunk.length, position, { aside: true });
  } catch (error) {
    throw fromSystemError(error, 'read mbox', handle.path);
  }
}

/** A read chunk and 1 + the highest index of a message that views it (0: none does). */
interface ReadChunk {
  buffer: Buffer;
  viewedBelow: number;
}

/**
 * Read chunks used again once the caller is done with every message that views them, so a bulk
 * import reads a 600 MB mbox through ~15 MiB of buffers instead of allocating 600 one-MiB ones: V8
 * counts those as external memory and ran a full mark-compact every ~13 MB of them (48 in one
 * import, ~1 s of the main thread; docs/bench/import-2026-12-02-s11.md). The newest chunk is never
 * handed out again (the parser's carry views it until the next push); a ring over
 * importLimits.readChunkBytesKept forgets chunks, its free ones first, then its oldest (left to
 * the garbage collector, never reused), so a caller that never raises doneBelow costs what it did without the ring. Chunks
 * come in two sizes (ReadMboxOptions.wholeChunkBytes): one is only read into at its own size.
 */
class ChunkRing {
  /** The chunk read last: the parser's carry may view it until the next push, so it is not handed out. */
  private newest: ReadChunk | undefined;
  /**
   * Older chunks some message the caller still holds may view, in the order they were read, which
   * is the order of their viewedBelow (a later chunk holds the same or later messages; one out of
   * order would only wait longer): a take looks at the head only. A search of every chunk held
   * for a free one made a read of N chunks cost N times the chunks in flight: 64-byte reads of a
   * 2 MB mbox took 4.9 s instead of 0.1 s.
   */
  private readonly waiting: ReadChunk[] = [];
  private waitingHead = 0;
  /** Chunks no message views any more, by size. */
  private readonly free = new Map<number, ReadChunk[]>();
  private keptBytes = 0;

  constructor(private readonly recycle: { doneBelow: number }) {}

  take(bytes: number): ReadChunk {
    this.settle();
    const chunk = this.free.get(bytes)?.pop() ?? this.allocate(bytes);
    if (this.newest) {
      // one no message views (its bytes all went into a concatenation, or into none) is free now
      if (this.newest.viewedBelow <= this.recycle.doneBelow) this.release(this.newest);
      else this.waiting.push(this.newest);
    }
    this.newest = chunk;
    chunk.viewedBelow = 0;
    return chunk;
  }

  /** Moves the chunks the caller is done with from `waiting` to `free`. */
  private settle(): void {
    while (this.waitingHead < this.waiting.length && this.waiting[this.waitingHead]!.viewedBelow <= this.recycle.doneBelow) {
      this.release(this.waiting[this.waitingHead++]!);
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
  }

  private release(chunk: ReadChunk): void {
    const sized = this.free.get(chunk.buffer.length);
    if (sized) sized.push(chunk);
    else this.free.set(chunk.buffer.length, [chunk]);
  }

  /** A new chunk; over importLimits.readChunkBytesKept, free chunks (of the other size) and then the oldest waiting are forgotten first. */
  private allocate(bytes: number): ReadChunk {
    for (const sized of this.free.values()) {
      while (sized.length > 0 && this.keptBytes + bytes > importLimits.readChunkBytesKept) this.keptBytes -= sized.pop()!.buffer.length;
    }
    while (this.waitingHead < this.waiting.length && this.keptBytes + bytes > importLimits.readChunkBytesKept) {
      this.keptBytes -= this.waiting[this.waitingHead++]!.buffer.length;
    }
    if (this.newest && this.keptBytes + bytes > importLimits.readChunkBytesKept) {
      this.keptBytes -= this.newest.buffer.length;
      this.newest = undefined;
    }
    this.keptBytes += bytes;
    return { buffer: Buffer.allocUnsafe(bytes), viewedBelow: 0 };
  }
}

interface OpenMessage {
  offset: number;
  index: number;
  /** The From_ line without its line terminator, for the internal date. */
  fromLine: string;
  /** The From_ line ends in CRLF, so the separator to strip is CRLF too. */
  crlf: boolean;
  /** The From_ line's length in the file, with its terminator. */
  fromLineBytes: number;
  pieces: Buffer[];
  bytes: number;
  oversized: boolean;
}

type LineKind = 'from' | 'quoted' | 'plain' | 'undecided';

/**
 * The streaming state machine: chunks in, finished messages out. Lines are classified at their
 * start only, and only the lines that can matter are visited: a native search for `From ` finds
 * them, so the bytes in between never pass through JS one line at a time. The last line of a
 * chunk is classified by hand, since a search cannot see a prefix cut by the chunk end.
 */
class MboxParser {
  private carry: Buffer | undefined;
  private carryOffset = 0;
  private fileOffset = 0;
  private midLine = false;
  private current: OpenMessage | undefined;
  private garbageBytes = 0;
  private garbageReported = false;
  private nextIndex = 0;
  /** The read chunk `scan` is looking at, when it is not a concatenation with the carry (those are never reused). */
  private chunk: ReadChunk | undefined;

  constructor(
    private readonly style: 'mboxrd' | 'mboxo',
    private readonly messageBytesMax: number,
    private readonly onWarning: (warning: MboxWarning) => void,
  ) {}

  /** The file's first `bytes` are not read: leading garbage, reported as such. */
  skipLeading(bytes: number): void {
    this.fileOffset += bytes;
    this.garbageBytes += bytes;
  }

  push(chunk: Buffer, from?: ReadChunk): ParsedMessage[] {
    const done: ParsedMessage[] = [];
    let buffer = chunk;
    let base = this.fileOffset;
    this.chunk = from;
    if (this.carry) {
      buffer = Buffer.concat([this.carry, chunk]);
      base = this.carryOffset;
      this.carry = undefined;
      this.chunk = undefined;
    }
    this.fileOffset += chunk.length;
    this.scan(buffer, base, done);
    this.chunk = undefined;
    return done;
  }

  /**
   * Where to read the next chunk from, once the chunk read at `chunkStart` is pushed, and whether
   * it must be a whole-message chunk. A message still open at its end that began after its start
   * is dropped and read again whole from its From_ line: it then lies in the next chunk as one
   * view, where it would have been copied out of two or more (Buffer.concat: 247 ms of the JS
   * thread and ~400 MB of garbage on the 20k corpus, where most bytes are in messages of
   * 0.25-1.4 MB); from `largeBytes` already read, into a whole-message chunk. One that began at
   * the chunk's start is read again into a whole-message chunk when `canGrow` (this chunk was the
   * smaller size); otherwise, or one that began in the carry before it, goes on as it was: it does
   * not fit a chunk.
   */
  rewind(chunkStart: number, canGrow: boolean, largeBytes: number): { position: number; whole: boolean } {
    const message = this.current;
    const fillsChunk = message?.offset === chunkStart && canGrow;
    if (!message || message.oversized || (message.offset <= chunkStart && !fillsChunk)) return { position: this.fileOffset, whole: false };
    this.current = undefined;
    this.nextIndex = message.index;
    this.carry = undefined;
    this.midLine = false;
    this.fileOffset = message.offset;
    return { position: message.offset, whole: fillsChunk || message.bytes >= largeBytes };
  }

  end(): ParsedMessage[] {
    const done: ParsedMessage[] = [];
    if (this.carry) {
      // An unfinished last line without a newline: a From_ line if it starts like one, else content.
      const carry = this.carry;
      this.carry = undefined;
      if (startsWithAt(carry, 0, FROM_SPACE)) this.startMessage(carry, this.carryOffset, done);
      else this.emit(carry, 0, carry.length);
    }
    this.finishMessage(done);
    this.reportGarbage();
    return done;
  }

  private scan(buffer: Buffer, base: number, done: ParsedMessage[]): void {
    // `lineStart`: the first place where a line may start that has not been looked at yet.
    let lineStart = 0;
    if (this.midLine) {
      const newline = buffer.indexOf(LF);
      if (newline < 0) {
        this.emit(buffer, 0, buffer.length);
        return;
      }
      lineStart = newline + 1;
      this.midLine = false;
    }
    const lastLineStart = buffer.lastIndexOf(LF) + 1;
    let runStart = 0;
    for (;;) {
      const special = findSpecialLine(buffer, lineStart, lastLineStart, this.style);
      if (special === lastLineStart) break;
      if (buffer[special] === GT) {
        // Drop the one `>` that quoting added.
        this.emit(buffer, runStart, special);
        runStart = special + 1;
        lineStart = special + 1;
      } else {
        const newline = buffer.indexOf(LF, special);
        if (newline - special > limits.mboxFromLineBytesMax) {
          lineStart = newline + 1; // too long for a From_ line: content (as scanLastLine decides it)
          continue;
        }
        this.emit(buffer, runStart, special);
        this.startMessage(buffer.subarray(special, newline + 1), base + special, done);
        lineStart = newline + 1;
        runStart = lineStart;
      }
    }
    this.scanLastLine(buffer, base, lastLineStart, runStart);
  }

  /** The line after the chunk's last newline: it may be cut anywhere, even inside `From `. */
  private scanLastLine(buffer: Buffer, base: number, lineStart: number, runStart: number): void {
    if (lineStart === buffer.length) {
      this.emit(buffer, runStart, lineStart);
      return;
    }
    const kind = this.classify(buffer, lineStart);
    const tooLong = kind === 'from' && buffer.length - lineStart > limits.mboxFromLineBytesMax;
    if (kind === 'undecided' || (kind === 'from' && !tooLong)) {
      // A From_ line is only complete with its newline, which is in a later chunk. Of a run of `>`
      // not yet known to quote `From `, only the last `>` is held: whether one `>` is dropped is
      // all that is left to decide, and the `>` are alike, so the others are content either way
      // (a line of nothing but `>` is never held whole).
      let held = lineStart;
      while (buffer[held] === GT && buffer[held + 1] === GT) held += 1;
      this.emit(buffer, runStart, held);
      this.keepCarry(buffer, held, base);
      return;
    }
    if (kind === 'quoted') {
      this.emit(buffer, runStart, lineStart);
      runStart = lineStart + 1;
    }
    this.emit(buffer, runStart, buffer.length);
    this.midLine = true;
  }

  private keepCarry(buffer: Buffer, pos: number, base: number): void {
    this.carry = buffer.subarray(pos);
    this.carryOffset = base + pos;
  }

  /** What the line starting at `pos` is, or 'undecided' when the buffer ends before that is known. */
  private classify(buffer: Buffer, pos: number): LineKind {
    const first = buffer[pos];
    if (first === FROM_SPACE[0]) return matchFromSpace(buffer, pos, 'from');
    if (first !== GT) return 'plain';
    let end = pos;
    while (end < buffer.length && buffer[end] === GT) {
      end += 1;
      if (this.style === 'mboxo' && end - pos > 1) return 'plain';
    }
    if (end === buffer.length) return 'undecided';
    return matchFromSpace(buffer, end, 'quoted');
  }

  private emit(buffer: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const message = this.current;
    if (!message) {
      this.garbageBytes += end - start;
      return;
    }
    message.bytes += end - start;
    if (message.oversized) return;
    // The +2 allows the separator that is stripped at the end.
    if (message.bytes > this.messageBytesMax + 2) {
      message.oversized = true;
      message.pieces = [];
      return;
    }
    message.pieces.push(buffer.subarray(start, end));
    if (this.chunk) this.chunk.viewedBelow = Math.max(this.chunk.viewedBelow, message.index + 1);
  }

  private startMessage(fromLine: Buffer, offset: number, done: ParsedMessage[]): void {
    this.finishMessage(done);
    this.reportGarbage();
    const crlf = fromLine.length >= 2 && fromLine[fromLine.length - 2] === CR;
    this.current = {
      offset, index: this.nextIndex, fromLine: fromLineText(fromLine), crlf, fromLineBytes: fromLine.length, pieces: [], bytes: 0, oversized: false,
    };
    this.nextIndex += 1;
  }

  private finishMessage(done: ParsedMessage[]): void {
    const message = this.current;
    if (!message) return;
    this.current = undefined;
    if (message.oversized) {
      this.onWarning({ kind: 'tooLarge', index: message.index, offset: message.offset, bytes: message.bytes });
      return;
    }
    // A message inside one read chunk is a view of it (no copy): the chunk is not read into again
    // while the caller uses the message (ReadMboxOptions.recycle).
    let bytes = message.pieces.length === 1 ? message.pieces[0]! : Buffer.concat(message.pieces, message.bytes);
    bytes = bytes.subarray(0, bytes.length - terminatorLength(bytes, message.crlf));
    if (bytes.length > this.messageBytesMax) {
      this.onWarning({ kind: 'tooLarge', index: message.index, offset: message.offset, bytes: bytes.length });
      return;
    }
    // The From_ line's date is matched once, and the header block made text once, for all that is read from them.
    const rest = fromLineRest(message.fromLine);
    const date = matchDate(rest);
    const fromLineDate = dateOf(date);
    const envelope = envelopeOf(rest, date, fromLineDate !== undefined);
    const headers = headerText(bytes);
    const internalDate = fromLineDate ?? headerDate(headers)?.date;
    const headerZone = internalDate && envelope.zoneMinutes === undefined ? zoneFromHeaders(headers, internalDate) : undefined;
    const fields = headerFields(headers);
    done.push({
      bytes,
      internalDate,
      ...envelope,
      ...(headerZone !== undefined ? { headerZoneMinutes: headerZone } : {}),
      flags: flagsFromFields(fields),
      index: message.index,
      offset: message.offset,
      bodyOffset: message.offset + message.fromLineBytes,
      contentEnd: this.contentEnd(bytes, headers, fields['content-length'], message.offset + message.fromLineBytes),
    });
  }

  /** Where the message's Content-Length header says it ends in the file; undefined without one, or without a body. */
  private contentEnd(bytes: Buffer, headers: string, length: string | undefined, bodyOffset: number): number | undefined {
    if (length === undefined || (headers.length === bytes.length && bytes[bytes.length - 1] !== LF)) return undefined;
    // the header block as it is in the file: a line in it that was quoted has its `>` again
    let headerBytes = 0;
    for (const piece of quoteFromLines(bytes.subarray(0, headers.length), this.style)) headerBytes += piece.length;
    // with a body that starts with a From_ line, the empty line was taken for the separator
    const crlf = headers.length < bytes.length ? bytes[headers.length] === CR : bytes[bytes.length - 2] === CR;
    const emptyLine = crlf ? 2 : 1;
    return bodyOffset + headerBytes + emptyLine + Number(length);
  }

  private reportGarbage(): void {
    if (this.garbageReported) return;
    this.garbageReported = true;
    if (this.garbageBytes > 0) this.onWarning({ kind: 'leadingGarbage', bytes: this.garbageBytes });
  }
}

/**
 * The start of the first line in [lineStart, limit) that is a From_ line or a quoted one
 * (`>From `, in mboxrd also `>>From ` and deeper), or `limit`. One search for `From ` finds both;
 * the bytes before a match tell which it is, if either. `lineStart` is 0, just after a newline,
 * or just after the `>` of a quoted line already handled, which must not be found again.
 */
function findSpecialLine(buffer: Buffer, lineStart: number, limit: number, style: 'mboxrd' | 'mboxo'): number {
  let search = lineStart;
  for (;;) {
    const found = buffer.indexOf(FROM_SPACE, search);
    if (found < 0 || found >= limit) return limit;
    search = found + 1;
    if (found === 0 || buffer[found - 1] === LF) return found;
    let start = found;
    while (start > lineStart && buffer[start - 1] === GT) start -= 1;
    if (start === found || (style === 'mboxo' && found - start > 1)) continue;
    if (start === 0 || buffer[start - 1] === LF) return start;
  }
}

function matchFromSpace(buffer: Buffer, pos: number, kind: 'from' | 'quoted'): LineKind {
  const available = Math.min(FROM_SPACE.length, buffer.length - pos);
  for (let i = 0; i < available; i += 1) {
    if (buffer[pos + i] !== FROM_SPACE[i]) return 'plain';
  }
  return available < FROM_SPACE.length ? 'undecided' : kind;
}

function startsWithAt(buffer: Buffer, pos: number, prefix: Buffer): boolean {
  return buffer.length - pos >= prefix.length && buffer.compare(prefix, 0, prefix.length, pos, pos + prefix.length) === 0;
}

/** The one separator terminator the writer added: `\r\n` in a CRLF file, else `\n`. */
function terminatorLength(bytes: Buffer, crlf: boolean): number {
  const n = bytes.length;
  if (n === 0 || bytes[n - 1] !== LF) return 0;
  return crlf && n >= 2 && bytes[n - 2] === CR ? 2 : 1;
}

function fromLineText(fromLine: Buffer): string {
  return fromLine.toString('latin1').replace(/\r?\n$/, '');
}

// ---------------------------------------------------------------------------------------------
// From_ line dates

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*';
const MONTH = '(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*';
const TIME = '(\\d{1,2}):(\\d{2})(?::(\\d{2}))?';
const ZONE = '([+-]\\d{4}|[a-z]{1,5})';
/** asctime, optionally with a zone before or after the year: `Thu Nov 28 10:45:25 [+0100 ]2026[ +0100]`. */
const ASCTIME = new RegExp(
  `\\b${DAY},?\\s+${MONTH}\\s+(\\d{1,2})\\s+${TIME}(?:\\s+${ZONE})?\\s+(\\d{4})(?:\\s+${ZONE})?\\b`, 'i');
/** RFC 5322 style with a year of `year` (a regex), as some exporters write: `Thu, 28 Nov 2026 10:45:25 +0000`. */
const rfc5322Date = (year: string) => new RegExp(`(?:\\b${DAY},?\\s+)?\\b(\\d{1,2})\\s+${MONTH}\\s+(${year})\\s+${TIME}(?:\\s+${ZONE})?`, 'i');
const RFC5322 = rfc5322Date('\\d{4}');
/**
 * A Date header: RFC 5322's, with its obsolete two- and three-digit years (section 4.3), which mail
 * of the 1990s carries (`Mon, 3 Jan 94 12:00:00 EST`): read as no date, an .eml import dated it
 * at the import, the newest message of the mailbox.
 */
const DATE_HEADER = rfc5322Date('\\d{2,4}');

/** RFC 5322 section 4.3: a two-digit year 00-49 is 20xx, 50-99 19xx; a three-digit one adds 1900. */
function fullYear(year: string): string {
  if (year.length === 2) return String(Number(year) + (Number(year) < 50 ? 2000 : 1900));
  return year.length === 3 ? String(Number(year) + 1900) : year;
}

/** The internal date in a From_ line (`From sender <date>`); undefined when there is none we can read. */
export function parseFromLineDate(line: string): Date | undefined {
  return dateOf(matchDate(fromLineRest(line)));
}

/** The From_ line after `From `: the sender and the date. */
function fromLineRest(line: string): string {
  return line.startsWith('From ') ? line.slice(5) : line;
}

interface DateMatch {
  asctime: RegExpExecArray | null;
  rfc: RegExpExecArray | null;
}

/** The date of a From_ line, found once for both its instant and its envelope (dateOf, envelopeOf). */
function matchDate(rest: string): DateMatch {
  const asctime = ASCTIME.exec(rest);
  return { asctime, rfc: asctime ? null : RFC5322.exec(rest) };
}

function dateOf({ asctime, rfc }: DateMatch): Date | undefined {
  if (asctime) {
    const [, month, day, hour, minute, second, zoneBefore, year, zoneAfter] = asctime;
    return buildDate(year!, month!, day!, hour!, minute!, second, zoneBefore ?? zoneAfter);
  }
  if (rfc) {
    const [, day, month, year, hour, minute, second, zone] = rfc;
    return buildDate(year!, month!, day!, hour!, minute!, second, zone);
  }
  return undefined;
}

/**
 * The envelope sender and the date's numeric zone of a From_ line (`From alice@x Thu Nov  8
 * 11:45:25 2026 +0100`), each only when the store can keep it: a sender of one printable token
 * within limits.envelopeFromBytesMax (none when the line starts with its date), a zone only with
 * a readable date and within limits.dateZoneMinutes{Min,Max}.
 */
export function parseFromLineEnvelope(line: string, hasDate: boolean): { sender?: string; zoneMinutes?: number } {
  const rest = fromLineRest(line);
  return envelopeOf(rest, matchDate(rest), hasDate);
}

function envelopeOf(rest: string, { asctime, rfc }: DateMatch, hasDate: boolean): { sender?: string; zoneMinutes?: number } {
  const out: { sender?: string; zoneMinutes?: number } = {};
  const token = /^([^ \t]+)[ \t]/.exec(rest)?.[1];
  const dateAt = asctime?.index ?? rfc?.index ?? -1;
  if (token !== undefined && dateAt !== 0 && isEnvelopeToken(token)) out.sender = token;
  const zone = asctime ? (asctime[6] ?? asctime[8]) : rfc?.[7];
  if (hasDate && zone !== undefined && /^[+-]\d{4}$/.test(zone) && Number(zone.slice(3)) < 60) {
    const minutes = zoneOffsetMinutes(zone);
    if (minutes >= limits.dateZoneMinutesMin && minutes <= limits.dateZoneMinutesMax) out.zoneMinutes = minutes;
  }
  return out;
}

function buildDate(
  year: string, month: string, day: string, hour: string, minute: string, second: string | undefined,
  zone: string | undefined,
): Date | undefined {
  const monthIndex = MONTHS.indexOf(month.slice(0, 3).toLowerCase());
  const values = [Number(year), Number(day), Number(hour), Number(minute), Number(second ?? 0)];
  const [y, d, h, m, s] = values as [number, number, number, number, number];
  if (monthIndex < 0 || d < 1 || d > 31 || h > 23 || m > 59 || s > 60) return undefined;
  const utcMs = Date.UTC(y, monthIndex, d, h, m, Math.min(s, 59));
  const date = new Date(utcMs - zoneOffsetMinutes(zone) * 60_000);
  // Date.UTC rolls Feb 31 into March; a date that rolled is not a date.
  if (new Date(utcMs).getUTCDate() !== d) return undefined;
  // Outside the store's date range (a 1960 From_ line) is no date either: the message gets "now".
  const ms = date.getTime();
  return Number.isNaN(ms) || ms < limits.internalDateMsMin || ms > limits.internalDateMsMax ? undefined : date;
}

/** RFC 5322's zone names (obs-zone, section 4.3), in minutes east of UTC; UT and GMT are 0. */
const NAMED_ZONES: Record<string, number> = { est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420 };

/**
 * asctime has no zone and means UTC; a numeric zone is honoured, and so are RFC 5322's names;
 * other names (CET; IST: India, Israel or Ireland) are guessed as UTC.
 */
function zoneOffsetMinutes(zone: string | undefined): number {
  if (zone && !/^[+-]\d{4}$/.test(zone)) return NAMED_ZONES[zone.toLowerCase()] ?? 0;
  if (!zone) return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
}

/**
 * `Thu Nov  8 10:45:25 2026` in UTC, as C's asctime() writes it; with a zone offset other than 0,
 * the time in that zone followed by it, `Thu Nov  8 11:45:25 2026 +0100`, as Dovecot reads and
 * writes a From_ line that keeps its zone (and as parseFromLineDate reads it back).
 */
export function formatAsctime(date: Date, zoneOffsetMinutes = 0): string {
  const shifted = new Date(date.getTime() + zoneOffsetMinutes * 60_000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][shifted.getUTCDay()]!;
  const month = MONTHS[shifted.getUTCMonth()]!;
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}:${pad(shifted.getUTCSeconds())}`;
  const monthName = month[0]!.toUpperCase() + month.slice(1);
  const text = `${day} ${monthName} ${String(shifted.getUTCDate()).padStart(2, ' ')} ${time} ${shifted.getUTCFullYear()}`;
  if (zoneOffsetMinutes === 0) return text;
  const magnitude = Math.abs(zoneOffsetMinutes);
  return `${text} ${zoneOffsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(magnitude / 60))}${pad(magnitude % 60)}`;
}

/**
 * The zone offset (minutes east of UTC) to write a message's internal date in: the numeric zone of
 * its Date header when that header names the very same second as the internal date, else
 * undefined (UTC). The store keeps an internal date as an instant only; this brings back the zone
 * of a From_ line written in the sender's zone (`... 2026 +0100` with `Date: ... +0100`).
 */
export function zoneFromDateHeader(bytes: Buffer, internalDate: Date): number | undefined {
  return zoneFromHeaders(headerText(bytes), internalDate);
}

/**
 * The instant of a message's Date header, for a message whose source gives it no date (an .eml
 * file, a From_ line without one); undefined when it has none we can read or one out of range.
 */
export function dateFromHeader(bytes: Buffer): Date | undefined {
  return headerDate(headerText(bytes))?.date;
}

/** The Date header of a header block (headerText): its instant and its zone as written. */
function headerDate(headerBlock: string): { date: Date; zone?: string } | undefined {
  const headers = headerBlock.length > limits.dateHeaderScanBytes ? headerBlock.slice(0, limits.dateHeaderScanBytes) : headerBlock;
  const field = /^date:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/im.exec(headers);
  const rfc = field ? DATE_HEADER.exec(field[1]!.replace(/\r?\n[ \t]+/g, ' ')) : null;
  if (!rfc) return undefined;
  const [, day, month, year, hour, minute, second, zone] = rfc;
  const date = buildDate(fullYear(year!), month!, day!, hour!, minute!, second, zone);
  return date ? { date, zone } : undefined;
}

/** zoneFromDateHeader of the header block as text (headerText). */
function zoneFromHeaders(headerBlock: string, internalDate: Date): number | undefined {
  const found = headerDate(headerBlock);
  const zone = found?.zone;
  if (!zone || !/^[+-]\d{4}$/.test(zone)) return undefined;
  if (Math.floor(found.date.getTime() / 1000) !== Math.floor(internalDate.getTime() / 1000)) return undefined;
  const offset = zoneOffsetMinutes(zone);
  return Math.abs(offset) < 24 * 60 && Number(zone.slice(3)) < 60 ? offset : undefined; // +9999 is no zone
}

/**
 * The envelope sender of a message for its From_ line, from its Return-Path header (which the
 * delivery agent copies from the same envelope): `<>` or none is MAILER-DAEMON, as is an address
 * that is not one printable token.
 */
export function senderFromReturnPath(bytes: Buffer): string {
  const headers = bytes.subarray(0, Math.min(headerBlockLength(bytes), limits.dateHeaderScanBytes)).toString('latin1');
  const field = /^return-path:[ \t]*<?([^>\r\n]*)>?[ \t]*$/im.exec(headers);
  const address = field?.[1]?.trim() ?? '';
  return isEnvelopeToken(address) ? address : 'MAILER-DAEMON';
}

/** A sender a From_ line can carry and the reader gives back: one printable token, short enough (limits.mboxFromLineBytesMax). */
export function isEnvelopeToken(sender: string): boolean {
  return /^[\x21-\x7e]+$/.test(sender) && sender.length <= limits.envelopeFromBytesMax;
}

// ---------------------------------------------------------------------------------------------
// Status / X-Status / X-Keywords headers

const STATUS_FLAGS: Record<string, string> = { R: '\\Seen' };
const X_STATUS_FLAGS: Record<string, string> = { A: '\\Answered', F: '\\Flagged', T: '\\Draft', D: '\\Deleted' };

const LF_LF = Buffer.from('\n\n', 'latin1');
const LF_CRLF = Buffer.from('\n\r\n', 'latin1');
/**
 * The header fields read besides Date, each by its own pattern, tried where a line of the header
 * block starts with its name (sticky; `^` of each pattern is where FIELD_START matched): the first
 * line the whole pattern matches, as each pattern searched on its own over the block found it.
 * Six such searches were six scans of every message's header block (issue 16); FIELD_START finds
 * the lines for all of them in one. Keywords: as Dovecot (X-Keywords) and Thunderbird
 * (X-Mozilla-Keys) keep them in an mbox, space-separated, padded with spaces to be rewritten in
 * place; X-Mozilla-Status: Thunderbird's flags, the hex of nsMsgMessageFlags (it writes no Status header).
 */
const FIELD_PATTERNS = {
  'status': /status:[ \t]*([^\r\n]*)/iy,
  'x-status': /x-status:[ \t]*([^\r\n]*)/iy,
  'x-keywords': /x-keywords:[ \t]*([^\r\n]*)/iy,
  'x-mozilla-keys': /x-mozilla-keys:[ \t]*([^\r\n]*)/iy,
  'x-mozilla-status': /x-mozilla-status:[ \t]*([0-9a-f]{4})[ \t]*\r?$/imy,
  'content-length': /content-length:[ \t]*(\d{1,15})[ \t]*\r?$/imy,
} as const;
const FIELD_START = /^(?:status|x-status|x-keywords|x-mozilla-keys|x-mozilla-status|content-length):/gim;

export type HeaderFields = Partial<Record<keyof typeof FIELD_PATTERNS, string>>;

/** Each FIELD_PATTERNS field's value (the pattern's group) in a header block, where one matches. */
export function headerFields(headers: string): HeaderFields {
  const fields: HeaderFields = {};
  FIELD_START.lastIndex = 0;
  for (let start = FIELD_START.exec(headers); start !== null; start = FIELD_START.exec(headers)) {
    const name = start[0].slice(0, -1).toLowerCase() as keyof typeof FIELD_PATTERNS;
    if (fields[name] !== undefined) continue;
    const pattern = FIELD_PATTERNS[name];
    pattern.lastIndex = start.index;
    const value = pattern.exec(headers)?.[1];
    if (value !== undefined) fields[name] = value;
  }
  return fields;
}

const STATUS_HEADERS = [['status', STATUS_FLAGS], ['x-status', X_STATUS_FLAGS]] as const;
const KEYWORDS_HEADERS = ['x-keywords', 'x-mozilla-keys'] as const;
const MOZILLA_FLAGS: [bit: number, flag: string][] = [
  [0x1, '\\Seen'], [0x2, '\\Answered'], [0x4, '\\Flagged'], [0x8, '\\Deleted'], [0x1000, '$Forwarded'],
];

/** The byte length of the header block (up to, not including, the empty line), or the whole message. */
function headerBlockLength(bytes: Buffer): number {
  if (bytes[0] === LF || (bytes[0] === CR && bytes[1] === LF)) return 0;
  // The first newline followed by an empty line, LF or CRLF; a `\n\r\n` before the first `\n\n`
  // lies wholly before its end, so that second search need not look further.
  const lfBlank = bytes.indexOf(LF_LF);
  const crlfBlank = (lfBlank < 0 ? bytes : bytes.subarray(0, lfBlank + 2)).indexOf(LF_CRLF);
  if (crlfBlank >= 0) return crlfBlank + 1;
  return lfBlank >= 0 ? lfBlank + 1 : bytes.length;
}

/**
 * Flags from `Status:` (R = seen; O = merely old) and `X-Status:` (A, F, T, D), and Thunderbird's
 * `X-Mozilla-Status:`; keywords from `X-Keywords:` and `X-Mozilla-Keys:`; sorted.
 */
export function flagsFromStatusHeaders(bytes: Buffer): string[] {
  return flagsFromFields(headerFields(headerText(bytes)));
}

/** The header block (up to, not including, the empty line) as latin1 text: one string per message for all its header lookups. */
function headerText(bytes: Buffer): string {
  return bytes.toString('latin1', 0, headerBlockLength(bytes));
}

function flagsFromFields(fields: HeaderFields): string[] {
  const flags = new Set<string>();
  for (const [name, table] of STATUS_HEADERS) {
    for (const letter of fields[name] ?? '') {
      const flag = table[letter.toUpperCase()];
      if (flag) flags.add(flag);
    }
  }
  for (const name of KEYWORDS_HEADERS) {
    for (const keyword of fields[name]?.split(/[ \t,]+/) ?? []) {
      if (keyword !== '' && !keyword.startsWith('\\')) flags.add(keyword);
    }
  }
  const mozilla = fields['x-mozilla-status'];
  if (mozilla !== undefined) {
    const bits = Number.parseInt(mozilla, 16);
    for (const [bit, flag] of MOZILLA_FLAGS) if (bits & bit) flags.add(flag);
  }
  return [...flags].sort();
}

/**
 * The message with its Status/X-Status/X-Keywords headers replaced by ones describing `flags`. Used only
 * when the writer's statusHeaders option is on, because it changes the message bytes.
 */
export function withStatusHeaders(bytes: Buffer, flags: readonly string[]): Buffer {
  const headerLength = headerBlockLength(bytes);
  const eol = /\r\n/.test(bytes.subarray(0, bytes.indexOf(LF) + 1).toString('latin1')) ? '\r\n' : '\n';
  const kept = dropHeaderLines(bytes.subarray(0, headerLength).toString('latin1'), /^(status|x-status|x-keywords):/i);
  const xStatus = Object.entries(X_STATUS_FLAGS).filter(([, flag]) => flags.includes(flag)).map(([l]) => l).join('');
  const keywords = flags.filter((flag) => !flag.startsWith('\\'));
  let added = `Status: ${flags.includes('\\Seen') ? 'RO' : 'O'}${eol}`;
  if (xStatus) added += `X-Status: ${xStatus}${eol}`;
  if (keywords.length > 0) added += `X-Keywords: ${keywords.join(' ')}${eol}`;
  const head = kept.length > 0 && !kept.endsWith('\n') ? kept + eol : kept;
  return Buffer.concat([Buffer.from(head + added, 'latin1'), bytes.subarray(headerLength)]);
}

/** Removes header fields whose first line matches `pattern`, with their folded continuation lines. */
function dropHeaderLines(headers: string, pattern: RegExp): string {
  const lines = headers.split(/(?<=\n)/);
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (!continuation) dropping = pattern.test(line);
    if (!dropping) kept.push(line);
  }
  return kept.join('');
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface MboxWriterOptions {
  /** 'auto' writes mboxrd, the reversible style. */
  style?: MboxStyle;
  /**
   * Write Status/X-Status/X-Keywords headers for the flags. Off by default: it changes the message bytes
   * (and so their hash), and an export should give back exactly what was stored.
   */
  statusHeaders?: boolean;
}

export interface MboxAppendOptions {
  /** The From_ line's date; the current time when absent (a From_ line must carry one). */
  internalDate?: Date;
  flags?: readonly string[];
  /** The From_ line's sender, one token without spaces; MAILER-DAEMON by default. */
  sender?: string;
  /** Write the From_ line's date in this zone (minutes east of UTC) with its offset; UTC asctime by default. */
  zoneOffsetMinutes?: number;
}

/** Writes an mbox file: creates it (never overwrites), buffers appends, fsyncs file and directory at close. */
export class MboxWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position = 0;
  private closed = false;
  private messageCount = 0;

  private constructor(
    private readonly fs: FileSystem,
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly style: 'mboxrd' | 'mboxo',
    private readonly statusHeaders: boolean,
  ) {}

  static async create(fs: FileSystem, path: string, options: MboxWriterOptions = {}): Promise<MboxWriter> {
    const handle = await fs.open(path, 'createNew').catch((error) => { throw fromSystemError(error, 'create mbox', path); });
    return new MboxWriter(fs, path, handle, options.style === 'mboxo' ? 'mboxo' : 'mboxrd', options.statusHeaders ?? false);
  }

  /** Bytes written so far, including what is still buffered. */
  get bytesWritten(): number {
    return this.position + this.pendingBytes;
  }

  get messagesWritten(): number {
    return this.messageCount;
  }

  async append(bytes: Buffer, options: MboxAppendOptions = {}): Promise<void> {
    if (this.closed) throw new MailstoreError('CLOSED', `mbox writer is closed: ${this.path}`, { path: this.path });
    const sender = options.sender ?? 'MAILER-DAEMON';
    if (!isEnvelopeToken(sender)) {
      throw new MailstoreError('INVALID', `mbox sender must be one printable token without spaces, at most ${limits.envelopeFromBytesMax} bytes: ${JSON.stringify(sender)}`);
    }
    const date = options.internalDate ?? new Date();
    if (Number.isNaN(date.getTime())) throw new MailstoreError('INVALID', 'mbox internalDate is not a valid date');
    const message = this.statusHeaders ? withStatusHeaders(bytes, options.flags ?? []) : bytes;
    const zone = options.zoneOffsetMinutes ?? 0;
    if (!Number.isInteger(zone) || Math.abs(zone) >= 24 * 60) throw new MailstoreError('INVALID', `mbox zone offset must be whole minutes within a day: ${zone}`);
    this.queue(Buffer.from(`From ${sender} ${formatAsctime(date, zone)}\n`, 'latin1'));
    for (const piece of quoteFromLines(message, this.style)) this.queue(piece);
    this.queue(Buffer.from('\n'));
    this.messageCount += 1;
    if (this.pendingBytes >= limits.readChunkBytes) await this.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
      await this.handle.sync();
      const size = await this.handle.size();
      if (size !== this.position) {
        throw new MailstoreError('IO', `mbox ${this.path} is ${size} bytes after writing ${this.position}`, { path: this.path });
      }
    } catch (error) {
      await this.handle.close().catch(() => {});
      throw fromSystemError(error, 'write mbox', this.path);
    }
    await this.handle.close().catch((error) => { throw fromSystemError(error, 'close mbox', this.path); });
    await this.fs.syncDir(dirname(this.path)).catch((error) => { throw fromSystemError(error, 'sync directory of', this.path); });
  }

  private queue(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pending.push(piece);
    this.pendingBytes += piece.length;
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.handle.write(data, this.position).catch((error) => { throw fromSystemError(error, 'write mbox', this.path); });
    this.position += data.length;
  }
}

/** mboxo reads the message back as it is: it has no line `>From ` (mboxo quotes only `From `, and takes every `>From ` for one it quoted). */
export function keptByMboxo(bytes: Buffer): boolean {
  for (let found = bytes.indexOf(QUOTED_FROM); found >= 0; found = bytes.indexOf(QUOTED_FROM, found + 1)) {
    if (found === 0 || bytes[found - 1] === LF) return false;
  }
  return true;
}

const QUOTED_FROM = Buffer.from('>From ', 'latin1');

/** The message split around the lines that need one more `>`, with that `>` added. */
export function quoteFromLines(bytes: Buffer, style: 'mboxrd' | 'mboxo'): Buffer[] {
  const pieces: Buffer[] = [];
  let copied = 0;
  let search = 0;
  for (;;) {
    const found = bytes.indexOf(FROM_SPACE, search);
    if (found < 0) break;
    search = found + 1;
    let lineStart = found;
    if (style === 'mboxrd') while (lineStart > 0 && bytes[lineStart - 1] === GT) lineStart -= 1;
    if (lineStart !== 0 && bytes[lineStart - 1] !== LF) continue;
    pieces.push(bytes.subarray(copied, lineStart), Buffer.from('>'));
    copied = lineStart;
  }
  pieces.push(bytes.subarray(copied));
  return pieces;
}
