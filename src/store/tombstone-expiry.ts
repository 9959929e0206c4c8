// Tombstones (`C mailbox, modseq, uid -> 1`, QRESYNC's vanished) expire: without it every expunge
// left a key in the index, every snapshot and every backup state for as long as its mailbox lived
// (36,500 a year for a user who gets 100 mails a day). Tombstones older than a retention are
// dropped and each mailbox's vanished floor raised past them in the same op (change.floor), so
// changesSince from below it answers with the uid ranges that hold no message (docs/FORMAT.md,
// "The vanished floor"), as Cyrus's cyr_expire -E raises its deletedmodseq.
//
// A tombstone holds no time, so the store keeps a few marks [ms, modseq] (meta `vanished/marks`,
// journaled): "at this time every modseq up to this one was given". The newest mark at least a
// retention old bounds the tombstones that are.
import { keys, decodeChangeKey } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import { SPACE } from '../keys/tuple.js';
import { modseqAt } from './apply.js';
import type { AdminIndexReader } from './administration.js';
import type { ChangeRecord, MailboxInfo, Op } from './records.js';
import type { Mutation } from './writer.js';

/** The meta name of the marks: [ms, modseq] pairs, oldest first. */
export const TOMBSTONE_MARKS_NAME = 'vanished/marks';

export interface TombstoneExpiryHost {
  index: AdminIndexReader;
  mutate<T>(mutation: Mutation<T>): Promise<T>;
}

export interface TombstoneExpiry {
  /** Tombstones dropped. */
  expired: number;
  /** Mailboxes whose floor rose. */
  mailboxes: number;
}

type Mark = [ms: number, modseq: number];

/**
 * Drops the tombstones older than `retentionMs` (at `now`), raising their mailboxes' floors. Writes
 * a new mark first when the newest is older than a sixteenth of the retention, so the marks are a
 * handful and the expiry lags the retention by at most that much.
 */
export async function expireTombstones(host: TombstoneExpiryHost, retentionMs = limits.tombstoneRetentionMs, now = Date.now()): Promise<TombstoneExpiry> {
  expiredAt.set(host, now);
  const marks = await noteMark(host, retentionMs, now);
  const due = marks.filter(([ms]) => ms <= now - retentionMs).at(-1);
  const result: TombstoneExpiry = { expired: 0, mailboxes: 0 };
  if (!due) return result;
  const ids: Buffer[] = [];
  for await (const [, box] of host.index.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) if (!box.deleting) ids.push(Buffer.from(box.id));
  const before = scannedBelow.get(host);
  const scanned = new Map<string, number>();
  for (const id of ids) {
    const from = before?.get(id.toString('hex')) ?? 0;
    const expired = from > due[1] ? 0 : await expireMailbox(host, id, from, due[1]);
    if (expired >= 0) scanned.set(id.toString('hex'), Math.max(from, due[1] + 1));
    result.expired += Math.max(expired, 0);
    if (expired > 0) result.mailboxes++;
  }
  scannedBelow.set(host, scanned);
  return result;
}

/**
 * Per store (host) and mailbox: below this modseq no tombstone is left, as a pass of this process
 * dropped them all, and none is given there again (modseqs only grow). A pass scans from it, so
 * the hourly expiry does not read every live message's change entry again; the first pass of a
 * process scans from 0 (tombstones below a floor a lossy replay raised go too).
 */
const scannedBelow = new WeakMap<TombstoneExpiryHost, Map<string, number>>();

/** When each store's (its host's) tombstones were last expired, ms: the background looks at most every tombstoneExpiryIntervalMs. */
const expiredAt = new WeakMap<TombstoneExpiryHost, number>();

/** The background compactor's expiry: when the last one is tombstoneExpiryIntervalMs (or the retention, when shorter) ago. */
export async function expireWhenDue(host: TombstoneExpiryHost, retentionMs = limits.tombstoneRetentionMs, clockTrusted: () => Promise<boolean> = async () => true): Promise<void> {
  if (Date.now() - (expiredAt.get(host) ?? 0) < Math.min(limits.tombstoneExpiryIntervalMs, retentionMs)) return;
  if (!(await clockTrusted())) return; // asked only when due: the store's look at the clock writes its reference
  await expireTombstones(host, retentionMs);
}

/** The marks after this pass: one more [now, the highest modseq given] when due, those no expiry needs any more left out. */
async function noteMark(host: TombstoneExpiryHost, retentionMs: number, now: number): Promise<Mark[]> {
  const kept = (await host.index.readNow(() => host.index.getNow<Mark[]>(keys.meta(TOMBSTONE_MARKS_NAME))) ?? []).filter(isMark);
  const newest = kept.at(-1);
  if (newest && now - newest[0] < retentionMs / limits.tombstoneMarksPerRetention && newest[0] <= now) return kept;
  return host.mutate({
    prepare: async ({ view, seq }) => {
      const marks: Mark[] = [...kept.filter(([ms]) => ms <= now), [now, modseqAt(view, seq) - 1]];
      // the newest mark a retention old is the one the expiry uses: every one before it is spent
      const spent = marks.filter(([ms]) => ms <= now - retentionMs).length - 1;
      const value = spent > 0 ? marks.slice(spent) : marks;
      return { ops: [{ op: 'meta.set', key: TOMBSTONE_MARKS_NAME, value } as Op], result: value };
    },
  });
}

function isMark(mark: unknown): mark is Mark {
  return Array.isArray(mark) && mark.length === 2 && Number.isSafeInteger(mark[0]) && Number.isSafeInteger(mark[1]);
}

/** One mailbox's tombstones from modseq `from` up to `upTo`, dropped in records of at most tombstonesPerRecord: how many (-1: the mailbox went meanwhile). */
async function expireMailbox(host: TombstoneExpiryHost, id: Buffer, from: number, upTo: number): Promise<number> {
  let expired = 0;
  for (;;) {
    await host.index.settle(); // the scan below sees the tombstones the last record dropped gone
    const entries: [number, number][] = [];
    // a live message's entry (0) stays: it says the message changed, and it moves with its next change
    for await (const [key, value] of host.index.entries<ChangeRecord>({ gte: keys.changeFrom(id, from), lt: keys.changeFrom(id, upTo + 1) })) {
      if (value !== 1) continue;
      const change = decodeChangeKey(key);
      entries.push([change.modseq, change.uid]);
      if (entries.length >= limits.tombstonesPerRecord) break;
    }
    if (entries.length === 0) return expired;
    const floor = Math.max(...entries.map(([modseq]) => modseq));
    const done = await host.mutate({
      prepare: async ({ view }) => {
        const box = await view.get<MailboxInfo>(keys.info(id));
        if (!box || box.deleting) return { ops: [], result: false }; // deleted meanwhile: its tombstones go with it
        return { ops: [{ op: 'change.floor', id, floor, entries }], result: true };
      },
    });
    if (!done) return -1;
    expired += entries.length;
    from = floor; // every tombstone below went in this record
  }
}
