// A big message body received in pieces (LMTP DATA), copied into one buffer as they come, so each
// piece is garbage at once and the body is in memory once. Kept as a list of pieces and joined at
// the final dot, a 60 MiB body was held twice when the join ran (every piece and the joined copy,
// the pieces until V8's next full collection): the daemon's RSS grew by 2x the bytes its body
// budget counts. The buffer is a resizable ArrayBuffer reserved at the message size limit and grown
// in place (V8 reserves the address space and commits pages as it grows): no copy when it grows,
// and the reservation costs no memory.
import { assert } from '../errors.js';

/** ES2024's resizable ArrayBuffer (node 20's V8 has it; the lib the project compiles against does not describe it). */
interface ResizableArrayBuffer extends ArrayBuffer {
  readonly maxByteLength: number;
  resize(byteLength: number): void;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (byteLength: number, options: { maxByteLength: number }) => ResizableArrayBuffer;

export class GrowingBody {
  private readonly memory: ResizableArrayBuffer;
  private length = 0;

  /** `bytesMax`: the most it may hold (the message size limit); `growBytes`: it grows by at least this much at a time. */
  constructor(bytesMax: number, private readonly growBytes: number) {
    this.memory = new ResizableArrayBuffer(0, { maxByteLength: bytesMax });
  }

  append(piece: Uint8Array): void {
    const end = this.length + piece.length;
    assert(end <= this.memory.maxByteLength, `a body of ${end} bytes was received past its limit of ${this.memory.maxByteLength}`);
    if (end > this.memory.byteLength) this.memory.resize(Math.min(this.memory.maxByteLength, Math.max(end, this.memory.byteLength + this.growBytes)));
    new Uint8Array(this.memory, this.length, piece.length).set(piece);
    this.length = end;
  }

  /** The body received: a Buffer of exactly its bytes (over the grown memory, not a copy; what it grew past them is let go). */
  bytes(): Buffer {
    this.memory.resize(this.length);
    return Buffer.from(this.memory, 0, this.length);
  }
}
