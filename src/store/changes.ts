// The change log as a public feed, and its consumers (DESIGN.md, "Background work"). The journal is
// the change log: `ChangeFeed.read` hands out its committed records from a seq on, decoded. A
// consumer is a name and a durable cursor (the last seq it has finished with), kept in
// consumers/NAME beside the journal, not in the index: the index is derived and may be rebuilt, a
// cursor may not go back. Delivery is at least once: a consumer advances its cursor after its
// effect is durable, so a crash in between hands it the same records again (handlers are
// idempotent). Cursors pin the journal: no segment a consumer still needs is retired.
import { basename, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, assert, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { decodeCbor } from '../index/codec.js';
import type { Journal, JournalDamage } from '../journal/journal.js';
import { limits } from '../limits.js';
import type { JournalPayload, Op } from './records.js';
import { writeStoreFile, type StoreRoot } from './setting-file.js';

export const CONSUMERS_DIR = 'consumers';

/** One committed journal record, decoded. */
export interface Change {
  seq: number;
  ops: Op[];
  /** The last record of its group-commit batch. */
  end: boolean;
}

export interface ConsumerState {
  name: string;
  /** The last seq the consumer has finished with. */
  seq: number;
  /** When the cursor last moved (ms since epoch). */
  updated: number;
  /** Committed records after the cursor. */
  lagRecords: number;
  /** Lag past limits.consumerLagRecordsWarn: reported (stats, consumers), never skipped. */
  behind: boolean;
}

/** What the feed needs of its Store. */
export interface ChangeFeedHost extends StoreRoot {
  journal: Pick<Journal, 'read' | 'firstSeq'>;
  /**
   * The newest seq whose batch fully committed (StoreReplication.committedSeq): its index changes
   * are what readers see. Not journal.lastSeq, which moves as soon as the journal fsync returns,
   * while the batch's pack fsync may still run and its index is not applied yet.
   */
  committedSeq(): number;
  readOnly: boolean;
  /** A cursor moved forward or a consumer was removed: what pinned the journal may have let go. */
  released?(): void;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** A consumer cursor that does not read (CORRUPT): retirement holds until it is mended or removed (RECOVERY.md). */
export interface DamagedCursor { name: string; path: string; why: string }

export class ChangeFeed {
  private waiters: { afterSeq: number; wake: () => void }[] = [];
  /** Per consumer, the last change of its cursor queued (oneAtATime). */
  private readonly changing = new Map<string, Promise<void>>();
  /** The consumers running now (runConsumer, a webhook): one runner a name (claim). */
  private readonly running = new Set<string>();

  constructor(private readonly host: ChangeFeedHost) {}

  /**
   * The seq of the newest committed record: every reader already sees its state (on a replica too,
   * so waiting for this seq is waiting for the primary's state up to it). Records past it may be in
   * the journal while their batch is still being committed; they are not handed out yet.
   */
  get lastSeq(): number {
    return this.host.committedSeq();
  }

  /** The oldest seq still in the journal (records before it were retired under a snapshot). */
  get firstSeq(): number {
    return this.host.journal.firstSeq;
  }

  /**
   * Committed records with seq > afterSeq, in order, at most `limit`. Records already retired are
   * NOT_FOUND (the consumer must start again from a snapshot); damage in the journal is CORRUPT
   * unless `onDamage` takes it (then the damaged records are skipped, which the caller reports).
   * `views`: each change's ops may point into a buffer the journal reads on into (Journal.read):
   * for a consumer that keeps nothing of a change once it asks for the next.
   */
  async *read(afterSeq: number, options: { limit?: number; onDamage?: (damage: JournalDamage) => void; views?: boolean } = {}): AsyncGenerator<Change> {
    assert(Number.isSafeInteger(afterSeq) && afterSeq >= 0, `change feed read after ${afterSeq}`);
    const first = this.firstSeq;
    if (afterSeq + 1 < first) {
      throw new MailstoreError('NOT_FOUND', `the journal records after seq ${afterSeq} were retired (the journal starts at ${first}); start again from a snapshot`);
    }
    const last = this.lastSeq; // records written after this call started wait for the next read
    let left = options.limit ?? Infinity;
    const onDamage = options.onDamage ?? ((damage: JournalDamage) => {
      throw new MailstoreError('CORRUPT', `journal segment ${damage.segment} is damaged at offset ${damage.offset}; run 'mailstore scrub'`, { path: damage.segment });
    });
    let expected = afterSeq + 1;
    for await (const record of this.host.journal.read(afterSeq, onDamage, { views: options.views })) {
      if (record.seq > last || left <= 0) return;
      if (record.seq !== expected && !options.onDamage) {
        throw new MailstoreError('CORRUPT', `the journal has no record ${expected} (the next is ${record.seq}); run 'mailstore scrub'`);
      }
      expected = record.seq + 1;
      const payload = decodeCbor<JournalPayload>(record.payload);
      yield { seq: record.seq, ops: payload.ops, end: payload.end === true };
      left--;
    }
  }

  /** Resolves true once a record after `afterSeq` is committed, false after `timeoutMs`. */
  wait(afterSeq: number, timeoutMs: number): Promise<boolean> {
    if (this.lastSeq > afterSeq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { afterSeq, wake: () => { clearTimeout(timer); resolve(true); } };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref?.();
      this.waiters.push(waiter);
    });
  }

  /** Called after every group commit: wakes the consumers waiting for it. */
  notify(lastSeq: number): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.afterSeq < lastSeq);
    this.waiters = this.waiters.filter((w) => w.afterSeq >= lastSeq);
    for (const w of ready) w.wake();
  }

  /** Wakes every waiter (the store is closing). */
  wakeAll(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) w.wake();
  }

  // ---- consumers -------------------------------------------------------------------------------

  /** One runner a name until `release()` (LOCK: this process is every runner); two shared the records, the slower's advance failed. */
  claim(name: string): () => void {
    this.checkName(name);
    if (this.running.has(name)) {
      throw new MailstoreError('LOCKED', `consumer ${name} is running already; stop it first, or give this one another name`);
    }
    this.running.add(name);
    return () => this.running.delete(name);
  }

  private path(name: string): string {
    return join(this.host.root, CONSUMERS_DIR, name);
  }

  private checkName(name: string): void {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new MailstoreError('INVALID', `a consumer name is 1 to 64 of a-z, 0-9, '.', '_' and '-' (starting with a letter or digit), got ${JSON.stringify(name)}`);
    }
  }

  /** The consumer's cursor, or undefined when no consumer of that name is registered. */
  async cursor(name: string): Promise<{ seq: number; updated: number } | undefined> {
    this.checkName(name);
    const bytes = await this.host.fs.readFile(this.path(name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw fromSystemError(error, 'reading a consumer cursor', this.path(name));
    });
    return bytes && decodeCursor(bytes, this.path(name));
  }

  /**
   * Registers a consumer at `seq` (default: the newest record, so it sees what comes next) unless it
   * exists; returns its cursor. A consumer that must see the past registers at the oldest retained
   * seq - 1.
   */
  register(name: string, seq = this.lastSeq, options: { replaceDamaged?: boolean } = {}): Promise<{ seq: number; updated: number }> {
    return this.oneAtATime(name, async () => {
      // `replaceDamaged`: a cursor the store derives (snapshot, compact) is as good as lost when it
      // does not read; else every retirement stayed refused (CORRUPT) until an admin removed it
      const existing = await this.cursor(name).catch((error: unknown) => {
        if (options.replaceDamaged && error instanceof MailstoreError && error.code === 'CORRUPT') return undefined;
        throw error;
      });
      if (existing) return existing;
      await this.store(name, this.checkSeq(seq));
      return (await this.cursor(name))!;
    });
  }

  /**
   * Moves the cursor forward to `seq` (durable when this resolves). Going back is refused, or with
   * `ifBehind` a cursor already past `seq` is left there (an explicit compaction's cursor read is
   * not atomic with its advance, and the background compactor may pass it in between).
   */
  advance(name: string, seq: number, options: { ifBehind?: boolean } = {}): Promise<void> {
    return this.oneAtATime(name, async () => {
      const current = await this.cursor(name);
      if (!current) throw new MailstoreError('NOT_FOUND', `no consumer named ${name}`);
      this.checkSeq(seq);
      if (seq < current.seq && options.ifBehind) return;
      if (seq < current.seq) throw new MailstoreError('INVALID', `consumer ${name} is at seq ${current.seq}; it cannot go back to ${seq}`);
      if (seq === current.seq) return;
      await this.store(name, seq);
      this.host.released?.();
    });
  }

  /**
   * Runs a read, check and write of one consumer's cursor after the ones before it: two advances at
   * once (an explicit compaction's and the background compactor's) each read the old cursor, and
   * the later write could put it back below the one acknowledged first, under what retirement had
   * taken meanwhile.
   */
  private oneAtATime<T>(name: string, change: () => Promise<T>): Promise<T> {
    const running = (this.changing.get(name) ?? Promise.resolve()).then(change, change);
    const settled = running.then(() => undefined, () => undefined);
    this.changing.set(name, settled);
    void settled.then(() => { if (this.changing.get(name) === settled) this.changing.delete(name); });
    return running;
  }

  /**
   * Puts a registered consumer's cursor at `seq`, back as well as forward, in one durable write: an
   * admin's rewind (a webhook receiver that lost what it was sent). A remove and a register would
   * leave the journal unpinned between the two, so a crash there let retirement take what the
   * consumer was to read again. Below the oldest retained record is NOT_FOUND: it is gone.
   */
  rewind(name: string, seq: number): Promise<void> {
    return this.oneAtATime(name, async () => {
      await this.host.checkMounted(this.path(name)); // not NOT_FOUND in an empty mount point
      if (!(await this.cursor(name))) throw new MailstoreError('NOT_FOUND', `no consumer named ${name}`);
      this.checkSeq(seq);
      if (seq < this.firstSeq - 1) throw new MailstoreError('NOT_FOUND', `the records before seq ${this.firstSeq} were retired; consumer ${name} cannot go back to ${seq}`);
      await this.store(name, seq);
    });
  }

  /** Forgets a consumer: it no longer pins the journal. */
  async remove(name: string): Promise<boolean> {
    this.checkName(name);
    this.writable();
    await this.host.checkMounted(this.path(name)); // not NOT_FOUND in an empty mount point
    try {
      await this.host.fs.unlink(this.path(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw fromSystemError(error, 'removing a consumer cursor', this.path(name));
    }
    await this.host.fs.syncDir(join(this.host.root, CONSUMERS_DIR));
    this.host.released?.();
    return true;
  }

  /** Every registered consumer with its lag, by name; CORRUPT when a cursor does not read (retirement relies on it). */
  async consumers(): Promise<ConsumerState[]> {
    const { consumers, damaged } = await this.report();
    if (damaged) throw new MailstoreError('CORRUPT', damaged[0].why, { path: damaged[0].path });
    return consumers;
  }

  /** consumers() for reports (stats, `consumers`): a cursor that does not read is in `damaged`, not the whole report's failure. */
  async report(): Promise<{ consumers: ConsumerState[]; damaged?: DamagedCursor[] }> {
    const consumers: ConsumerState[] = [];
    const damaged: DamagedCursor[] = [];
    for (const name of await this.names()) {
      const cursor = await this.cursor(name).catch((error: unknown) => {
        if (!(error instanceof MailstoreError && error.code === 'CORRUPT')) throw error;
        damaged.push({ name, path: this.path(name), why: error.message });
      });
      if (!cursor) continue;
      const lagRecords = Math.max(0, this.lastSeq - cursor.seq);
      consumers.push({ name, seq: cursor.seq, updated: cursor.updated, lagRecords, behind: lagRecords > limits.consumerLagRecordsWarn });
    }
    return damaged.length > 0 ? { consumers, damaged } : { consumers };
  }

  /** The names of the consumer cursors in consumers/, sorted, whether or not their files read. */
  async names(): Promise<string[]> {
    const dir = join(this.host.root, CONSUMERS_DIR);
    const names = await this.host.fs.readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw fromSystemError(error, 'listing consumers', dir);
    });
    // no consumers/ in an empty mount point is UNMOUNTED: `consumers` said "no consumers", stats 0
    if (!names) await this.host.checkMounted(dir);
    return (names ?? []).filter((n) => NAME.test(n)).sort();
  }

  /** The slowest cursor (retirement never passes it), or undefined when there is no consumer. */
  async slowest(): Promise<number | undefined> {
    const all = await this.consumers();
    return all.length === 0 ? undefined : Math.min(...all.map((c) => c.seq));
  }

  private checkSeq(seq: number): number {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new MailstoreError('INVALID', `a consumer cursor is a journal seq (an integer >= 0), got ${seq}`);
    if (seq > this.lastSeq) throw new MailstoreError('INVALID', `seq ${seq} is past the newest committed record (${this.lastSeq})`);
    return seq;
  }

  private writable(): void {
    if (this.host.readOnly) throw new MailstoreError('ACCESS', 'the store is open read-only; consumer cursors cannot move');
  }

  private async store(name: string, seq: number): Promise<void> {
    this.checkName(name);
    this.writable();
    await writeStoreFile(this.host, join(CONSUMERS_DIR, name), encodeCursor({ seq, updated: Date.now() }), 'a consumer cursor');
  }
}

