// Named constructors for every key space of DESIGN.md, so no other module builds keys by hand.
import { SPACE, encodeComponents, encodeString, encodeU32, encodeU64, decodeComponents, decodeString } from './tuple.js';

const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);
const one = (b: number): Buffer => Buffer.of(b);

export const keys = {
  name: (components: readonly string[]) => cat(one(SPACE.name), encodeComponents(components)),
  info: (id: Uint8Array) => cat(one(SPACE.info), id),
  message: (id: Uint8Array, uid: number) => cat(one(SPACE.message), id, encodeU32(uid)),
  messagePrefix: (id: Uint8Array) => cat(one(SPACE.message), id),
  change: (id: Uint8Array, modseq: number, uid: number) => cat(one(SPACE.change), id, encodeU64(modseq), encodeU32(uid)),
  changePrefix: (id: Uint8Array) => cat(one(SPACE.change), id),
  changeFrom: (id: Uint8Array, modseq: number) => cat(one(SPACE.change), id, encodeU64(modseq)),
  blob: (hash: Uint8Array) => cat(one(SPACE.blob), hash),
  rights: (user: string, components: readonly string[]) => cat(one(SPACE.rights), encodeString(user), encodeComponents(components)),
  rightsPrefix: (user: string) => cat(one(SPACE.rights), encodeString(user)),
  meta: (name: string) => cat(one(SPACE.meta), encodeString(name)),
  space: (space: number) => one(space),
};

export const ID_BYTES = 16;

export function decodeNameKey(key: Uint8Array): string[] {
  return decodeComponents(key, 1);
}

export function decodeMessageKey(key: Uint8Array): { id: Buffer; uid: number } {
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return { id: b.subarray(1, 1 + ID_BYTES), uid: b.readUInt32BE(1 + ID_BYTES) };
}

export function decodeChangeKey(key: Uint8Array): { id: Buffer; modseq: number; uid: number } {
  const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  return {
    id: b.subarray(1, 1 + ID_BYTES),
    modseq: Number(b.readBigUInt64BE(1 + ID_BYTES)),
    uid: b.readUInt32BE(1 + ID_BYTES + 8),
  };
}

export function decodeRightsKey(key: Uint8Array): { user: string; components: string[] } {
  const { value, next } = decodeString(key, 1);
  return { user: value, components: decodeComponents(key, next) };
}
