// The background compactor (StoreOptions.autoCompact), a change-log consumer named `compact`
// (DESIGN.md, "Background work"): it reads the journal from its durable cursor, learns from the
// expunge records there that pack bytes died, advances its cursor past them, and compacts when the
// dead bytes (in packs, and released inline bodies' in the journal) pass a threshold (what the
// records said is in the index too: a restarted compactor looks at the index's dead bytes first,
// so a crash between the advance and the compaction loses nothing, and the cursor never pins the
// journal for the length of a compaction). Its count of releases
// is in memory and rebuilt on start by looking at the index's dead bytes once. It never waits for
// a compaction already running (trylock), and backs off (doubling, up to a bound) after a round
// that did nothing. Its cursor pins the journal like every consumer's; `mailstore consumers` lists it.
import { limits } from '../limits.js';
import { BackoffLoop } from './backoff-loop.js';
import type { ChangeFeed, Change } from './changes.js';
import type { CompactResult } from './compact.js';

/** The compactor's consumer name (consumers/compact). */
export const COMPACT_CONSUMER = 'compact';

export interface AutoCompactSettings {
  /** Released blobs are kept this long (default limits.compactGraceMs). */
  graceMs?: number;
  /** First wait and wait after a useful round (default limits.compactIntervalMs). */
  intervalMs?: number;
  /** Compact only once packs hold at least this many dead bytes (default limits.compactDeadBytesMin). */
  deadBytesMin?: number;
  /** Tombstones older than this are dropped, the vanished floors raised (default limits.tombstoneRetentionMs; tombstone-expiry.ts). */
  tombstoneRetentionMs?: number;
  /** Called after each compaction the compactor ran (logs, tests). */
  onCompacted?: (result: CompactResult) => void;
}

export interface CompactorHooks {
  /** The change log the compactor consumes. */
  feed: Pick<ChangeFeed, 'register' | 'advance' | 'read'>;
  /** Dead bytes now: in packs, and released inline bodies' in the journal (StoreStats.bytesDeadInline). */
  deadBytes(): Promise<number>;
  /** One compaction, or undefined when one is already running. */
  tryCompact(graceMs: number): Promise<CompactResult | undefined>;
  /** Drops tombstones past their retention when it is time (the store keeps the time). */
  expireTombstones?(): Promise<void>;
  /** A round failed (the store stays usable; the next round tries again). */
  onError(error: unknown): void;
}

/** Whether a record may have released a blob (an expunge, or a rebuilt state): then dead bytes may have grown. */
export function releasesBlobs(change: Change): boolean {
  return change.ops.some((op) => op.op === 'message.expunge' || op.op === 'state.begin');
}

export class BackgroundCompactor extends BackoffLoop {
  /** Releases seen since the last look at the dead bytes; true at start (rebuilt from the index). */
  private released = true;
  private readonly graceMs: number;
  private readonly deadBytesMin: number;
  private readonly onCompacted: AutoCompactSettings['onCompacted'];

  constructor(private readonly hooks: CompactorHooks, settings: AutoCompactSettings = {}) {
    super(settings.intervalMs ?? limits.compactIntervalMs, limits.compactBackoffMsMax);
    this.onCompacted = settings.onCompacted;
    this.graceMs = settings.graceMs ?? limits.compactGraceMs;
    this.deadBytesMin = settings.deadBytesMin ?? limits.compactDeadBytesMin;
  }

  protected async round(): Promise<boolean> {
    try {
      if (this.stopped) return false;
      const { seq: cursor } = await this.hooks.feed.register(COMPACT_CONSUMER, undefined, { replaceDamaged: true }); // damaged: as if lost (docs/FORMAT.md)
      let last = cursor;
      // each change is looked at and let go: read as views into the journal's buffer (no copies)
      for await (const change of this.hooks.feed.read(cursor, { limit: limits.compactConsumerRecords, views: true })) {
        if (releasesBlobs(change)) this.released = true;
        last = change.seq;
      }
      // Advanced before compacting, not after: what the records said (bytes died) is in the index
      // too, and a restarted compactor looks at the index's dead bytes first (released starts
      // true), so nothing is missed; advancing only after a compaction kept the journal pinned for
      // a whole compaction (and for ever in processes that never lived through one: the soak's
      // children retired no segment).
      if (last > cursor) await this.hooks.feed.advance(COMPACT_CONSUMER, last);
      const useful = await this.compactIfWorth();
      if (!this.stopped) await this.hooks.expireTombstones?.();
      return useful || last > cursor;
    } catch (error) {
      this.released = true;
      this.hooks.onError(error);
      return false;
    }
  }

  private async compactIfWorth(): Promise<boolean> {
    if (!this.released || this.stopped) return false;
    this.released = false;
    if ((await this.hooks.deadBytes()) < this.deadBytesMin) return false;
    const result = await this.hooks.tryCompact(this.graceMs);
    if (result) this.onCompacted?.(result);
    const useful = result !== undefined && (result.packsRewritten.length > 0 || result.packsRemoved.length > 0 || (result.inlineReclaimed ?? 0) > 0);
    // released blobs still in their grace period, or a compaction already running: look again later
    if (!useful) this.released = true;
    return useful;
  }
}
