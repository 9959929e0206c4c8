// `replica check`: a replica's mailboxes compared with its primary's, by digest; a mailbox whose
// digest differs is narrowed down by uid ranges (halved until at most limits.digestLeafMessages
// remain) to the messages that differ. Run when both are at the same seq (the check waits for the
// replica to catch up to the primary's seq first), so 0 differences means identical.
import { notedInlineGap } from './inline-gap.js';
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { Store } from '../store/store.js';
import { mailboxDigests, rangeDigest, rangeMessages, UID_MAX, type MailboxDigest, type MessageEntry } from './digest.js';
import { readKeyFile } from './key.js';
import { connect, type Connection } from './transport.js';
import { monotonicMs } from '../monotonic.js';

export interface Difference {
  mailbox: string;
  kind: 'missing on replica' | 'only on replica' | 'attributes' | 'messages';
  detail?: string;
  /** For 'messages': each differing uid with the primary's and the replica's entry (null: absent). */
  messages?: { uid: number; primary: MessageEntry | null; replica: MessageEntry | null }[];
}

export interface CheckResult {
  identical: boolean;
  primarySeq: number;
  replicaSeq: number;
  mailboxes: number;
  differences: Difference[];
  /**
   * Bodies the replica's index refers to that it never received (inline-gap.ts): not among what
   * `identical` compares (the index), and lost if it were promoted now. Absent when none.
   */
  inlineBodiesMissing?: number;
}

/** The primary's side: answers digest requests until the checker closes. */
export async function serveCheck(store: Store, connection: Connection, _storeChecked: void): Promise<void> {
  const db = () => store.replication().db;
  await connection.send({ t: 'welcome', lastSeq: store.replication().committedSeq() });
  for (;;) {
    const request = await connection.next();
    if (!request) return;
    const id = Buffer.from(String(request.id ?? ''), 'hex');
    switch (request.t) {
      case 'mailboxes': await connection.send({ t: 'mailboxes', list: await mailboxDigests(db(), request.scan === true), lastSeq: store.replication().committedSeq() }); break;
      case 'range': await connection.send({ t: 'range', ...(await rangeDigest(db(), id, Number(request.lo), Number(request.hi))) }); break;
      case 'messages': await connection.send({ t: 'messages', list: await rangeMessages(db(), id, Number(request.lo), Number(request.hi)) }); break;
      default: throw new MailstoreError('INVALID', `unknown check request ${request.t}`);
    }
  }
}

export interface CheckOptions {
  primary: string;
  keyFile: string;
  /** How long to wait for the replica to reach the primary's seq (default 10 s). */
  catchUpMs?: number;
  /**
   * Compute every mailbox's digest from its messages on both sides instead of comparing the ones
   * apply keeps (which finds the same divergence, but also an index whose records changed under it).
   */
  scan?: boolean;
}

/** Compares `store` (a replica) with its primary. */
export async function checkReplica(store: Store, options: CheckOptions): Promise<CheckResult> {
  const psk = await readKeyFile(store.fs, options.keyFile);
  const connection = await connect(options.primary, psk);
  try {
    const role = store.replication().role();
    // nodeId: the listener of this replica itself refuses the check (it compared the replica with itself)
    await connection.send({ t: 'hello', kind: 'check', storeId: store.identity.storeId, epoch: role?.epoch ?? 0, ...(role ? { nodeId: role.nodeId } : {}) });
    const welcome = await connection.expect('welcome', limits.replicationHandshakeMs);
    const primarySeq = Number(welcome.lastSeq);
    await caughtUp(store, primarySeq, options.catchUpMs ?? 10_000);
    let result = await compare(store, connection, options.scan === true);
    // a primary still taking writes may move on meanwhile: compare again at the newer seq
    for (let i = 0; i < 3 && !result.identical && result.primarySeq > store.changes.lastSeq; i++) {
      await caughtUp(store, result.primarySeq, options.catchUpMs ?? 10_000);
      result = await compare(store, connection, options.scan === true);
    }
    const inlineBodiesMissing = await notedInlineGap(store);
    return inlineBodiesMissing > 0 ? { ...result, inlineBodiesMissing } : result;
  } finally {
    connection.close();
  }
}

