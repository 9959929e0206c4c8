// Export: a mailbox out as mbox or Maildir, byte for byte as stored, flags and internal dates kept
// where the format has a place for them. Every message is read verified; a corrupt one is
// reported and left out, never written wrong. A new file or Maildir is built under a temporary
// name beside --out and renamed into place when whole, so a failed export (a full disk) leaves
// nothing under the name and the same command can simply run again. Nothing is written through
// a symbolic link planted at --out or inside an existing Maildir there.
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, relative } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { nodeFileSystem } from '../fs/node-fs.js';
import { FILE_NAME_BYTES_MAX, KEYWORDS_FILE, MaildirWriter, maildirPlusPlusFromFolder, type MaildirAppendOptions } from '../formats/maildir.js';
import { MboxWriter, isEnvelopeToken, keptByMboxo, senderFromReturnPath, zoneFromDateHeader, type MboxStyle } from '../formats/mbox.js';
import { limits } from '../limits.js';
import type { MailStore } from '../store/api.js';
import type { MessageInfo } from '../store/store.js';
import { formatMailboxName, parseMailboxName } from '../store/validate.js';
import { monotonicMs } from '../monotonic.js';

export type ExportFormat = 'mbox' | 'maildir';

export interface ExportOptions {
  format: ExportFormat;
  /** mbox: a file that must not exist yet. Maildir: a directory (created; existing mail is kept). */
  out: string;
  /** Maildir: mailboxes below MAILBOX become Maildir++ folders (`.Sent`, `.Lists.kernel`). */
  recursive?: boolean;
  /** mbox: write flags as Status/X-Status headers (changes the message bytes). */
  statusHeaders?: boolean;
  mboxStyle?: MboxStyle;
  /**
   * mbox: the From_ line's sender. `return-path`: the message's Return-Path address (the envelope
   * sender a delivery agent writes in both places), else MAILER-DAEMON; any other value is written
   * as it is. Default MAILER-DAEMON. Only for messages without a stored sender: the sender of an
   * imported From_ line is kept with the message (MessageInfo.envelopeFrom) and written back.
   */
  mboxSender?: string;
  fs?: FileSystem;
  shouldStop?: () => boolean;
  onMessage?: (info: MessageInfo) => void;
  onCorrupt?: (mailbox: string, uid: number, error: MailstoreError) => void;
  /** An mboxo export wrote a message its readers will not give back byte for byte (ExportSummary.inexact). */
  onInexact?: (mailbox: string, uid: number) => void;
  /** A Maildir export wrote a message without keywords its file name could not carry (ExportSummary.keywordsDropped). */
  onKeywordsDropped?: (mailbox: string, uid: number, keywords: string[]) => void;
  /** A Maildir export wrote a message whose internal date the file system could not hold as its mtime (ExportSummary.datesNotKept). */
  onDateNotKept?: (mailbox: string, uid: number, internalDate: Date, kept: Date) => void;
}

export interface ExportSummary {
  format: ExportFormat;
  out: string;
  mailboxes: { mailbox: string; path: string; messages: number }[];
  exported: number;
  bytes: number;
  corrupt: { mailbox: string; uid: number; message: string }[];
  /**
   * mboxo: messages with a line `>From ` (one or more `>`), which mboxo cannot quote: a reader
   * takes it for a quoted `From ` and drops a `>`. Written all the same; mboxrd keeps them.
   */
  inexact: { mailbox: string; uid: number }[];
  /**
   * Maildir: keywords left out of a message's file name, a folder's dovecot-keywords having no
   * letter left for them (a-z: 26 keywords per folder, Dovecot's limit too).
   */
  keywordsDropped: { mailbox: string; uid: number; keywords: string[] }[];
  /**
   * Maildir: messages whose internal date the file system could not hold as the file's mtime (ext4
   * clamps past 2038 or 2446): `kept` is the date a reader will take. Absent when none.
   */
  datesNotKept?: { mailbox: string; uid: number; internalDate: string; kept: string }[];
  interrupted: boolean;
  seconds: number;
}

interface Target {
  mailbox: string;
  /** Maildir folder directory (mbox: the file). */
  path: string;
}

type Write = (bytes: Buffer, info: MessageInfo) => Promise<unknown>;

