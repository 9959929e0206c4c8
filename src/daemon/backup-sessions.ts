// An incremental backup through the daemon (docs/BACKUP.md, "Through the daemon"): the store's
// changes since an earlier seq (Store.maintenance().stateSince: one LevelDB snapshot and what the
// journal says changed) are read over the socket in a session, so a backup of a store the daemon
// serves costs what changed, as a direct one does, instead of a read of the whole state each run.
// `open` takes the snapshot and answers with what the journal said; `read` runs one of the
// snapshot's range or many-key reads; `close` lets it go. A session is closed, too, after
// daemonLimits.backupSessionIdleMs without a call, when the connection that opened it closes (a
// backup that was killed), and when the store closes; a call on a closed one is NOT_FOUND, and the
// backup then fails, leaving its repository as any interrupted run does.
import { MailstoreError } from '../errors.js';
import { daemonLimits } from '../limits.js';
import type { StateSince } from '../store/state-since.js';
import type { Store } from '../store/store.js';

/**
 * What `open` lists: the head first, then the journal's part in pieces (each a frame of its own:
 * a day's new blobs or a big mailbox's uids can be far more than one frame may hold,
 * daemonLimits.frameBytesMax), which the client puts together.
 */
export type SessionPart =
  | { head: { session: number; appliedSeq: number; afterDigest?: string; appliedDigest?: string; freshBytes: number; meta: StateSince['meta'] } }
  | { mailboxes: StateSince['mailboxes'] }
  /** Per mailbox id (hex): uids touched, those gone, change-log entries named (a mailbox may come in several parts). */
  | { touched: [key: string, uids: number[], gone: number[], entries: [number, number][]] }
  | { fresh: StateSince['fresh'] };

/** What `read` lists: the result's entries in pieces (`mailbox`: its messages, then its change-log entries). */
export type ReadPart = { items: unknown[] } | { messages: unknown[] } | { changes: unknown[] };

export type SessionRead = 'changesAfter' | 'messages' | 'changes' | 'mailbox';

interface Session { store: Store; since: StateSince; timer?: NodeJS.Timeout }

const sessions = new Map<number, Session>();
let nextSession = 1;

export async function* openSession(store: Store, afterSeq: number): AsyncGenerator<SessionPart> {
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new MailstoreError('INVALID', `a backup session starts after a journal seq, got ${JSON.stringify(afterSeq)}`);
  const since = await store.maintenance().stateSince(afterSeq);
  const id = nextSession++;
  const session: Session = { store, since };
  sessions.set(id, session);
  touch(id, session);
  const per = daemonLimits.backupSessionPartEntries;
  yield { head: { session: id, appliedSeq: since.appliedSeq, ...(since.afterDigest ? { afterDigest: since.afterDigest } : {}), ...(since.appliedDigest ? { appliedDigest: since.appliedDigest } : {}), freshBytes: since.freshBytes, meta: since.meta } };
  for (let i = 0; i < since.mailboxes.length; i += per) yield { mailboxes: since.mailboxes.slice(i, i + per) };
  for (const [key, t] of since.touched) {
    const uids = [...t.uids], gone = [...t.gone];
    for (let i = 0; i === 0 || i < Math.max(uids.length, gone.length, t.entries.length); i += per) {
      yield { touched: [key, uids.slice(i, i + per), gone.slice(i, i + per), t.entries.slice(i, i + per)] };
    }
  }
  for (let i = 0; i < since.fresh.length; i += per) yield { fresh: since.fresh.slice(i, i + per) };
}

export async function* readSession(store: Store, id: number, method: SessionRead, args: unknown[]): AsyncGenerator<ReadPart> {
  const session = sessions.get(id);
  if (!session || session.store !== store) throw new MailstoreError('NOT_FOUND', `backup session ${id} is not open (closed, its connection closed, or idle for more than ${daemonLimits.backupSessionIdleMs / 1000} s)`);
  touch(id, session);
  const { since } = session;
  const box = () => asBuffer(args[0], 'mailbox id');
  const per = daemonLimits.backupSessionPartEntries;
  const pieces = function* <K extends string>(key: K, list: unknown[]): Generator<Record<K, unknown[]>> {
    for (let i = 0; i === 0 || i < list.length; i += per) yield { [key]: list.slice(i, i + per) } as Record<K, unknown[]>;
  };
  switch (method) {
    case 'changesAfter': yield* pieces('items', await since.changesAfter(box(), number(args[1], 'modseq'))); break;
    case 'messages': yield* pieces('items', await since.messages(box(), numbers(args[1], 'uids'))); break;
    case 'changes': yield* pieces('items', await since.changes(box(), pairs(args[1]))); break;
    case 'mailbox': {
      const whole = await since.mailbox(box());
      yield* pieces('messages', whole.messages);
      yield* pieces('changes', whole.changes);
      break;
    }
    default: throw new MailstoreError('INVALID', `a backup session has no read ${JSON.stringify(method)}`);
  }
  touch(id, session);
}

export async function closeSession(store: Store, id: number): Promise<void> {
  const session = sessions.get(id);
  if (!session || session.store !== store) return;
  await end(id, session);
}

/** Every session of `store` closed (the daemon stops: before the store closes). */
export async function closeSessions(store: Store): Promise<void> {
  await Promise.all([...sessions].filter(([, s]) => s.store === store).map(([id, s]) => end(id, s)));
}

/** Whether session `id` is still open (not closed, nor idle past backupSessionIdleMs). */
export function sessionOpen(id: number): boolean {
  return sessions.has(id);
}

/** How many sessions are open (tests). */
export function openSessions(): number {
  return sessions.size;
}

function touch(id: number, session: Session): void {
  clearTimeout(session.timer);
  session.timer = setTimeout(() => { void end(id, session); }, daemonLimits.backupSessionIdleMs);
  session.timer.unref();
}

async function end(id: number, session: Session): Promise<void> {
  if (sessions.get(id) !== session) return;
  sessions.delete(id);
  clearTimeout(session.timer);
  await session.since.close().catch(() => undefined); // a store closed meanwhile closed its snapshots
}

function asBuffer(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array)) throw new MailstoreError('INVALID', `a backup session read needs its ${what} as bytes`);
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function number(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new MailstoreError('INVALID', `a backup session read needs ${what} as a whole number`);
  return value;
}

function numbers(value: unknown, what: string): number[] {
  if (!Array.isArray(value)) throw new MailstoreError('INVALID', `a backup session read needs ${what} as a list`);
  return value.map((v) => number(v, what));
}

function pairs(value: unknown): [number, number][] {
  if (!Array.isArray(value)) throw new MailstoreError('INVALID', 'a backup session read needs its entries as a list');
  return value.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new MailstoreError('INVALID', 'a backup session read needs each entry as [modseq, uid]');
    return [number(pair[0], 'modseq'), number(pair[1], 'uid')];
  });
}
