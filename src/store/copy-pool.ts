// Recycled memory for the store's copies of callers' large messages (validate.ts ownCopy): a fresh
// Buffer of 1 MiB gets new pages from the kernel on every copy (~2.5 ms here), the same copy into
// memory used before ~0.15 ms (BENCHMARKS.md, "Caller buffers").
import { assert } from '../errors.js';
import { limits } from '../limits.js';

/**
 * Lends buffers for copies of `appendCopyRecycleBytesMin` bytes or more and takes them back once
 * the append they were lent to has settled (the store keeps no reference past that: the bytes are
 * written and synced, a synchronous replica's round copied). Keeps at most
 * limits.appendCopyPoolBytesMax of free memory, in power-of-two sizes.
 */
export class CopyPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;
  /** Memory lent and not yet given back: only it is ever taken back. */
  private readonly lent = new WeakSet<ArrayBuffer>();

  /** Whether a copy of `length` bytes comes from the pool. */
  recycles(length: number): boolean {
    return length >= limits.appendCopyRecycleBytesMin && length <= limits.appendCopyPoolBytesMax;
  }

  /** A copy of `bytes` (recycles(bytes.length) must hold) in lent memory. */
  copy(bytes: Uint8Array): Buffer {
    const capacity = 2 ** Math.ceil(Math.log2(bytes.length));
    let memory = this.free.get(capacity)?.pop();
    if (memory) this.freeBytes -= capacity;
    else memory = new ArrayBuffer(capacity);
    this.lent.add(memory);
    const out = Buffer.from(memory, 0, bytes.length);
    out.set(bytes);
    return out;
  }

  /** Takes back what `copy` lent (anything else is left alone), unless the pool is full. */
  giveBack(bytes: Uint8Array): void {
    const memory = bytes.buffer as ArrayBuffer;
    if (!this.lent.delete(memory)) return;
    assert(bytes.byteOffset === 0 && memory.byteLength >= bytes.length, 'copy pool: a lent buffer changed shape');
    if (this.freeBytes + memory.byteLength > limits.appendCopyPoolBytesMax) return;
    const list = this.free.get(memory.byteLength) ?? [];
    list.push(memory);
    this.free.set(memory.byteLength, list);
    this.freeBytes += memory.byteLength;
  }
}
