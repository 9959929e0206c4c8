// The primary's side of replication (DESIGN.md, "Background work": a replica is a change-log
// consumer). Each connected replica gets, per round, the pack bytes it lacks (byte ranges at the
// primary's offsets) and then the journal records after its seq, verbatim, ending on a group-commit
// batch boundary; it acknowledges each round once it is durable there. Its position is a consumer
// cursor (`replica-NODEID`), so journal retirement never passes it; one whose seq the retained
// journal no longer continues is resynced from a snapshot first (resync-source.ts). A compaction's
// new packs are shipped like any pack bytes (pack-removal.ts has the replica's side). The same listener answers
// `replica check` (digests), repair (blobs by hash) and XFER (mailbox imports).
import { MailstoreError, isMailstoreError } from '../errors.js';
import { decodeCbor } from '../index/codec.js';
import { limits } from '../limits.js';
import { newNodeId, type ReplicationRole } from '../store/role.js';
import type { JournalPayload } from '../store/records.js';
import type { Store } from '../store/store.js';
import { LAYOUT } from '../store/identity.js';
import { readNodeSettings } from './node-settings.js';
import { join } from 'node:path';
import { readKeyFile } from './key.js';
import { SyncGate, type BatchListener, type SyncFallback } from './sync-gate.js';
import type { PackBatch } from '../blob/pack-store.js';
import type { JournalRecord } from '../journal/journal.js';
import type { Op } from '../store/records.js';
import { encodeRound, type TentativeRound } from './pending-rounds.js';
import { REPLICATION_VERSION, listen, type Connection, type Log, type Message } from './transport.js';
import { serveCheck } from './check.js';
import { serveBlobs } from './blob-source.js';
import { serveXfer } from './xfer-target.js';
import { sendPackBytes, sendResync } from './resync-source.js';
import { aheadError, historyProbes, refuseDamagedHeld, refuseLostCommitted, refuseDivergedHistory, refuseDroppedTentative } from './history.js';
import { newerThan, sendableRecords } from './older-replica.js';
import { monotonicMs } from '../monotonic.js';
import { replicaCursors } from './status.js';
import { replaceDamagedCursor } from './damaged-cursor.js';
import { RepeatedFailures } from './repeated-failures.js';

/** A replica's node id (role.ts newNodeId): 16 hex digits. */
const NODE_ID = /^[0-9a-f]{16}$/;

export interface PrimaryOptions {
  /** host:port to listen on (port 0: any; status().port says which). */
  listen: string;
  keyFile: string;
  /** Replicas that must hold a change before it is acknowledged (default 0: rolling only). */
  syncReplicas?: number;
  syncFallback?: SyncFallback;
  /** How long a synchronous commit waits for its replicas (default limits.syncReplicaWaitMs). */
  syncWaitMs?: number;
  log?: Log;
}

export interface ReplicaState {
  nodeId: string;
  remote: string;
  connected: boolean;
  /** The seq the replica has durable. */
  seq: number;
  lagRecords: number;
  /** Pack bytes the replica does not hold yet. */
  lagBytes: number;
  /** ms since epoch. */
  lastContact: number;
  /** Being resynced from the snapshot of this seq (it was behind the retained journal). */
  resyncingTo?: number;
}

export interface PrimaryStatus {
  role: 'primary' | 'fenced';
  epoch: number;
  port: number;
  lastSeq: number;
  syncReplicas: number;
  syncFallback: SyncFallback;
  unprotectedCommits: number;
  replicas: ReplicaState[];
}

export interface PrimaryHandle {
  close(): Promise<void>;
  status(): Promise<PrimaryStatus>;
}

/**
 * A replica's own listener (`--replica-of X --replication-listen Y`): it answers repair (blobs by
 * hash) and check requests, so a damaged primary can heal from it.
 */
export async function startReplicaListener(store: Store, options: { listen: string; keyFile: string; log?: Log }): Promise<{ port: number; close(): Promise<void> }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const psk = await readKeyFile(store.fs, options.keyFile);
  const node = new Primary(store, new SyncGate(0, 'async', log), log);
  const listener = await listen(options.listen, psk, (connection) => void node.accept(connection), log);
  return { port: listener.port, close: async () => { await listener.close(); await node.close(); } };
}

