// Where XFER sent a user: the source keeps a marker (meta moved/NAME -> {to, at}), so mail for the
// user's tree is refused as MOVED, naming the new host (temporary for limits.xferMovedTempfailMs,
// then permanent), instead of "no such mailbox", which an MTA bounces before its routing changes.
// Written with the XFER's switch record; cleared by apply when the user's tree exists here again.
import { MailstoreError } from '../errors.js';
import { keys } from '../keys/index-keys.js';
import { decodeString } from '../keys/tuple.js';
import type { IndexDb, IndexView } from '../index/index-db.js';
import { limits } from '../limits.js';
import type { Op } from './records.js';
import { parseMailboxName } from './validate.js';
import { monotonicMs } from '../monotonic.js';

const PREFIX = 'moved/';

export interface MovedMarker {
  to: string;
  /** When the XFER switched (ms since the epoch). */
  at: number;
}

export interface MovedUser extends MovedMarker {
  user: string;
}

export const movedName = (user: string) => `${PREFIX}${user}`;

/** The op that sets (or with `marker` null, removes) the marker of `user`. */
export function movedOp(user: string, marker: MovedMarker | null): Op {
  return { op: 'meta.set', key: movedName(user), value: marker } as Op;
}

/** The user whose tree a mailbox name (as components) is in: user/NAME and below. */
export function userOf(name: readonly string[]): string | undefined {
  return name.length >= 2 && name[0] === 'user' ? name[1] : undefined;
}

/** Apply of a create or rename to `name`: the user exists here again, so its mail is no longer refused. */
export function clearMovedAt(view: IndexView, name: readonly string[]): void {
  const user = userOf(name);
  if (user === undefined) return;
  const key = keys.meta(movedName(user));
  if (view.getNow(key) !== undefined) view.del(key);
}

/** When this process first saw each mark, on its monotonic clock (monotonicMs()): by index, then mark. */
const firstSeen = new WeakMap<object, Map<string, number>>();

/** How long this process has seen `marker` (ms, monotonic: a step of the wall clock does not move it). */
function seenForMs(db: object, user: string, marker: MovedMarker, monotonicNow: number): number {
  let seen = firstSeen.get(db);
  if (!seen) firstSeen.set(db, (seen = new Map()));
  const key = `${user}\0${marker.to}\0${marker.at}`; // a new XFER's mark is seen anew
  const first = seen.get(key);
  if (first === undefined) seen.set(key, monotonicNow);
  return first === undefined ? 0 : monotonicNow - first;
}

/**
 * MOVED for a mailbox that is not here because its user was moved away; undefined otherwise.
 * Permanent only once the window has passed by the wall clock and this process has seen the mark
 * for as long: a wall clock stepped forward (a bad NTP server, a VM resumed from a suspend image)
 * bounced mail in flight for good. A wall clock stepped back holds the 4xx at most twice the
 * window of this process's time. A restart counts anew (the MTA bounces at its own queue lifetime).
 */
export function movedError(db: Pick<IndexDb, 'getNow'>, mailbox: string, now = Date.now(), monotonicNow = monotonicMs()): MailstoreError | undefined {
  let user: string | undefined;
  try { user = userOf(parseMailboxName(mailbox)); } catch { return undefined; }
  const marker = user === undefined ? undefined : db.getNow<MovedMarker>(keys.meta(movedName(user)));
  if (!marker || user === undefined) return undefined;
  const windowMs = limits.xferMovedTempfailMs;
  const seenMs = seenForMs(db, user, marker, monotonicNow);
  const permanent = seenMs > windowMs && (now - marker.at > windowMs || seenMs > 2 * windowMs);
  const message = permanent ? `user ${user} moved to ${marker.to}` : `user ${user} moved to ${marker.to} by xfer; route its mail there`;
  return new MailstoreError('MOVED', message, { path: mailbox, moved: { user, to: marker.to, permanent } });
}

/** Runs `work` on `mailbox`; a NOT_FOUND for a moved user's mailbox becomes MOVED. */
export async function orMoved<T>(db: Pick<IndexDb, 'getNow' | 'readNow' | 'entries'>, mailbox: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof MailstoreError && error.code === 'NOT_FOUND' && error.path === mailbox)) throw error;
    const moved = await db.readNow(() => movedError(db, mailbox));
    throw moved && !(await userTreeHere(db, moved.moved!.user)) ? moved : error;
  }
}

/**
 * Whether a mailbox of `user`'s tree is here. A mark beside one is stale: a mailstore before
 * session 36 (a replica of one, promoted; the store opened by one after a downgrade) applies the
 * mark and the user's new mailboxes without clearing it, and after the upgrade a mistyped mailbox
 * of the user was MOVED, mail waiting for a host the user had left.
 */
async function userTreeHere(db: Pick<IndexDb, 'entries'>, user: string): Promise<boolean> {
  for await (const _ of db.entries({ prefix: keys.name(['user', user]), limit: 1 })) return true;
  return false;
}

/** Every moved user's marker, by user name (not one whose tree is here again: userTreeHere). */
export async function movedUsers(db: IndexDb): Promise<MovedUser[]> {
  const found: MovedUser[] = [];
  for await (const [key, value] of db.entries<MovedMarker>({ prefix: keys.meta(PREFIX).subarray(0, -1) })) {
    const user = decodeString(key, 1).value.slice(PREFIX.length);
    if (!(await userTreeHere(db, user))) found.push({ user, to: value.to, at: value.at });
  }
  return found;
}
