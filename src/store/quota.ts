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
import { SEPARATOR, formatMailboxName, isAtOrBelow, parseMailboxName } from './validate.js';

/** A root's limits; an absent field is unlimited. */
export interface QuotaLimits {
  storage?: number;
  messages?: number;
}

export interface QuotaReport extends QuotaLimits {
  root: string;
  /** getQuota with `nearest`: the mailbox asked about, when `root` is the nearer root above it that limits it. */
  mailbox?: string;
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
  const op = quotaSetOp(root, limits);
  await store.administration().mutate({ prepare: async () => ({ ops: [op], result: undefined }) });
}

/** One change to a root's limits: a number sets that limit, null removes it, absent keeps it. */
export interface QuotaChange {
  storage?: number | null;
  messages?: number | null;
}

/**
 * Changes some limits of `root` and keeps the others (`quota set --storage` alone). The limits it
 * keeps are read in the change's own commit: two admins setting one limit each both hold, where a
 * read before a setQuota of both lost the change committed in between.
 */
export async function changeQuota(store: Store, root: string, change: QuotaChange): Promise<void> {
  const components = parseMailboxName(root);
  if (typeof change !== 'object' || change === null) throw new MailstoreError('INVALID', `quota change of ${String(root)} must be an object`);
  const given = (name: keyof QuotaChange) => (change[name] === null ? undefined : change[name]);
  checkLimit('storage', given('storage'));
  checkLimit('messages', given('messages'));
  await store.administration().mutate({
    prepare: async ({ view }) => {
      const had = (await view.get<QuotaLimits>(quotaKey(components))) ?? {};
      const pick = (name: keyof QuotaChange) => (change[name] === undefined ? had[name] : given(name));
      return { ops: [quotaSetOp(root, { storage: pick('storage'), messages: pick('messages') })], result: undefined };
    },
  });
}

/**
 * The limits and current usage of `root` (limits absent when none is set). With `nearest`
 * (`quota get`, IMAP's GETQUOTAROOT): when `root` has no quota of its own, the nearest root above
 * it that has one, which is what limits it (`mailbox` then names the one asked about).
 */
export async function getQuota(store: Store, root: string, options: { nearest?: boolean } = {}): Promise<QuotaReport> {
  const asked = parseMailboxName(root);
  const index = store.administration().index;
  const { components, limits } = await index.readNow(() => { // synchronous reads: not in an index reopen
    const nearest = options.nearest ? quotaRoot(index, asked) : undefined;
    const root = nearest?.root ?? asked;
    return { components: root, limits: nearest?.limits ?? index.getNow<QuotaLimits>(quotaKey(root)) ?? {} };
  });
  const used = await usageBelow(index, undefined, components);
  return {
    root: formatMailboxName(components), ...limits, usedBytes: used.bytes, usedMessages: used.messages,
    ...(components.length < asked.length ? { mailbox: formatMailboxName(asked) } : {}),
  };
}

/** The op that sets the limits of `root` (null: removes its quota). */
function quotaOp(root: readonly string[], limits: QuotaLimits | null): Op {
  return { op: 'meta.set', key: QUOTA_META_PREFIX + formatMailboxName(root), value: limits };
}

/** The roots whose names start with `namePrefix` (a string prefix, not a hierarchy one), with their limits. */
async function quotasStartingWith(index: AdminIndexReader, namePrefix: string): Promise<{ root: string; limits: QuotaLimits }[]> {
  const out: { root: string; limits: QuotaLimits }[] = [];
  const base = keys.meta(QUOTA_META_PREFIX).subarray(0, -1); // the string's terminator is not part of the prefix
  const prefix = keys.meta(QUOTA_META_PREFIX + namePrefix).subarray(0, -1);
  for await (const [key, limits] of index.entries<QuotaLimits>({ prefix })) {
    const name = key.subarray(base.length).toString('utf8').replace(/\0$/, '');
    out.push({ root: name, limits });
  }
  return out;
}

