// The background mover (StoreOptions.autoTier, on in `mailstore serve`): a running store with an
// object store moves its sealed packs by itself under the store's policy (tier-policy.ts). It wakes
// up now and then, never waits for a compaction or a flush already running (trylock), and backs
// off (doubling, up to a bound) after a round that moved nothing; a commit brings the next look
// back to the normal interval, since new mail is what pushes the local disk over its budget.
import { limits } from '../limits.js';
import { BackoffLoop } from './backoff-loop.js';
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

export class BackgroundTierMover extends BackoffLoop {
  constructor(private readonly hooks: TierMoverHooks, private readonly settings: AutoTierSettings = {}) {
    super(settings.intervalMs ?? limits.tierIntervalMs, limits.tierBackoffMsMax);
  }

  /** Something was committed: the local disk may have passed its budget, so a backed-off wait is cut short. */
  noteCommit(): void {
    this.wakeSooner();
  }

  protected async round(): Promise<boolean> {
    try {
      const result = await this.hooks.tryMove();
      const useful = result !== undefined && result.packsMoved > 0;
      if (result && useful) this.settings.onMoved?.(result);
      this.settings.onRound?.(result);
      return useful;
    } catch (error) {
      this.hooks.onError(error);
      return false;
    }
  }
}
