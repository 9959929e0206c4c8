// The background compactor (StoreOptions.autoCompact): a running store reclaims dead pack bytes by
// itself. It wakes up now and then, looks at the dead bytes only when something was committed
// since the last look, compacts when they pass a threshold, never waits for a compaction already
// running (trylock), and backs off (doubling, up to a bound) after a round that reclaimed nothing.
import { limits } from '../limits.js';
import { BackoffLoop } from './backoff-loop.js';
import type { CompactResult } from './compact.js';

export interface AutoCompactSettings {
  /** Released blobs are kept this long (default limits.compactGraceMs). */
  graceMs?: number;
  /** First wait and wait after a useful round (default limits.compactIntervalMs). */
  intervalMs?: number;
  /** Compact only once packs hold at least this many dead bytes (default limits.compactDeadBytesMin). */
  deadBytesMin?: number;
  /** Called after each compaction the compactor ran (logs, tests). */
  onCompacted?: (result: CompactResult) => void;
}

export interface CompactorHooks {
  /** Dead bytes in packs now. */
  deadBytes(): Promise<number>;
  /** One compaction, or undefined when one is already running. */
  tryCompact(graceMs: number): Promise<CompactResult | undefined>;
  /** A round failed (the store stays usable; the next round tries again). */
  onError(error: unknown): void;
}

export class BackgroundCompactor extends BackoffLoop {
  private changed = true;
  private readonly graceMs: number;
  private readonly deadBytesMin: number;
  private readonly onCompacted: AutoCompactSettings['onCompacted'];

  constructor(private readonly hooks: CompactorHooks, settings: AutoCompactSettings = {}) {
    super(settings.intervalMs ?? limits.compactIntervalMs, limits.compactBackoffMsMax);
    this.onCompacted = settings.onCompacted;
    this.graceMs = settings.graceMs ?? limits.compactGraceMs;
    this.deadBytesMin = settings.deadBytesMin ?? limits.compactDeadBytesMin;
  }

  /** Something was committed: the next wake-up looks at the dead bytes again. */
  noteCommit(): void {
    this.changed = true;
  }

  protected async round(): Promise<boolean> {
    try {
      if (!this.changed || this.stopped) return false;
      this.changed = false;
      if ((await this.hooks.deadBytes()) < this.deadBytesMin) return false;
      const result = await this.hooks.tryCompact(this.graceMs);
      if (result) this.onCompacted?.(result);
      const useful = result !== undefined && (result.packsRewritten.length > 0 || result.packsRemoved.length > 0);
      // released blobs still in their grace period: look again later even without new commits
      if (result && !useful) this.changed = true;
      return useful;
    } catch (error) {
      this.changed = true;
      this.hooks.onError(error);
      return false;
    }
  }
}
