// File-level verification of the index's LevelDB tables: every block's CRC32C, the way LevelDB's
// table/format.cc lays a table out (docs/FORMAT.md, "Index: LevelDB's own checksums").
//
// Why: LevelDB verifies block checksums only when asked (ReadOptions.verify_checksums, and the
// filter block not even then without paranoid_checks, which classic-level does not expose), so a
// flipped bit in a table's bloom filter or index block hides entries from point lookups while
// iteration still sees them (damage explorer, session 8). Reading each live table once, in order,
// and checking every block's stored CRC finds any such flip without a lookup per entry.
//
// A table: data blocks, the filter block, the metaindex block, the index block, each followed by a
// 5-byte trailer (compression type, masked CRC32C of the block's bytes and the type byte), then a
// 48-byte footer (metaindex and index block handles, padding, magic). The blocks tile the file:
// the index block names every data block; the filter block fills the gap before the metaindex.
// Which tables are live comes from the MANIFEST CURRENT names (a LevelDB log of version edits):
// a table a compaction is still writing is not in it yet, and is not read.
import { join } from 'node:path';
import { fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { loadCrc32c, maskCrc, type Crc32c } from './crc32c.js';

const FOOTER_BYTES = 48;
/** The footer's handles and padding: the magic follows. */
const FOOTER_HANDLES_BYTES = 40;
/** 0xdb4775248b80fb57, little-endian (table/format.h, kTableMagicNumber). */
const TABLE_MAGIC = Buffer.from([0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb]);
const BLOCK_TRAILER_BYTES = 5;
const NO_COMPRESSION = 0;
const SNAPPY = 1;
/** A decompressed block bigger than this is damage (LevelDB's blocks are ~4 KiB; its tables ~2 MiB). */
const BLOCK_BYTES_MAX = 64 * 1024 * 1024;
/** LevelDB's log format (db/log_format.h): 32 KiB blocks of records with a 7-byte header. */
const LOG_BLOCK_BYTES = 32768;
const LOG_HEADER_BYTES = 7;

/** A file of the index that fails verification, and why. */
export interface IndexFileDamage {
  file: string;
  detail: string;
}

export interface IndexFilesCheck {
  tables: number;
  bytes: number;
  damage: IndexFileDamage[];
}

class FormatError extends Error {}

/** Bounds-checked reads of LevelDB's encodings (util/coding.h). */
class Reader {
  constructor(private readonly bytes: Uint8Array, public pos: number, private readonly end: number) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new FormatError('runs past its end');
    return this.bytes[this.pos++];
  }

  /** A varint up to 64 bits, as a number (offsets and sizes stay far below 2^53). */
  varint(): number {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new FormatError('a varint runs over 10 bytes');
  }

  uintLE(n: number): number {
    let value = 0;
    for (let k = 0; k < n; k++) value += this.byte() * 2 ** (8 * k);
    return value;
  }

  take(n: number): Uint8Array {
    if (n > this.end - this.pos) throw new FormatError('runs past its end');
    this.pos += n;
    return this.bytes.subarray(this.pos - n, this.pos);
  }

  handle(): BlockHandle {
    return { offset: this.varint(), size: this.varint() };
  }
}

export interface BlockHandle {
  offset: number;
  size: number;
}

/** Snappy's raw format (format_description.txt), as LevelDB compresses blocks. */
export function snappyUncompress(input: Uint8Array): Buffer {
  const r = new Reader(input, 0, input.length);
  const length = r.varint();
  if (length > BLOCK_BYTES_MAX) throw new FormatError(`a compressed block claims ${length} bytes`);
  const out = Buffer.alloc(length);
  let o = 0;
  while (!r.done) {
    const tag = r.byte();
    let len: number;
    let offset: number;
    if ((tag & 3) === 0) {
      len = tag >>> 2;
      if (len >= 60) len = r.uintLE(len - 59);
      len += 1;
      if (o + len > length) throw new FormatError('a literal runs past the block');
      out.set(r.take(len), o);
      o += len;
      continue;
    }
    if ((tag & 3) === 1) {
      len = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | r.byte();
    } else {
      len = (tag >>> 2) + 1;
      offset = r.uintLE((tag & 3) === 2 ? 2 : 4);
    }
    if (offset === 0 || offset > o || o + len > length) throw new FormatError('a copy reaches outside the block');
    for (let k = 0; k < len; k++) out[o + k] = out[o + k - offset]; // copies may overlap their source
    o += len;
  }
  if (o !== length) throw new FormatError(`a compressed block holds ${o} of its ${length} bytes`);
  return out;
}

