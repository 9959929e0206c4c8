// TEST-ONLY ORACLE: the mbox reader exactly as it was before the native-search rewrite of
// src/formats/mbox.ts (commit 3a42603), kept unchanged so mbox-differential.test.ts can check that
// the new reader returns the same messages, warnings, indexes and offsets byte for byte. It walks
// every line in JS, which is slow but obviously right. Do not optimise or import it from src/.
import type { FileHandle, FileSystem } from '../../src/fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../../src/errors.js';
import { limits } from '../../src/limits.js';
import { type MboxMessage, type MboxWarning, type ReadMboxOptions, parseFromLineDate } from '../../src/formats/mbox.js';

const LF = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const FROM_SPACE = Buffer.from('From ', 'latin1');

/**
 * Streams the messages of an mbox file.
 *
 * `auto` reads as mboxrd: the two styles differ only on lines `>>From ` (two or more `>`), which
 * mboxrd unquotes by one `>` and mboxo leaves alone. Such lines are rare in real mail, and when an
 * mboxo file has one, mboxrd's reading is off by one `>` on one line, whereas guessing mboxo for
 * an mboxrd file would corrupt every `>>From ` line it quoted; no byte pattern tells them apart.
 */
export async function* readMboxOracle(
  fs: FileSystem, path: string, options: ReadMboxOptions = {},
): AsyncGenerator<MboxMessage> {
  const chunkBytes = options.chunkBytes ?? limits.readChunkBytes;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw new MailstoreError('INVALID', `chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const stat = await fs.stat(path).catch((error) => { throw fromSystemError(error, 'stat mbox', path); });
  if (!stat.isFile) throw new MailstoreError('INVALID', `not a regular file: ${path}`, { path });
  const handle = await fs.open(path, 'read').catch((error) => { throw fromSystemError(error, 'open mbox', path); });
  const parser = new OracleMboxParser(
    options.style === 'mboxo' ? 'mboxo' : 'mboxrd',
    options.messageBytesMax ?? limits.messageBytesMax,
    options.onWarning ?? (() => {}),
  );
  try {
    let position = 0;
    for (;;) {
      // A fresh buffer each time: message pieces keep references into it until the message ends.
      const chunk = Buffer.allocUnsafe(chunkBytes);
      const bytesRead = await readAt(handle, chunk, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      yield* parser.push(chunk.subarray(0, bytesRead));
    }
    yield* parser.end();
  } finally {
    await handle.close();
  }
}

async function readAt(handle: FileHandle, chunk: Buffer, position: number): Promise<number> {
  try {
    return await handle.read(chunk, 0, chunk.length, position);
  } catch (error) {
    throw fromSystemError(error, 'read mbox', handle.path);
  }
}

interface OpenMessage {
  offset: number;
  index: number;
  fromLine: Buffer;
  pieces: Buffer[];
  bytes: number;
  oversized: boolean;
}

type LineKind = 'from' | 'quoted' | 'plain' | 'undecided';

/** The streaming state machine: chunks in, finished messages out. Lines are classified at their start only. */
class OracleMboxParser {
  private carry: Buffer | undefined;
  private carryOffset = 0;
  private fileOffset = 0;
  private midLine = false;
  private current: OpenMessage | undefined;
  private garbageBytes = 0;
  private garbageReported = false;
  private nextIndex = 0;

  constructor(
    private readonly style: 'mboxrd' | 'mboxo',
    private readonly messageBytesMax: number,
    private readonly onWarning: (warning: MboxWarning) => void,
  ) {}

  push(chunk: Buffer): MboxMessage[] {
    const done: MboxMessage[] = [];
    let buffer = chunk;
    let base = this.fileOffset;
    if (this.carry) {
      buffer = Buffer.concat([this.carry, chunk]);
      base = this.carryOffset;
      this.carry = undefined;
    }
    this.fileOffset += chunk.length;
    this.scan(buffer, base, done);
    return done;
  }

  end(): MboxMessage[] {
    const done: MboxMessage[] = [];
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

  private scan(buffer: Buffer, base: number, done: MboxMessage[]): void {
    let pos = 0;
    if (this.midLine) {
      const newline = buffer.indexOf(LF, pos);
      if (newline < 0) {
        this.emit(buffer, pos, buffer.length);
        return;
      }
      this.emit(buffer, pos, newline + 1);
      pos = newline + 1;
      this.midLine = false;
    }
    let runStart = pos;
    while (pos < buffer.length) {
      const kind = this.classify(buffer, pos);
      if (kind === 'undecided') {
        this.emit(buffer, runStart, pos);
        this.keepCarry(buffer, pos, base);
        return;
      }
      if (kind === 'from') {
        const newline = buffer.indexOf(LF, pos);
        if (newline < 0) {
          this.emit(buffer, runStart, pos);
          this.keepCarry(buffer, pos, base);
          return;
        }
        this.emit(buffer, runStart, pos);
        this.startMessage(buffer.subarray(pos, newline + 1), base + pos, done);
        pos = newline + 1;
        runStart = pos;
        continue;
      }
      if (kind === 'quoted') {
        this.emit(buffer, runStart, pos);
        pos += 1;
        runStart = pos;
      }
      const newline = buffer.indexOf(LF, pos);
      if (newline < 0) {
        this.emit(buffer, runStart, buffer.length);
        this.midLine = true;
        return;
      }
      pos = newline + 1;
    }
    this.emit(buffer, runStart, pos);
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
  }

  private startMessage(fromLine: Buffer, offset: number, done: MboxMessage[]): void {
    this.finishMessage(done);
    this.reportGarbage();
    this.current = {
      offset, index: this.nextIndex, fromLine: Buffer.from(fromLine), pieces: [], bytes: 0, oversized: false,
    };
    this.nextIndex += 1;
  }

  private finishMessage(done: MboxMessage[]): void {
    const message = this.current;
    if (!message) return;
    this.current = undefined;
    const crlf = message.fromLine.length >= 2 && message.fromLine[message.fromLine.length - 2] === CR;
    // A message inside one read chunk is a view of it (no copy): chunks are never reused.
    let bytes = message.pieces.length === 1 && !message.oversized ? message.pieces[0] : Buffer.concat(message.pieces, message.oversized ? 0 : message.bytes);
    if (message.oversized) {
      this.onWarning({ kind: 'tooLarge', index: message.index, offset: message.offset, bytes: message.bytes });
      return;
    }
    bytes = bytes.subarray(0, bytes.length - terminatorLength(bytes, crlf));
    if (bytes.length > this.messageBytesMax) {
      this.onWarning({ kind: 'tooLarge', index: message.index, offset: message.offset, bytes: bytes.length });
      return;
    }
    done.push({
      bytes,
      internalDate: parseFromLineDate(fromLineText(message.fromLine)),
      flags: flagsFromStatusHeadersOracle(bytes),
      index: message.index,
      offset: message.offset,
    });
  }

  private reportGarbage(): void {
    if (this.garbageReported) return;
    this.garbageReported = true;
    if (this.garbageBytes > 0) this.onWarning({ kind: 'leadingGarbage', bytes: this.garbageBytes });
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
// Status / X-Status headers (as they were)

const STATUS_FLAGS: Record<string, string> = { R: '\\Seen' };
const X_STATUS_FLAGS: Record<string, string> = { A: '\\Answered', F: '\\Flagged', T: '\\Draft', D: '\\Deleted' };

/** The byte length of the header block (up to, not including, the empty line), or the whole message. */
function headerBlockLength(bytes: Buffer): number {
  if (bytes[0] === LF || (bytes[0] === CR && bytes[1] === LF)) return 0;
  let pos = 0;
  for (;;) {
    const newline = bytes.indexOf(LF, pos);
    if (newline < 0) return bytes.length;
    const next = newline + 1;
    if (bytes[next] === LF || (bytes[next] === CR && bytes[next + 1] === LF)) return next;
    pos = next;
  }
}

/** Flags from `Status:` (R = seen; O = merely old) and `X-Status:` (A, F, T, D), sorted. */
export function flagsFromStatusHeadersOracle(bytes: Buffer): string[] {
  const headers = bytes.subarray(0, headerBlockLength(bytes)).toString('latin1');
  const flags = new Set<string>();
  for (const [header, table] of [['status', STATUS_FLAGS], ['x-status', X_STATUS_FLAGS]] as const) {
    const match = new RegExp(`^${header}:[ \\t]*([^\\r\\n]*)`, 'im').exec(headers);
    for (const letter of match?.[1] ?? '') {
      const flag = table[letter.toUpperCase()];
      if (flag) flags.add(flag);
    }
  }
  return [...flags].sort();
}
