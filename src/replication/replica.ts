// The replica's side: a physical mirror of its primary. It starts from an empty directory (the
// primary's STORE identity is cloned: same store id) or from an earlier replica of the same
// primary, connects, says its last seq and its durable pack tails, and then commits every round
// the primary sends: pack bytes at the primary's offsets (fsynced), the journal records verbatim
// (fsynced: its commit point), then the index through the same apply path (Writer
// commitReplicated), and acknowledges the round's last seq. Clients may read; every write is
// refused (READ_ONLY_REPLICA) until `promote`. A replica behind the primary's retained journal
// is resynced from a snapshot (resync-sink.ts); packs a compaction removed on the primary are
// removed here after the round that says so (pack-removal.ts).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import { meta } from '../store/apply.js';
import { decodeForeignRecord } from '../store/op-shape.js';
import { LAYOUT, initStore } from '../store/identity.js';
import { newNodeId, readRole, writeRole, type ReplicationRole } from '../store/role.js';
import { unopenedRoot } from '../store/unopened-root.js';
import { Store } from '../store/store.js';
import type { StoreOptions } from '../store/types.js';
import { readKeyFile } from './key.js';
import { fenceOldPrimary, keepFencing, promoteStore, refuseInlineGap, worthFollowing, type PromoteOptions, type PromoteResult } from './promote.js';
import { announcedSettings, forgetPrimarySettings, notePrimarySettings, readNodeSettings, settingWarnings } from './node-settings.js';
import { startReplicaListener } from './primary.js';
import { receiveResync } from './resync-sink.js';
import { damagedHeldError, heldProbes, historyProbes } from './history.js';
import { notePacksToRemove, packsRemovedIn, removeNotedPacks } from './pack-removal.js';
import { recountInlineGap } from './inline-gap.js';
import { PENDING_FILE, PendingRounds, decodeRound, doubtfulDamage, lastSeqOf, readPendingRounds, type TentativeRound, type Wire } from './pending-rounds.js';
import { RepeatedFailures } from './repeated-failures.js';
import { REPLICATION_VERSION, connect, peerError, type Connection, type Log, type Message } from './transport.js';

/** The replica keeps a tentative round's received bytes: its pending file takes them as they came. */
const TENTATIVE_RAW: ReadonlySet<string> = new Set(['tentative']);

export interface ReplicaOptions {
  /** The primary's --replication-listen address (host:port). */
  primary: string;
  keyFile: string;
  /** Also listen here for repair and check requests (startReplicaListener). */
  listen?: string;
  log?: Log;
  fs?: FileSystem;
  storeOptions?: StoreOptions;
}

export interface ReplicaStatus {
  role: 'replica' | 'primary';
  primary: string;
  connected: boolean;
  /** The seq this replica has durable. */
  seq: number;
  /** The primary's newest seq as last heard (0 before the first round). */
  primarySeq: number;
  lastContact: number;
  /**
   * Why its last session failed (a refusal, an error), kept until a round is taken: a retry that
   * gets past its welcome has not shown it follows again (a full disk fails it at its first round).
   */
  lastError?: string;
  /** When (wall clock) that failure came. */
  lastErrorAt?: number;
  /** Since when (wall clock) it has failed to follow its primary, while lastError says why. */
  failingSince?: number;
  /** Being resynced from the primary's snapshot of this seq (it was behind the retained journal). */
  resyncingTo?: number;
}

export interface ReplicaHandle {
  /** The replica store: reads are served, client writes refused (READ_ONLY_REPLICA). */
  store: Store;
  /** The port of its own listener (options.listen), if any. */
  port?: number;
  status(): ReplicaStatus;
  /** Stops replicating and closes the store. */
  close(): Promise<void>;
  /** Stops replicating (the store stays open); `promote` does this first. */
  stop(): Promise<void>;
  /** Stops replicating and makes the store the primary (promote.ts); the daemon then starts startPrimary on it. */
  promote(options?: PromoteOptions): Promise<PromoteResult>;
}

/** The messages a primary of session 36 or later sends with `kept`. */
const ROUND_TYPES: ReadonlySet<string> = new Set(['records', 'tentative', 'commit']);

/** The index meta key of the replica's durable pack tails (the primary resends from there). */
export const PACK_TAILS_KEY = meta.named('replication/packTails');

