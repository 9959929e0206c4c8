// The receiving side of XFER (xfer.ts): mailboxes arrive with their id, uidValidity, ACL, owner and
// creation time, messages with their uids, flags and dates, and are committed through the ordinary
// ops (mailbox.create, message.add with the given uid and modseq, message.flags, message.expunge),
// so replay and replicas of this store see nothing special. Modseqs are kept: before a request's
// messages land, this store's modseq offset is raised past the source's highest (raiseModseqs).
// Idempotent: a resumed XFER finds the mailbox by id and is told which uids are already here.
import { limits } from '../limits.js';
import { MailstoreError } from '../errors.js';
import { keys, decodeMessageKey } from '../keys/index-keys.js';
import type { BlobRecord, MailboxInfo, MessageRecord, Op } from '../store/records.js';
import type { Store } from '../store/store.js';
import { hashBytes } from '../hash/blake3.js';
import { SEPARATOR, checkUid, normalizeMessageExtras, parseMailboxName } from '../store/validate.js';
import { checkRecordSize, resolveInBatch } from '../store/prepare.js';
import { quotaLimitsNow, quotaSetOp, type QuotaLimits } from '../store/quota.js';
import type { PrepareContext } from '../store/writer.js';
import { modseqAt } from '../store/apply.js';
import { raiseModseqsAbove } from '../store/modseq-floor.js';
import { movedName, movedOp, userOf, type MovedMarker } from '../store/moved.js';
import type { Connection, Log, Message } from './transport.js';

/** A mailbox as XFER sends it. */
export interface XferMailbox {
  id: string;
  name: string[];
  uidValidity: number;
  uidNext: number;
  acl: Record<string, string>;
  owner?: string;
  created: number;
  /** The mailbox's highest modseq at the source (absent from an older source: modseqs not kept). */
  highestModseq?: number;
  /** Its vanished floor there, when it has one (since session 39; an older target ignores it). */
  vanishedFloor?: number;
}

/** One message as XFER sends it: [uid, bytes, flags, internal date ms, extras]. */
export type XferMessage = [uid: number, bytes: Uint8Array, flags: string[], date: number, extras: { envelopeFrom?: string; dateZone?: number; recent?: true; modseq?: number }];

export async function serveXfer(store: Store, connection: Connection, log: Log): Promise<void> {
  await connection.send({ t: 'welcome', storeId: store.identity.storeId });
  const session: XferSession = { rootsBefore: new Map(), created: new Set(), movedBefore: new Map() };
  for (;;) {
    const request = await connection.next();
    if (!request) return;
    // An error answers this request only: the source rolls back over the same connection.
    const answer = await handle(store, request, session, log).catch((error: unknown) => ({
      t: 'error', code: error instanceof MailstoreError ? error.code : 'INVALID', message: (error as Error).message,
    }));
    await connection.send(answer);
    if (request.t === 'xfer.mailbox') log(`xfer: receiving ${(request.mailbox as XferMailbox).name.join('/')} from ${connection.remote}`);
  }
}

/** What one XFER (one connection) did here, which its abort undoes. */
interface XferSession {
  /** The limits this XFER replaced (root -> before; undefined: none): an abort puts them back. */
  rootsBefore: Map<string, QuotaLimits | undefined>;
  /** The ids (hex) of the mailboxes this XFER created: the only ones its abort deletes. */
  created: Set<string>;
  /** The moved marks (moved.ts) its creates cleared (user -> mark): an abort puts them back. */
  movedBefore: Map<string, MovedMarker>;
}

