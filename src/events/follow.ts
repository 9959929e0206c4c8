// Following the change log as it grows: a reader that has caught up waits for the next commit
// (ChangeSignal, notified from StoreOptions.onCommit by whoever owns the store) or, when nobody
// notifies it, looks again every eventLimits.followPollMs.
import { eventLimits } from '../limits.js';
import type { EventCursor } from './cursor.js';
import { EventContext, readEvents, type EventSource, type MailEvent, type ReadEventsOptions } from './events.js';
import { monotonicMs } from '../monotonic.js';

/** Wakes followers when a batch commits: `onCommit: () => signal.notify()`. */
export class ChangeSignal {
  private waiters = new Set<() => void>();

  notify(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves at the next notify(), after `ms`, or when `abort` fires, whichever is first. */
  wait(ms: number, abort?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (abort?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      abort?.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * Resolves after `ms`, or at once when `abort` fires; either way its listener leaves the signal (a
 * webhook's waits between attempts each left one on the daemon's stop signal, for months).
 */
export function pause(ms: number, abort?: AbortSignal): Promise<void> {
  return new ChangeSignal().wait(ms, abort);
}

export interface FollowOptions extends Pick<ReadEventsOptions, 'onDamage' | 'context'> {
  /** Stops the follower (the generator returns). */
  signal?: AbortSignal;
  /** Notified on every commit; without it the journal is polled. */
  changes?: ChangeSignal;
  pollMs?: number;
  /** Awaited each time the follower has read everything there is, before it waits (a webhook posts then). */
  onCaughtUp?: () => Promise<void>;
}

/**
 * Every event after `since`, then every new one as it is committed, until `signal` aborts. Records
 * already read are not read again: the next read starts after the last record seen.
 */
export async function* followEvents(store: EventSource, since: EventCursor, options: FollowOptions = {}): AsyncGenerator<MailEvent> {
  const context = options.context ?? new EventContext(store);
  const changes = options.changes ?? new ChangeSignal();
  let position = since;
  let readTo = since.slot === Infinity ? since.seq : since.seq - 1;
  let lastRead = -Infinity;
  while (!options.signal?.aborted) {
    if (store.changes.lastSeq > readTo) {
      // a read parses the journal's whole tail segment: under a stream of commits, at most one per
      // interval (monotonic: a wall clock stepped back an hour held every event back that hour)
      const early = lastRead + eventLimits.followReadIntervalMinMs - monotonicMs();
      if (early > 0) await pause(early, options.signal);
      lastRead = monotonicMs();
      for await (const event of readEvents(store, position, { context, onDamage: options.onDamage, onRecord: (seq) => { readTo = seq; } })) {
        yield event;
        if (options.signal?.aborted) return;
      }
      position = { seq: readTo, slot: Infinity };
    }
    await options.onCaughtUp?.();
    if (options.signal?.aborted || store.changes.lastSeq > readTo) continue; // it committed meanwhile
    await changes.wait(options.pollMs ?? eventLimits.followPollMs, options.signal);
  }
}
