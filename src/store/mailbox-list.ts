// The mailbox list as text (ctl_mboxlist -d / -u): one JSON object per line with a mailbox's name,
// id, uidValidity, uidNext, highest modseq, owner, ACL and creation time, so an empty store can be
// given the same list (same ids and uidValidity, uids and modseqs going on above the listed ones:
// clients keep their caches) and a person can read and edit it.
// Lines starting with "#" and empty lines are ignored. Messages are not part of the list.
import { MailstoreError } from '../errors.js';
import { keys, decodeNameKey } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import { meta, modseqAt, uidValidityAfter, uidValidityLastAfter } from './apply.js';
import { raiseModseqsAbove } from './modseq-floor.js';
import type { MailboxInfo, Op } from './records.js';
import type { Store } from './store.js';
import { uuidString } from './types.js';
import { formatMailboxName, normalizeAcl, normalizeOwner, ownerKept, parseMailboxName } from './validate.js';

export interface DumpedMailbox {
  name: string;
  id: string;
  uidValidity: number;
  /**
   * Above every uid the mailbox gave (RFC 9051: never given again under its uidValidity). Absent
   * (an older dump, another server's list): undump gives the mailbox a new uidValidity.
   */
  uidNext?: number;
  /** The mailbox's highest modseq: undump's modseqs go on above it (RFC 7162). */
  highestModseq?: number;
  owner?: string;
  acl: Record<string, string>;
  created: number;
}

export const DUMP_HEADER = '# mailstore mailbox list v1: one JSON object per line {name, id, uidValidity, uidNext, highestModseq, owner?, acl, created}';

/** Mailboxes created per journal record by undump (a record is bounded, a list is not). */
const UNDUMP_MAILBOXES_PER_RECORD = 1000;

export async function* dumpMailboxes(store: Store): AsyncGenerator<DumpedMailbox> {
  const index = store.administration().index;
  for await (const [key, id] of index.entries<Buffer>({ prefix: keys.space(SPACE.name) })) {
    const read = () => index.getNow<MailboxInfo>(keys.info(Buffer.from(id)));
    const box = index.whenOpen() ? await index.readNow(read) : read(); // not in an index reopen
    if (!box || box.deleting) continue;
    const entry: DumpedMailbox = {
      name: formatMailboxName(decodeNameKey(key)), id: uuidString(Buffer.from(box.id)), uidValidity: box.uidValidity, uidNext: box.uidNext,
      highestModseq: box.highestModseq, acl: { ...box.acl }, created: box.created,
    };
    // an owner an older version took ("anyone", "-x") is no owner, and undump refuses it: its
    // rights are in the ACL, which goes as it is (restore takes such a mailbox the same way)
    const owner = ownerKept(box.owner);
    if (owner !== undefined) entry.owner = owner;
    yield entry;
  }
}

export function formatDumpLine(entry: DumpedMailbox): string {
  return JSON.stringify(entry);
}

/** Reads one line of a dump; INVALID names the line. */
export function parseDumpLine(line: string, lineNumber: number): DumpedMailbox | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const bad = (why: string) => new MailstoreError('INVALID', `mailbox list line ${lineNumber}: ${why}`);
  let value: Partial<DumpedMailbox>;
  try {
    value = JSON.parse(text) as Partial<DumpedMailbox>;
  } catch {
    throw bad('not a JSON object');
  }
  return checkDumpedMailbox(value, bad);
}

/**
 * One entry of a list as undump takes it, checked: a line of a dump, or an entry given to the
 * library or through the daemon's socket (which once took them as they came).
 */
function checkDumpedMailbox(given: unknown, bad: (why: string) => MailstoreError): DumpedMailbox {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw bad('not a JSON object');
  const value = given as Partial<DumpedMailbox>;
  if (typeof value.name !== 'string') throw bad('no name');
  parseMailboxName(value.name);
  if (typeof value.id !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value.id)) throw bad(`bad id ${JSON.stringify(value.id)}`);
  if (!Number.isSafeInteger(value.uidValidity) || value.uidValidity! < 1 || value.uidValidity! > 0xffffffff) throw bad(`bad uidValidity ${JSON.stringify(value.uidValidity)}`);
  const acl = normalizeAcl(value.acl ?? {});
  const entry: DumpedMailbox = { name: value.name, id: value.id, uidValidity: value.uidValidity!, acl, created: Number.isSafeInteger(value.created) ? value.created! : Date.now() };
  if (value.uidNext !== undefined) {
    if (!Number.isSafeInteger(value.uidNext) || value.uidNext < 1 || value.uidNext > 0x100000000) throw bad(`bad uidNext ${JSON.stringify(value.uidNext)}`);
    entry.uidNext = value.uidNext;
  }
  if (value.highestModseq !== undefined) {
    if (!Number.isSafeInteger(value.highestModseq) || value.highestModseq < 0) throw bad(`bad highestModseq ${JSON.stringify(value.highestModseq)}`);
    entry.highestModseq = value.highestModseq;
  }
  if (value.owner !== undefined) entry.owner = normalizeOwner(value.owner);
  return entry;
}