export async function exportMailbox(store: MailStore, given: string, options: ExportOptions): Promise<ExportSummary> {
  const started = monotonicMs();
  // the store's spelling (NFC): a child's folder name is its name past this one's, cut by length
  const mailbox = formatMailboxName(parseMailboxName(given));
  const fs = options.fs ?? nodeFileSystem;
  await store.mailbox(mailbox); // NOT_FOUND before anything is written
  const summary: ExportSummary = { format: options.format, out: options.out, mailboxes: [], exported: 0, bytes: 0, corrupt: [], inexact: [], keywordsDropped: [], interrupted: false, seconds: 0 };
  const out = options.out;
  if (options.mboxSender !== undefined && options.mboxSender !== 'return-path' && !isEnvelopeToken(options.mboxSender)) {
    throw new MailstoreError('INVALID', `the mbox sender must be return-path or one printable token without spaces, at most ${limits.envelopeFromBytesMax} bytes: ${JSON.stringify(options.mboxSender)}`);
  }
  const existing = await fs.lstatIfExists(out).catch((error) => { throw fromSystemError(error, 'stat', out); });
  if (existing?.isSymbolicLink) {
    throw new MailstoreError('INVALID', `${out} is a symbolic link; export never writes through one (remove it or choose another --out)`, { path: out });
  }
  if (options.format === 'mbox') {
    if (existing) throw new MailstoreError('EXISTS', `${out} already exists; an mbox export writes a new file`, { path: out });
    await exportMbox(fs, store, mailbox, options, summary);
  } else {
    const targets = await maildirTargets(store, mailbox, options);
    if (existing && !existing.isDirectory) throw new MailstoreError('INVALID', `${out} exists and is not a directory`, { path: out });
    if (existing) await exportIntoMaildir(fs, store, targets, options, summary);
    else await exportNewMaildir(fs, store, targets, options, summary);
  }
  summary.seconds = (monotonicMs() - started) / 1000;
  return summary;
}

/**
 * A name beside `path` (same directory, so the final rename stays on one file system), hidden,
 * within a file name's 255 bytes: of a long name only the start is kept (whole characters).
 */
