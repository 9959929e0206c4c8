// An incremental backup's state: the newest earlier snapshot of the same store plus what the
// store says changed since its seq (src/store/state-since.ts), instead of a read of the whole
// state. The result is the same whole state a full read gives (every snapshot file stays whole:
// no chain between snapshots, so forget and prune treat every snapshot alone). Each changed
// mailbox is checked against its own counters (messages, bytes, unseen); one that disagrees is
// read whole from the store.
import { MailstoreError, isMailstoreError } from '../errors.js';
import { backupLimits, limits } from '../limits.js';
import type { MailboxInfo, Op } from '../store/records.js';
import type { StateChange, StateMessage, StateSince } from '../store/state-since.js';
import { SEEN } from '../store/apply.js';
import { newSnapshotCache, type Repository, type SnapshotCache, type SnapshotFile } from './repository.js';
import { listTips, readTip, type Tip } from './tip.js';
import { sealedUnderOtherKeys } from './format.js';

export interface Box {
  info: MailboxInfo;
  messages: Map<number, StateMessage>;
  /** uid -> its change-log entries (one, unless a purge or XFER left more). */
  changes: Map<number, [modseq: number, value: StateChange[2]][]>;
  /** What applySince changed in it (a delta snapshot records this, delta.ts); absent when unchanged. */
  delta?: BoxDelta;
}

/** A changed mailbox: the uids whose message or change-log entries were read again (whole: every one of them). */
export interface BoxDelta {
  whole: boolean;
  /** A message read again names another blob than the parent's record of its uid (or the uid is new). */
  newHashes?: boolean;
  uids: Set<number>;
  changeUids: Set<number>;
}

export interface StateModel {
  seq: number;
  /**
   * applySince found a message whose blob the parent's record at its uid did not name (new, or
   * a mailbox read whole): only then may the state name a blob the parent did not, and the
   * backup looks its blobs up in the index (without it, no blob set of the parent is needed).
   */
  newHashes?: boolean;
  meta: [string, unknown][];
  /** By mailbox id (hex). */
  boxes: Map<string, Box>;
}

/** The snapshot an incremental run builds on: its tip (tip.ts), or when it has none that reads, the snapshot decoded whole and its chain. */
export interface ParentSnapshot {
  id: string;
  tip?: Tip;
  snapshot?: SnapshotFile;
  chain?: string[];
}

/**
 * The newest snapshot of `storeId` among the few newest snapshot files, or undefined (none, or
 * none that reads: the backup then reads the whole state; check reports the damage). A snapshot
 * with a tip is not decoded: the files of its chain are only checked against their names.
 */
export async function findParent(repo: Repository, storeId: string): Promise<ParentSnapshot | undefined> {
  const named = await repo.list('snapshots');
  const dated: { id: string; time: number }[] = [];
  for (const id of named) {
    const stat = await repo.fs.statIfExists(repo.path('snapshots', id));
    if (stat) dated.push({ id, time: stat.mtimeMs });
  }
  // newest first; a file dated beyond clockAheadMaxMs (written under a wrong clock) last
  const ahead = (time: number) => Number(time > Date.now() + backupLimits.clockAheadMaxMs);
  dated.sort((a, b) => ahead(a.time) - ahead(b.time) || b.time - a.time);
  const cache: SnapshotCache = { ...newSnapshotCache(), chains: new Map() };
  const tips = await listTips(repo);
  const candidates = dated.slice(0, backupLimits.parentCandidatesMax);
  let foreign: MailstoreError | undefined;
  let fits = false;
  for (const { id } of candidates) {
    try {
      const tip = await readTip(repo, id, tips);
      if (tip) {
        fits = true;
        if (tip.storeId !== storeId) continue;
        for (const file of [...tip.chain, id]) await repo.verifySnapshotFile(file);
        return { id, tip };
      }
      const snapshot = await repo.readSnapshot(id, cache);
      fits = true;
      if (snapshot.storeId === storeId) return { id, snapshot, chain: cache.chains!.get(id) ?? [] };
    } catch (error) {
      if (!isMailstoreError(error)) throw error;
      if (sealedUnderOtherKeys(error)) foreign ??= error;
    }
  }
  // every snapshot looked at is whole and sealed under other keys, none fits: the config is another
  // repository's (made with the same key file). A run on would write files under these keys beside
  // the repository's own, two key sets in one directory: refused before anything is written.
  if (foreign && !fits) {
    throw new MailstoreError('REFUSED', `the repository's snapshots are sealed under other keys than its config's (${foreign.path}): the config is another repository's; ` +
      `nothing was written. Put back the repository's own config (backup check says config-mismatch), or back up into a new repository`, { path: repo.path('config') });
  }
  return undefined;
}

/** The parent decoded whole (a run that must write a whole snapshot, or a parent without a tip). */
export async function decodedParent(repo: Repository, parent: ParentSnapshot): Promise<{ snapshot: SnapshotFile; chain: string[] }> {
  if (parent.snapshot) return { snapshot: parent.snapshot, chain: parent.chain ?? [] };
  const cache: SnapshotCache = { ...newSnapshotCache(), chains: new Map() };
  const snapshot = await repo.readSnapshot(parent.id, cache);
  return { snapshot, chain: cache.chains!.get(parent.id) ?? [] };
}