export async function startReplica(root: string, options: ReplicaOptions): Promise<ReplicaHandle> {
  const fs = options.fs ?? nodeFileSystem;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const psk = await readKeyFile(fs, options.keyFile);
  await prepareReplicaDirectory(fs, root, psk, options, log);
  const store = await Store.open(root, { ...options.storeOptions, fs });
  await recountLogged(store, log);
  const replica = new Replica(store, psk, options.primary, log);
  let listener: { port: number; close(): Promise<void> } | undefined;
  try {
    if (options.listen) listener = await startReplicaListener(store, { listen: options.listen, keyFile: options.keyFile, log });
  } catch (error) {
    await store.close();
    throw error;
  }
  replica.start();
  let fencer: { stop(): void } | undefined;
  // Serve only once the first session is up (or has failed): a daemon that opens its socket right
  // after this should not meet a primary that does not know its synchronous replica yet.
  await replica.firstAttempt(limits.replicationHandshakeMs);
  return {
    store,
    port: listener?.port,
    status: () => replica.status(),
    stop: async () => {
      fencer?.stop();
      await replica.stop();
    },
    promote: async (options: PromoteOptions = {}) => {
      await refuseInlineGap(store, options, log);
      // the old primary fenced first, while this replica still receives: the records it committed
      // before the fence are on their way here, and held, they prove no reader there saw a uid this
      // store lacks (a planned switchover under mail keeps every uidValidity; docs/REPLICATION.md)
      const fenced = await fenceOldPrimary(store);
      const followTo = await worthFollowing(store, fenced);
      if (followTo !== undefined) await replica.received(followTo, limits.promoteCatchUpMs);
      await replica.stop();
      await replica.closePending();
      await listener?.close();
      listener = undefined;
      const role = store.replication().role();
      const result = await promoteStore(store, log, options, fenced);
      // not reached: told again until it answers, so one that comes back stops taking writes
      if (!result.oldPrimaryFenced && role?.primary && role.keyFile) fencer = keepFencing(store, role.primary, role.keyFile, result.epoch, log);
      return result;
    },
    close: async () => {
      fencer?.stop();
      await replica.stop();
      await replica.closePending();
      await listener?.close();
      await store.close();
    },
  };
}

/**
 * An empty directory becomes a clone of the primary's identity with role replica; an existing
 * store must already be a replica (a primary's own data is never overwritten by another's).
 */
async function prepareReplicaDirectory(fs: FileSystem, root: string, psk: Buffer, options: ReplicaOptions, log: Log): Promise<void> {
  if (await fs.statIfExists(join(root, LAYOUT.identity))) {
    const role = await readRole(fs, root);
    if (role?.role !== 'replica') {
      throw new MailstoreError('REFUSED', `the store at ${root} is ${role ? `a ${role.role}` : 'a standalone store'}, not a replica; a replica starts from an empty directory`, { path: root });
    }
    if (role.primary !== options.primary || role.keyFile !== options.keyFile) await writeRole(unopenedRoot(fs, root), { ...role, primary: options.primary, keyFile: options.keyFile });
    return;
  }
  const connection = await connect(options.primary, psk);
  try {
    const nodeId = newNodeId();
    await connection.send({ t: 'hello', kind: 'replica', storeId: null, nodeId, epoch: 0, version: REPLICATION_VERSION });
    const welcome = await connection.expect('welcome', limits.replicationHandshakeMs);
    await initStore(fs, root, Buffer.from(welcome.identity as Uint8Array));
    const role: ReplicationRole = { role: 'replica', epoch: Number(welcome.epoch), nodeId, primary: options.primary, keyFile: options.keyFile };
    await writeRole(unopenedRoot(fs, root), role);
    log(`replication: ${root} is now an empty replica of store ${String(welcome.storeId)} at ${options.primary}`);
  } finally {
    connection.close();
  }
}

/** The replication client of one replica store (startReplica's; promote.ts catches up with it). */
export class Replica {
  private stopped = false;
  private connection?: Connection;
  private loop?: Promise<void>;
  private primarySeq = 0;
  private lastContact = 0;
  private lastError?: string;
  private lastErrorAt?: number;
  private retryMs: number = limits.replicationRetryMinMs;
  /** This replica's failures to follow its primary, logged once per reason (and every repeat interval). */
  private readonly failures: RepeatedFailures;
  /** This attempt got past its welcome (a session, not a refused handshake). */
  private welcomed = false;
  /** The setting warnings the last session logged (settingWarnings): logged again only when they change. */
  private warned: ReadonlySet<string> = new Set();
  private wake?: () => void;

