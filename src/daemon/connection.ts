// One client connection of the daemon: calls in, answers out. Calls run concurrently (so the
// appends of all connections meet in the Store's group-commit writer), in the order they arrived
// complete (so appendBatch chains keep their order). Bounded per connection: calls in flight and
// body bytes held; past either, the daemon stops reading the socket until calls finish, which is
// the backpressure a client feels. Listings and streams run at most a window ahead of their reader.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { MailstoreError } from '../errors.js';
import { daemonLimits } from '../limits.js';
import type { CommitChain } from '../store/api.js';
import { handOver } from '../store/validate.js';
import type { Changes, MessageInfo } from '../store/types.js';
import { closeSession, sessionOpen, type SessionPart } from './backup-sessions.js';
import { LISTING_PROCEDURES, PROCEDURES, uidsOfRanges, type ProcedureName } from './procedures.js';
import {
  Assembly, LISTING_METHODS, listingItemBytes, STREAM_METHODS, VALUE_METHODS, codesNamed, olderClientError, toWireError, type Frame,
} from './protocol.js';
import { bodyBudget, frameBudget } from './body-budget.js';
import type { DaemonServer } from './server.js';
import { FrameSocket } from './transport.js';
import { monotonicMs } from '../monotonic.js';

/** A listing or stream being sent: how far it is ahead of what the client acknowledged. */
interface Flow {
  sentBytes: number;
  sentItems: number;
  ackedBytes: number;
  ackedItems: number;
  cancelled: boolean;
  wake?: () => void;
}

/** Listings and streams waiting for their reader's credit in this process, over all connections (daemonLimits.parkedFlowsMax). */
export const parkedFlows = { count: 0 };

/** Chains a connection keeps (an import uses one per folder); the oldest is forgotten past this. */
const CHAINS_MAX = 1024;

