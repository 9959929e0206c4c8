// The client library of the daemon (`import { Client } from 'mailstore/client'`): the Store's API
// over the daemon's unix socket, so a mail server's many processes share one store. Same method
// names, arguments and results as Store (both implement MailStore, checked by the compiler).
//
// Failures: the daemon's errors arrive with their MailstoreError code. When the daemon cannot be
// reached, goes away, or a call outlives callTimeoutMs, the call fails UNAVAILABLE with
// `mayHaveCommitted`: true only for a change whose every byte reached the socket (the daemon may
// have committed it before it died); false when it cannot have been made. The next call
// reconnects (waiting up to reconnectWaitMs for a restarting daemon).
import { createConnection, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MUTATING_PROCEDURES } from '../daemon/procedure-names.js';
import type { ChangesPart, ProcedureRunner } from '../daemon/procedures.js';
import {
  Assembly, MUTATING_METHODS, NEWER_CODES, PROTOCOL_VERSION, fromWireError, listingItemBytes, type Frame, type HelloResult, type WireError,
} from '../daemon/protocol.js';
import { FrameSocket } from '../daemon/transport.js';
import { MailstoreError, isMailstoreError } from '../errors.js';
import { daemonLimits, limits } from '../limits.js';
import type { AppendBatchItem, AppendBatchOptions, MailStore } from '../store/api.js';
import type {
  AppendOptions, AppendResult, Changes, ChangesSincePart, FlagChange, MailboxStatus, MailboxSummary, MessageInfo, MessageWithBody, ReadMessagesOptions, StoreStats,
} from '../store/types.js';
import type { DeleteUserResult, RenameUserResult } from '../store/users.js';
import type { MovedUser } from '../store/moved.js';
import type { ClockReport } from '../store/clock-report.js';
import { checkDeletable, formatMailboxName, type DeleteOptions } from '../store/validate.js';
import { userTree } from '../store/user-name.js';
import { monotonicMs } from '../monotonic.js';

export { MailstoreError, isMailstoreError } from '../errors.js';
export type { MailStore } from '../store/api.js';

export { defaultSocketPath } from './socket-path.js';

export interface ClientOptions {
  /** A call (its first answer, for listings and streams) fails UNAVAILABLE after this long; 0 or absent: no limit. */
  callTimeoutMs?: number;
  /** While the daemon cannot be reached, a call retries connecting this long before UNAVAILABLE (default 2000). */
  reconnectWaitMs?: number;
  /** A daemon that accepts the connection but does not answer its first call within this long is UNAVAILABLE (default: callTimeoutMs). */
  connectTimeoutMs?: number;
}

type Pending =
  | { kind: 'value'; mutating: boolean; sent: boolean; resolve(v: unknown): void; reject(e: Error): void; assembly?: Assembly; timer?: NodeJS.Timeout }
  | { kind: 'stream'; mutating: false; sent: boolean; resolve(v: unknown): void; reject(e: Error): void; stream?: StreamState; timer?: NodeJS.Timeout }
  | { kind: 'listing'; mutating: boolean; sent: boolean; listing: ListingState; timer?: NodeJS.Timeout };

interface ListingState {
  queue: Extract<Frame, { t: 'item' }>[];
  done: boolean;
  error?: Error;
  wake?: () => void;
  assembly?: Assembly;
  assemblyFrame?: Extract<Frame, { t: 'item' }>;
}

interface StreamState { readable: Readable; received: number; acked: number }

/** A listing's call on its link, once it is sent. */
interface ListingCall { link?: Link; id: number }

/** Cancels a listing the daemon is still sending (its reader stopped early). */
function cancelListing(call: ListingCall): void {
  if (call.link?.pending.delete(call.id)) call.link.transport.send({ t: 'cancel', id: call.id });
}

/**
 * Listings their caller dropped unfinished without return() (`await client.messages(box).next()`
 * to peek) are cancelled once their generator is collected: the daemon kept each one, past its
 * window, waiting for credit for as long as the connection lived, its index reader open.
 */
const abandonedListings = new FinalizationRegistry<ListingCall>(cancelListing);

