// The public library: a mail server mounts a Store as its message spool. Public methods check and
// normalise their arguments, then hand a Mutation to the group-commit Writer (writes) or read the
// index directly (reads, which see only committed state).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MailstoreError, fromSystemError, isMailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { shadowLevelDb } from '../fs/level-shadow.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { IndexDb } from '../index/index-db.js';
import { encodeCbor } from '../index/codec.js';
import { probeIndex } from '../index/probe.js';
import { keys, decodeChangeKey, decodeMessageKey, decodeNameKey, decodeRightsKey } from '../keys/index-keys.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { PackStore, type BlobLocation } from '../blob/pack-store.js';
import { Journal } from '../journal/journal.js';
import { limits } from '../limits.js';
import { SEEN, meta } from './apply.js';
import { LAYOUT, checkNoWriter, initStore, storeIdBytes, takeLock, verifyIdentity, type StoreIdentity } from './identity.js';
import type { BlobRecord, ChangeRecord, MailboxInfo, MessageRecord, Op, RightsRecord } from './records.js';
import {
  buildIndexAside, compareIndexes, describeLoss, indexCounts, installIndex, moveAside, newHealth, openExistingIndex, rebuildIndex, replay, resolveNewestBatch, resolveTail,
  type Health, type IndexCounts,
} from './recovery.js';
import { swapJournal, writeCheckpointJournal } from './checkpoint.js';
import {
  ALL_RIGHTS, checkArray, checkBytes, checkComponents, checkCount, checkFunction, checkHash, checkModseq, checkObject, checkOptions, checkString, checkUid,
  formatMailboxName, listPatternMatcher, normalizeDate, normalizeFlags, normalizeIdentifier, normalizePattern, normalizeRights, normalizeUids,
  ownCopy, parseMailboxName, patternPrefixComponents,
} from './validate.js';
import { checkQuota } from './quota.js';
import { deleteUser, renameUser, type DeleteUserResult, type RenameUserResult } from './users.js';
import { Writer, type CommitChain, type Mutation, type PrepareContext } from './writer.js';

export interface StoreOptions {
  /** Create the store when the directory is empty or missing. */
  create?: boolean;
  fs?: FileSystem;
  messageBytesMax?: number;
  packBytesMax?: number;
  journalSegmentBytesMax?: number;
  /**
   * Open the index in a child process first, because LevelDB can abort the process on some damaged
   * files: 'after-crash' (default: when the previous owner died holding the lock), 'always', 'never'.
   */
  probeIndex?: 'after-crash' | 'always' | 'never';
  /** While another process holds the store, retry this long before LOCKED (default 0: at once). */
  lockWaitMs?: number;
  /** Called on each retry while waiting for the lock, with the holder ("process 1234") and the time waited. */
  onLockWait?: (holder: string, waitedMs: number) => void;
  /**
   * Open without writing anything in the store: no lock, no recovery, no quarantine, the index read
   * through a private shadow (src/fs/level-shadow.ts). Every change throws ACCESS. An index that
   * is missing, damaged or behind the journal is REFUSED (only a read-write open repairs it, and
   * serving it would show an older state than was acknowledged); LOCKED while a writer runs.
   * README, "Read-only open".
   */
  readOnly?: boolean;
  /**
   * Open even when packs/ (its marker present) holds no pack file while the index refers to blobs,
   * which is otherwise UNMOUNTED: for `scrub --repair --force --source`, which restores them.
   */
  allowMissingPacks?: boolean;
  /** Called after each group commit with its seq range, number of mutations and index keys written. */
  onCommit?: (firstSeq: number, lastSeq: number, mutations: number, indexKeys: number) => void;
}

export interface AppendOptions {
  flags?: string[];
  internalDate?: Date | number | string;
}

export interface AppendResult {
  uid: number;
  uidValidity: number;
  /** BLAKE3-256 of the message, hex. */
  hash: string;
  size: number;
  /** The bytes were already stored: no new blob was written. */
  deduplicated: boolean;
}

export interface MessageInfo {
  uid: number;
  hash: string;
  size: number;
  internalDate: Date;
  flags: string[];
  modseq: number;
}

export interface ReadMessagesOptions {
  /** Start at this uid (the first message at or above it). */
  fromUid?: number;
  /**
   * Called with a message whose bytes fail verification (or whose blob the index does not know),
   * which is then skipped; without it readMessages throws that CORRUPT error when the message's turn comes.
   */
  onCorrupt?: (info: MessageInfo, error: MailstoreError) => void;
}

export interface MessageWithBody {
  info: MessageInfo;
  /** The exact bytes, verified against `info.hash`. */
  body: Buffer;
}

export interface MailboxStatus {
  messages: number;
  unseen: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  /** Sum of the sizes of the mailbox's messages (RFC 8438 STATUS SIZE). */
  bytes: number;
}

export interface MailboxSummary {
  name: string;
  id: string;
  uidValidity: number;
  created: Date;
  pastNames: string[];
  owner?: string;
  acl: Record<string, string>;
}

export interface FlagChange {
  add?: string[];
  remove?: string[];
  replace?: string[];
  /** CONDSTORE: only change messages whose modseq is not above this; the others are returned as `modified`. */
  unchangedSince?: number;
}

export interface StoreStats {
  mailboxes: number;
  messages: number;
  bytesReferenced: number;
  blobs: number;
  bytesStored: number;
  unreferencedBlobs: number;
  packs: number;
  packBytes: number;
  journalSegments: number;
  journalBytes: number;
  dedupRatio: number;
}

/** A rebuild of the index from the journal compared with the index it would replace. */
export interface RebuildComparison {
  differences: number;
  records: number;
  messagesBefore: number;
  messagesAfter: number;
  before: IndexCounts;
  after: IndexCounts;
  /** The journal replayed without damage or gaps and reaches the index's appliedSeq. */
  journalIntact: boolean;
  /** Why not (damage, missing records), as replay reported it. */
  journalProblems: string[];
}

/** One message of a readMessages batch: where its blob is, then its verified body or why not. */
interface PendingRead {
  info: MessageInfo;
  hash: Buffer;
  location?: BlobLocation;
  body?: Buffer;
  error?: unknown;
}

