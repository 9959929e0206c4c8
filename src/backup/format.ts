// The byte formats of a backup repository (docs/BACKUP.md): metadata files (index, snapshot)
// and data files of blob records. Every file is named by the BLAKE3 of its whole content, so
// any damage is found without a key; each record also carries its own checksums, so a restore
// that reads one blob needs nothing else of its data file.
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompressSync, constants as zlibConstants, crc32, deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { MailstoreError } from '../errors.js';
import { checkCborBounds } from '../index/cbor-bounds.js';
import { encodeCbor, decodeCbor } from '../index/codec.js';
import { HASH_BYTES, hashBytes } from '../hash/blake3.js';
import { backupLimits, limits } from '../limits.js';
import { NONCE_BYTES, TAG_BYTES, seal, unseal, type RepositoryKeys } from './crypto.js';
import { zstdCompress, zstdDecompress } from './zstd.js';

/** The version byte of every metadata and data file (unchanged by repository version 2)... */
export const FORMAT_VERSION = 1;
/**
 * ...but a delta snapshot file's (delta.ts): older mailstore refuses it (INVALID, "format version 2
 * is not supported") instead of reading its mailbox list as a whole state without messages.
 */
export const DELTA_FORMAT_VERSION = 2;
/**
 * The repository's version (its config): 1 stores blobs deflated, 2 with Brotli, 3 (new
 * repositories) with zstd (Brotli where the zstd binary does not load: zstd.ts). Versions 1 and 2
 * are still read and written with their own codec (so the mailstore that made them reads them
 * too); older mailstore refuses a newer version by its config before reading anything.
 */
export const REPO_VERSIONS = [1, 2, 3] as const;
export const REPO_VERSION_NEW = 3;
/** How a blob's bytes are compressed in its record. */
export type BlobCodec = 'deflate' | 'brotli' | 'zstd';

/** Kinds of metadata file; the kind is authenticated with the content, so one cannot stand in for another. */
export const FILE_KIND = { index: 1, snapshot: 2, tip: 3, held: 4, heal: 5 } as const;
export type FileKind = keyof typeof FILE_KIND;

const FILE_MAGIC = Buffer.from('MSBF');
export const FILE_HEADER_BYTES = 16;
const DATA_MAGIC = Buffer.from('MSBD');
export const DATA_HEADER_BYTES = 12;
export const RECORD_MAGIC = Buffer.from('MSBR');
export const RECORD_HEADER_BYTES = 48;
const FLAG_ENCRYPTED = 1;
const FLAG_DEFLATED = 1;
const FLAG_BROTLI = 2;
const FLAG_ZSTD = 4;
const CODEC_FLAG: Record<BlobCodec, number> = { deflate: FLAG_DEFLATED, brotli: FLAG_BROTLI, zstd: FLAG_ZSTD };
const deflateAsync = promisify(deflateRaw);
const brotliAsync = promisify(brotliCompress);

/** A file's name: the hex BLAKE3 of its content. */
export function contentName(bytes: Buffer): string {
  return hashBytes(bytes).toString('hex');
}

export function isContentName(name: string): boolean {
  return /^[0-9a-f]{64}$/.test(name);
}

const corrupt = (path: string, why: string, cause?: unknown) => new MailstoreError('CORRUPT', `${path}: ${why}`, { path, cause });

/**
 * A metadata file: "MSBF" | version u8 | kind u8 | flags u8 | 0 | payload length u32 | crc32 of
 * the 12 bytes before | payload. The payload is deflated CBOR, sealed when the repository is
 * encrypted (the first 8 header bytes are its associated data).
 */
/** zlib's output chunks for a metadata file: at least its default, at most 64 MiB. */
const METADATA_CHUNK_MIN = 16 * 1024;
const METADATA_CHUNK_MAX = 64 * 1024 * 1024;

/**
 * The most bytes a metadata file takes on disk: its payload inflates to at most
 * metadataFileBytesMax, and stored (level 0, a tip) deflate adds 5 bytes per 64 KiB block.
 */
export const METADATA_STORED_BYTES_MAX = backupLimits.metadataFileBytesMax + Math.ceil(backupLimits.metadataFileBytesMax / 8192) + FILE_HEADER_BYTES + 64;

