// A snapshot's tip (docs/BACKUP.md, "Tips"): what the next incremental run needs of it, in columns
// of typed arrays instead of the whole state as records. Per mailbox its record and, by uid, each
// message's size, \Seen bit and blob (an index into one sorted table of the distinct hashes), and
// the modseqs of the change-log entries. A run builds the next state's tip from it and the store's
// changes (tip-since.ts) without decoding the snapshot's chain, making a Map per mailbox or an
// object per message. A tip is a cache beside its snapshot, never a source of truth: it is named
// by the snapshot's id and its own content hash, so a damaged, torn or missing one is never used
// (the run then decodes the snapshot, as before tips), and nothing else reads it.
import { endianness } from 'node:os';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import { ensureDir, writeFileAtomic } from '../fs/durable.js';
import type { MailboxInfo, Op } from '../store/records.js';
import type { StateMessage } from '../store/state-since.js';
import { SEEN } from '../store/apply.js';
import { readRepositoryFile } from './repository-read.js';
import { FORMAT_VERSION, METADATA_STORED_BYTES_MAX, contentName, decodeMetadataFile, encodeMetadataFile, isContentName } from './format.js';
import type { StateModel } from './incremental.js';
import type { Repository, SnapshotCounts } from './repository.js';

export const HASH_BYTES = 32;
const TIP_VERSION = 1;

export interface TipBox {
  info: MailboxInfo;
  /** Ascending. */
  uids: Uint32Array;
  sizes: Uint32Array;
  /** 1: the message has \Seen. */
  seen: Uint8Array;
  /** Each message's blob: an index into Tip.hashes. */
  refs: Uint32Array;
  /** Change-log entries by (uid, modseq) ascending: the uid of each... */
  changeUids: Uint32Array;
  /** ...and its modseq. */
  changeModseqs: Float64Array;
}

export interface Tip {
  /** The snapshot this is the tip of (hex id); empty while a run builds it. */
  snapshot: string;
  storeId: string;
  seq: number;
  journalDigest?: string;
  /** The snapshot's depth: 0 whole, n the n-th delta on a whole one... */
  depth: number;
  /** ...and the snapshots it builds on, its whole one first (a run checks their files before building on the tip). */
  chain: string[];
  counts: SnapshotCounts;
  /** The distinct blobs the messages name, 32 bytes each, ascending. */
  hashes: Buffer;
  /** By mailbox id (hex). */
  boxes: Map<string, TipBox>;
}

type StoredBox = [info: MailboxInfo, uids: Uint8Array, sizes: Uint8Array, seen: Uint8Array, refs: Uint8Array, changeUids: Uint8Array, changeModseqs: Uint8Array];

interface StoredTip {
  version: number;
  snapshot: string;
  storeId: string;
  seq: number;
  journalDigest?: string;
  depth: number;
  chain: string[];
  counts: SnapshotCounts;
  hashes: Uint8Array;
  boxes: StoredBox[];
}

/** Typed arrays are stored as their bytes in this machine's order: tips are used only where that is little-endian. */
const usable = endianness() === 'LE';

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function copyInto<T extends Uint32Array | Float64Array | Uint8Array>(make: (n: number) => T, bytes: Uint8Array, path: string): T {
  const per = make(0).BYTES_PER_ELEMENT;
  if (bytes.byteLength % per !== 0) throw new MailstoreError('CORRUPT', `${path}: a column of the tip has a partial element`, { path });
  const out = make(bytes.byteLength / per);
  new Uint8Array(out.buffer).set(bytes); // a copy: CBOR's byte strings are not aligned
  return out;
}

/** The file's name in tips/: the snapshot's id and the file's own content hash. */
const tipName = (snapshot: string, bytes: Buffer) => `${snapshot}.${contentName(bytes)}`;

export function encodeTip(tip: Tip, repo: Pick<Repository, 'keys'>): Buffer {
  const value: StoredTip = {
    version: TIP_VERSION, snapshot: tip.snapshot, storeId: tip.storeId, seq: tip.seq, depth: tip.depth, chain: tip.chain, counts: tip.counts, hashes: tip.hashes,
    ...(tip.journalDigest ? { journalDigest: tip.journalDigest } : {}),
    boxes: [...tip.boxes.values()].map((b): StoredBox => [b.info, bytesOf(b.uids), bytesOf(b.sizes), bytesOf(b.seen), bytesOf(b.refs), bytesOf(b.changeUids), bytesOf(b.changeModseqs)]),
  };
  // level 0 (stored blocks, the same format): most of a tip is hashes, which deflate cannot
  // shrink, and compressing them anyway cost a run tens of ms
  return encodeMetadataFile('tip', value, repo.keys, FORMAT_VERSION, 0);
}

