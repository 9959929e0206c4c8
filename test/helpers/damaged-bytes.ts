import fc from 'fast-check';

/**
 * Bytes a fast decoder must refuse or read as its general decoder does: a copy of one of `sources`
 * with one byte set anywhere and up to 3 bytes cut from its end, or up to 60 random bytes.
 */
export function damagedBytes(sources: Uint8Array[]): fc.Arbitrary<Buffer> {
  const damaged = fc.tuple(fc.constantFrom(...sources), fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 3 }))
    .map(([bytes, at, byte, cut]) => {
      const b = Buffer.from(bytes);
      b[at % b.length] = byte;
      return b.subarray(0, b.length - cut);
    });
  return fc.oneof(damaged, fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b)));
}