/** Every root that has a quota, with its limits. */
export async function listQuotas(store: Store): Promise<{ root: string; limits: QuotaLimits }[]> {
  return quotasStartingWith(store.administration().index, '');
}

/**
 * The ops that move the quota roots at or below `from` (a user's tree) to the same names below
 * `to` (`to` undefined: removes them), as Cyrus does for a user renamed or deleted: the limits go
 * with the tree instead of staying behind for the next user of the old name. Committed state:
 * the caller holds the writer exclusively.
 */
export async function moveQuotaRoots(index: AdminIndexReader, from: readonly string[], to: readonly string[] | undefined): Promise<Op[]> {
  const ops: Op[] = [];
  for (const { root, limits } of await quotaRootsAt(index, from)) {
    ops.push(quotaOp(root, null));
    if (to) ops.push(quotaOp([...to, ...root.slice(from.length)], limits));
  }
  return ops;
}

/** The quota roots at or below `tree` (a user's: what goes with the user), with their limits. */
export async function quotaRootsAt(index: AdminIndexReader, tree: readonly string[]): Promise<{ root: string[]; limits: QuotaLimits }[]> {
  const name = formatMailboxName(tree);
  return (await quotasStartingWith(index, name))
    .filter(({ root }) => root === name || root.startsWith(name + SEPARATOR)) // user/bobby is not below user/bob
    .map(({ root, limits }) => ({ root: parseMailboxName(root), limits }));
}

/** `root`'s limits as committed (undefined: no quota there). */
export function quotaLimitsNow(db: Pick<IndexView, 'getNow'>, root: unknown): QuotaLimits | undefined {
  return db.getNow<QuotaLimits>(quotaKey(parseMailboxName(root)));
}

/** The op that sets `root`'s limits (both absent: removes its quota), checked: setQuota's, and an XFER's from another store. */
export function quotaSetOp(root: unknown, limits: unknown): Op {
  const components = parseMailboxName(root);
  if (typeof limits !== 'object' || limits === null) throw new MailstoreError('INVALID', `quota limits of ${String(root)} must be an object`);
  const { storage, messages } = limits as QuotaLimits;
  checkLimit('storage', storage);
  checkLimit('messages', messages);
  const value: QuotaLimits = {};
  if (storage !== undefined) value.storage = storage;
  if (messages !== undefined) value.messages = messages;
  return quotaOp(components, storage === undefined && messages === undefined ? null : value);
}

/** The nearest root at or above `name` that has a quota. */
function quotaRoot(view: Pick<IndexView, 'getNow'>, name: readonly string[]): { root: string[]; limits: QuotaLimits } | undefined {
  for (let depth = name.length; depth >= 1; depth--) {
    const root = name.slice(0, depth);
    const limits = view.getNow<QuotaLimits>(quotaKey(root));
    if (limits) return { root, limits };
  }
  return undefined;
}

/**
 * Messages and bytes of the mailboxes that count against `root`, as the batch being prepared sees
 * them: those at or below it but for those below a nested root, which count against that one (a
 * mailbox counts against its nearest root, as in Cyrus). Names as the batch sees them; nested
 * roots as committed (a root set in the same batch is seen from the next one on).
 */