function decodeTip(bytes: Buffer, snapshot: string, hash: string, path: string, repo: Pick<Repository, 'keys'>): Tip {
  const value = decodeMetadataFile<StoredTip>('tip', bytes, hash, path, repo.keys);
  if (value.version !== TIP_VERSION || value.snapshot !== snapshot) throw new MailstoreError('CORRUPT', `${path}: not the tip of snapshot ${snapshot.slice(0, 12)}`, { path });
  const boxes = new Map<string, TipBox>();
  for (const [info, uids, sizes, seen, refs, changeUids, changeModseqs] of value.boxes) {
    const box: TipBox = {
      info, uids: copyInto((n) => new Uint32Array(n), uids, path), sizes: copyInto((n) => new Uint32Array(n), sizes, path), seen: copyInto((n) => new Uint8Array(n), seen, path),
      refs: copyInto((n) => new Uint32Array(n), refs, path), changeUids: copyInto((n) => new Uint32Array(n), changeUids, path), changeModseqs: copyInto((n) => new Float64Array(n), changeModseqs, path),
    };
    const n = box.uids.length;
    const hashCount = value.hashes.byteLength / HASH_BYTES;
    if (box.sizes.length !== n || box.seen.length !== n || box.refs.length !== n || box.changeModseqs.length !== box.changeUids.length || box.refs.some((r) => r >= hashCount)) {
      throw new MailstoreError('CORRUPT', `${path}: the tip's columns disagree`, { path });
    }
    boxes.set(Buffer.from(info.id).toString('hex'), box);
  }
  const { hashes } = value;
  return { ...value, hashes: Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength), boxes };
}

/**
 * Writes the tip of `tip.snapshot` before that snapshot file is written. Not synced: it is a cache
 * (a crash may leave it missing or torn, and its name then no longer matches its content, so it
 * is not used). Best effort: a tip that cannot be written costs the next run its speed, not this
 * run its snapshot (a full disk then fails the snapshot's own write with NO_SPACE).
 */
export async function writeTip(repo: Repository, tip: Tip, encoded = encodeTip(tip, repo)): Promise<string | undefined> {
  if (!usable) return undefined;
  const path = repo.path('tips', tipName(tip.snapshot, encoded));
  try {
    await ensureDir(repo.fs, repo.path('tips'));
    await writeFileAtomic(repo.fs, path, encoded);
    return path;
  } catch {
    return undefined;
  }
}

/** The tip of a snapshot, or undefined when it has none that reads (the caller decodes the snapshot instead). */
export async function readTip(repo: Repository, snapshot: string, names: string[]): Promise<Tip | undefined> {
  if (!usable) return undefined;
  for (const name of names) {
    const [id, hash] = name.split('.');
    if (id !== snapshot || !hash || !isContentName(hash)) continue;
    const path = repo.path('tips', name);
    try {
      return decodeTip(await readRepositoryFile(repo.fs, path, METADATA_STORED_BYTES_MAX), snapshot, hash, path, repo);
    } catch (error) {
      if (!isMailstoreError(error) && !(error as NodeJS.ErrnoException).code) throw error; // a bug, not a damaged cache
    }
  }
  return undefined;
}