export async function startPrimary(store: Store, options: PrimaryOptions): Promise<PrimaryHandle> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const psk = await readKeyFile(store.fs, options.keyFile);
  const control = store.replication();
  const role = control.role();
  if (role?.role === 'replica') {
    throw new MailstoreError('INVALID', `the store at ${store.root} is a replica of ${role.primary}; it cannot serve as a primary until 'mailstore promote'`, { path: store.root });
  }
  const syncReplicas = options.syncReplicas ?? 0;
  const syncFallback = options.syncFallback ?? 'refuse';
  // the key for xfer and repair; the sync settings so that no process writes around the replicas (role.ts)
  const settings = { keyFile: options.keyFile, syncReplicas, syncFallback };
  if (!role) await control.setRole({ role: 'primary', epoch: 0, nodeId: newNodeId(), ...settings });
  else if (role.keyFile !== settings.keyFile || (role.syncReplicas ?? 0) !== syncReplicas || (role.syncFallback ?? 'refuse') !== syncFallback) await control.setRole({ ...role, ...settings });
  const gate = new SyncGate(syncReplicas, syncFallback, log, options.syncWaitMs);
  if (syncReplicas > 0) control.setGate(gate);
  const primary = new Primary(store, gate, log);
  const listener = await listen(options.listen, psk, (connection) => void primary.accept(connection), log);
  log(`replication: primary of store ${store.identity.storeId} listening on port ${listener.port} (epoch ${control.role()!.epoch}, ${syncReplicas} synchronous replicas, fallback ${syncFallback})`);
  return {
    close: async () => {
      control.setGate(undefined);
      gate.failAll(new MailstoreError('UNAVAILABLE', 'the primary is shutting down; the change may have committed'));
      await listener.close();
      await primary.close();
    },
    status: async () => ({
      role: control.role()!.role === 'fenced' ? 'fenced' : 'primary',
      epoch: control.role()!.epoch,
      port: listener.port,
      lastSeq: store.changes.lastSeq,
      syncReplicas, syncFallback,
      unprotectedCommits: gate.unprotectedCommits,
      replicas: await primary.replicaStates(),
    }),
  };
}

/** The replica sessions of one primary, and the dispatch of every incoming connection. */
class Primary {
  private readonly sessions = new Map<string, ReplicaSession>();
  /**
   * Replicas of an older mailstore refused at a record they cannot be sent (older-replica.ts), by
   * node id: the first seq of its batch. Refused again at their hello, before the welcome, so the
   * replica backs off (after a welcome it reconnected ten times a second, each logged on both sides).
   */
  readonly refusedOlder = new Map<string, { fromSeq: number; error: MailstoreError }>();
  /** Replicas being resynced (sendResync), by node id: where they were, and since when. */
  private readonly resyncs = new Map<string, { remote: string; seq: number; started: number }>();
  private closing = false;
  /**
   * Replicas refused at their hello or whose sessions fail without taking anything, by node id:
   * each logged once per reason, one connect line per run (repeated-failures.ts); a session that
   * took something ends the run.
   */
  readonly failures: RepeatedFailures;
  /** Connections whose replica was welcomed: a failure after it is its session's, logged as ever. */
  private readonly welcomed = new WeakSet<Connection>();

  constructor(readonly store: Store, readonly gate: SyncGate, readonly log: Log) {
    this.failures = new RepeatedFailures(log);
  }

