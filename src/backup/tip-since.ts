// An incremental run on a parent's tip (tip.ts): the store's changes since the parent's seq
// (state-since.ts) applied to the parent's columns, giving the delta snapshot to write, the new
// state's counts, the blobs the parent does not hold, and the new state's tip, in work that
// follows what changed (and typed-array loops over the changed mailboxes), not a decode of the
// parent's whole state. The rules are incremental.ts's: every uid the journal names and every
// change-log entry it may concern is read again from one LevelDB snapshot; a changed mailbox whose
// columns then disagree with its own counters (messages, bytes, unseen) is read whole.
import { backupLimits, limits } from '../limits.js';
import { phase } from '../phases.js';
import { SEEN } from '../store/apply.js';
import type { MailboxInfo, Op } from '../store/records.js';
import type { StateChange, StateMessage, StateSince, TouchedMailbox } from '../store/state-since.js';
import { neededBlob, type NeededBlob } from './needed-blob.js';
import type { DeltaBox, SnapshotDelta } from './delta.js';
import { formatMailboxName } from '../store/validate.js';
import { listIn, type SnapshotCounts } from './repository.js';
import { HASH_BYTES, compareHashes, searchHash, type Tip, type TipBox } from './tip.js';
import { messagesNow } from './incremental.js';

type Entries = [modseq: number, value: StateChange[2]][];

export interface TipRun {
  /** The new state's tip (its snapshot id is set once the snapshot file is encoded). */
  tip: Tip;
  /** The delta snapshot's head ops: state.begin, state.meta, state.mailbox (mailboxes by id). */
  ops: Op[];
  delta: SnapshotDelta;
  counts: SnapshotCounts;
  /** Blobs of the new state the parent did not hold in the repository (looked up in the index). */
  needed: NeededBlob[];
  readWhole: number;
}

const hex = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');

/** The parent's tip moved to the state `since` read. `depth` and `chain` are the new snapshot's. */
export async function applySinceToTip(parent: Tip, since: StateSince, snapshot: Pick<Tip, 'depth' | 'chain'>): Promise<TipRun> {
  const table = new HashTable(parent.hashes);
  const unchanged = (info: MailboxInfo, box: TipBox | undefined) => box && !since.touched.has(hex(info.id)) && box.info.highestModseq === info.highestModseq;
  // every changed mailbox's change-log entries from where its delta needs them, at once (one round
  // trip each to LevelDB's thread pool)
  const logs = new Map<string, Promise<ChangeLogRead>>();
  for (const info of since.mailboxes) {
    const box = parent.boxes.get(hex(info.id));
    if (!box || unchanged(info, box)) continue;
    const from = changeLogFrom(box, since.touched.get(hex(info.id)));
    const read = since.changesAfter(Buffer.from(info.id), from - 1).then((entries) => ({ from, entries }));
    read.catch(() => undefined); // awaited in its turn
    logs.set(hex(info.id), read);
  }
  // the changed mailboxes read several at once (their reads overlap on the thread pool), then
  // taken in the store's order; one whose counters disagree is read whole
  const read = await inFlight(since.mailboxes, backupLimits.changedMailboxReadsInFlight, async (info) => {
    const before = parent.boxes.get(hex(info.id));
    if (!before || unchanged(info, before)) return undefined;
    return changedBox(before, info, since, await logs.get(hex(info.id))!, table);
  });
  const boxes = new Map<string, TipBox>();
  const deltas: DeltaBox[] = [];
  let readWhole = 0;
  for (const [i, info] of since.mailboxes.entries()) {
    const key = hex(info.id);
    const before = parent.boxes.get(key);
    if (before && unchanged(info, before)) { boxes.set(key, { ...before, info }); continue; }
    let changed = read[i];
    if (!changed || !agrees(changed.box)) {
      changed = await wholeBox(info, since, table);
      readWhole++;
    }
    boxes.set(key, changed.box);
    deltas.push(changed.delta);
  }
  phase('changed mailboxes read');
  const { counts, needed } = tally(boxes, table, presentRefs(parent));
  phase('state counted');
  const hashes = table.finish(boxes);
  phase('hash table merged');
  const tip: Tip = { snapshot: '', storeId: parent.storeId, seq: since.appliedSeq, journalDigest: since.appliedDigest, ...snapshot, counts, hashes, boxes };
  return { tip, ops: headOps(since, boxes), delta: { boxes: deltas }, counts, needed, readWhole };
}

