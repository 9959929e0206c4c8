// A synchronous replica's tentative rounds (issue 15, "sync-replicated latency"): the primary
// ships a batch while its own fdatasyncs run, the replica makes it durable here (one frame: the
// records and their pack bytes, fdatasynced) and says so, and commits it (packs, journal, index:
// the ordinary replicated commit) only when the primary says the batch committed there. So a
// replica never holds in its journal or shows a record its primary may not have committed (it
// stays a prefix of the primary's history), while a client's change is acknowledged once it is
// durable on both. A primary that died before its commit leaves its rounds here: a replica that
// reconnects drops them (the primary sends its own records for those seqs), and `promote` commits
// those that continue the journal (an acknowledged change may be among them; one that never
// committed on the old primary was never acknowledged, like any change in doubt).
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeCbor, encodeCbor } from '../index/codec.js';
import type { FileHandle } from '../fs/filesystem.js';
import { meta } from '../store/apply.js';
import type { Store } from '../store/store.js';
import type { Log } from './transport.js';

export const PENDING_FILE = 'REPLICATION-PENDING';
const FRAME_HEADER_BYTES = 8;
/** The file is emptied (when every round in it has committed) once it is this big; committed frames are skipped when read. */
const PENDING_FILE_BYTES_MAX = 1024 * 1024;

export interface TentativeRound {
  records: { seq: number; payload: Buffer }[];
  /** The batch's pack bytes at the primary's offsets. */
  packs: { pack: number; offset: number; bytes: Buffer }[];
  /** The primary's pack tails once these bytes are written (the replica's PACK_TAILS_KEY). */
  tails: [number, number][];
}

/** On the wire and in the file (short keys; `t` is a frame's type). */
export type Wire = { r: [number, Uint8Array][]; p: [number, number, Uint8Array][]; k: [number, number][] };

export function decodeRound(wire: Wire): TentativeRound {
  return {
    records: wire.r.map(([seq, payload]) => ({ seq, payload: Buffer.from(payload) })),
    packs: wire.p.map(([pack, offset, bytes]) => ({ pack, offset, bytes: Buffer.from(bytes) })),
    tails: wire.k,
  };
}

export function encodeRound(round: TentativeRound): Wire {
  return { r: round.records.map((r) => [r.seq, r.payload]), p: round.packs.map((p) => [p.pack, p.offset, p.bytes]), k: round.tails };
}

export const lastSeqOf = (round: TentativeRound): number => round.records[round.records.length - 1].seq;

/** The replica's pending rounds: in memory for this session, and in PENDING_FILE, durable before each is acknowledged. */
export class PendingRounds {
  private rounds: TentativeRound[] = [];
  /** Rounds taken for commit whose commit has not finished (their frames must stay). */
  private committing = 0;
  private handle?: FileHandle;
  private size = 0;
  /** Frames left by an earlier session: dropped before the first round of this one lands. */
  private stale = false;

  constructor(private readonly store: Store) {}

  /** A new session: rounds of the last one are in doubt (kept on disk until replaced). */
  async beginSession(): Promise<void> {
    this.rounds = [];
    this.handle ??= await this.store.fs.open(join(this.store.root, PENDING_FILE), 'createOrOpen');
    this.size = await this.handle.size();
    this.stale = this.size > 0;
  }

  /** Writes and fdatasyncs the round; the caller acknowledges it afterwards. */
  async add(round: TentativeRound): Promise<void> {
    if (this.stale || (this.idle && this.size >= PENDING_FILE_BYTES_MAX)) await this.clear();
    const body = encodeCbor(encodeRound(round));
    const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    head.writeUInt32BE(body.length, 0);
    head.writeUInt32BE(crc32(body), 4);
    await this.handle!.writev([head, body], this.size);
    this.size += head.length + body.length;
    await this.handle!.sync();
    this.rounds.push(round);
  }

  /** The rounds up to `seq` (the primary committed them), in order; call committed() once they are. */
  takeThrough(seq: number): TentativeRound[] {
    const ready = this.rounds.filter((r) => lastSeqOf(r) <= seq);
    this.rounds = this.rounds.filter((r) => lastSeqOf(r) > seq);
    this.committing += ready.length;
    return ready;
  }

  committed(rounds: number): void {
    this.committing -= rounds;
  }

  /** Every round of this session is committed: the file holds nothing needed. */
  get idle(): boolean {
    return this.rounds.length === 0 && this.committing === 0;
  }

  /** Drops every frame (their records are committed, or replaced by the primary's own); only when idle. */
  async clear(): Promise<void> {
    this.stale = false;
    if (this.size === 0) return;
    await this.handle!.truncate(0);
    this.size = 0;
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}

/** The valid frames of PENDING_FILE, in order, up to the first torn or damaged one. */
export async function readPendingRounds(store: Store): Promise<TentativeRound[]> {
  const path = join(store.root, PENDING_FILE);
  if (!(await store.fs.statIfExists(path))) return [];
  const bytes = await store.fs.readFile(path);
  const out: TentativeRound[] = [];
  for (let at = 0; at + FRAME_HEADER_BYTES <= bytes.length;) {
    const length = bytes.readUInt32BE(at);
    const body = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (body.length !== length || crc32(body) !== bytes.readUInt32BE(at + 4)) break;
    out.push(decodeRound(decodeCbor<Wire>(body)));
    at += FRAME_HEADER_BYTES + length;
  }
  return out;
}

/**
 * Promotion: commits the pending rounds that continue the journal (through the ordinary
 * replicated commit), then empties the file. Returns how many records were committed.
 */
export async function commitPendingRounds(store: Store, log: Log): Promise<number> {
  const control = store.replication();
  let committed = 0;
  for (const round of await readPendingRounds(store)) {
    if (lastSeqOf(round) <= store.changes.lastSeq) continue;
    if (round.records[0].seq !== store.changes.lastSeq + 1) break;
    await control.applyReplicated({ packs: round.packs, records: round.records, meta: [[meta.named('replication/packTails'), round.tails]] });
    committed += round.records.length;
  }
  if (committed > 0) log(`replication: committed ${committed} records the old primary had sent as tentative (they may have been acknowledged)`);
  const path = join(store.root, PENDING_FILE);
  if (await store.fs.statIfExists(path)) {
    const handle = await store.fs.open(path, 'readWrite');
    try { await handle.truncate(0); await handle.sync(); } finally { await handle.close(); }
  }
  return committed;
}
