// The message bytes the daemon holds at once, over all its connections (socket calls and LMTP
// DATA): each connection was bounded on its own (callBytesMax, heldBytesPerConnectionMax, LMTP's
// messageBytesMax), but 256 LMTP sessions of 64 MiB or a few hundred socket clients could make one
// process allocate tens of GiB, and the kernel's OOM killer then stopped every delivery at once.
// Past the budget a socket call waits (its connection stops being read, so the client's sends
// wait in the kernel: backpressure, nothing refused); LMTP, whose sessions would hold parts of
// bodies while they wait for each other, refuses the message 452 4.3.1 and the MTA retries it.
import { assert } from '../errors.js';
import { daemonLimits } from '../limits.js';
import { collectSoon } from './give-back.js';
import type { FrameBudget } from './transport.js';

export class BodyBudget {
  private held = 0;
  /** Bytes taken since `drained` was last called. */
  private passed = 0;
  private readonly waiting: { bytes: number; wake: () => void }[] = [];

  /** `drained`: called when nothing is held any more and at least `drained.afterBytes()` were taken since its last call. */
  constructor(private readonly max: () => number, private readonly drained?: { afterBytes: () => number; run: () => void }) {}

  /** Bytes of message data held now. */
  get heldBytes(): number {
    return this.held;
  }

  /** Takes `bytes` if they fit, or if nothing is held (one body bigger than the budget still goes, alone); FIFO behind waiters. */
  tryTake(bytes: number): boolean {
    if (this.waiting.length > 0 || !this.fits(bytes)) return false;
    this.hold(bytes);
    return true;
  }

  /** Takes `bytes` whether they fit or not (what must not wait: it would hold up what frees the budget). */
  force(bytes: number): void {
    this.hold(bytes);
  }

  /** Resolves once `bytes` are taken, in the order asked. */
  take(bytes: number): Promise<void> {
    if (this.tryTake(bytes)) return Promise.resolve();
    return new Promise((wake) => this.waiting.push({ bytes, wake }));
  }

  give(bytes: number): void {
    this.held -= bytes;
    assert(this.held >= 0, `the body budget was given back more than it held (${this.held} bytes)`);
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
      const next = this.waiting.shift()!;
      this.hold(next.bytes);
      next.wake();
    }
    if (this.held === 0 && this.drained && this.passed >= this.drained.afterBytes()) {
      this.passed = 0;
      this.drained.run();
    }
  }

  private hold(bytes: number): void {
    this.held += bytes;
    this.passed += bytes;
  }

  private fits(bytes: number): boolean {
    return this.held === 0 || this.held + bytes <= this.max();
  }
}

/** `serve --body-bytes-max`: the admin's budget, in place of daemonLimits.bodyBytesHeldMax. */
let bytesMaxSet: number | undefined;

/** Sets the daemon's budget (serve checks it: at least one message of the size limit). */
export function setBodyBytesMax(bytes: number): void {
  bytesMaxSet = bytes;
}

/**
 * The daemon process's one budget (serve's --body-bytes-max, else daemonLimits.bodyBytesHeldMax,
 * read at each take: tests lower it); drained after a burst, it has V8 collect the bodies' buffers
 * (give-back.ts).
 */
export const bodyBudget = new BodyBudget(() => bytesMaxSet ?? daemonLimits.bodyBytesHeldMax, { afterBytes: () => daemonLimits.bodyCollectAfterBytes, run: collectSoon });

/**
 * The socket frames past inlineBytesMax, reserved in the same budget at their length prefix
 * (transport.ts): a call's inline arguments up to frameBytesMax each, and half-sent frames, which
 * thousands of connections could otherwise hold at once. A chunk frame is part of its body's
 * reservation.
 */
export const frameBudget: FrameBudget = {
  get minBytes() { return daemonLimits.inlineBytesMax; },
  get chunkFrameBytesMax() { return daemonLimits.chunkBytes + 64; },
  tryTake: (bytes) => bodyBudget.tryTake(bytes),
  take: (bytes) => bodyBudget.take(bytes),
  force: (bytes) => bodyBudget.force(bytes),
  give: (bytes) => bodyBudget.give(bytes),
};