/** The names in tips/ (none when the directory is missing: a repository of an older mailstore). */
export async function listTips(repo: Repository): Promise<string[]> {
  try {
    return (await repo.fs.readdir(repo.path('tips'))).filter((name) => !name.startsWith('.'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fromSystemError(error, 'listing', repo.path('tips'));
  }
}

/** The snapshot id a tip file belongs to. */
export const tipSnapshot = (name: string) => name.split('.')[0]!;

/**
 * Compares the 32-byte hashes at `a[aAt]` and `b[bAt]` (-1, 0, 1). A loop in JavaScript: it stops
 * at the first differing byte, and Buffer.compare with ranges costs a native call and argument
 * checks each (most of a run's lookups in a first profile).
 */
export function compareHashes(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number): number {
  for (let i = 0; i < HASH_BYTES; i++) {
    const d = a[aAt + i]! - b[bAt + i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * `hashes` (each HASH_BYTES long) in compareHashes order, as `sort(Buffer.compare)` gives them
 * (hashOrder): the 950,040 distinct hashes of a 1M-message store sorted in ~0.4 s with a comparator
 * on their first 6 bytes instead of ~1.8 s (BENCHMARKS.md session 22 "A full backup of the 1M store").
 */
export function sortHashes(hashes: Buffer[]): Buffer[] {
  const order = hashOrder(hashes.length, (i) => hashes[i]!);
  const out = new Array<Buffer>(hashes.length);
  for (let i = 0; i < hashes.length; i++) out[i] = hashes[order[i]!]!;
  return out;
}

/** hashOrder's keys: a hash's first 4 bytes times 2^ORDER_INDEX_BITS plus its index, exact in a double (53 bits). */
const ORDER_INDEX_BITS = 21;
const ORDER_SPAN = 2 ** ORDER_INDEX_BITS;

/**
 * The indexes of `count` hashes (`hashAt(i)`, HASH_BYTES each) in compareHashes order (equal hashes
 * in any order). Each hash's first 4 bytes and its index make one number, exact in a double, and a
 * Float64Array sorts them natively; the rare runs of equal first 4 bytes (~0.05 of a pair among 20k
 * hashes, ~120 pairs among 1M) are then ordered by all their bytes. A comparator in JavaScript,
 * called ~n log n times, was most of a full backup's tip and held-ids table: ~60 ms of the main
 * thread each for the bench's 20k store, and a TurboFan compile of it. Beyond 2^21 hashes, where
 * the index no longer fits beside the prefix, the comparator on the first 6 bytes (as a number) as before.
 */
export function hashOrder(count: number, hashAt: (i: number) => Uint8Array): Uint32Array {
  const order = new Uint32Array(count);
  if (count >= ORDER_SPAN) {
    const prefix = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const h = hashAt(i);
      prefix[i] = ((((h[0]! * 256 + h[1]!) * 256 + h[2]!) * 256 + h[3]!) * 256 + h[4]!) * 256 + h[5]!;
      order[i] = i;
    }
    return order.sort((a, b) => prefix[a]! - prefix[b]! || compareHashes(hashAt(a), 0, hashAt(b), 0));
  }
  const keys = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const h = hashAt(i);
    keys[i] = (((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0) * ORDER_SPAN + i;
  }
  keys.sort();
  for (let i = 0; i < count; i++) order[i] = keys[i]! % ORDER_SPAN;
  for (let i = 0; i < count;) {
    const prefix = Math.floor(keys[i]! / ORDER_SPAN);
    let j = i + 1;
    while (j < count && Math.floor(keys[j]! / ORDER_SPAN) === prefix) j++;
    if (j - i > 1) order.subarray(i, j).sort((a, b) => compareHashes(hashAt(a), 0, hashAt(b), 0));
    i = j;
  }
  return order;
}

/** Where `hash` is or would go in the sorted table: the number of hashes below it, and whether it is there. */
export function searchHash(table: Uint8Array, hash: Uint8Array): { at: number; found: boolean } {
  let lo = 0, hi = table.length / HASH_BYTES;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareHashes(table, mid * HASH_BYTES, hash, 0) < 0) lo = mid + 1;
    else hi = mid;
  }
  return { at: lo, found: lo < table.length / HASH_BYTES && compareHashes(table, lo * HASH_BYTES, hash, 0) === 0 };
}

/** A tip of a whole state (a model: the full read, or a parent decoded because it had no tip). */
export function tipOfModel(model: StateModel, header: Omit<Tip, 'hashes' | 'boxes' | 'seq'>): Tip {
  const boxes: TipSource[] = [];
  for (const [key, box] of model.boxes) {
    const changes: [uid: number, modseq: number][] = [];
    for (const [uid, list] of box.changes) for (const [modseq] of list) changes.push([uid, modseq]);
    boxes.push({ key, info: box.info, messages: [...box.messages.values()].sort((a, b) => a[0] - b[0]), changes });
  }
  return tipOf(model.seq, header, boxes);
}

/**
 * tipOfModel(modelOf({ seq, ops }), header), the tip a full read's state gives, without the model:
 * no Map per mailbox of its messages and change-log entries. A full backup of the 20k store spent
 * ~7 % of its main thread's CPU in the model's way.
 */
export function tipOfState(ops: Iterable<Op>, seq: number, header: Omit<Tip, 'hashes' | 'boxes' | 'seq'>): Tip {
  // as modelOf: a mailbox record (again) starts its box afresh; messages and entries of no mailbox seen are left out
  const read = new Map<string, { info: MailboxInfo; messages: StateMessage[]; changes: [uid: number, modseq: number][] }>();
  for (const op of ops) {
    if (op.op === 'state.mailbox') read.set(Buffer.from(op.info.id).toString('hex'), { info: op.info, messages: [], changes: [] });
    else if (op.op === 'state.messages') {
      const box = read.get(Buffer.from(op.id).toString('hex'));
      if (box) for (const m of op.messages) box.messages.push(m);
    } else if (op.op === 'state.changes') {
      const box = read.get(Buffer.from(op.id).toString('hex'));
      if (box) for (const [modseq, uid] of op.entries) box.changes.push([uid, modseq]);
    }
  }
  return tipOf(seq, header, [...read].map(([key, box]) => ({ key, info: box.info, messages: lastOfEachUid(box.messages), changes: box.changes })));
}

/** One mailbox as a tip is built from: its messages by uid ascending (one per uid), its change-log entries in any order. */
interface TipSource { key: string; info: MailboxInfo; messages: StateMessage[]; changes: [uid: number, modseq: number][] }

/** The tip of these mailboxes: every message's hash sorted once (no string key per message), equal neighbours sharing a ref. */
function tipOf(seq: number, header: Omit<Tip, 'hashes' | 'boxes' | 'seq'>, sources: TipSource[]): Tip {
  const { hashes, refs } = distinctHashes(sources.flatMap((box) => box.messages));
  const boxes = new Map<string, TipBox>();
  let at = 0;
  for (const box of sources) {
    const messages = box.messages;
    const n = messages.length;
    const out: TipBox = { info: box.info, uids: new Uint32Array(n), sizes: new Uint32Array(n), seen: new Uint8Array(n), refs: refs.subarray(at, at + n), changeUids: new Uint32Array(0), changeModseqs: new Float64Array(0) };
    for (let i = 0; i < n; i++) {
      const m = messages[i]!;
      out.uids[i] = m[0];
      out.sizes[i] = m[2];
      out.seen[i] = m[4].includes(SEEN) ? 1 : 0;
    }
    at += n;
    box.changes.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    out.changeUids = Uint32Array.from(box.changes, (e) => e[0]);
    out.changeModseqs = Float64Array.from(box.changes, (e) => e[1]);
    boxes.set(box.key, out);
  }
  return { ...header, seq, hashes, boxes };
}

/** A mailbox's messages by uid ascending, the last of any uid listed twice (a Map by uid keeps that one). */
function lastOfEachUid(messages: StateMessage[]): StateMessage[] {
  const sorted = messages.slice().sort((a, b) => a[0] - b[0]); // stable: a repeated uid's records stay in their order
  const out: StateMessage[] = [];
  for (let i = 0; i < sorted.length; i++) if (i + 1 === sorted.length || sorted[i + 1]![0] !== sorted[i]![0]) out.push(sorted[i]!);
  return out;
}

/** The distinct hashes of `messages` in compareHashes order (hashOrder), and each message's index into them. */
function distinctHashes(messages: StateMessage[]): { hashes: Buffer; refs: Uint32Array } {
  const n = messages.length;
  const order = hashOrder(n, (i) => messages[i]![1]);
  const refs = new Uint32Array(n);
  const hashes = Buffer.allocUnsafe(n * HASH_BYTES);
  let distinct = 0;
  for (let i = 0; i < n; i++) {
    const hash = messages[order[i]!]![1];
    if (distinct === 0 || compareHashes(hashes, (distinct - 1) * HASH_BYTES, hash, 0) !== 0) hashes.set(hash, distinct++ * HASH_BYTES);
    refs[order[i]!] = distinct - 1;
  }
  return { hashes: hashes.subarray(0, distinct * HASH_BYTES), refs };
}

/** The tip files of snapshots that are gone (forget removes them with their snapshots; prune any left). */
export function orphanTips(names: string[], snapshots: Set<string>): string[] {
  return names.filter((name) => !snapshots.has(tipSnapshot(name)));
}