export function encodeMetadataFile(kind: FileKind, value: unknown, keys: RepositoryKeys | undefined, version = FORMAT_VERSION, level: number = backupLimits.deflateLevel): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  FILE_MAGIC.copy(header, 0);
  header[4] = version;
  header[5] = FILE_KIND[kind];
  header[6] = keys ? FLAG_ENCRYPTED : 0;
  // one output chunk (zlib's default 16 KiB chunks are concatenated after: a 1 MB tip at level 0
  // cost ~12 ms against ~2 ms; measured session 12)
  const cbor = encodeCbor(value);
  const plain = deflateRawSync(cbor, { level, chunkSize: Math.min(METADATA_CHUNK_MAX, cbor.length + METADATA_CHUNK_MIN) });
  const payload = keys ? seal(keys, plain, header.subarray(0, 8)) : plain;
  header.writeUInt32BE(payload.length, 8);
  header.writeUInt32BE(crc32(header.subarray(0, 12)), 12);
  return Buffer.concat([header, payload]);
}

/** The errors of whole metadata files sealed under other keys (sealedUnderOtherKeys). */
const otherKeys = new WeakSet<object>();

/**
 * A metadata file whose name is its content's hash was written whole by a writer; when it fails
 * authentication all the same, it was sealed under other keys: another repository's file, or the
 * config is another repository's (one made with the same key file: its key check passes). Still
 * CORRUPT for whoever reads it, but check tells it from damage (check.ts) and prune and repair
 * refuse when no file fits the config.
 */
function unsealWhole(keys: RepositoryKeys, payload: Buffer, aad: Buffer, kind: FileKind, path: string): Buffer {
  try {
    return unseal(keys, payload, aad, `the ${kind} file`, path);
  } catch (error) {
    const foreign = new MailstoreError('CORRUPT', `${path}: the ${kind} file is whole (its name is its content's hash) but sealed under other keys than this config's: it is another repository's, or this config is (one made with the same key file)`, { path, cause: error });
    otherKeys.add(foreign);
    throw foreign;
  }
}

/** Whether `error` is a whole metadata file sealed under other keys than the config's (not damage). */
export function sealedUnderOtherKeys(error: unknown): boolean {
  return typeof error === 'object' && error !== null && otherKeys.has(error);
}

/** Whether a metadata file's header (magic and CRC checked) says it is sealed; undefined when it is no such header. */
export function metadataFileSealed(bytes: Buffer): boolean | undefined {
  if (bytes.length < FILE_HEADER_BYTES || !bytes.subarray(0, 4).equals(FILE_MAGIC) || crc32(bytes.subarray(0, 12)) !== bytes.readUInt32BE(12)) return undefined;
  return (bytes[6]! & FLAG_ENCRYPTED) !== 0;
}

/** Verifies the name, the header and (sealed) the authentication; CORRUPT otherwise, INVALID for a missing key. */
export function decodeMetadataFile<T>(kind: FileKind, bytes: Buffer, name: string, path: string, keys: RepositoryKeys | undefined): T {
  if (contentName(bytes) !== name) throw corrupt(path, 'content does not match its name (damaged)');
  if (bytes.length < FILE_HEADER_BYTES || !bytes.subarray(0, 4).equals(FILE_MAGIC)) throw corrupt(path, 'not a backup metadata file');
  if (crc32(bytes.subarray(0, 12)) !== bytes.readUInt32BE(12)) throw corrupt(path, 'header checksum mismatch');
  if (bytes[4] !== FORMAT_VERSION && !(bytes[4] === DELTA_FORMAT_VERSION && kind === 'snapshot')) throw new MailstoreError('INVALID', `${path}: format version ${bytes[4]} is not supported`, { path });
  if (bytes[5] !== FILE_KIND[kind]) throw corrupt(path, `not a ${kind} file`);
  if (bytes.readUInt32BE(8) !== bytes.length - FILE_HEADER_BYTES) throw corrupt(path, 'length mismatch (truncated?)');
  const encrypted = (bytes[6] & FLAG_ENCRYPTED) !== 0;
  if (encrypted !== Boolean(keys)) throw new MailstoreError('INVALID', `${path}: ${encrypted ? 'encrypted, but no key was given' : 'not encrypted, but the repository is'}`, { path });
  const payload = bytes.subarray(FILE_HEADER_BYTES);
  const plain = keys ? unsealWhole(keys, payload, bytes.subarray(0, 8), kind, path) : payload;
  const undecodable = (error: unknown) => new MailstoreError('CORRUPT', `${path}: cannot decode the ${kind} file`, { path, cause: error });
  let cbor: Buffer;
  try {
    // output chunks of 4x the input, at most 64 MiB (one for a tip, stored at level 0): fewer chunks to concatenate
    const chunkSize = Math.min(METADATA_CHUNK_MAX, Math.max(METADATA_CHUNK_MIN, plain.length * 4));
    cbor = inflateRawSync(plain, { maxOutputLength: backupLimits.metadataFileBytesMax, chunkSize });
  } catch (error) {
    throw undecodable(error);
  }
  // an unencrypted repository's file is checked by its name only: anyone who may write it may write any CBOR
  checkCborBounds(cbor, backupLimits.metadataDecodedBytesPerByteMax, path);
  try {
    return decodeCbor<T>(cbor);
  } catch (error) {
    throw undecodable(error);
  }
}

