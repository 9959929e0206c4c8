// UID set arguments (`1:5,9,12:*`) turned into the UIDs a mailbox actually holds. `*` is the
// largest UID in use (RFC 9051), and ranges are clipped to it, so `1:4294967295` costs nothing.
import { UID_MAX, parseUidSet } from '../formats/uidset.js';
import type { MailStore } from '../store/api.js';
import { limits } from '../limits.js';

export async function largestUid(store: MailStore, mailbox: string): Promise<number> {
  const { uidNext, messages } = await store.status(mailbox);
  if (messages === 0) return 0;
  for (const fromUid of [Math.max(1, uidNext - limits.largestUidProbeUids), 1]) {
    let last = 0;
    for await (const message of store.messages(mailbox, { fromUid })) last = message.uid;
    if (last > 0) return last;
  }
  return 0;
}

/** The UIDs of `text` that can exist in `mailbox` (those above its largest UID cannot). */
export async function resolveUidSet(store: MailStore, mailbox: string, text: string): Promise<number[]> {
  parseUidSet(text, { largestUid: UID_MAX }); // bad syntax is INVALID before the mailbox is looked up
  const largest = await largestUid(store, mailbox);
  const set = parseUidSet(text, { largestUid: largest });
  const uids: number[] = [];
  for (const range of set.ranges) {
    for (let uid = range.start; uid <= Math.min(range.end, largest); uid++) uids.push(uid);
  }
  return uids;
}
