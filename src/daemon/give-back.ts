// An idle daemon gives back the memory of the message bodies it held. V8 starts a full collection
// when its heap or the memory outside it (the bodies' buffers) grows: a daemon that goes quiet
// after a burst allocates nothing more, and the burst's buffers, garbage since their deliveries,
// stayed in its RSS. 16 x 60 MiB at once through LMTP left it at 1.06 GB a minute later (2.05 GB
// at the peak). So once the body budget drains after bodyCollectAfterBytes went through it, the
// daemon runs one full collection itself (body-budget.ts).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { daemonLimits } from '../limits.js';

let collect: (() => void) | undefined;
let pending: NodeJS.Timeout | undefined;

/**
 * V8's gc(): global when node runs with --expose-gc, else from a context made while the flag is
 * set (node has no other way to ask for a collection; the flag is set back at once, so no later
 * context or worker gets it). Nothing, should a node to come not give it so: V8 collects later.
 */
export function fullCollection(): () => void {
  if (collect) return collect;
  let found = (globalThis as { gc?: unknown }).gc;
  if (typeof found !== 'function') {
    setFlagsFromString('--expose-gc');
    try {
      found = runInNewContext('typeof gc === "function" ? gc : undefined');
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  collect = typeof found === 'function' ? (found as () => void) : () => {};
  return collect;
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
