// Where each record of a journal segment starts: inline message bodies (docs/FORMAT.md, "Inline
// bodies") are found by their record's seq, so a read needs the record's offset in its segment.
// Records of one segment have consecutive seqs, so a table is one offset per seq from the
// segment's first; tables are built by reading a segment once, kept for the few newest segments
// read (limits.journalOffsetTablesMax), and extended by the journal as it writes.

export interface OffsetTable {
  firstSeq: number;
  /** offsets[seq - firstSeq]: where that record's header starts (-1: not a valid record). */
  offsets: number[];
}

export class RecordOffsets {
  private readonly tables = new Map<string, OffsetTable>();

  constructor(private readonly tablesMax: number) {}

  /** The table of `segment`, if it covers `seq`. */
  find(segment: string, seq: number): number | undefined {
    const table = this.tables.get(segment);
    if (!table) return undefined;
    const offset = table.offsets[seq - table.firstSeq];
    if (offset === undefined || offset < 0) return undefined;
    // most recently used last: Map keeps insertion order
    this.tables.delete(segment);
    this.tables.set(segment, table);
    return offset;
  }

  /** Replaces the table of `segment` (built from a whole read of it). */
  set(segment: string, table: OffsetTable): void {
    this.tables.delete(segment);
    this.tables.set(segment, table);
    while (this.tables.size > this.tablesMax) this.tables.delete(this.tables.keys().next().value as string);
  }

  /** Records just made durable in `segment` (only a table that exists is extended; gaps stay -1). */
  extend(segment: string, firstSeqOfSegment: number, records: { seq: number; offset: number }[], fresh: boolean): void {
    let table = this.tables.get(segment);
    if (!table && fresh) {
      table = { firstSeq: firstSeqOfSegment, offsets: [] };
      this.set(segment, table);
    }
    if (!table) return;
    for (const { seq, offset } of records) {
      const i = seq - table.firstSeq;
      while (table.offsets.length < i) table.offsets.push(-1);
      table.offsets[i] = offset;
    }
  }

  /** Forgets everything (the journal was cut, rewritten or reloaded). */
  clear(): void {
    this.tables.clear();
  }
}
