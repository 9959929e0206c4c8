// Buffer's own encoders, called directly where node has them. buf.toString(encoding, start, end)
// and buf.write(string, offset, encoding) go through node's JavaScript dispatch (argument checks,
// the encoding's lookup, a wrapper) before they reach these natives, and a read of small messages
// in a fresh process runs that dispatch cold, several times a message. Measured in a fresh
// process (issue 16): 12,000 short flag strings 4.7 -> 2.7 ms; 6,046 hashes in hex 2.8-4.1 ->
// 1.25 ms. Node has had them since its first releases (undocumented; cbor-x and msgpackr call
// latin1Slice and utf8Slice the same way); without them the documented calls stand in.
import { Buffer } from 'node:buffer';

/** The natives looked for (on Buffer.prototype). */
export interface NativeSlices {
  latin1Slice?(start: number, end: number): string;
  hexSlice?(start: number, end: number): string;
  base64urlWrite?(string: string, offset: number, length: number): number;
}

export interface BufferSlices {
  /** b.toString('latin1', start, end). */
  latin1Of(b: Buffer, start: number, end: number): string;
  /** b.toString('hex'). */
  hexOf(b: Buffer): string;
  /** b.write(text, 0, 'base64url') (base64 and padding taken as node's decoder takes them): the bytes written. */
  writeBase64url(b: Buffer, text: string): number;
}

type Natives = Required<NativeSlices>;

/** The functions for a prototype that has the natives `proto` has (each chosen once, not at each call). */
export function bufferSlices(proto: NativeSlices): BufferSlices {
  return {
    latin1Of: typeof proto.latin1Slice === 'function' ? (b, start, end) => (b as unknown as Natives).latin1Slice(start, end) : (b, start, end) => b.toString('latin1', start, end),
    hexOf: typeof proto.hexSlice === 'function' ? (b) => (b as unknown as Natives).hexSlice(0, b.length) : (b) => b.toString('hex'),
    writeBase64url: typeof proto.base64urlWrite === 'function' ? (b, text) => (b as unknown as Natives).base64urlWrite(text, 0, b.length) : (b, text) => b.write(text, 0, 'base64url'),
  };
}

export const { latin1Of, hexOf, writeBase64url } = bufferSlices(Buffer.prototype as unknown as NativeSlices);
