// Change events for other systems (RFC 5423 names: MessageNew, MessageExpunge, FlagsSet, ...),
// derived from the journal, which is the store's change log: every committed change is a record,
// so reading records after a cursor gives every change after it, in commit order, with no other
// state to keep. A consumer stores the cursor of the last event it handled and resumes after it
// (webhook.ts); delivery is at least once.
//
// What the journal does not say is filled in as well as it can be, and the fields say so:
//  - names: a record carries mailbox ids; the name is the one the reader saw the mailbox created
//    or renamed to earlier in the same read, else the index's current name, else (a deleted
//    mailbox) the id itself;
//  - flags: a record carries each message's new flag set; what was set and cleared is the
//    difference from the set the reader saw last for that message; when it saw none (the read
//    started later), one FlagsSet lists the whole new set with `allFlags: true`;
//  - MessageNew stands for every new message: the store cannot tell an MTA's delivery from an
//    IMAP APPEND, COPY or MOVE (RFC 5423's MessageAppend), which all write the same record.
import { decodeCbor } from '../index/codec.js';
import type { JournalDamage } from '../journal/journal.js';
import { keys } from '../keys/index-keys.js';
import { eventLimits } from '../limits.js';
import type { MailboxInfo, Op, JournalPayload } from '../store/records.js';
import type { Store } from '../store/store.js';
import { uuidString } from '../store/types.js';
import { formatMailboxName } from '../store/validate.js';
import { formatCursor, isAfter, type EventCursor } from './cursor.js';
import { MailstoreError } from '../errors.js';
import type { SeenBefore, SeenLog, SeenMailbox } from './seen-log.js';

export type EventName =
  | 'MessageNew' | 'MessageExpunge' | 'FlagsSet' | 'FlagsClear'
  | 'MailboxCreate' | 'MailboxRename' | 'MailboxDelete' | 'AclChange';

export interface MailEvent {
  /** Resume after this event with `--since CURSOR` (cursor.ts). */
  cursor: string;
  event: EventName;
  /** The journal record (and the mailbox's modseq of a message change). */
  seq: number;
  mailbox: string;
  mailboxId: string;
  uidValidity?: number;
  uid?: number;
  uids?: number[];
  size?: number;
  hash?: string;
  internalDate?: string;
  envelopeFrom?: string;
  flags?: string[];
  /** FlagsSet lists the message's whole new flag set: what it had before is not known to this reader. */
  allFlags?: true;
  oldMailbox?: string;
  owner?: string;
  identifier?: string;
  rights?: string;
}

/** A mailbox's name as the reader knows it; `pastNames` when the name came from the index (its name now). */
interface KnownMailbox {
  name: string;
  uidValidity?: number;
  pastNames?: string[];
}

/** What a reader remembers between records: mailbox names and uidvalidities, message flags. */
export class EventContext {
  private readonly mailboxes = new Map<string, KnownMailbox>();
  private readonly flags = new Map<string, string[]>();
  private log?: SeenLog;

  constructor(private store: Pick<Store, 'maintenance'>) {}

  /** Logs what each record read of this memory from now on (a webhook's batches: seen-log.ts). */
  logging(log: SeenLog): this {
    this.log = log;
    return this;
  }

  /** Starts out knowing what a reader knew before a record (SeenLog.before): it reads the same events from there. */
  knowing(seen: SeenBefore): this {
    for (const [hex, [name, uidValidity, pastNames]] of Object.entries(seen.mailboxes ?? {})) {
      this.mailboxes.set(hex, { name, ...(uidValidity === null ? {} : { uidValidity }), ...(pastNames ? { pastNames } : {}) });
    }
    for (const [hex, uids] of Object.entries(seen.flags ?? {})) {
      for (const [uid, flags] of Object.entries(uids)) this.flags.set(`${hex}:${uid}`, flags);
    }
    return this;
  }

  /** Called before each record's ops (the log keeps what the memory held before each record). */
  beginRecord(seq: number): void {
    this.log?.beginRecord(seq);
  }

  private touchMailbox(hex: string, known: KnownMailbox | undefined): void {
    this.log?.touch(`m${hex}`, known && seenMailbox(known));
  }