/** One connection to the daemon; a Client replaces it when it dies. */
class Link {
  readonly pending = new Map<number, Pending>();
  readonly transport: FrameSocket;
  private queue: Promise<void> = Promise.resolve();
  dead = false;
  /** What the daemon said when it dropped us (an err frame with id 0), for the UNAVAILABLE message. */
  lastWord?: string;

  constructor(socket: Socket, private readonly client: Client) {
    this.transport = new FrameSocket(socket, {
      frame: (frame) => client.receive(this, frame),
      malformed: (error) => { this.lastWord = `unreadable answer: ${error.message}`; this.transport.destroy(); },
      closed: () => { this.dead = true; client.linkClosed(this); },
    });
  }

  /**
   * Sends frames one call at a time, so a call's chunks never interleave with the next call (chains
   * keep their order). With nothing queued, `send` runs now, and undefined says it is done (its one
   * frame written: no turn of the event loop on the way to the socket, issue 13's client p50).
   */
  enqueue(send: () => Promise<void> | undefined): Promise<void> | undefined {
    if (this.queued > 0) return this.track(this.queue.then(send));
    let run: Promise<void> | undefined;
    try {
      run = send();
    } catch (error) {
      return Promise.reject(error);
    }
    return run && this.track(run);
  }

  /** Sends still under way (queued or waiting for the socket to drain). */
  private queued = 0;

  private track(run: Promise<void>): Promise<void> {
    this.queued++;
    this.queue = run.then(() => { this.queued--; }, () => { this.queued--; });
    return run;
  }
}

export class Client implements MailStore, ProcedureRunner {
  private link?: Link;
  private linking?: Promise<Link>;
  private closed = false;
  private nextId = 1;
  private nextChain = 1;
  private readonly chainIds = new WeakMap<object, number>();
  /** The daemon's hello: protocol version, store id and root, pid. */
  daemon?: HelloResult;

  private constructor(readonly socketPath: string, private readonly options: ClientOptions) {}

  /** Connects to the daemon at `socketPath` (UNAVAILABLE when none answers within reconnectWaitMs; ACCESS without permission). */
  static async connect(socketPath: string, options: ClientOptions = {}): Promise<Client> {
    const client = new Client(socketPath, options);
    await client.currentLink();
    return client;
  }

  // ---- connection --------------------------------------------------------------------------------

  private async currentLink(): Promise<Link> {
    if (this.closed) throw new MailstoreError('CLOSED', 'the client is closed');
    if (this.link && !this.link.dead) return this.link;
    this.linking ??= this.reconnect().finally(() => { this.linking = undefined; });
    return this.linking;
  }

