// Promotion and fencing (PostgreSQL's pg_promote, with an epoch as in Raft's terms): `promote` turns
// a replica into a primary with the epoch raised by one, recorded in its journal (meta.set
// replication/epoch: the epoch is part of the history its own replicas receive) and then in its
// REPLICATION file (from then on it takes writes). The old primary is fenced when it learns of the
// higher epoch: the promoted node tells it at once if it can be reached, and any replica that
// connects to it later carries the epoch in its hello. A fenced primary refuses writes
// (READ_ONLY_REPLICA) and fails the synchronous commits still waiting.
// The old primary shows a batch to its readers before its replicas acknowledge it, so IMAP clients
// may hold uids this store never received: unless the old primary, reached and fenced, says it
// committed nothing this store lacks, every mailbox gets a new uidValidity (docs/REPLICATION.md).
import { inlineGap, inlineGapAdvice } from './inline-gap.js';
import { MailstoreError } from '../errors.js';
import { keys } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import { meta, uidValidityAfter, uidValidityLastAfter } from '../store/apply.js';
import type { MailboxInfo, Op } from '../store/records.js';
import { limits } from '../limits.js';
import { monotonicMs } from '../monotonic.js';
import type { Store } from '../store/store.js';
import { readKeyFile } from './key.js';
import { PRIMARY_SETTINGS_FILE, forgetPrimarySettings, readNodeSettings, readPrimarySettings, settingWarnings } from './node-settings.js';
import { commitPendingRounds } from './pending-rounds.js';
import { holdsHistory, sameRecords } from './history.js';
import { Replica } from './replica.js';
import { connect, type Log, type Message } from './transport.js';
import { answeredWithin } from '../within.js';

export const EPOCH_META = 'replication/epoch';

export interface PromoteResult {
  epoch: number;
  /** The seq of the epoch record. */
  seq: number;
  /** Whether the old primary was reached and told (it is fenced in any case once it hears of the epoch). */
  oldPrimaryFenced: boolean;
  /** The last seq the old primary committed, as it said when fenced (absent: not reached, or a mailstore before session 39). */
  oldPrimarySeq?: number;
  /** The seq this store held of the old primary's history when promoted. */
  heldSeq: number;
  /**
   * kept: this store holds every change the old primary committed, so uids go on under each
   * mailbox's uidValidity; new: every mailbox got a new one (the old primary may have shown uids
   * this store lacks; IMAP clients read the mailboxes again).
   */
  uidValidity: 'kept' | 'new';
  /** Mailboxes given a new uidValidity. */
  mailboxesRenewed: number;
  /** A damaged REPLICATION-PENDING frame set aside (promote --quarantine-damaged-pending); its changes were not applied. */
  damagedPendingFrame?: { offset: number; quarantinedAs: string };
  /** The per-node settings that differ from the old primary's last announced ones (node-settings.ts), one WARNING line each. */
  settingWarnings?: string[];
  /** Promoted with --force although it lacked bodies its resync left out (inline-gap.ts): those messages read CORRUPT. */
  inlineBodiesMissing?: number;
}

export interface PromoteOptions {
  /** Go on past a damaged REPLICATION-PENDING frame that may hold acknowledged changes (the file is kept). */
  quarantineDamagedPending?: boolean;
  /** Promote although the replica lacks bodies its resync left out (inline-gap.ts): those messages stay CORRUPT. */
  force?: boolean;
}

/**
 * REFUSED while the replica lacks bodies its resync left out, unless forced: before anything of the
 * promotion (the fence, the tentative rounds), so a refusal leaves the replica following as it was.
 */
export async function refuseInlineGap(store: Store, options: PromoteOptions, log: Log): Promise<number> {
  const missing = await inlineGap(store);
  if (missing === 0) return 0;
  if (options.force) {
    log(`replication: promoting with --force although this replica lacks ${inlineGapAdvice(missing)}`);
    return missing;
  }
  throw new MailstoreError('REFUSED', `this replica lacks ${inlineGapAdvice(missing)}. Nothing was changed; to promote it all the same (the primary is gone for good): --force`, { path: store.root });
}