export function modelOf(snapshot: Pick<SnapshotFile, 'seq' | 'ops'>): StateModel {
  const model: StateModel = { seq: snapshot.seq, meta: [], boxes: new Map() };
  for (const op of snapshot.ops) {
    if (op.op === 'state.meta') model.meta.push(...op.entries);
    else if (op.op === 'state.mailbox') model.boxes.set(hex(op.info.id), { info: op.info, messages: new Map(), changes: new Map() });
    else if (op.op === 'state.messages') {
      const box = model.boxes.get(hex(op.id));
      if (box) for (const m of op.messages) box.messages.set(m[0], m);
    } else if (op.op === 'state.changes') {
      const box = model.boxes.get(hex(op.id));
      if (box) for (const [modseq, uid, value] of op.entries) addChange(box, modseq, uid, value);
    }
  }
  return model;
}

/** The parent's model moved to the state `since` read; returns how many mailboxes were read whole. */
export async function applySince(model: StateModel, since: StateSince): Promise<number> {
  let readWhole = 0;
  const next = new Map<string, Box>();
  const unchanged = (info: MailboxInfo, parent: Box | undefined) => parent && !since.touched.has(hex(info.id)) && parent.info.highestModseq === info.highestModseq;
  // every changed mailbox's recent change-log entries at once: a range read is a round trip to
  // LevelDB's thread pool, and one after another they were most of this on a loaded machine
  const recent = new Map<string, Promise<StateChange[]>>();
  for (const info of since.mailboxes) {
    const parent = model.boxes.get(hex(info.id));
    if (!parent || unchanged(info, parent)) continue;
    const read = since.changesAfter(Buffer.from(info.id), parent.info.highestModseq);
    read.catch(() => undefined); // awaited in its turn; a failure meanwhile is not unhandled
    recent.set(hex(info.id), read);
  }
  for (const info of since.mailboxes) {
    const key = hex(info.id);
    const id = Buffer.from(info.id);
    const parent = model.boxes.get(key);
    if (parent && unchanged(info, parent)) {
      next.set(key, { info, messages: parent.messages, changes: parent.changes });
      continue;
    }
    let box = parent && await changedBox(parent, info, id, since, await recent.get(key)!);
    if (!box || !agrees(box)) {
      box = await wholeBox(info, id, since);
      readWhole++;
      model.newHashes = true; // not compared with the parent: any of its blobs may be new
    }
    if (box.delta?.newHashes) model.newHashes = true;
    next.set(key, box);
  }
  model.boxes = next;
  model.meta = since.meta;
  model.seq = since.appliedSeq;
  return readWhole;
}

/**
 * What a changed mailbox's delta reads again: the uids the journal and the change log name, each
 * uid's modseqs whose change-log entries may exist, and the entries above the parent's
 * highestModseq (all in `recent`, from the same LevelDB snapshot: one missing there does not exist).
 */
export function touchedIn(since: StateSince, id: Buffer, recent: StateChange[]): {
  uids: Set<number>; candidates: Map<number, Set<number>>; candidate: (uid: number, modseq: number) => void; above: Map<string, StateChange[2]>;
} {
  const touched = since.touched.get(hex(id));
  const uids = new Set<number>(touched?.uids);
  const candidates = new Map<number, Set<number>>(); // uid -> modseqs of entries that may exist
  const candidate = (uid: number, modseq: number) => {
    let set = candidates.get(uid);
    if (!set) candidates.set(uid, (set = new Set()));
    set.add(modseq);
  };
  const above = new Map<string, StateChange[2]>();
  for (const [modseq, uid, value] of recent) { uids.add(uid); candidate(uid, modseq); above.set(`${modseq} ${uid}`, value); }
  for (const [modseq, uid] of touched?.entries ?? []) { uids.add(uid); candidate(uid, modseq); }
  return { uids, candidates, candidate, above };
}

/**
 * The current message records of `uids` (undefined: none there), read in one getMany, but for the
 * uids the journal expunged last (`gone`): nothing is read for them. A message still there
 * after all would make the mailbox disagree with its counters, and it is then read whole.
 */
export async function messagesNow(since: StateSince, id: Buffer, uids: number[]): Promise<(StateMessage | undefined)[]> {
  const gone = since.touched.get(hex(id))?.gone;
  if (!gone || gone.size === 0) return since.messages(id, uids);
  const live = uids.filter((uid) => !gone.has(uid));
  const read = await since.messages(id, live);
  const out: (StateMessage | undefined)[] = new Array(uids.length);
  for (let i = 0, j = 0; i < uids.length; i++) out[i] = gone.has(uids[i]!) ? undefined : read[j++];
  return out;
}