/** The block's stored CRC against its bytes and type byte; its contents, uncompressed when `contents` (only the index block's are read). */
function readBlock(table: Buffer, handle: BlockHandle, end: number, crc: Crc32c, what: string, contents = false): Buffer {
  const { offset, size } = handle;
  if (offset + size + BLOCK_TRAILER_BYTES > end) throw new FormatError(`the ${what} at ${offset} (${size} bytes) runs past ${end}`);
  const stored = table.readUInt32LE(offset + size + 1);
  const actual = maskCrc(crc(table.subarray(offset, offset + size + 1)));
  if (stored !== actual) throw new FormatError(`the ${what} at ${offset} (${size} bytes) fails its CRC32C`);
  const type = table[offset + size];
  if (type !== NO_COMPRESSION && type !== SNAPPY) throw new FormatError(`the ${what} at ${offset} has compression type ${type}`);
  if (type === NO_COMPRESSION || !contents) return table.subarray(offset, offset + size);
  return snappyUncompress(table.subarray(offset, offset + size));
}

/** The values of a block's entries (table/block.cc): the index block's are data block handles. */
function blockValues(block: Buffer): Uint8Array[] {
  if (block.length < 4) throw new FormatError('a block shorter than its restart count');
  const restarts = block.readUInt32LE(block.length - 4);
  const end = block.length - 4 - 4 * restarts;
  if (end < 0) throw new FormatError('a block with more restarts than bytes');
  const r = new Reader(block, 0, end);
  const values: Uint8Array[] = [];
  while (!r.done) {
    r.varint(); // bytes shared with the previous key
    const unshared = r.varint();
    const valueLength = r.varint();
    r.take(unshared);
    values.push(r.take(valueLength));
  }
  return values;
}

/** Where a table's blocks are (each handle: the block's bytes, its 5-byte trailer follows). */
export interface TableLayout {
  data: BlockHandle[];
  filter?: BlockHandle;
  metaindex: BlockHandle;
  index: BlockHandle;
}

/** Reads a table's layout, checking every block against its CRC and the blocks tiling the file; throws FormatError. */
function tableLayout(table: Buffer, crc: Crc32c): TableLayout {
  if (table.length < FOOTER_BYTES) throw new FormatError(`${table.length} bytes, shorter than a table's footer`);
  const footerAt = table.length - FOOTER_BYTES;
  if (!table.subarray(footerAt + FOOTER_HANDLES_BYTES).equals(TABLE_MAGIC)) throw new FormatError('the footer has no table magic');
  const footer = new Reader(table, footerAt, footerAt + FOOTER_HANDLES_BYTES);
  const metaindex = footer.handle();
  const index = footer.handle();
  if (index.offset + index.size + BLOCK_TRAILER_BYTES !== footerAt) throw new FormatError('the index block does not end at the footer');
  if (metaindex.offset + metaindex.size + BLOCK_TRAILER_BYTES !== index.offset) throw new FormatError('the metaindex block does not end at the index block');
  readBlock(table, metaindex, index.offset, crc, 'metaindex block');
  const data: BlockHandle[] = [];
  let next = 0; // data blocks follow each other from the file's start
  for (const value of blockValues(readBlock(table, index, footerAt, crc, 'index block', true))) {
    const handle = new Reader(value, 0, value.length).handle();
    if (handle.offset !== next) throw new FormatError(`a data block at ${handle.offset}, expected at ${next}`);
    readBlock(table, handle, metaindex.offset, crc, 'data block');
    data.push(handle);
    next = handle.offset + handle.size + BLOCK_TRAILER_BYTES;
  }
  if (next === metaindex.offset) return { data, metaindex, index };
  // the filter block (never compressed) fills the gap up to the metaindex
  if (metaindex.offset - next < BLOCK_TRAILER_BYTES) throw new FormatError(`${metaindex.offset - next} bytes between the data blocks and the metaindex block`);
  const filter = { offset: next, size: metaindex.offset - next - BLOCK_TRAILER_BYTES };
  readBlock(table, filter, metaindex.offset, crc, 'filter block');
  return { data, filter, metaindex, index };
}

/** A sound table's layout; undefined when it fails verification (tests use it to aim damage). */
export function readTableLayout(table: Buffer, crc: Crc32c): TableLayout | undefined {
  try {
    return tableLayout(table, crc);
  } catch (error) {
    if (error instanceof FormatError) return undefined;
    throw error;
  }
}

/** Every block of one table checked against its CRC, and the blocks tiling the file: undefined when sound, else why not. */
export function verifyTable(table: Buffer, crc: Crc32c): string | undefined {
  try {
    tableLayout(table, crc);
    return undefined;
  } catch (error) {
    if (error instanceof FormatError) return error.message;
    throw error;
  }
}

