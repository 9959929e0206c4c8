// An idle daemon gives back the memory of the message bodies it held. V8 starts a full collection
// when its heap or the memory outside it (the bodies' buffers) grows: a daemon that goes quiet
// after a burst allocates nothing more, and the burst's buffers, garbage since their deliveries,
// stayed in its RSS. 16 x 60 MiB at once through LMTP left it at 1.06 GB a minute later (2.05 GB
// at the peak). So once the body budget drains after bodyCollectAfterBytes went through it, the
// daemon runs one full collection itself (body-budget.ts). V8's gc() comes from node's
// --expose-gc, which packaging/mailstore.service gives the daemon (NODE_OPTIONS) as the bench's
// daemon does (src/bench/daemon-process.ts); only without it is it made at run time.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { daemonLimits } from '../limits.js';

type Collect = () => void;

/** Where gc() may come from, in this order. */
export interface CollectionSources {
  /** The global gc() of node's --expose-gc. */
  flag(): unknown;
  /** One made at run time, when the flag was not given. */
  runtime(): unknown;
}

const NODE_SOURCES: CollectionSources = {
  flag: () => (globalThis as { gc?: unknown }).gc,
  // From a context made while the flag is set (node 20 has no other way to ask for a collection):
  // set back at once, so no later context or worker gets it.
  runtime: () => {
    setFlagsFromString('--expose-gc');
    try {
      return runInNewContext('typeof gc === "function" ? gc : undefined');
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  },
};

/**
 * The full collection, found once: from the flag, else made at run time; with neither (a node to
 * come that refuses both) a no-op, said once to `unavailable` (the daemon's log): V8 then gives
 * the bodies' memory back only when it collects by itself.
 */
export class GiveBack {
  private collect?: Collect;

  constructor(private readonly sources: CollectionSources, private readonly unavailable: () => ((why: string) => void) | undefined) {}

  collection(): Collect {
    if (this.collect) return this.collect;
    let found = this.sources.flag();
    if (typeof found !== 'function') {
      try {
        found = this.sources.runtime();
      } catch {
        found = undefined;
      }
    }
    if (typeof found === 'function') this.collect = found as Collect;
    else {
      this.collect = () => {};
      this.unavailable()?.("V8's gc() could not be had (node ran without --expose-gc and would not expose it at run time): the memory of a burst's message bodies goes back only when V8 collects by itself; start the daemon with --expose-gc (packaging/mailstore.service sets NODE_OPTIONS=--expose-gc)");
    }
    return this.collect;
  }
}

let say: ((why: string) => void) | undefined;
const giveBack = new GiveBack(NODE_SOURCES, () => say);
let pending: NodeJS.Timeout | undefined;

/** The daemon's start: finds the collection now, saying to `unavailable` (its log) if there is none. */
export function prepareGiveBack(unavailable: (why: string) => void): void {
  say = unavailable;
  giveBack.collection();
}

/** V8's full collection (GiveBack.collection), or a no-op when none could be had. */
export function fullCollection(): Collect {
  return giveBack.collection();
}

/**
 * One full collection daemonLimits.bodyCollectDelayMs from now (one at a time), by then the
 * deliveries that drained the budget have let go of their bodies. Keeps no process alive.
 */
export function collectSoon(): void {
  if (pending) return;
  pending = setTimeout(() => {
    pending = undefined;
    fullCollection()();
  }, daemonLimits.bodyCollectDelayMs);
  pending.unref();
}
