// Where each record of a journal segment starts: inline message bodies (docs/FORMAT.md, "Inline
// bodies") are found by their record's seq, so a read needs the record's offset in its segment.
// Records of one segment have consecutive seqs, so a table is one offset per seq from the
// segment's first. Tables are built by reading a segment once, extended by the journal as it
// writes, and kept up to limits.journalOffsetEntriesMax entries in all (least recently used go
// first): a scrub that checks inline bodies in hash order visits the retained segments at random,
// and a table (4 bytes a record) costs far less than reading its segment again.

export interface OffsetTable {
  firstSeq: number;
  /** offsets[seq - firstSeq]: where that record's header starts (-1: not a valid record). */
  offsets: Int32Array | number[];
}

export class RecordOffsets {
  private readonly tables = new Map<string, OffsetTable>();
  private entries = 0;
  /** Counts clear(): a table built from bytes read before a clear describes a journal that is gone. */
  generation = 0;

  constructor(private readonly entriesMax: number) {}

  /** The offset of record `seq` in `segment`, if its table is known and holds it. */
  find(segment: string, seq: number): number | undefined {
    const table = this.tables.get(segment);
    if (!table) return undefined;
    const offset = table.offsets[seq - table.firstSeq];
    if (offset === undefined || offset < 0) return undefined;
    // most recently used last: a Map keeps insertion order
    this.tables.delete(segment);
    this.tables.set(segment, table);
    return offset;
  }

  /** Whether a table of `segment` is kept. */
  has(segment: string): boolean {
    return this.tables.has(segment);
  }

  /** Replaces the table of `segment` (built from a whole read of it). */
  set(segment: string, table: OffsetTable): void {
    this.drop(segment);
    this.tables.set(segment, table);
    this.entries += table.offsets.length;
    for (const name of this.tables.keys()) {
      if (this.entries <= this.entriesMax || name === segment) break;
      this.drop(name);
    }
  }

  /** Records just made durable in `segment` (only a table that exists is extended; gaps stay -1). */
  extend(segment: string, firstSeqOfSegment: number, records: { seq: number; offset: number }[], fresh: boolean): void {
    let table = this.tables.get(segment);
    if (!table && fresh) {
      // the segments before a new one are complete: their tables shrink to 4 bytes a record
      for (const other of this.tables.values()) if (Array.isArray(other.offsets)) other.offsets = Int32Array.from(other.offsets);
      this.set(segment, (table = { firstSeq: firstSeqOfSegment, offsets: [] }));
    }
    if (!table) return;
    if (!Array.isArray(table.offsets)) table.offsets = Array.from(table.offsets); // the tail grows: a plain array again
    const offsets = table.offsets as number[];
    const before = offsets.length;
    for (const { seq, offset } of records) {
      const i = seq - table.firstSeq;
      while (offsets.length < i) offsets.push(-1);
      offsets[i] = offset;
    }
    this.entries += offsets.length - before;
  }

  /** Forgets everything (the journal was cut, rewritten or reloaded). */
  clear(): void {
    this.tables.clear();
    this.entries = 0;
    this.generation++;
  }

  /** Forgets the table of a segment that is gone (retired). */
  forget(segment: string): void {
    this.drop(segment);
  }

  private drop(segment: string): void {
    const table = this.tables.get(segment);
    if (!table) return;
    this.tables.delete(segment);
    this.entries -= table.offsets.length;
  }
}

/** A record's offset in its segment's table (offsets[seq - firstSeq]; -1 where no valid record is). */
export function placeRecord(offsets: number[], firstSeq: number, seq: number, offset: number): void {
  if (seq < firstSeq) return;
  while (offsets.length < seq - firstSeq) offsets.push(-1);
  offsets[seq - firstSeq] = offset;
}