  /**
   * Reads names from `store` from now on: what it remembers goes on to the next open of the same
   * store (\`events --follow\` opens it for each look). Kept on the first look's store, every
   * mailbox it had not yet seen named read a closed index, and the follow stopped there.
   */
  reading(store: Pick<Store, 'maintenance'>): this {
    this.store = store;
    return this;
  }

  mailbox(id: Buffer): KnownMailbox {
    const hex = id.toString('hex');
    const known = this.mailboxes.get(hex);
    if (known) {
      this.touchMailbox(hex, known);
      return known;
    }
    const info = this.store.maintenance().index.getNow<MailboxInfo>(keys.info(id));
    const found: KnownMailbox = info
      ? { name: formatMailboxName(info.name), uidValidity: info.uidValidity, pastNames: info.pastNames.map(formatMailboxName) }
      : { name: uuidString(id) };
    // logged as known before: the index may say otherwise when the batch is read again
    this.touchMailbox(hex, found);
    this.mailboxes.set(hex, found);
    return found;
  }

  named(id: Buffer, name: string, uidValidity?: number): void {
    const hex = id.toString('hex');
    this.touchMailbox(hex, this.mailboxes.get(hex));
    this.mailboxes.set(hex, { name, uidValidity: uidValidity ?? this.mailboxes.get(hex)?.uidValidity });
  }

  /**
   * The mailbox was deleted (its deleteEnd): no later record names its id (a new mailbox gets a new
   * one), so it is forgotten. A follower (the daemon's webhook, for months) kept every mailbox it
   * ever saw, those of every user made and removed.
   */
  forget(id: Buffer): void {
    const hex = id.toString('hex');
    this.touchMailbox(hex, this.mailboxes.get(hex));
    this.mailboxes.delete(hex);
  }

  /** The flags last seen for a message, then remembers `next` (bounded: the oldest are forgotten). */
  swapFlags(id: Buffer, uid: number, next: string[] | undefined): string[] | undefined {
    const key = `${id.toString('hex')}:${uid}`;
    const before = this.flags.get(key);
    this.log?.touch(`f${key}`, before);
    this.flags.delete(key);
    if (next) {
      if (this.flags.size >= eventLimits.flagStatesMax) {
        const oldest = this.flags.keys().next().value!;
        // logged as unknown before: a batch read again does not fill its memory up to evict it
        this.log?.touch(`f${oldest}`, undefined);
        this.flags.delete(oldest);
      }
      this.flags.set(key, next);
    }
    return before;
  }
}

function seenMailbox(known: KnownMailbox): SeenMailbox {
  const seen: SeenMailbox = [known.name, known.uidValidity ?? null];
  if (known.pastNames) seen.push(known.pastNames);
  return seen;
}

/**
 * The events of one journal record, each with its slot. A slot depends only on the op's position
 * and its messages: a message.add takes one slot per message, message.flags two per message
 * (set, clear), every other op one.
 */
export function recordEvents(seq: number, payload: JournalPayload, context: EventContext): { slot: number; event: Omit<MailEvent, 'cursor'> }[] {
  const out: { slot: number; event: Omit<MailEvent, 'cursor'> }[] = [];
  let slot = 0;
  context.beginRecord(seq);
  for (const op of payload.ops ?? []) {
    for (const { offset, event } of opEvents(seq, op, context)) out.push({ slot: slot + offset, event });
    slot += slotsOf(op);
  }
  return out;
}

function slotsOf(op: Op): number {
  if (op.op === 'message.add') return 1;
  if (op.op === 'message.flags') return 2 * op.set.length;
  return 1;
}

