// A synchronous replica's tentative rounds (issue 15, "sync-replicated latency"): the primary
// ships a batch while its own fdatasyncs run, the replica makes it durable here (one frame: the
// records and their pack bytes, fdatasynced) and says so, and commits it (packs, journal, index:
// the ordinary replicated commit) only when the primary says the batch committed there. So a
// replica never holds in its journal or shows a record its primary may not have committed (it
// stays a prefix of the primary's history), while a client's change is acknowledged once it is
// durable on both. A primary that died before its commit leaves its rounds here: a replica that
// reconnects drops them (the primary sends its own records for those seqs), and `promote` commits
// those that continue the journal (an acknowledged change may be among them; one that never
// committed on the old primary was never acknowledged, like any change in doubt). The replica
// commits the rounds in groups (replica.ts scheduleCommit): the frames here are their durable
// copy until then. A damaged frame is reported, never skipped silently (commitPendingRounds).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { MailstoreError } from '../errors.js';
import { decodeCbor, encodeCbor } from '../index/codec.js';
import type { FileHandle } from '../fs/filesystem.js';
import { limits } from '../limits.js';
import { meta } from '../store/apply.js';
import { moveAside } from '../store/recovery.js';
import { LAYOUT } from '../store/identity.js';
import { openStoreFile } from '../store/setting-file.js';
import type { Store } from '../store/store.js';
import type { Log } from './transport.js';

export const PENDING_FILE = 'REPLICATION-PENDING';
const FRAME_HEADER_BYTES = 8;
/**
 * Written after every frame (and as the filler of the preallocated file): where the frames end.
 * As a frame header its length would be 0x4d53524e (1.3 GB), more than any frame, so it is never
 * taken for one. The file is preallocated with it (limits.replicaPendingFileBytes), so a round's
 * fdatasync overwrites bytes already on disk: no size change, no file system journal commit
 * (measured here: append+fdatasync 0.6–0.7 ms, overwrite+fdatasync 0.2–0.6 ms).
 */
export const PENDING_END = Buffer.from('MSRN-END');

export interface TentativeRound {
  records: { seq: number; payload: Buffer }[];
  /** The batch's pack bytes at the primary's offsets. */
  packs: { pack: number; offset: number; bytes: Buffer }[];
  /** The primary's pack tails once these bytes are written (the replica's PACK_TAILS_KEY). */
  tails: [number, number][];
}

/** On the wire and in the file (short keys; `t` is a frame's type). */
export type Wire = { r: [number, Uint8Array][]; p: [number, number, Uint8Array][]; k: [number, number][] };

/** Views of the decoded frame's bytes, not copies: a round's bodies were copied once per delivery on the replica's way to its fdatasync. */
export function decodeRound(wire: Wire): TentativeRound {
  return {
    records: wire.r.map(([seq, payload]) => ({ seq, payload: bufferView(payload) })),
    packs: wire.p.map(([pack, offset, bytes]) => ({ pack, offset, bytes: bufferView(bytes) })),
    tails: wire.k,
  };
}

function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeRound(round: TentativeRound): Wire {
  return { r: round.records.map((r) => [r.seq, r.payload]), p: round.packs.map((p) => [p.pack, p.offset, p.bytes]), k: round.tails };
}

export const lastSeqOf = (round: TentativeRound): number => round.records[round.records.length - 1].seq;

/**
 * The writes of PENDING_FILE and the reads beside them (`replica status`, scrub: through the daemon
 * they run in the replica's process), one at a time per store. Read during a frame's write, the
 * half-written frame failed its CRC with no frame after it: damage in doubt, a false finding (exit
 * 1, "promote with --quarantine-damaged-pending"). Not across processes: another process reads it
 * through the daemon while one serves the store; a read-only open re-reads instead (readBesideWriter).
 */
const fileTurns = new WeakMap<Store, Promise<unknown>>();

function inTurn<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  const run = (fileTurns.get(store) ?? Promise.resolve()).then(fn, fn);
  fileTurns.set(store, run.catch(() => undefined));
  return run;
}

/** The replica's pending rounds: in memory for this session, and in PENDING_FILE, durable before each is acknowledged. */
export class PendingRounds {
  private rounds: TentativeRound[] = [];
  /** Rounds taken for commit whose commit has not finished (their frames must stay). */
  private committing = 0;
  private handle?: FileHandle;
  /** Where the next frame goes (PENDING_END is there). */
  private at = 0;
  /** Frames left by an earlier session: dropped before the first round of this one lands. */
  private stale = false;
  /** The file's length as last known (preallocated on the first round: a rolling replica never writes it). */
  private length = 0;
  /** The last seq of the newest round this session made durable here (0: none). */
  heldSeq = 0;
  /** The highest commit notice written here this session (noteCommitted). */
  private noticeSeq = 0;
  /** A notice was written and not fdatasynced yet (the next frame's fdatasync, or beginSession's or close's, makes it durable). */
  private noticeUnsynced = false;

