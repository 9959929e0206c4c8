// IMAP UID sets (`1:5,9,12:*`), the way every command names the messages it acts on. Kept as
// sorted disjoint ranges so `1:*` over a million-message mailbox costs one range, not a million numbers.
import { MailstoreError } from '../errors.js';

/** The largest UID IMAP allows (nz-number is 32 bits). */
export const UID_MAX = 4_294_967_295;

/** An inclusive range of UIDs, start <= end. */
export interface UidRange {
  readonly start: number;
  readonly end: number;
}

/** A set of UIDs as sorted, disjoint, non-adjacent ranges. Iterates its UIDs in ascending order. */
export class UidSet implements Iterable<number> {
  readonly ranges: readonly UidRange[];

  private constructor(ranges: UidRange[]) {
    this.ranges = ranges;
  }

  static empty(): UidSet {
    return new UidSet([]);
  }

  /** Normalises any ranges (in any order, overlapping, reversed) into a set. */
  static fromRanges(ranges: Iterable<UidRange>): UidSet {
    const sorted = [...ranges]
      .map((range) => {
        checkUid(range.start);
        checkUid(range.end);
        return range.start <= range.end ? range : { start: range.end, end: range.start };
      })
      .sort((a, b) => a.start - b.start);
    const merged: UidRange[] = [];
    for (const range of sorted) {
      const last = merged[merged.length - 1];
      if (last && range.start <= last.end + 1) {
        if (range.end > last.end) merged[merged.length - 1] = { start: last.start, end: range.end };
      } else {
        merged.push({ start: range.start, end: range.end });
      }
    }
    return new UidSet(merged);
  }

  static fromUids(uids: Iterable<number>): UidSet {
    const sorted = Array.from(uids, (uid) => { checkUid(uid); return uid; }).sort((a, b) => a - b);
    const ranges: UidRange[] = [];
    for (const uid of sorted) {
      const last = ranges[ranges.length - 1];
      if (last && uid <= last.end + 1) {
        if (uid > last.end) ranges[ranges.length - 1] = { start: last.start, end: uid };
      } else {
        ranges.push({ start: uid, end: uid });
      }
    }
    return new UidSet(ranges);
  }

  /** How many UIDs the set holds. */
  get size(): number {
    return this.ranges.reduce((total, range) => total + range.end - range.start + 1, 0);
  }

  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  has(uid: number): boolean {
    let low = 0;
    let high = this.ranges.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const range = this.ranges[middle]!;
      if (uid < range.start) high = middle - 1;
      else if (uid > range.end) low = middle + 1;
      else return true;
    }
    return false;
  }

  *[Symbol.iterator](): Iterator<number> {
    for (const range of this.ranges) {
      for (let uid = range.start; uid <= range.end; uid += 1) yield uid;
    }
  }

  toArray(): number[] {
    return [...this];
  }

  /** The compact IMAP form, e.g. `1:5,9,12:20`; '' for the empty set. */
  toString(): string {
    return this.ranges.map((range) => (range.start === range.end ? `${range.start}` : `${range.start}:${range.end}`)).join(',');
  }
}

export interface ParseUidSetOptions {
  /**
   * What `*` stands for: the largest UID in the mailbox. Required when the text uses `*`; 0 means
   * the mailbox is empty, and then any item that uses `*` selects nothing.
   */
  largestUid?: number;
}

/**
 * Parses an IMAP sequence-set of UIDs (RFC 9051 sequence-set): comma-separated numbers and
 * ranges `a:b` (either order), `*` for the largest UID. Anything else is INVALID.
 */
export function parseUidSet(text: string, options: ParseUidSetOptions = {}): UidSet {
  if (typeof text !== 'string' || text.length === 0) throw invalid(text, 'it is empty');
  const largest = options.largestUid;
  if (largest !== undefined && (!Number.isInteger(largest) || largest < 0 || largest > UID_MAX)) {
    throw new MailstoreError('INVALID', `largestUid must be an integer 0..${UID_MAX}, got ${largest}`);
  }
  const ranges: UidRange[] = [];
  for (const item of text.split(',')) {
    const parts = item.split(':');
    if (parts.length > 2) throw invalid(text, `${JSON.stringify(item)} has more than one ':'`);
    const ends = parts.map((part) => parseEnd(part, text, largest));
    // `*` in an empty mailbox: no message can match, whatever the other end says.
    if (ends.includes(0)) continue;
    const start = ends[0]!;
    const end = ends[ends.length - 1]!;
    ranges.push(start <= end ? { start, end } : { start: end, end: start });
  }
  return UidSet.fromRanges(ranges);
}

/** A number 1..UID_MAX, or `*` as the largest UID (0 when the mailbox is empty). */
function parseEnd(part: string, text: string, largest: number | undefined): number {
  if (part === '*') {
    if (largest === undefined) throw invalid(text, "'*' needs the mailbox's largest UID");
    return largest;
  }
  if (!/^[1-9][0-9]*$/.test(part)) throw invalid(text, `${JSON.stringify(part)} is not a UID (1..${UID_MAX}, no leading zeros)`);
  const uid = Number(part);
  if (uid > UID_MAX) throw invalid(text, `${part} is larger than ${UID_MAX}`);
  return uid;
}

/** The compact IMAP form of any UIDs (unsorted, duplicated, or a UidSet). */
export function formatUidSet(uids: Iterable<number> | UidSet): string {
  return (uids instanceof UidSet ? uids : UidSet.fromUids(uids)).toString();
}

function checkUid(uid: number): void {
  if (!Number.isInteger(uid) || uid < 1 || uid > UID_MAX) {
    throw new MailstoreError('INVALID', `not a UID (an integer 1..${UID_MAX}): ${uid}`);
  }
}

function invalid(text: string, why: string): MailstoreError {
  const shown = String(text).length > 80 ? `${String(text).slice(0, 80)}...` : String(text);
  return new MailstoreError('INVALID', `bad UID set ${JSON.stringify(shown)}: ${why}`);
}