/**
 * Creates the listed mailboxes with their ids, uidValidity and uidNext, modseqs going on above
 * the highest listed. An entry without uidNext gets a new uidValidity: with its uids starting again
 * at 1, the old one let a client take a new message for the one it cached under that uid. Refuses
 * (EXISTS) a name or id the store already has, before anything of that record is written; records
 * are written in list order.
 */
export async function undumpMailboxes(store: Store, given: DumpedMailbox[]): Promise<{ created: number }> {
  if (!Array.isArray(given)) throw new MailstoreError('INVALID', 'a mailbox list is an array of entries');
  const entries = given.map((entry, at) => checkDumpedMailbox(entry, (why) => new MailstoreError('INVALID', `mailbox list entry ${at + 1}: ${why}`)));
  const names = new Set<string>();
  const ids = new Set<string>();
  for (const entry of entries) {
    // as stored (NFC): two spellings of one name would be two mailboxes under one name entry
    const name = formatMailboxName(parseMailboxName(entry.name));
    if (names.has(name)) throw new MailstoreError('INVALID', `mailbox ${entry.name} is listed twice${name === entry.name ? '' : ' (in two Unicode spellings of one name)'}`, { path: entry.name });
    if (ids.has(entry.id)) throw new MailstoreError('INVALID', `mailbox id ${entry.id} is listed twice`, { path: entry.name });
    names.add(name);
    ids.add(entry.id);
  }
  // a reduce, not a spread: a big server's list has more entries than a call takes arguments (~120k)
  const highest = entries.reduce((most, entry) => Math.max(most, entry.highestModseq ?? -1), -1);
  if (highest >= 0) await raiseModseqsAbove((prepare) => store.administration().mutate({ prepare }), store.administration().index, highest);
  let created = 0;
  for (let at = 0; at < entries.length; at += UNDUMP_MAILBOXES_PER_RECORD) {
    const chunk = entries.slice(at, at + UNDUMP_MAILBOXES_PER_RECORD);
    created += await store.administration().mutate({
      prepare: async ({ view, seq }) => {
        const ops: Op[] = [];
        let last = view.getNow<number>(meta.uidValidityLast) ?? 0; // as the ops before each one leave it
        for (const entry of chunk) {
          const components = parseMailboxName(entry.name);
          const id = Buffer.from(entry.id.replace(/-/g, ''), 'hex');
          if (view.getNow(keys.name(components))) throw new MailstoreError('EXISTS', `mailbox ${entry.name} already exists; nothing of this chunk was created`, { path: entry.name });
          if (view.getNow(keys.info(id))) throw new MailstoreError('EXISTS', `a mailbox with id ${entry.id} already exists (listed as ${entry.name})`, { path: entry.name });
          const uidValidity = entry.uidNext === undefined ? uidValidityAfter(last) : entry.uidValidity;
          last = uidValidityLastAfter(last, uidValidity);
          const op: Op = { op: 'mailbox.create', id, name: components, uidValidity, acl: entry.acl, created: entry.created };
          if (entry.owner !== undefined) op.owner = entry.owner;
          if (entry.uidNext !== undefined && entry.uidNext > 1) op.uidNext = entry.uidNext;
          ops.push(op);
          // a kept uidValidity: clients keep their caches of the old store's messages, which are
          // not here (a re-import gives them new uids), and no tombstone says so; from this
          // record's modseq (above every listed one) changesSince answers below it with the uid
          // ranges that hold no message (docs/FORMAT.md, "The vanished floor")
          if (entry.uidNext !== undefined) ops.push({ op: 'change.floor', id, floor: modseqAt(view, seq), entries: [] });
        }
        return { ops, result: chunk.length };
      },
    });
  }
  // uidValidityLast is raised by each create op, so mailboxes created later stay above every listed one.
  return { created };
}
