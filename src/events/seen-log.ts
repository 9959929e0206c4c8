// What a reader's memory (EventContext: mailbox names, message flags) gave the journal records it
// read, record by record. Events depend on that memory, so a webhook batch read again after a
// restart, with nothing remembered, was another batch; with this log it stores only the part of
// the memory its records looked at (SeenBefore) beside its bounds, and reads the same batch again.

/** A mailbox as a reader knew it: [name, uidValidity or null, pastNames when the name came from the index]. */
export type SeenMailbox = [name: string, uidValidity: number | null, pastNames?: string[]];

/** What a reader knew, before a record, of each mailbox and message that record and the later ones looked up. */
export interface SeenBefore {
  /** Mailbox id (hex) -> the mailbox as known. */
  mailboxes?: Record<string, SeenMailbox>;
  /** Mailbox id (hex) -> uid -> the flags last seen. */
  flags?: Record<string, Record<string, string[]>>;
}

interface Touch {
  seq: number;
  /** 'm' + mailbox id (hex), or 'f' + mailbox id (hex) + ':' + uid. */
  key: string;
  /** What the memory held before the record touched it (undefined: nothing). */
  value: SeenMailbox | string[] | undefined;
}

/**
 * The first touch of each key in each record read, with what the memory held before it. Kept from
 * a record on (dropBefore), so its size follows the records of one batch, not the reader's life.
 */
export class SeenLog {
  private touches: Touch[] = [];
  private record = -1;
  private touched = new Set<string>();

  beginRecord(seq: number): void {
    this.record = seq;
    this.touched.clear();
  }

  touch(key: string, value: Touch['value']): void {
    if (this.touched.has(key)) return;
    this.touched.add(key);
    this.touches.push({ seq: this.record, key, value });
  }

  /** Forgets the touches of records before `seq` (no batch will be read again from before it). */
  dropBefore(seq: number): void {
    const keep = this.touches.findIndex((t) => t.seq >= seq);
    this.touches = keep < 0 ? [] : this.touches.slice(keep);
  }

  /** What the memory held, before record `seq`, of every key that record and the later ones touched. */
  before(seq: number): SeenBefore {
    const first = new Map<string, Touch['value']>();
    for (const t of this.touches) {
      if (t.seq >= seq && !first.has(t.key)) first.set(t.key, t.value);
    }
    const seen: SeenBefore = {};
    for (const [key, value] of first) {
      if (value === undefined) continue; // nothing known: a fresh memory knows nothing of it either
      if (key[0] === 'm') (seen.mailboxes ??= {})[key.slice(1)] = value as SeenMailbox;
      else {
        const [id, uid] = key.slice(1).split(':');
        ((seen.flags ??= {})[id] ??= {})[uid] = value as string[];
      }
    }
    return seen;
  }
}
