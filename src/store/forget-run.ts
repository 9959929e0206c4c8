// The entry list of a `blob.forgetRun` op (records.ts, docs/FORMAT.md "Compaction"): per entry the
// 32-byte hash, then the record's offset as a u64 big-endian. One buffer for a run of forgets
// instead of a CBOR map per entry: a compaction of 16k released blobs encoded (and a replay
// decoded) 16k maps.
import { assert } from '../errors.js';
import { HASH_BYTES } from '../hash/blake3.js';
import { assertU64 } from '../keys/tuple.js';

export const FORGET_ENTRY_BYTES = HASH_BYTES + 8;

export function encodeForgetEntries(entries: readonly { hash: Uint8Array; offset: number }[]): Buffer {
  const out = Buffer.allocUnsafe(entries.length * FORGET_ENTRY_BYTES);
  entries.forEach(({ hash, offset }, i) => {
    assert(hash.length === HASH_BYTES, `a forget entry with a hash of ${hash.length} bytes`);
    assertU64(offset);
    const at = i * FORGET_ENTRY_BYTES;
    out.set(hash, at);
    out.writeUInt32BE(Math.floor(offset / 0x1_0000_0000), at + HASH_BYTES); // a safe integer: two u32 halves, no BigInt
    out.writeUInt32BE(offset >>> 0, at + HASH_BYTES + 4);
  });
  return out;
}

/** Calls `fn` with each entry (the hash a view into `entries`). A length that is not whole entries is a bug. */
export function forEachForgetEntry(entries: Uint8Array, fn: (hash: Buffer, offset: number) => void): void {
  const b = Buffer.from(entries.buffer, entries.byteOffset, entries.byteLength);
  assert(b.length % FORGET_ENTRY_BYTES === 0, `a blob.forgetRun list of ${b.length} bytes is not whole entries of ${FORGET_ENTRY_BYTES}`);
  for (let at = 0; at < b.length; at += FORGET_ENTRY_BYTES) {
    fn(b.subarray(at, at + HASH_BYTES), b.readUInt32BE(at + HASH_BYTES) * 0x1_0000_0000 + b.readUInt32BE(at + HASH_BYTES + 4));
  }
}
