// XFER (Cyrus's XFER, over the replication listener): moves a user's mailboxes to another store
// while the user keeps working. Copy every message (uids, flags, dates, ACL, owner, uidValidity,
// the mailbox id); then, under a short write fence on this store, catch up (new messages, flag
// changes, expunges, uidNext) and switch; then remove the mailboxes here. An intent record
// (meta.set xfer/USER) says where it stands: an interrupted XFER run again resumes (the target
// finds its mailboxes by id and says what it already has) or, after the switch, only finishes
// the removal here; a failed one before the switch is rolled back at the target.
// Modseqs are kept: each message lands with the modseq it had here. A store's modseqs are its
// journal seqs plus an offset (apply.ts, modseqAt); before any of them lands, the target raises
// its offset past the highest modseq sent (every mailbox request and every reconcile carries it),
// so no later change there gets a modseq below one a client already saw. Flag changes and
// expunges caught up under the fence get the target's own (higher) modseqs.
import { MailstoreError } from '../errors.js';
import { keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { MailboxInfo, Op } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { MessageInfo } from '../store/types.js';
import { moveQuotaRoots, quotaRootsAt } from '../store/quota.js';
import { movedName, movedOp } from '../store/moved.js';
import { formatMailboxName, parseMailboxName } from '../store/validate.js';
import { checkWritableRole } from '../store/role.js';
import { readKeyFile } from './key.js';
import { connect, type Connection, type Log } from './transport.js';
import { deleteMailboxAlone, type XferMailbox, type XferMessage } from './xfer-target.js';

export interface XferOptions {
  user: string;
  /** The target's --replication-listen address. */
  to: string;
  keyFile: string;
  /** Only mailboxes whose name starts with this (default: user/NAME and everything below it). */
  mailboxPrefix?: string;
  log?: Log;
}

export interface XferResult {
  mailboxes: string[];
  messages: number;
  /** The XFER had been interrupted after its switch: only the removal here was finished. */
  resumedAfterSwitch: boolean;
  /** Quota roots left here because the target (an older mailstore) did not take them: set them there. */
  quotaRootsKept?: string[];
}

interface Intent {
  to: string;
  phase: 'copying' | 'switched';
  mailboxes: string[];
  /** The user's quota roots go too (a whole user: no mailboxPrefix); absent in an older intent: kept here. */
  quotaRoots?: boolean;
  /** Each mailbox's highest modseq at the switch (name -> modseq); absent in an older intent. */
  switchedAt?: Record<string, number>;
  /** The whole user moved (no mailboxPrefix): its mail is then refused MOVED here (moved.ts); absent in an older intent. */
  wholeUser?: boolean;
}

const intentKey = (user: string) => `xfer/${user}`;

/**
 * An intent record, committed as any change is: refused on a replica and a fenced primary, and
 * held to the synchronous replicas. Through commitMeta (which takes any role and no replica, for
 * promote's epoch), on a replica it was a record of its own in a journal that mirrors its
 * primary's; on a primary fenced by a promotion during the copy, or whose synchronous replica was
 * away, the switch was recorded where no other node had it and the target kept the user, while the
 * user stayed here (or with the promoted replica) taking mail.
 */
async function commitIntent(store: Store, user: string, value: Intent | null, moved?: string): Promise<void> {
  const ops: Op[] = [{ op: 'meta.set', key: intentKey(user), value } as Op];
  // with the switch (and again with a resumed one's end): no delivery finds the user gone before it says where to
  if (moved !== undefined) ops.push(movedOp(user, { to: moved, at: Date.now() }));
  await store.replication().commitOps(async () => ({ ops, result: undefined }));
}

export async function xferUser(store: Store, given: XferOptions): Promise<XferResult> {
  // the user as the store keeps names (NFC): one typed decomposed (NFD) is the same user
  const tree = parseMailboxName(`user/${given.user}`);
  const options = { ...given, user: formatMailboxName(tree.slice(1)), mailboxPrefix: given.mailboxPrefix?.normalize('NFC') };
  const log = options.log ?? (() => undefined);
  const control = store.replication();
  checkWritableRole(store.root, control.role()); // before anything is sent (commitIntent checks each record)
  // the index's synchronous reads here, each in a turn with no index reopen under way (IndexDb.readNow)
  const intent = await control.db.readNow(() => control.db.getNow<Intent>(keys.meta(intentKey(options.user))));
  if (intent?.phase === 'switched') {
    // the user is at intent.to: finished with another --to (that target away, say), the removal
    // left them only there while the command said they moved to the new one
    if (intent.to !== options.to) {
      throw new MailstoreError('REFUSED', `XFER of ${options.user} was switched to ${intent.to}, which holds the user now, and only the removal here is left; nothing was removed. Run it with --to ${intent.to} to finish it (then move the user from there)`, { path: `user/${options.user}` });
    }
    await control.fenced(async () => {
      await refuseChangedSinceSwitch(store, options.user, intent);
      await removeHere(store, intent.mailboxes, intent.quotaRoots ? tree : undefined);
    });
    // an intent switched by an older mailstore wrote no marker: moved a whole user if it took the roots
    const wholeUser = intent.wholeUser ?? intent.quotaRoots === true;
    const marked = (await control.db.readNow(() => control.db.getNow(keys.meta(movedName(options.user))))) !== undefined;
    await commitIntent(store, options.user, null, wholeUser && !marked ? intent.to : undefined);
    return { mailboxes: intent.mailboxes, messages: 0, resumedAfterSwitch: true };
  }
  const names = [...(intent?.mailboxes ?? (await mailboxesOf(store, options)))];
  if (names.length === 0) throw new MailstoreError('NOT_FOUND', `no mailboxes of ${options.user}${options.mailboxPrefix ? ` under ${options.mailboxPrefix}` : ''} here`);
  const psk = await readKeyFile(store.fs, options.keyFile);
  const connection = await connect(options.to, psk);
  // a target gone without a FIN or an RST fails the XFER (rolled back) within a few pings: a
  // frame waiting for room on its link waited for ever, under the fence the whole store's writes
  connection.keepAlive(limits.replicationPingMs, () => 3 * limits.replicationPingMs);
  let switched = false;
  let self = false;
  let kept: string[] = [];
  try {
    await connection.send({ t: 'hello', kind: 'xfer', epoch: 0 });
    const welcome = await connection.expect('welcome', limits.replicationHandshakeMs);
    // its own listener (a typo in --to): the "copy" there is the mailboxes themselves, so a switch
    // would remove the only copy, and a roll-back there would too (it hung under the fence instead)
    self = welcome.storeId === store.identity.storeId;
    if (self) throw new MailstoreError('REFUSED', `XFER: ${options.to} is this store itself (store ${store.identity.storeId}), not another one; nothing was copied or removed: give the target's --replication-listen address`);
    // as Cyrus's XFER sets the user's quota on the target: a whole user's roots go with it
    const quotaRoots = options.mailboxPrefix === undefined;
    await commitIntent(store, options.user, { to: options.to, phase: 'copying', mailboxes: names, quotaRoots });
    let messages = 0;
    for (const name of names) messages += await copyMailbox(store, connection, name);
    // copied before the fence, as the rest: under it, every user's writes wait for the copy
    messages += await copyNewMailboxes(store, connection, options, names);
    log(`xfer: ${options.user}: ${messages} messages copied to ${options.to}; fencing writes to catch up and switch`);
    await control.fenced(async () => {
      // one made since: left here, it was missing at the target (and outside the quota roots that
      // moved), with nothing said
      messages += await copyNewMailboxes(store, connection, options, names);
      // the limits as they are under the fence, with the first reconcile (a target that predates them ignores the field)
      const roots = quotaRoots ? (await quotaRootsAt(store.administration().index, tree)).map(({ root, limits }) => [formatMailboxName(root), limits]) : [];
      let rootsTaken = false;
      for (const [i, name] of names.entries()) {
        const caught = await catchUp(store, connection, name, i === 0 && roots.length > 0 ? roots : undefined);
        messages += caught.sent;
        rootsTaken ||= caught.quotaRootsTaken;
      }
      // a target that predates quota roots in XFER ignores them: removed here they would be nowhere
      if (roots.length > 0 && !rootsTaken) {
        kept = roots.map(([root]) => root as string);
        log(`xfer: ${options.user}: ${options.to} did not take the quota roots ${kept.join(', ')} (an older mailstore): they stay here; set them there with 'mailstore quota set'`);
      }
      const moveRoots = quotaRoots && kept.length === 0;
      const switchedAt: Record<string, number> = {};
      for (const name of names) switchedAt[name] = (await mailboxInfo(store, name)).highestModseq;
      await commitIntent(store, options.user, { to: options.to, phase: 'switched', mailboxes: names, quotaRoots: moveRoots, switchedAt, wholeUser: quotaRoots }, quotaRoots ? options.to : undefined);
      switched = true;
      await removeHere(store, names, moveRoots ? tree : undefined);
    });
    await commitIntent(store, options.user, null);
    log(`xfer: ${options.user} is now at ${options.to}`);
    return { mailboxes: names, messages, resumedAfterSwitch: false, ...(kept.length > 0 ? { quotaRootsKept: kept } : {}) };
  } catch (error) {
    // a switch that is durable here but not confirmed by the synchronous replicas in time
    // (UNAVAILABLE, it may have committed) is a switch: rolled back there, the next run's
    // removal here would leave the user nowhere
    switched ||= (await control.db.readNow(() => control.db.getNow<Intent>(keys.meta(intentKey(options.user)))))?.phase === 'switched';
    if (!switched && !self) await rollBack(store, connection, options, names);
    throw error;
  } finally {
    connection.close();
  }
}

/**
 * After the switch the target holds the user, but until the removal here is finished the
 * mailboxes here are still served (the process died, or the removal failed): what they took since
 * (mail delivered here, flags) is at no other place, and the removal would have deleted it. REFUSED
 * then, nothing removed; the admin moves it and deletes those mailboxes, and the next run finishes.
 */
async function refuseChangedSinceSwitch(store: Store, user: string, intent: Intent): Promise<void> {
  if (!intent.switchedAt) return; // an older intent: what it was is unknown
  const changed: string[] = [];
  for (const name of intent.mailboxes) {
    const at = intent.switchedAt[name];
    const box = await mailboxIfThere(store, name); // one removed already is gone
    if (at !== undefined && box !== undefined && box.highestModseq !== at) changed.push(name);
  }
  if (changed.length === 0) return;
  throw new MailstoreError('REFUSED', `XFER of ${user} to ${intent.to} was switched, but here ${changed.join(', ')} changed since (mail or flags after the switch, which ${intent.to} does not have); nothing was removed. Move what changed to ${intent.to}, delete ${changed.length === 1 ? 'that mailbox' : 'those mailboxes'} here, then run the xfer again to finish`, { path: changed[0] });
}

/** Before the switch, the target's partial copy is removed and the intent cleared: the user stays here. */
async function rollBack(store: Store, connection: Connection, options: XferOptions, names: string[]): Promise<void> {
  if (!connection.closed) {
    const ids: string[] = [];
    for (const name of names) {
      try {
        const box = await mailboxIfThere(store, name);
        if (box) ids.push(Buffer.from(box.id).toString('hex'));
      } catch {
        // one that does not read is not named, as one that is gone
      }
    }
    await connection.send({ t: 'xfer.abort', ids });
    await connection.next(limits.replicationHandshakeMs).catch(() => undefined);
  }
  await commitIntent(store, options.user, null).catch(() => undefined);
}

async function mailboxesOf(store: Store, options: XferOptions): Promise<string[]> {
  const prefix = options.mailboxPrefix ?? `user/${options.user}`;
  const all = (await store.listMailboxes()).map((m) => m.name);
  return all.filter((name) => name === prefix || name.startsWith(options.mailboxPrefix ?? `${prefix}/`)).sort();
}

async function mailboxInfo(store: Store, name: string): Promise<MailboxInfo> {
  const box = await mailboxIfThere(store, name);
  if (!box) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
  return box;
}

/** The mailbox as committed (synchronous reads: in a turn with no index reopen under way). */
function mailboxIfThere(store: Store, name: string): MailboxInfo | undefined | Promise<MailboxInfo | undefined> {
  const db = store.replication().db;
  return db.readNow(() => {
    const id = db.getNow<Buffer>(keys.name(parseMailboxName(name)));
    const box = id && db.getNow<MailboxInfo>(keys.info(Buffer.from(id)));
    return box && !box.deleting ? box : undefined;
  });
}

/** Copies the user's mailboxes made while the XFER ran (not in `names`, which takes them); the messages sent. */
async function copyNewMailboxes(store: Store, connection: Connection, options: XferOptions, names: string[]): Promise<number> {
  let messages = 0;
  for (const name of await mailboxesOf(store, options)) {
    if (names.includes(name)) continue;
    messages += await copyMailbox(store, connection, name);
    names.push(name);
  }
  return messages;
}

async function copyMailbox(store: Store, connection: Connection, name: string): Promise<number> {
  const box = await mailboxInfo(store, name);
  const mailbox: XferMailbox = {
    id: Buffer.from(box.id).toString('hex'), name: box.name, uidValidity: box.uidValidity, uidNext: box.uidNext, acl: box.acl, created: box.created, highestModseq: box.highestModseq,
  };
  if (box.owner) mailbox.owner = box.owner;
  // a floor above its highest modseq (a rebuild past journal damage) holds at the target too
  if (box.vanishedFloor) mailbox.vanishedFloor = box.vanishedFloor;
  const answer = await request(connection, { t: 'xfer.mailbox', mailbox });
  return sendMessages(store, connection, name, mailbox.id, new Set(answer.uids as number[]), undefined, mailbox.highestModseq);
}

/**
 * Sends the messages the target lacks (all but `present`, or only `only`). With `ceiling`, only
 * those whose modseq is at most it: the target raised its modseqs past the mailbox request's
 * highest modseq only, and refused a message delivered (or flagged) after that request
 * (INVALID, the whole XFER rolled back: a user taking mail could not be moved). Those go with
 * the catch-up under the fence, whose reconcile raises the target past them first.
 */
async function sendMessages(store: Store, connection: Connection, name: string, id: string, present: Set<number>, only: Set<number> | undefined, ceiling?: number): Promise<number> {
  let frame: XferMessage[] = [];
  let frameBytes = 0;
  let sent = 0;
  const flush = async () => {
    if (frame.length === 0) return;
    await request(connection, { t: 'xfer.messages', id, messages: frame });
    sent += frame.length;
    frame = [];
    frameBytes = 0;
  };
  for await (const { info, body } of store.readMessages(name)) {
    if (present.has(info.uid) || (only && !only.has(info.uid)) || (ceiling !== undefined && info.modseq > ceiling)) continue;
    const extras: XferMessage[4] = { modseq: info.modseq };
    if (info.envelopeFrom !== undefined) extras.envelopeFrom = info.envelopeFrom;
    if (info.dateZoneMinutes !== undefined) extras.dateZone = info.dateZoneMinutes;
    if (info.recent) extras.recent = true;
    const bytes = messageFrameBytes(body, info);
    if (bytes > limits.replicationFrameBytesMax) {
      throw new MailstoreError('TOO_LARGE', `XFER: ${name} uid ${info.uid} (${body.length} bytes) is larger than a frame between nodes may be (${limits.replicationFrameBytesMax} bytes); nothing was switched`, { path: name });
    }
    if (frameBytes + bytes > limits.xferFrameBytes) await flush();
    frame.push([info.uid, body, info.flags, info.internalDate.getTime(), extras]);
    frameBytes += bytes;
    if (frame.length >= limits.xferMessagesPerFrame) await flush();
  }
  await flush();
  return sent;
}

/** About what a message takes in an xfer.messages frame: its body, flags and envelope sender, and their CBOR framing. */
function messageFrameBytes(body: Buffer, info: MessageInfo): number {
  let bytes = body.length + 64 + Buffer.byteLength(info.envelopeFrom ?? '');
  for (const flag of info.flags) bytes += Buffer.byteLength(flag) + 2;
  return bytes;
}

/** Under the fence: the target's copy is made to match exactly (a few rounds at most); `quotaRoots` set there with it. */
async function catchUp(store: Store, connection: Connection, name: string, quotaRoots?: unknown[]): Promise<{ sent: number; quotaRootsTaken: boolean }> {
  const box = await mailboxInfo(store, name);
  const id = Buffer.from(box.id).toString('hex');
  let sent = 0;
  let quotaRootsTaken = false;
  for (let round = 0; round < 3; round++) {
    const live: [number, string[]][] = [];
    for await (const info of store.messages(name)) live.push([info.uid, info.flags]);
    const answer = await request(connection, { t: 'xfer.reconcile', id, live, uidNext: box.uidNext, highestModseq: (await mailboxInfo(store, name)).highestModseq, ...(quotaRoots ? { quotaRoots } : {}) });
    quotaRootsTaken ||= answer.quotaRoots === true; // an older target does not say it (nor take them)
    const missing = answer.missing as number[];
    if (missing.length === 0) return { sent, quotaRootsTaken };
    sent += await sendMessages(store, connection, name, id, new Set(), new Set(missing));
  }
  throw new MailstoreError('UNAVAILABLE', `XFER: the target still lacks messages of ${name} after catching up; nothing was switched`);
}

/** After the switch: the mailboxes here go, and with `tree` the user's quota roots (they went to the target). */
async function removeHere(store: Store, names: string[], tree: string[] | undefined): Promise<void> {
  for (const name of names) await deleteMailboxAlone(store, name);
  if (!tree) return;
  const admin = store.administration();
  await admin.mutate({ exclusive: true, prepare: async () => ({ ops: await moveQuotaRoots(admin.index, tree, undefined), result: undefined }) });
}

async function request(connection: Connection, message: { t: string } & Record<string, unknown>) {
  await connection.send(message);
  return connection.expect(message.t, limits.replicationHandshakeMs * 6);
}
