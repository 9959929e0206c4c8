// The entry lists of a compaction's `blob.forgetRun` and `blob.relocateRun` ops (records.ts,
// docs/FORMAT.md "Compaction"): fixed-size entries of a 32-byte hash and u64 big-endian numbers
// in one buffer, instead of a CBOR map per entry: a compaction of 16k released and 4k live blobs
// encoded (and a replay decoded) 20k maps.
import { assert } from '../errors.js';
import { HASH_BYTES } from '../hash/blake3.js';
import { assertU64 } from '../keys/tuple.js';

/** hash, offset */
export const FORGET_ENTRY_BYTES = HASH_BYTES + 8;
/** hash, offset of the old copy, offset of the new copy, body length */
export const RELOCATE_ENTRY_BYTES = HASH_BYTES + 3 * 8;

function putU64(out: Buffer, value: number, at: number): void {
  assertU64(value);
  out.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at); // a safe integer: two u32 halves, no BigInt
  out.writeUInt32BE(value >>> 0, at + 4);
}

function getU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 0x1_0000_0000 + b.readUInt32BE(at + 4);
}

/**
 * Entries of a hash and the u64s `numbers` gives, `bytes` each. No object or message string an
 * entry: a 1M-message compaction encodes ~900k of them.
 */
function encodeEntries<E extends { hash: Uint8Array }>(entries: readonly E[], bytes: number, numbers: (entry: E, out: Buffer, at: number) => void): Buffer {
  const out = Buffer.allocUnsafe(entries.length * bytes);
  for (let i = 0; i < entries.length; i++) {
    const { hash } = entries[i];
    if (hash.length !== HASH_BYTES) assert(false, `a blob run entry with a hash of ${hash.length} bytes`);
    const at = i * bytes;
    out.set(hash, at);
    numbers(entries[i], out, at + HASH_BYTES);
  }
  return out;
}

function asEntries(entries: Uint8Array, bytes: number, what: string): Buffer {
  const b = Buffer.from(entries.buffer, entries.byteOffset, entries.byteLength);
  assert(b.length % bytes === 0, `a ${what} list of ${b.length} bytes is not whole entries of ${bytes}`);
  return b;
}

export function encodeForgetEntries(entries: readonly { hash: Uint8Array; offset: number }[]): Buffer {
  return encodeEntries(entries, FORGET_ENTRY_BYTES, (entry, out, at) => putU64(out, entry.offset, at));
}

/** Calls `fn` with each entry (the hash a view into `entries`). A length that is not whole entries is a bug. */
export function forEachForgetEntry(entries: Uint8Array, fn: (hash: Buffer, offset: number) => void): void {
  const b = asEntries(entries, FORGET_ENTRY_BYTES, 'blob.forgetRun');
  for (let at = 0; at < b.length; at += FORGET_ENTRY_BYTES) fn(b.subarray(at, at + HASH_BYTES), getU64(b, at + HASH_BYTES));
}

export interface RelocateEntry {
  hash: Uint8Array;
  /** Offset of the copy in the run's `from` pack. */
  from: number;
  /** Offset of the copy in the run's `to` pack. */
  to: number;
  size: number;
}

export function encodeRelocateEntries(entries: readonly RelocateEntry[]): Buffer {
  return encodeEntries(entries, RELOCATE_ENTRY_BYTES, (entry, out, at) => {
    putU64(out, entry.from, at);
    putU64(out, entry.to, at + 8);
    putU64(out, entry.size, at + 16);
  });
}

export function forEachRelocateEntry(entries: Uint8Array, fn: (entry: RelocateEntry & { hash: Buffer }) => void): void {
  const b = asEntries(entries, RELOCATE_ENTRY_BYTES, 'blob.relocateRun');
  for (let at = 0; at < b.length; at += RELOCATE_ENTRY_BYTES) {
    fn({ hash: b.subarray(at, at + HASH_BYTES), from: getU64(b, at + HASH_BYTES), to: getU64(b, at + HASH_BYTES + 8), size: getU64(b, at + HASH_BYTES + 16) });
  }
}