/** The records of a LevelDB log (db/log_reader.cc), each CRC-checked; a record the writer has not finished ends it. */
function logRecords(log: Buffer, crc: Crc32c): Buffer[] {
  const records: Buffer[] = [];
  let fragments: Uint8Array[] | undefined;
  let pos = 0;
  while (pos + LOG_HEADER_BYTES <= log.length) {
    const left = LOG_BLOCK_BYTES - (pos % LOG_BLOCK_BYTES);
    const length = log.readUInt16LE(pos + 4);
    const type = log[pos + 6];
    if (left < LOG_HEADER_BYTES || (type === 0 && length === 0)) {
      pos += left; // a block's zeroed tail
      continue;
    }
    if (pos + LOG_HEADER_BYTES + length > log.length) break; // the tail being appended
    if (LOG_HEADER_BYTES + length > left) throw new FormatError(`the record at ${pos} runs past its block`);
    if (log.readUInt32LE(pos) !== maskCrc(crc(log.subarray(pos + 6, pos + LOG_HEADER_BYTES + length)))) throw new FormatError(`the record at ${pos} fails its CRC32C`);
    const data = log.subarray(pos + LOG_HEADER_BYTES, pos + LOG_HEADER_BYTES + length);
    pos += LOG_HEADER_BYTES + length;
    if (type === 1) records.push(data); // FULL
    else if (type === 2) fragments = [data]; // FIRST
    else if (type === 3 && fragments) fragments.push(data); // MIDDLE
    else if (type === 4 && fragments) {
      records.push(Buffer.concat([...fragments, data])); // LAST
      fragments = undefined;
    } else throw new FormatError(`the record at ${pos} has type ${type} out of place`);
  }
  return records;
}

/** Applies one version edit (db/version_edit.cc): table number to its level and size. */
function applyEdit(edit: Uint8Array, live: Map<number, { level: number; size: number }>): void {
  const r = new Reader(edit, 0, edit.length);
  while (!r.done) {
    const tag = r.varint();
    if (tag === 1) r.take(r.varint()); // comparator name
    else if (tag === 2 || tag === 3 || tag === 4 || tag === 9) r.varint(); // log, next file, last sequence, previous log
    else if (tag === 5) { r.varint(); r.take(r.varint()); } // compaction pointer: level, key
    else if (tag === 6) {
      const level = r.varint();
      const number = r.varint();
      if (live.get(number)?.level === level) live.delete(number);
    } else if (tag === 7) {
      const level = r.varint();
      const number = r.varint();
      const size = r.varint();
      r.take(r.varint()); // smallest key
      r.take(r.varint()); // largest key
      live.set(number, { level, size });
    } else throw new FormatError(`a version edit with tag ${tag}`);
  }
}

/** The live tables (number to size), from the MANIFEST CURRENT names; or the damage that prevents knowing them. */
async function liveTables(fs: FileSystem, dir: string, crc: Crc32c): Promise<Map<number, number> | IndexFileDamage> {
  const current = (await readIndexFile(fs, join(dir, 'CURRENT')))?.toString('latin1') ?? '';
  const name = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (!name) return { file: 'CURRENT', detail: `does not name a MANIFEST (${JSON.stringify(current.slice(0, 40))})` };
  const manifest = await readIndexFile(fs, join(dir, name));
  if (!manifest) return { file: name, detail: 'CURRENT names it and it is missing' };
  const live = new Map<number, { level: number; size: number }>();
  try {
    for (const edit of logRecords(manifest, crc)) applyEdit(edit, live);
  } catch (error) {
    if (error instanceof FormatError) return { file: name, detail: error.message };
    throw error;
  }
  return new Map([...live].map(([number, { size }]) => [number, size]));
}

/** A file's bytes; undefined when it does not exist (a compaction deleted it). */
async function readIndexFile(fs: FileSystem, path: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'reading the index file', path);
  }
}

/** A table's bytes under its name (LevelDB reads the older .sst name too); undefined when it is gone. */
async function readTable(fs: FileSystem, dir: string, number: number): Promise<{ file: string; bytes: Buffer } | undefined> {
  for (const ext of ['ldb', 'sst']) {
    const file = `${String(number).padStart(6, '0')}.${ext}`;
    const bytes = await readIndexFile(fs, join(dir, file));
    if (bytes) return { file, bytes };
  }
  return undefined;
}

/**
 * Verifies the index's LevelDB files in `dir` (the MANIFEST's records, then every live table's
 * blocks), one file at a time. A table a compaction deleted meanwhile is skipped (its entries are
 * in the tables that replaced it); one the MANIFEST still lists and that is gone is damage. The
 * MANIFEST is read again before calling it damaged: LevelDB may have been appending to it.
 */
export async function checkIndexFiles(fs: FileSystem, dir: string): Promise<IndexFilesCheck> {
  const crc = await loadCrc32c();
  let live = await liveTables(fs, dir, crc);
  if (!(live instanceof Map)) live = await liveTables(fs, dir, crc);
  if (!(live instanceof Map)) return { tables: 0, bytes: 0, damage: [live] };
  const result: IndexFilesCheck = { tables: 0, bytes: 0, damage: [] };
  for (const [number, size] of [...live].sort((a, b) => a[0] - b[0])) {
    const table = await readTable(fs, dir, number);
    if (!table) {
      const now = await liveTables(fs, dir, crc);
      if (!(now instanceof Map) || now.has(number)) result.damage.push({ file: `${String(number).padStart(6, '0')}.ldb`, detail: 'the MANIFEST lists this table and it is missing' });
      continue;
    }
    result.tables++;
    result.bytes += table.bytes.length;
    const why = table.bytes.length !== size ? `${table.bytes.length} bytes, the MANIFEST says ${size}` : verifyTable(table.bytes, crc);
    if (why) result.damage.push({ file: table.file, detail: why });
  }
  return result;
}
