// Named constructors for every key space of DESIGN.md, so no other module builds keys by hand.
import { Buffer } from 'node:buffer';
import { SPACE, assertU32, assertU64, encodeComponents, encodeString, encodeU64, decodeComponents, decodeString } from './tuple.js';

const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);
const one = (b: number): Buffer => Buffer.of(b);

/**
 * The space byte and a raw id or hash, then room for `tail` bytes: the keys built once or more per
 * message (replay builds millions) are written in place, without the parts and the concat.
 */
function spaced(space: number, raw: Uint8Array, tail: number): Buffer {
  const out = Buffer.allocUnsafe(1 + raw.length + tail);
  out[0] = space;
  out.set(raw, 1);
  return out;
}

function u32Key(space: number, id: Uint8Array, uid: number): Buffer {
  assertU32(uid);
  const out = spaced(space, id, 4);
  out.writeUInt32BE(uid, 1 + id.length);
  return out;
}

function changeKey(id: Uint8Array, modseq: number, uid: number): Buffer {
  assertU64(modseq);
  assertU32(uid);
  const out = spaced(SPACE.change, id, 12);
  const at = 1 + id.length;
  // modseq is a safe integer (< 2^53): split it into two u32 halves instead of going through BigInt.
  out.writeUInt32BE(Math.floor(modseq / 0x1_0000_0000), at);
  out.writeUInt32BE(modseq >>> 0, at + 4);
  out.writeUInt32BE(uid, at + 8);
  return out;
}

export const keys = {
  name: (components: readonly string[]) => cat(one(SPACE.name), encodeComponents(components)),
  info: (id: Uint8Array) => spaced(SPACE.info, id, 0),
  message: (id: Uint8Array, uid: number) => u32Key(SPACE.message, id, uid),
  messagePrefix: (id: Uint8Array) => cat(one(SPACE.message), id),
  change: (id: Uint8Array, modseq: number, uid: number) => changeKey(id, modseq, uid),
  changePrefix: (id: Uint8Array) => cat(one(SPACE.change), id),
  changeFrom: (id: Uint8Array, modseq: number) => cat(one(SPACE.change), id, encodeU64(modseq)),
  blob: (hash: Uint8Array) => spaced(SPACE.blob, hash, 0),
  rights: (user: string, components: readonly string[]) => cat(one(SPACE.rights), encodeString(user), encodeComponents(components)),
  rightsPrefix: (user: string) => cat(one(SPACE.rights), encodeString(user)),
  meta: (name: string) => cat(one(SPACE.meta), encodeString(name)),
  space: (space: number) => one(space),
};

export const ID_BYTES = 16;

export function decodeNameKey(key: Uint8Array): string[] {
  return decodeComponents(key, 1);
}

/** The uid of a message key alone: a bulk read needs nothing else, and no Buffer view is made. */
export function messageKeyUid(key: Uint8Array): number {
  const at = 1 + ID_BYTES;
  return ((key[at] << 24) | (key[at + 1] << 16) | (key[at + 2] << 8) | key[at + 3]) >>> 0;
}

/** The key itself when it is a Buffer (LevelDB's are: scrub decodes 40k at 20k messages), else a view of it. */
function bufferOf(key: Uint8Array): Buffer {
  return Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength);
}

export function decodeMessageKey(key: Uint8Array): { id: Buffer; uid: number } {
  const b = bufferOf(key);
  return { id: b.subarray(1, 1 + ID_BYTES), uid: b.readUInt32BE(1 + ID_BYTES) };
}

export function decodeChangeKey(key: Uint8Array): { id: Buffer; modseq: number; uid: number } {
  const b = bufferOf(key);
  return {
    id: b.subarray(1, 1 + ID_BYTES),
    // two u32 halves, as changeKey writes them: a BigInt a key cost scrub's and the change log's
    // walks more to compile than the rest of the key (issue 16); the same number below 2^53, and
    // rounded the same above it (one IEEE addition of an exact high half)
    modseq: b.readUInt32BE(1 + ID_BYTES) * 0x1_0000_0000 + b.readUInt32BE(1 + ID_BYTES + 4),
    uid: b.readUInt32BE(1 + ID_BYTES + 8),
  };
}

export function decodeRightsKey(key: Uint8Array): { user: string; components: string[] } {
  const { value, next } = decodeString(key, 1);
  return { user: value, components: decodeComponents(key, next) };
}