function opEvents(seq: number, op: Op, context: EventContext): { offset: number; event: Omit<MailEvent, 'cursor'> }[] {
  const about = (id: Buffer) => {
    const { name, uidValidity } = context.mailbox(id);
    return { seq, mailbox: name, mailboxId: uuidString(id), ...(uidValidity === undefined ? {} : { uidValidity }) };
  };
  switch (op.op) {
    case 'mailbox.create': {
      context.named(op.id, formatMailboxName(op.name), op.uidValidity);
      return [{ offset: 0, event: { event: 'MailboxCreate', ...about(op.id), ...(op.owner ? { owner: op.owner } : {}) } }];
    }
    case 'mailbox.rename': {
      const before = context.mailbox(op.id);
      const to = formatMailboxName(op.to);
      // a name from the index is today's: the name before this rename is known only if this was the last one
      const oldMailbox = !before.pastNames ? before.name : before.name === to ? before.pastNames.at(-1) : undefined;
      context.named(op.id, to);
      return [{ offset: 0, event: { event: 'MailboxRename', ...about(op.id), ...(oldMailbox === undefined ? {} : { oldMailbox }) } }];
    }
    case 'mailbox.deleteBegin':
      return [{ offset: 0, event: { event: 'MailboxDelete', ...about(op.id) } }];
    case 'mailbox.deleteEnd':
      context.forget(op.id);
      return [];
    case 'message.add': {
      context.swapFlags(op.id, op.uid, op.flags);
      const event: Omit<MailEvent, 'cursor'> = {
        event: 'MessageNew', ...about(op.id), uid: op.uid, size: op.size, hash: op.hash.toString('hex'), internalDate: new Date(op.date).toISOString(), flags: op.flags,
      };
      if (op.envelopeFrom !== undefined) event.envelopeFrom = op.envelopeFrom;
      return [{ offset: 0, event }];
    }
    case 'message.flags':
      return op.set.flatMap(([uid, flags], i) => flagEvents(about(op.id), op.id, uid, flags, context).map((e) => ({ offset: 2 * i + e.offset, event: e.event })));
    case 'message.expunge': {
      for (const uid of op.uids) context.swapFlags(op.id, uid, undefined);
      // the expunges of a mailbox delete (purge) are part of its MailboxDelete
      return op.purge ? [] : [{ offset: 0, event: { event: 'MessageExpunge', ...about(op.id), uids: op.uids } }];
    }
    case 'acl.set':
      return [{ offset: 0, event: { event: 'AclChange', ...about(op.id), identifier: op.identifier, rights: op.rights } }];
    case 'mailbox.owner':
      return [{ offset: 0, event: { event: 'AclChange', ...about(op.id), ...(op.owner === null ? {} : { owner: op.owner }) } }];
    case 'state.mailbox':
      context.named(op.info.id, formatMailboxName(op.info.name), op.info.uidValidity);
      return [];
    case 'mailbox.uidValidity': // a promotion's (docs/REPLICATION.md): later events carry the new one
      context.named(op.id, context.mailbox(op.id).name, op.uidValidity);
      return [];
    default:
      return []; // change.purge, change.floor, blob.relocate(Run), blob.forget(Run), meta.set, checkpoints: no change a consumer sees
  }
}

function flagEvents(base: Omit<MailEvent, 'cursor' | 'event'>, id: Buffer, uid: number, flags: string[], context: EventContext): { offset: number; event: Omit<MailEvent, 'cursor'> }[] {
  const before = context.swapFlags(id, uid, flags);
  // In the message's last slot, so a reader resuming after its first slot (a FlagsSet it had
  // from a reader that knew the flags) still learns the outcome.
  if (!before) return [{ offset: 1, event: { event: 'FlagsSet', ...base, uid, flags, allFlags: true } }];
  const set = flags.filter((f) => !before.includes(f));
  const cleared = before.filter((f) => !flags.includes(f));
  const out: { offset: number; event: Omit<MailEvent, 'cursor'> }[] = [];
  if (set.length) out.push({ offset: 0, event: { event: 'FlagsSet', ...base, uid, flags: set } });
  if (cleared.length) out.push({ offset: 1, event: { event: 'FlagsClear', ...base, uid, flags: cleared } });
  return out;
}

/** What events are read from: the journal, the index (names) and the committed seq. */
export type EventSource = Pick<Store, 'maintenance' | 'changes'>;