/** `work` on every item, at most `limit` at once; the results in the items' order. */
async function inFlight<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await work(items[i]!);
      } catch (error) {
        next = items.length; // the others take no more
        throw error;
      }
    }
  };
  // every worker finished before a failure is thrown: none reads the store's snapshot after the caller closes it
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return out;
}

/** A changed mailbox's change-log entries with a modseq from `from` up, as the store holds them now (ascending by modseq, then uid). */
interface ChangeLogRead { from: number; entries: StateChange[] }

/**
 * The lowest modseq a changed mailbox's change log is read from: above the parent's
 * highestModseq every entry is new and read; at or below it only the entries the journal may have
 * removed (the parent's of the uids it names, and those it names itself) are wanted. They are read
 * in the same range read when the range holds not many more than them (backupLimits
 * .changeRangeSpareEntries); else the lowest is the parent's highestModseq + 1 and they are looked
 * up one by one.
 */
function changeLogFrom(parent: TipBox, touched: TouchedMailbox | undefined): number {
  const highest = parent.info.highestModseq;
  let lowest = highest + 1, wanted = 0;
  for (const uid of touched?.uids ?? []) {
    for (let i = firstChange(parent, uid); i < parent.changeUids.length && parent.changeUids[i] === uid; i++) {
      wanted++;
      lowest = Math.min(lowest, parent.changeModseqs[i]!);
    }
  }
  for (const [modseq] of touched?.entries ?? []) {
    if (modseq > highest) continue;
    wanted++;
    lowest = Math.min(lowest, modseq);
  }
  if (wanted === 0) return highest + 1;
  let inRange = 0;
  for (let i = 0; i < parent.changeModseqs.length; i++) if (parent.changeModseqs[i]! >= lowest) inRange++;
  // from modseq 1 at the lowest: the read asks for entries after from - 1, a u64 (a modseq 0 is looked up)
  return inRange <= 2 * wanted + backupLimits.changeRangeSpareEntries ? Math.max(lowest, 1) : highest + 1;
}

/**
 * A changed mailbox: the uids the journal and the change log name read again, merged into the
 * parent's columns. Their change-log entries from `log.from` up are those of the range read (one
 * missing there does not exist: the same LevelDB snapshot); each entry below it that may exist
 * (the parent's of the uid, the message's own, one the journal names) is looked up.
 */