function encodeCursor(cursor: { seq: number; updated: number }): Buffer {
  const body = JSON.stringify(cursor);
  return Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`);
}

function decodeCursor(bytes: Buffer, path: string): { seq: number; updated: number } {
  const [body, check] = bytes.toString('utf8').split('\n');
  const crc = /^crc32 ([0-9a-f]{8})$/.exec(check ?? '');
  const parsed = crc && Number.parseInt(crc[1], 16) === crc32(Buffer.from(body)) ? safeJson(body) : undefined;
  if (!parsed || !Number.isSafeInteger(parsed.seq) || parsed.seq < 0) {
    throw new MailstoreError('CORRUPT', `consumer cursor ${path} is damaged; 'mailstore consumers --remove ${basename(path)}' forgets it; then register the consumer again (it starts over; the snapshot and compact consumers do so by themselves)`, { path });
  }
  return { seq: parsed.seq, updated: Number(parsed.updated) || 0 };
}

function safeJson(text: string): { seq: number; updated: number } | undefined {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface ConsumerRunOptions {
  /** Records handed to the handler at once. */
  batchRecords?: number;
  /** Stops the loop (checked between rounds). */
  signal?: AbortSignal;
  /** A failure the loop cannot retry (the runner stops after reporting it). */
  onError?: (error: unknown) => void;
}

/**
 * Runs a consumer until `signal` aborts: reads from its cursor, hands the records to `handle`,
 * advances the cursor after it resolved. A handler that cannot take what it needs now throws a
 * MailstoreError LOCKED (or BUSY-like NO_SPACE/IO: temporary) and the same records come again
 * after a pause; an idle consumer backs off (doubling up to limits.consumerIdleMaxMs) and wakes at
 * once when a commit arrives.
 */
export async function runConsumer(feed: ChangeFeed, name: string, handle: (changes: Change[]) => Promise<void>, options: ConsumerRunOptions = {}): Promise<void> {
  const release = feed.claim(name);
  try {
    await runClaimed(feed, name, handle, options);
  } finally {
    release();
  }
}

async function runClaimed(feed: ChangeFeed, name: string, handle: (changes: Change[]) => Promise<void>, options: ConsumerRunOptions): Promise<void> {
  const batch = options.batchRecords ?? limits.consumerBatchRecords;
  let pause: number = limits.consumerIdleMinMs;
  let { seq } = await feed.register(name);
  while (!options.signal?.aborted) {
    const changes: Change[] = [];
    for await (const change of feed.read(seq, { limit: batch })) changes.push(change);
    if (changes.length === 0) {
      await feed.wait(seq, pause);
      pause = Math.min(pause * 2, limits.consumerIdleMaxMs);
      continue;
    }
    try {
      await handle(changes);
    } catch (error) {
      if (error instanceof MailstoreError && ['LOCKED', 'NO_SPACE', 'IO'].includes(error.code)) {
        await sleep(pause); // requeued: the same records again after a pause
        pause = Math.min(pause * 2, limits.consumerIdleMaxMs);
        continue;
      }
      options.onError?.(error);
      return;
    }
    seq = changes[changes.length - 1].seq;
    await feed.advance(name, seq);
    pause = limits.consumerIdleMinMs;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}