function temporarySibling(path: string): string {
  const suffix = `.export-${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  let room = FILE_NAME_BYTES_MAX - 1 - suffix.length;
  let kept = '';
  for (const char of basename(path)) {
    room -= Buffer.byteLength(char);
    if (room < 0) break;
    kept += char;
  }
  return join(dirname(path), `.${kept}${suffix}`);
}

/** The finished file or tree takes its name, unless something took it meanwhile; then made durable. */
async function publish(fs: FileSystem, temporary: string, out: string): Promise<void> {
  await fs.renameNoReplace(temporary, out).catch((error) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY') {
      throw new MailstoreError('EXISTS', `${out} appeared while the export ran; nothing was written to it`, { path: out, cause: error });
    }
    throw fromSystemError(error, 'rename into', out);
  });
  await fs.syncDir(dirname(out)).catch((error) => { throw fromSystemError(error, 'sync the directory of', out); });
}

async function exportMbox(fs: FileSystem, store: MailStore, mailbox: string, options: ExportOptions, summary: ExportSummary): Promise<void> {
  const temporary = temporarySibling(options.out);
  const style = options.mboxStyle ?? 'mboxrd';
  const writer = await MboxWriter.create(fs, temporary, { style, statusHeaders: options.statusHeaders ?? false });
  try {
    const senderOf = (bytes: Buffer) => (options.mboxSender === 'return-path' ? senderFromReturnPath(bytes) : options.mboxSender);
    const checkExact = (bytes: Buffer, info: MessageInfo) => {
      if (style !== 'mboxo' || keptByMboxo(bytes)) return;
      summary.inexact.push({ mailbox, uid: info.uid });
      options.onInexact?.(mailbox, info.uid);
    };
    // The stored sender and zone when the store has them (an imported From_ line's), else derived.
    await exportMessages(store, { mailbox, path: options.out }, options, summary, (bytes, info) => {
      checkExact(bytes, info);
      return writer.append(bytes, {
        internalDate: info.internalDate, flags: info.flags, sender: info.envelopeFrom ?? senderOf(bytes),
        zoneOffsetMinutes: info.dateZoneMinutes ?? zoneFromDateHeader(bytes, info.internalDate),
      });
    });
    await writer.close(); // flushes and fsyncs: an interrupted export is still a valid mbox
    await publish(fs, temporary, options.out);
  } catch (error) {
    await writer.close().catch(() => {});
    await fs.unlink(temporary).catch(() => {});
    throw error;
  }
}

/** A new Maildir tree is built whole under a temporary name, then renamed into place. */
async function exportNewMaildir(fs: FileSystem, store: MailStore, targets: Target[], options: ExportOptions, summary: ExportSummary): Promise<void> {
  const temporary = temporarySibling(options.out);
  const dirs: string[] = [];
  const written: string[] = [];
  try {
    for (const target of targets) {
      const dir = join(temporary, relative(options.out, target.path));
      dirs.push(dir);
      const writer = await MaildirWriter.create(fs, dir);
      await exportMessages(store, target, options, summary, async (bytes, info) => {
        written.push(await writer.append(bytes, maildirOptions(info, target.mailbox, options, summary)));
      });
      await writer.close();
      if (summary.interrupted) break;
    }
    await fs.syncDir(temporary).catch((error) => { throw fromSystemError(error, 'sync', temporary); }); // the .Sub entries
    await publish(fs, temporary, options.out);
  } catch (error) {
    await removeNewTree(fs, temporary, dirs, written);
    throw error;
  }
}

/**
 * A failed export's tree, by the names it wrote: unlink and rmdir take no descriptor, where
 * removeTree lists each directory first, which failed when the failure was running out of them
 * (EMFILE) and left the hidden tree beside --out. removeTree then takes whatever is left.
 */
async function removeNewTree(fs: FileSystem, temporary: string, dirs: string[], written: string[]): Promise<void> {
  for (const path of written) await fs.unlink(path).catch(() => {});
  for (const dir of dirs.reverse()) { // a .Sub folder lies inside the first
    await fs.unlink(join(dir, KEYWORDS_FILE)).catch(() => {});
    for (const sub of ['tmp', 'new', 'cur', '']) await fs.rmdir(join(dir, sub)).catch(() => {});
  }
  await fs.removeTree(temporary).catch(() => {});
}

/**
 * Into an existing Maildir each message appears whole (tmp/, then renamed into cur/); a failed
 * export removes the messages it wrote, so a re-run does not double them.
 */
async function exportIntoMaildir(fs: FileSystem, store: MailStore, targets: Target[], options: ExportOptions, summary: ExportSummary): Promise<void> {
  const written: string[] = [];
  try {
    for (const target of targets) {
      const writer = await MaildirWriter.create(fs, target.path);
      await exportMessages(store, target, options, summary, async (bytes, info) => {
        written.push(await writer.append(bytes, maildirOptions(info, target.mailbox, options, summary)));
      });
      await writer.close();
      if (summary.interrupted) break;
    }
  } catch (error) {
    for (const path of written) await fs.unlink(path).catch(() => {});
    for (const dir of new Set(written.map(dirname))) await fs.syncDir(dir).catch(() => {});
    throw error;
  }
}

/** A message stored as recent (imported from new/) goes back to new/ (unless it has flags since). */
function maildirOptions(info: MessageInfo, mailbox: string, options: ExportOptions, summary: ExportSummary): MaildirAppendOptions {
  const onKeywordsDropped = (keywords: string[]) => {
    summary.keywordsDropped.push({ mailbox, uid: info.uid, keywords });
    options.onKeywordsDropped?.(mailbox, info.uid, keywords);
  };
  const onDateNotKept = (kept: Date) => {
    (summary.datesNotKept ??= []).push({ mailbox, uid: info.uid, internalDate: info.internalDate.toISOString(), kept: kept.toISOString() });
    options.onDateNotKept?.(mailbox, info.uid, info.internalDate, kept);
  };
  return { flags: info.flags, internalDate: info.internalDate, recent: info.recent === true, onKeywordsDropped, onDateNotKept };
}

/** The mailbox and (recursively) its descendants, each with its Maildir++ directory; all names checked first. */
async function maildirTargets(store: MailStore, mailbox: string, options: ExportOptions): Promise<Target[]> {
  const targets: Target[] = [{ mailbox, path: options.out }];
  if (options.recursive === false) return targets;
  for (const child of await store.listMailboxes({ pattern: `${mailbox}/*` })) {
    const folder = child.name.slice(mailbox.length + 1);
    targets.push({ mailbox: child.name, path: join(options.out, maildirPlusPlusFromFolder(folder)) });
  }
  return targets;
}

async function exportMessages(
  store: MailStore, target: Target, options: ExportOptions, summary: ExportSummary, write: Write,
): Promise<void> {
  let messages = 0;
  const onCorrupt = (info: MessageInfo, error: MailstoreError) => {
    summary.corrupt.push({ mailbox: target.mailbox, uid: info.uid, message: error.message });
    options.onCorrupt?.(target.mailbox, info.uid, error);
  };
  for await (const { info, body: bytes } of store.readMessages(target.mailbox, { onCorrupt })) {
    if (options.shouldStop?.()) {
      summary.interrupted = true;
      break;
    }
    await write(bytes, info);
    messages++;
    summary.exported++;
    summary.bytes += bytes.length;
    options.onMessage?.(info);
  }
  summary.mailboxes.push({ mailbox: target.mailbox, path: target.path, messages });
}