  constructor(private readonly store: Store) {}

  /** The file holds frames of an earlier session (in doubt: kept until this session's first round replaces them). */
  get heldFromEarlierSession(): boolean {
    return this.stale;
  }

  /** A new session: rounds of the last one are in doubt (kept on disk until replaced). */
  async beginSession(): Promise<void> {
    this.rounds = [];
    this.heldSeq = 0;
    this.noticeSeq = 0;
    await this.syncNotice(); // the last session's rounds whose commit failed (a full disk) keep their notice durably
    this.handle ??= await openStoreFile(this.store, PENDING_FILE);
    const length = await this.handle.size();
    const first = Buffer.alloc(FRAME_HEADER_BYTES);
    if (length >= FRAME_HEADER_BYTES) await this.handle.read(first, 0, FRAME_HEADER_BYTES, 0);
    this.stale = length > 0 && !first.equals(PENDING_END);
    this.at = 0;
    this.length = length;
  }

  /** Fills the file up to limits.replicaPendingFileBytes with PENDING_END, once (fdatasynced: later syncs change no size). */
  private async preallocate(): Promise<void> {
    const length = this.length;
    const fill = Buffer.alloc(limits.replicaPendingFileBytes - length);
    for (let i = 0; i < fill.length; i += PENDING_END.length) PENDING_END.copy(fill, i);
    // an empty file's first bytes become the end mark; an earlier session's frames stay until cleared
    await this.handle!.writev([fill], length);
    await this.handle!.sync();
    this.length = limits.replicaPendingFileBytes;
  }

  /**
   * Writes and fdatasyncs the round (and the end mark after it); the caller acknowledges it
   * afterwards. `wire`: the tentative message's CBOR as it arrived, written as is (its `t` and `c`
   * are ignored when the file is read), so the round is not encoded a second time.
   */
  add(round: TentativeRound, wire?: Buffer): Promise<void> {
    return inTurn(this.store, () => this.addInTurn(round, wire));
  }

  private async addInTurn(round: TentativeRound, wire?: Buffer): Promise<void> {
    if (this.length < limits.replicaPendingFileBytes) await this.preallocate();
    if (this.stale || (this.idle && this.full)) await this.clearInTurn();
    await this.writeFrame(wire ?? encodeCbor(encodeRound(round)), true); // the primary's change waits on this
    this.noticeUnsynced = false; // an fdatasync covers the whole file
    this.rounds.push(round);
    this.heldSeq = Math.max(this.heldSeq, lastSeqOf(round));
  }

  /** Writes a frame at `at` with the end mark after it; fdatasynced when `durable`. */
  private async writeFrame(body: Buffer, durable: boolean): Promise<void> {
    const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    head.writeUInt32BE(body.length, 0);
    head.writeUInt32BE(crc32(body), 4);
    if (durable) await this.handle!.writevDurable([head, body, PENDING_END], this.at);
    else await this.handle!.writev([head, body, PENDING_END], this.at);
    this.at += head.length + body.length;
    this.length = Math.max(this.length, this.at + PENDING_END.length);
  }

  /**
   * The primary said (a `commit` frame) it committed every round up to `seq`, so it may have
   * acknowledged them: kept as a frame of its own (`{t: 'commit', c}`), which a later session's
   * hello names as `heldCommitted` while those rounds are still held (the replica's own commit
   * failed, or it stopped first), so a primary put back to an older image cannot replace them
   * (history.ts refuseLostCommitted). A tentative round's `c` is in its frame already. Not
   * fdatasynced here (no sync beyond the rounds' own): the next round's fdatasync covers it, and
   * beginSession's or close's when none came. Only a power loss before either, with the rounds
   * uncommitted, loses it.
   */
  noteCommitted(seq: number): Promise<void> {
    return inTurn(this.store, async () => {
      if (!Number.isSafeInteger(seq) || this.idle || this.stale || seq <= this.noticeSeq || !this.handle) return;
      await this.writeFrame(encodeCbor({ t: 'commit', c: seq }), false);
      this.noticeSeq = seq;
      this.noticeUnsynced = true;
    });
  }