/** A data file's header: "MSBD" | version u8 | flags u8 | 0 0 | crc32 of the 8 bytes before. */
export function encodeDataHeader(encrypted: boolean): Buffer {
  const header = Buffer.alloc(DATA_HEADER_BYTES);
  DATA_MAGIC.copy(header, 0);
  header[4] = FORMAT_VERSION;
  header[5] = encrypted ? FLAG_ENCRYPTED : 0;
  header.writeUInt32BE(crc32(header.subarray(0, 8)), 8);
  return header;
}

export function checkDataHeader(bytes: Buffer, path: string): void {
  if (bytes.length < DATA_HEADER_BYTES || !bytes.subarray(0, 4).equals(DATA_MAGIC) || crc32(bytes.subarray(0, 8)) !== bytes.readUInt32BE(8)) {
    throw corrupt(path, 'not a backup data file, or its header is damaged');
  }
}

/**
 * One blob record: "MSBR" | blob id 32 | flags u8 | 0 0 0 | stored length u32 | crc32 of the 44
 * bytes before | stored bytes (the message, compressed when that saves enough: flag 1 deflate,
 * flag 2 Brotli, flag 4 zstd; sealed with the blob id as associated data when encrypted).
 */
export async function encodeRecord(id: Buffer, bytes: Buffer, keys: RepositoryKeys | undefined, codec: BlobCodec = 'brotli'): Promise<Buffer[]> {
  return sealRecord(id, bytes, await compress(bytes, codec), codec, keys);
}

/**
 * The record of a blob whose compressed bytes are known (a compression worker made them): its
 * header and its stored body. `headroom`: the bytes just before `compressed` in its buffer are free
 * (compress-pool.ts Compressed.headroom); when the body stored is `compressed` as it is, the header
 * is written there, so the two parts lie together (the data file's writer joins them).
 */
export function sealRecord(id: Buffer, bytes: Buffer, compressed: Buffer, codec: BlobCodec, keys: RepositoryKeys | undefined, headroom = 0): Buffer[] {
  const worth = compressed.length <= bytes.length * (1 - backupLimits.compressSavingMin);
  const body = worth ? compressed : bytes;
  const stored = keys ? seal(keys, body, id) : body;
  const inPlace = stored === compressed && headroom >= RECORD_HEADER_BYTES;
  const header = inPlace ? Buffer.from(compressed.buffer, compressed.byteOffset - RECORD_HEADER_BYTES, RECORD_HEADER_BYTES) : Buffer.alloc(RECORD_HEADER_BYTES);
  RECORD_MAGIC.copy(header, 0);
  id.copy(header, 4);
  header.fill(0, 36, 40); // the room is reused memory: the flags' word whole
  header[36] = worth ? CODEC_FLAG[codec] : 0;
  header.writeUInt32BE(stored.length, 40);
  header.writeUInt32BE(crc32(header.subarray(0, 44)), 44);
  return [header, stored];
}

/**
 * On the thread pool (several blobs at once, so both cores work), into one output chunk: the
 * 16 KiB default makes a round trip to the main thread per chunk (measured ~7 % more CPU).
 * Brotli quality 0 compresses mail about as small as deflate level 1 at ~4-5x its speed
 * (measured on the bench corpus, docs/BACKUP.md "Compression"). A backup compresses on worker
 * threads (compress-pool.ts); this is for single blobs.
 */