async function usageBelow(db: AdminIndexReader, view: IndexView | undefined, root: readonly string[]): Promise<{ messages: number; bytes: number }> {
  const read = <T>(key: Buffer): T | undefined => (view ? view.getNow<T>(key) : db.getNow<T>(key));
  // synchronous reads through readNow (not in an index reopen; a prepare holds the Writer: no wait)
  const roots = await quotasStartingWith(db, formatMailboxName(root) + SEPARATOR);
  const nested = new Set(await db.readNow(() => roots
    .map(({ root: name }) => parseMailboxName(name))
    .filter((name) => read(quotaKey(name)) !== undefined) // removed in this batch: counts against `root` again
    .map(formatMailboxName)));
  let messages = 0, bytes = 0;
  const count = (name: Buffer, id: Uint8Array) => {
    if (nested.size > 0 && belowNested(decodeNameKey(name), root.length, nested)) return;
    const box = read<MailboxInfo>(keys.info(Buffer.from(id)));
    if (!box || box.deleting) return;
    messages += box.messages;
    bytes += box.bytes;
  };
  // a mailbox created earlier in this batch is in no committed range yet, and an append to it in
  // the same batch counted for nothing: concurrent deliveries took a root past its limit
  const pending = new Set(view?.pendingKeys(keys.name(root)));
  for await (const [name, id] of db.entries<Buffer>({ prefix: keys.name(root) })) {
    if (pending.has(name.toString('latin1'))) continue;
    if (db.whenOpen()) await db.readNow(() => count(name, id));
    else count(name, id);
  }
  for (const name of pending) {
    const key = Buffer.from(name, 'latin1');
    const id = read<Buffer>(key);
    if (id) count(key, id);
  }
  return { messages, bytes };
}


/**
 * Whether a name below a root (`rootDepth` components) is at or below one of the `nested` roots
 * (formatted names): its own ancestors looked up, not every nested root tried against it (a
 * delivery under a root over 8000 users with their own roots took 47 s: mailboxes x roots).
 */
function belowNested(name: readonly string[], rootDepth: number, nested: ReadonlySet<string>): boolean {
  for (let depth = rootDepth + 1; depth <= name.length; depth++) if (nested.has(formatMailboxName(name.slice(0, depth)))) return true;
  return false;
}

/**
 * Refuses (OVER_QUOTA) a rename of the tree `source` (`moved`: each mailbox's old name, new name and
 * counters) that would take a root they come into over a limit, as Cyrus checks a rename. A mailbox
 * whose nearest root stays the same (a rename inside a root) adds nothing: it is in that root's
 * usage already; nor does one whose nearest root is inside the tree, which moves with it
 * (moveQuotaRoots, the same record).
 */
export async function checkRenameQuota(db: AdminIndexReader, view: IndexView, source: readonly string[], moved: { from: readonly string[]; to: readonly string[]; box: MailboxInfo }[]): Promise<void> {
  const entering = new Map<string, { name: readonly string[]; bytes: number; messages: number }>();
  for (const { from, to, box } of moved) {
    const before = quotaRoot(view, from);
    if (before && isAtOrBelow(before.root, source)) continue; // its root goes with it
    const found = quotaRoot(view, to);
    if (!found) continue;
    const root = formatMailboxName(found.root);
    if (before && formatMailboxName(before.root) === root) continue; // counted against that root already
    const sum = entering.get(root) ?? { name: to, bytes: 0, messages: 0 };
    sum.bytes += box.bytes;
    sum.messages += box.messages;
    entering.set(root, sum);
  }
  for (const { name, bytes, messages } of entering.values()) await checkQuota(db, view, name, bytes, messages);
}

/**
 * Refuses (OVER_QUOTA) adding `bytes` in `count` messages to mailbox `name` when its root would go
 * over a limit. A move inside one root changes nothing and is not checked (`movedFrom`).
 */
export function checkQuota(db: AdminIndexReader, view: IndexView, name: readonly string[], bytes: number, count: number, movedFrom?: readonly string[]): Promise<void> | undefined {
  if (count === 0) return undefined;
  const found = quotaRoot(view, name);
  // no root above (a delivery's common case): nothing to wait for, so a caller need not await
  return found && checkQuotaAt(db, view, name, found, bytes, count, movedFrom);
}

async function checkQuotaAt(db: AdminIndexReader, view: IndexView, name: readonly string[], found: { root: string[]; limits: QuotaLimits }, bytes: number, count: number, movedFrom?: readonly string[]): Promise<void> {
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
