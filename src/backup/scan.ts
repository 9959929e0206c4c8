// Finding blobs by their data files' own record headers, when the map of index files is damaged
// (docs/BACKUP.md, "Damaged index files"). Every record carries its blob id in a CRC-checked
// 48-byte header, so the data files no readable index file names can be walked header by header
// (restic's `repair index`). A scan only says where a record claims to be: the record is trusted
// only once it is read and verified like any other (decodeRecord: header, length, GCM tag, BLAKE3).
import { crc32 } from 'node:zlib';
import { fromSystemError } from '../errors.js';
import type { FileHandle } from '../fs/filesystem.js';
import { backupLimits } from '../limits.js';
import { DATA_HEADER_BYTES, RECORD_HEADER_BYTES, RECORD_MAGIC } from './format.js';
import { openRepositoryFile } from './repository-read.js';
import { listIn, type BlobEntry, type Repository } from './repository.js';

/** One record a header claims: its blob id (hex), the offset of its header, its stored length. */
export interface ScannedRecord {
  id: Buffer;
  offset: number;
  length: number;
}

export interface ScanResult {
  /** Blob id (hex) -> the places records claim it (more than one: copies in several files). */
  places: Map<string, BlobEntry[]>;
  /** The data files walked (those no readable index file names). */
  files: string[];
  /** Records whose header checked. */
  records: number;
  /** Stretches of bytes between records that held no record header that checks (damage, or a cut-off end). */
  damagedStretches: number;
}

/**
 * The records of one data file, header by header: each header's magic and CRC checked, and its
 * stored length within the file; after one that does not check, the next "MSBR" whose header does
 * (a damaged header costs its record, not the rest of the file). Streaming: one window of
 * `scanWindowBytes` is held, a record's body is skipped, never read.
 */
export async function* scanRecords(handle: FileHandle, size: number, path: string, stats: { damagedStretches: number } = { damagedStretches: 0 }): AsyncGenerator<ScannedRecord> {
  const window = new Window(handle, size, path);
  let offset = DATA_HEADER_BYTES; // a damaged data header is no reason to skip the records after it
  let inDamage = false;
  while (offset + RECORD_HEADER_BYTES <= size) {
    const header = await window.bytes(offset, RECORD_HEADER_BYTES);
    if (header.length < RECORD_HEADER_BYTES) break; // the file shrank meanwhile
    const length = headerLength(header);
    if (length !== undefined && offset + RECORD_HEADER_BYTES + length <= size) {
      inDamage = false;
      yield { id: Buffer.from(header.subarray(4, 36)), offset, length };
      offset += RECORD_HEADER_BYTES + length;
      continue;
    }
    if (!inDamage) stats.damagedStretches++;
    inDamage = true;
    offset = await window.find(RECORD_MAGIC, offset + 1);
  }
  if (offset < size && !inDamage) stats.damagedStretches++; // bytes after the last record that are no record
}

/** The stored length a record header gives when its magic and checksum hold, else undefined. */
function headerLength(header: Buffer): number | undefined {
  if (!header.subarray(0, 4).equals(RECORD_MAGIC) || crc32(header.subarray(0, 44)) !== header.readUInt32BE(44)) return undefined;
  return header.readUInt32BE(40);
}

/**
 * Walks every data file no readable index file names (`named`), once: where their records are.
 * Bounded: only those files, one at a time, one window each.
 */
export async function scanUnnamed(repo: Repository, named: Set<string>): Promise<ScanResult> {
  const result: ScanResult = { places: new Map(), files: [], records: 0, damagedStretches: 0 };
  for (const file of await repo.list('data')) {
    if (named.has(file)) continue;
    const path = repo.path('data', file);
    let handle: FileHandle;
    try {
      handle = await openRepositoryFile(repo.fs, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile (a prune)
      throw fromSystemError(error, 'opening the data file', path);
    }
    try {
      const size = await handle.size();
      result.files.push(file);
      for await (const { id, offset, length } of scanRecords(handle, size, path, result)) {
        listIn(result.places, id.toString('hex')).push({ file, offset, length });
        result.records++;
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
  return result;
}

/** A forward-moving window on a file: headers are read from it, bodies skipped. */
class Window {
  private buffer = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly handle: FileHandle, private readonly size: number, private readonly path: string) {}

  /** `length` bytes at `offset` (within the file). */
  async bytes(offset: number, length: number): Promise<Buffer> {
    if (offset < this.start || offset + length > this.start + this.buffer.length) await this.load(offset, length);
    return this.buffer.subarray(offset - this.start, offset - this.start + length);
  }

  /** The offset of the next `needle` at or after `from`, or the file's size. */
  async find(needle: Buffer, from: number): Promise<number> {
    let at = from;
    while (at + needle.length <= this.size) {
      await this.bytes(at, Math.min(backupLimits.scanWindowBytes, this.size - at));
      if (this.start + this.buffer.length < at + needle.length) break; // the file shrank meanwhile
      const found = this.buffer.indexOf(needle, at - this.start);
      if (found >= 0) return this.start + found;
      at = this.start + this.buffer.length - (needle.length - 1); // a needle across the window's end
      if (this.start + this.buffer.length >= this.size) break;
    }
    return this.size;
  }

  private async load(offset: number, length: number): Promise<void> {
    const want = Math.min(Math.max(length, backupLimits.scanWindowBytes), this.size - offset);
    if (this.buffer.length !== want) this.buffer = Buffer.alloc(want);
    let got = 0;
    try {
      while (got < want) {
        const n = await this.handle.read(this.buffer, got, want - got, offset + got);
        if (n === 0) break;
        got += n;
      }
    } catch (error) {
      throw fromSystemError(error, 'reading the data file', this.path);
    }
    this.start = offset;
    if (got < want) this.buffer = this.buffer.subarray(0, got); // shrank meanwhile: the rest is not there
  }
}
