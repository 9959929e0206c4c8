// The writer's queue: mutations are taken from its head, one (an exclusive one is a batch alone)
// or a batch at a time, and a batch's rest is put back. On an array each take moved every element
// behind it (splice(0, 1)): 100k exclusive mutations queued at once (failing renames) took 16 s of
// CPU, n² in the queue's length. Here a take moves nothing but what it returns.

/** A first-in first-out queue over an array and the index of its head. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  /** The item `i` places behind the head (0: the head), or undefined. */
  at(i: number): T | undefined {
    return i < this.length ? this.items[this.head + i] : undefined;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns the first `n` items (all of them when fewer are queued). */
  take(n: number): T[] {
    const out = this.items.slice(this.head, this.head + n);
    this.head += out.length;
    // the taken slots are dropped once they are half the array: each item is copied at most once
    // more for every time it moves up, and taken items are not kept alive for long
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Puts `items` back in front of the head, in their order. */
  putBack(items: readonly T[]): void {
    if (items.length <= this.head) {
      this.head -= items.length;
      for (let i = 0; i < items.length; i++) this.items[this.head + i] = items[i]!;
      return;
    }
    this.items = items.concat(this.items.slice(this.head));
    this.head = 0;
  }
}
