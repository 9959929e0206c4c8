// The free-space reserve (limits.freeSpaceReserveBytesMax, docs/FORMAT.md "A full disk"): changes
// that add mail are refused NO_SPACE before anything is written once the store's file system is
// down to its reserve, so the index (LevelDB, written after each durable commit) never meets a full
// disk through our own writes and the store stays open, serving reads and the expunges that make
// room. The commit path reads a cached figure only: statfs runs in the background, at most every
// limits.freeSpaceRefreshMs while changes are made, and at once when a change is refused. Where the
// file system has a fixed number of inodes (ext4), they are held to a reserve of their own: out of
// inodes with bytes free, LevelDB cannot create its next table and the store stopped (CLOSED), and
// an open, which creates files, failed NO_SPACE until inodes were freed.
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { limits } from '../limits.js';

/** What a change may write, for the reserve (Mutation.space). */
export interface SpaceNeed {
  /** Bytes the change would write at most (before dedup: an upper bound). */
  bytes: number;
  /** It adds mail: held to the reserve. Else (maintenance that makes room in the end) to the floor. */
  mail: boolean;
}

/** The reserve as stats and health report it. */
export interface FreeSpaceState {
  /** The reserve in bytes (0: off); mail is refused below it. */
  reserveBytes: number;
  /** Metadata changes and maintenance are refused below this. */
  floorBytes: number;
  /** The free bytes on the store's file system (statfs, now); null where it cannot be known. */
  freeBytes: number | null;
  /** The file system's size; null where it cannot be known. */
  totalBytes: number | null;
  /** Mail is being refused for the reserve (since the last refusal, until a change adding mail is admitted). */
  refusingMail: boolean;
  /** Inodes (files) held back from mail (0: off, or a file system without a fixed number of them). */
  reserveInodes: number;
  /** The inodes free on the store's file system; null where it has no fixed number of them (btrfs) or cannot say. */
  freeInodes: number | null;
}

/** The reserve a store of `totalBytes` gets by default: the smaller of 64 MiB and 5 % of it. */
export function defaultReserveBytes(totalBytes: number): number {
  return Math.min(limits.freeSpaceReserveBytesMax, Math.floor((totalBytes * limits.freeSpaceReservePercent) / 100));
}

/** The inode reserve of a file system of `totalInodes`: the smaller of freeSpaceReserveInodesMax and 5 % of them. */
export function defaultReserveInodes(totalInodes: number): number {
  return Math.min(limits.freeSpaceReserveInodesMax, Math.floor((totalInodes * limits.freeSpaceReservePercent) / 100));
}

export class FreeSpace {
  /** Free bytes at the last statfs, less every admitted change's bytes since; undefined: unknown (no reserve is held). */
  private freeBytes?: number;
  private totalBytes?: number;
  /** Inodes free at the last statfs (a change takes none of its own: packs and segments are shared); undefined: no fixed number. */
  private freeInodes?: number;
  private reserveInodes = 0;
  /** Bytes admitted in all (the refresh subtracts those admitted while its statfs ran). */
  private admitted = 0;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  /** The figure is at most freeSpaceRefreshMs old (else the next change statfs's first: after an idle spell). */
  private fresh = false;
  /** A change was admitted since the last statfs (the timer then statfs's again, else lets the figure go stale). */
  private dirty = false;
  private refusing = false;
  private reserve = 0;
  private closed = false;