async function handle(store: Store, request: Message, session: XferSession, log: Log): Promise<Message> {
  const { rootsBefore } = session;
  switch (request.t) {
    case 'xfer.mailbox': return { t: request.t, uids: await createOrFind(store, request.mailbox as XferMailbox, session) };
    case 'xfer.messages': return { t: request.t, added: await addMessages(store, xferMailboxId(request.id), request.messages as XferMessage[]) };
    case 'xfer.reconcile': {
      await raiseModseqs(store, request.highestModseq);
      // said in the answer: a source removes its roots only when the target took them
      const roots = request.quotaRoots !== undefined ? (await setQuotaRoots(store, request.quotaRoots, rootsBefore), { quotaRoots: true }) : {};
      return { t: request.t, missing: await reconcile(store, xferMailboxId(request.id), request.live as [number, string[]][], Number(request.uidNext)), ...roots };
    }
    case 'xfer.abort': {
      // by id, and only what this XFER created: a mailbox found here (made before, or by another
      // XFER of the same user, which may have switched and left its only copy here) stays
      for (const hex of request.ids as string[]) {
        if (!session.created.has(hex)) {
          log(`xfer: abort leaves mailbox ${String(hex)}: this XFER did not create it`);
          continue;
        }
        const db = store.replication().db;
        const box = await db.readNow(() => db.getNow<MailboxInfo>(keys.info(xferMailboxId(hex)))); // not in an index reopen
        if (box && !box.deleting) await deleteMailboxAlone(store, box.name.join('/')); // roots this XFER set go back below
      }
      session.created.clear();
      // and the quota roots it set go back to what they were (they stayed, limiting a user who is not here),
      // and where the user had moved from here (gone, their mail here bounced as "no such mailbox")
      const ops = [...rootsBefore].map(([root, before]) => quotaSetOp(root, before ?? {}));
      ops.push(...[...session.movedBefore].map(([user, marker]) => movedOp(user, marker)));
      session.movedBefore.clear();
      if (ops.length > 0) await store.replication().commitOps(async () => ({ ops, result: undefined }));
      rootsBefore.clear();
      return { t: request.t };
    }
    default: throw new MailstoreError('INVALID', `unknown XFER request ${request.t}`);
  }
}

/**
 * Deletes one mailbox (NOT_FOUND: gone already) and nothing else: not as store.deleteMailbox,
 * which takes the quota roots at the name of a mailbox with nothing below it. Where XFER moves a
 * mailbox, its roots go with the user's tree or stay, as XFER says (a source's removal; a target's
 * roll-back puts back only what it set).
 */
export async function deleteMailboxAlone(store: Store, name: string): Promise<void> {
  const admin = store.administration();
  const id = await admin.mutate({
    exclusive: true,
    prepare: async ({ view }) => {
      const box = await resolveInBatch(view, parseMailboxName(name), name);
      return { ops: [{ op: 'mailbox.deleteBegin', id: box.id } as Op], result: box.id };
    },
  }).catch((error: unknown) => {
    if (!(error instanceof MailstoreError && error.code === 'NOT_FOUND')) throw error;
  });
  if (id) await admin.finishMailboxDeletes([id]);
}

/**
 * A mailbox id as XFER sends it: 16 bytes in hex. Any other length made keys the index cannot tell
 * apart (a message key's uid read from the id's bytes: scrub stopped on them, counters read wrong).
 */
function xferMailboxId(value: unknown): Buffer {
  if (typeof value !== 'string' || !/^[0-9a-f]{32}$/.test(value)) throw new MailstoreError('INVALID', `XFER: ${JSON.stringify(value)} is no mailbox id (16 bytes in hex)`);
  return Buffer.from(value, 'hex');
}

/**
 * A mailbox name as XFER sends it, its components: each a non-empty string without the separator,
 * so the name reads back as these components. Not checked against today's other naming rules: a
 * name an older version allowed still moves. A component with "/" made a mailbox no call could
 * name, counted against its user's quota all the same.
 */
function checkXferName(name: unknown): void {
  if (!Array.isArray(name) || name.length === 0 || !name.every((c) => typeof c === 'string' && c.length > 0 && !c.includes(SEPARATOR))) {
    throw new MailstoreError('INVALID', `XFER: ${JSON.stringify(name)} is no mailbox name (its components: non-empty strings without "${SEPARATOR}")`);
  }
}

/** Creates the mailbox with the source's identity (its id noted in `created`), or finds it (a resumed XFER): the uids present. */
async function createOrFind(store: Store, box: XferMailbox, session: XferSession): Promise<number[]> {
  // uidValidityLast counts on from it: a string there made it NaN, and every later mailbox's too
  checkUid(box.uidValidity, 'XFER uidValidity'); // a uidValidity is a uid's range: 1 to 2^32 - 1 (RFC 3501 nz-number)
  checkXferName(box.name);
  await raiseModseqs(store, box.highestModseq);
  const id = xferMailboxId(box.id);
  const db = store.replication().db;
  const existing = await db.readNow(() => db.getNow<MailboxInfo>(keys.info(id))); // not in an index reopen
  if (!existing || existing.deleting) {
    const user = userOf(box.name);
    const cleared = await store.replication().commitOps(async ({ view }) => {
      if (await view.get(keys.name(box.name))) throw new MailstoreError('EXISTS', `mailbox ${box.name.join('/')} already exists here (with another identity); nothing was transferred`, { path: box.name.join('/') });
      const op: Op = { op: 'mailbox.create', id, name: box.name, uidValidity: box.uidValidity, acl: box.acl, created: box.created };
      if (box.owner) op.owner = box.owner;
      // the source's expunges up to its highest modseq stay there (handing them over grew with
      // history): a client that synced there before is answered below this floor with the uid
      // ranges that hold no message; those expunged there later are caught up here (reconcile)
      const highest = Math.max(box.highestModseq ?? 0, checkFloor(box.vanishedFloor));
      const floor: Op[] = highest > 0 ? [{ op: 'change.floor', id, floor: highest, entries: [] }] : [];
      return { ops: [op, ...floor], result: user === undefined ? undefined : await view.get<MovedMarker>(keys.meta(movedName(user))) };
    });
    session.created.add(box.id as string);
    if (user !== undefined && cleared && !session.movedBefore.has(user)) session.movedBefore.set(user, cleared);
    return [];
  }
  const uids: number[] = [];
  for await (const [key] of db.entries({ prefix: keys.messagePrefix(id) })) uids.push(decodeMessageKey(key).uid);
  return uids;
}