  async accept(connection: Connection): Promise<void> {
    let refusable: string | undefined; // a replica's node id until its welcome: a refusal then is logged once per reason (failures)
    try {
      const hello = await connection.expect('hello', limits.replicationHandshakeMs);
      if (hello.kind === 'replica' && typeof hello.nodeId === 'string' && NODE_ID.test(hello.nodeId)) refusable = hello.nodeId;
      if (this.closing) throw new MailstoreError('UNAVAILABLE', 'the primary is shutting down');
      if (hello.kind !== 'fence') await this.checkEpoch(hello, connection);
      const role = this.store.replication().role();
      // a replica whose --replica-of names its own listener: told so, not that some replica answers
      // here; a check of it there compared it with itself ("identical", whatever its primary holds)
      if ((hello.kind === 'replica' || hello.kind === 'check') && role?.role === 'replica' && hello.nodeId === role.nodeId) {
        const option = hello.kind === 'check' ? 'the check\'s --primary names' : 'its --replica-of names';
        throw new MailstoreError('REFUSED', `this is the listener of the replica itself (node id ${role.nodeId}): ${option} its own --replication-listen; give the primary's address`);
      }
      if (role?.role === 'replica' && !['blobs', 'check'].includes(String(hello.kind))) {
        throw new MailstoreError('READ_ONLY_REPLICA', `this store is a replica: it answers repair and check requests only`);
      }
      // a peer gone without a FIN or an RST ends its session (logged below), which held its
      // connection and the answer it was being sent (up to 16 blobs) for good
      if (hello.kind !== 'replica') connection.keepAlive(limits.replicationPingMs, () => 3 * limits.replicationPingMs);
      switch (hello.kind) {
        case 'replica': return await this.replicate(connection, hello);
        case 'check': return await serveCheck(this.store, connection, this.checkStore(hello));
        case 'blobs': return await serveBlobs(this.store, connection);
        case 'xfer': return await serveXfer(this.store, connection, this.log);
        case 'fence': return await this.answerFence(hello, connection);
        default: throw new MailstoreError('INVALID', `unknown request ${String(hello.kind)}`);
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // also when the connection failed under it (a peer gone silent); a replica refused before its
      // welcome retries every few seconds for as long as it stays so: logged once per reason
      if (refusable !== undefined && !this.welcomed.has(connection)) this.failures.note(refusable, `replication: ${connection.remote}: replica ${refusable} refused: `, message);
      else this.log(`replication: ${connection.remote}: ${message}`);
      if (!connection.closed) {
        await connection.send({ t: 'error', code: isMailstoreError(error) ? error.code : 'INVALID', message }).catch(() => undefined);
      }
      connection.close();
    }
  }

  /** A peer from a newer epoch means a replica was promoted: this primary stops taking writes. */
  private async checkEpoch(hello: Message, connection: Connection): Promise<void> {
    const epoch = Number(hello.epoch ?? 0);
    if (await this.fenceBy(epoch, connection)) throw new MailstoreError('READ_ONLY_REPLICA', `this primary was fenced by epoch ${epoch}`);
  }

  /** Fences this primary when `epoch` is newer than its own; whether it did. */
  private async fenceBy(epoch: number, connection: Connection): Promise<boolean> {
    const control = this.store.replication();
    const role = control.role();
    if (!role || epoch <= role.epoch || role.role !== 'primary') return false;
    const fenced: ReplicationRole = { ...role, role: 'fenced', fencedBy: epoch };
    await control.setRole(fenced);
    this.gate.failAll(new MailstoreError('READ_ONLY_REPLICA', `fenced by epoch ${epoch}: the change may have committed here but is not on the new primary`, { mayHaveCommitted: true }));
    this.log(`replication: FENCED: ${connection.remote} is at epoch ${epoch} > ${role.epoch}: a replica was promoted; this store refuses writes from now on`);
    return true;
  }

  /**
   * A promoted replica's word (promote.ts). Fenced (now, or before), this store answers with the
   * last seq it committed once the batches already queued have committed (nothing else can), and
   * probes of its records there and below: the promoted store keeps its mailboxes' uidValidity
   * only when it holds that seq with the same records, as no reader here can have seen a uid it
   * lacks (docs/REPLICATION.md).
   */
  private async answerFence(hello: Message, connection: Connection): Promise<void> {
    const epoch = Number(hello.epoch ?? 0);
    await this.fenceBy(epoch, connection);
    const control = this.store.replication();
    const role = control.role();
    if (role?.role !== 'fenced') throw new MailstoreError('INVALID', `epoch ${String(hello.epoch)} is not newer than this primary's`);
    await control.fenced(async () => undefined); // the writer drained: changes.lastSeq is final
    const lastSeq = this.store.changes.lastSeq;
    // its records by checksum: a store put back to an older image gave seqs the promoted one holds for other records
    const history = await historyProbes(control.journal, this.store.changes.firstSeq, lastSeq);
    await connection.send({ t: 'error', code: 'READ_ONLY_REPLICA', message: `this primary was fenced by epoch ${role.fencedBy ?? epoch}`, lastSeq, history });
    connection.close();
  }

  private checkStore(hello: Message): void {
    if (hello.storeId !== this.store.identity.storeId) {
      throw new MailstoreError('REFUSED', `this is store ${this.store.identity.storeId}, not ${String(hello.storeId)}: a replica of another store is refused`);
    }
  }

  private async replicate(connection: Connection, hello: Message): Promise<void> {
    const nodeId = String(hello.nodeId ?? '');
    if (!NODE_ID.test(nodeId)) throw new MailstoreError('INVALID', 'a replica names its node id (16 hex digits)');
    const identity = await this.store.fs.readFile(join(this.store.root, LAYOUT.identity));
    const epoch = this.store.replication().role()!.epoch;
    if (hello.storeId === null) {
      // A new replica: it clones this store's identity, then connects again with it.
      await connection.send({ t: 'welcome', identity, epoch, storeId: this.store.identity.storeId });
      connection.close();
      return;
    }
    this.checkStore(hello);
    const lastSeq = Number(hello.lastSeq);
    if (!Number.isSafeInteger(lastSeq) || lastSeq < 0) throw new MailstoreError('INVALID', 'a replica names its last seq');
    if (lastSeq > this.store.changes.lastSeq) throw aheadError(lastSeq, this.store.changes.lastSeq);
    await refuseDivergedHistory(this.store.replication().journal, this.store.changes.firstSeq, this.store.changes.lastSeq, hello.history);
    const replicaEpoch = Number(hello.epoch ?? 0);
    if (replicaEpoch < epoch) {
      await refuseDroppedTentative(this.store.replication().journal, this.store.changes.firstSeq, this.store.changes.lastSeq, hello.held, { replica: replicaEpoch, primary: epoch });
      refuseDamagedHeld(hello.heldDamage, { replica: replicaEpoch, primary: epoch });
    } else {
      await refuseLostCommitted(this.store.replication().journal, this.store.changes.firstSeq, this.store.changes.lastSeq, hello.held, hello.heldCommitted);
    }
    const refused = this.refusedOlder.get(nodeId);
    if (refused && Number(hello.version ?? 1) < REPLICATION_VERSION && lastSeq + 1 >= refused.fromSeq) throw refused.error;
    await this.refuseTwin(nodeId);
    this.sessions.get(nodeId)?.stop();
    await replaceDamagedCursor(this.store, nodeId, lastSeq, this.log); // before, refused CORRUPT until an admin removed it
    let tails = new Map<number, number>((hello.tails as [number, number][] | undefined) ?? []);
    let seq = lastSeq;
    const settings = await readNodeSettings(this.store.fs, this.store.root);
    await connection.send({ t: 'welcome', identity, epoch, storeId: this.store.identity.storeId, settings });
    this.welcomed.add(connection);
    if (this.failures.once(nodeId, 'connected')) this.log(`replication: replica ${nodeId} connected from ${connection.remote} at seq ${lastSeq}`);
    if (hello.version === undefined) {
      // served as before (one of session 33 reads every record), but never silently: see REPLICATION_VERSION
      this.log(`replication: WARNING: replica ${nodeId} runs a mailstore older than this primary's (its hello names no replication version): upgrade replicas before their primary; one before session 32 misses what later records carry (docs/FORMAT.md, "Compatibility")`);
    }
    // the retained journal does not continue the replica's seq: it resyncs from a snapshot first
    if (lastSeq + 1 < this.store.changes.firstSeq) {
      connection.keepAlive(limits.replicationPingMs, () => limits.replicaApplyTimeoutMs); // a replica that vanished mid-resync frees it
      this.resyncs.set(nodeId, { remote: connection.remote, seq: lastSeq, started: Date.now() });
      try {
        ({ seq, tails } = await sendResync(this.store, connection, nodeId, tails, this.log));
      } finally {
        this.resyncs.delete(nodeId);
      }
    }
    const session = new ReplicaSession(this, connection, nodeId, seq, tails, Number(hello.version ?? 1));
    this.sessions.set(nodeId, session);
    await session.run();
  }

  /**
   * A second connection for the node id of a session that is alive comes from another replica
   * with the same REPLICATION file (a replica's directory copied, a VM cloned): taking the session
   * from it made the two take turns for as long as both ran. A replica that reconnects has let its
   * old connection go (its process restarted, it gave up on a silent link), or that one has gone
   * silent: it is replaced as before.
   */
  private async refuseTwin(nodeId: string): Promise<void> {
    const session = this.sessions.get(nodeId);
    if (!session || !(await session.aliveAfter(limits.replicationPingMs))) return;
    throw new MailstoreError('REFUSED', `replica node id ${nodeId} is already connected from ${session.remote}: two replicas share it (a copy of a replica's directory?); ` +
      `nothing was sent. Stop one of them, and start it again in an empty directory (it then takes a node id of its own)`);
  }

  async replicaStates(): Promise<ReplicaState[]> {
    const out: ReplicaState[] = [];
    const packBytes = sum(await this.store.replication().packs.durableTails());
    const seen = new Set<string>();
    for (const session of this.sessions.values()) {
      seen.add(session.nodeId);
      out.push(session.state(this.store.changes.lastSeq, packBytes));
    }
    for (const [nodeId, resync] of this.resyncs) {
      seen.add(nodeId);
      const cursor = await this.store.changes.cursor(`replica-${nodeId}`);
      out.push({
        nodeId, remote: resync.remote, connected: true, seq: resync.seq, lagRecords: Math.max(0, this.store.changes.lastSeq - resync.seq),
        lagBytes: -1, lastContact: Date.now(), ...(cursor ? { resyncingTo: cursor.seq } : {}),
      });
    }
    for (const { nodeId, seq, lagRecords, lastContact } of (await replicaCursors(this.store)).replicas) {
      if (!seen.has(nodeId)) out.push({ nodeId, remote: '', connected: false, seq, lagRecords, lagBytes: -1, lastContact }); // a damaged cursor: that status's finding
    }
    return out;
  }

  forget(session: ReplicaSession): void {
    if (this.sessions.get(session.nodeId) === session) this.sessions.delete(session.nodeId);
  }

  async close(): Promise<void> {
    this.closing = true;
    const all = [...this.sessions.values()];
    for (const session of all) session.stop();
    await Promise.all(all.map((s) => s.finished));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sum(tails: Map<number, number>): number {
  let total = 0;
  for (const size of tails.values()) total += size;
  return total;
}

/**
 * The ops a tentative round may carry: a compaction's (relocations into packs it wrote outside any
 * batch, retirements) and checkpoints go after their commit, in an ordinary round.
 */
const TENTATIVE_OPS: ReadonlySet<string> = new Set(['mailbox.create', 'mailbox.rename', 'mailbox.deleteBegin', 'mailbox.deleteEnd', 'mailbox.owner',
  'message.add', 'message.flags', 'message.expunge', 'change.purge', 'change.floor', 'acl.set', 'meta.set']);

/**
 * One connected replica: a sender loop (rounds) and a receiver loop (acks, pongs). With
 * synchronous replicas a batch also goes out as a tentative round while this primary writes and
 * syncs it (pending-rounds.ts has the replica's side); that it committed here rides on the next
 * tentative round (`c`), or goes as a `commit` of its own when none follows soon or before an
 * ordinary round.
 */
class ReplicaSession implements BatchListener {
  private stopped = false;
  /** Inside round(): a tentative round now would interleave with its frames. */
  private inRound = false;
  /** The last seq sent as tentative and not yet committed here (0: none). */
  private tentativeSeq = 0;
  /** A tentative round committed here whose commit the replica has not been told of yet (0: none). */
  private commitOwed = 0;
  private commitTimer?: NodeJS.Timeout;
  private unlisten: () => void = () => undefined;
  private sentSeq: number;
  /** The last seq of the last ordinary round (not a tentative one) sent. */
  private roundSeq = 0;
  private ackedSeq: number;
  /** Pack bytes sent with each round, by its last seq (for the lag in bytes). */
  private sentBytes: [seq: number, packBytes: number][] = [];
  private ackedPackBytes = 0;
  private cursorWritten = -Infinity;
  private cursorTimer?: NodeJS.Timeout;
  finished: Promise<void> = Promise.resolve();

  /** `version`: the replication version the replica's hello named (1: none, before session 35). */
  constructor(private readonly primary: Primary, private readonly connection: Connection, readonly nodeId: string, seq: number, private tails: Map<number, number>,
    private readonly version: number) {
    this.sentSeq = seq;
    this.ackedSeq = seq;
    this.startSeq = seq;
    this.ackedPackBytes = sum(tails);
  }

  /** Where the session began, and when: one that took nothing and did not last is one of a run of failures (end). */
  private readonly startSeq: number;
  private readonly startedMs = monotonicMs();

  private get cursorName(): string {
    return `replica-${this.nodeId}`;
  }

  async run(): Promise<void> {
    const feed = this.primary.store.changes;
    this.primary.gate.replicaConnected(this.nodeId, this.ackedSeq);
    if (!this.primary.store.readOnly) {
      await feed.register(this.cursorName, this.ackedSeq);
      const cursor = await feed.cursor(this.cursorName);
      if (cursor && cursor.seq < this.ackedSeq) await feed.advance(this.cursorName, this.ackedSeq);
    }
    this.unlisten = this.primary.gate.listen(this);
    // silent: nothing heard (pongs come back at once) for 3 pings, or, while a round is being sent
    // or applied (a replica whose socket is paused for its backlog reads no ping), for long. A
    // tentative round is no such round: it is acknowledged once durable, pings answered meanwhile,
    // and a synchronous change waits on it (with replicaApplyTimeoutMs a black-holed replica was
    // counted connected for 2 minutes: every change in them waited syncWaitMs and failed 'may
    // have committed', where a dropped one's are refused before anything is written)
    this.connection.keepAlive(limits.replicationPingMs, () => (this.inRound || this.roundSeq > this.ackedSeq ? limits.replicaApplyTimeoutMs : 3 * limits.replicationPingMs));
    const receiving = this.receive();
    this.finished = Promise.allSettled([receiving, this.send()]).then(() => this.end());
    await this.finished;
  }

  stop(): void {
    this.stopped = true;
    this.connection.close();
  }

  get remote(): string {
    return this.connection.remote;
  }

  /** Still connected after waiting up to `waitMs` for its connection to end, and heard from lately (it answers pings). */
  async aliveAfter(waitMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.connection.done, new Promise((resolve) => { timer = setTimeout(resolve, waitMs); })]);
    clearTimeout(timer);
    return !this.connection.closed && this.connection.quietMs() < 2 * limits.replicationPingMs;
  }

  state(lastSeq: number, packBytes: number): ReplicaState {
    return {
      nodeId: this.nodeId, remote: this.connection.remote, connected: !this.connection.closed, seq: this.ackedSeq,
      lagRecords: Math.max(0, lastSeq - this.ackedSeq), lagBytes: Math.max(0, packBytes - this.ackedPackBytes), lastContact: this.connection.lastHeard,
    };
  }

  private async end(): Promise<void> {
    this.stopped = true;
    this.unlisten();
    clearTimeout(this.cursorTimer);
    this.takeCommitOwed(); // the next session sends committed records, which replace the rounds
    this.primary.gate.replicaGone(this.nodeId);
    this.primary.forget(this);
    await this.writeCursor().catch(() => undefined);
    const why = this.connection.error ? `: ${this.connection.error.message}` : '';
    // a session that took nothing and did not last (a replica whose disk is full, every few seconds) is one of a run, logged once per reason
    if (this.ackedSeq > this.startSeq || monotonicMs() - this.startedMs >= limits.replicationRetryMaxMs) {
      this.primary.failures.clear(this.nodeId);
      this.primary.log(`replication: replica ${this.nodeId} disconnected at seq ${this.ackedSeq}${why}`);
    } else {
      this.primary.failures.note(this.nodeId, `replication: replica ${this.nodeId} `, `disconnected at seq ${this.ackedSeq}${why}`);
    }
  }

  /** Rounds until the connection ends: pack bytes, then records up to a batch end. */
  private async send(): Promise<void> {
    const feed = this.primary.store.changes;
    try {
      const control = this.primary.store.replication();
      while (!this.stopped && !this.connection.closed) {
        if (control.committedSeq() <= this.sentSeq) {
          // the journal may be ahead of the commit for a moment (its pack sync still running)
          if (feed.lastSeq > this.sentSeq) { await sleep(1); continue; }
          await Promise.race([feed.wait(this.sentSeq, limits.replicationPingMs), this.connection.done]);
          continue;
        }
        await this.round();
      }
    } catch (error) {
      if (!this.stopped) this.primary.log(`replication: replica ${this.nodeId}: ${(error as Error).message}`);
      // the replica logs it and shows it in its status (a replica of an older mailstore too)
      if (isMailstoreError(error, 'REFUSED')) await this.connection.sendLast({ t: 'error', code: error.code, message: error.message });
      this.connection.close();
    }
  }

  /**
   * A batch about to be written and synced here: sent as a tentative round when this replica is
   * caught up to it and holds every pack byte before it; otherwise the ordinary round after the
   * commit carries it. Synchronous (no await between the checks and the frame's write).
   */
  written(records: JournalRecord[], opsBySeq: Op[][], packBatch: PackBatch): void {
    if (this.stopped || this.connection.closed || this.inRound || this.tentativeSeq !== 0 || records[0].seq !== this.sentSeq + 1) return;
    if (packBatch.bytes > limits.replicationTentativeBytesMax || opsBySeq.some((ops) => ops.some((op) => !TENTATIVE_OPS.has(op.op)))) return;
    if (opsBySeq.some((ops) => newerThan(this.version, ops) !== undefined)) return; // the ordinary round refuses it, by name
    // a link slower than the mail (a trickle, a stall) would have every batch's round queued in
    // memory here, without bound: past a round's worth waiting, the ordinary rounds (which wait
    // for the socket) carry them
    if (this.connection.socket.writableLength > limits.replicationTentativeBytesMax) return;
    const packs = packBatch.runs();
    const tails = new Map(this.tails);
    for (const run of packs) {
      if ((tails.get(run.pack) ?? -1) !== run.offset) return; // bytes before it not shipped yet (a new pack, a compaction's)
      tails.set(run.pack, run.offset + run.bytes.length);
    }
    const round: TentativeRound = { records, packs, tails: [...tails] };
    const last = records[records.length - 1].seq;
    // the commit of the round before rides on this one: one frame (and one TLS write) per change, not two
    const c = this.takeCommitOwed();
    void this.connection.sendUncopied({ t: 'tentative', ...encodeRound(round), ...(c ? { c } : {}), kept: this.primary.store.changes.firstSeq }).catch(() => this.connection.close());
    this.tails = tails;
    this.sentSeq = last;
    this.tentativeSeq = last;
    this.sentBytes.push([last, sum(tails)]);
  }

  /**
   * The tentative round committed here. The replica learns it from the next tentative round, or
   * from a `commit` frame after limits.replicationCommitNoticeMs when none came (it commits a
   * batch of them later anyway: limits.replicaTentativeCommitDelayMs), or before an ordinary round.
   */
  committed(lastSeq: number): void {
    if (this.tentativeSeq === 0 || lastSeq < this.tentativeSeq || this.connection.closed) return;
    this.commitOwed = this.tentativeSeq;
    this.tentativeSeq = 0;
    this.commitTimer ??= setTimeout(() => this.sendCommitOwed(), limits.replicationCommitNoticeMs);
  }

  private takeCommitOwed(): number {
    const seq = this.commitOwed;
    this.commitOwed = 0;
    clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    return seq;
  }

  private sendCommitOwed(): void {
    const seq = this.takeCommitOwed();
    if (seq === 0 || this.connection.closed) return;
    void this.connection.send({ t: 'commit', seq, kept: this.primary.store.changes.firstSeq }).catch(() => this.connection.close());
  }

  /** The tentative round will not commit here: the replica drops it when it connects again. */
  writeFailed(): void {
    if (this.tentativeSeq === 0) return;
    this.primary.log(`replication: replica ${this.nodeId}: a batch sent as tentative did not commit here; reconnecting it`);
    this.connection.close();
  }

  private async round(): Promise<void> {
    this.inRound = true;
    try {
      await this.roundOnce();
    } finally {
      this.inRound = false;
    }
  }

  private async roundOnce(): Promise<void> {
    this.sendCommitOwed(); // the replica commits its tentative rounds before it takes records after them
    const records = await this.sendableRecords();
    if (records.length === 0) return;
    // tails read after the records: they cover every blob the records name
    const { tails, packBytes } = await sendPackBytes(this.primary.store, this.connection, this.tails);
    this.tails = tails;
    const last = records[records.length - 1].seq;
    // kept: the oldest seq this journal holds, below which the replica may retire its own
    await this.connection.send({ t: 'records', records: records.map((r) => [r.seq, r.payload]), tails: [...tails], kept: this.primary.store.changes.firstSeq });
    this.sentSeq = last;
    this.roundSeq = last;
    this.sentBytes.push([last, packBytes]);
  }

  /** readRecords, less what this replica's version cannot be sent (REFUSED, noted for its next hello). */
  private async sendableRecords(): Promise<{ seq: number; payload: Buffer }[]> {
    try {
      return sendableRecords(await this.readRecords(), this.version, this.nodeId);
    } catch (error) {
      if (isMailstoreError(error, 'REFUSED')) this.primary.refusedOlder.set(this.nodeId, { fromSeq: this.sentSeq + 1, error });
      throw error;
    }
  }

  /** The records after sentSeq, at most a round's worth, ending on a batch end. */
  private async readRecords(): Promise<{ seq: number; payload: Buffer }[]> {
    const { journal } = this.primary.store.replication();
    const upTo = this.primary.store.replication().committedSeq(); // always a batch end: a whole batch committed
    const out: { seq: number; payload: Buffer }[] = [];
    let bytes = 0;
    const recent = journal.recentAfter(this.sentSeq);
    if (recent) {
      for (const record of recent) {
        if (record.seq > upTo) break;
        out.push(record);
        bytes += record.payload.length;
        const full = out.length >= limits.replicationRecordsPerRound || bytes >= limits.replicationRoundBytesMax;
        if (full && decodeCbor<JournalPayload>(record.payload).end === true) break;
      }
      return out;
    }
    const onDamage = () => { throw new MailstoreError('CORRUPT', `the journal is damaged after seq ${this.sentSeq}; run 'mailstore scrub' on the primary`); };
    for await (const record of journal.read(this.sentSeq, onDamage)) {
      if (record.seq > upTo) break;
      if (record.seq !== this.sentSeq + 1 + out.length) throw new MailstoreError('CORRUPT', `the journal has no record ${this.sentSeq + 1 + out.length}; run 'mailstore scrub' on the primary`);
      out.push(record);
      bytes += record.payload.length;
      const full = out.length >= limits.replicationRecordsPerRound || bytes >= limits.replicationRoundBytesMax;
      if (full && decodeCbor<JournalPayload>(record.payload).end === true) break;
    }
    return out;
  }

  private async receive(): Promise<void> {
    try {
      for (;;) {
        const message = await this.connection.next();
        if (!message) return;
        if (message.t === 'ack' && message.pending === true) this.pendingAcked(Number(message.seq));
        else if (message.t === 'ack') this.acked(Number(message.seq));
        else if (message.t === 'error') {
          this.primary.failures.note(this.nodeId, `replication: replica ${this.nodeId} `, `reports: ${String(message.message)}`);
          return;
        }
      }
    } catch {
      return;
    } finally {
      this.stopped = true;
      this.connection.close();
    }
  }

  /** The replica holds a tentative round durable: enough for a synchronous commit (not for the cursor). */
  private pendingAcked(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq > this.sentSeq) return;
    this.primary.gate.replicaAcked(this.nodeId, seq);
  }

  private acked(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq <= this.ackedSeq || seq > this.sentSeq) return;
    this.ackedSeq = seq;
    while (this.sentBytes.length > 0 && this.sentBytes[0][0] <= seq) this.ackedPackBytes = this.sentBytes.shift()![1];
    this.primary.gate.replicaAcked(this.nodeId, seq);
    this.scheduleCursor();
  }

  /**
   * The durable cursor follows the acks at most every replicaCursorWriteMs (it only pins retention).
   * Spaced on the monotonic clock: on the wall clock, a step back of an hour left it unwritten that hour.
   */
  private scheduleCursor(): void {
    if (this.cursorTimer) return;
    const wait = Math.max(0, this.cursorWritten + limits.replicaCursorWriteMs - monotonicMs());
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      void this.writeCursor().catch((error) => this.primary.log(`replication: cursor of ${this.nodeId}: ${(error as Error).message}`));
    }, wait);
  }

  private async writeCursor(): Promise<void> {
    if (this.primary.store.readOnly) return;
    this.cursorWritten = monotonicMs();
    const cursor = await this.primary.store.changes.cursor(this.cursorName);
    if (cursor && cursor.seq < this.ackedSeq) await this.primary.store.changes.advance(this.cursorName, this.ackedSeq);
  }
}
