// The store's clock reference: a wrong wall clock must never cost mail. Retention (`expunge
// --before`) deletes by the clock and by dates the clock gave, so the store keeps the latest time
// it has seen and how this boot's start read on the wall clock when it last looked (index-only
// meta `index/clock`). A clock behind either reference, or before the store's creation, is
// certainly wrong; a boot that "started" at another time has had its wall clock stepped (NTP
// putting right a dead RTC, a VM restored from a snapshot, `date -s`): dates given before the step
// may be wrong by it. Retention refuses both until the admin says the clock is right (trustClock),
// and a message is never dated earlier than a time the store has seen, so mail delivered under a
// clock that went back is not taken for old mail once the clock is put right.
import { readHostClock, type HostClock } from '../fs/host-clock.js';
import { encodeValue } from '../index/codec.js';
import type { IndexDb } from '../index/index-db.js';
import { meta } from './apply.js';
import { limits } from '../limits.js';
import type { ClockReport } from './clock-report.js';

const clockKey = meta.clock;

export interface ClockStep {
  /** How far the wall clock was moved (forward > 0), ms. */
  byMs: number;
  /** When the store saw it, by the clock after the step, ms since the epoch. */
  atMs: number;
}

export interface ClockState {
  /** The latest wall time the store has seen, ms since the epoch. */
  seen: number;
  /** The boot it last looked in, and when that boot started by the wall clock then. */
  boot?: string;
  bootTimeMs?: number;
  /** Steps seen since the clock was last trusted. */
  steps: ClockStep[];
  /** When the admin last trusted the clock (`mailstore clock trust`), ms: the store's creation time, dated by a clock that may have been ahead, no longer judges it. */
  trusted?: number;
}

/** The state after looking at the clock `now` (and at the host's boot), from `previous` (none: a store new to this, from its creation). */
export function observeClock(previous: ClockState | undefined, created: number, now: number, host: HostClock | undefined): ClockState {
  const state: ClockState = { seen: Math.max(previous?.seen ?? created, now), steps: [...(previous?.steps ?? [])] };
  if (previous?.boot !== undefined) Object.assign(state, { boot: previous.boot, bootTimeMs: previous.bootTimeMs });
  if (previous?.trusted !== undefined) state.trusted = previous.trusted;
  if (!host) return state;
  const byMs = host.bootTimeMs - (state.bootTimeMs ?? host.bootTimeMs);
  if (state.boot === host.boot && Math.abs(byMs) > limits.clockStepMs) {
    state.steps.push({ byMs, atMs: now });
    // the first tells when dates went wrong, the newest what the clock did last
    if (state.steps.length > limits.clockStepsKept) state.steps.splice(1, 1);
  }
  state.boot = host.boot;
  state.bootTimeMs = host.bootTimeMs;
  return state;
}

/** What a store holds of its clock reference, and when it writes it. */
export class StoreClock {
  private state: ClockState | undefined;
  private lookedAt = -Infinity; // performance.now() of the last look
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly db: () => IndexDb, private readonly created: number, private readonly readOnly: boolean) {}

  /** At open: the reference as the index holds it, then a first look (written, unless read-only). */
  async start(): Promise<void> {
    this.state = await this.db().get<ClockState>(clockKey);
    await this.look();
  }

  /** A message's date when none is given: now, but never before a time the store has seen. */
  now(): number {
    return Math.max(Date.now(), this.state?.seen ?? 0);
  }

  /** After a commit: a look now and then, so `seen` follows the clock while the store is in use. */
  committed(): void {
    if (performance.now() - this.lookedAt < limits.clockLookEveryMs) return;
    this.lookedAt = performance.now(); // one look at a time
    void this.look().catch(() => undefined); // the index write failing fails the next commit too
  }

  async report(): Promise<ClockReport> {
    await this.look();
    return (await import('./clock-report.js')).clockReport(this.state!, this.created, Date.now());
  }

  /** Only what is seen from now on counts. */
  async trust(): Promise<ClockReport> {
    const now = Date.now();
    const host = await readHostClock();
    await this.write({ seen: now, ...(host ? { boot: host.boot, bootTimeMs: host.bootTimeMs } : {}), steps: [], trusted: now });
    return (await import('./clock-report.js')).clockReport(this.state!, this.created, now);
  }

  /** Waits for a write under way (close). */
  settled(): Promise<void> {
    return this.writing;
  }

  private async look(): Promise<void> {
    this.lookedAt = performance.now();
    const host = await readHostClock();
    await this.write(observeClock(this.state, this.created, Date.now(), host));
  }

  private write(state: ClockState): Promise<void> {
    this.state = state;
    if (this.readOnly) return Promise.resolve();
    const done = this.writing.then(() => this.db().write([{ type: 'put', key: clockKey, value: encodeValue(clockKey, state) }]));
    this.writing = done.catch(() => undefined);
    return done;
  }
}
