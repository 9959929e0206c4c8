// Storage and message quotas per quota root, as in Cyrus: a root is a mailbox name prefix
// (normally user/NAME) and covers every mailbox at or below it; a mailbox counts against its
// nearest root. Limits are journaled as a meta.set op, so replay and rebuild keep them, and usage
// is summed from the mailboxes' running counters (MailboxInfo.messages and .bytes), never cached.
import { MailstoreError } from '../errors.js';
import type { IndexView } from '../index/index-db.js';
import type { AdminIndexReader } from './administration.js';
import { decodeNameKey, keys } from '../keys/index-keys.js';
import type { MailboxInfo, Op } from './records.js';
import type { Store } from './store.js';
import { formatMailboxName, parseMailboxName } from './validate.js';

/** A root's limits; an absent field is unlimited. */
export interface QuotaLimits {
  storage?: number;
  messages?: number;
}

export interface QuotaReport extends QuotaLimits {
  root: string;
  usedBytes: number;
  usedMessages: number;
}

const QUOTA_META_PREFIX = 'quota/';

function quotaKey(root: readonly string[]): Buffer {
  return keys.meta(QUOTA_META_PREFIX + formatMailboxName(root));
}

function checkLimit(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    throw new MailstoreError('INVALID', `quota ${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
}

/** Sets (or with both limits absent, removes) the quota of `root`; journaled like any other change. */
export async function setQuota(store: Store, root: string, limits: QuotaLimits): Promise<void> {
  const components = parseMailboxName(root);
  checkLimit('storage', limits.storage);
  checkLimit('messages', limits.messages);
  const value: QuotaLimits = {};
  if (limits.storage !== undefined) value.storage = limits.storage;
  if (limits.messages !== undefined) value.messages = limits.messages;
  const empty = value.storage === undefined && value.messages === undefined;
  await store.administration().mutate({
    prepare: async () => ({
      ops: [{ op: 'meta.set', key: QUOTA_META_PREFIX + formatMailboxName(components), value: empty ? null : value } as Op],
      result: undefined,
    }),
  });
}

/** The limits and current usage of `root` (limits absent when none is set). */
export async function getQuota(store: Store, root: string): Promise<QuotaReport> {
  const components = parseMailboxName(root);
  const limits = store.administration().index.getNow<QuotaLimits>(quotaKey(components)) ?? {};
  const used = await usageBelow(store.administration().index, undefined, components);
  return { root: formatMailboxName(components), ...limits, usedBytes: used.bytes, usedMessages: used.messages };
}

/** Every root that has a quota, with its limits. */
export async function listQuotas(store: Store): Promise<{ root: string; limits: QuotaLimits }[]> {
  const out: { root: string; limits: QuotaLimits }[] = [];
  for await (const entry of quotaEntries(store.administration().index)) out.push(entry);
  return out;
}

async function* quotaEntries(db: Pick<AdminIndexReader, 'entries'>): AsyncGenerator<{ root: string; limits: QuotaLimits }> {
  const prefix = keys.meta(QUOTA_META_PREFIX).subarray(0, -1); // the string's terminator is not part of the prefix
  for await (const [key, limits] of db.entries<QuotaLimits>({ prefix })) {
    yield { root: key.subarray(prefix.length).toString('utf8').replace(/\0$/, ''), limits };
  }
}

/**
 * The ops that move the quota roots at or below `source` to the same place below `target` (a
 * rename of that tree: user rename, a mailbox rename), or without a target remove them (the tree
 * deleted: user delete, mailbox delete --recursive). A root is a name: left behind, it no longer
 * covered the renamed mailboxes, and a new tree of the old name took it over.
 */
export async function quotaRootMoves(db: Pick<AdminIndexReader, 'entries'>, source: readonly string[], target?: readonly string[]): Promise<Op[]> {
  const ops: Op[] = [];
  for await (const { root, limits } of quotaEntries(db)) {
    const components = parseMailboxName(root);
    if (components.length < source.length || !source.every((c, i) => c === components[i])) continue;
    ops.push({ op: 'meta.set', key: QUOTA_META_PREFIX + root, value: null });
    if (target) ops.push({ op: 'meta.set', key: QUOTA_META_PREFIX + formatMailboxName([...target, ...components.slice(source.length)]), value: limits });
  }
  return ops;
}

/** The nearest root at or above `name` that has a quota. */
function quotaRoot(view: IndexView, name: readonly string[]): { root: string[]; limits: QuotaLimits } | undefined {
  for (let depth = name.length; depth >= 1; depth--) {
    const root = name.slice(0, depth);
    const limits = view.getNow<QuotaLimits>(quotaKey(root));
    if (limits) return { root, limits };
  }
  return undefined;
}

/** Whether a root with a quota lies between `name` (inclusive) and its ancestor of `rootDepth` components. */
function hasNearerRoot(view: Pick<IndexView, 'getNow'>, name: readonly string[], rootDepth: number): boolean {
  for (let depth = name.length; depth > rootDepth; depth--) if (view.getNow(quotaKey(name.slice(0, depth)))) return true;
  return false;
}

/**
 * Messages and bytes of the mailboxes at or below `root` that count against it, as the batch being
 * prepared sees them: not those below a nearer root of their own (user/alice with its own quota is
 * not counted again in user's, whose mailboxes were refused mail for what alice held).
 */
async function usageBelow(db: AdminIndexReader, view: IndexView | undefined, root: readonly string[]): Promise<{ messages: number; bytes: number }> {
  let messages = 0, bytes = 0;
  const reader = view ?? db;
  for await (const [nameKey, id] of db.entries<Buffer>({ prefix: keys.name(root) })) {
    const box = reader.getNow<MailboxInfo>(keys.info(Buffer.from(id)));
    if (!box || box.deleting) continue;
    if (hasNearerRoot(reader, decodeNameKey(nameKey), root.length)) continue;
    messages += box.messages;
    bytes += box.bytes;
  }
  return { messages, bytes };
}

/**
 * Refuses (OVER_QUOTA) adding `bytes` in `count` messages to mailbox `name` when its root would go
 * over a limit. A move inside one root changes nothing and is not checked (`movedFrom`).
 */
export async function checkQuota(db: AdminIndexReader, view: IndexView, name: readonly string[], bytes: number, count: number, movedFrom?: readonly string[]): Promise<void> {
  if (count === 0) return;
  const found = quotaRoot(view, name);
  if (!found) return;
  if (movedFrom) {
    const from = quotaRoot(view, movedFrom);
    if (from && formatMailboxName(from.root) === formatMailboxName(found.root)) return;
  }
  const used = await usageBelow(db, view, found.root);
  const root = formatMailboxName(found.root);
  const { storage, messages } = found.limits;
  if (storage !== undefined && used.bytes + bytes > storage) {
    throw new MailstoreError('OVER_QUOTA', `${root} would use ${used.bytes + bytes} bytes, over its storage quota of ${storage}; nothing was stored`, { path: formatMailboxName(name) });
  }
  if (messages !== undefined && used.messages + count > messages) {
    throw new MailstoreError('OVER_QUOTA', `${root} would hold ${used.messages + count} messages, over its message quota of ${messages}; nothing was stored`, { path: formatMailboxName(name) });
  }
}
