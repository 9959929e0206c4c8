// A set of pack numbers kept as runs (first..last): the packs a store removed while open. One
// entry a removed pack grew a daemon's memory with every compaction for as long as it ran; as runs
// it holds one entry a gap between removed numbers (a pack still live, a number never made a pack).
// Loaded by a store's first removal (compaction, a replica's pack.removed), never by an append.

export class NumberRuns {
  /** Run i is firsts[i]..lasts[i]: sorted, disjoint, never adjacent (adjacent runs are merged). */
  private readonly firsts: number[] = [];
  private readonly lasts: number[] = [];

  get runs(): number {
    return this.firsts.length;
  }

  has(n: number): boolean {
    const i = this.runFrom(n);
    return i >= 0 && n <= this.lasts[i];
  }

  add(n: number): void {
    const i = this.runFrom(n);
    if (i >= 0 && n <= this.lasts[i]) return;
    const below = i >= 0 && this.lasts[i] === n - 1;
    const above = i + 1 < this.firsts.length && this.firsts[i + 1] === n + 1;
    if (below && above) {
      this.lasts[i] = this.lasts[i + 1];
      this.firsts.splice(i + 1, 1);
      this.lasts.splice(i + 1, 1);
    } else if (below) {
      this.lasts[i] = n;
    } else if (above) {
      this.firsts[i + 1] = n;
    } else {
      this.firsts.splice(i + 1, 0, n);
      this.lasts.splice(i + 1, 0, n);
    }
  }

  /** The last run that starts at or below n, or -1. */
  private runFrom(n: number): number {
    let low = 0;
    let high = this.firsts.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.firsts[middle] <= n) low = middle + 1;
      else high = middle - 1;
    }
    return high;
  }
}
