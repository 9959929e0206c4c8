// One shape for every kind of mail we import: a list of folders, each a stream of messages in a
// stable order with a position, so an interrupted import can tell where it stopped.
import { basename, join, relative } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { detectFormat, refuseForeign, type MailFormat } from '../formats/detect.js';
import { listEmlFolders, readEmlDir, readMessageFile, type SkipHandler, type SkipReason } from '../formats/eml.js';
import { KEYWORDS_FILE, listMaildirFolders, parseMaildirName, readMaildir } from '../formats/maildir.js';
import { importLimits, limits } from '../limits.js';
import { dateFromHeader, readMbox, type MboxMessage, type MboxStyle } from '../formats/mbox.js';
import { readPublicInbox, requirePublicInbox, type PublicInboxLayout } from '../formats/public-inbox.js';

export interface SourceMessage {
  bytes: Buffer;
  flags: string[];
  internalDate?: Date;
  /** Optional metadata the store keeps (AppendOptions), each absent when the source does not say. */
  envelopeFrom?: string;
  dateZoneMinutes?: number;
  recent?: boolean;
  /**
   * 0-based place of the message in its folder's order, counting files that could not be read
   * (and mbox messages skipped as too large), so positions stay put when those are retried.
   */
  position: number;
  /**
   * What names the message in its folder from one run to the next (Maildir: the file's unique
   * part; eml: its path below the folder; mbox: its byte offset). An entry skipped before the
   * resume point is retried by the next run only if the same entry is at its position.
   */
  entry: string;
  /** Fraction of the folder read so far, when the reader can tell (mbox: offset / size). */
  fraction?: number;
  /** The reader did not read the bytes (empty), because the caller said it would not need them. */
  unread?: boolean;
}

/**
 * What the importer tells a reader before it starts: positions it will count as already imported
 * without looking at their bytes. A reader that can pass them over cheaply (public-inbox: no blob
 * read) yields them with `unread` and empty bytes; the others may ignore it.
 */
export interface ReadHints {
  skipBytes?: (position: number) => boolean;
  /**
   * The caller raises `doneBelow` as it goes: it no longer uses the bytes of any message at a
   * position below it (their batch committed). A reader may then read into those buffers again
   * (mbox: its read chunks); one that cannot ignores it.
   */
  recycle?: { doneBelow: number };
}

/** Where a skipped entry sits in its folder's order; absent for what holds no place (a folder, an mbox's leading text). */
export interface SkippedAt {
  position: number;
  entry: string;
}

export type SourceSkipHandler = (path: string, error: MailstoreError, reason: SkipReason, at?: SkippedAt) => void;

export interface SourceFolder {
  /** Mailbox name relative to the import's target: '' for the target itself, `Sent`, `Lists/kernel`. */
  folder: string;
  /** The file or directory this folder's messages come from (its cursor is keyed by it). */
  path: string;
  /** Messages in the folder, when cheap to know (Maildir: directory entries); for the progress meter. */
  estimatedMessages?: number;
  messages(onSkip: SourceSkipHandler, hints?: ReadHints): AsyncGenerator<SourceMessage>;
}

export interface SourceOptions {
  format?: MailFormat;
  mboxStyle?: MboxStyle;
  messageBytesMax?: number;
  /** A directory of message files: every file below it into the one mailbox, subdirectories not kept as folders. */
  flatten?: boolean;
  /** What was read but not all of it kept (a message still went in). */
  onWarning?: (text: string) => void;
}

export interface Source {
  format: MailFormat;
  folders: SourceFolder[];
}

