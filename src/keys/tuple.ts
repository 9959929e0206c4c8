// The order-preserving key format of the index (docs/FORMAT.md). Byte order of an encoded tuple
// equals the logical order of the tuple, so a mailbox's descendants sort immediately after it and
// `a/b` never interleaves with `a b`. Strings: UTF-8, 0x00 escaped as 0x00 0xFF, 0x00 terminator.
// Integers: big-endian, fixed width. Ids and hashes: raw fixed-width bytes.
import { MailstoreError, assert } from '../errors.js';

export const SPACE = {
  name: 0x4e, // N  name components          -> mailbox id
  info: 0x49, // I  mailbox id               -> mailbox info
  message: 0x4d, // M  mailbox id, uid       -> message record
  change: 0x43, // C  mailbox id, modseq, uid -> change
  blob: 0x42, // B  hash                     -> blob location and refs
  rights: 0x52, // R  user, name components   -> rights (reverse ACL map)
  meta: 0x58, // X  meta name                -> value
} as const;

export function encodeString(value: string): Buffer {
  const utf8 = Buffer.from(value, 'utf8');
  let zeros = 0;
  for (const b of utf8) if (b === 0) zeros++;
  const out = Buffer.allocUnsafe(utf8.length + zeros + 1);
  let o = 0;
  for (const b of utf8) {
    out[o++] = b;
    if (b === 0) out[o++] = 0xff;
  }
  out[o] = 0;
  return out;
}

/** Decodes one string starting at `offset`; returns it and the offset after its terminator. */
export function decodeString(buf: Uint8Array, offset: number): { value: string; next: number } {
  const bytes: number[] = [];
  let i = offset;
  for (;;) {
    // Keys are read back from LevelDB: a malformed one is damage on disk, not a bug of ours.
    if (i >= buf.length) throw new MailstoreError('CORRUPT', `an index key holds an unterminated string (${Buffer.from(buf).toString('hex')}): the index is damaged; run 'mailstore reconstruct'`);
    const b = buf[i++];
    if (b !== 0) { bytes.push(b); continue; }
    if (buf[i] === 0xff) { bytes.push(0); i++; continue; }
    break;
  }
  return { value: Buffer.from(bytes).toString('utf8'), next: i };
}

// The message is only built when the check fails: keys are built millions of times in a replay.
export function assertU32(value: number): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) assert(false, `u32 out of range: ${value}`);
}

export function assertU64(value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) assert(false, `u64 out of range: ${value}`);
}

export function encodeU32(value: number): Buffer {
  assertU32(value);
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value);
  return b;
}

export function encodeU64(value: number): Buffer {
  assertU64(value);
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}

/**
 * Encodes string components (a mailbox name's hierarchy) after `prefix`. Pushed, not mapped:
 * map's array is packed, then holey once TurboFan inlines map, and Buffer.concat deoptimised.
 */
export function encodeComponents(components: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const component of components) parts.push(encodeString(component));
  return Buffer.concat(parts);
}

export function decodeComponents(buf: Uint8Array, offset: number): string[] {
  const out: string[] = [];
  let i = offset;
  while (i < buf.length) {
    const { value, next } = decodeString(buf, i);
    out.push(value);
    i = next;
  }
  return out;
}

/** The smallest key greater than every key that starts with `prefix` (for range ends). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.of(0xff, 0xff, 0xff, 0xff);
}