async function addMessages(store: Store, id: Buffer, messages: XferMessage[]): Promise<number> {
  return store.replication().commitOps(async (ctx) => {
    const box = await ctx.view.get<MailboxInfo>(keys.info(id));
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `XFER: mailbox ${id.toString('hex')} is not here`);
    const ops: Op[] = [];
    const fresh = new Map<string, { pack: number; offset: number }>();
    const floor = modseqAt(ctx.view, ctx.seq);
    const sent = new Set<number>();
    for (const [given, body, givenFlags, date, extras] of messages) {
      // checked as the Store checks its callers': a uid past 2^32 - 1 has no index key (it stopped the store), 0 is none
      const uid = checkUid(given, 'XFER uid');
      // the ops of one request are applied after it is prepared, so the check below cannot see a
      // repeat: its add replaced the first one's message and the mailbox counted both, a refcount too
      if (sent.has(uid)) throw new MailstoreError('INVALID', `XFER: message ${uid} is sent twice in one request; nothing of it was stored`);
      sent.add(uid);
      const flags = checkFlagList(givenFlags);
      if (await ctx.view.get(keys.message(id, uid))) continue; // already here (resumed)
      if (extras.modseq !== undefined && !(Number.isSafeInteger(extras.modseq) && extras.modseq > 0 && extras.modseq < floor)) {
        throw new MailstoreError('INVALID', `XFER: message ${uid} comes with modseq ${extras.modseq}, not below this store's next modseq ${floor} (its mailbox request did not raise it)`);
      }
      const bytes = Buffer.from(body);
      const hash = hashBytes(bytes);
      const { location, isFresh } = await place(ctx, hash, bytes, fresh);
      // the known extras only, checked as an append's: spread whole, a field named size, hash, pack
      // or op replaced the record's own (a size the blob does not have, counted in the mailbox)
      const known = normalizeMessageExtras({ envelopeFrom: extras.envelopeFrom, dateZoneMinutes: extras.dateZone, recent: extras.recent });
      const op: Op = { op: 'message.add', id, uid, hash, size: bytes.length, date, flags, pack: location.pack, offset: location.offset, ...known };
      if (extras.modseq !== undefined) op.modseq = extras.modseq;
      if (isFresh) op.fresh = true;
      ops.push(op);
    }
    checkRecordSize(ops, `XFER of ${ops.length} messages`);
    return { ops, result: ops.length };
  }, { bytes: messages.reduce((sum, [, body]) => sum + body.length + limits.freeSpaceMessageOverheadBytes, 0), mail: true }); // the reserve: mail coming in
}

/** A source's vanished floor (absent: 0), within the modseqs a source may send. */
function checkFloor(floor: unknown): number {
  if (floor === undefined) return 0;
  if (typeof floor !== 'number' || !Number.isSafeInteger(floor) || floor < 0 || floor > limits.xferModseqMax + 1) {
    throw new MailstoreError('INVALID', `XFER: a vanished floor is an integer from 0 to ${limits.xferModseqMax + 1}, got ${String(floor)}`);
  }
  return floor;
}

/**
 * Raises this store's modseq offset so that the next record's modseq is above `highest` (a
 * journaled meta.set, its own record, before any message with a modseq up to `highest` lands):
 * modseqs here never go backwards. Nothing when they are already above.
 */