async function changedBox(parent: TipBox, info: MailboxInfo, since: StateSince, log: ChangeLogRead, table: HashTable): Promise<{ box: TipBox; delta: DeltaBox }> {
  const id = Buffer.from(info.id);
  const highest = parent.info.highestModseq;
  const touched = since.touched.get(hex(info.id));
  const uids = new Set<number>(touched?.uids);
  for (const [modseq, uid] of log.entries) if (modseq > highest) uids.add(uid);
  const journalEntries = new Map<number, number[]>(); // uid -> modseqs of entries the journal names
  for (const [modseq, uid] of touched?.entries ?? []) { uids.add(uid); listIn(journalEntries, uid).push(modseq); }
  const uidList = [...uids].sort((a, b) => a - b);
  const messages = await messagesNow(since, id, uidList);
  // the named uids' entries the range read holds, in modseq order
  const ranged = new Map<number, Entries>();
  for (const [modseq, uid, value] of log.entries) if (uids.has(uid)) listIn(ranged, uid).push([modseq, value]);
  // the candidates below the range, by uid and modseq ascending (usually none: one scratch list)
  const below: [modseq: number, uid: number][] = [];
  const named = new Uint8Array(uidList.length); // 1: some entry of the uid may exist (its entries are recorded)
  const lower: number[] = [];
  for (let i = 0; i < uidList.length; i++) {
    const uid = uidList[i]!, message = messages[i], journal = journalEntries.get(uid);
    let c = firstChange(parent, uid);
    if ((c < parent.changeUids.length && parent.changeUids[c] === uid) || message || journal || ranged.has(uid)) named[i] = 1;
    lower.length = 0;
    for (; c < parent.changeUids.length && parent.changeUids[c] === uid; c++) if (parent.changeModseqs[c]! < log.from) lower.push(parent.changeModseqs[c]!);
    if (message && message[5] < log.from) lower.push(message[5]);
    for (const modseq of journal ?? []) if (modseq < log.from) lower.push(modseq);
    if (lower.length === 0) continue;
    lower.sort((a, b) => a - b);
    for (let k = 0; k < lower.length; k++) if (k === 0 || lower[k] !== lower[k - 1]) below.push([lower[k]!, uid]);
  }
  const values = below.length > 0 ? await since.changes(id, below) : [];
  const found = new Map<number, Entries>();
  below.forEach(([modseq, uid], i) => { if (values[i] !== undefined) listIn(found, uid).push([modseq, values[i]!]); });
  // every candidate entry of a named uid was read or looked up: present ones stay, the rest are gone
  const entries: [number, Entries][] = [];
  for (let i = 0; i < uidList.length; i++) {
    if (!named[i]) continue;
    const uid = uidList[i]!, older = found.get(uid), read = ranged.get(uid) ?? [];
    entries.push([uid, older ? older.concat(read) : read]);
  }
  const reread = uidList.map((uid, i): [number, StateMessage | undefined] => [uid, messages[i]]);
  const box = { ...mergeMessages(parent, info, reread, table), ...mergeChanges(parent, entries) };
  const present = reread.filter(([, m]) => m).map(([, m]) => m!);
  const removed = reread.filter(([, m]) => !m).map(([uid]) => uid);
  return { box, delta: [info.id, 0, present, removed, entries] };
}

/** A mailbox read whole from the store (new, or its counters disagreed with the changes). */
async function wholeBox(info: MailboxInfo, since: StateSince, table: HashTable): Promise<{ box: TipBox; delta: DeltaBox }> {
  const read = await since.mailbox(Buffer.from(info.id));
  const messages = [...read.messages].sort((a, b) => a[0] - b[0]);
  const byUid = new Map<number, Entries>();
  for (const [modseq, uid, value] of read.changes) {
    const list = byUid.get(uid);
    if (list) list.push([modseq, value]);
    else byUid.set(uid, [[modseq, value]]);
  }
  const entries = [...byUid].sort((a, b) => a[0] - b[0]).map(([uid, list]): [number, Entries] => [uid, list.sort((a, b) => a[0] - b[0])]);
  const empty: TipBox = { info, uids: new Uint32Array(0), sizes: new Uint32Array(0), seen: new Uint8Array(0), refs: new Uint32Array(0), changeUids: new Uint32Array(0), changeModseqs: new Float64Array(0) };
  const box = { ...mergeMessages(empty, info, messages.map((m) => [m[0], m]), table), ...mergeChanges(empty, entries) };
  return { box, delta: [info.id, 1, messages, [], entries] };
}

