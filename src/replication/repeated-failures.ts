// A replica's connection that fails for one reason (refused by its primary, a full disk) fails
// again at every retry, one every limits.replicationRetryMaxMs for as long as nobody acts: logged
// each time, a replica left refused for a weekend filled its log and its primary's. Each source's
// failure is logged once, again when the reason changes, and otherwise every
// limits.replicationFailureRepeatLogMs as "still failing since T".
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import type { Log } from './transport.js';

/** Sources remembered at once (a primary's: one per replica node id); the oldest is forgotten first. */
const sourcesMax = 1_024;

interface Failing {
  reason: string;
  /** Wall clock, for the admin: when this run of failures began. */
  since: number;
  loggedMs: number;
}

export class RepeatedFailures {
  private readonly failing = new Map<string, Failing>();

  constructor(private readonly log: Log) {}

  /** Logs `prefix + message` unless `source` failed for the same reason and was logged less than the repeat interval ago. */
  note(source: string, prefix: string, message: string): void {
    const reason = reasonOf(message);
    const now = monotonicMs();
    const last = this.failing.get(source);
    if (last?.reason === reason) {
      if (now - last.loggedMs < limits.replicationFailureRepeatLogMs) return;
      last.loggedMs = now;
      this.log(`${prefix}still failing since ${new Date(last.since).toISOString()}: ${message}`);
      return;
    }
    this.failing.delete(source);
    if (this.failing.size >= sourcesMax) this.failing.delete(this.failing.keys().next().value!);
    this.failing.set(source, { reason, since: last?.since ?? Date.now(), loggedMs: now });
    this.log(`${prefix}${message}`);
  }

  /** When `source`'s current run of failures began (wall clock), if it is failing. */
  since(source: string): number | undefined {
    return this.failing.get(source)?.since;
  }

  /** `source` got through (a session that took something or lasted): its next failure is logged. */
  clear(source: string): void {
    this.failing.delete(source);
  }
}

/** The same reason whatever the numbers in it (the primary's journal end, a peer's port, free bytes). */
function reasonOf(message: string): string {
  return message.replace(/\d+/g, '#');
}