async function raiseModseqs(store: Store, highest: unknown): Promise<void> {
  if (highest === undefined) return;
  if (typeof highest !== 'number' || !Number.isSafeInteger(highest) || highest < 0 || highest > limits.xferModseqMax) {
    throw new MailstoreError('INVALID', `XFER: a highest modseq is an integer from 0 to ${limits.xferModseqMax}, got ${String(highest)}`);
  }
  await raiseModseqsAbove((prepare) => store.replication().commitOps(prepare), store.replication().db, highest);
}

/** The moved user's quota roots with their limits, as the source had them under its fence ([root, limits] pairs). */
async function setQuotaRoots(store: Store, roots: unknown, rootsBefore: Map<string, QuotaLimits | undefined>): Promise<void> {
  if (!Array.isArray(roots)) throw new MailstoreError('INVALID', 'XFER: quotaRoots must be a list of [root, limits]');
  const ops = roots.map((entry: unknown) => (Array.isArray(entry) ? quotaSetOp(entry[0], entry[1]) : quotaSetOp(undefined, undefined)));
  const db = store.replication().db;
  await db.readNow(() => { // synchronous reads: not in an index reopen
    for (const entry of roots as [string, unknown][]) if (!rootsBefore.has(entry[0])) rootsBefore.set(entry[0], quotaLimitsNow(db, entry[0]));
  });
  if (ops.length > 0) await store.replication().commitOps(async () => ({ ops, result: undefined }));
}

/**
 * A message's flags as the source kept them, within the bounds a record has (limits.flagsPerMessageMax
 * strings of flagBytesMax): not normalized again, so a keyword an older version kept still moves.
 */
function checkFlagList(flags: unknown): string[] {
  if (!Array.isArray(flags) || flags.length > limits.flagsPerMessageMax || flags.some((flag) => typeof flag !== 'string' || Buffer.byteLength(flag) > limits.flagBytesMax)) {
    throw new MailstoreError('INVALID', `XFER: flags must be at most ${limits.flagsPerMessageMax} strings of at most ${limits.flagBytesMax} bytes`);
  }
  return flags as string[];
}

/** As Store.placeBlob: a live copy is shared, anything else is written anew. */
async function place(ctx: PrepareContext, hash: Buffer, bytes: Buffer, fresh: Map<string, { pack: number; offset: number }>) {
  const key = hash.toString('latin1');
  const pending = fresh.get(key);
  if (pending) return { location: pending, isFresh: false };
  const existing = await ctx.view.get<BlobRecord>(keys.blob(hash));
  if (existing && existing.r > 0) return { location: { pack: existing.p, offset: existing.o }, isFresh: false };
  const location = ctx.packs.reserve(hash, bytes);
  fresh.set(key, location);
  return { location, isFresh: true };
}

/**
 * Makes the mailbox match the source's final state (under its write fence): uids the source no
 * longer has are expunged, flags set as there, uidNext raised to the source's (uids are never
 * reused); returns the uids still missing here (the source sends them, then reconciles again).
 */
async function reconcile(store: Store, id: Buffer, live: [number, string[]][], uidNext: number): Promise<number[]> {
  if (!Number.isInteger(uidNext) || uidNext < 1 || uidNext > 0x1_0000_0000) throw new MailstoreError('INVALID', `XFER: uidNext ${uidNext} is no uidNext (1 to 2^32)`);
  const want = new Map(live.map(([uid, flags]) => [checkUid(uid, 'XFER uid'), checkFlagList(flags)]));
  return store.replication().commitOps(async ({ view }) => {
    const box = await view.get<MailboxInfo>(keys.info(id));
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `XFER: mailbox ${id.toString('hex')} is not here`);
    const gone: number[] = [];
    const flags: [number, string[]][] = [];
    const present = new Set<number>();
    for await (const [key, record] of store.replication().db.entries<MessageRecord>({ prefix: keys.messagePrefix(id) })) {
      const { uid } = decodeMessageKey(key);
      present.add(uid);
      const wanted = want.get(uid);
      if (!wanted) gone.push(uid);
      else if (wanted.join('\0') !== record.f.join('\0')) flags.push([uid, wanted]);
    }
    const missing = [...want.keys()].filter((uid) => !present.has(uid));
    const ops: Op[] = [];
    // First: the ops after it read the mailbox record it puts. The source's uidNext, so that uids it
    // gave out and expunged are never given again here.
    if (missing.length === 0 && uidNext > box.uidNext) ops.push({ op: 'state.mailbox', info: { ...box, uidNext } });
    if (flags.length > 0) ops.push({ op: 'message.flags', id, set: flags });
    if (gone.length > 0) ops.push({ op: 'message.expunge', id, uids: gone });
    return { ops, result: missing };
  });
}