export class DaemonConnection {
  readonly closed: Promise<void>;
  private readonly transport: FrameSocket;
  private readonly assemblies = new Map<number, { method: string; assembly: Assembly }>();
  /** Calls refused while their bytes were still coming: id -> bytes still to drop. */
  private readonly discarding = new Map<number, number>();
  private readonly flows = new Map<number, Flow>();
  private readonly chains = new Map<number, CommitChain>();
  /**
   * Backup sessions opened on this connection and not closed yet: closed when it closes. A backup
   * killed mid-run held its session's index snapshot (and what the journal said) until its idle
   * bound, and one killed again and again held one per run meanwhile.
   */
  private readonly backupSessions = new Set<number>();
  private inFlight = 0;
  /** The newer error codes the client's hello named (protocol.ts NEWER_CODES); a client of an older mailstore names none. */
  private codesKnown: ReadonlySet<string> = new Set();
  /** Calls in flight that wait for their reader's credit (windowOpen): not counted against the bound. */
  private parked = 0;
  private heldBytes = 0;
  /**
   * A call waits for room in the daemon's body budget (body-budget.ts): the socket is not read, and
   * the call and chunk frames already read behind it wait here, in order.
   */
  private waitingFrames?: { frame: Frame; held: number }[];
  private reading = true;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly id: number, socket: Socket, private readonly server: DaemonServer) {
    let closedResolve!: () => void;
    this.closed = new Promise((resolve) => { closedResolve = resolve; });
    this.transport = new FrameSocket(socket, {
      frame: (frame, held) => this.frame(frame, held),
      malformed: (error) => this.malformed(error),
      midCall: () => this.assemblies.size > 0 || this.waitingFrames !== undefined, // a call waiting for its body's room is one too
      closed: () => {
        for (const flow of this.flows.values()) this.cancel(flow);
        for (const { assembly } of this.assemblies.values()) bodyBudget.give(assembly.bytes);
        this.assemblies.clear();
        for (const session of this.backupSessions) void closeSession(this.store, session);
        this.backupSessions.clear();
        closedResolve();
        this.wakeIdle();
      },
    }, daemonLimits.frameCompleteMs, frameBudget);
  }

  private get store() {
    return this.server.store;
  }

  /** The store the socket's own calls (append, fetch, …) go to: counted by serve's metrics. */
  private get callStore() {
    return this.server.callStore;
  }

  /** `held`: the frame's bytes reserved in the body budget (a big one): given back when its call ends. */
  private frame(frame: Frame, held: number): void {
    if (this.waitingFrames && (frame.t === 'call' || frame.t === 'chunk')) {
      this.waitingFrames.push({ frame, held });
      return;
    }
    if (frame.t === 'call' && !frame.b) return this.call(frame, held);
    if (held > 0) bodyBudget.give(held); // the frame's bytes are done with: decoded into what follows, or a body's own reservation holds them
    switch (frame.t) {
      case 'call': return this.call(frame, 0);
      case 'chunk': return this.chunk(frame.id, frame.d);
      case 'more': return this.credit(frame.id, frame.n, frame.k);
      case 'cancel': {
        const flow = this.flows.get(frame.id);
        if (flow) this.cancel(flow);
        return;
      }
      default: return this.malformed(new MailstoreError('INVALID', `a client may not send ${frame.t} frames`));
    }
  }

  /** Answers INVALID (id 0: no call) where it still can, and drops the connection. */
  private malformed(error: MailstoreError): void {
    this.server.malformedLog.note(() => ({ connection: this.id, code: error.code, message: error.message }));
    this.transport.send({ t: 'err', id: 0, e: toWireError(error) });
    this.transport.end();
    setTimeout(() => this.transport.destroy(), 1000).unref();
  }

  private call(frame: Extract<Frame, { t: 'call' }>, held: number): void {
    if (this.assemblies.has(frame.id) || this.flows.has(frame.id)) {
      bodyBudget.give(held);
      return this.malformed(new MailstoreError('INVALID', `call id ${frame.id} is already in use`));
    }
    if (!frame.b) {
      // A listing or stream may wait for its reader's credit, which comes over this socket: were
      // it to keep its frame's reservation, parked ones could fill the budget and stop the reading
      // that brings their credit (their arguments are small: names, uid sets)
      if (held > 0 && streams(frame.m, frame.a)) {
        bodyBudget.give(held);
        held = 0;
      }
      return this.dispatch(frame.id, frame.m, frame.a, held);
    }
    // One body at a time (the client sends a call's chunks before its next call): each body is
    // allocated whole at its first chunk, and calls begun and left half-sent held their bodies
    // uncounted, so one connection could make the daemon allocate callBytesMax per call frame.
    if (this.assemblies.size > 0) return this.malformed(new MailstoreError('INVALID', `call ${frame.id} brings byte strings before those of call ${[...this.assemblies.keys()][0]} are complete`));
    let assembly: Assembly;
    try {
      assembly = new Assembly(frame.a, frame.b, daemonLimits.callBytesMax);
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code !== 'TOO_LARGE') return this.malformed(error as MailstoreError);
      this.transport.send({ t: 'err', id: frame.id, e: toWireError(error) });
      this.discarding.set(frame.id, declaredBytes(frame.a));
      return;
    }
    if (bodyBudget.tryTake(assembly.bytes)) {
      this.assemblies.set(frame.id, { method: frame.m, assembly });
      return;
    }
    this.waitingFrames = [];
    this.updateReading();
    void bodyBudget.take(assembly.bytes).then(() => {
      const queued = this.waitingFrames ?? [];
      this.waitingFrames = undefined;
      if (this.transport.closed) {
        for (const { held } of queued) bodyBudget.give(held);
        return bodyBudget.give(assembly.bytes);
      }
      this.assemblies.set(frame.id, { method: frame.m, assembly });
      this.updateReading();
      for (const [i, next] of queued.entries()) {
        if (this.waitingFrames) { // a later call waits in its turn, with what came after it
          (this.waitingFrames as { frame: Frame; held: number }[]).push(...queued.slice(i));
          break;
        }
        this.frame(next.frame, next.held);
      }
    });
  }

  private chunk(id: number, data: Buffer): void {
    const dropping = this.discarding.get(id);
    if (dropping !== undefined) {
      if (dropping - data.length <= 0) this.discarding.delete(id);
      else this.discarding.set(id, dropping - data.length);
      return;
    }
    const pending = this.assemblies.get(id);
    if (!pending) return this.malformed(new MailstoreError('INVALID', `chunk frame for id ${id}, which expects none`));
    try {
      pending.assembly.add(data);
    } catch (error) {
      return this.malformed(error as MailstoreError);
    }
    if (!pending.assembly.complete) return;
    this.assemblies.delete(id);
    this.dispatch(id, pending.method, pending.assembly.value as unknown[], pending.assembly.bytes);
  }

  private dispatch(id: number, method: string, args: unknown[], bytes: number): void {
    if (this.stopped) {
      bodyBudget.give(bytes);
      const error = new MailstoreError('UNAVAILABLE', 'the daemon is stopping; nothing of this call was done (retry once it is back)', { mayHaveCommitted: false });
      this.transport.send({ t: 'err', id, e: toWireError(error) });
      return;
    }
    this.inFlight++;
    this.heldBytes += bytes;
    this.updateReading();
    const started = monotonicMs();
    let code: string | undefined;
    this.run(id, method, args)
      .catch((error: unknown) => {
        code = error instanceof MailstoreError ? error.code : 'INTERNAL';
        this.fail(id, error);
      })
      .finally(() => {
        const event = { method, ms: monotonicMs() - started, code, ...(method === 'procedure' ? { procedure: String(args[0]) } : {}) };
        for (const observe of this.server.onCall) observe(event);
        this.inFlight--;
        this.heldBytes -= bytes;
        bodyBudget.give(bytes);
        this.updateReading();
        this.wakeIdle();
      });
  }

  /** Runs one call. The store method is entered synchronously, so calls start in arrival order. */
  private async run(id: number, method: string, args: unknown[]): Promise<void> {
    if (method === 'hello') {
      this.codesKnown = codesNamed(args);
      return this.reply(id, this.server.hello());
    }
    if (method === 'procedure') return this.runProcedure(id, args);
    const store = this.callStore as unknown as Record<string, (...a: unknown[]) => unknown>;
    if (method === 'changesSince') return this.reply(id, await this.changesSinceValue(args));
    if (VALUE_METHODS.has(method)) return this.reply(id, await store[method](...this.withChain(method, handOverBodies(method, args))));
    if (LISTING_METHODS.has(method)) return this.sendListing(id, store[method](...this.withCorruptItems(id, method, args)) as AsyncGenerator<unknown>);
    if (STREAM_METHODS.has(method)) return this.sendStream(id, await (store[method](...args) as Promise<Readable>));
    throw new MailstoreError('INVALID', `the daemon has no method ${JSON.stringify(method)}`);
  }

  /** changesSince as one value, as a client before session 31 asks: it knows no vanished ranges, so their uids go as vanished ones. */
  private async changesSinceValue(args: unknown[]): Promise<Changes> {
    const [mailbox, modseq] = args as [string, number];
    const { vanishedRanges, vanishedFloor: _floor, ...answer } = await this.callStore.changesSince(mailbox, modseq);
    return vanishedRanges ? { ...answer, vanished: uidsOfRanges(vanishedRanges, mailbox) } : answer;
  }

  private async runProcedure(id: number, args: unknown[]): Promise<void> {
    const [name, ...rest] = args;
    if (typeof name !== 'string' || !Object.hasOwn(PROCEDURES, name)) throw new MailstoreError('INVALID', `the daemon has no procedure ${JSON.stringify(name)}`);
    const override = this.server.procedureOverrides[name as ProcedureName];
    const local = PROCEDURES[name as ProcedureName] as (...a: unknown[]) => unknown;
    const run = override ?? ((...a: unknown[]) => local(this.store, ...a));
    if (name === 'stateSinceOpen') return this.sendListing(id, this.ownSessions(run(...rest) as AsyncGenerator<SessionPart>));
    if (LISTING_PROCEDURES.has(name)) return this.sendListing(id, run(...rest) as AsyncGenerator<unknown>);
    if (name === 'stateSinceClose') this.backupSessions.delete(rest[0] as number);
    return this.reply(id, await run(...rest));
  }

  /** A backup session's parts as they are listed, its number noted as this connection's (backupSessions). */
  private async *ownSessions(parts: AsyncGenerator<SessionPart>): AsyncGenerator<SessionPart> {
    for await (const part of parts) {
      if ('head' in part) {
        if (this.transport.closed) { // it closed while the session was being taken
          await closeSession(this.store, part.head.session);
          return;
        }
        for (const session of this.backupSessions) if (!sessionOpen(session)) this.backupSessions.delete(session); // closed when idle
        this.backupSessions.add(part.head.session);
      }
      yield part;
    }
  }

  /** appendBatch's chain crosses as a number the client chose; each number is one CommitChain here. */
  private withChain(method: string, args: unknown[]): unknown[] {
    const options = args[2] as { chain?: unknown } | undefined;
    if (method !== 'appendBatch' || options === null || typeof options !== 'object' || options.chain === undefined) return args;
    if (!Number.isSafeInteger(options.chain)) throw new MailstoreError('INVALID', 'appendBatch chain must be a chain id on the socket');
    let chain = this.chains.get(options.chain as number);
    if (!chain) {
      if (this.chains.size >= CHAINS_MAX) this.chains.delete(this.chains.keys().next().value as number);
      chain = {};
      this.chains.set(options.chain as number, chain);
    }
    return [args[0], args[1], { ...options, chain }];
  }

  /**
   * readMessages' onCorrupt crosses as `true`: each skipped message becomes an item frame with c.
   * Its bodies are never lent here (lendBodies): the socket may still hold one when the listing asks for the next.
   */
  private withCorruptItems(id: number, method: string, args: unknown[]): unknown[] {
    const options = args[1] as { onCorrupt?: unknown; lendBodies?: unknown } | undefined;
    if (method !== 'readMessages' || options === null || typeof options !== 'object') return args;
    if (options.onCorrupt !== true && options.lendBodies !== true) return args;
    const onCorrupt = options.onCorrupt !== true ? options.onCorrupt : (info: MessageInfo, error: MailstoreError) => { this.transport.send({ t: 'item', id, c: { info, e: toWireError(error) } }); };
    return [args[0], { ...options, onCorrupt, lendBodies: options.lendBodies === true ? false : options.lendBodies }];
  }

  /** The answer, written at once when it can (transport.sendValueSoon: no extra turn before the client hears). */
  private reply(id: number, value: unknown): Promise<void> | undefined {
    const gone = (error: unknown): void => {
      if (this.transport.closed) return; // the client went away; the call's effect stands
      throw error;
    };
    try {
      return this.transport.sendValueSoon({ t: 'res', id }, value)?.catch(gone);
    } catch (error) {
      gone(error);
      return undefined;
    }
  }

  private fail(id: number, error: unknown): void {
    if (!(error instanceof MailstoreError)) this.server.logger.error('call-failed', { connection: this.id, id, message: (error as Error)?.message ?? String(error) });
    else if (error.code === 'HALTED' || error.code === 'CLOSED') this.server.storeFailed(error);
    this.transport.send({ t: 'err', id, e: toWireError(olderClientError(error, this.codesKnown)) });
  }

  private async sendListing(id: number, items: AsyncGenerator<unknown>): Promise<void> {
    const flow = this.openFlow(id);
    try {
      for await (const item of items) {
        if (flow.cancelled) break;
        await this.transport.sendValue({ t: 'item', id }, item);
        flow.sentItems++;
        flow.sentBytes += listingItemBytes(item);
        await this.windowOpen(flow);
      }
      if (!flow.cancelled) this.transport.send({ t: 'end', id });
    } finally {
      this.flows.delete(id);
      await items.return(undefined).catch(() => undefined);
    }
  }

  private async sendStream(id: number, readable: Readable): Promise<void> {
    const flow = this.openFlow(id);
    try {
      this.transport.send({ t: 'res', id, v: null, stream: true });
      for await (const piece of readable) {
        const bytes = piece as Buffer;
        for (let at = 0; at < bytes.length && !flow.cancelled; at += daemonLimits.chunkBytes) {
          const d = bytes.subarray(at, at + daemonLimits.chunkBytes);
          if (!this.transport.send({ t: 'chunk', id, d })) await this.transport.drained();
          flow.sentBytes += d.length;
          await this.windowOpen(flow);
        }
        if (flow.cancelled) break;
      }
      if (!flow.cancelled) this.transport.send({ t: 'end', id });
    } finally {
      this.flows.delete(id);
      readable.destroy();
    }
  }

  private openFlow(id: number): Flow {
    const flow: Flow = { sentBytes: 0, sentItems: 0, ackedBytes: 0, ackedItems: 0, cancelled: false };
    this.flows.set(id, flow);
    return flow;
  }

  /** Waits while the flow is a window ahead of its reader (or until it is cancelled or the connection closes). */
  private async windowOpen(flow: Flow): Promise<void> {
    while (!flow.cancelled && !this.transport.closed &&
      (flow.sentBytes - flow.ackedBytes > daemonLimits.streamWindowBytes || flow.sentItems - flow.ackedItems > daemonLimits.streamWindowItems)) {
      // the credit comes over this socket: were this call counted while it waits, a client with
      // callsPerConnectionMax listings open (an IMAP server's sessions on one Client) stopped the
      // reading that brings it, and every one of them waited for good
      if (parkedFlows.count >= daemonLimits.parkedFlowsMax) {
        this.server.parkedRefusedLog.note(() => ({ connection: this.id, parked: parkedFlows.count }));
        throw new MailstoreError('UNAVAILABLE', `the daemon holds ${daemonLimits.parkedFlowsMax} listings and streams waiting for their readers already (daemonLimits.parkedFlowsMax): this one was ended where it was; read it again, taking its items as they come`, { mayHaveCommitted: false });
      }
      this.parked++;
      parkedFlows.count++;
      this.updateReading();
      try {
        await new Promise<void>((resolve) => { flow.wake = resolve; });
      } finally {
        this.parked--;
        parkedFlows.count--;
        this.updateReading();
      }
    }
    if (this.transport.closed) flow.cancelled = true;
  }

  private credit(id: number, bytes: number, items: number): void {
    const flow = this.flows.get(id);
    if (!flow) return; // the flow ended while the credit was on its way
    flow.ackedBytes += Number(bytes) || 0;
    flow.ackedItems += Number(items) || 0;
    flow.wake?.();
  }

  private cancel(flow: Flow): void {
    flow.cancelled = true;
    flow.wake?.();
  }

  /** Stops reading the socket while the connection is at its bounds (or stopping), resumes below them. */
  private updateReading(): void {
    const busy = this.waitingFrames !== undefined || this.inFlight - this.parked >= daemonLimits.callsPerConnectionMax || this.heldBytes > daemonLimits.heldBytesPerConnectionMax;
    if (busy && this.reading) this.transport.pause();
    if (!busy && !this.reading) this.transport.resume();
    this.reading = !busy;
  }

  /** SIGTERM: no new calls from this connection; each is answered UNAVAILABLE (not done) instead. */
  stopReading(): void {
    this.stopped = true;
  }

  /** Resolves when no call of this connection is in flight (or it closed). */
  idle(): Promise<void> {
    if (this.inFlight === 0 || this.transport.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    if (this.inFlight > 0 && !this.transport.closed) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  destroy(): void {
    this.transport.destroy();
  }
}

/**
 * The bodies of an append or appendBatch were decoded from this connection's frames and nothing
 * else holds them: the store may keep them without its defensive copy (one body copy less per
 * message, which was most of the daemon's garbage under many appending clients).
 */
function handOverBodies(method: string, args: unknown[]): unknown[] {
  const give = (bytes: unknown) => { if (bytes instanceof Uint8Array) handOver(bytes); };
  if (method === 'append') give(args[1]);
  else if (method === 'appendBatch' && Array.isArray(args[1])) for (const item of args[1]) give((item as { bytes?: unknown } | null)?.bytes);
  return args;
}

/** The bytes a refused call's detached byte strings still announce (to drop them as they come). */
function declaredBytes(args: unknown[]): number {
  let total = 0;
  const walk = (v: unknown): void => {
    if (v !== null && typeof v === 'object' && 'tag' in v && 'value' in v && typeof (v as { value: unknown }).value === 'number') total += (v as { value: number }).value;
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Date)) Object.values(v).forEach(walk);
  };
  walk(args);
  return total;
}

/** The calls whose answers wait for the reader (listings, streams): run() sends them so. */
function streams(method: string, args: unknown[]): boolean {
  return LISTING_METHODS.has(method) || STREAM_METHODS.has(method) || (method === 'procedure' && LISTING_PROCEDURES.has(String(args[0])));
}
