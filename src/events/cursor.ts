// Event cursors: "SEQ.SLOT", the journal record an event comes from and its place in that record.
// Slots are a function of the record alone (never of what a reader saw before it), so a cursor
// names the same event however the reading started, and resuming after it neither skips nor
// repeats one. "0" is before everything; "SEQ" alone is after the whole record SEQ.
import { MailstoreError } from '../errors.js';

export interface EventCursor {
  seq: number;
  /** Events of record `seq` with a slot up to this one are behind the cursor (Infinity: the whole record). */
  slot: number;
}

export const START: EventCursor = { seq: 0, slot: Infinity };

export function formatCursor(cursor: EventCursor): string {
  return cursor.slot === Infinity ? String(cursor.seq) : `${cursor.seq}.${cursor.slot}`;
}

export function parseCursor(text: string): EventCursor {
  const match = /^([0-9]{1,15})(?:\.([0-9]{1,9}))?$/.exec(text);
  if (!match) throw new MailstoreError('INVALID', `event cursor ${JSON.stringify(text)}: give SEQ or SEQ.SLOT as an event printed it (0: from the start)`);
  return { seq: Number(match[1]), slot: match[2] === undefined ? Infinity : Number(match[2]) };
}

/** Whether the event at (seq, slot) comes after the cursor. */
export function isAfter(cursor: EventCursor, seq: number, slot: number): boolean {
  return seq > cursor.seq || (seq === cursor.seq && slot > cursor.slot);
}
