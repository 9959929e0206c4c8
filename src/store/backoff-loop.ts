// The loop behind every background task of a running store (compaction, moves to the object
// store): one round at a time on an unref'd timer, the normal interval after a round that did
// something, doubling up to a bound after one that did not, and stop() waits for a round in flight.

export abstract class BackoffLoop {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  protected stopped = false;
  private delayMs: number;

  constructor(protected readonly intervalMs: number, private readonly backoffMsMax: number) {
    this.delayMs = intervalMs;
    this.schedule();
  }

  /** One round; true when it did something (the next one comes at the normal interval). */
  protected abstract round(): Promise<boolean>;

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Brings a backed-off wait back to the normal interval (a commit made new work). */
  protected wakeSooner(): void {
    if (this.delayMs <= this.intervalMs) return;
    this.delayMs = this.intervalMs;
    if (this.running || this.stopped) return; // the running round schedules the next one
    clearTimeout(this.timer);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      // A round reports its own failures (its onError hook); one that rejects all the same (that
      // hook threw: a caller's) counts as a round that did nothing, never as an unhandled rejection,
      // which would end the process of a server embedding the store
      this.running = this.round()
        .then((useful) => useful, () => false)
        .then((useful) => { this.delayMs = useful ? this.intervalMs : Math.min(this.delayMs * 2, this.backoffMsMax); })
        .finally(() => { this.running = undefined; this.schedule(); });
    }, this.delayMs);
    this.timer.unref(); // a store left open does not keep its process alive for this
  }
}