  constructor(private readonly store: Store, private readonly psk: Buffer, private readonly primary: string, private readonly log: Log) {
    this.pending = new PendingRounds(store);
    this.failures = new RepeatedFailures(log);
  }

  private resyncingTo?: number;
  /** This connection's primary sent a round without `kept` and the log said what that means. */
  private toldOlderPrimary = false;
  /** Tentative rounds of synchronous replication, durable, waiting for the primary's commit. */
  private readonly pending: PendingRounds;
  /**
   * The commits of tentative rounds, in order, off the message loop: the next round is made
   * durable while the last one commits (an ordinary round waits for them).
   */
  private commits: Promise<void> = Promise.resolve();
  /** The newest seq the primary said it committed (its `commit` notices). */
  private commitThrough = 0;
  /** Set while a commit waits out its delay: ends the wait. */
  private commitWake?: () => void;
  private attempted?: () => void;
  private readonly attempt = new Promise<void>((resolve) => { this.attempted = resolve; });

  start(): void {
    this.loop = this.run();
  }

  /** Resolves once the first connection is streaming or has failed, or after `timeoutMs`. */
  firstAttempt(timeoutMs: number): Promise<void> {
    return Promise.race([this.attempt, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  status(): ReplicaStatus {
    const role = this.store.replication().role();
    return {
      role: role?.role === 'replica' ? 'replica' : 'primary', primary: this.primary, connected: Boolean(this.connection && !this.connection.closed),
      seq: this.store.changes.lastSeq, primarySeq: this.primarySeq, lastContact: this.lastContact, lastError: this.lastError,
      ...(this.lastError === undefined ? {} : { lastErrorAt: this.lastErrorAt, failingSince: this.failures.since(this.primary) }),
      ...(this.resyncingTo === undefined ? {} : { resyncingTo: this.resyncingTo }),
    };
  }

  /** The seq this replica holds durable: committed, or as a tentative round. */
  private heldSeq(): number {
    return Math.max(this.store.changes.lastSeq, this.pending.heldSeq);
  }

  /** Waits, at most `timeoutMs`, until this replica holds `seq`, committed or as a durable tentative round (promote commits those). */
  async received(seq: number, timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (this.heldSeq() < seq && performance.now() < until && !this.stopped) await sleep(20);
  }

  async closePending(): Promise<void> {
    await this.commitNow();
    await this.pending.close();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.connection?.close();
    this.wake?.();
    await this.loop;
  }

  /**
   * Connects again and again (backing off) until stopped; each reason of a run of failures is
   * logged once, else every limits.replicationFailureRepeatLogMs. The back-off (and the run) starts
   * again only after a session that took something or lasted past its welcome: one that fails
   * after its handshake (a full disk refusing every round) is retried as a failed connect is, not
   * every replicationRetryMinMs for as long as it lasts.
   */
  private async run(): Promise<void> {
    while (!this.stopped) {
      const heldBefore = this.heldSeq();
      const startedMs = monotonicMs();
      this.welcomed = false;
      try {
        this.connection = await connect(this.primary, this.psk, TENTATIVE_RAW);
        await this.session(this.connection);
      } catch (error) {
        this.attempted?.();
        const message = `${error instanceof MailstoreError ? `${error.code}: ` : ''}${(error as Error).message}`;
        this.failures.note(this.primary, `replication: replica of ${this.primary}: `, message);
        this.lastError = message;
        this.lastErrorAt = Date.now();
        if (isMailstoreError(error, 'HALTED') || isMailstoreError(error, 'CLOSED')) return;
      } finally {
        this.connection?.close();
      }
      if (this.stopped) return;
      // lasted: a session past its welcome (a refused handshake slowed by a loaded machine is no session)
      if (this.heldSeq() > heldBefore || (this.welcomed && monotonicMs() - startedMs >= limits.replicationRetryMaxMs)) {
        this.retryMs = limits.replicationRetryMinMs;
        this.failures.clear(this.primary);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.retryMs);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.retryMs = Math.min(this.retryMs * 2, limits.replicationRetryMaxMs);
    }
  }

  private async session(connection: Connection): Promise<void> {
    const control = this.store.replication();
    const role = control.role()!;
    await removeNotedPacks(this.store, this.log); // a crash may have come between a round's commit and its pack deletions
    await this.commitNow();
    await this.pending.beginSession();
    const tails = (await control.db.readNow(() => control.db.getNow<[number, number][]>(PACK_TAILS_KEY))) ?? []; // not in an index reopen
    const lastSeq = this.store.changes.lastSeq;
    const history = await historyProbes(control.journal, this.store.changes.firstSeq, lastSeq);
    // tentative records an earlier session left (its primary died before it said they committed): a
    // promoted primary must hold them before its records replace them (refuseDroppedTentative);
    // the valid frames after a damaged one too (refuseDamagedHeld: the damaged one itself)
    const earlier = this.pending.heldFromEarlierSession ? await readPendingRounds(this.store) : { rounds: [] };
    const held = heldProbes([...earlier.rounds, ...(earlier.damage?.following ?? [])].flatMap((r) => r.records), lastSeq);
    const damage = doubtfulDamage(earlier, lastSeq);
    // its primary said it committed these (a later frame's `c`): one put back to an older image that lacks them lost acknowledged mail (refuseLostCommitted)
    const heldCommitted = 'committedThrough' in earlier && (earlier.committedThrough ?? 0) > lastSeq ? earlier.committedThrough : undefined;
    await connection.send({
      t: 'hello', kind: 'replica', storeId: this.store.identity.storeId, nodeId: role.nodeId, lastSeq, tails, history, epoch: role.epoch, version: REPLICATION_VERSION,
      ...(held.length > 0 ? { held } : {}), ...(heldCommitted !== undefined ? { heldCommitted } : {}), ...(damage ? { heldDamage: [damage.offset, damage.afterSeq] } : {}),
    });
    const welcome = await connection.expect('welcome', limits.replicationHandshakeMs);
    this.toldOlderPrimary = false;
    // a primary refuses a replica of another store; one that does not (an older or a hostile one) is refused here before it sends a record
    if (welcome.storeId !== this.store.identity.storeId) {
      throw new MailstoreError('REFUSED', `${this.primary} is the primary of another store (${String(welcome.storeId)}), not of ${this.store.identity.storeId}; nothing was taken from it`);
    }
    if (damage) await this.refuseDamagedHeld(connection, damage, role, welcome.epoch);
    await this.takeEpoch(role, welcome.epoch);
    const settings = announcedSettings(welcome.settings);
    // a reminder only: a full disk or a read-only root must not end the session over it
    const noted = settings ? notePrimarySettings(this.store, settings) : forgetPrimarySettings(this.store);
    await noted.catch((error: unknown) => this.log(`replication: could not keep the primary's settings for a later promote: ${(error as Error).message}`));
    // each difference once, and one connect line per run of failing sessions (each failure is logged
    // once per reason): a replica failing after its handshake (a full disk) reconnects every few seconds
    const warnings = settings ? settingWarnings(settings, await readNodeSettings(this.store.fs, this.store.root), this.primary) : [];
    for (const line of warnings) if (!this.warned.has(line)) this.log(line);
    this.warned = new Set(warnings);
    if (this.failures.once(this.primary, 'connected')) this.log(`replication: connected to ${this.primary} at seq ${this.store.changes.lastSeq}`);
    this.attempted?.();
    this.welcomed = true;
    while (!this.stopped) {
      const message = await connection.next(3 * limits.replicationPingMs); // the primary pings when idle (answered by the transport)
      if (!message) throw new MailstoreError('UNAVAILABLE', `${this.primary} closed the connection`);
      this.lastContact = Date.now();
      await this.handle(connection, message);
    }
  }

  /**
   * A damaged frame of an earlier session's tentative rounds (a torn write, a flipped byte) cannot
   * be named in the hello's held probes: no one can say which seqs it held. From a primary promoted
   * since (a newer epoch) this replica would take records for those seqs and empty the file, and a
   * change its old primary may have acknowledged would be gone, silently. Such a primary refuses it
   * at the hello (`heldDamage`, history.ts refuseDamagedHeld); one before session 49 ignores that
   * field, so the replica refuses it here, before anything is taken, the file kept and the primary
   * told. Its own primary (the same epoch) replaces its rounds as before: it knows what it committed.
   */
  private async refuseDamagedHeld(connection: Connection, damage: { offset: number; afterSeq: number }, role: ReplicationRole, announced: unknown): Promise<void> {
    const epoch = Number(announced);
    if (!Number.isSafeInteger(epoch) || epoch <= role.epoch) return;
    const refusal = damagedHeldError(damage, { replica: role.epoch, primary: epoch }, this.primary);
    await connection.send({ t: 'error', code: refusal.code, message: refusal.message }).catch(() => undefined);
    throw refusal;
  }

  /**
   * A primary promoted since this replica was made (it was pointed at the promoted node) is at a
   * higher epoch: held in REPLICATION before anything is taken from it, so this replica, promoted
   * in turn, takes the epoch above it and fences it, and its hello carries it to an older primary.
   * Kept at the epoch it was made with, a replica promoted after a second failover took the epoch
   * its running primary had, which answered the fence 'not newer' and went on taking writes.
   */
  private async takeEpoch(role: ReplicationRole, announced: unknown): Promise<void> {
    const epoch = Number(announced);
    if (!Number.isSafeInteger(epoch) || epoch <= role.epoch) return;
    await this.store.replication().setRole({ ...role, epoch });
    this.log(`replication: ${this.primary} is at epoch ${epoch} (this replica was at ${role.epoch}): a promoted primary; taken`);
  }

  private async handle(connection: Connection, message: Message): Promise<void> {
    const control = this.store.replication();
    // the primary's oldest kept seq (an older primary does not send it: nothing is retired here then)
    if (Number.isSafeInteger(message.kept) && (message.kept as number) >= 1) control.setPrimaryKept(message.kept as number);
    else if (ROUND_TYPES.has(message.t) && !this.toldOlderPrimary) {
      // the journal then grows for good: the admin is told once per connection, not left to find a full disk
      this.toldOlderPrimary = true;
      this.log(`replication: WARNING: the primary ${this.primary} is older than this replica (its rounds name no oldest kept seq): this replica keeps its journal until the primary is upgraded (its snapshots retire nothing)`);
    }
    switch (message.t) {
      case 'pack': {
        // written at once (not fsynced): the round's commit syncs them before its records
        const bytes = Buffer.from(message.bytes as Uint8Array);
        return this.tellingPrimary(connection, async () => {
          await control.admitPackBytes(bytes.length, message.room === true);
          await control.packs.writeReplicated(Number(message.pack), Number(message.offset), bytes);
        });
      }
      case 'records': {
        await this.commitNow();
        const records = (message.records as [number, Uint8Array][]).map(([seq, payload]) => ({ seq, payload: Buffer.from(payload) }));
        const tails = message.tails as [number, number][];
        const seq = records[records.length - 1].seq;
        // a compaction's old packs: listed durably before the round commits, deleted after it (pack-removal.ts)
        const removed = packsRemovedIn(records);
        if (removed.length > 0) await notePacksToRemove(this.store, seq, removed);
        await this.tellingPrimary(connection, () => control.applyReplicated({ packs: [], records, meta: [[PACK_TAILS_KEY, tails]] }));
        if (removed.length > 0) await removeNotedPacks(this.store, this.log);
        await recountLogged(this.store, this.log, records);
        if (this.pending.idle) await this.pending.clear(); // rounds of an earlier session: the primary's own records replaced them
        this.tookRound();
        this.primarySeq = Math.max(this.primarySeq, seq);
        return connection.send({ t: 'ack', seq });
      }
      case 'tentative': {
        // durable here before it is acknowledged; committed (and shown) only once the primary says so
        if (message.c !== undefined) this.noteCommit(connection, Number(message.c)); // the rounds before it
        const round = decodeRound(message as unknown as Wire);
        await this.checkTentative(connection, round);
        if (this.pending.full) await this.commitNow(); // then the file is emptied before this round lands (if every round in it has committed)
        await this.holdTentative(connection, round, connection.rawOf(message));
        this.tookRound();
        return connection.send({ t: 'ack', seq: lastSeqOf(round), pending: true });
      }
      case 'commit': {
        const seq = Number(message.seq);
        this.noteCommit(connection, seq);
        // kept beside the rounds until they commit here: a notice only this session knew was lost
        // with it (a full disk failing their commit, a restart), and a primary put back to an
        // older image at the same epoch replaced rounds it had said committed (docs/REPLICATION.md)
        return this.pending.noteCommitted(seq);
      }
      case 'resync': {
        this.resyncingTo = Number(message.seq);
        try {
          this.primarySeq = Math.max(this.primarySeq, await receiveResync(this.store, connection, message, this.log));
          this.tookRound();
        } finally {
          this.resyncingTo = undefined;
        }
        return;
      }
      case 'error':
        throw peerError(message, this.primary);
      default:
        throw new MailstoreError('INVALID', `${this.primary} sent ${message.t}`);
    }
  }

  /** A round taken: a run of failing sessions is over, said once (its next failure is logged again), and status shows no error. */
  private tookRound(): void {
    this.lastError = undefined;
    this.lastErrorAt = undefined;
    const since = this.failures.since(this.primary);
    if (since === undefined) return;
    this.failures.clear(this.primary);
    this.log(`replication: following ${this.primary} again at seq ${this.store.changes.lastSeq} (failing since ${new Date(since).toISOString()})`);
  }

  /**
   * A round this replica cannot take (its disk full, an I/O error) ends the session; the primary
   * is told why first, so its log says it (before, only 'disconnected', again at every retry).
   */
  private async tellingPrimary(connection: Connection, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      const failure = isMailstoreError(error) ? error : fromSystemError(error, 'taking a round into', this.store.root);
      await connection.send({ t: 'error', code: failure.code, message: failure.message }).catch(() => undefined);
      throw failure;
    }
  }

  /**
   * A tentative round is checked as its commit will check it (op-shape.ts) before it is held and
   * acknowledged: one that could never commit sat in REPLICATION-PENDING, and promotion, which
   * commits what is there, was refused INVALID for good. The primary is told why.
   */
  private async checkTentative(connection: Connection, round: TentativeRound): Promise<void> {
    try {
      for (const record of round.records) decodeForeignRecord(record);
    } catch (error) {
      const refusal = error as MailstoreError;
      await connection.send({ t: 'error', code: refusal.code, message: `tentative ${refusal.message}` }).catch(() => undefined);
      throw refusal;
    }
  }

  /**
   * A round's pending write or fdatasync failed (a full disk, EIO): it is not acknowledged, the
   * primary is told why (its log says so; its change waits for this replica per --sync-fallback),
   * and the session ends: the next one gets the round as the primary's committed records.
   */
  private async holdTentative(connection: Connection, round: TentativeRound, raw: Buffer | undefined): Promise<void> {
    try {
      await this.pending.add(round, raw);
    } catch (error) {
      const failure = fromSystemError(error, `making tentative round ${lastSeqOf(round)} durable in`, PENDING_FILE);
      await connection.send({ t: 'error', code: failure.code, message: failure.message }).catch(() => undefined);
      throw failure;
    }
  }

  /** The primary committed every tentative round up to `seq`. */
  private noteCommit(connection: Connection, seq: number): void {
    this.commitThrough = Math.max(this.commitThrough, seq);
    this.scheduleCommit(connection);
  }

  /**
   * Commits the rounds the primary has committed after limits.replicaTentativeCommitDelayMs, all
   * as one batch (one journal write, two fdatasyncs): each is durable in REPLICATION-PENDING
   * already, so the wait costs the replica's visible lag, not safety, and the disk the next
   * round's pending write waits for is not busy with two syncs per delivery. Off the message
   * loop, in order: the next round is made durable meanwhile.
   */
  private scheduleCommit(connection: Connection): void {
    if (this.commitWake) return;
    const delay = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, limits.replicaTentativeCommitDelayMs);
      this.commitWake = () => { clearTimeout(timer); resolve(); };
    });
    this.commits = this.commits.then(() => delay).then(async () => {
      this.commitWake = undefined;
      const seq = this.commitThrough;
      const rounds = this.pending.takeThrough(seq);
      try {
        if (rounds.length > 0) await this.commitRounds(rounds);
      } finally {
        this.pending.committed(rounds.length);
      }
      this.primarySeq = Math.max(this.primarySeq, seq);
      await connection.send({ t: 'ack', seq });
    }).catch((error: unknown) => {
      this.commitWake = undefined;
      this.log(`replication: committing tentative rounds up to seq ${this.commitThrough}: ${(error as Error).message}`);
      connection.close(); // the next session starts from what is committed
    });
  }

  /** Ends the wait of a scheduled commit and waits for every commit begun. */
  private async commitNow(): Promise<void> {
    this.commitWake?.();
    await this.commits;
  }

  private async commitRounds(rounds: TentativeRound[]): Promise<void> {
    const records = rounds.flatMap((r) => r.records);
    await this.store.replication().applyReplicated({
      packs: rounds.flatMap((r) => r.packs), records, meta: [[PACK_TAILS_KEY, rounds[rounds.length - 1].tails]],
    });
    await recountLogged(this.store, this.log, records);
  }
}

/** REPLICA-INLINE-GAP counted again (inline-gap.ts; status and check read its count): a failed count is logged, the round stands. */
async function recountLogged(store: Store, log: Log, records?: { payload: Buffer }[]): Promise<void> {
  await recountInlineGap(store, records).catch((error: unknown) => log(`replication: could not count again the inline bodies this replica lacks: ${(error as Error).message}`));
}