export function uuidString(id: Buffer): string {
  const h = id.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class Store {
  readonly health: Health;
  private closed = false;
  private readonly mailboxCache = new Map<string, MailboxInfo>();
  private cacheGeneration = 0;
  private failure?: MailstoreError;

  private constructor(
    readonly root: string,
    readonly fs: FileSystem,
    readonly identity: StoreIdentity,
    readonly storeId: Buffer,
    /** @internal */ public db: IndexDb,
    /** @internal */ readonly packs: PackStore,
    /** @internal */ readonly journal: Journal,
    private readonly writer: Writer,
    private readonly unlock: () => Promise<void>,
    private readonly messageBytesMax: number,
    health: Health,
    /** Opened with `readOnly`: nothing is written; every change throws ACCESS. */
    readonly readOnly = false,
  ) {
    this.health = health;
  }

  /** Creates a store in an empty or missing directory. */
  static async init(root: string, options: StoreOptions = {}): Promise<Store> {
    await initStore(options.fs ?? nodeFileSystem, root);
    return Store.open(root, options);
  }

  /**
   * Verifies STORE and the markers, takes the lock, resolves the journal tail, replays what the
   * index has not applied (or rebuilds the index from the journal), and finishes interrupted deletes.
   */
  static async open(root: string, options: StoreOptions = {}): Promise<Store> {
    if (options.readOnly) return Store.openReadOnly(root, options);
    const fs = options.fs ?? nodeFileSystem;
    if (options.create && !(await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined))) {
      await initStore(fs, root);
    }
    const identity = await verifyIdentity(fs, root);
    const storeId = storeIdBytes(identity);
    const rootDev = (await fs.stat(root)).dev;
    const { release: unlock, stale } = await takeLock(fs, root, { waitMs: options.lockWaitMs, onWaiting: options.onLockWait });
    const health = newHealth();
    const checkMounted = async (path: string) => {
      const now = await fs.statIfExists(root).catch(() => undefined);
      const id = await fs.statIfExists(join(root, LAYOUT.identity)).catch(() => undefined);
      if (!now || now.dev !== rootDev || !id) {
        throw new MailstoreError('UNMOUNTED', `refusing to create ${path}: the store's file system changed under it (unmounted or replaced); nothing was written`, { path });
      }
    };
    let db: IndexDb | undefined;
    let packs: PackStore | undefined;
    let journal: Journal | undefined;
    try {
      packs = await PackStore.open(fs, join(root, LAYOUT.packs), storeId, {
        packBytesMax: options.packBytesMax ?? limits.packBytesMax, checkMounted,
      });
      journal = await Journal.open(fs, join(root, LAYOUT.journal), storeId, {
        segmentBytesMax: options.journalSegmentBytesMax ?? limits.journalSegmentBytesMax,
        recordBytesMax: limits.journalRecordBytesMax, checkMounted,
      });
      const indexPath = join(root, LAYOUT.index);
      let haveIndex = Boolean(await fs.statIfExists(indexPath));
      const probe = options.probeIndex ?? 'after-crash';
      if (haveIndex && (probe === 'always' || (probe === 'after-crash' && stale))) {
        const result = probeIndex(indexPath);
        if (result.locked) throw new MailstoreError('LOCKED', `the index at ${indexPath} is held by another process: ${result.detail}`, { path: indexPath });
        if (result.system) throw new MailstoreError(result.system, result.detail, { path: indexPath });
        if (!result.ok) {
          health.rebuilt = `index failed its probe: ${result.detail}`;
          await moveAside(fs, root, indexPath, 'index-damaged');
          haveIndex = false;
        }
      }
      const existing = haveIndex ? await openExistingIndex(indexPath, storeId, health) : undefined;
      db = existing?.db;
      if (!existing && !health.rebuilt) health.rebuilt = 'index is missing';
      const highWater = existing?.appliedSeq ?? 0;
      if (existing && !options.allowMissingPacks) {
        await checkPacksPresent(existing.db, packs, root);
      }
      await resolveTail(fs, root, journal, highWater, health);
      await resolveNewestBatch(fs, root, journal, packs, highWater, health);
      if (existing) {
        await replay(journal, existing.db, existing.appliedSeq, health);
      } else {
        if (await fs.statIfExists(indexPath)) await moveAside(fs, root, indexPath, 'index-damaged');
        await rebuildIndex(fs, root, journal, storeId, health);
        db = await IndexDb.open(indexPath, false);
      }
      let store: Store | undefined;
      const writer = new Writer(db!, packs, journal, {
        onStop: (error) => { if (store) store.failure = error; },
        onCommit: (first, last, mutations, indexKeys) => {
          store?.forgetMailboxes();
          options.onCommit?.(first, last, mutations, indexKeys);
        },
      });
      store = new Store(root, fs, identity, storeId, db!, packs, journal, writer, unlock, options.messageBytesMax ?? limits.messageBytesMax, health);
      await store.finishInterruptedDeletes();
      return store;
    } catch (error) {
      await db?.close().catch(() => undefined);
      await packs?.close();
      await journal?.close();
      await unlock().catch(() => undefined);
      throw error instanceof MailstoreError ? error : fromSystemError(error, 'opening store', root);
    }
  }

  /**
   * Open without writing: verify, check that no writer runs, open a shadow of the index, and serve
   * it only if it has applied every record the journal holds. No replay, no tail cut, no rebuild.
   */
  private static async openReadOnly(root: string, options: StoreOptions): Promise<Store> {
    const fs = options.fs ?? nodeFileSystem;
    if (options.create) throw new MailstoreError('INVALID', 'a read-only open cannot create a store', { path: root });
    const identity = await verifyIdentity(fs, root);
    const storeId = storeIdBytes(identity);
    const { stale } = await checkNoWriter(fs, root, { waitMs: options.lockWaitMs, onWaiting: options.onLockWait });
    const indexPath = join(root, LAYOUT.index);
    const repairHint = 'a read-only open does not repair it: open the store read-write once (any writing command, as a user who may write it) and retry';
    if (!(await fs.statIfExists(indexPath))) throw new MailstoreError('REFUSED', `the index at ${indexPath} is missing; ${repairHint}`, { path: indexPath });
    const shadow = await shadowLevelDb(indexPath);
    const health = newHealth();
    let db: IndexDb | undefined, packs: PackStore | undefined, journal: Journal | undefined;
    try {
      const probe = options.probeIndex ?? 'after-crash';
      if (probe === 'always' || (probe === 'after-crash' && stale)) {
        const result = probeIndex(shadow.path);
        if (result.system) throw new MailstoreError(result.system, result.detail, { path: indexPath });
        if (!result.ok) throw new MailstoreError('REFUSED', `the index at ${indexPath} failed its probe (${result.detail}); ${repairHint}`, { path: indexPath });
      }
      const existing = await openExistingIndex(shadow.path, storeId, health);
      if (!existing) throw new MailstoreError('REFUSED', `the index at ${indexPath} cannot be used (${health.rebuilt}); ${repairHint}`, { path: indexPath });
      db = existing.db;
      const noMount = async (path: string) => { throw new MailstoreError('ACCESS', `the store at ${root} is open read-only: not creating ${path}`, { path }); };
      packs = await PackStore.open(fs, join(root, LAYOUT.packs), storeId, { packBytesMax: options.packBytesMax ?? limits.packBytesMax, checkMounted: noMount });
      journal = await Journal.open(fs, join(root, LAYOUT.journal), storeId, {
        segmentBytesMax: options.journalSegmentBytesMax ?? limits.journalSegmentBytesMax, recordBytesMax: limits.journalRecordBytesMax, checkMounted: noMount,
      });
      await checkPacksPresent(db, packs, root);
      await checkIndexCurrent(journal, existing.appliedSeq, health, indexPath, repairHint);
      const writer = new Writer(db, packs, journal, { onStop: () => undefined, onCommit: () => undefined }); // never given work
      return new Store(root, fs, identity, storeId, db, packs, journal, writer, shadow.remove, options.messageBytesMax ?? limits.messageBytesMax, health, true);
    } catch (error) {
      await db?.close().catch(() => undefined);
      await packs?.close();
      await journal?.close();
      await shadow.remove().catch(() => undefined);
      throw error instanceof MailstoreError ? error : fromSystemError(error, 'opening store read-only', root);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.drain();
    this.writer.fail(new MailstoreError('CLOSED', 'the store is closed'));
    await this.packs.close();
    await this.journal.close();
    await this.db.close();
    await this.unlock();
  }

  private live(): void {
    if (this.closed) throw new MailstoreError('CLOSED', `the store at ${this.root} is closed`, { path: this.root });
    if (this.failure) throw this.failure;
  }

  private submit<T>(mutation: Mutation<T>): Promise<T> {
    this.live();
    this.writable();
    return this.writer.submit(mutation);
  }

  /** Every change (and every maintenance write) starts here: refused on a read-only open. */
  private writable(): void {
    if (this.readOnly) throw new MailstoreError('ACCESS', `the store at ${this.root} is open read-only: nothing can be changed`, { path: this.root });
  }

  /** @internal For the administration modules (users.ts, quota.ts, mailbox-list.ts): a raw mutation. */
  mutate<T>(mutation: Mutation<T>): Promise<T> {
    return this.submit(mutation);
  }

  /** @internal Expunges and removes a mailbox whose deleteBegin is committed (users.ts). */
  finishMailboxDelete(id: Buffer): Promise<void> {
    return this.finishDelete(id);
  }

  // ---- users (src/store/users.ts) ----------------------------------------------------------------

  /** Renames user/OLD/... to user/NEW/..., its owner and every ACL entry naming OLD, in one record. */
  renameUser(from: string, to: string): Promise<RenameUserResult> {
    return renameUser(this, from, to);
  }

  /** Deletes user/NAME/... and every ACL entry naming NAME (intent-logged like deleteMailbox). */
  deleteUser(name: string): Promise<DeleteUserResult> {
    return deleteUser(this, name);
  }

  // ---- mailboxes -------------------------------------------------------------------------------

  async createMailbox(name: string, options: { owner?: string; acl?: Record<string, string> } = {}): Promise<MailboxSummary> {
    const components = parseMailboxName(name);
    name = formatMailboxName(components);
    checkOptions(options, ['owner', 'acl'], 'createMailbox option');
    const acl: Record<string, string> = {};
    for (const [who, rights] of Object.entries(options.acl === undefined ? {} : checkObject(options.acl, 'acl'))) acl[normalizeIdentifier(who)] = normalizeRights(rights);
    const owner = options.owner === undefined ? undefined : normalizeIdentifier(options.owner);
    if (owner) acl[owner] = normalizeRights(ALL_RIGHTS);
    checkAclSize(acl, name);
    return this.submit({
      prepare: async ({ view }) => {
        if (await view.get(keys.name(components))) throw new MailstoreError('EXISTS', `mailbox ${name} already exists`, { path: name });
        const last = (await view.get<number>(meta.uidValidityLast)) ?? 0;
        const uidValidity = Math.max(Math.floor(Date.now() / 1000), last + 1);
        const id = Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
        const created = Date.now();
        const op: Op = { op: 'mailbox.create', id, name: components, uidValidity, acl, created };
        if (owner) op.owner = owner;
        return { ops: [op], result: { name, id: uuidString(id), uidValidity, created: new Date(created), pastNames: [], owner, acl } };
      },
    });
  }

  /** Renames a mailbox and its descendants. Moves no data: N, I and R keys only. */
  async renameMailbox(from: string, to: string): Promise<{ renamed: number }> {
    const source = parseMailboxName(from);
    const target = parseMailboxName(to);
    if (target.length > source.length && source.every((c, i) => c === target[i])) {
      throw new MailstoreError('INVALID', `cannot rename ${from} into its own descendant ${to}`, { path: to });
    }
    return this.submit({
      exclusive: true,
      prepare: async ({ view }) => {
        const ops: Op[] = [];
        for await (const [key, id] of this.db.entries<Buffer>({ prefix: keys.name(source) })) {
          const name = decodeNameKey(key);
          const renamed = [...target, ...name.slice(source.length)];
          checkComponents(renamed, (why) => new MailstoreError('INVALID', `renaming ${from} to ${to} would make ${formatMailboxName(renamed)} ${why}`, { path: to }));
          if (await view.get(keys.name(renamed))) throw new MailstoreError('EXISTS', `mailbox ${formatMailboxName(renamed)} already exists`, { path: formatMailboxName(renamed) });
          ops.push({ op: 'mailbox.rename', id: Buffer.from(id), to: renamed });
        }
        if (ops.length === 0) throw new MailstoreError('NOT_FOUND', `no mailbox named ${from} (nor any below it)`, { path: from });
        checkRecordSize(ops, `renaming ${from}`);
        return { ops, result: { renamed: ops.length } };
      },
    });
  }

  /**
   * Deletes a mailbox: an intent record frees the name at once, then its messages are expunged in
   * chunks, then a done record removes it. A crash in between is finished by the next open.
   */
  async deleteMailbox(name: string): Promise<{ messages: number }> {
    const components = parseMailboxName(name);
    const { id, messages } = await this.submit({
      exclusive: true,
      prepare: async ({ view }) => {
        const box = await this.resolve(view, components, name);
        return { ops: [{ op: 'mailbox.deleteBegin', id: box.id } as Op], result: { id: box.id, messages: box.messages } };
      },
    });
    await this.finishDelete(id);
    return { messages };
  }

  private async finishDelete(id: Buffer): Promise<void> {
    for (;;) {
      const finished = await this.submit({
        exclusive: true,
        prepare: async () => {
          const uids: number[] = [];
          for await (const [key] of this.db.entries({ prefix: keys.messagePrefix(id), limit: limits.deleteChunkMessages })) uids.push(decodeMessageKey(key).uid);
          if (uids.length > 0) return { ops: [{ op: 'message.expunge', id, uids, purge: true } as Op], result: false };
          const entries: [number, number][] = [];
          for await (const [key] of this.db.entries({ prefix: keys.changePrefix(id), limit: limits.deleteChunkMessages })) {
            const c = decodeChangeKey(key);
            entries.push([c.modseq, c.uid]);
          }
          if (entries.length > 0) return { ops: [{ op: 'change.purge', id, entries } as Op], result: false };
          return { ops: [{ op: 'mailbox.deleteEnd', id } as Op], result: true };
        },
      });
      if (finished) return;
    }
  }

  private async finishInterruptedDeletes(): Promise<void> {
    const pending: Buffer[] = [];
    for await (const [key] of this.db.entries({ prefix: meta.deletingPrefix })) {
      const hex = key.toString('latin1').split('deleting/')[1]?.replace(/\0$/, '');
      if (hex) pending.push(Buffer.from(hex, 'hex'));
    }
    for (const id of pending) await this.finishDelete(id);
  }

  async listMailboxes(options: { user?: string; pattern?: string } = {}): Promise<{ name: string; id: string; rights?: string }[]> {
    checkOptions(options, ['user', 'pattern'], 'listMailboxes option');
    const pattern = normalizePattern(options.pattern);
    const user = options.user === undefined ? undefined : normalizeIdentifier(options.user);
    this.live();
    const matches = listPatternMatcher(pattern);
    const prefix = patternPrefixComponents(pattern);
    const out: { name: string; id: string; rights?: string }[] = [];
    if (user === undefined) {
      for await (const [key, id] of this.db.entries<Buffer>({ prefix: keys.name(prefix) })) {
        const name = formatMailboxName(decodeNameKey(key));
        if (matches(name)) out.push({ name, id: uuidString(Buffer.from(id)) });
      }
      return out;
    }
    const seen = new Map<string, { name: string; id: string; rights: string }>();
    for (const who of user === 'anyone' ? ['anyone'] : [user, 'anyone']) {
      for await (const [key, value] of this.db.entries<RightsRecord>({ prefix: keys.rights(who, prefix) })) {
        if (!value.rights.includes('l')) continue;
        const name = formatMailboxName(decodeRightsKey(key).components);
        if (!matches(name)) continue;
        const had = seen.get(name);
        const rights = normalizeRights((had?.rights ?? '') + value.rights);
        seen.set(name, { name, id: uuidString(Buffer.from(value.id)), rights });
      }
    }
    return [...seen.values()].sort((a, b) => Buffer.compare(keys.name(parseMailboxName(a.name)), keys.name(parseMailboxName(b.name))));
  }

  async mailbox(name: string): Promise<MailboxSummary> {
    parseMailboxName(name);
    this.live();
    const box = await this.resolveCommitted(name);
    const summary: MailboxSummary = {
      name: formatMailboxName(box.name), id: uuidString(Buffer.from(box.id)), uidValidity: box.uidValidity, created: new Date(box.created),
      pastNames: box.pastNames.map(formatMailboxName), acl: { ...box.acl },
    };
    if (box.owner !== undefined) summary.owner = box.owner;
    return summary;
  }

  async status(name: string): Promise<MailboxStatus> {
    parseMailboxName(name);
    this.live();
    const box = await this.resolveCommitted(name);
    return { messages: box.messages, unseen: box.unseen, uidNext: box.uidNext, uidValidity: box.uidValidity, highestModseq: box.highestModseq, bytes: box.bytes };
  }

  // ---- ACLs ------------------------------------------------------------------------------------

  /** Sets (or with '' removes) the RFC 4314 rights of `identifier`; the reverse map changes in the same record. */
  async setAcl(mailbox: string, identifier: string, rights: string): Promise<void> {
    const components = parseMailboxName(mailbox);
    const who = normalizeIdentifier(identifier);
    const normalized = normalizeRights(rights);
    await this.submit({
      prepare: async ({ view }) => {
        const box = await this.resolve(view, components, mailbox);
        if ((box.acl[who] ?? '') === normalized) return { ops: [], result: undefined };
        if (normalized !== '') checkAclSize({ ...box.acl, [who]: normalized }, mailbox);
        return { ops: [{ op: 'acl.set', id: box.id, identifier: who, rights: normalized } as Op], result: undefined };
      },
    });
  }

  async getAcl(mailbox: string): Promise<Record<string, string>> {
    parseMailboxName(mailbox);
    this.live();
    return { ...(await this.resolveCommitted(mailbox)).acl };
  }

  // ---- messages --------------------------------------------------------------------------------

  async append(mailbox: string, bytes: Uint8Array, options: AppendOptions = {}): Promise<AppendResult> {
    checkOptions(options, ['flags', 'internalDate'], 'append option');
    const [result] = await this.appendBatch(mailbox, [{ bytes, flags: options.flags, internalDate: options.internalDate }]);
    return result;
  }

  /**
   * Appends several messages as one all-or-nothing record (imports). `meta` is stored in the same
   * record, so an import's resume cursor can never disagree with what was imported. Batches
   * given the same `chain` commit in call order, each only if every earlier one did.
   */
  async appendBatch(mailbox: string, items: (AppendOptions & { bytes: Uint8Array })[], options: { meta?: { key: string; value: unknown }; chain?: CommitChain } = {}): Promise<AppendResult[]> {
    const components = parseMailboxName(mailbox);
    checkOptions(options, ['meta', 'chain'], 'appendBatch option');
    if (options.meta !== undefined) checkString(checkObject(options.meta, 'meta').key, 'meta key');
    if (options.chain !== undefined) checkObject(options.chain, 'chain');
    const prepared = checkArray(items, 'appendBatch items').map((entry) => {
      const item = checkObject(entry, 'appendBatch item');
      const given = checkBytes(item.bytes);
      if (given.length > this.messageBytesMax) {
        throw new MailstoreError('TOO_LARGE', `message of ${given.length} bytes exceeds the limit of ${this.messageBytesMax} bytes`, { path: mailbox });
      }
      // The caller may reuse its buffer as soon as we return: hash and write our own copy.
      const bytes = ownCopy(given);
      return { bytes, hash: hashBytes(bytes), flags: normalizeFlags(item.flags), date: normalizeDate(item.internalDate) };
    });
    // Checked before any blob is reserved: the largest uid, pack and offset the record could carry.
    const largest: Op[] = prepared.map((item) => ({
      op: 'message.add', id: Buffer.alloc(16), uid: 0xffffffff, hash: item.hash, size: item.bytes.length, date: item.date, flags: item.flags,
      pack: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, fresh: true,
    }));
    if (options.meta) largest.push({ op: 'meta.set', key: `user/${options.meta.key}`, value: options.meta.value });
    checkRecordSize(largest, `appending ${prepared.length} messages`);
    return this.submit({
      chain: options.chain,
      prepare: async (ctx) => {
        const box = await this.resolve(ctx.view, components, mailbox);
        await checkQuota(this.db, ctx.view, box.name, prepared.reduce((sum, item) => sum + item.bytes.length, 0), prepared.length);
        const ops: Op[] = [];
        const results: AppendResult[] = [];
        const fresh = new Map<string, BlobLocation>();
        let uid = box.uidNext;
        for (const item of prepared) {
          const { location, deduplicated } = await this.placeBlob(ctx, item.hash, item.bytes, fresh);
          const op: Op = { op: 'message.add', id: box.id, uid, hash: item.hash, size: item.bytes.length, date: item.date, flags: item.flags, pack: location.pack, offset: location.offset };
          if (!deduplicated) op.fresh = true;
          ops.push(op);
          results.push({ uid, uidValidity: box.uidValidity, hash: hashHex(item.hash), size: item.bytes.length, deduplicated });
          uid++;
        }
        if (options.meta) ops.push({ op: 'meta.set', key: `user/${options.meta.key}`, value: options.meta.value });
        return { ops, result: results };
      },
    });
  }

  /** Where a blob lives: an existing copy (dedup, also within the batch) or a new pack record. */
  private async placeBlob(ctx: PrepareContext, hash: Buffer, bytes: Buffer, fresh: Map<string, BlobLocation>): Promise<{ location: { pack: number; offset: number }; deduplicated: boolean }> {
    const key = hash.toString('latin1');
    const pending = fresh.get(key);
    if (pending) return { location: pending, deduplicated: true };
    const existing = await ctx.view.get<BlobRecord>(keys.blob(hash));
    if (existing) return { location: { pack: existing.p, offset: existing.o }, deduplicated: true };
    const location = ctx.packs.reserve(hash, bytes);
    fresh.set(key, location);
    return { location, deduplicated: false };
  }

  /** A value stored with appendBatch's `meta` option (import cursors). */
  async getMeta<T>(key: string): Promise<T | undefined> {
    checkString(key, 'meta key');
    this.live();
    return this.db.get<T>(meta.named(`user/${key}`));
  }

  async messageInfo(mailbox: string, uid: number): Promise<MessageInfo> {
    parseMailboxName(mailbox);
    const checked = checkUid(uid);
    this.live();
    const box = await this.resolveCommitted(mailbox);
    const record = await this.db.get<MessageRecord>(keys.message(box.id, checked));
    if (!record) throw new MailstoreError('NOT_FOUND', `no message with uid ${uid} in ${mailbox}`, { path: `${mailbox}/${uid}` });
    return toInfo(checked, record);
  }

  /** Every message of a mailbox in uid order (metadata only). */
  async *messages(mailbox: string, options: { fromUid?: number } = {}): AsyncGenerator<MessageInfo> {
    parseMailboxName(mailbox);
    checkOptions(options, ['fromUid'], 'messages option');
    const fromUid = options.fromUid === undefined ? 1 : checkUid(options.fromUid, 'fromUid');
    this.live();
    const box = await this.resolveCommitted(mailbox);
    const gte = keys.message(box.id, fromUid);
    for await (const [key, record] of this.db.entries<MessageRecord>({ gte, lt: prefixEnd(keys.messagePrefix(box.id)) })) {
      yield toInfo(decodeMessageKey(key).uid, record);
    }
  }

  /** The message's exact bytes, verified against its hash (CORRUPT otherwise). */
  async fetch(mailbox: string, uid: number): Promise<Buffer> {
    const { record, blob } = await this.locate(mailbox, uid);
    return this.packs.read({ pack: blob.p, offset: blob.o, length: blob.l }, Buffer.from(record.h));
  }

  /**
   * Every message of a mailbox with its bytes, in uid order, each verified against its hash before
   * it is yielded (IMAP FETCH 1:* BODY[], export). The index is read a batch at a time, the next
   * batch's records while this batch's bodies are read, and a batch's bodies are read in pack order;
   * at most limits.readBatchBytes of bodies (or one bigger message) are held. A message that fails
   * verification throws, as fetch would, once every message before it was yielded.
   */
  async *readMessages(mailbox: string, options: ReadMessagesOptions = {}): AsyncGenerator<MessageWithBody> {
    parseMailboxName(mailbox);
    checkOptions(options, ['fromUid', 'onCorrupt'], 'readMessages option');
    const fromUid = options.fromUid === undefined ? 1 : checkUid(options.fromUid, 'fromUid');
    if (options.onCorrupt !== undefined) checkFunction(options.onCorrupt, 'onCorrupt');
    this.live();
    const box = this.committedBox(mailbox);
    const batches = this.db.entryBatches<MessageRecord>({ gte: keys.message(box.id, fromUid), lt: prefixEnd(keys.messagePrefix(box.id)) }, limits.readBatchMessages);
    const readAhead = () => {
      const batch = this.locateBatch(mailbox, batches);
      batch.catch(() => undefined); // awaited later: a failure meanwhile is not unhandled
      return batch;
    };
    let next = readAhead();
    try {
      for (let batch = await next; batch; batch = await next) {
        next = readAhead();
        for (const group of byteGroups(batch, limits.readBatchBytes)) {
          await this.readGroup(group);
          for (const item of group) {
            if (item.error === undefined) {
              const body = item.body!;
              item.body = undefined; // the consumer may let go of it before the group ends
              yield { info: item.info, body };
            } else if (options.onCorrupt && isMailstoreError(item.error, 'CORRUPT')) {
              options.onCorrupt(item.info, item.error);
            } else {
              throw item.error;
            }
          }
        }
      }
    } finally {
      await batches.return(undefined); // closes the iterator once a pending read-ahead is done
    }
  }

  /** The next batch of message records, each with its blob's location (one getMany). */
  private async locateBatch(mailbox: string, batches: AsyncGenerator<[Buffer, MessageRecord][]>): Promise<PendingRead[] | undefined> {
    let entries: [Buffer, MessageRecord][] | void;
    try {
      entries = (await batches.next()).value;
    } catch (error) {
      this.live(); // a store closed meanwhile is CLOSED, not an index read error
      throw error;
    }
    if (!entries) return undefined;
    this.live();
    const blobs = await this.db.getMany<BlobRecord>(entries.map(([, record]) => keys.blob(record.h)));
    return entries.map(([key, record], i): PendingRead => {
      const info = toInfo(decodeMessageKey(key).uid, record);
      const blob = blobs[i];
      if (blob instanceof MailstoreError) return { info, hash: record.h, error: blob };
      if (!blob) return { info, hash: record.h, error: unknownBlob(mailbox, info.uid, record.h) };
      return { info, hash: record.h, location: { pack: blob.p, offset: blob.o, length: blob.l } };
    });
  }

  /**
   * Reads and verifies a group's bodies in pack order; a failure is kept for the message's turn.
   * Pack reads are synchronous, so it lets the event loop run every limits.readTurnBytes or
   * limits.readTurnMessages: the read-ahead (and a server's other clients) go on meanwhile.
   */
  private async readGroup(group: PendingRead[]): Promise<void> {
    const located = group.filter((item) => item.location);
    located.sort((a, b) => a.location!.pack - b.location!.pack || a.location!.offset - b.location!.offset);
    let bytesSinceTurn = 0, messagesSinceTurn = 0;
    for (const item of located) {
      try {
        item.body = await this.packs.read(item.location!, item.hash);
      } catch (error) {
        item.error = error;
      }
      bytesSinceTurn += item.location!.length;
      if (bytesSinceTurn >= limits.readTurnBytes || ++messagesSinceTurn >= limits.readTurnMessages) {
        bytesSinceTurn = 0;
        messagesSinceTurn = 0;
        await nextTurn();
      }
    }
  }

  /** Streams a big message: verified in a first pass, then handed out, so no unverified byte leaves. */
  async fetchStream(mailbox: string, uid: number): Promise<Readable> {
    const { record, blob } = await this.locate(mailbox, uid);
    return Readable.from(this.packs.readStream({ pack: blob.p, offset: blob.o, length: blob.l }, Buffer.from(record.h), limits.readChunkBytes));
  }

  /** Reads a blob by hash (repair sources, export); verified. */
  async fetchBlob(hash: Buffer): Promise<Buffer> {
    hash = checkHash(hash);
    this.live();
    const blob = await this.db.get<BlobRecord>(keys.blob(hash));
    if (!blob) throw new MailstoreError('NOT_FOUND', `no blob ${hashHex(hash)}`, { path: hashHex(hash) });
    return this.packs.read({ pack: blob.p, offset: blob.o, length: blob.l }, hash);
  }

  private async locate(mailbox: string, uid: number): Promise<{ record: MessageRecord; blob: BlobRecord }> {
    parseMailboxName(mailbox);
    const checked = checkUid(uid);
    this.live();
    const box = this.committedBox(mailbox);
    const record = await this.db.get<MessageRecord>(keys.message(box.id, checked));
    if (!record) throw new MailstoreError('NOT_FOUND', `no message with uid ${uid} in ${mailbox}`, { path: `${mailbox}/${uid}` });
    const blob = await this.db.get<BlobRecord>(keys.blob(record.h));
    if (!blob) throw unknownBlob(mailbox, uid, record.h);
    return { record, blob };
  }

  async setFlags(mailbox: string, uids: number | number[], change: FlagChange): Promise<{ modseq: number; updated: number[]; modified: number[] }> {
    const components = parseMailboxName(mailbox);
    const list = normalizeUids(uids);
    checkOptions(checkObject(change, 'flag change'), ['add', 'remove', 'replace', 'unchangedSince'], 'flag change field');
    const add = normalizeFlags(change.add);
    const remove = normalizeFlags(change.remove);
    const replace = change.replace === undefined ? undefined : normalizeFlags(change.replace);
    if (replace && (add.length || remove.length)) throw new MailstoreError('INVALID', 'use either replace or add/remove, not both');
    const since = change.unchangedSince === undefined ? undefined : checkModseq(change.unchangedSince, 'unchangedSince');
    return this.submit({
      prepare: async ({ view, seq }) => {
        const box = await this.resolve(view, components, mailbox);
        const set: [number, string[]][] = [];
        const modified: number[] = [];
        for (const uid of list) {
          const record = await view.get<MessageRecord>(keys.message(box.id, uid));
          if (!record) continue;
          if (since !== undefined && record.m > since) { modified.push(uid); continue; }
          const next = replace ?? [...new Set([...record.f.filter((f) => !remove.includes(f)), ...add])].sort();
          if (next.length > limits.flagsPerMessageMax) {
            throw new MailstoreError('INVALID', `message ${uid} in ${mailbox} would have ${next.length} flags; at most ${limits.flagsPerMessageMax} are kept per message`, { path: `${mailbox}/${uid}` });
          }
          if (next.length !== record.f.length || next.some((f, i) => f !== record.f[i])) set.push([uid, next]);
        }
        if (set.length === 0) return { ops: [], result: { modseq: box.highestModseq, updated: [], modified } };
        const ops: Op[] = [{ op: 'message.flags', id: box.id, set }];
        checkRecordSize(ops, `setting flags on ${set.length} messages`);
        return { ops, result: { modseq: seq, updated: set.map(([u]) => u), modified } };
      },
    });
  }

  async expunge(mailbox: string, uids: number | number[]): Promise<{ expunged: number[]; modseq: number }> {
    const components = parseMailboxName(mailbox);
    const list = normalizeUids(uids);
    return this.submit({
      prepare: async ({ view, seq }) => {
        const box = await this.resolve(view, components, mailbox);
        const present: number[] = [];
        for (const uid of list) if (await view.get(keys.message(box.id, uid))) present.push(uid);
        if (present.length === 0) return { ops: [], result: { expunged: [], modseq: box.highestModseq } };
        const ops: Op[] = [{ op: 'message.expunge', id: box.id, uids: present }];
        checkRecordSize(ops, `expunging ${present.length} messages`);
        return { ops, result: { expunged: present, modseq: seq } };
      },
    });
  }

  /** Copies messages (no new blob: references only). Returns COPYUID-style pairs. */
  copy(from: string, uids: number | number[], to: string): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer(from, uids, to, false);
  }

  /** Moves messages: the copy and the expunge are one record, so a crash never leaves both or neither. */
  move(from: string, uids: number | number[], to: string): Promise<{ uidValidity: number; mapping: [number, number][] }> {
    return this.transfer(from, uids, to, true);
  }

  private async transfer(from: string, uids: number | number[], to: string, expungeSource: boolean) {
    const source = parseMailboxName(from);
    const target = parseMailboxName(to);
    const list = normalizeUids(uids);
    return this.submit({
      prepare: async ({ view }) => {
        const src = await this.resolve(view, source, from);
        const dst = await this.resolve(view, target, to);
        if (src.id.equals(dst.id) && expungeSource) throw new MailstoreError('INVALID', `cannot move ${from} into itself`);
        const ops: Op[] = [];
        const mapping: [number, number][] = [];
        let uid = dst.uidNext;
        for (const srcUid of list) {
          const record = await view.get<MessageRecord>(keys.message(src.id, srcUid));
          if (!record) continue;
          const blob = await view.get<BlobRecord>(keys.blob(Buffer.from(record.h)));
          if (!blob) throw new MailstoreError('CORRUPT', `message ${srcUid} in ${from} refers to an unknown blob; run 'mailstore scrub'`);
          ops.push({ op: 'message.add', id: dst.id, uid, hash: Buffer.from(record.h), size: record.s, date: record.d, flags: record.f, pack: blob.p, offset: blob.o });
          mapping.push([srcUid, uid++]);
        }
        const added = ops.reduce((sum, op) => sum + (op.op === 'message.add' ? op.size : 0), 0);
        await checkQuota(this.db, view, dst.name, added, mapping.length, expungeSource ? src.name : undefined);
        if (expungeSource && mapping.length > 0) ops.push({ op: 'message.expunge', id: src.id, uids: mapping.map(([s]) => s) });
        checkRecordSize(ops, `${expungeSource ? 'moving' : 'copying'} ${mapping.length} messages`);
        return { ops, result: { uidValidity: dst.uidValidity, mapping } };
      },
    });
  }

  /** CONDSTORE/QRESYNC: messages changed and uids expunged after `modseq`. */
  async changesSince(mailbox: string, modseq: number): Promise<{ changed: MessageInfo[]; vanished: number[]; highestModseq: number }> {
    parseMailboxName(mailbox);
    checkModseq(modseq);
    this.live();
    const box = await this.resolveCommitted(mailbox);
    const changed: MessageInfo[] = [];
    const vanished: number[] = [];
    for await (const [key, value] of this.db.entries<ChangeRecord>({ gte: keys.changeFrom(box.id, modseq + 1), lt: prefixEnd(keys.changePrefix(box.id)) })) {
      const c = decodeChangeKey(key);
      if (value === 1) { vanished.push(c.uid); continue; }
      const record = await this.db.get<MessageRecord>(keys.message(box.id, c.uid));
      if (record) changed.push(toInfo(c.uid, record));
    }
    changed.sort((a, b) => a.uid - b.uid);
    vanished.sort((a, b) => a - b);
    return { changed, vanished, highestModseq: box.highestModseq };
  }

  async stats(): Promise<StoreStats> {
    this.live();
    let mailboxes = 0, messages = 0, bytesReferenced = 0, blobs = 0, bytesStored = 0, unreferencedBlobs = 0, liveBytes = 0;
    for await (const [, box] of this.db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
      if (box.deleting) continue;
      mailboxes++;
      messages += box.messages;
      bytesReferenced += box.bytes;
    }
    for await (const [, blob] of this.db.entries<BlobRecord>({ prefix: keys.space(SPACE.blob) })) {
      blobs++;
      bytesStored += blob.l;
      if (blob.r === 0) unreferencedBlobs++;
      else liveBytes += blob.l;
    }
    let packBytes = 0;
    const packList = await this.packs.listPacks();
    for (const p of packList) packBytes += (await this.fs.stat(this.packs.path(p))).size;
    let journalBytes = 0;
    for (const name of this.journal.segmentNames) journalBytes += (await this.fs.stat(this.journal.path(name))).size;
    return {
      mailboxes, messages, bytesReferenced, blobs, bytesStored, unreferencedBlobs, packs: packList.length, packBytes,
      journalSegments: this.journal.segmentNames.length, journalBytes, dedupRatio: liveBytes === 0 ? 1 : bytesReferenced / liveBytes,
    };
  }

  // ---- maintenance (scrub, repair, reconstruct) ------------------------------------------------

  /** Runs `fn` while no batch commits: a consistent view of the index for cross-checks. */
  async runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    checkFunction(fn, 'runExclusive argument');
    if (this.readOnly) { // nothing commits in a read-only store: every read is already consistent
      this.live();
      return fn();
    }
    // What fn throws is its caller's (a scrub, a guard refusing a rebuild), not a broken invariant
    // of the writer's, which would halt the store: it is carried out as a result and thrown here.
    const outcome = await this.submit<{ value: T } | { error: unknown }>({
      exclusive: true,
      prepare: async () => {
        await this.db.settle(); // raw iterators (scrub, compare) must not miss a batch still landing
        try {
          return { ops: [], result: { value: await fn() } };
        } catch (error) {
          return { ops: [], result: { error } };
        }
      },
    });
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }

  /**
   * Writes verified good copies of damaged blobs (from a replica or a copy) as new pack records and
   * points the index at them. The damaged records stay where they are, unreferenced.
   */
  async relocateBlobs(given: { hash: Buffer; bytes: Buffer }[]): Promise<number> {
    const items = checkArray(given, 'relocateBlobs items').map((entry) => {
      const item = checkObject(entry, 'relocateBlobs item');
      const hash = checkHash(item.hash);
      const bytes = ownCopy(checkBytes(item.bytes)); // hashed and written as it is now, whatever the caller does next
      if (!hashBytes(bytes).equals(hash)) throw new MailstoreError('INVALID', `relocate of ${hashHex(hash)} with bytes of another hash`, { path: hashHex(hash) });
      return { hash, bytes };
    });
    checkRecordSize(items.map((item) => ({ op: 'blob.relocate', hash: item.hash, pack: 0xffffffff, offset: Number.MAX_SAFE_INTEGER, size: item.bytes.length })), `relocating ${items.length} blobs`);
    return this.submit({
      prepare: async ({ view, packs }) => {
        const ops: Op[] = [];
        for (const item of items) {
          if (!(await view.get<BlobRecord>(keys.blob(item.hash)))) continue;
          const location = packs.reserve(item.hash, item.bytes);
          ops.push({ op: 'blob.relocate', hash: item.hash, pack: location.pack, offset: location.offset, size: item.bytes.length });
        }
        return { ops, result: ops.length };
      },
    });
  }

  /**
   * Files blobs that are already in the packs (found by a pack scan) as messages of `mailbox`,
   * without rewriting their bytes: reconstruct --from-packs uses it for lost+found.
   */
  async adoptBlobs(mailbox: string, given: { hash: Buffer; size: number; date: number; pack: number; offset: number }[]): Promise<number> {
    const components = parseMailboxName(mailbox);
    const items = checkArray(given, 'adoptBlobs items').map((entry) => {
      const item = checkObject(entry, 'adoptBlobs item');
      return {
        hash: checkHash(item.hash), size: checkCount(item.size, 'size'), date: adoptedDate(item.date),
        pack: checkCount(item.pack, 'pack'), offset: checkCount(item.offset, 'offset'),
      };
    });
    return this.submit({
      prepare: async ({ view }) => {
        const box = await this.resolve(view, components, mailbox);
        let uid = box.uidNext;
        const ops: Op[] = items.map((item) => ({ op: 'message.add', id: box.id, uid: uid++, hash: item.hash, size: item.size, date: item.date, flags: [], pack: item.pack, offset: item.offset }));
        checkRecordSize(ops, `adopting ${ops.length} blobs`);
        return { ops, result: ops.length };
      },
    });
  }

  /**
   * Rebuilds the index from the journal into a fresh LevelDB while the writer is held, then swaps
   * it in. With `check`, builds aside and only compares. Returns the keys that differ, what each
   * index holds, and whether the journal replayed whole (no damage, no gap, reaching the index's
   * appliedSeq): when it did not, the index it would replace may hold more than the journal.
   */
  async reconstructIndex(options: {
    check?: boolean;
    onDifference?: (key: Buffer, detail: string) => void;
    /** Called with the comparison before the swap; throwing aborts it (sanity gates). */
    guard?: (result: RebuildComparison) => void;
  } = {}): Promise<RebuildComparison> {
    checkOptions(options, ['check', 'onDifference', 'guard'], 'reconstructIndex option');
    if (options.check !== undefined && typeof options.check !== 'boolean') throw new MailstoreError('INVALID', 'reconstructIndex check must be a boolean');
    if (options.onDifference !== undefined) checkFunction(options.onDifference, 'onDifference');
    if (options.guard !== undefined) checkFunction(options.guard, 'guard');
    this.writable(); // it builds index.rebuild/ in the store, even with `check`
    return this.runExclusive(async () => {
      const rebuildHealth = newHealth();
      const built = await buildIndexAside(this.fs, this.root, this.journal, this.storeId, rebuildHealth);
      let installed = false;
      try {
        const appliedSeq = (await this.db.get<number>(meta.appliedSeq)) ?? 0;
        const fresh = await IndexDb.open(built.path, false);
        let result: RebuildComparison;
        try {
          let differences = 0;
          for await (const diff of compareIndexes(this.db, fresh)) {
            if (diff.key[0] === SPACE.meta) continue;
            differences++;
            options.onDifference?.(diff.key, diff.detail);
          }
          const before = await indexCounts(this.db);
          const after = await indexCounts(fresh);
          result = {
            differences, records: built.records, messagesBefore: before.messages, messagesAfter: after.messages, before, after,
            journalIntact: !rebuildHealth.degraded && built.lastSeq >= appliedSeq,
            journalProblems: built.lastSeq >= appliedSeq ? rebuildHealth.findings : [...rebuildHealth.findings, `the journal ends at ${built.lastSeq}, the index has applied ${appliedSeq}`],
          };
        } finally {
          await fresh.close();
        }
        if (options.check) return result;
        options.guard?.(result);
        await this.swapIndex(built.path);
        installed = true;
        return result;
      } finally {
        if (!installed) await this.fs.removeTree(built.path).catch(() => undefined);
      }
    });
  }

  /**
   * Writes a new journal from the index (a checkpoint of its whole state, docs/FORMAT.md) and swaps
   * it in, the old journal to quarantine/: when the journal is lost or damaged and the index holds
   * more. Before the swap the new journal is replayed aside and must reproduce this index's
   * messages, mailboxes and ACL entries; that replayed index then replaces this one.
   */
  async rewriteJournalFromIndex(): Promise<{ records: number; firstSeq: number; lastSeq: number; differences: number; counts: IndexCounts; replaced?: string }> {
    return this.runExclusive(async () => {
      const appliedSeq = (await this.db.get<number>(meta.appliedSeq)) ?? 0;
      const firstSeq = Math.max(appliedSeq, this.journal.lastSeq) + 1;
      const written = await writeCheckpointJournal(this.fs, this.root, this.db, this.storeId, this.identity.storeId, appliedSeq, firstSeq, this.journal.segmentBytesMax);
      const journal = await Journal.open(this.fs, written.path, this.storeId, {
        segmentBytesMax: this.journal.segmentBytesMax, recordBytesMax: limits.journalRecordBytesMax,
        checkMounted: async () => { throw new Error('assertion failed: a journal being verified is never written'); },
      });
      const health = newHealth();
      const built = await buildIndexAside(this.fs, this.root, journal, this.storeId, health);
      let installed = false;
      try {
        const fresh = await IndexDb.open(built.path, false);
        let differences = 0;
        let counts: IndexCounts;
        try {
          for await (const diff of compareIndexes(this.db, fresh)) if (!diff.key.equals(meta.appliedSeq)) differences++;
          counts = await indexCounts(this.db);
          const after = await indexCounts(fresh);
          const lost = describeLoss(counts, after);
          if (health.degraded || lost || after.messages !== counts.messages || after.mailboxes !== counts.mailboxes) {
            throw new Error(`assertion failed: the journal written from the index does not reproduce it (${lost || health.findings.slice(0, 3).join('; ')}); nothing was changed`);
          }
        } finally {
          await fresh.close();
        }
        await this.journal.close();
        const replaced = await swapJournal(this.fs, this.root);
        await this.swapIndex(built.path);
        installed = true;
        await this.journal.reload();
        return { records: written.records, firstSeq: written.firstSeq, lastSeq: written.lastSeq, differences, counts, replaced };
      } finally {
        if (!installed) {
          await this.fs.removeTree(built.path).catch(() => undefined);
          await this.fs.removeTree(written.path).catch(() => undefined);
        }
      }
    });
  }

  /** Installs a built index (the old one to quarantine/) and points everything at it. */
  private async swapIndex(builtPath: string): Promise<void> {
    await this.db.close();
    await installIndex(this.fs, this.root, builtPath);
    this.db = await IndexDb.open(join(this.root, LAYOUT.index), false);
    this.writer.replaceIndex(this.db);
    this.forgetMailboxes();
    await this.packs.forgetReadHandles();
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Resolves a name inside a batch (sees the batch's own pending changes). */
  private async resolve(view: PrepareContext['view'], components: string[], name: string): Promise<MailboxInfo> {
    const id = await view.get<Buffer>(keys.name(components));
    const box = id ? await view.get<MailboxInfo>(keys.info(Buffer.from(id))) : undefined;
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
    return { ...box, id: Buffer.from(box.id) };
  }

  /**
   * Committed mailbox by name, through a small cache that every commit (and an index swap) clears:
   * a read-heavy server resolves the same few names again and again.
   */
  private async resolveCommitted(name: string): Promise<MailboxInfo> {
    const box = this.committedBox(name);
    return { ...box, id: Buffer.from(box.id) };
  }

  /** resolveCommitted without the copy, for per-message reads: the caller must not change it. */
  private committedBox(name: string): Readonly<MailboxInfo> {
    const cached = this.mailboxCache.get(name);
    if (cached) return cached;
    const generation = this.cacheGeneration;
    const components = parseMailboxName(name);
    const id = this.db.getNow<Buffer>(keys.name(components));
    const box = id ? this.db.getNow<MailboxInfo>(keys.info(Buffer.from(id))) : undefined;
    if (!box || box.deleting) throw new MailstoreError('NOT_FOUND', `no mailbox named ${name}`, { path: name });
    if (generation === this.cacheGeneration) {
      if (this.mailboxCache.size >= limits.mailboxCacheEntries) this.mailboxCache.clear();
      this.mailboxCache.set(name, box);
    }
    return box;
  }

  /** @internal Called on every commit: the cache must never show an older state than the index. */
  forgetMailboxes(): void {
    this.cacheGeneration++;
    this.mailboxCache.clear();
  }
}

/**
 * A found message's date comes from its Date: header, which may say anything: one outside the
 * store's range is filed as unknown (the epoch, as an unreadable header is) rather than refused,
 * since refusing would leave the message out of lost+found.
 */
function adoptedDate(date: unknown): number {
  if (typeof date !== 'number' || !Number.isFinite(date)) throw new MailstoreError('INVALID', `adoptBlobs date must be a number of ms, got ${String(date)}`);
  const ms = Math.trunc(date);
  return ms < limits.internalDateMsMin || ms > limits.internalDateMsMax ? limits.internalDateMsMin : ms;
}

/**
 * One call is one journal record, and open reads a record above limits.journalRecordBytesMax as
 * damage: a call that would write one (a copy of 100,000 messages, many long keywords) is refused
 * before anything is written, and the caller splits it.
 */
function checkRecordSize(ops: Op[], doing: string): void {
  const bytes = encodeCbor({ ops, end: true }).length;
  if (bytes > limits.journalRecordBytesMax) {
    throw new MailstoreError('INVALID', `${doing} would make one journal record of ${bytes} bytes (at most ${limits.journalRecordBytesMax}); split it into smaller calls`);
  }
}

/** The ACL a change would leave must stay within limits.aclEntriesPerMailboxMax entries. */
function checkAclSize(acl: Record<string, string>, mailbox: string): void {
  const entries = Object.values(acl).filter((rights) => rights !== '').length;
  if (entries > limits.aclEntriesPerMailboxMax) {
    throw new MailstoreError('INVALID', `the ACL of ${mailbox} would have ${entries} entries; at most ${limits.aclEntriesPerMailboxMax} are kept per mailbox`, { path: mailbox });
  }
}

function toInfo(uid: number, record: MessageRecord): MessageInfo {
  return { uid, hash: hashHex(record.h), size: record.s, internalDate: new Date(record.d), flags: [...record.f], modseq: record.m };
}

function unknownBlob(mailbox: string, uid: number, hash: Uint8Array): MailstoreError {
  return new MailstoreError('CORRUPT', `message ${uid} in ${mailbox} refers to blob ${hashHex(hash)}, which the index does not know; run 'mailstore scrub'`, { path: `${mailbox}/${uid}` });
}

/** Splits a batch, in order, into runs of at most `bytesMax` body bytes (a bigger message alone). */
function byteGroups(batch: PendingRead[], bytesMax: number): PendingRead[][] {
  const groups: PendingRead[][] = [];
  let group: PendingRead[] = [];
  let bytes = 0;
  for (const item of batch) {
    const length = item.location?.length ?? 0;
    if (group.length > 0 && bytes + length > bytesMax) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += length;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/**
 * A read-only open serves the index only when it has applied every valid record of the journal:
 * records beyond its watermark would need a replay (and the newest batch the durability check of
 * recovery.ts), which writes. Serving the index without them would show an older state than was
 * acknowledged, silently; so it is refused. Torn bytes after the last valid record are ignored
 * (a read-write open cuts them); an index ahead of the journal is served, as a read-write open would.
 */
async function checkIndexCurrent(journal: Journal, appliedSeq: number, health: Health, indexPath: string, repairHint: string): Promise<void> {
  const { lastSeq } = await journal.findTail();
  journal.takeTailRecords(); // not needed: let them go
  if (lastSeq > appliedSeq) {
    throw new MailstoreError('REFUSED', `the index has not applied journal records ${appliedSeq + 1}..${lastSeq} (the last writer stopped without closing the store); ${repairHint}`, { path: indexPath });
  }
  if (appliedSeq > lastSeq) {
    health.degraded = true;
    health.findings.push(`the index has applied journal records up to ${appliedSeq} but the journal ends at ${lastSeq}: journal records are missing`);
  }
}

/** packs/ with no pack files while the index refers to blobs: a vanished partition, not an empty store. */
async function checkPacksPresent(db: IndexDb, packs: PackStore, root: string): Promise<void> {
  if ((await packs.listPacks()).length > 0) return;
  for await (const _ of db.entries({ prefix: keys.space(SPACE.blob), limit: 1 })) {
    throw new MailstoreError('UNMOUNTED', `${join(root, LAYOUT.packs)} holds no packs but the index refers to stored messages: is the partition mounted? Nothing was changed.`, { path: join(root, LAYOUT.packs) });
  }
}

export { SEEN };