/** Works out what `path` holds (or takes the admin's word) and lists its folders. */
export async function openSource(fs: FileSystem, path: string, options: SourceOptions, onSkip: SkipHandler): Promise<Source> {
  const stat = await fs.stat(path).catch((error) => { throw fromSystemError(error, 'reading import source', path); });
  if (stat.isFile) await refuseForeign(fs, path);
  const format = options.format ?? await detectFormat(fs, path);
  if (options.flatten && (format !== 'eml' || !stat.isDirectory)) {
    throw new MailstoreError('INVALID', `flatten is for a directory of message files; ${path} is read as ${format}${stat.isDirectory ? '' : ' (a file)'}`, { path });
  }
  if (format === 'mbox') {
    if (!stat.isFile) throw new MailstoreError('INVALID', `${path} is ${stat.isDirectory ? 'a directory' : 'not a regular file (a FIFO, socket or device)'}, not an mbox file`, { path });
    return { format, folders: [mboxFolder(fs, path, stat.size, options)] };
  }
  if (format === 'public-inbox') return { format, folders: [publicInboxFolder(path, await requirePublicInbox(fs, path), options)] };
  if (format === 'maildir') {
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `${path} is a file, not a Maildir`, { path });
    const folders = await listMaildirFolders(fs, path, { onSkip });
    if (folders.length === 0) throw new MailstoreError('INVALID', `${path} holds no Maildir folder (no cur/ or new/, nor .Sub/cur)`, { path });
    const out: SourceFolder[] = [];
    for (const folder of folders) out.push(await maildirFolder(fs, folder.folder, folder.path, options));
    return { format, folders: out };
  }
  if (!stat.isDirectory) return { format, folders: [emlFileFolder(fs, path, options)] };
  if (options.flatten) return { format, folders: [emlDirFolder(fs, '', path, options)] };
  // Each subdirectory holding files is a folder of its own, as a mail client's export lays them out.
  const folders = await listEmlFolders(fs, path, onSkip);
  return { format, folders: folders.map((folder) => emlDirFolder(fs, folder.folder, folder.path, options)) };
}

function mboxFolder(fs: FileSystem, path: string, sizeBytes: number, options: SourceOptions): SourceFolder {
  return {
    folder: '',
    path,
    async *messages(onSkip, hints) {
      const messages = readMbox(fs, path, {
        style: options.mboxStyle ?? 'auto',
        recycle: hints?.recycle,
        chunkBytes: importLimits.mboxChunkBytes,
        wholeChunkBytes: importLimits.mboxWholeChunkBytes,
        messageBytesMax: options.messageBytesMax,
        onWarning: (warning) => {
          if (warning.kind === 'tooLarge') {
            onSkip(`${path}#${warning.index + 1}`, new MailstoreError('TOO_LARGE', `message ${warning.index + 1} at byte ${warning.offset} of ${basename(path)} is ${warning.bytes} bytes, over the limit`, { path }),
              'tooLarge', { position: warning.index, entry: String(warning.offset) });
          } else {
            onSkip(`${path}@0`, new MailstoreError('INVALID', `${warning.bytes} bytes before the first From_ line are not a message`, { path }), 'notMail');
          }
        },
      });
      for await (const message of messages) {
        yield {
          bytes: message.bytes, flags: message.flags, internalDate: message.internalDate, position: message.index,
          entry: String(message.offset), fraction: sizeBytes > 0 ? message.offset / sizeBytes : undefined,
          ...mboxEnvelope(message),
        };
      }
    },
  };
}

/** A public-inbox archive is one folder, its messages in commit order; a commit id names each. */
function publicInboxFolder(path: string, layout: PublicInboxLayout, options: SourceOptions): SourceFolder {
  return {
    folder: '',
    path,
    async *messages(onSkip, hints) {
      const reading = readPublicInbox(layout, {
        messageBytesMax: options.messageBytesMax, skipBytes: hints?.skipBytes,
        onSkip: (where, error, reason, index) => onSkip(where, error, reason, index === undefined ? undefined : { position: index, entry: where.slice(where.lastIndexOf('#') + 1) }),
      });
      for await (const message of reading) {
        yield {
          bytes: message.bytes, flags: [], internalDate: message.internalDate, position: message.position, entry: message.commit, fraction: message.fraction,
          ...(message.zoneMinutes !== undefined ? { dateZoneMinutes: message.zoneMinutes } : {}),
          ...(message.unread ? { unread: true } : {}),
        };
      }
    },
  };
}

