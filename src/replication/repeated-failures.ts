// A replica's connection that fails for one reason (refused by its primary, a full disk) fails
// again at every retry, one every limits.replicationRetryMaxMs for as long as nobody acts: logged
// each time, a replica left refused for a weekend filled its log and its primary's. In a source's
// run of failures each reason is logged once (a new one at once), and otherwise every
// limits.replicationFailureRepeatLogMs as "still failing since T"; a source that gets through ends the run.
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import type { Log } from './transport.js';

/** Sources remembered at once (a primary's: one per replica node id); the oldest is forgotten first. */
const sourcesMax = 1_024;
/** Reasons remembered in one run of failures; the oldest is forgotten first. */
const reasonsMax = 16;

interface Run {
  /** Wall clock, for the admin: when this run of failures began. */
  since: number;
  /** Each reason logged in this run, and when (monotonic). */
  reasons: Map<string, number>;
  /** Lines said once in this run (once()). */
  said: Set<string>;
}

export class RepeatedFailures {
  private readonly failing = new Map<string, Run>();

  constructor(private readonly log: Log) {}

  /**
   * Logs `prefix + message` unless `source` failed for the same reason in this run and that was
   * logged less than the repeat interval ago (a session's two lines, its report and its end, each
   * once: not again at every retry because they alternate).
   */
  note(source: string, prefix: string, message: string): void {
    const reason = reasonOf(message);
    const now = monotonicMs();
    let run = this.failing.get(source);
    if (!run) {
      if (this.failing.size >= sourcesMax) this.failing.delete(this.failing.keys().next().value!);
      run = { since: Date.now(), reasons: new Map(), said: new Set() };
      this.failing.set(source, run);
    }
    const loggedMs = run.reasons.get(reason);
    if (loggedMs !== undefined && now - loggedMs < limits.replicationFailureRepeatLogMs) return;
    if (loggedMs === undefined && run.reasons.size >= reasonsMax) run.reasons.delete(run.reasons.keys().next().value!);
    run.reasons.set(reason, now);
    this.log(loggedMs === undefined ? `${prefix}${message}` : `${prefix}still failing since ${new Date(run.since).toISOString()}: ${message}`);
  }

  /** Whether to log `what` (a connect line): always while `source` is not failing, else once per run of failures. */
  once(source: string, what: string): boolean {
    const run = this.failing.get(source);
    if (!run) return true;
    if (run.said.has(what)) return false;
    run.said.add(what);
    return true;
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