export interface ReadEventsOptions {
  /** Called for journal damage met on the way (the records after it are still read). */
  onDamage?: (damage: JournalDamage) => void;
  /** Carries names and flags from one call to the next (a follower); a fresh one by default. */
  context?: EventContext;
  /** Called with the seq of every record read, events or not (a follower's position). */
  onRecord?: (seq: number) => void;
}

/** Every event after `since`, in commit order, up to the journal's current end. */
export async function* readEvents(store: EventSource, since: EventCursor, options: ReadEventsOptions = {}): AsyncGenerator<MailEvent> {
  const context = options.context ?? new EventContext(store);
  // the record `since` names is read again when the cursor is inside it
  const afterSeq = since.slot === Infinity ? since.seq : Math.max(0, since.seq - 1);
  checkCursor(store, since, afterSeq);
  // Only records whose batch committed: the journal file also holds a batch still being written,
  // which may yet fail (its records are cut off and its seqs go to the next batch) or be lost in a
  // crash. Its events were handed out, and a consumer that stored their cursor skipped the change
  // that later took the seq.
  const committed = store.changes.lastSeq;
  // A record the journal lost to damage is skipped by its read (and reported to onDamage): its
  // events would be missing from the list without a word. Every committed record after the
  // cursor must be there, one after the other.
  let expected = Math.max(afterSeq + 1, store.maintenance().journal.firstSeq);
  for await (const record of store.maintenance().journal.read(afterSeq, options.onDamage ?? (() => {}))) {
    if (record.seq > committed) break;
    if (record.seq !== expected) throw missingRecords(expected, record.seq - 1);
    expected = record.seq + 1;
    const payload = decodeCbor<JournalPayload>(record.payload);
    // names read from the index synchronously (EventContext.mailbox): not in an index reopen
    const index = store.maintenance().index;
    const events = index.whenOpen() ? await index.readNow(() => recordEvents(record.seq, payload, context)) : recordEvents(record.seq, payload, context);
    for (const { slot, event } of events) {
      if (isAfter(since, record.seq, slot)) yield { cursor: `${record.seq}.${slot}`, ...event };
    }
    options.onRecord?.(record.seq);
  }
  if (expected <= committed) throw missingRecords(expected, committed);
}

function missingRecords(from: number, to: number): MailstoreError {
  const which = from === to ? `record ${from}` : `records ${from}..${to}`;
  return new MailstoreError('CORRUPT', `the journal has no ${which} (damaged): the changes there cannot be listed, and nothing after them is listed past the gap unasked; run 'mailstore scrub' (RECOVERY.md), or give --since ${to} to go on after them`);
}

/**
 * A cursor whose next records were retired is NOT_FOUND: the journal read starts at the oldest
 * segment kept, so those changes were silently missing from the events (a consumer that fell
 * behind the retirement, a cursor kept from long ago). "0" is a reader with no past: it starts at
 * the oldest change kept. A cursor past the newest change is INVALID: it is another store's, or
 * this one's before a restore or a failover to a replica that was behind, and the seqs up to it
 * name other changes here (a follower waited for them to pass and listed none of them).
 */
function checkCursor(store: EventSource, since: EventCursor, afterSeq: number): void {
  const last = store.changes.lastSeq;
  if (since.seq > last) {
    throw new MailstoreError('INVALID', `event cursor ${formatCursor(since)} is past the newest change of this store (seq ${last}): it was not read here (another store's, or this one's before a restore or a failover); its seqs name other changes here, so start again from a cursor this store printed`);
  }
  const first = store.maintenance().journal.firstSeq;
  if (since.seq === 0 || afterSeq + 1 >= first) return;
  throw new MailstoreError('NOT_FOUND', `the changes after cursor ${formatCursor(since)} were retired (or the journal rewritten by reconstruct): it now starts at seq ${first}, so they cannot be listed (--since 0 lists from the oldest kept; a consumer registered with 'mailstore consumers' holds the journal back for itself)`);
}

/** Records between a consumer's cursor and the journal's end (mailstore_consumer_lag_records). */
export function lagRecords(store: Pick<Store, 'maintenance'>, cursor: EventCursor): number {
  return Math.max(0, store.maintenance().journal.lastSeq - cursor.seq);
}