/**
 * The From_ line's sender, and the zone of the internal date: the From_ line's own, else the Date
 * header's when it names the same instant (a From_ line in UTC for a message dated +0100).
 */
function mboxEnvelope(message: MboxMessage): Pick<SourceMessage, 'envelopeFrom' | 'dateZoneMinutes'> {
  const out: Pick<SourceMessage, 'envelopeFrom' | 'dateZoneMinutes'> = {};
  if (message.sender !== undefined) out.envelopeFrom = message.sender;
  const zone = message.zoneMinutes ?? message.headerZoneMinutes;
  if (zone !== undefined && zone >= limits.dateZoneMinutesMin && zone <= limits.dateZoneMinutesMax) out.dateZoneMinutes = zone;
  return out;
}

/** A Maildir file keeps its unique part when a client changes its flags or moves it from new/ to cur/. */
function maildirEntry(path: string): string {
  return parseMaildirName(basename(path)).unique;
}

/** The reader's skips, with the place of those that hold one. */
function placing(onSkip: SourceSkipHandler, entryOf: (path: string) => string): SkipHandler {
  return (path, error, reason, index) => onSkip(path, error, reason, index === undefined ? undefined : { position: index, entry: entryOf(path) });
}

async function maildirFolder(fs: FileSystem, folder: string, path: string, options: SourceOptions): Promise<SourceFolder> {
  let estimatedMessages = 0;
  for (const sub of ['cur', 'new']) {
    const stat = await fs.lstatIfExists(join(path, sub)).catch(() => undefined);
    if (stat?.isDirectory) estimatedMessages += (await fs.readdir(join(path, sub)).catch(() => [])).filter((n) => !n.startsWith('.')).length;
  }
  return {
    folder,
    path,
    estimatedMessages,
    async *messages(onSkip) {
      const onUnnamedKeywords = (letters: string[], messages: number) => options.onWarning?.(
        `${path}: keyword letters ${letters.join(', ')} of ${messages} message${messages === 1 ? '' : 's'} have no name in ${KEYWORDS_FILE}; those keywords were not imported`);
      const reading = readMaildir(fs, path, { onSkip: placing(onSkip, maildirEntry), messageBytesMax: options.messageBytesMax, noFollow: folder !== '', onUnnamedKeywords });
      for await (const message of reading) {
        yield {
          bytes: message.bytes, flags: message.flags, internalDate: message.internalDate, position: message.index, entry: maildirEntry(message.path),
          ...(message.recent ? { recent: true } : {}),
        };
      }
    },
  };
}

/** One folder of message files; with flatten (folder '') the files of all its subdirectories too. */
function emlDirFolder(fs: FileSystem, folder: string, path: string, options: SourceOptions): SourceFolder {
  return {
    folder,
    path,
    async *messages(onSkip) {
      const entryOf = (file: string) => relative(path, file);
      const reading = readEmlDir(fs, path, {
        onSkip: placing(onSkip, entryOf), messageBytesMax: options.messageBytesMax, recursive: options.flatten === true, noFollow: folder !== '',
      });
      for await (const message of reading) {
        yield { bytes: message.bytes, flags: [], internalDate: dateFromHeader(message.bytes), position: message.index, entry: entryOf(message.path) };
      }
    },
  };
}

/** One message file the admin named: it may be a symbolic link (only links inside a source are refused). */
function emlFileFolder(fs: FileSystem, path: string, options: SourceOptions): SourceFolder {
  return {
    folder: '',
    path,
    estimatedMessages: 1,
    async *messages(onSkip) {
      const read = await readMessageFile(fs, path, { onSkip: placing(onSkip, basename), messageBytesMax: options.messageBytesMax, followLink: true }, 0);
      if (read) yield { bytes: read.bytes, flags: [], internalDate: dateFromHeader(read.bytes), position: 0, entry: basename(path) };
    },
  };
}