  /**
   * `reserveBytes`: the store's choice (undefined: defaultReserveBytes of the file system's size).
   * `onRefusing`: told once when mail starts being refused for the reserve, and once when it clears.
   */
  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    private reserveBytes: number | undefined,
    private readonly onRefusing?: (refusing: boolean, state: FreeSpaceState) => void,
  ) {}

  /** The first statfs (at open). */
  async start(): Promise<void> {
    await this.refresh();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A new choice (undefined: the default), held from the next change on. */
  setReserve(reserveBytes: number | undefined): void {
    this.reserveBytes = reserveBytes;
    if (this.totalBytes !== undefined) this.reserve = reserveBytes ?? defaultReserveBytes(this.totalBytes);
  }

  get floorBytes(): number {
    return Math.floor(this.reserve / limits.freeSpaceFloorDivisor);
  }

  /**
   * Refusing mail ends (said once: `onRefusing(false)`) only with the reserve and a floor's worth
   * more free: a disk just at the reserve admits small messages and refuses larger ones, and the
   * warning must not come and go with each of them.
   */
  private get clearBytes(): number {
    return this.reserve + this.floorBytes;
  }

  /** Whether the inodes free are below what a change (`mail`: one adding mail) must leave. */
  private shortOfInodes(mail: boolean): boolean {
    if (this.freeInodes === undefined) return false;
    return this.freeInodes < (mail ? this.reserveInodes : Math.floor(this.reserveInodes / limits.freeSpaceFloorDivisor));
  }

  /**
   * Bytes the journal must leave free when it preallocates filler: filler written into the reserve
   * would be space mail took from it (its records later fill the filler without statfs noticing).
   */
  keepFreeBytes(): number {
    return this.reserve;
  }

  /**
   * The cached free-bytes figure, for the journal's preallocation (no I/O: it is on a delivery's
   * path): only while it is fresh and kept (a reserve is held, so every admitted change's bytes
   * are taken off it). Undefined otherwise: the caller statfs's itself.
   */
  freeBytesNow(): number | undefined {
    return this.fresh && this.reserve > 0 ? this.freeBytes : undefined;
  }

  /**
   * Whether a change needing `need` may go on, by the cached figure (no I/O: the commit path);
   * admitted, its bytes are taken from the figure. False: ask `recheck` before refusing.
   */
  admit(need: SpaceNeed | undefined): boolean {
    const free = this.freeBytes;
    if (free === undefined || this.reserve === 0) return true;
    const bytes = need?.bytes ?? 0;
    if (!this.fresh || free - bytes < (need?.mail ? this.reserve : this.floorBytes) || this.shortOfInodes(need?.mail === true)) return false;
    this.freeBytes = free - bytes;
    this.admitted += bytes;
    this.dirty = true;
    if (need?.mail && this.refusing && this.roomAgain()) this.cleared();
    return true;
  }

  /**
   * What maintenance that frees space in the end (compaction's new packs, written before the old
   * ones go) may write, with a fresh statfs: the free bytes above the floor. Undefined: no reserve
   * is held (unknown space, or the reserve is off).
   */
  async roomAboveFloor(): Promise<number | undefined> {
    await this.refresh();
    if (this.freeBytes === undefined || this.reserve === 0) return undefined;
    return Math.max(0, this.freeBytes - this.floorBytes);
  }

  /** Bytes written outside admit (compaction's copy) taken off the figure deliveries are admitted by. */
  took(bytes: number): void {
    if (this.freeBytes === undefined) return;
    this.freeBytes -= bytes;
    this.admitted += bytes;
    this.dirty = true;
  }

  /** A write met a full disk all the same (others filled it faster than the figure saw): statfs now. */
  sawFull(): void {
    void this.refresh();
  }

  /** `admit`, then `recheck` when the cached figure turns it down (off the commit path: it awaits either way). */
  async refusal(need: SpaceNeed): Promise<MailstoreError | undefined> {
    return this.admit(need) ? undefined : this.recheck(need);
  }

  /**
   * A change `admit` turned down: statfs now (space may have been freed since the last figure) and
   * decide again. Undefined: admitted; else the NO_SPACE error to refuse it with.
   */
  async recheck(need: SpaceNeed | undefined): Promise<MailstoreError | undefined> {
    await this.refresh();
    if (this.admit(need)) return undefined;
    const mail = need?.mail === true;
    if (mail && !this.refusing) {
      this.refusing = true;
      this.onRefusing?.(true, this.stateNow());
    }
    const error = this.shortOfInodes(mail) ? this.inodesRefusal(mail) : this.bytesRefusal(mail, need?.bytes ?? 0);
    if (mail) error.belowReserve = true;
    return error;
  }

  private bytesRefusal(mail: boolean, bytes: number): MailstoreError {
    const limit = mail ? this.reserve : this.floorBytes;
    const what = mail ? `the free-space reserve of ${limit} bytes (mail is deferred; expunges and flag changes still work)` : `the free-space floor of ${limit} bytes (the last room, kept for the index)`;
    return new MailstoreError('NO_SPACE', `the store's file system has ${this.freeBytes} bytes free; writing ${bytes} bytes would fall below ${what}; nothing was written. Free space (expunge and compact, or remove other files): changes go on by themselves then; 'mailstore config --free-space-reserve' sets the reserve`, { path: this.dir });
  }

  private inodesRefusal(mail: boolean): MailstoreError {
    const limit = mail ? this.reserveInodes : Math.floor(this.reserveInodes / limits.freeSpaceFloorDivisor);
    const what = mail ? 'the reserve (mail is deferred; expunges and flag changes still work)' : 'the floor (the last ones, kept for the index and for opening the store)';
    return new MailstoreError('NO_SPACE', `the store's file system has ${this.freeInodes} inodes (files) free, below ${what} of ${limit}, though bytes are free; nothing was written. Remove files on it ('df -i' shows the inodes): changes go on by themselves then; 'mailstore config --free-space-reserve 0' turns the reserve off`, { path: this.dir });
  }

  /** The reserve now, with a fresh statfs (stats, health: not the commit path). */
  async state(): Promise<FreeSpaceState> {
    await this.refresh();
    return this.stateNow();
  }

  private stateNow(): FreeSpaceState {
    return {
      reserveBytes: this.reserve, floorBytes: this.floorBytes, freeBytes: this.freeBytes ?? null, totalBytes: this.totalBytes ?? null, refusingMail: this.refusing,
      reserveInodes: this.reserveInodes, freeInodes: this.freeInodes ?? null,
    };
  }

  /** The reserve and a floor's worth more of bytes free, and the inode reserve. */
  private roomAgain(): boolean {
    return this.freeBytes! >= this.clearBytes && !this.shortOfInodes(true);
  }

  private cleared(): void {
    this.refusing = false;
    this.onRefusing?.(false, this.stateNow());
  }

  /**
   * After a statfs: in freeSpaceRefreshMs, statfs again if changes were admitted meanwhile, else
   * let the figure go stale (an idle store does no I/O; its next change statfs's first).
   */
  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.dirty) void this.refresh();
      else this.fresh = false;
    }, limits.freeSpaceRefreshMs);
    this.timer.unref();
  }

  /** statfs, once at a time; the bytes admitted while it ran are taken off its figure. */
  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        if (!this.fs.spaceBytes) return;
        const before = this.admitted;
        const space = await this.fs.spaceBytes(this.dir).catch(() => undefined);
        this.fresh = true; // a statfs that failed says nothing about space: the last figure stands
        this.dirty = false;
        this.schedule();
        if (!space) return;
        this.totalBytes = space.totalBytes;
        this.reserve = this.reserveBytes ?? defaultReserveBytes(space.totalBytes);
        this.freeBytes = space.freeBytes - (this.admitted - before);
        this.freeInodes = space.totalInodes ? space.freeInodes : undefined;
        this.reserveInodes = space.totalInodes && this.reserve > 0 ? defaultReserveInodes(space.totalInodes) : 0;
        // room again without a change adding mail (the admin freed space): said now, not at the next delivery
        if (this.refusing && this.roomAgain()) this.cleared();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}
