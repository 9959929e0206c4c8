// One socket speaking the frame protocol (protocol.ts), for the daemon's connections and the client
// library alike: frames in, frames out, and writes that wait for the socket to drain, so a peer that
// does not read holds back only its own connection and never piles bytes up in memory.
import type { Socket } from 'node:net';
import { MailstoreError } from '../errors.js';
import { chunkFrames, decodeFrame, detach, encodeFrame, encodeFrameInto, FrameReader, type Frame } from './protocol.js';

export interface TransportHandlers {
  /** `held`: bytes of the frame reserved in the FrameBudget; the handler owns them now and gives them back. */
  frame(frame: Frame, held: number): void;
  /** A frame that cannot be read (INVALID, TOO_LARGE): the connection cannot go on. */
  malformed(error: MailstoreError): void;
  closed(error?: Error): void;
  /** A call's byte strings are still coming (its body held whole): bounded as a half-sent frame is. */
  midCall?(): boolean;
}

/**
 * The daemon's side: frames above `minBytes` are reserved in a process-wide budget when their length
 * prefix arrives, before the rest is read. Each connection's frames were bounded alone (16 MiB), so
 * thousands of connections each sending a big frame slowly (or many calls with big inline
 * arguments) could make the daemon allocate tens of GiB, which the body budget did not see.
 */
export interface FrameBudget {
  minBytes: number;
  /** Frames up to this size among a call's byte strings are its chunks (held by its body's reservation). */
  chunkFrameBytesMax: number;
  tryTake(bytes: number): boolean;
  take(bytes: number): Promise<void>;
  /** Takes them whether they fit or not. */
  force(bytes: number): void;
  give(bytes: number): void;
}

/** The head of a frame that carries a value (sendValue). */
export type FrameHead = { t: 'call'; id: number; m: string } | { t: 'res' | 'item'; id: number };

/** The size of the buffer frames are built in (a message of the usual size fits; a bigger frame gets one of its own). */
const FRAME_BUFFER_BYTES = 128 * 1024;
/**
 * The buffer this process builds its next frame in, shared by its sockets (a frame is built and
 * written in one synchronous step). A frame used to be a new buffer each time, and under 64
 * appending client processes their fresh pages (a body's worth a frame) cost more CPU than the
 * copy itself. Undefined while a socket still holds the last one.
 */
let spareFrameBuffer: Buffer | undefined;

export class FrameSocket {
  private readonly reader = new FrameReader();
  private drainWaiters: (() => void)[] = [];
  private frameTimer?: NodeJS.Timeout;
  /** A malformed frame arrived: nothing more is read. */
  private broken = false;
  closed = false;

  /** The frame being read, reserved in the budget: handed to the handler with it. */
  private frameHeld = 0;
  /** Not reading until the budget has room for the frame being read. */
  private budgetWait = false;
  /** Frames read and not yet handed on (the connection was paused), each with its budget reservation. */
  private unhandled: [payload: Buffer, held: number][] = [];

  /** frameCompleteMs: a frame begun must be complete within this long (0: no bound); budget: the daemon's (FrameBudget). */
  constructor(readonly socket: Socket, private readonly handlers: TransportHandlers, private readonly frameCompleteMs = 0, private readonly budget?: FrameBudget) {
    socket.on('data', (data: Buffer) => this.receive(data));
    socket.on('drain', () => this.wake());
    socket.on('error', () => undefined); // 'close' follows with hadError; the cause is not the peer's business
    socket.on('close', () => {
      this.closed = true;
      clearTimeout(this.frameTimer);
      if (this.frameHeld > 0) this.budget!.give(this.frameHeld);
      this.frameHeld = 0;
      for (const [, held] of this.unhandled.splice(0)) if (held > 0) this.budget!.give(held);
      this.wake();
      handlers.closed();
    });
  }

  /** A frame has begun arriving and is not complete yet. */
  get midFrame(): boolean {
    return this.reader.midFrame;
  }

  private receive(data: Buffer): void {
    if (this.closed || this.broken) return;
    let payloads: Buffer[];
    try {
      payloads = this.reader.push(data);
    } catch (error) {
      this.fail(error as MailstoreError);
      return;
    }
    for (const payload of payloads) {
      // only the frame begun before this read can have been reserved, and it is the first completed
      this.unhandled.push([payload, this.frameHeld]);
      this.frameHeld = 0;
    }
    this.handleFrames();
    this.reserveFrame();
    this.watchFrame(payloads.length > 0);
  }

  /**
   * Hands on the frames read, in order, until the daemon pauses this connection: one read holds
   * hundreds of frames, and a client that wrote 1,000 fetch calls and read no answer had all of
   * them running (every message held in memory for it), past callsPerConnectionMax. The rest wait
   * here for resume().
   */
  private handleFrames(): void {
    while (this.unhandled.length > 0 && !this.paused) {
      const [payload, held] = this.unhandled.shift()!;
      if (this.closed || this.broken) {
        if (held > 0) this.budget!.give(held);
        continue;
      }
      let frame: Frame;
      try {
        frame = decodeFrame(payload);
      } catch (error) {
        if (held > 0) this.budget!.give(held);
        this.fail(error as MailstoreError);
        continue;
      }
      this.handlers.frame(frame, held);
    }
  }