/** What the old primary said to its fence: `lastSeq` and `history` when it was reached and fenced (primary.ts answerFence). */
export interface FenceAnswer {
  fenced: boolean;
  lastSeq?: number;
  history?: unknown;
  /** Not fenced: why (not reachable, no answer, the key file unreadable, its answer). */
  why?: string;
}

/**
 * Fences the old primary of a replica with the epoch its promotion will take (promoteStore then
 * takes the answer): ReplicaHandle.promote does it while the replica still receives, so what the
 * old primary committed before the fence can reach it first (a planned switchover under mail).
 */
export async function fenceOldPrimary(store: Store): Promise<FenceAnswer> {
  const role = store.replication().role();
  if (role?.role !== 'replica' || !role.primary || !role.keyFile) return { fenced: false };
  return tellOldPrimary(store, role.primary, role.keyFile, role.epoch + 1);
}

/**
 * The fenced old primary's last seq when it holds records past this store's newest and the ones
 * this store holds are its own, so waiting for (or fetching) the rest is worth it; else undefined.
 * Not when the records differ: put back to an older image, the old primary refuses this replica as
 * diverged, and waiting would only wait out the limit. The one condition of both ways to follow:
 * ReplicaHandle.promote waits on its live session, promoteStore catches up by a session of its own.
 */
export async function worthFollowing(store: Store, answer: FenceAnswer): Promise<number | undefined> {
  const { lastSeq, history } = answer;
  if (lastSeq === undefined || lastSeq <= store.changes.lastSeq) return undefined;
  return await sameRecords(store.replication().journal, store.changes.firstSeq, store.changes.lastSeq, history) ? lastSeq : undefined;
}

/**
 * Promotes a replica store (its replication must be stopped: ReplicaHandle.promote does that).
 * `fenced`: the old primary's answer to fenceOldPrimary, when it was asked already.
 */
