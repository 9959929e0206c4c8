// Node-to-node connections: TLS 1.2 with a pre-shared key (node:tls pskCallback), so both sides
// prove they hold the replication key without sending it, and every byte after the handshake is
// encrypted and authenticated (ECDHE-PSK with ChaCha20-Poly1305: forward secrecy too). A peer
// with a wrong key fails the handshake and never sees a frame. Frames: a 4-byte length, then one
// CBOR message.
import net from 'node:net';
import tls from 'node:tls';
import { ERROR_CODES, MailstoreError, type ErrorCode } from '../errors.js';
import { cborBoundsProblem } from '../index/cbor-bounds.js';
import { decodeCbor, encodeCbor, encodeCborParts } from '../index/codec.js';
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';

const TLS_OPTIONS = {
  minVersion: 'TLSv1.2' as const,
  maxVersion: 'TLSv1.2' as const, // node's TLS-PSK works with TLS 1.2 only
  ciphers: 'ECDHE-PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384',
};
const PSK_IDENTITY = 'mailstore-node';

/**
 * The replication version a replica's hello names (`version`), since session 35. A hello without
 * one is of an older mailstore: a replica before session 32 drops what later records carry (an
 * undumped mailbox's uidNext) and nothing else refuses it (docs/FORMAT.md, "Compatibility").
 * Raised when a record or frame changes so that a replica of the version before would misread it.
 */
export const REPLICATION_VERSION = 4; // 3: session 37 (copy intents, moved marks); 4: session 39 (change.floor, mailbox.uidValidity): older-replica.ts

export type Message = { t: string } & Record<string, unknown>;
const NO_TYPES: ReadonlySet<string> = new Set();
export type Log = (line: string) => void;