  private async reconnect(): Promise<Link> {
    // monotonic: on the wall clock, a step back of an hour kept a delivery retrying for that hour
    const deadline = monotonicMs() + (this.options.reconnectWaitMs ?? daemonLimits.clientReconnectWaitMs);
    for (;;) {
      let accepted = false;
      let link: Link | undefined;
      try {
        const socket = await openSocket(this.socketPath);
        accepted = true;
        link = new Link(socket, this);
        // closed while it connected: close() found no link to end (it ends one that waits for its
        // hello), and this one would have stayed open, its call sent
        if (this.closed) throw new MailstoreError('CLOSED', 'the client was closed while it connected; nothing of the call was sent', { mayHaveCommitted: false });
        this.link = link;
        const hello = await this.withTimeout(this.send<HelloResult>(link, 'hello', [{ codes: NEWER_CODES }], false), link);
        if (hello.protocol !== PROTOCOL_VERSION) throw new MailstoreError('INVALID', `the daemon speaks protocol ${hello.protocol}, this client ${PROTOCOL_VERSION}: upgrade them together`);
        this.daemon = hello;
        return link;
      } catch (error) {
        // A link without a usable hello is let go: it stayed open for good (a descriptor here and a
        // connection in the daemon per failed connect: a server retrying through an upgrade), and
        // as this.link the next call went out on it.
        if (link) {
          if (this.link === link) this.link = undefined;
          link.transport.destroy();
        }
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM') {
          throw new MailstoreError('ACCESS', `may not connect to the daemon's socket ${this.socketPath} (it is mode 0660: join its group, see serve --socket-group)`, { path: this.socketPath, cause: error });
        }
        if (error instanceof MailstoreError && error.code !== 'UNAVAILABLE') throw error;
        if (monotonicMs() >= deadline || this.closed) {
          // a daemon that takes the connection and closes it before its hello: it has every connection it takes
          // EAGAIN: a unix socket's queue of connections waiting to be accepted is full, so a daemon listens there
          const why = accepted
            ? `the daemon on ${this.socketPath} took the connection but gave no hello (${(error as Error).message}): it has all the connections it takes, is stopping, or hangs; try again`
            : code === 'EAGAIN'
              ? `the daemon on ${this.socketPath} has as many connections waiting to be accepted as its queue holds (EAGAIN): it is overloaded or stalled; try again`
              : `no daemon answers on ${this.socketPath} (${code ?? (error as Error).message}); is 'mailstore serve' running?`;
          throw new MailstoreError('UNAVAILABLE', why, { path: this.socketPath, cause: error, mayHaveCommitted: false });
        }
        await sleep(daemonLimits.clientReconnectRetryMs);
      }
    }
  }

  /** The hello of a new link, bounded by connectTimeoutMs: a hung daemon must not hang the caller. */
  private withTimeout<T>(answer: Promise<T>, link: Link): Promise<T> {
    const ms = this.options.connectTimeoutMs ?? this.options.callTimeoutMs;
    if (!ms) return answer;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        link.transport.destroy();
        // worded to stand inside connect's "took the connection but gave no hello (...)", which always wraps it
        reject(new MailstoreError('UNAVAILABLE', `none within ${ms} ms`, { path: this.socketPath, mayHaveCommitted: false }));
      }, ms);
    });
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }

  /** The link died: every call in flight on it fails UNAVAILABLE, saying whether it may have committed. */
  linkClosed(link: Link): void {
    if (this.link === link) this.link = undefined;
    const why = link.lastWord ? `the daemon dropped the connection (${link.lastWord})` : this.closed ? 'the client was closed' : 'the daemon went away';
    for (const [id, pending] of link.pending) {
      link.pending.delete(id);
      const mayHaveCommitted = pending.mutating && pending.sent;
      const error = this.closed && !link.lastWord
        ? new MailstoreError('CLOSED', `the client was closed with the call in flight${mayHaveCommitted ? '; it may have been committed' : ''}`, { mayHaveCommitted })
        : new MailstoreError('UNAVAILABLE', `${why} during the call; ${mayHaveCommitted ? 'it MAY HAVE BEEN COMMITTED: look before retrying' : 'nothing of it was committed'}`, { path: this.socketPath, mayHaveCommitted });
      this.settle(pending, error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const link = this.link; // also one whose hello is still awaited (a daemon that hangs would hold close() up)
    if (link && !link.dead) {
      await new Promise<void>((resolve) => {
        link.transport.socket.once('close', () => resolve());
        link.transport.end();
        setTimeout(() => link.transport.destroy(), 1000).unref();
      });
    }
    await this.linking?.catch(() => undefined); // a link still being made lets itself go (reconnect)
  }

  // ---- frames in ---------------------------------------------------------------------------------

  receive(link: Link, frame: Frame): void {
    if (frame.t === 'err' && frame.id === 0) {
      link.lastWord = `${frame.e?.code}: ${frame.e?.message}`;
      return;
    }
    const pending = link.pending.get(frame.id);
    if (!pending) return; // timed out, cancelled or finished: a late answer is dropped
    if (pending.kind === 'listing') return this.receiveListing(link, frame.id, pending, frame);
    if (frame.t === 'err') return this.finish(link, frame.id, pending, fromWireError(frame.e as WireError));
    if (pending.kind === 'stream') return this.receiveStream(link, frame.id, pending, frame);
    if (frame.t === 'res') {
      if (!frame.b) return this.finish(link, frame.id, pending, undefined, frame.v);
      pending.assembly = new Assembly(frame.v, frame.b, Number.MAX_SAFE_INTEGER);
    } else if (frame.t === 'chunk' && pending.assembly) {
      pending.assembly.add(frame.d);
      if (pending.assembly.complete) this.finish(link, frame.id, pending, undefined, pending.assembly.value);
    }
  }

  private finish(link: Link, id: number, pending: Pending, error?: Error, value?: unknown): void {
    link.pending.delete(id);
    clearTimeout(pending.timer);
    if (error) this.settle(pending, error);
    else if (pending.kind !== 'listing') pending.resolve(value);
  }

  private settle(pending: Pending, error: Error): void {
    clearTimeout(pending.timer);
    if (pending.kind === 'listing') {
      pending.listing.error = error;
      pending.listing.wake?.();
    } else if (pending.kind === 'stream' && pending.stream) {
      pending.stream.readable.destroy(error);
    } else {
      pending.reject(error);
    }
  }

  private receiveListing(link: Link, id: number, pending: Extract<Pending, { kind: 'listing' }>, frame: Frame): void {
    const state = pending.listing;
    clearTimeout(pending.timer);
    if (frame.t === 'item') {
      if (!frame.b) state.queue.push(frame);
      else {
        state.assembly = new Assembly(frame.v, frame.b, Number.MAX_SAFE_INTEGER);
        state.assemblyFrame = frame;
      }
    } else if (frame.t === 'chunk' && state.assembly) {
      state.assembly.add(frame.d);
      if (state.assembly.complete) {
        state.queue.push({ ...state.assemblyFrame!, v: state.assembly.value });
        state.assembly = undefined;
      }
    } else if (frame.t === 'end') {
      state.done = true;
      link.pending.delete(id);
    } else if (frame.t === 'err') {
      state.error = fromWireError(frame.e);
      link.pending.delete(id);
    }
    state.wake?.();
  }

  private receiveStream(link: Link, id: number, pending: Extract<Pending, { kind: 'stream' }>, frame: Frame): void {
    if (frame.t === 'res' && frame.stream) {
      clearTimeout(pending.timer);
      const state: StreamState = { readable: undefined as unknown as Readable, received: 0, acked: 0 };
      state.readable = new Readable({
        read: () => this.ackStream(link, id, state),
        destroy: (error, callback) => {
          if (link.pending.has(id)) {
            link.pending.delete(id);
            link.transport.send({ t: 'cancel', id });
          }
          callback(error);
        },
      });
      pending.stream = state;
      pending.resolve(state.readable);
    } else if (frame.t === 'chunk' && pending.stream) {
      pending.stream.received += frame.d.length;
      if (pending.stream.readable.push(frame.d)) this.ackStream(link, id, pending.stream);
    } else if (frame.t === 'end' && pending.stream) {
      link.pending.delete(id);
      pending.stream.readable.push(null);
    }
  }

  /** Tells the daemon how much of a stream was taken, a quarter window at a time. */
  private ackStream(link: Link, id: number, state: StreamState): void {
    const n = state.received - state.acked;
    if (n < daemonLimits.streamWindowBytes / 4 || !link.pending.has(id)) return;
    state.acked = state.received;
    link.transport.send({ t: 'more', id, n, k: 0 });
  }

  // ---- calls out ---------------------------------------------------------------------------------

  /** Sends one call on `link` and waits for its value. */
  private send<T>(link: Link, method: string, args: unknown[], mutating: boolean): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { kind: 'value', mutating, sent: false, resolve: resolve as (v: unknown) => void, reject };
      this.start(link, id, pending, method, args);
    });
  }

  private start(link: Link, id: number, pending: Pending, method: string, args: unknown[]): void {
    link.pending.set(id, pending);
    this.armTimeout(link, id, pending, method);
    const sending = link.enqueue(() => link.transport.sendValueSoon({ t: 'call', id, m: method }, args));
    if (sending === undefined) {
      pending.sent = true;
      return;
    }
    sending
      .then(() => { pending.sent = true; })
      .catch((error: unknown) => {
        if (!link.pending.has(id)) return;
        link.pending.delete(id);
        // INVALID: the call was too big for a frame and nothing was sent; otherwise the link died mid-call
        const failure = error instanceof MailstoreError && error.code !== 'UNAVAILABLE' ? error
          : new MailstoreError('UNAVAILABLE', `the daemon went away while the call was being sent; nothing of it was committed`, { path: this.socketPath, mayHaveCommitted: false });
        this.settle(pending, failure);
      });
  }

  private armTimeout(link: Link, id: number, pending: Pending, method: string): void {
    const ms = this.options.callTimeoutMs;
    if (!ms) return;
    pending.timer = setTimeout(() => {
      if (link.pending.get(id) !== pending) return;
      link.pending.delete(id);
      if (pending.kind !== 'value') link.transport.send({ t: 'cancel', id });
      const mayHaveCommitted = pending.mutating;
      this.settle(pending, new MailstoreError('UNAVAILABLE', `the daemon did not answer ${method} within ${ms} ms; ${mayHaveCommitted ? 'it MAY HAVE BEEN COMMITTED: look before retrying' : 'it changed nothing'}`, { path: this.socketPath, mayHaveCommitted }));
    }, ms);
    pending.timer.unref();
  }

  private call<T>(method: string, args: unknown[], mutating = MUTATING_METHODS.has(method)): Promise<T> {
    const link = this.link;
    if (link && !link.dead && !this.closed) return this.send<T>(link, method, args, mutating); // no await: the frame goes out now
    return this.currentLink().then((fresh) => this.send<T>(fresh, method, args, mutating));
  }

  private listing<T>(method: string, args: unknown[], mutating: boolean, onCorrupt?: ReadMessagesOptions['onCorrupt']): AsyncGenerator<T> {
    const call: ListingCall = { id: 0 };
    const listing = this.listingCall<T>(call, method, args, mutating, onCorrupt);
    abandonedListings.register(listing, call);
    return listing;
  }

  private async *listingCall<T>(call: ListingCall, method: string, args: unknown[], mutating: boolean, onCorrupt?: ReadMessagesOptions['onCorrupt']): AsyncGenerator<T> {
    const link = await this.currentLink();
    const id = this.nextId++;
    Object.assign(call, { link, id });
    const state: ListingState = { queue: [], done: false };
    this.start(link, id, { kind: 'listing', mutating, sent: false, listing: state }, method, args);
    let takenBytes = 0, takenItems = 0;
    try {
      for (;;) {
        const frame = state.queue.shift();
        if (frame) {
          takenItems++;
          takenBytes += listingItemBytes(frame.v);
          if (takenBytes >= daemonLimits.streamWindowBytes / 4 || takenItems >= daemonLimits.streamWindowItems / 4) {
            link.transport.send({ t: 'more', id, n: takenBytes, k: takenItems });
            takenBytes = takenItems = 0;
          }
          if (frame.c) onCorrupt?.(frame.c.info as MessageInfo, fromWireError(frame.c.e) as MailstoreError);
          else yield frame.v as T;
          continue;
        }
        if (state.error) throw state.error;
        if (state.done) return;
        await new Promise<void>((resolve) => { state.wake = resolve; });
        state.wake = undefined;
      }
    } finally {
      cancelListing(call); // the caller stopped early
    }
  }

  // ---- the MailStore API -------------------------------------------------------------------------

  createMailbox(name: string, options: { owner?: string; acl?: Record<string, string> } = {}): Promise<MailboxSummary> {
    return this.call('createMailbox', [name, options]);
  }

  renameMailbox(from: string, to: string): Promise<{ renamed: number }> {
    return this.call('renameMailbox', [from, to]);
  }

  async deleteMailbox(name: string, options?: DeleteOptions): Promise<{ messages: number }> {
    await this.emptyFirst(name, options, async () => (await this.status(name)).messages);
    return this.call('deleteMailbox', options === undefined ? [name] : [name, options]);
  }

  async listMailboxes(options: { user?: string; pattern?: string } = {}): Promise<{ name: string; id: string; rights?: string }[]> {
    // as a listing: one answer frame could not hold tens of thousands of long names
    const list: { name: string; id: string; rights?: string }[] = [];
    try {
      for await (const entry of this.procedureListing('mailboxList', [options])) list.push(entry as { name: string; id: string; rights?: string });
    } catch (error) {
      if (!lacks(error, 'procedure', 'mailboxList')) throw error;
      return this.call('listMailboxes', [options]); // a daemon before session 32 (a rolling upgrade): its one answer
    }
    return list;
  }

  mailbox(name: string): Promise<MailboxSummary> {
    return this.call('mailbox', [name]);
  }

  status(name: string): Promise<MailboxStatus> {
    return this.call('status', [name]);
  }

  setAcl(mailbox: string, identifier: string, rights: string): Promise<void> {
    return this.call<void>('setAcl', [mailbox, identifier, rights]).then(() => undefined);
  }

  getAcl(mailbox: string): Promise<Record<string, string>> {
    return this.call('getAcl', [mailbox]);
  }

  append(mailbox: string, bytes: Uint8Array, options: AppendOptions = {}): Promise<AppendResult> {
    return this.call('append', [mailbox, bytes, options]);
  }

  appendBatch(mailbox: string, items: AppendBatchItem[], options: AppendBatchOptions = {}): Promise<AppendResult[]> {
    // A chain is an object here and a number on the socket: the same object, the same number.
    let wire: unknown = options;
    if (options && typeof options === 'object' && options.chain && typeof options.chain === 'object') {
      let chainId = this.chainIds.get(options.chain);
      if (chainId === undefined) this.chainIds.set(options.chain, (chainId = this.nextChain++));
      wire = { ...options, chain: chainId };
    }
    const sent = this.call<AppendResult[]>('appendBatch', [mailbox, items, wire]);
    return options?.mailboxId === undefined ? sent : this.pinRefused(sent, 'appendBatch option');
  }

  /** A daemon before session 49 takes no mailboxId: the call is refused whole (never made unpinned), saying the daemon is older. */
  private pinRefused<T>(sent: Promise<T>, what: string): Promise<T> {
    return sent.catch((error: unknown) => {
      throw isMailstoreError(error, 'INVALID') && error.message.startsWith(`unknown ${what} "mailboxId"`) ? this.olderDaemon(error) : error;
    });
  }

  getMeta<T>(key: string): Promise<T | undefined> {
    return this.call<T | null | undefined>('getMeta', [key]).then((v) => (v === null ? undefined : v));
  }

  setFlags(mailbox: string, uids: number | number[], change: FlagChange): Promise<{ modseq: number; updated: number[]; modified: number[] }> {
    const sent = this.call<{ modseq: number; updated: number[]; modified: number[] }>('setFlags', [mailbox, uids, change]);
    return change?.mailboxId === undefined ? sent : this.pinRefused(sent, 'flag change field');
  }

  expunge(mailbox: string, uids: number | number[], options?: { unchangedSince?: number; mailboxId?: string }): Promise<{ expunged: number[]; modseq: number; modified?: number[] }> {
    const sent = this.call<{ expunged: number[]; modseq: number; modified?: number[] }>('expunge', options === undefined ? [mailbox, uids] : [mailbox, uids, options]);
    return options?.mailboxId === undefined ? sent : this.pinRefused(sent, 'expunge option');
  }

  copy(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer('copy', from, uids, to, options);
  }

  move(from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer('move', from, uids, to, options);
  }

  private transfer(method: 'copy' | 'move', from: string, uids: number | number[], to: string, options?: { mailboxId?: string }): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    if (options === undefined) return this.call(method, [from, uids, to]);
    // a daemon before session 49 passes no fourth argument on: it copies unpinned, as it always did
    return this.pinRefused(this.call(method, [from, uids, to, options]), `${method} option`);
  }

  stats(): Promise<StoreStats> {
    return this.call('stats', []);
  }

  messageInfo(mailbox: string, uid: number): Promise<MessageInfo> {
    return this.call('messageInfo', [mailbox, uid]);
  }

  messages(mailbox: string, options: { fromUid?: number } = {}): AsyncGenerator<MessageInfo> {
    return this.listing<MessageInfo>('messages', [mailbox, options], false);
  }

  fetch(mailbox: string, uid: number): Promise<Buffer> {
    return this.call('fetch', [mailbox, uid]);
  }

  readMessages(mailbox: string, options: ReadMessagesOptions = {}): AsyncGenerator<MessageWithBody> {
    // lendBodies stays here: no daemon lends over the socket, and one before b59634e9 (2026-12-03) refuses the option (INVALID)
    const { onCorrupt, lendBodies: _lent, ...rest } = options ?? {};
    return this.listing<MessageWithBody>('readMessages', [mailbox, onCorrupt ? { ...rest, onCorrupt: true } : rest], false, onCorrupt);
  }

  async fetchStream(mailbox: string, uid: number): Promise<Readable> {
    const link = await this.currentLink();
    const id = this.nextId++;
    return new Promise<Readable>((resolve, reject) => {
      this.start(link, id, { kind: 'stream', mutating: false, sent: false, resolve: resolve as (v: unknown) => void, reject }, 'fetchStream', [mailbox, uid]);
    });
  }

  async changesSince(mailbox: string, modseq: number): Promise<Changes> {
    // as a listing: one answer frame holds only ~100k changes (a resync after a flag change on a big mailbox)
    const answer: Changes = { changed: [], vanished: [], highestModseq: 0 };
    try {
      // ranges: this client takes vanished ranges (a daemon before session 39 ignores the option and has none)
      for await (const part of this.procedureListing('changesSinceList', [mailbox, modseq, { ranges: true }]) as AsyncGenerator<ChangesPart>) {
        if ('changed' in part) answer.changed.push(part.changed);
        else if ('vanished' in part) answer.vanished.push(...part.vanished);
        else if ('vanishedRanges' in part) {
          (answer.vanishedRanges ??= []).push(...part.vanishedRanges);
          answer.vanishedFloor = part.vanishedFloor;
        } else answer.highestModseq = part.highestModseq;
      }
    } catch (error) {
      if (!lacks(error, 'procedure', 'changesSinceList')) throw error;
      return this.call('changesSince', [mailbox, modseq]); // a daemon before session 31 (a rolling upgrade): its one answer
    }
    return answer;
  }

  /**
   * changesSince a part at a time, as the store gives it (the daemon's changesSinceParts listing,
   * its changed messages gathered into pieces of limits.readBatchMessages): this process holds one
   * piece, the daemon one part and the listing's window. A daemon before session 51 has no such
   * listing: its whole answer (changesSince) is given in parts instead.
   */
  async *changesSinceParts(mailbox: string, modseq: number): AsyncGenerator<ChangesSincePart> {
    let changed: MessageInfo[] = [];
    let started = false;
    try {
      for await (const part of this.procedureListing('changesSinceParts', [mailbox, modseq]) as AsyncGenerator<ChangesPart>) {
        started = true;
        if (!('changed' in part)) yield part;
        else if (changed.push(part.changed) === limits.readBatchMessages) {
          yield { changed };
          changed = [];
        }
      }
    } catch (error) {
      if (started || !lacks(error, 'procedure', 'changesSinceParts')) throw error;
      const { partsOfChanges } = await import('../store/changes-parts.js');
      yield* partsOfChanges(await this.changesSince(mailbox, modseq), limits.changesSincePartUids);
      return;
    }
    if (changed.length > 0) yield { changed };
  }

  renameUser(from: string, to: string): Promise<RenameUserResult> {
    return this.call('renameUser', [from, to]);
  }

  movedUsers(): Promise<MovedUser[]> {
    return this.callSince('movedUsers', []);
  }

  forgetMovedUser(name: string): Promise<MovedUser> {
    return this.callSince('forgetMovedUser', [name]);
  }

  clockReport(): Promise<ClockReport> {
    return this.callSince('clockReport', []);
  }

  trustClock(): Promise<ClockReport> {
    return this.callSince('trustClock', []);
  }

  /** A method newer than some daemons (session 36's): one that lacks it says it runs an older mailstore. */
  private async callSince<T>(method: string, args: unknown[]): Promise<T> {
    try {
      return await this.call<T>(method, args);
    } catch (error) {
      if (!lacks(error, 'method', method)) throw error;
      throw this.olderDaemon(error);
    }
  }

  private olderDaemon(error: MailstoreError): MailstoreError {
    return new MailstoreError('INVALID', `${error.message}: it runs an older mailstore than this one (pid ${this.daemon?.pid ?? '?'}); nothing was changed. Restart it with this version ('mailstore serve'), or use the older version's own command`, { cause: error });
  }

  async deleteUser(name: string, options?: DeleteOptions): Promise<DeleteUserResult> {
    // checked as the store checks it, before the count: 'user delete alice/Sent' was told to add
    // --force ('user/alice/Sent and below holds N messages'), and with it that no user has a '/'
    const tree = formatMailboxName(userTree(name));
    await this.emptyFirst(tree, options, () => this.procedure('messagesInTree', [tree]) as Promise<number>, true);
    return this.call('deleteUser', options === undefined ? [name] : [name, options]);
  }

  /**
   * A delete with ifEmpty refused here first when the count says there is mail: a daemon before
   * session 31 (d766053) takes no options and deleted the messages with the mailbox, the tree or
   * the user (a rolling upgrade, clients first). As those versions' own CLI did: a delivery between
   * the count and the delete is still deleted there; a daemon that takes ifEmpty decides again in
   * the delete's own batch. A count that finds nothing leaves the answer to the delete (NOT_FOUND);
   * one that fails otherwise (UNAVAILABLE, CORRUPT) fails the delete: taken for 0, the mail went.
   */
  private async emptyFirst(name: string, options: DeleteOptions | undefined, messages: () => Promise<number>, tree = false): Promise<void> {
    if (options?.ifEmpty !== true) return;
    const count = await messages().catch((error: unknown) => {
      if (isMailstoreError(error, 'NOT_FOUND')) return 0;
      throw error;
    });
    checkDeletable(name, count, options, tree);
  }

  // ---- procedures (src/daemon/procedures.ts) -----------------------------------------------------

  async procedure(name: string, args: unknown[]): Promise<unknown> {
    if (name === 'deleteMailboxTree') {
      const [tree, options] = args as [string, DeleteOptions | undefined];
      await this.emptyFirst(tree, options, () => this.procedure('messagesInTree', [tree]) as Promise<number>, true);
    }
    try {
      return await this.call('procedure', [name, ...args], MUTATING_PROCEDURES.has(name));
    } catch (error) {
      if (!lacks(error, 'procedure', name)) throw error;
      throw this.olderDaemon(error);
    }
  }

  procedureListing(name: string, args: unknown[]): AsyncGenerator<unknown> {
    return this.listing('procedure', [name, ...args], MUTATING_PROCEDURES.has(name));
  }
}

/**
 * Whether `error` is the refusal of a daemon too old to have procedure `name` (Client.procedure):
 * a command that only shows something can show the rest of its answer without that part.
 */
export function olderDaemonLacks(error: unknown, name: string): boolean {
  return isMailstoreError(error, 'INVALID') && lacks(error.cause, 'procedure', name);
}

/** Whether `error` is a daemon's refusal of procedure `name` it does not have (an older one), from a call or a listing. */
export function lacksProcedure(error: unknown, name: string): boolean {
  return lacks(error, 'procedure', name) || olderDaemonLacks(error, name);
}

/**
 * A daemon of an older mailstore (a rolling upgrade: clients first) that has no procedure or method
 * `name` answers INVALID in these words, in every version since procedures came (2d004c1).
 */
function lacks(error: unknown, kind: 'procedure' | 'method', name: string): error is MailstoreError {
  return isMailstoreError(error, 'INVALID') && error.message === `the daemon has no ${kind} ${JSON.stringify(name)}`;
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
