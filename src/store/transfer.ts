// Copy and move (IMAP COPY, RFC 6851 MOVE). A call of many uids commits in parts: as one record,
// 100k uids held the daemon's event loop 12-13 s (prepare and apply run on it), and every delivery
// and read it serves with it. While a call goes in parts, other additions to its target wait
// (Store.holdAdditions), so its uids there are one ascending run (COPYUID) given out in order.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MailstoreError } from '../errors.js';
import type { IndexDb } from '../index/index-db.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { AdminIndexReader } from './administration.js';
import { belowUid, checkRecordSize, checkUidsLeft, partsStopped, pinnedMailbox, resolveInBatch } from './prepare.js';
import { checkQuota } from './quota.js';
import { opExtras, type BlobRecord, type MailboxInfo, type MessageRecord, type Op } from './records.js';
import { parseMailboxName } from './validate.js';
import type { Mutation, PrepareContext } from './writer.js';

export interface TransferHost {
  /** The current index (after an index swap, the new one). */
  readonly index: AdminIndexReader & Pick<IndexDb, 'getMany'>;
  submit<T>(mutation: Mutation<T>): Promise<T>;
  /** Makes every other addition to the mailbox named `components` wait until the returned release is called. */
  holdAdditions(components: readonly string[]): Promise<() => void>;
  /** Starts `start` once no call in parts adds to the mailbox: in this turn when none does. */
  afterAdditions<T>(components: readonly string[], start: () => Promise<T>): Promise<T>;
  /** True once the store is closing: a call in parts ends at its next part boundary (partsStopped). */
  stopping?: () => boolean;
}

export interface TransferResult {
  uidValidity: number;
  mapping: [number, number][];
}

/**
 * A copy in parts whose last part has not committed: the target's uids `first`..`last` are its
 * copies so far. Open (and promote, and the next copy in parts into the same mailbox) expunges them, as
 * RFC 9051 wants of a COPY that failed: the same call run again copies each message once.
 */
interface CopyIntent {
  first: number;
  last: number;
}

const COPY_INTENT = 'copying/';
const copyIntentKey = (target: Buffer) => `${COPY_INTENT}${target.toString('hex')}`;

/** `pin`: the source's id as the caller read its uids (a mailbox made under its name since is refused). */
export function transfer(host: TransferHost, from: string, list: number[], to: string, expungeSource: boolean, pin?: Buffer): Promise<TransferResult> {
  const names = parseNames(from, to);
  // One record is submitted in this turn, as every other call is: calls made one after another
  // without waiting (a client's pipelined COPY then EXPUNGE) reach the writer in their order, so the
  // expunge never goes first and the copy finds its messages. It waits only for a call in parts
  // adding to its target.
  if (list.length <= limits.uidChangePartMessages) {
    return host.afterAdditions(names.target, () => host.submit({ prepare: ({ view }) => transferRecord(host, view, names, list, expungeSource, pin) }));
  }
  return transferHeld(host, names, list, expungeSource, pin);
}

async function transferHeld(host: TransferHost, names: Names, list: number[], expungeSource: boolean, pin: Buffer | undefined): Promise<TransferResult> {
  const release = await host.holdAdditions(names.target);
  try {
    return await transferInParts(host, names, list, expungeSource, pin);
  } finally {
    release();
  }
}

interface Names {
  from: string;
  to: string;
  source: string[];
  target: string[];
}

function parseNames(from: string, to: string): Names {
  return { from, to, source: parseMailboxName(from), target: parseMailboxName(to) };
}

/** A call of at most limits.uidChangePartMessages uids: one record, its quota checked with it. */
async function transferRecord(host: TransferHost, view: PrepareContext['view'], names: Names, list: number[], expungeSource: boolean, pin: Buffer | undefined) {
  const src = await (pin ? pinnedMailbox(names.source, names.from, () => '', pin)(view) : resolveInBatch(view, names.source, names.from));
  const dst = await resolveInBatch(view, names.target, names.to);
  const part = await transferOps(view, src, dst, list, names, expungeSource);
  await checkQuota(host.index, view, dst.name, part.bytes, part.mapping.length, expungeSource ? src.name : undefined);
  return { ops: part.ops, result: { uidValidity: dst.uidValidity, mapping: part.mapping } };
}