export async function promoteStore(store: Store, log: Log = () => undefined, options: PromoteOptions = {}, fenced?: FenceAnswer): Promise<PromoteResult> {
  const control = store.replication();
  const role = control.role();
  if (role?.role !== 'replica') {
    throw new MailstoreError('INVALID', `the store at ${store.root} is ${role ? `a ${role.role}` : 'a standalone store (a primary)'}, not a replica: nothing to promote`, { path: store.root });
  }
  // a daemon's replica asked before its fence (ReplicaHandle.promote): counted again for the result
  const inlineBodiesMissing = fenced ? await inlineGap(store) : await refuseInlineGap(store, options, log);
  // tentative rounds of a synchronous primary that died before saying they committed: they
  // continue this history, and one of them may have been acknowledged (pending-rounds.ts)
  const pending = await commitPendingRounds(store, log, { quarantineDamaged: options.quarantineDamagedPending });
  const epoch = role.epoch + 1;
  // fenced first: once it answers, nothing more commits there, and its last seq is final
  const oldPrimary = fenced ?? (role.primary && role.keyFile ? await tellOldPrimary(store, role.primary, role.keyFile, epoch) : { fenced: false });
  if (role.primary && role.keyFile) {
    const followTo = await worthFollowing(store, oldPrimary);
    if (followTo !== undefined) await catchUp(store, role.primary, role.keyFile, followTo, log);
  }
  const heldSeq = store.changes.lastSeq;
  const keep = oldPrimary.lastSeq !== undefined && await holdsHistory(control.journal, store.changes.firstSeq, heldSeq, oldPrimary.lastSeq, oldPrimary.history);
  // Committed before the role changes: a promotion cut short leaves a replica with records of its
  // own (refused by its primary as diverged: promote it again), never a primary taking writes
  // under the uidValidity its old primary gave out uids under.
  const mailboxesRenewed = keep ? 0 : await renewUidValidities(store);
  const seq = await control.commitMeta(EPOCH_META, epoch);
  await control.setRole({ ...role, role: 'primary', epoch, primary: undefined });
  log(`replication: promoted to primary at epoch ${epoch} (seq ${seq}); the old primary ${role.primary ?? '?'} ${oldPrimary.fenced ? 'is fenced' : 'is fenced once it hears of it'}`);
  log(keep
    ? `replication: uidValidity kept: this store holds every change the old primary committed (seq ${heldSeq})`
    : `replication: ${mailboxesRenewed} mailboxes have a new uidValidity: ${renewedWhy(oldPrimary.lastSeq, heldSeq)}; IMAP clients read them again`);
  // Mailbox deletes (and copies in parts) the old primary began and did not end were its to finish
  // (undo); now they are this store's (open does it too, but a daemon may run for months): in the
  // background, as a delete's chunks go, so the new primary serves at once. close() waits for them.
  control.finishInterrupted().catch((error: unknown) => log(`replication: finishing the mailbox deletes and copies the old primary left half-done failed (${(error as Error).message}); the next open finishes them`));
  const warnings = settingWarnings(await readPrimarySettings(store.fs, store.root), await readNodeSettings(store.fs, store.root), role.primary ?? '?');
  for (const line of warnings) log(line);
  await forgetPrimarySettings(store).catch((error: unknown) => log(`replication: could not remove ${PRIMARY_SETTINGS_FILE} (${(error as Error).message}); it names the old primary's settings: remove it`));
  return {
    epoch, seq, oldPrimaryFenced: oldPrimary.fenced, ...(oldPrimary.lastSeq === undefined ? {} : { oldPrimarySeq: oldPrimary.lastSeq }), heldSeq,
    uidValidity: keep ? 'kept' : 'new', mailboxesRenewed, ...(pending.damagedFrame ? { damagedPendingFrame: pending.damagedFrame } : {}), ...(warnings.length > 0 ? { settingWarnings: warnings } : {}),
    ...(inlineBodiesMissing > 0 ? { inlineBodiesMissing } : {}) };
}

/** Why promote renewed every uidValidity (the log's and the CLI's words). */
export function renewedWhy(oldPrimarySeq: number | undefined, heldSeq: number): string {
  if (oldPrimarySeq === undefined) return 'the old primary did not say what it committed';
  return oldPrimarySeq > heldSeq
    ? `the old primary committed up to seq ${oldPrimarySeq}, this store holds ${heldSeq}`
    : `the old primary's records up to seq ${oldPrimarySeq} are not this store's (it was put back to an older image?)`;
}

/**
 * After a promotion that did not reach the old primary: tells it the epoch again every
 * limits.promoteFenceRetryMs until it answers fenced (logged, with the last seq it had committed:
 * what it took after this store's is not here), or stop(). Found by an outside test (session 48):
 * an old primary SIGSTOPped through the promotion and resumed, or cut off and back, was fenced by
 * no one and took writes again (with --sync-fallback async, or beside a replica still following it).
 */
export function keepFencing(store: Store, address: string, keyFile: string, epoch: number, log: Log): { stop(): void } {
  let stopped = false;
  let wake: (() => void) | undefined;
  let told: string | undefined;
  void (async () => {
    while (!stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, limits.promoteFenceRetryMs);
        wake = () => { clearTimeout(timer); resolve(); };
      });
      if (stopped) return;
      const answer = await tellOldPrimary(store, address, keyFile, epoch);
      if (stopped) return;
      if (!answer.fenced) {
        // each new reason once (a key file gone is the admin's to mend), not a line every retry
        if (answer.why !== told) log(`replication: the old primary ${address} is not fenced yet (${answer.why}); told again every ${limits.promoteFenceRetryMs / 1000} s`);
        told = answer.why;
        continue;
      }
      const committed = answer.lastSeq === undefined ? '' : `; it had committed up to seq ${answer.lastSeq}`;
      log(`replication: the old primary ${address} was reached and fenced (epoch ${epoch})${committed}`);
      return;
    }
  })().catch((error: unknown) => log(`replication: telling the old primary ${address} of epoch ${epoch} stopped: ${(error as Error).message}; promote again to fence it`));
  return { stop: () => { stopped = true; wake?.(); } };
}