  private async syncNotice(): Promise<void> {
    if (!this.noticeUnsynced) return;
    await this.handle?.sync();
    this.noticeUnsynced = false;
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

  /** Past the size at which the file is emptied once every round in it has committed. */
  get full(): boolean {
    return this.at >= limits.replicaPendingFileBytes;
  }

  /** Every round of this session is committed: the file holds nothing needed. */
  get idle(): boolean {
    return this.rounds.length === 0 && this.committing === 0;
  }

  /**
   * Drops every frame (their records are committed, or replaced by the primary's own); only when
   * idle. This session's frames are all committed then (promote skips them), so the next frame
   * simply goes to 0 with the end mark after it; an earlier session's may never have committed on
   * the primary, so the end mark goes to 0 durably first (promote must not find them).
   */
  clear(): Promise<void> {
    return inTurn(this.store, () => this.clearInTurn());
  }

  private async clearInTurn(): Promise<void> {
    const stale = this.stale;
    this.stale = false;
    this.at = 0;
    if (!stale) return;
    await this.handle!.writev([PENDING_END], 0);
    await this.handle!.sync();
  }

  /**
   * Closes the file, its commit notice fdatasynced first when it can be: a failed sync leaves the
   * notice as durable as the page cache makes it (the rounds themselves are durable already), and
   * must not fail the replica's close (before, it left the handle open and hid the error a close
   * in a test's `finally` was cleaning up after).
   */
  async close(): Promise<void> {
    try {
      await this.syncNotice().catch(() => undefined);
    } finally {
      await this.handle?.close();
      this.handle = undefined;
    }
  }
}

/** A frame of PENDING_FILE that is neither valid nor the end mark (bit rot, or a write torn by a crash). */
export interface PendingDamage {
  /** Its byte offset. */
  offset: number;
  /** Valid frames after it (when its length field still leads to one): they came later, so their seqs are higher. */
  following: TentativeRound[];
}

/** The valid frames of PENDING_FILE, in order, up to the end mark, the file's end, or the first damaged frame. */
export function readPendingRounds(store: Store): Promise<PendingRead> {
  return store.readOnly ? readBesideWriter(store) : inTurn(store, () => readPendingFile(store));
}

/**
 * A read-only open takes no lock, and a replica's daemon started after it checked LOCK writes the
 * file from another process: a frame read half written looked like damage in doubt (a false
 * `replica status` DAMAGED, a scrub finding). Damage is reported only when the file still reads
 * damaged after each of limits.replicaPendingRereadMs: a write ends, damage stays. A read-write
 * open holds LOCK, so the only writer is in its process and inTurn suffices (no pause there: the
 * writer waits for its turn).
 */
async function readBesideWriter(store: Store): Promise<PendingRead> {
  let read = await readPendingFile(store);
  for (const pauseMs of limits.replicaPendingRereadMs) {
    if (!read.damage) return read;
    await sleep(pauseMs);
    read = await readPendingFile(store);
  }
  return read;
}

/**
 * `committedThrough`: the highest seq a frame says its primary had committed through (the `c` of a
 * tentative round, or a commit notice of its own: the rounds up to it committed there, so they may
 * be acknowledged), when one does.
 */
export interface PendingRead {
  rounds: TentativeRound[];
  damage?: PendingDamage;
  committedThrough?: number;
}

async function readPendingFile(store: Store): Promise<PendingRead> {
  const path = join(store.root, PENDING_FILE);
  if (!(await store.fs.statIfExists(path))) return { rounds: [] };
  const bytes = await store.fs.readFile(path);
  const first = readFrames(bytes, 0);
  const said = (through: number) => (through > 0 ? { committedThrough: through } : {});
  if (first.damagedAt === undefined) return { rounds: first.rounds, ...said(first.committedThrough) };
  const length = bytes.readUInt32BE(first.damagedAt);
  const next = first.damagedAt + FRAME_HEADER_BYTES + length;
  const after = next < bytes.length ? readFrames(bytes, next) : { rounds: [], committedThrough: 0 };
  return { rounds: first.rounds, damage: { offset: first.damagedAt, following: after.rounds }, ...said(Math.max(first.committedThrough, after.committedThrough)) };
}

function readFrames(bytes: Buffer, from: number): { rounds: TentativeRound[]; damagedAt?: number; committedThrough: number } {
  const rounds: TentativeRound[] = [];
  let committedThrough = 0;
  let at = from;
  // a file of the earlier format (appended, no end mark) ends at its end; a few bytes there are a torn header
  for (; at + FRAME_HEADER_BYTES <= bytes.length; at += FRAME_HEADER_BYTES + bytes.readUInt32BE(at)) {
    if (bytes.subarray(at, at + FRAME_HEADER_BYTES).equals(PENDING_END)) return { rounds, committedThrough };
    const length = bytes.readUInt32BE(at);
    const body = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (body.length !== length || crc32(body) !== bytes.readUInt32BE(at + 4)) return { rounds, damagedAt: at, committedThrough };
    const wire = decodeCbor<Wire & { t?: string; c?: number }>(body);
    if (wire.t !== 'commit') rounds.push(decodeRound(wire)); // a commit notice holds no round (noteCommitted)
    if (Number.isSafeInteger(wire.c)) committedThrough = Math.max(committedThrough, wire.c!);
  }
  return { rounds, committedThrough };
}

/**
 * Whether a damaged frame may hold changes this journal lacks: no valid frame after it (they came
 * later) holds a seq the journal has. Its seqs are unknown, so no probe can name them.
 */
export function damageInDoubt(damage: PendingDamage, lastSeq: number): boolean {
  return !damage.following.some((r) => lastSeqOf(r) <= lastSeq);
}

/** A damaged frame in doubt (damageInDoubt), as `replica status` and scrub name it: its offset and the newest seq held before it. */
export function doubtfulDamage(read: { rounds: TentativeRound[]; damage?: PendingDamage }, lastSeq: number): { offset: number; afterSeq: number } | undefined {
  if (!read.damage || !damageInDoubt(read.damage, lastSeq)) return undefined;
  return { offset: read.damage.offset, afterSeq: Math.max(lastSeq, ...read.rounds.map(lastSeqOf)) };
}

/** Where the damage is, as the admin is told: the byte, the valid frames before it, the journal's end. */
export function damageWhere(validBefore: number, damage: PendingDamage, lastSeq: number): string {
  return `${PENDING_FILE} is damaged at byte ${damage.offset} (after ${validBefore} valid frames; this store's journal ends at seq ${lastSeq})`;
}

export interface PendingCommitResult {
  /** Records committed from the file. */
  committed: number;
  /** A damaged frame that could hold an acknowledged change, when it was quarantined (not applied). */
  damagedFrame?: { offset: number; quarantinedAs: string };
}

/**
 * Promotion: commits the pending rounds that continue the journal (through the ordinary
 * replicated commit), then empties the file. A damaged frame whose records may not be in the
 * journal (no valid frame after it holds only committed seqs) could be a change the old primary
 * acknowledged: promotion is refused (CORRUPT) before anything is committed, unless
 * `quarantineDamaged`, which moves the file into quarantine/ and commits what precedes it.
 */
export async function commitPendingRounds(store: Store, log: Log, options: { quarantineDamaged?: boolean } = {}): Promise<PendingCommitResult> {
  const control = store.replication();
  const { rounds, damage } = await readPendingRounds(store);
  const path = join(store.root, PENDING_FILE);
  let damagedFrame: PendingCommitResult['damagedFrame'];
  if (damage && damageInDoubt(damage, store.changes.lastSeq)) {
    const where = damageWhere(rounds.length, damage, store.changes.lastSeq);
    if (!options.quarantineDamaged) {
      throw new MailstoreError('CORRUPT', `${where}: the frame may hold changes the old primary acknowledged, so nothing was promoted. ` +
        'Promote another synchronous replica, or promote this one with --quarantine-damaged-pending (the file is kept for inspection)', { path });
    }
    // into quarantine/ as everything set aside (stats and scrub count it; before session 49 it stayed
    // in the store's root as REPLICATION-PENDING.damaged, which quarantineUse still counts)
    const quarantinedAs = await moveAside(store.fs, store.root, path, `${PENDING_FILE}-damaged`);
    damagedFrame = { offset: damage.offset, quarantinedAs: quarantinedAs! };
    await store.fs.syncDir(join(store.root, LAYOUT.quarantine));
    log(`replication: DAMAGED: ${where}; kept as ${damagedFrame.quarantinedAs}; changes in it the old primary acknowledged are lost unless another replica holds them`);
  } else if (damage) {
    log(`replication: ${PENDING_FILE} has a damaged frame at byte ${damage.offset}; a later frame shows its records are committed`);
  }
  let committed = 0;
  for (const round of rounds) {
    if (lastSeqOf(round) <= store.changes.lastSeq) continue;
    if (round.records[0].seq !== store.changes.lastSeq + 1) break;
    await control.applyReplicated({ packs: round.packs, records: round.records, meta: [[meta.named('replication/packTails'), round.tails]], held: true });
    committed += round.records.length;
  }
  if (committed > 0) log(`replication: committed ${committed} records the old primary had sent as tentative (they may have been acknowledged)`);
  if (await store.fs.statIfExists(path)) {
    const handle = await store.fs.open(path, 'readWrite');
    try { await handle.truncate(0); await handle.sync(); } finally { await handle.close(); }
  }
  return { committed, ...(damagedFrame ? { damagedFrame } : {}) };
}
