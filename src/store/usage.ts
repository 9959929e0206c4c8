// Per-user usage (doveadm quota get, cyr_quota): messages and bytes from the mailboxes' running
// counters, unique bytes from the distinct blobs the user's messages refer to (what deleting the
// user could free at most, dedup across users aside), and the user's quota when one is set.
import { keys, decodeNameKey } from '../keys/index-keys.js';
import { hashHex } from '../hash/blake3.js';
import type { MailboxInfo, MessageRecord } from './records.js';
import { getQuota, type QuotaLimits } from './quota.js';
import type { Store } from './store.js';
import { normalizeIdentifier } from './validate.js';

export interface UserUsage {
  user: string;
  mailboxes: number;
  messages: number;
  bytes: number;
  /** Bytes of the distinct message bodies (a message stored twice counts once). */
  uniqueBytes: number;
  /** The quota of user/NAME, when set. */
  quota?: QuotaLimits;
}

/** Usage of every user (a user is NAME in user/NAME/...), or of one. */
export async function usage(store: Store, options: { user?: string } = {}): Promise<UserUsage[]> {
  const only = options.user === undefined ? undefined : normalizeIdentifier(options.user);
  const byUser = new Map<string, { ids: Buffer[] }>();
  const prefix = only === undefined ? ['user'] : ['user', only];
  for await (const [key, id] of store.administration().index.entries<Buffer>({ prefix: keys.name(prefix) })) {
    const name = decodeNameKey(key);
    if (name.length < 2) continue;
    const entry = byUser.get(name[1]) ?? { ids: [] };
    entry.ids.push(Buffer.from(id));
    byUser.set(name[1], entry);
  }
  if (only !== undefined && !byUser.has(only)) byUser.set(only, { ids: [] });
  const out: UserUsage[] = [];
  for (const [user, { ids }] of byUser) out.push(await usageOf(store, user, ids));
  return out;
}

async function usageOf(store: Store, user: string, ids: Buffer[]): Promise<UserUsage> {
  let messages = 0, bytes = 0, uniqueBytes = 0, mailboxes = 0;
  const seen = new Set<string>();
  for (const id of ids) {
    const index = store.administration().index;
    const box = await index.readNow(() => index.getNow<MailboxInfo>(keys.info(id))); // not in an index reopen
    if (!box || box.deleting) continue;
    mailboxes++;
    messages += box.messages;
    bytes += box.bytes;
    for await (const [, record] of store.administration().index.entries<MessageRecord>({ prefix: keys.messagePrefix(id) })) {
      const hash = hashHex(record.h);
      if (seen.has(hash)) continue;
      seen.add(hash);
      uniqueBytes += record.s;
    }
  }
  const result: UserUsage = { user, mailboxes, messages, bytes, uniqueBytes };
  const quota = await getQuota(store, `user/${user}`);
  if (quota.storage !== undefined || quota.messages !== undefined) {
    result.quota = {};
    if (quota.storage !== undefined) result.quota.storage = quota.storage;
    if (quota.messages !== undefined) result.quota.messages = quota.messages;
  }
  return result;
}
