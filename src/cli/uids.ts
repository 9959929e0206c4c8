// UID set arguments (`1:5,9,12:*`) turned into the UIDs a mailbox actually holds. `*` is the
// largest UID in use (RFC 9051), and ranges are clipped to it, so `1:4294967295` costs nothing;
// over a sparse mailbox the UIDs are read, never counted out one number at a time.
import { UID_MAX, parseUidSet } from '../formats/uidset.js';
import type { MailStore } from '../store/api.js';
import type { MessageInfo } from '../store/types.js';
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
  let numbers = 0;
  for (const range of set.ranges) numbers += Math.max(0, Math.min(range.end, largest) - range.start + 1);
  const uids: number[] = [];
  // A sparse mailbox (uids far apart, after an XFER or up to 4294967295): the uids it holds, read,
  // not every number up to the largest (`1:*` over uids 1 and 4294967295 was 4 billion of them).
  if (numbers > (await store.status(mailbox)).messages + limits.uidSetChunkMessages) {
    for await (const info of messagesInSet(store, mailbox, text)) uids.push(info.uid);
    return uids;
  }
  for (const range of set.ranges) {
    for (let uid = range.start; uid <= Math.min(range.end, largest); uid++) uids.push(uid);
  }
  return uids;
}

/**
 * The messages of `mailbox` in the UID set `text`, in UID order: each range read from its first
 * UID and left at its last, not the whole mailbox filtered (`messages INBOX 999990:*` over a
 * 1M-message mailbox read every record: 6 s).
 */
export async function* messagesInSet(store: MailStore, mailbox: string, text: string): AsyncGenerator<MessageInfo> {
  parseUidSet(text, { largestUid: UID_MAX }); // bad syntax is INVALID before the mailbox is looked up
  const largest = await largestUid(store, mailbox);
  for (const range of parseUidSet(text, { largestUid: largest }).ranges) {
    if (range.start > largest) return;
    for await (const info of store.messages(mailbox, { fromUid: range.start })) {
      if (info.uid > range.end) break;
      yield info;
    }
  }
}

/**
 * `change` over `uids` in runs of at most limits.uidSetChunkMessages, one call (one journal record)
 * each, in order: memory stays bounded whatever the set, and a run that fails leaves the runs
 * before it done (the same command again does the rest: expunge and flags are idempotent).
 */
export async function inUidRuns<T>(uids: number[], change: (run: number[]) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let at = 0; at < uids.length; at += limits.uidSetChunkMessages) results.push(await change(uids.slice(at, at + limits.uidSetChunkMessages)));
  return results;
}
