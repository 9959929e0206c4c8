// Delta snapshots (docs/BACKUP.md, "Delta snapshots"): an incremental run records only what
// changed since the snapshot it was built on: the meta entries and every mailbox record (small),
// and per changed mailbox the messages and change-log entries of the uids it read again (or the
// whole mailbox, when it was read whole). Readers never see a delta: Repository.readSnapshot
// applies it to its parent (read the same way) and hands out the whole state, so restore, check,
// forget and prune work on whole states as before. A chain is at most backupLimits.deltaChainMax
// deltas long; the next run then writes a whole snapshot.
import { MailstoreError } from '../errors.js';
import type { StateChange, StateMessage } from '../store/state-since.js';
import { modelOf, opsOf, type StateModel } from './incremental.js';
import type { SnapshotFile } from './repository.js';

type Entries = [modseq: number, value: StateChange[2]][];

/**
 * One changed mailbox: its id, 1 when the messages and entries given are all it holds (else they
 * replace the parent's of those uids), the messages, the uids removed, and per uid named its
 * change-log entries (an empty list: none left).
 */
export type DeltaBox = [id: Uint8Array, whole: 0 | 1, messages: StateMessage[], removed: number[], changes: [uid: number, entries: Entries][]];

export interface SnapshotDelta {
  boxes: DeltaBox[];
}

const ascending = (a: number, b: number) => a - b;
const hex = (id: Uint8Array) => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');

/** What applySince changed in the model (its mailboxes' `delta`s), as a snapshot delta. */
export function deltaOf(model: StateModel): SnapshotDelta {
  const boxes: DeltaBox[] = [];
  for (const box of model.boxes.values()) {
    const d = box.delta;
    if (!d) continue;
    if (d.whole) {
      const changes = [...box.changes.entries()].sort((a, b) => a[0] - b[0]);
      boxes.push([box.info.id, 1, [...box.messages.values()].sort((a, b) => a[0] - b[0]), [], changes]);
      continue;
    }
    const messages: StateMessage[] = [];
    const removed: number[] = [];
    for (const uid of [...d.uids].sort(ascending)) {
      const message = box.messages.get(uid);
      if (message) messages.push(message);
      else removed.push(uid);
    }
    const changes = [...d.changeUids].sort(ascending).map((uid): [number, Entries] => [uid, box.changes.get(uid) ?? []]);
    boxes.push([box.info.id, 0, messages, removed, changes]);
  }
  return { boxes };
}

/**
 * The whole state of a delta snapshot file: its parent's state (whole, already applied) with the
 * delta applied. Its own ops give the meta entries and every mailbox record; a mailbox absent from
 * them is gone. CORRUPT when the delta and the parent do not fit together.
 */
export function applyDelta(parent: SnapshotFile, file: SnapshotFile, path: string): SnapshotFile {
  const bad = (why: string) => new MailstoreError('CORRUPT', `${path}: ${why}`, { path });
  if (!file.delta) throw bad('a delta snapshot without its delta');
  if (parent.storeId !== file.storeId || parent.seq > file.seq) throw bad(`the snapshot it builds on (${file.parent?.slice(0, 12)}) is of another store or later`);
  const from = modelOf(parent);
  const head = modelOf(file); // meta and mailbox records only: empty mailboxes
  const changed = new Map(file.delta.boxes.map((box) => [hex(box[0]), box]));
  for (const [key, box] of head.boxes) {
    const d = changed.get(key);
    const before = from.boxes.get(key);
    if (!d || d[1] === 0) {
      if (!before) throw bad(`mailbox ${key.slice(0, 12)} is neither in the parent nor given whole`);
      box.messages = before.messages;
      box.changes = before.changes;
    }
    if (!d) continue;
    for (const m of d[2]) box.messages.set(m[0], m);
    for (const uid of d[3]) box.messages.delete(uid);
    for (const [uid, entries] of d[4]) {
      if (entries.length > 0) box.changes.set(uid, entries);
      else box.changes.delete(uid);
    }
  }
  for (const key of changed.keys()) if (!head.boxes.has(key)) throw bad(`the delta changes mailbox ${key.slice(0, 12)}, which it does not list`);
  const { delta: _, ...rest } = file;
  return { ...rest, ops: opsOf(head) };
}