  /** Reserves the frame begun (its length known) in the budget, or stops reading until it can. */
  private reserveFrame(): void {
    const budget = this.budget;
    const wanted = this.reader.frameLength;
    if (!budget || this.frameHeld > 0 || this.budgetWait || this.broken || this.closed) return;
    if (wanted <= budget.minBytes) return;
    if (this.handlers.midCall?.()) {
      // A call's chunks are in its body's reservation already. Another call's frame among them (the
      // client's other calls do not wait for a body to finish) is counted but not waited for: the
      // body it holds up holds budget, and waiting could leave every connection waiting on the others.
      if (wanted <= budget.chunkFrameBytesMax) return;
      budget.force(wanted);
      this.frameHeld = wanted;
      return;
    }
    if (budget.tryTake(wanted)) {
      this.frameHeld = wanted;
      return;
    }
    this.budgetWait = true;
    this.socket.pause();
    clearTimeout(this.frameTimer); // the wait is the daemon's, not the client's
    this.frameTimer = undefined;
    void budget.take(wanted).then(() => {
      this.budgetWait = false;
      if (this.closed) return budget.give(wanted);
      this.frameHeld = wanted;
      if (!this.paused) this.resume();
    });
  }

  /**
   * Stops reading the socket (the daemon's bounds: calls or bytes in flight, the body budget). A
   * frame half-read then waits on the daemon, not the client: its clock stops until resume().
   */
  pause(): void {
    this.paused = true;
    this.socket.pause();
    clearTimeout(this.frameTimer);
    this.frameTimer = undefined;
  }

  resume(): void {
    this.paused = false;
    this.handleFrames(); // those read before the pause first: they may pause it again
    if (this.paused) return;
    if (this.budgetWait) return; // it resumes once its frame's reservation is taken
    this.socket.resume();
    this.watchFrame(true); // the half-read frame's clock starts again
  }

  private paused = false;

  /**
   * A half-sent frame holds memory, and so does a call whose body is half-sent (allocated whole,
   * and held against the daemon's body budget: a client frozen between two chunk frames kept every
   * other body waiting and LMTP refusing mail for as long as it stayed frozen). Bound how long
   * either may stay half-sent while we read (progress restarts the clock).
   */
  private watchFrame(progressed: boolean): void {
    if (this.frameCompleteMs <= 0 || this.paused || this.budgetWait) return;
    const unfinished = () => this.reader.midFrame || (this.handlers.midCall?.() ?? false);
    if (progressed || !unfinished()) {
      clearTimeout(this.frameTimer);
      this.frameTimer = undefined;
    }
    if (unfinished() && this.frameTimer === undefined && !this.broken) {
      this.frameTimer = setTimeout(() => {
        if (unfinished()) this.fail(new MailstoreError('INVALID', `a ${this.reader.midFrame ? 'frame' : "call's byte strings"} ${this.reader.midFrame ? 'was' : 'were'} begun and not completed within ${this.frameCompleteMs} ms`));
      }, this.frameCompleteMs);
      this.frameTimer.unref();
    }
  }

  private fail(error: MailstoreError): void {
    this.broken = true;
    clearTimeout(this.frameTimer);
    this.handlers.malformed(error);
  }

  /** Writes one frame now; false when the socket's buffer is full (wait with drained()). */
  send(frame: Frame): boolean {
    if (this.closed) return false;
    return this.write(frame);
  }

  /**
   * Encodes and writes one frame, in the shared frame buffer when the socket is idle. The socket
   * keeps a written buffer only while the kernel has not taken all of it (the write was not
   * complete at once: writableLength > 0 after it); then the buffer is the socket's and the next
   * frame gets a new one. A socket with bytes queued already gets a buffer of the frame's size.
   */
  private write(frame: Frame): boolean {
    const socket = this.socket;
    if (socket.writableLength > 0 || socket.connecting) return socket.write(encodeFrame(frame));
    const target = spareFrameBuffer ?? Buffer.allocUnsafeSlow(FRAME_BUFFER_BYTES);
    spareFrameBuffer = undefined;
    const bytes = encodeFrameInto(frame, target);
    const written = socket.write(bytes);
    if (bytes.buffer !== target.buffer || socket.writableLength === 0) spareFrameBuffer = target;
    return written;
  }

  /** Resolves once the socket can take more (or is closed). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Sends a frame whose value may hold big byte strings: the frame with them detached, then their
   * chunk frames, waiting for the socket to drain between chunks. Throws INVALID (nothing sent)
   * when the frame itself is too big.
   */
  async sendValue(head: FrameHead, value: unknown): Promise<void> {
    await this.sendValueSoon(head, value);
  }

  /**
   * sendValue without a turn of the event loop when none is needed: a frame without detached byte
   * strings on a socket that takes it is written at once and undefined returned (each call and
   * each answer is one such frame, and the socket client's p50 counts every hop, issue 13);
   * otherwise the promise of the rest (the drain, the chunks). Throws (nothing sent) as sendValue
   * rejects.
   */
  sendValueSoon(head: FrameHead, value: unknown): Promise<void> | undefined {
    const { value: light, blobs } = detach(value);
    const frame = (head.t === 'call' ? { ...head, a: light } : { ...head, v: light }) as Frame & { b?: number };
    if (blobs.length > 0) frame.b = blobs.length;
    if (this.closed) {
      encodeFrame(frame); // an oversized frame is INVALID whatever the connection's state, as before
      throw closedError();
    }
    const written = this.write(frame);
    if (blobs.length === 0) return written ? undefined : this.drained();
    return this.sendChunks(written, head.id, blobs);
  }

  private async sendChunks(written: boolean, id: number, blobs: Uint8Array[]): Promise<void> {
    if (!written) await this.drained();
    for (const chunk of chunkFrames(id, blobs)) {
      if (this.closed) throw closedError();
      if (!this.send(chunk)) await this.drained();
    }
  }

  /** Closes after the bytes written so far are flushed. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function closedError(): MailstoreError {
  return new MailstoreError('UNAVAILABLE', 'the connection closed while a frame was being sent');
}