/** host:port or [v6]:port. */
export function parseAddress(address: string, anyPort = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < (anyPort ? 0 : 1) || port > 65535) throw new MailstoreError('INVALID', `a node address is HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: m[1] ?? m[2], port };
}

/** One authenticated, encrypted connection carrying messages both ways. */
export class Connection {
  /** Received bytes not yet framed, in arrival order (joined only once a whole frame is there). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private queue: Message[] = [];
  /** Bytes of the frames in `queue`: past limits.replicationQueueBytesMax the socket is paused (flow control). */
  private queuedBytes = 0;
  private readonly sizes = new WeakMap<Message, number>();
  /** The CBOR bytes a message arrived as, for the types asked to keep them (rawOf). */
  private readonly raws = new WeakMap<Message, Buffer>();
  private waiting?: { resolve: (m: Message | undefined) => void; reject: (e: unknown) => void };
  private ended = false;
  private failure?: Error;
  /** When the last frame arrived (ms since epoch): for display (a replica's last contact). */
  lastHeard = Date.now();
  /**
   * The same on the monotonic clock (monotonicMs), for silences: timed on the wall clock, a
   * step back of an hour hid a dead peer for that hour (every synchronous change waiting out its
   * limit), and a step forward took a live one for silent.
   */
  private heardAt = monotonicMs();
  /** Resolves when the connection has ended (either side). */
  readonly done: Promise<void>;
  private markDone!: () => void;
  private keepAliveTimer?: NodeJS.Timeout;
  /** When a frame still arriving was last acknowledged with a pong (monotonic ms). */
  private arrivingSaidAt = -Infinity;

  /**
   * @param keepRaw message types whose received bytes rawOf() returns (a replica writes a
   *   tentative round to its pending file as it came, instead of encoding it again)
   */
  constructor(readonly socket: tls.TLSSocket, readonly remote: string, private readonly keepRaw: ReadonlySet<string> = NO_TYPES) {
    this.done = new Promise((resolve) => { this.markDone = resolve; });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    socket.on('error', (error) => this.finish(error));
    socket.setNoDelay(true);
  }

  /** Resolves when the frame is handed to the socket (waits for drain under backpressure). */
  send(message: Message): Promise<void> {
    if (this.ended) return this.closedError();
    return this.write([encodeCbor(message)]);
  }

  /**
   * As send, for a frame carrying message bodies: its byte strings go to the socket as they are
   * (encodeCborParts), not copied into an encoded frame first. They must never change afterwards.
   */
  sendUncopied(message: Message): Promise<void> {
    if (this.ended) return this.closedError();
    return this.write(encodeCborParts(message));
  }

  private closedError(): Promise<never> {
    return Promise.reject(this.failure ?? new MailstoreError('UNAVAILABLE', `the connection to ${this.remote} is closed`));
  }

  private write(body: Buffer[]): Promise<void> {
    let length = 0;
    for (const part of body) length += part.length;
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(length, 0);
    return new Promise((resolve, reject) => {
      const failed = (error?: Error) => reject(this.failure ?? new MailstoreError('UNAVAILABLE', `the connection to ${this.remote} closed while a frame was sent${error ? `: ${error.message}` : ''}`, { cause: error }));
      // corked: one TLS write of every part, without first copying a round's bodies into one buffer
      this.socket.cork();
      this.socket.write(head);
      let flushed = true;
      for (const [i, part] of body.entries()) flushed = this.socket.write(part, i === body.length - 1 ? (error) => (error ? failed(error) : undefined) : undefined);
      this.socket.uncork();
      if (flushed) return resolve();
      // a peer gone while the frame waits for room sends no 'drain': without 'close' this waited for ever
      const closed = () => failed();
      this.socket.once('close', closed);
      this.socket.once('drain', () => {
        this.socket.off('close', closed);
        resolve();
      });
    });
  }

  /** The next message, or undefined once the peer closed the connection. */
  next(timeoutMs?: number): Promise<Message | undefined> {
    const ready = this.queue.shift();
    if (ready) {
      this.queuedBytes -= this.sizes.get(ready) ?? 0;
      if (this.socket.isPaused() && this.queuedBytes < limits.replicationQueueBytesMax / 2) this.socket.resume();
      return Promise.resolve(ready);
    }
    if (this.ended) return this.failure ? Promise.reject(this.failure) : Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      // silence, not waiting time: keep-alive pings (answered and swallowed here) count as heard
      const arm = (ms: number) => {
        timer = setTimeout(() => {
          const quiet = this.quietMs();
          if (quiet < timeoutMs!) return arm(timeoutMs! - quiet);
          this.waiting = undefined;
          reject(new MailstoreError('UNAVAILABLE', `${this.remote} was silent for ${timeoutMs} ms`));
          this.close();
        }, ms);
      };
      if (timeoutMs !== undefined) arm(timeoutMs);
      this.waiting = {
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** The bytes a message of a keepRaw type arrived as (its CBOR, without the length). */
  rawOf(message: Message): Buffer | undefined {
    return this.raws.get(message);
  }

  /** Like next, but a closed connection or an error message is an error. */
  async expect(type: string, timeoutMs?: number): Promise<Message> {
    const message = await this.next(timeoutMs);
    if (!message) throw new MailstoreError('UNAVAILABLE', `${this.remote} closed the connection`);
    if (message.t === 'error') throw peerError(message, this.remote);
    if (message.t !== type) throw new MailstoreError('INVALID', `${this.remote} sent ${message.t} where ${type} was expected`);
    return message;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Why the connection failed (undefined: open, or closed in an orderly way). */
  get error(): Error | undefined {
    return this.failure;
  }

  close(): void {
    this.socket.destroy();
    this.finish();
  }

  /**
   * Sends a last frame (an error) and closes once the peer has it: close() at once could lose it,
   * a socket closed with the peer's frames unread (its acks, pongs) sending a reset that drops it.
   * Half-closed, the peer's close is waited for at most limits.replicationPingMs.
   */
  async sendLast(message: Message): Promise<void> {
    try {
      await this.send(message);
      this.socket.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.done, new Promise((resolve) => { timer = setTimeout(resolve, limits.replicationPingMs); })]);
      clearTimeout(timer);
    } catch {
      // gone already: nothing to tell it
    } finally {
      this.close();
    }
  }

  /**
   * Pings the peer whenever nothing was heard for `pingMs`, and fails the connection (UNAVAILABLE)
   * once nothing was heard for silentMs(). On a timer, not in a reader's or sender's loop: a peer
   * that vanished without a FIN or an RST (cable pulled, a firewall dropping packets) stops
   * reading, a frame waiting for room then waits for a 'drain' that never comes, and the kernel
   * keeps probing its shut window for ever; only this frees the sender. Called again, it replaces
   * the limits.
   */
  keepAlive(pingMs: number, silentMs: () => number): void {
    clearInterval(this.keepAliveTimer);
    if (this.ended) return;
    const silent = () => this.quietMs() > silentMs();
    this.keepAliveTimer = setInterval(() => {
      if (silent()) {
        // judged after this turn's reads: timers run before them, and after this process was busy
        // for a while (a big frame decoded) the peer's pongs may be waiting in the socket
        setImmediate(() => {
          if (this.ended || !silent()) return;
          this.finish(new MailstoreError('UNAVAILABLE', `nothing heard for ${Math.round(this.quietMs())} ms (limit ${silentMs()} ms): the peer or the network went away`));
          this.socket.destroy();
        });
      } else if (this.quietMs() >= pingMs) {
        this.signal('ping');
      }
    }, pingMs);
  }

  /** How long nothing has arrived (ms, monotonic). */
  quietMs(): number {
    return monotonicMs() - this.heardAt;
  }

  private onData(chunk: Buffer): void {
    this.lastHeard = Date.now();
    this.heardAt = monotonicMs();
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const length = this.chunks[0].readUInt32BE(0);
      if (length > limits.replicationFrameBytesMax) {
        this.finish(new MailstoreError('INVALID', `${this.remote} sent a frame of ${length} bytes (most: ${limits.replicationFrameBytesMax})`));
        this.socket.destroy();
        return;
      }
      if (this.buffered < 4 + length) return this.frameArriving();
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      const rest = all.subarray(4 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      let message: Message;
      try {
        const raw = all.subarray(4, 4 + length);
        // walked first: a bignum tag of a few hundred KB held this process's event loop for minutes
        const problem = cborBoundsProblem(raw, limits.replicationDecodedBytesPerByteMax);
        if (problem) throw new Error(problem);
        message = decodeCbor<Message>(raw);
        if (this.keepRaw.has(message.t)) this.raws.set(message, raw);
      } catch (error) {
        this.finish(new MailstoreError('INVALID', `${this.remote} sent an undecodable frame`, { cause: error }));
        this.socket.destroy();
        return;
      }
      this.deliver(message, length);
    }
  }

  /**
   * A frame is still arriving: its sender hears a pong now and then, so that its keep-alive takes
   * a slow link moving a long frame (an XFER's 16 MiB of messages at 100 KB/s) for a live peer.
   */
  private frameArriving(): void {
    const now = monotonicMs();
    if (now - this.arrivingSaidAt < limits.replicationPingMs) return;
    this.arrivingSaidAt = now;
    this.signal('pong');
  }

  /**
   * A ping or pong, unless bytes are waiting to go already: those reach the peer first and say as
   * much, and each frame written into a full socket waits with listeners of its own (a peer that
   * stopped reading for minutes collected one pair a ping, past the emitter's warning).
   */
  private signal(type: 'ping' | 'pong'): void {
    if (this.socket.writableLength === 0) void this.send({ t: type }).catch(() => undefined);
  }

  private deliver(message: Message, bytes: number): void {
    if (message.t === 'ping') {
      this.signal('pong'); // keep-alive, answered whatever the reader is doing
      return;
    }
    if (message.t === 'pong') return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w.resolve(message);
    } else {
      this.queue.push(message);
      this.sizes.set(message, bytes);
      this.queuedBytes += bytes;
      // a reader slower than the sender (a replica applying a long catch-up) stops the sender
      // through TCP instead of buffering without bound
      if (this.queuedBytes > limits.replicationQueueBytesMax) this.socket.pause();
    }
  }

  private finish(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.keepAliveTimer);
    this.markDone();
    this.failure = error && new MailstoreError('UNAVAILABLE', `the connection to ${this.remote} failed: ${error.message}`, { cause: error });
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      if (this.failure && this.queue.length === 0) w.reject(this.failure);
      else w.resolve(this.queue.shift());
    }
  }
}

/**
 * A peer's error answer as a MailstoreError: its code when this mailstore knows it, else REFUSED
 * naming it. A code of a newer mailstore (or of a hostile peer) was taken as it came, and the CLI,
 * which has no exit code for it, exited 0 for the failed XFER, check or repair.
 */
export function peerError(message: Message, remote: string): MailstoreError {
  const code = message.code;
  const known = typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
  return new MailstoreError(known ? code as ErrorCode : 'REFUSED', `${remote}: ${String(message.message)}${known || code === undefined ? '' : ` (its error code ${JSON.stringify(code)} is unknown here)`}`);
}

export interface Listener {
  port: number;
  close(): Promise<void>;
}

/** Listens for nodes holding `psk`; a failed handshake (wrong key, not TLS) is logged and dropped. */
export function listen(address: string, psk: Buffer, onConnection: (connection: Connection) => void, log: Log): Promise<Listener> {
  const { host, port } = parseAddress(address, true);
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({
    ...TLS_OPTIONS,
    pskIdentityHint: 'mailstore',
    pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? psk : null),
    handshakeTimeout: limits.replicationHandshakeMs,
  }, (socket) => onConnection(new Connection(socket, `${socket.remoteAddress}:${socket.remotePort}`)));
  // the port faces the network: every connection held a descriptor for up to the handshake's 10 s,
  // so a crowd of them (a scan, a peer looping) took all the store had left, and it stopped
  server.maxConnections = limits.replicationConnectionsMax;
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (error, socket) => {
    log(`replication: refused ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}: the handshake failed (wrong replication key, or not a mailstore node): ${(error as NodeJS.ErrnoException).code ?? error.message}`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new MailstoreError(error.code === 'EADDRINUSE' ? 'LOCKED' : 'IO', `cannot listen on ${address}: ${error.message}`, { cause: error })));
    server.listen(port, host, () => {
      // a failed accept (ENOBUFS, ENOMEM) is emitted as 'error': unheard (the once() above took only
      // the first), it was an uncaught exception that stopped the daemon; the server goes on accepting
      server.on('error', (error: NodeJS.ErrnoException) => log(`replication: WARNING: accepting a connection on ${address} failed: ${error.code ?? error.message}`));
      const actual = (server.address() as net.AddressInfo).port;
      resolve({
        port: actual,
        close: () => new Promise((done) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => done());
        }),
      });
    });
  });
}

/** Connects to a node; UNAVAILABLE when it cannot be reached, REFUSED when the handshake fails (wrong key). */
export function connect(address: string, psk: Buffer, keepRaw?: ReadonlySet<string>): Promise<Connection> {
  const { host, port } = parseAddress(address);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ...TLS_OPTIONS, host, port,
      pskCallback: () => ({ psk, identity: PSK_IDENTITY }),
      checkServerIdentity: () => undefined, // the PSK authenticates the server; there is no certificate
    });
    const timer = setTimeout(() => { socket.destroy(); reject(new MailstoreError('UNAVAILABLE', `no answer from ${address} within ${limits.replicationHandshakeMs} ms`)); }, limits.replicationHandshakeMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new Connection(socket, address, keepRaw));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const tlsFailure = /SSL|TLS|ALERT/.test(String(error.code));
      reject(tlsFailure
        ? new MailstoreError('REFUSED', `${address} refused the handshake: the replication keys differ (${error.code})`, { cause: error })
        : new MailstoreError('UNAVAILABLE', `cannot reach ${address}: ${error.message}`, { cause: error }));
    });
  });
}