/**
 * Until this replica has committed `seq` (woken by each of its commits), or `timeoutMs` passed
 * (monotonic: a wall clock stepped back an hour made the check wait that hour).
 */
async function caughtUp(store: Store, seq: number, timeoutMs: number): Promise<void> {
  const end = monotonicMs() + timeoutMs;
  while (store.changes.lastSeq < seq && monotonicMs() < end) await store.changes.wait(store.changes.lastSeq, end - monotonicMs());
}

async function request(connection: Connection, message: Record<string, unknown> & { t: string }) {
  await connection.send(message);
  return connection.expect(message.t, limits.replicationHandshakeMs * 6);
}

async function compare(store: Store, connection: Connection, scan: boolean): Promise<CheckResult> {
  const db = store.replication().db;
  // both sides read their digests at once (with `scan`, each is a pass over its whole index)
  const [answer, ourList] = await Promise.all([request(connection, { t: 'mailboxes', scan }), mailboxDigests(db, scan)]);
  const theirs = new Map((answer.list as MailboxDigest[]).map((m) => [m.id, m]));
  const ours = new Map(ourList.map((m) => [m.id, m]));
  const differences: Difference[] = [];
  for (const [id, p] of theirs) {
    const r = ours.get(id);
    if (!r) { differences.push({ mailbox: p.name, kind: 'missing on replica' }); continue; }
    const attributes = (['name', 'uidValidity', 'uidNext', 'highestModseq', 'owner'] as const).filter((k) => p[k] !== r[k]);
    if (JSON.stringify(sorted(p.acl)) !== JSON.stringify(sorted(r.acl))) attributes.push('acl' as never);
    if (attributes.length > 0) differences.push({ mailbox: p.name, kind: 'attributes', detail: attributes.map((k) => `${k}: primary ${JSON.stringify(p[k])}, replica ${JSON.stringify(r[k])}`).join('; ') });
    if (p.digest !== r.digest || p.count !== r.count) {
      const messages = await narrow(store, connection, Buffer.from(id, 'hex'), 1, UID_MAX);
      differences.push({ mailbox: p.name, kind: 'messages', detail: `${p.count} messages on the primary, ${r.count} on the replica`, messages });
    }
  }
  for (const [id, r] of ours) if (!theirs.has(id)) differences.push({ mailbox: r.name, kind: 'only on replica' });
  return { identical: differences.length === 0, primarySeq: Number(answer.lastSeq), replicaSeq: store.changes.lastSeq, mailboxes: theirs.size, differences };
}

function sorted(acl: Record<string, string>): [string, string][] {
  return Object.entries(acl).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Halves [lo, hi] while the digests differ and the range holds many messages; then lists them. */
async function narrow(store: Store, connection: Connection, id: Buffer, lo: number, hi: number): Promise<NonNullable<Difference['messages']>> {
  const db = store.replication().db;
  const theirs = await request(connection, { t: 'range', id: id.toString('hex'), lo, hi });
  const ours = await rangeDigest(db, id, lo, hi);
  if (theirs.digest === ours.digest && theirs.count === ours.count) return [];
  if (Math.max(Number(theirs.count), ours.count) > limits.digestLeafMessages && hi > lo) {
    const mid = lo + Math.floor((hi - lo) / 2);
    return [...(await narrow(store, connection, id, lo, mid)), ...(await narrow(store, connection, id, mid + 1, hi))];
  }
  const primary = new Map(((await request(connection, { t: 'messages', id: id.toString('hex'), lo, hi })).list as MessageEntry[]).map((m) => [m[0], m]));
  const replica = new Map((await rangeMessages(db, id, lo, hi)).map((m) => [m[0], m]));
  const out: NonNullable<Difference['messages']> = [];
  for (const uid of [...new Set([...primary.keys(), ...replica.keys()])].sort((a, b) => a - b)) {
    const p = primary.get(uid) ?? null;
    const r = replica.get(uid) ?? null;
    if (JSON.stringify(p) !== JSON.stringify(r)) out.push({ uid, primary: p, replica: r });
  }
  return out;
}
