// A QRESYNC client's resync as an IMAP server does it from a changesSince answer (RFC 7162): the
// vanished uids, and below the mailbox's vanished floor each cached uid in a vanished range
// (VANISHED (EARLIER) narrowed to the client's known uids), go; changed messages come or change.
import type { Changes } from '../../src/store/types.js';

/** The cached uids a changesSince answer says are gone. */
export function vanishedOf(cached: Iterable<number>, changes: Changes): number[] {
  const gone = new Set(changes.vanished);
  const inRange = (uid: number) => (changes.vanishedRanges ?? []).some(([first, last]) => uid >= first && uid <= last);
  return [...cached].filter((uid) => gone.has(uid) || inRange(uid));
}

/** A client's cache (uid -> anything) resynced by one changesSince answer; `entry` makes a changed message's. */
export function resync<T>(cache: Map<number, T>, changes: Changes, entry: (info: Changes['changed'][number]) => T): void {
  for (const uid of vanishedOf(cache.keys(), changes)) cache.delete(uid);
  for (const info of changes.changed) cache.set(info.uid, entry(info));
}