/** One record's ops: the target's message.add ops from its uidNext on, and a move's expunge. */
async function transferOps(view: PrepareContext['view'], src: MailboxInfo, dst: MailboxInfo, uids: number[], names: Names, expungeSource: boolean) {
  if (src.id.equals(dst.id) && expungeSource) throw new MailstoreError('INVALID', `cannot move ${names.from} into itself`);
  const ops: Op[] = [];
  const mapping: [number, number][] = [];
  let uid = dst.uidNext;
  let bytes = 0;
  for (const srcUid of uids) {
    const record = await view.get<MessageRecord>(keys.message(src.id, srcUid));
    if (!record) continue;
    const blob = await view.get<BlobRecord>(keys.blob(Buffer.from(record.h)));
    if (!blob) throw new MailstoreError('CORRUPT', `message ${srcUid} in ${names.from} refers to an unknown blob; run 'mailstore scrub'`);
    ops.push({ op: 'message.add', id: dst.id, uid, hash: Buffer.from(record.h), size: record.s, date: record.d, flags: record.f, pack: blob.p, offset: blob.o, ...opExtras(record) });
    mapping.push([srcUid, uid++]);
    bytes += record.s;
  }
  checkUidsLeft(dst, mapping.length, names.to);
  if (expungeSource && mapping.length > 0) ops.push({ op: 'message.expunge', id: src.id, uids: mapping.map(([s]) => s), at: Date.now() });
  checkRecordSize(ops, `${expungeSource ? 'moving' : 'copying'} ${mapping.length} messages`);
  return { ops, mapping, bytes };
}

/**
 * Parts of limits.uidChangePartMessages uids, a turn of the event loop between them. The quota
 * and the uids left are checked for the whole call in the first part (no call is refused half
 * done for them). A move's part is whole (each message in exactly one mailbox, as RFC 6851 asks of
 * one that fails part way); a copy's parts carry its intent, and one that fails is undone.
 */
async function transferInParts(host: TransferHost, names: Names, list: number[], expungeSource: boolean, pin: Buffer | undefined): Promise<TransferResult> {
  const verb = expungeSource ? 'moved' : 'copied';
  let movedBefore = list[0];
  const resolveSource = pinnedMailbox(names.source, names.from, () => `its messages were being ${verb}${expungeSource ? `; those before uid ${movedBefore} are moved` : ''}`, pin);
  const resolveTarget = pinnedMailbox(names.target, names.to, () => `messages were being ${verb} into it${expungeSource ? `; those before uid ${movedBefore} of ${names.from} are moved` : ''}`);
  const committedTarget = await resolveInBatch(host.index, names.target, names.to);
  if (!expungeSource) await undoCopy(host, committedTarget.id); // one left half done before: its undo had failed
  const whole = await presentMessages(host.index, await resolveInBatch(host.index, names.source, names.from), list);
  const mapping: [number, number][] = [];
  let uidValidity = committedTarget.uidValidity;
  let target: Buffer | undefined;
  let next: number | undefined; // the target's uidNext after the parts so far
  let first: number | undefined; // a copy's first uid at the target, once a part added one
  let sourceEnd: number | undefined; // as inUidParts: a copy into itself copied its own copies
  let stopped = false; // the store is closing: a copy's undo (parts again) is left to the next open
  try {
    for (let at = 0; at < list.length; at += limits.uidChangePartMessages) {
      if (at > 0) await nextTurn(); // the sockets, and a delivery on one, go first
      if (at > 0 && host.stopping?.()) {
        stopped = true;
        throw partsStopped(names.from, expungeSource ? `its uids before ${list[at]} (${at} of ${list.length}) are moved to ${names.to}, each part committed; from uid ${list[at]} on nothing was moved`
          : `nothing of it is kept (a copy is whole or not at all): the copies made so far into ${names.to} are removed when the store next opens`);
      }
      movedBefore = list[at];
      const last = at + limits.uidChangePartMessages >= list.length;
      const done = await host.submit({
        partOfMany: true,
        prepare: async ({ view }) => {
          const src = await resolveSource(view);
          const dst = await resolveTarget(view);
          target = dst.id;
          if (next === undefined) {
            checkUidsLeft(dst, whole.count, names.to);
            await checkQuota(host.index, view, dst.name, whole.bytes, whole.count, expungeSource ? src.name : undefined);
          } else if (dst.uidNext !== next) {
            throw new MailstoreError('UNAVAILABLE', `messages were added to ${names.to} while messages were being ${verb} into it in parts, outside this store's calls (a repair?), so their uids would not be one run; ${expungeSource ? `those before uid ${movedBefore} of ${names.from} are moved` : 'nothing of the copy is kept'}: run it again`, { path: names.to });
          }
          sourceEnd ??= src.uidNext;
          const uids = list.slice(at, at + limits.uidChangePartMessages);
          const part = await transferOps(view, src, dst, uids.slice(0, belowUid(uids, sourceEnd)), names, expungeSource);
          // a copy's last part ends its intent in the same record (a copy in one part needs none)
          if (!expungeSource && (last ? first !== undefined : part.mapping.length > 0)) {
            const intent: CopyIntent | null = last ? null : { first: first ?? dst.uidNext, last: dst.uidNext + part.mapping.length - 1 };
            part.ops.push({ op: 'meta.set', key: copyIntentKey(dst.id), value: intent });
          }
          return { ops: part.ops, result: { dst, mapping: part.mapping } };
        },
      });
      uidValidity = done.dst.uidValidity;
      next = done.dst.uidNext + done.mapping.length;
      if (done.mapping.length > 0) first ??= done.dst.uidNext;
      mapping.push(...done.mapping);
    }
  } catch (error) {
    // RFC 9051: a COPY that fails leaves the target as it was; an undo that fails too is left to
    // the next copy in parts into the target or the next open (the intent stays)
    if (!expungeSource && target && !stopped) await undoCopy(host, target).catch(() => undefined);
    throw error;
  }
  return { uidValidity, mapping };
}