function compress(bytes: Buffer, codec: BlobCodec): Promise<Buffer> {
  if (codec === 'zstd') return zstdCompress(bytes);
  const chunkSize = Math.max(64 * 1024, bytes.length + 1024);
  if (codec === 'deflate') return deflateAsync(bytes, { level: backupLimits.deflateLevel, chunkSize });
  return brotliAsync(bytes, {
    chunkSize,
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: backupLimits.brotliQuality,
      [zlibConstants.BROTLI_PARAM_LGWIN]: backupLimits.brotliWindowBits,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
      [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_TEXT,
    },
  });
}

/**
 * The lowest repository version whose writers store a record of this header's codec (zstd 3,
 * Brotli 2, deflate 1; 0 for a record stored as it is, which any version writes), or undefined
 * when the header does not check (magic, CRC). A repository whose config is lost says its version
 * only through its records (new-config.ts).
 */
export function recordHeaderVersion(header: Buffer): number | undefined {
  if (header.length < RECORD_HEADER_BYTES || !header.subarray(0, 4).equals(RECORD_MAGIC) || crc32(header.subarray(0, 44)) !== header.readUInt32BE(44)) return undefined;
  const flags = header[36]!;
  return (flags & FLAG_ZSTD) !== 0 ? 3 : (flags & FLAG_BROTLI) !== 0 ? 2 : (flags & FLAG_DEFLATED) !== 0 ? 1 : 0;
}

async function decompress(body: Buffer, flags: number, bytesMax: number): Promise<Buffer> {
  if ((flags & FLAG_ZSTD) !== 0) return zstdDecompress(body, bytesMax);
  const maxOutputLength = Math.max(1, bytesMax); // zlib takes no 0 (an empty message is never stored compressed)
  if ((flags & FLAG_BROTLI) !== 0) return brotliDecompressSync(body, { maxOutputLength });
  return (flags & FLAG_DEFLATED) !== 0 ? inflateRawSync(body, { maxOutputLength }) : body;
}

/** The most stored bytes a record holds: the largest message any store takes, sealed. */
export const RECORD_STORED_BYTES_MAX = limits.messageBytesSettingMax + NONCE_BYTES + TAG_BYTES;

/** The length the record of `storedLength` bytes takes in its data file. */
export function recordBytes(storedLength: number): number {
  return RECORD_HEADER_BYTES + storedLength;
}

/**
 * The message bytes of the record read at an index entry (header and stored bytes), verified:
 * header checksum, the id the index expects, the length, authentication when sealed, and, when
 * the store hash is known, the BLAKE3 of the bytes. CORRUPT otherwise, never wrong bytes.
 * `bytesMax`: the message's size where its snapshot says it, so decompression stops there; else
 * the largest message any store takes (a store may be opened with more than the default limit).
 */
export async function decodeRecord(record: Buffer, id: Buffer, hash: Buffer | undefined, keys: RepositoryKeys | undefined, path: string, bytesMax: number = limits.messageBytesSettingMax): Promise<Buffer> {
  const where = `blob ${id.toString('hex').slice(0, 16)}`; // corrupt() names the path
  if (record.length < RECORD_HEADER_BYTES || !record.subarray(0, 4).equals(RECORD_MAGIC) || crc32(record.subarray(0, 44)) !== record.readUInt32BE(44)) {
    throw corrupt(path, `${where}: record header damaged`);
  }
  if (!record.subarray(4, 4 + HASH_BYTES).equals(id)) throw corrupt(path, `${where}: the record holds another blob`);
  if (record.readUInt32BE(40) !== record.length - RECORD_HEADER_BYTES) throw corrupt(path, `${where}: record length mismatch (truncated?)`);
  const stored = record.subarray(RECORD_HEADER_BYTES);
  const body = keys ? unseal(keys, stored, id, 'a blob', path) : stored;
  let bytes: Buffer;
  try {
    bytes = await decompress(body, record[36]!, bytesMax);
  } catch (error) {
    throw corrupt(path, `${where}: cannot decompress`, error);
  }
  const expected = hash ?? (keys ? undefined : id);
  if (expected && !hashBytes(bytes).equals(expected)) throw corrupt(path, `${where}: bytes do not match their hash`);
  return bytes;
}