/**
 * Best effort, bounded: a dead or partitioned old primary learns the epoch from its next replica.
 * `lastSeq`: the last seq it committed, which it says once fenced (primary.ts answerFence).
 */
async function tellOldPrimary(store: Store, address: string, keyFile: string, epoch: number): Promise<FenceAnswer> {
  try {
    const psk = await readKeyFile(store.fs, keyFile);
    const connection = await Promise.race([
      connect(address, psk),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), limits.replicationPingMs).unref()),
    ]);
    try {
      await connection.send({ t: 'hello', kind: 'fence', storeId: store.identity.storeId, epoch });
      // by the clock, not by silence: a primary whose writer hangs (a dead disk) still answers pings
      let answer: Message | undefined;
      const answered = connection.next().then((message) => { answer = message; });
      if (!(await answeredWithin(answered, limits.promoteFenceAnswerMs))) return { fenced: false, why: `no answer within ${limits.promoteFenceAnswerMs} ms` };
      const fenced = answer?.t === 'error' && answer.code === 'READ_ONLY_REPLICA';
      const lastSeq = Number(answer?.lastSeq);
      if (!fenced) return { fenced, why: `it answered ${String(answer?.t)} ${String(answer?.code ?? '')}`.trimEnd() };
      return Number.isSafeInteger(lastSeq) && lastSeq >= 0 ? { fenced, lastSeq, history: answer?.history } : { fenced };
    } finally {
      connection.close();
    }
  } catch (error) {
    return { fenced: false, why: (error as Error).message };
  }
}

/**
 * A switchover under load: mail went on landing on the old primary until its fence, so a replica
 * is mostly a little behind it. Fenced, it commits nothing more and still serves replicas: follow
 * it up to its last seq (bounded by limits.promoteCatchUpMs), and the uidValidity can be kept.
 */
async function catchUp(store: Store, address: string, keyFile: string, lastSeq: number, log: Log): Promise<void> {
  const client = new Replica(store, await readKeyFile(store.fs, keyFile), address, log);
  const end = monotonicMs() + limits.promoteCatchUpMs;
  client.start();
  try {
    while (store.changes.lastSeq < lastSeq && monotonicMs() < end) await store.changes.wait(store.changes.lastSeq, Math.min(1_000, end - monotonicMs()));
  } finally {
    await client.stop();
    await client.closePending();
  }
  log(`replication: caught up with the old primary to seq ${store.changes.lastSeq} of its ${lastSeq}`);
}

/**
 * Every mailbox gets a uidValidity above every one this store gave (as a new mailbox's), its
 * messages, uids and uidNext kept; in records of limits.promoteMailboxesPerRecord. Returns how many.
 */
async function renewUidValidities(store: Store): Promise<number> {
  const control = store.replication();
  const ids: Buffer[] = [];
  for await (const [, box] of control.db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
    if (!box.deleting) ids.push(Buffer.from(box.id)); // one being deleted is finished after the promotion
  }
  for (let start = 0; start < ids.length; start += limits.promoteMailboxesPerRecord) {
    const part = ids.slice(start, start + limits.promoteMailboxesPerRecord);
    await control.commitAnyRole(async ({ view }) => {
      let last = (await view.get<number>(meta.uidValidityLast)) ?? 0;
      const ops: Op[] = part.map((id) => {
        const uidValidity = uidValidityAfter(last);
        last = uidValidityLastAfter(last, uidValidity);
        return { op: 'mailbox.uidValidity', id, uidValidity };
      });
      return { ops, result: undefined };
    });
  }
  return ids.length;
}