/** The messages of `uids` still in `box` (committed), their count and bytes; read in pieces, each its own round trip to LevelDB. */
async function presentMessages(index: TransferHost['index'], box: MailboxInfo, uids: number[]): Promise<{ count: number; bytes: number }> {
  let count = 0, bytes = 0;
  for (let at = 0; at < uids.length; at += limits.readBatchMessages) {
    const records = await index.getMany<MessageRecord>(uids.slice(at, at + limits.readBatchMessages).map((uid) => keys.message(box.id, uid)));
    for (const record of records) {
      if (record instanceof MailstoreError) throw record;
      if (record) { count++; bytes += record.s; }
    }
  }
  return { count, bytes };
}

/**
 * Expunges the copies a copy in parts left at `target` (its intent), from the top, a part a record,
 * each record moving the intent's `last` down: a crash in between leaves the rest to the next open.
 */
export async function undoCopy(host: Pick<TransferHost, 'index' | 'submit'>, target: Buffer): Promise<void> {
  const key = copyIntentKey(target);
  if ((await host.index.get(keys.meta(key))) === undefined) return; // (the usual case) without a turn of the writer
  for (let more = true; more;) {
    more = await host.submit({
      prepare: async ({ view }) => {
        const intent = await view.get<CopyIntent>(keys.meta(key));
        if (!intent) return { ops: [], result: false };
        const box = await view.get<MailboxInfo>(keys.info(target));
        const low = Math.max(intent.first, intent.last - limits.uidChangePartMessages + 1);
        const ops: Op[] = [];
        if (box && !box.deleting) { // a mailbox deleted meanwhile is emptied by its delete
          const uids = await copiesToUndo(view, target, low, intent.last);
          if (uids.length > 0) ops.push({ op: 'message.expunge', id: target, uids, at: Date.now() });
        }
        const rest = box && !box.deleting && low > intent.first;
        ops.push({ op: 'meta.set', key, value: rest ? { first: intent.first, last: low - 1 } satisfies CopyIntent : null });
        return { ops, result: Boolean(rest) };
      },
    });
    if (more) await nextTurn();
  }
}

/**
 * The target's uids `low`..`last` an undo expunges: not a copy that is the last message holding its
 * body (its original expunged since, by a client that saw the copy there while the undo waited for
 * the next open): an undo never deletes mail, the copy stays where it is.
 */
async function copiesToUndo(view: PrepareContext['view'], target: Buffer, low: number, last: number): Promise<number[]> {
  const uids: number[] = [];
  const taken = new Map<string, number>(); // references to each blob this undo drops
  for (let uid = low; uid <= last; uid++) {
    const message = await view.get<MessageRecord>(keys.message(target, uid));
    if (!message) continue;
    const hash = Buffer.from(message.h);
    const blob = await view.get<BlobRecord>(keys.blob(hash));
    const dropped = taken.get(hash.toString('hex')) ?? 0;
    if (!blob || blob.r - dropped <= 1) continue;
    taken.set(hash.toString('hex'), dropped + 1);
    uids.push(uid);
  }
  return uids;
}

/**
 * Undoes the copies in parts a crash or a failed undo left (open, promote), each under its
 * target's hold: promote runs this in the background while the store serves, and a copy in parts
 * running into that mailbox then has an intent of its own, which is not one to undo (its copies
 * were expunged under it while it went on and reported them copied).
 */
export async function undoInterruptedCopies(host: TransferHost): Promise<void> {
  for (const target of await interruptedCopies(host.index)) {
    const box = await host.index.get<MailboxInfo>(keys.info(target));
    const release = box && !box.deleting ? await host.holdAdditions(box.name) : undefined;
    try {
      await undoCopy(host, target);
    } finally {
      release?.();
    }
  }
}

/** The targets of copies in parts that a crash (or a failed undo) left half done. */
async function interruptedCopies(index: AdminIndexReader): Promise<Buffer[]> {
  const targets: Buffer[] = [];
  const prefix = keys.meta(COPY_INTENT).subarray(0, -1);
  for await (const [key] of index.entries({ prefix })) {
    const hex = key.toString('latin1').split(COPY_INTENT)[1]?.replace(/\0$/, '');
    if (hex) targets.push(Buffer.from(hex, 'hex'));
  }
  return targets;
}
