// Import: mail from mbox, Maildir(++) or .eml files into mailboxes, in batches through appendBatch.
// Each batch carries the folder's resume cursor in its own journal record, so a re-run after a
// crash or Ctrl-C skips exactly what is in and adds nothing twice. Bytes are stored as they are:
// a store keeps mail, it does not judge MIME.
import { MailstoreError, assert, isMailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import type { MailFormat } from '../formats/detect.js';
import type { SkipReason } from '../formats/eml.js';
import type { MboxStyle } from '../formats/mbox.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { importLimits, limits } from '../limits.js';
import type { MailStore } from '../store/api.js';
import type { AppendOptions } from '../store/store.js';
import type { CommitChain } from '../store/writer.js';
import { formatMailboxName, handOver, normalizeFlags, normalizeIdentifier, parseMailboxName } from '../store/validate.js';
import { CURSOR_VERSION, cursorKey, isImportCursor, type ImportCursor } from './cursor.js';
import { openSource, type SourceFolder, type SourceMessage, type SourceSkipHandler } from './sources.js';
import { monotonicMs } from '../monotonic.js';

/**
 * Where the source's folders go. `flat`: the source's root folder is the target mailbox, its
 * folders are children of it (NAME, NAME/Sent). `user`: the target is a user's tree, as Dovecot
 * and Cyrus lay one out: the root folder is NAME/INBOX and its folders sit beside it (NAME/Sent).
 */
export type ImportLayout = 'user' | 'flat';

export interface ImportOptions {
  /** Target mailbox; the source's folders become mailboxes below it (see layout). Created when missing. */
  mailbox: string;
  /** Default: `user` when mailbox is a user's tree `user/NAME`, else `flat`. */
  layout?: ImportLayout;
  format?: MailFormat;
  mboxStyle?: MboxStyle;
  /**
   * Owner of the mailboxes the import creates: all rights, so they are the owner's to see. Default:
   * NAME when mailbox is user/NAME or below it. Mailboxes that already exist keep their ACL.
   */
  owner?: string;
  /** A directory of message files: every file below it into the one mailbox (subdirectories are no folders). */
  flatten?: boolean;
  batchMessagesMax?: number;
  batchBytesMax?: number;
  /** Ignore resume cursors and import the whole source again (duplicates what was imported). */
  restart?: boolean;
  fs?: FileSystem;
  /** Checked after every committed batch: true stops the import there (Ctrl-C). */
  shouldStop?: () => boolean;
  onBatch?: (batch: BatchReport) => void;
  /** Told about each entry left out (see SkipReason); the next run of the same import retries it. */
  onSkip?: ImportSkipHandler;
  /** Larger messages are skipped and reported (default limits.messageBytesMax). */
  messageBytesMax?: number;
  /** A warning for the admin that does not stop the import (dropped invalid flags, stale cursors). */
  onWarning?: (text: string) => void;
  /** Called with each message read (before its batch commits): for the progress meter. */
  onRead?: (message: SourceMessage, folder: SourceFolder) => void;
}

export type ImportSkipHandler = (path: string, error: MailstoreError, reason: SkipReason) => void;

export interface BatchReport {
  mailbox: string;
  messages: number;
  bytes: number;
  /** Messages durable in the store from this import run so far. */
  importedTotal: number;
}

export interface MailboxImportSummary {
  mailbox: string;
  source: string;
  imported: number;
  bytes: number;
  deduplicated: number;
  /** Already imported by an earlier, interrupted run of the same import. */
  alreadyImported: number;
}

export interface ImportSummary {
  source: string;
  format: MailFormat;
  layout: ImportLayout;
  /** Owner given to the mailboxes the import created (absent: none, they have an empty ACL). */
  owner?: string;
  /** Mailboxes this run created. */
  created: string[];
  mailboxes: MailboxImportSummary[];
  imported: number;
  bytes: number;
  deduplicated: number;
  alreadyImported: number;
  batches: number;
  /**
   * Entries left out (reported one by one through onSkip): files or messages that could not be
   * read, symbolic links and special files (never followed), messages over the size limit,
   * folders whose name is no valid mailbox name, directories in the source that are no folder
   * (notFolder). Counted by reason in skippedReasons.
   */
  skipped: number;
  skippedReasons: Partial<Record<SkipReason, number>>;
  skippedItems: { path: string; reason: SkipReason; code: string; message: string }[];
  interrupted: boolean;
  seconds: number;
}

interface Pending {
  items: (Pick<AppendOptions, 'envelopeFrom' | 'dateZoneMinutes' | 'recent'> & { bytes: Buffer; flags: string[]; internalDate?: Date })[];
  bytes: number;
  lastPosition: number;
}

export async function importMail(store: MailStore, sourcePath: string, options: ImportOptions): Promise<ImportSummary> {
  const started = monotonicMs();
  const fs = options.fs ?? nodeFileSystem;
  const components = parseMailboxName(options.mailbox); // INVALID before anything is read
  // the store's spelling (NFC): the resume cursors are keyed by it, so typed either way it is one import
  const mailbox = formatMailboxName(components);
  const layout = options.layout ?? defaultLayout(components);
  const given = options.owner ?? userOf(components);
  const owner = given === undefined ? undefined : normalizeIdentifier(given); // INVALID before anything is read
  const summary: ImportSummary = {
    source: sourcePath, format: 'eml', layout, ...(owner === undefined ? {} : { owner }), created: [], mailboxes: [], imported: 0, bytes: 0, deduplicated: 0, alreadyImported: 0,
    batches: 0, skipped: 0, skippedReasons: {}, skippedItems: [], interrupted: false, seconds: 0,
  };
  const reported = new Set<string>(); // an entry met twice (listing folders, then reading one) counts once
  const onSkip: ImportSkipHandler = (path, error, reason) => {
    const key = `${reason}\0${path}`;
    if (reported.has(key)) return;
    reported.add(key);
    summary.skipped++;
    summary.skippedReasons[reason] = (summary.skippedReasons[reason] ?? 0) + 1;
    if (summary.skippedItems.length < importLimits.skippedListedMax) summary.skippedItems.push({ path, reason, code: error.code, message: error.message });
    options.onSkip?.(path, error, reason);
  };
  const messageBytesMax = options.messageBytesMax ?? limits.messageBytesMax;
  const source = await openSource(fs, sourcePath, { format: options.format, mboxStyle: options.mboxStyle, messageBytesMax, flatten: options.flatten, onWarning: options.onWarning }, onSkip);
  summary.format = source.format;
  if (options.layout === undefined && layout === 'user') await refuseFlatResume(store, source.folders, mailbox, options.mailbox);
  const targets = targetMailboxes(source.folders, mailbox, options.mailbox, layout, onSkip);
  // flat: the target is the root folder's mailbox (made even when the source has no mail at its root);
  // user: the target is the user's tree, which holds mailboxes but is none itself (as in Dovecot).
  if (layout === 'flat') await ensureMailbox(store, mailbox, owner, summary, options.onWarning);
  try {
    for (const target of targets) {
      const result = await importFolder(store, target, { ...options, mailbox, owner }, onSkip, summary);
      summary.mailboxes.push(result);
      if (summary.interrupted) break;
    }
  } catch (error) {
    throw sayWhatWentIn(error, summary);
  }
  summary.seconds = (monotonicMs() - started) / 1000;
  return summary;
}

/**
 * An import that stops on an error (a full disk, an I/O error) has its earlier batches durable, but
 * the error alone says only what failed, and a disk-full one "nothing was written" (of its batch):
 * read as "the import did nothing", it sent admins to --restart, which adds everything again. The
 * error says how many went in and that the same import goes on from there; same code, same path.
 */
function sayWhatWentIn(error: unknown, summary: ImportSummary): unknown {
  if (!isMailstoreError(error) || summary.imported === 0) return error;
  const told = new MailstoreError(error.code,
    `${error.message}; ${summary.imported} message${summary.imported === 1 ? '' : 's'} this run imported ${summary.imported === 1 ? 'is' : 'are'} in the store, durable: ` +
    'run the same import again to go on from there (it adds nothing twice; --restart would import them again)',
    { path: error.path, cause: error, ...(error.mayHaveCommitted !== undefined ? { mayHaveCommitted: error.mayHaveCommitted } : {}), ...(error.moved ? { moved: error.moved } : {}) });
  if (error.belowReserve) told.belowReserve = true;
  return told;
}

/**
 * The mailbox of every folder, all checked before anything is imported, so a bad name cannot stop
 * an import half way: a folder whose name is no valid mailbox name is skipped and reported whole.
 */
function targetMailboxes(folders: SourceFolder[], mailbox: string, typed: string, layout: ImportLayout, onSkip: ImportSkipHandler): Target[] {
  const targets: Target[] = [];
  const under = (top: string, folder: SourceFolder) => (folder.folder !== '' ? `${top}/${folder.folder.normalize('NFC')}` : layout === 'user' ? `${top}/INBOX` : top);
  for (const folder of folders) {
    // Mail tools on macOS write names decomposed (NFD); the store keeps names in NFC.
    const name = under(mailbox, folder);
    try {
      parseMailboxName(name);
      targets.push({ folder, mailbox: name, typed: under(typed, folder) });
    } catch (error) {
      if (!isMailstoreError(error)) throw error;
      onSkip(folder.path, new MailstoreError('INVALID', `folder ${folder.path} is not imported: ${error.message}`, { path: folder.path, cause: error }), 'badName');
    }
  }
  return targets;
}

/**
 * Before the user layout was the default under user/NAME, a source went to user/NAME itself: the
 * same import run again must not start over into user/NAME/INBOX (it would add everything twice).
 */
async function refuseFlatResume(store: MailStore, folders: SourceFolder[], mailbox: string, typed: string): Promise<void> {
  const root = folders.find((folder) => folder.folder === '');
  if (!root || (await store.getMeta<unknown>(await resumeKey(store, root.path, mailbox, typed))) === undefined) return;
  throw new MailstoreError('REFUSED',
    `${root.path} was imported into ${mailbox} itself before (layout flat); run the same import with --layout flat to resume it, ` +
    `or with --layout user to import it again into ${mailbox}/INBOX and its folders beside it (adds everything again)`, { path: root.path });
}

/** `user` for a user's tree itself (user/NAME), where the INBOX and the folders sit side by side. */
function defaultLayout(components: string[]): ImportLayout {
  return components.length === 2 && components[0] === 'user' ? 'user' : 'flat';
}

/** NAME for user/NAME and anything below it: a user's mailboxes are the user's to see. */
function userOf(components: string[]): string | undefined {
  return components.length >= 2 && components[0] === 'user' ? components[1] : undefined;
}

/**
 * Creates the mailbox with the owner's rights. One that exists keeps its ACL (an import does not
 * change who may read what is already there); the admin is told when the owner has no rights on it.
 */
async function ensureMailbox(store: MailStore, name: string, owner: string | undefined, summary: ImportSummary, onWarning?: (text: string) => void): Promise<void> {
  try {
    await store.createMailbox(name, owner === undefined ? {} : { owner });
    summary.created.push(name);
  } catch (error) {
    if (!isMailstoreError(error, 'EXISTS')) throw error;
    if (owner === undefined || summary.created.includes(name)) return;
    const acl = await store.getAcl(name);
    if (!(acl[owner] ?? '').includes('l')) {
      onWarning?.(`${name} already exists and ${owner} has no rights on it; its ACL is left as it is (mailstore acl set ${name} ${owner} ...)`);
    }
  }
}

/** A folder and the mailbox it goes to: in the store's spelling, and as the command line gave its top (`typed`). */
interface Target {
  folder: SourceFolder;
  mailbox: string;
  typed: string;
}

/**
 * A folder's resume cursor key: by the mailbox's NFC name. An older mailstore keyed it by the name
 * as given; a run given that spelling again finds its cursor there (else it imported all again).
 */
async function resumeKey(store: MailStore, path: string, mailbox: string, typed: string): Promise<string> {
  const key = cursorKey(path, mailbox);
  if (typed === mailbox || (await store.getMeta<unknown>(key)) !== undefined) return key;
  const older = cursorKey(path, typed);
  return (await store.getMeta<unknown>(older)) === undefined ? key : older;
}

async function importFolder(
  store: MailStore, { folder, mailbox, typed }: Target, options: ImportOptions,
  onSkip: ImportSkipHandler, summary: ImportSummary,
): Promise<MailboxImportSummary> {
  await ensureMailbox(store, mailbox, options.owner, summary, options.onWarning);
  const box = await store.mailbox(mailbox);
  const key = await resumeKey(store, folder.path, mailbox, typed);
  const stored = (await store.getMeta<unknown>(key)) ?? null;
  const cursor = options.restart ? undefined : loadCursor(stored, key, box, options);
  const run = new FolderImport(store, folder, mailbox, { key, id: box.id, uidValidity: box.uidValidity }, cursor, stored, options, summary);
  await run.run(onSkip);
  return run.result;
}

/**
 * One folder's import: its messages in batches, each committed with the resume cursor that says
 * it is in. Batches are read while earlier ones commit, up to importLimits.batchesInFlight
 * submitted at once, so the disk always has a batch to sync. They share one commit chain: they
 * commit in order, and once one fails none after it does, so no resume cursor ever skips a failed batch.
 */
class FolderImport {
  readonly result: MailboxImportSummary;
  private verified: boolean;
  private pending: Pending = { items: [], bytes: 0, lastPosition: -1 };
  /** Entries skipped (by an earlier run, or by this one) that the resume point must not count as in. */
  private readonly retry: Map<number, string>;
  private readonly chain: CommitChain = {};
  /** Positions below doneBelow are committed: the reader may reuse their buffers (ReadHints.recycle). */
  private readonly recycle = { doneBelow: 0 };
  private readonly inFlight: Promise<void>[] = [];
  private readonly batchMessagesMax: number;
  private readonly batchBytesMax: number;
  /** Message bytes read since the event loop last turned (importLimits.yieldBytes). */
  private bytesSinceTurn = 0;

  constructor(
    private readonly store: MailStore, private readonly folder: SourceFolder, private readonly mailbox: string,
    private readonly box: { key: string; id: string; uidValidity: number }, private cursor: ImportCursor | undefined,
    /** The cursor's value in the store as this run last read or wrote it (null: none): each batch commits only while it is still that. */
    private stored: unknown,
    private readonly options: ImportOptions, private readonly summary: ImportSummary,
  ) {
    this.result = { mailbox, source: folder.path, imported: 0, bytes: 0, deduplicated: 0, alreadyImported: 0 };
    this.verified = cursor === undefined || cursor.done === 0;
    this.retry = new Map((cursor?.retry ?? []).map((r) => [r.position, r.entry]));
    this.batchMessagesMax = options.batchMessagesMax ?? importLimits.batchMessagesMax;
    this.batchBytesMax = options.batchBytesMax ?? importLimits.batchBytesMax;
  }

  async run(onSkip: ImportSkipHandler): Promise<void> {
    const skipInFolder: SourceSkipHandler = (path, error, reason, at) => {
      // A skip at or past the resume point is retried by the next run. One below it that is not a
      // retry was imported by an earlier run (it became unreadable since): it is in, not retried.
      if (at && (this.cursor === undefined || at.position >= this.cursor.done || this.retry.has(at.position))) this.retry.set(at.position, at.entry);
      onSkip(path, error, reason);
    };
    // Below the resume point only the last message imported is looked at (its hash checked), and
    // entries to retry: a reader that can, passes over the others without reading them.
    const skipBytes = (position: number) => {
      const cursor = this.cursor;
      return cursor !== undefined && position < cursor.done && position !== cursor.lastPosition && !this.retry.has(position);
    };
    try {
      for await (const message of this.folder.messages(skipInFolder, { skipBytes, recycle: this.recycle })) {
        if (this.alreadyIn(message)) continue;
        await this.add(message);
        if (this.options.shouldStop?.()) {
          // Ctrl-C: what was read goes in as one last batch, so everything reported is whole.
          await this.commit();
          await this.settle();
          this.summary.interrupted = true;
          return;
        }
      }
    } catch (error) {
      // The source failed (a read error): the batches submitted before it commit or fail first,
      // so what the import reports, and what the store holds once it returns, is whole.
      await this.settle().catch(() => undefined);
      throw error;
    }
    await this.settle();
    if (!this.verified) throw sourceChanged(this.cursor!, `it now holds fewer than ${this.cursor!.done} messages`);
    await this.commit();
    await this.settle();
    if (this.options.shouldStop?.()) this.summary.interrupted = true;
  }

  /** Imported by an earlier run (counted, and the resume point checked); throws when the source changed. */
  private alreadyIn(message: SourceMessage): boolean {
    const cursor = this.cursor;
    const retried = cursor !== undefined && message.position < cursor.done ? this.retry.get(message.position) : undefined;
    if (cursor && message.position < cursor.done && retried === undefined) {
      if (message.position === cursor.lastPosition) this.verified = checkResumePoint(cursor, message);
      this.result.alreadyImported++;
      this.summary.alreadyImported++;
      return true;
    }
    if (retried !== undefined && retried !== message.entry) throw sourceChanged(cursor!, `entry ${message.position + 1} is not the one that could not be read before`);
    if (retried === undefined && !this.verified) throw sourceChanged(cursor!, `message ${cursor!.lastPosition + 1} is no longer there`);
    return false;
  }

  /** Into the pending batch, committing the batch before it when full. */
  private async add(message: SourceMessage): Promise<void> {
    if (message.unread) assert(false, `the reader passed over message ${message.position} of ${this.folder.path}, which is not imported yet`); // the message built only then: this runs once a message
    this.options.onRead?.(message, this.folder);
    const pending = this.pending;
    if (pending.items.length > 0 && (pending.items.length >= this.batchMessagesMax || pending.bytes + message.bytes.length > this.batchBytesMax)) {
      await this.commit();
    }
    this.retry.delete(message.position); // after that commit: the cursor of the batch it goes into says it is in
    this.pending.items.push(pendingItem(message, keepValidFlags(message.flags, this.folder.path, this.options.onWarning)));
    this.pending.bytes += message.bytes.length;
    this.pending.lastPosition = message.position;
    this.bytesSinceTurn += message.bytes.length;
    if (this.bytesSinceTurn >= importLimits.yieldBytes && this.inFlight.length > 0) {
      this.bytesSinceTurn = 0;
      await new Promise<void>((resolve) => setImmediate(resolve)); // the writer starts or finishes a commit
    }
  }

  /** Submits the pending batch with its cursor (waiting for room in flight first). */
  private async commit(): Promise<void> {
    while (this.inFlight.length >= importLimits.batchesInFlight) await this.inFlight.shift();
    if (this.pending.items.length === 0) return;
    const batch = this.pending;
    this.pending = { items: [], bytes: 0, lastPosition: -1 };
    const where = { source: this.folder.path, mailbox: this.mailbox, mailboxId: this.box.id, uidValidity: this.box.uidValidity };
    const next = nextCursor(this.cursor, batch, this.retry, where);
    this.cursor = next;
    // another run of this import (a second CLI through one daemon) moving the cursor meanwhile
    // would make both add the same messages: the batch is REFUSED instead
    const meta = { key: this.box.key, value: next, expected: this.stored };
    this.stored = next;
    // pinned to the mailbox its cursor names: renamed away and one made under the name meanwhile,
    // the rest went into that one under the other's cursor (and the next run imported it all again)
    const committed = this.store.appendBatch(this.mailbox, batch.items, { meta, chain: this.chain, mailboxId: this.box.id })
      .then((results) => this.committed(batch, results.length, results.filter((r) => r.deduplicated).length));
    committed.catch(() => undefined); // observed by commit() or settle()
    this.inFlight.push(committed);
  }

  private committed(batch: Pending, messages: number, deduplicated: number): void {
    const { result, summary } = this;
    // The store is done with the batch's bytes once appendBatch resolved (written and synced; a
    // synchronous replica's round was copied out when it was sent). Batches commit in order.
    this.recycle.doneBelow = Math.max(this.recycle.doneBelow, batch.lastPosition + 1);
    result.imported += messages;
    result.bytes += batch.bytes;
    result.deduplicated += deduplicated;
    summary.imported += messages;
    summary.bytes += batch.bytes;
    summary.deduplicated += deduplicated;
    summary.batches++;
    this.options.onBatch?.({ mailbox: this.mailbox, messages, bytes: batch.bytes, importedTotal: summary.imported });
  }

  private async settle(): Promise<void> {
    while (this.inFlight.length > 0) await this.inFlight.shift();
  }
}

/** What appendBatch is given for a message: its metadata only where the source said (absent means unknown). */
function pendingItem(message: SourceMessage, flags: string[]): Pending['items'][number] {
  const { bytes, internalDate, envelopeFrom, dateZoneMinutes, recent } = message;
  return {
    // Every reader yields a buffer of its own that nothing changes or reuses before its batch
    // committed (mbox: views of read chunks read into again only after that, ReadHints.recycle, or
    // a fresh concatenation; the others: a fresh read), so the store need not copy it: a second
    // copy of every batch in flight was ~16 MiB of the import's peak RSS and 0.6 GB of copying on
    // the bench corpus (bench step tier; docs/OBJECT-STORAGE.md, memory).
    bytes: handOver(bytes), flags, internalDate,
    ...(envelopeFrom !== undefined ? { envelopeFrom } : {}),
    ...(dateZoneMinutes !== undefined ? { dateZoneMinutes } : {}),
    ...(recent ? { recent: true } : {}),
  };
}

/**
 * The cursor a batch commits with. A batch of retried entries only (all below the resume point)
 * leaves the resume point where it was; skips below the new resume point are listed to retry.
 */
function nextCursor(
  previous: ImportCursor | undefined, batch: Pending, retry: Map<number, string>,
  where: { source: string; mailbox: string; mailboxId: string; uidValidity: number },
): ImportCursor {
  const advances = previous === undefined || batch.lastPosition >= previous.done;
  const done = advances ? batch.lastPosition + 1 : previous.done;
  const retryList = [...retry].filter(([position]) => position < done).sort((a, b) => a[0] - b[0]).map(([position, entry]) => ({ position, entry }));
  if (retryList.length > importLimits.retryEntriesMax) {
    throw new MailstoreError('REFUSED',
      `more than ${importLimits.retryEntriesMax} entries of ${where.source} could not be read (listed above), more than an import keeps to retry; ` +
      `fix them and run the same import again (what it reported imported is in)`, { path: where.source });
  }
  return {
    version: CURSOR_VERSION, ...where, done,
    lastPosition: advances ? batch.lastPosition : previous.lastPosition,
    lastHash: advances ? hashHex(hashBytes(batch.items[batch.items.length - 1]!.bytes)) : previous.lastHash,
    imported: (previous?.imported ?? 0) + batch.items.length,
    ...(retryList.length > 0 ? { retry: retryList } : {}),
  };
}

function loadCursor(value: unknown, key: string, box: { id: string; uidValidity: number }, options: ImportOptions): ImportCursor | undefined {
  if (value === null) return undefined;
  if (!isImportCursor(value)) {
    throw new MailstoreError('CORRUPT', `the import cursor ${key} is unreadable; use --restart to import the whole source again`, { path: key });
  }
  if (value.mailboxId !== box.id || value.uidValidity !== box.uidValidity) {
    options.onWarning?.(`${value.mailbox} was re-created since ${value.source} was last imported into it; importing it from the start`);
    return undefined;
  }
  return value;
}

/** The message the cursor names as the last one imported must still be that message. */
function checkResumePoint(cursor: ImportCursor, message: SourceMessage): boolean {
  if (hashHex(hashBytes(message.bytes)) === cursor.lastHash) return true;
  throw sourceChanged(cursor, `message ${cursor.lastPosition + 1} is not the one imported before`);
}

function sourceChanged(cursor: ImportCursor, why: string): MailstoreError {
  return new MailstoreError('REFUSED',
    `${cursor.source} changed since ${cursor.imported} of its messages were imported into ${cursor.mailbox} (${why}); ` +
    `resuming could import messages twice or miss some. Use --restart to import the whole source again anyway.`,
    { path: cursor.source });
}

/** Flags the store would refuse (a keyword that is not an IMAP atom) are dropped with a warning, not the message. */
function keepValidFlags(flags: string[], path: string, onWarning: ((text: string) => void) | undefined): string[] {
  try {
    return normalizeFlags(flags.slice(0, limits.flagsPerMessageMax));
  } catch {
    const kept = flags.filter((flag) => {
      try {
        normalizeFlags([flag]);
        return true;
      } catch {
        onWarning?.(`${path}: dropped the flag ${JSON.stringify(flag)}, which is not a valid IMAP flag`);
        return false;
      }
    });
    return kept.slice(0, limits.flagsPerMessageMax);
  }
}