/** Where `uid`'s change-log entries start in the parent's columns (sorted by uid). */
function firstChange(box: TipBox, uid: number): number {
  let lo = 0, hi = box.changeUids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (box.changeUids[mid]! < uid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The parent's message columns with the uids read again (ascending) replaced, added or (undefined) removed. */
function mergeMessages(parent: TipBox, info: MailboxInfo, reread: [number, StateMessage | undefined][], table: HashTable): TipBox {
  const n = parent.uids.length;
  const cap = n + reread.length;
  const out = { uids: new Uint32Array(cap), sizes: new Uint32Array(cap), seen: new Uint8Array(cap), refs: new Uint32Array(cap) };
  let i = 0, o = 0;
  for (const [uid, message] of reread) {
    while (i < n && parent.uids[i]! < uid) {
      out.uids[o] = parent.uids[i]!; out.sizes[o] = parent.sizes[i]!; out.seen[o] = parent.seen[i]!; out.refs[o] = parent.refs[i]!;
      i++; o++;
    }
    const previous = i < n && parent.uids[i] === uid ? parent.refs[i++]! : -1;
    if (!message) continue;
    out.uids[o] = uid;
    out.sizes[o] = message[2];
    out.seen[o] = message[4].includes(SEEN) ? 1 : 0;
    out.refs[o] = previous >= 0 && table.is(previous, message[1]) ? previous : table.refOf(message[1]);
    o++;
  }
  const rest = n - i;
  out.uids.set(parent.uids.subarray(i), o); out.sizes.set(parent.sizes.subarray(i), o); out.seen.set(parent.seen.subarray(i), o); out.refs.set(parent.refs.subarray(i), o);
  o += rest;
  return { ...parent, info, uids: out.uids.subarray(0, o), sizes: out.sizes.subarray(0, o), seen: out.seen.subarray(0, o), refs: out.refs.subarray(0, o) };
}

/** The parent's change-log columns with every entry of the uids given (ascending) replaced by those given. */
function mergeChanges(parent: TipBox, entries: [number, Entries][]): Pick<TipBox, 'changeUids' | 'changeModseqs'> {
  const n = parent.changeUids.length;
  const cap = n + entries.reduce((sum, [, list]) => sum + list.length, 0);
  const uids = new Uint32Array(cap), modseqs = new Float64Array(cap);
  let i = 0, o = 0;
  for (const [uid, list] of entries) {
    while (i < n && parent.changeUids[i]! < uid) { uids[o] = parent.changeUids[i]!; modseqs[o] = parent.changeModseqs[i]!; i++; o++; }
    while (i < n && parent.changeUids[i] === uid) i++;
    for (const [modseq] of list) { uids[o] = uid; modseqs[o] = modseq; o++; }
  }
  uids.set(parent.changeUids.subarray(i), o);
  modseqs.set(parent.changeModseqs.subarray(i), o);
  o += n - i;
  return { changeUids: uids.subarray(0, o), changeModseqs: modseqs.subarray(0, o) };
}

/** The mailbox's counters agree with its columns (a missed change would show here). */
function agrees(box: TipBox): boolean {
  let bytes = 0, seen = 0;
  for (let i = 0; i < box.uids.length; i++) { bytes += box.sizes[i]!; seen += box.seen[i]!; }
  return box.uids.length === box.info.messages && bytes === box.info.bytes && box.uids.length - seen === box.info.unseen;
}

/** The parent's blobs that are in the repository: those its mailboxes not being deleted name (the parent's run copied them). */
function presentRefs(parent: Tip): Uint8Array {
  const present = new Uint8Array(parent.hashes.length / HASH_BYTES);
  const boxes = [...parent.boxes.values()];
  // a tip's table holds only hashes its messages name: without a mailbox being deleted, all of them
  if (!boxes.some((box) => box.info.deleting)) return present.fill(1);
  for (const box of boxes) if (!box.info.deleting) for (let i = 0; i < box.refs.length; i++) present[box.refs[i]!] = 1;
  return present;
}

/**
 * The new state's counts and the blobs it needs that the parent did not hold. As backup.ts's
 * tally: a mailbox being deleted is kept in the state, but its messages are neither counted nor
 * restored, so their blobs are not needed.
 */
function tally(boxes: Map<string, TipBox>, table: HashTable, present: Uint8Array): { counts: SnapshotCounts; needed: NeededBlob[] } {
  const counts: SnapshotCounts = { mailboxes: 0, messages: 0, bytes: 0, blobs: 0 };
  const seen = new Uint8Array(table.size);
  const needed: NeededBlob[] = [];
  for (const box of boxes.values()) {
    if (box.info.deleting) continue;
    counts.mailboxes++;
    counts.messages += box.uids.length;
    let name: string | undefined;
    for (let i = 0; i < box.uids.length; i++) {
      counts.bytes += box.sizes[i]!;
      const ref = box.refs[i]!;
      if (seen[ref]) continue;
      seen[ref] = 1;
      counts.blobs++;
      if (ref < present.length && present[ref]) continue;
      const hash = table.hashAt(ref);
      needed.push(neededBlob(hash, hash.toString('hex'), box.sizes[i]!, (name ??= formatMailboxName(box.info.name)), box.uids[i]!, 0, undefined));
    }
  }
  return { counts, needed };
}

function headOps(since: StateSince, boxes: Map<string, TipBox>): Op[] {
  const per = limits.checkpointEntriesPerRecord;
  const ops: Op[] = [{ op: 'state.begin', appliedSeq: since.appliedSeq }];
  for (let i = 0; i < since.meta.length; i += per) ops.push({ op: 'state.meta', entries: since.meta.slice(i, i + per) });
  const sorted = [...boxes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [, box] of sorted) ops.push({ op: 'state.mailbox', info: box.info });
  return ops;
}

/**
 * The parent's sorted table of distinct hashes and the hashes this run adds: a message names its
 * blob by an index into it. `finish` merges the new ones in and drops the ones no message names
 * any more, renumbering every mailbox's refs (once per run: a few typed-array passes).
 */
class HashTable {
  private readonly count: number;
  private readonly added: Buffer[] = [];
  private readonly addedRefs = new Map<string, number>();

  constructor(private readonly sorted: Buffer) {
    this.count = sorted.length / HASH_BYTES;
  }

  get size(): number {
    return this.count + this.added.length;
  }

  /** `ref` names exactly `hash`. */
  is(ref: number, hash: Uint8Array): boolean {
    return ref < this.count && compareHashes(this.sorted, ref * HASH_BYTES, hash, 0) === 0;
  }

  refOf(hash: Uint8Array): number {
    const { at, found } = searchHash(this.sorted, hash);
    if (found) return at;
    const copy = Buffer.from(hash); // a copy: the store's record may be a view into a larger buffer
    const key = copy.toString('latin1');
    let ref = this.addedRefs.get(key);
    if (ref === undefined) {
      ref = this.count + this.added.length;
      this.added.push(copy);
      this.addedRefs.set(key, ref);
    }
    return ref;
  }

  hashAt(ref: number): Buffer {
    return ref < this.count ? this.sorted.subarray(ref * HASH_BYTES, ref * HASH_BYTES + HASH_BYTES) : this.added[ref - this.count]!;
  }

  /**
   * The new sorted table; every box's refs renumbered into it. Plain loops and one copy per run of
   * kept old hashes: a run executes this once, mostly before the JIT has compiled it.
   */
  finish(boxes: Map<string, TipBox>): Buffer {
    const used = new Uint8Array(this.size);
    for (const box of boxes.values()) for (let i = 0; i < box.refs.length; i++) used[box.refs[i]!] = 1;
    let kept = 0;
    for (let r = 0; r < used.length; r++) kept += used[r]!;
    if (this.added.length === 0 && kept === this.count) return this.sorted;
    // each added hash with its place among the old ones (none of them is there: refOf looked)
    const added = this.added.map((hash, i) => ({ hash, ref: this.count + i, at: searchHash(this.sorted, hash).at }))
      .filter((a) => used[a.ref]).sort((a, b) => a.at - b.at || compareHashes(a.hash, 0, b.hash, 0));
    const remap = new Uint32Array(this.size);
    const out = Buffer.allocUnsafe(kept * HASH_BYTES);
    let o = 0, next = 0, i = 0;
    while (i <= this.count) {
      while (next < added.length && added[next]!.at === i) {
        added[next]!.hash.copy(out, o * HASH_BYTES);
        remap[added[next]!.ref] = o++;
        next++;
      }
      if (i === this.count) break;
      // the run of old hashes up to the next insertion point or unused one, copied at once
      const end = next < added.length ? added[next]!.at : this.count;
      const from = i;
      while (i < end && used[i]) { remap[i] = o + i - from; i++; }
      if (i > from) { this.sorted.copy(out, o * HASH_BYTES, from * HASH_BYTES, i * HASH_BYTES); o += i - from; }
      if (i < end && !used[i]) i++;
    }
    for (const [key, box] of boxes) {
      const refs = new Uint32Array(box.refs.length);
      for (let r = 0; r < refs.length; r++) refs[r] = remap[box.refs[r]!]!;
      boxes.set(key, { ...box, refs });
    }
    return out;
  }
}