/** The parent's mailbox with every uid the journal or the change log names (`recent`: its entries above the parent's highestModseq) read again. */
async function changedBox(parent: Box, info: MailboxInfo, id: Buffer, since: StateSince, recent: StateChange[]): Promise<Box> {
  const box: Box = { info, messages: parent.messages, changes: parent.changes }; // the parent's model is not used again
  const delta: BoxDelta = { whole: false, uids: new Set(), changeUids: new Set() };
  box.delta = delta;
  // a candidate above the parent's highestModseq is looked up in `recent`, not in the index
  const { uids, candidates, candidate, above } = touchedIn(since, id, recent);
  // the uids' messages, then their candidate entries, each in one read on LevelDB's thread pool
  // (a getSync per key was most of this phase: ~5,000 of them in the bench's run)
  const uidList = [...uids];
  const messages = await messagesNow(since, id, uidList);
  uidList.forEach((uid, i) => {
    delta.uids.add(uid);
    const message = messages[i];
    const before = box.messages.get(uid);
    if (message && (!before || !sameBytes(before[1], message[1]))) delta.newHashes = true;
    for (const [modseq] of parent.changes.get(uid) ?? []) candidate(uid, modseq);
    if (message) box.messages.set(uid, message);
    else box.messages.delete(uid);
    if (message) candidate(uid, message[5]);
  });
  const sorted = [...candidates].map(([uid, modseqs]): [number, number[]] => [uid, [...modseqs].sort((a, b) => a - b)]);
  const below: [number, number][] = [];
  for (const [uid, modseqs] of sorted) for (const modseq of modseqs) if (modseq <= parent.info.highestModseq) below.push([modseq, uid]);
  const values = await since.changes(id, below);
  const found = new Map<string, StateChange[2]>();
  below.forEach(([modseq, uid], i) => { if (values[i] !== undefined) found.set(`${modseq} ${uid}`, values[i]!); });
  // every candidate entry of a named uid is looked up: present ones stay, the rest are gone
  for (const [uid, modseqs] of sorted) {
    delta.changeUids.add(uid);
    const entries: [number, StateChange[2]][] = [];
    for (const modseq of modseqs) {
      const value = (modseq > parent.info.highestModseq ? above : found).get(`${modseq} ${uid}`);
      if (value !== undefined) entries.push([modseq, value]);
    }
    if (entries.length > 0) box.changes.set(uid, entries);
    else box.changes.delete(uid);
  }
  return box;
}

async function wholeBox(info: MailboxInfo, id: Buffer, since: StateSince): Promise<Box> {
  const read = await since.mailbox(id);
  const box: Box = { info, messages: new Map(), changes: new Map(), delta: { whole: true, uids: new Set(), changeUids: new Set() } };
  for (const m of read.messages) box.messages.set(m[0], m);
  for (const [modseq, uid, value] of read.changes) addChange(box, modseq, uid, value);
  return box;
}

/** The mailbox's counters agree with its messages (a missed change would show here). */
function agrees(box: Box): boolean {
  let bytes = 0;
  let unseen = 0;
  for (const m of box.messages.values()) {
    bytes += m[2];
    if (!m[4].includes(SEEN)) unseen++;
  }
  return box.messages.size === box.info.messages && bytes === box.info.bytes && unseen === box.info.unseen;
}

/** The model as checkpoint ops in the order snapshotState gives them (mailboxes by id, uids and modseqs ascending). */
export function opsOf(model: StateModel, options: { mailboxesOnly?: boolean } = {}): Op[] {
  const per = limits.checkpointEntriesPerRecord;
  const ops: Op[] = [{ op: 'state.begin', appliedSeq: model.seq }];
  for (let i = 0; i < model.meta.length; i += per) ops.push({ op: 'state.meta', entries: model.meta.slice(i, i + per) });
  const boxes = [...model.boxes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, box]) => box);
  for (const box of boxes) ops.push({ op: 'state.mailbox', info: box.info });
  if (options.mailboxesOnly) return ops; // a delta snapshot's head (delta.ts)
  for (const box of boxes) {
    const list = [...box.messages.values()].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < list.length; i += per) ops.push({ op: 'state.messages', id: box.info.id, messages: list.slice(i, i + per) });
  }
  for (const box of boxes) {
    const list: StateChange[] = [];
    for (const [uid, entries] of box.changes) for (const [modseq, value] of entries) list.push([modseq, uid, value]);
    list.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let i = 0; i < list.length; i += per) ops.push({ op: 'state.changes', id: box.info.id, entries: list.slice(i, i + per) });
  }
  return ops;
}

export function addChange(box: Box, modseq: number, uid: number, value: StateChange[2]): void {
  const list = box.changes.get(uid);
  if (list) list.push([modseq, value]);
  else box.changes.set(uid, [[modseq, value]]);
}

const hex = (id: Uint8Array) => Buffer.from(id).toString('hex');
const view = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const sameBytes = (a: Uint8Array, b: Uint8Array) => view(a).equals(view(b));

/** Why an incremental read gave up (the backup reads the whole state instead): only the world's reasons. */
export function fallbackReason(error: unknown): string {
  if (error instanceof MailstoreError) return error.message;
  throw error;
}
