// The background mover (StoreOptions.autoTier, on in `mailstore serve`): a running store with an
// object store moves its sealed packs by itself under the store's policy (tier-policy.ts). It wakes
// up now and then, never waits for a compaction or a flush already running (trylock), and backs
// off (doubling, up to a bound) after a round that moved nothing; a commit brings the next look
// back to the normal interval, since new mail is what pushes the local disk over its budget.
import { limits } from '../limits.js';
import type { TierFlushResult } from './tier.js';

export interface AutoTierSettings {
  /** First wait and wait after a useful round (default limits.tierIntervalMs). */
  intervalMs?: number;
  /** Called after each round that moved something (logs, tests). */
  onMoved?: (result: TierFlushResult) => void;
  /** Called after every round, with its result (undefined: other maintenance held the packs). */
  onRound?: (result: TierFlushResult | undefined) => void;
}

export interface TierMoverHooks {
  /** One policy round, or undefined when other maintenance holds the packs. */
  tryMove(): Promise<TierFlushResult | undefined>;
  /** A round failed (the store stays usable; the pack stays local; the next round tries again). */
  onError(error: unknown): void;
}

export class BackgroundTierMover {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private delayMs: number;
  private readonly intervalMs: number;

  constructor(private readonly hooks: TierMoverHooks, private readonly settings: AutoTierSettings = {}) {
    this.intervalMs = settings.intervalMs ?? limits.tierIntervalMs;
    this.delayMs = this.intervalMs;
    this.schedule();
  }

  /** Something was committed: the local disk may have passed its budget, so a backed-off wait is cut short. */
  noteCommit(): void {
    if (this.delayMs <= this.intervalMs) return;
    this.delayMs = this.intervalMs;
    if (this.running || this.stopped) return; // the running round schedules the next one
    clearTimeout(this.timer);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.running = this.round().finally(() => { this.running = undefined; this.schedule(); }); }, this.delayMs);
    this.timer.unref(); // a store left open does not keep its process alive for this
  }

  private async round(): Promise<void> {
    let useful = false;
    try {
      const result = await this.hooks.tryMove();
      useful = result !== undefined && result.packsMoved > 0;
      if (result && useful) this.settings.onMoved?.(result);
      this.settings.onRound?.(result);
    } catch (error) {
      this.hooks.onError(error);
    }
    this.delayMs = useful ? this.intervalMs : Math.min(this.delayMs * 2, limits.tierBackoffMsMax);
  }
}
