// Maildir and Maildir++ in and out: the on-disk format of Dovecot, Courier, qmail and most local
// mail tools, so migrations from them read it and exports to them write it.
//
// One message per file in cur/ or new/; flags in the name after `:2,` (`!2,` on Windows);
// Maildir++ keeps subfolders as sibling directories `.Sub.Child` of the INBOX's cur/new/tmp.
import { basename, dirname, join } from 'node:path';
import type { FileSystem, HeldDirectory } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { importLimits, limits } from '../limits.js';
import { type SkipHandler, compareNatural, holdSubdirectory, isPlainEntry, readMessageFile, skip, symlinkError } from './eml.js';

export { compareNatural, type SkipHandler } from './eml.js';

export interface MaildirMessage {
  bytes: Buffer;
  flags: string[];
  /** The file's mtime (Maildir's internal date), else the name's leading timestamp. */
  internalDate?: Date;
  path: string;
  name: string;
  /** The file is in new/: delivered, not yet seen by any mail client. */
  recent: boolean;
  /** 0-based place in the folder's delivery order, counting files that were skipped. */
  index: number;
}

export interface ReadMaildirOptions {
  onSkip?: SkipHandler;
  messageBytesMax?: number;
  /** `dir` was found inside the source (a Maildir++ folder): a link there is refused, not followed. */
  noFollow?: boolean;
  /** Once the folder is read: keyword letters its file names use that dovecot-keywords does not name (dropped), and how many messages had one. */
  onUnnamedKeywords?: (letters: string[], messages: number) => void;
}

export interface MaildirFolder {
  /** Our mailbox name relative to the root: '' for the INBOX, `Sub/Child` for `.Sub.Child`. */
  folder: string;
  path: string;
}

/** Maildir info letters to IMAP flags. P is not an IMAP system flag; it is the `$Forwarded` keyword. */
const LETTER_FLAGS: Record<string, string> = {
  D: '\\Draft', F: '\\Flagged', P: '$Forwarded', R: '\\Answered', S: '\\Seen', T: '\\Deleted',
};
const FLAG_LETTERS: Record<string, string> = Object.fromEntries(
  Object.entries(LETTER_FLAGS).map(([letter, flag]) => [flag.toLowerCase(), letter]),
);
export const KEYWORDS_FILE = 'dovecot-keywords';
const KEYWORD_LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** Splits a Maildir file name into its unique part, its info (after `:2,`/`!2,`) and leading timestamp. */
export function parseMaildirName(name: string): { unique: string; info?: string; timestampSeconds?: number } {
  const separator = Math.max(name.lastIndexOf(':2,'), name.lastIndexOf('!2,'));
  const unique = separator < 0 ? name : name.slice(0, separator);
  const info = separator < 0 ? undefined : name.slice(separator + 3);
  const leading = /^(\d+)/.exec(name);
  return { unique, info, timestampSeconds: leading ? Number(leading[1]) : undefined };
}

/**
 * IMAP flags of a Maildir info string. Lowercase letters are Dovecot keywords: index 0 is `a`,
 * resolved through the folder's dovecot-keywords file; without a mapping they are dropped.
 */
export function flagsFromMaildirInfo(info: string, keywords: readonly (string | undefined)[] = []): string[] {
  const flags = new Set<string>();
  for (const letter of info) {
    const system = LETTER_FLAGS[letter];
    const keyword = /[a-z]/.test(letter) ? keywords[letter.charCodeAt(0) - 0x61] : undefined;
    if (system) flags.add(system);
    else if (keyword) flags.add(keyword);
  }
  return [...flags].sort();
}

/**
 * The info letters for IMAP flags, sorted (uppercase before keyword letters). `keywordLetter`
 * gives the letter of a keyword (and of $Forwarded, besides its P), or undefined to drop it; flags
 * Maildir cannot hold (\Recent) are dropped.
 */
export function maildirInfoFromFlags(
  flags: readonly string[], keywordLetter: (keyword: string) => string | undefined = () => undefined,
): string {
  const letters = new Set<string>();
  for (const flag of flags) {
    const system = FLAG_LETTERS[flag.toLowerCase()];
    if (system) letters.add(system);
    // $Forwarded is P to the Maildir spec (Python, mutt) and a keyword to Dovecot, which ignores P: both
    if ((!system || system === 'P') && !flag.startsWith('\\')) {
      const letter = keywordLetter(flag);
      if (letter) letters.add(letter);
    }
  }
  return [...letters].sort().join('');
}

/**
 * The keywords of a dovecot-keywords file (`<index> <keyword>` lines) by index; missing file -> none.
 * A symbolic link or special file there goes to onSkip (none), or without one is refused.
 */
export async function readDovecotKeywords(fs: FileSystem, dir: string, onSkip?: SkipHandler, at: string = dir): Promise<(string | undefined)[]> {
  const path = join(dir, KEYWORDS_FILE);
  const stat = await fs.lstatIfExists(join(at, KEYWORDS_FILE)).catch((error) => { throw fromSystemError(error, 'stat', path); });
  if (!stat || !isPlainEntry(path, stat, onSkip)) return [];
  const options = { messageBytesMax: limits.maildirKeywordsFileBytesMax, onSkip: onSkip ?? ((_path: string, error: MailstoreError) => { throw error; }) };
  const read = await readMessageFile(fs, path, options, undefined, join(at, KEYWORDS_FILE));
  if (!read) return [];
  const keywords: (string | undefined)[] = [];
  for (const line of read.bytes.toString('utf8').split('\n')) {
    const match = /^(\d+)\s+(\S+)\s*$/.exec(line);
    if (match && Number(match[1]) < KEYWORD_LETTERS.length) keywords[Number(match[1])] = match[2];
  }
  return keywords;
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * Messages of one Maildir folder (cur/ and new/, never tmp/), in delivery order. Symbolic links
 * and special files in it are reported to onSkip and never read (see readMessageFile); the folder
 * and its cur/ and new/ are held open while read, so one swapped for a link meanwhile is not followed.
 */
export async function* readMaildir(
  fs: FileSystem, dir: string, options: ReadMaildirOptions = {},
): AsyncGenerator<MaildirMessage> {
  const held = await (options.noFollow ? holdSubdirectory(fs, dir, dir, options.onSkip) : fs.holdDirectory(dir).catch((error) => { throw fromSystemError(error, 'open', dir); }));
  if (!held) return;
  const holds = [held];
  try {
    const entries = await listMessageFiles(fs, dir, held.path, options.onSkip, holds);
    const keywords = await readDovecotKeywords(fs, dir, options.onSkip, held.path);
    const unnamed = new Set<string>();
    let unnamedMessages = 0;
    for (const [index, entry] of entries.entries()) {
      const path = join(dir, entry.sub, entry.name);
      const read = await readMessageFile(fs, path, options, index, join(entry.at, entry.name));
      if (!read) continue;
      const parsed = parseMaildirName(entry.name);
      // The info gives the flags in new/ too: Dovecot leaves a message there, `:2,S`, when a client
      // flags it while it is \Recent, and Dovecot, mutt and Python's mailbox all read it seen.
      const flags = parsed.info === undefined ? [] : flagsFromMaildirInfo(parsed.info, keywords);
      const letters = [...parsed.info ?? ''].filter((letter) => /[a-z]/.test(letter) && keywords[letter.charCodeAt(0) - 0x61] === undefined);
      for (const letter of letters) unnamed.add(letter);
      if (letters.length > 0) unnamedMessages += 1;
      yield { bytes: read.bytes, flags, internalDate: internalDateOf(read.stat.mtimeMs, parsed.timestampSeconds), path, name: entry.name, recent: entry.sub === 'new', index };
    }
    if (unnamed.size > 0) options.onUnnamedKeywords?.([...unnamed].sort(), unnamedMessages);
  } finally {
    for (const hold of holds) await hold.close().catch(() => {});
  }
}

/** A file in cur/ or new/; `at` reaches the held subdirectory it was listed in. */
interface MessageEntry { sub: 'cur' | 'new'; name: string; at: string; timestamp: number }

async function listMessageFiles(
  fs: FileSystem, dir: string, at: string, onSkip: SkipHandler | undefined, holds: HeldDirectory[],
): Promise<MessageEntry[]> {
  const entries: MessageEntry[] = [];
  let found = 0;
  // new/ before cur/: a client moves mail from new/ to cur/ (never back), so one moved between the
  // two listings is in both (the cur/ one is kept below) rather than in neither, silently missed
  for (const sub of ['new', 'cur'] as const) {
    const subdir = join(dir, sub);
    const stat = await fs.lstatIfExists(join(at, sub)).catch((error) => { throw fromSystemError(error, 'stat', subdir); });
    if (!stat) continue;
    found += 1;
    if (!stat.isDirectory) {
      if (stat.isSymbolicLink) skip(onSkip, subdir, symlinkError(subdir), 'symlink');
      else skip(onSkip, subdir, new MailstoreError('INVALID', `${subdir} is not a directory`, { path: subdir }), 'special');
      continue;
    }
    const held = await holdSubdirectory(fs, subdir, join(at, sub), onSkip);
    if (!held) continue;
    holds.push(held);
    let names: string[];
    try {
      names = await fs.readdir(held.path);
    } catch (error) {
      skip(onSkip, subdir, fromSystemError(error, 'list', subdir));
      continue;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      entries.push({ sub, name, at: held.path, timestamp: parseMaildirName(name).timestampSeconds ?? Number.POSITIVE_INFINITY });
    }
  }
  if (found === 0) throw new MailstoreError('INVALID', `not a Maildir (no cur/ or new/): ${dir}`, { path: dir });
  const inCur = new Set(entries.filter((entry) => entry.sub === 'cur').map((entry) => parseMaildirName(entry.name).unique));
  return entries.filter((entry) => entry.sub === 'cur' || !inCur.has(parseMaildirName(entry.name).unique)).sort((a, b) => a.timestamp - b.timestamp || compareNatural(a.name, b.name) || a.sub.localeCompare(b.sub));
}

function internalDateOf(mtimeMs: number, timestampSeconds: number | undefined): Date | undefined {
  // mtimeMs is a float of the nanosecond time: the .439 s an export set reads .438999, which Date cut to .438.
  // An mtime of 0 is the epoch, as Dovecot reads it: the internal date of a message whose Date header
  // was 1 Jan 1970 00:00:00 (broken mail often says so) came back from an export as the export's time
  if (Number.isFinite(mtimeMs) && mtimeMs >= 0) return new Date(Math.round(mtimeMs));
  if (timestampSeconds !== undefined && timestampSeconds > 0 && timestampSeconds < 1e11) return new Date(timestampSeconds * 1000);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Maildir++ folders

/**
 * The folders of a Maildir tree: the root itself is the INBOX (folder ''), when it has cur/ or
 * new/; a Maildir++ `.Sub.Child` with cur/ or new/ is `Sub/Child`, each component decoded from
 * modified UTF-7; a plain subdirectory that is a Maildir (Dovecot's LAYOUT=fs, mutt's folders:
 * `Sent/cur`, `Lists/kernel/cur`), below the root or below a folder, is a folder too, named by
 * its path. A name that does not decode goes to onSkip (badName), and so does a subdirectory that
 * is a symbolic link (the root may be one: the admin named it; nothing inside it is followed).
 * A directory that holds entries but no folder (a dot directory without cur/ or new/, a plain one
 * with no Maildir below it, or one too deep) is reported to onSkip as notFolder, when one is given:
 * a nested folder is imported or reported, never silently left out. Empty directories and the
 * mail servers' own directories (cur, new, tmp, courierimap*, dovecot*) are no folders.
 */
export async function listMaildirFolders(
  fs: FileSystem, root: string, options: { onSkip?: SkipHandler } = {},
): Promise<MaildirFolder[]> {
  const names = await fs.readdir(root).catch((error) => { throw fromSystemError(error, 'list', root); });
  const folders: MaildirFolder[] = [];
  if (await isMaildir(fs, root)) folders.push({ folder: '', path: root });
  for (const name of names.sort()) {
    if (name === '.' || name === '..' || isServerEntry(name)) continue;
    const path = join(root, name);
    const stat = await fs.lstatIfExists(path).catch((error) => { throw fromSystemError(error, 'stat', path); });
    if (!stat) continue; // gone since the listing
    if (stat.isSymbolicLink) {
      if (name.startsWith('.') || options.onSkip) skip(options.onSkip, path, symlinkError(path), 'symlink');
      continue;
    }
    if (!stat.isDirectory) continue;
    if (!name.startsWith('.')) {
      await collectNestedFolders(fs, path, [name], folders, options.onSkip);
      continue;
    }
    if (!(await isMaildir(fs, path))) {
      await reportNotFolder(fs, path, `${path} is named like a Maildir++ folder but has no cur/ or new/`, options.onSkip);
      continue;
    }
    let folder: string;
    try {
      folder = folderFromMaildirPlusPlus(name);
    } catch (error) {
      skip(options.onSkip, path, fromSystemError(error, 'decode folder name', path), 'badName');
      continue;
    }
    folders.push({ folder, path });
    await collectChildren(fs, path, folder.split('/'), folders, options.onSkip);
  }
  return folders.sort((a, b) => (a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : 0));
}

/** Entries a Maildir holds besides its folders: the message directories and the servers' own state. */
function isServerEntry(name: string): boolean {
  return name === 'cur' || name === 'new' || name === 'tmp' || name.startsWith('courierimap') || name.startsWith('dovecot') || name.startsWith('.dovecot');
}

/**
 * A plain subdirectory `path` (folder components `components`): a folder when it is a Maildir,
 * and its own subdirectories after it. Reported as notFolder when nothing below it is a folder.
 * True when it or something below it is a folder, or was reported as nested too deep.
 */
async function collectNestedFolders(
  fs: FileSystem, path: string, components: string[], folders: MaildirFolder[], onSkip: SkipHandler | undefined,
): Promise<boolean> {
  if (components.length > importLimits.folderDepthMax) {
    await reportNotFolder(fs, path, `${path} is nested deeper than ${importLimits.folderDepthMax} folders`, onSkip);
    return true;
  }
  let folder: string;
  try {
    folder = components.map(decodeFolderComponent).join('/');
  } catch (error) {
    skip(onSkip, path, fromSystemError(error, 'decode folder name', path), 'badName');
    return true;
  }
  const isFolder = await isMaildir(fs, path);
  if (isFolder) folders.push({ folder, path });
  // A directory with no folder anywhere below is reported once, as a whole, not once per level.
  const below: [string, MailstoreError][] = [];
  const found = await collectChildren(fs, path, components, folders, onSkip && ((at, error, reason, index) => {
    if (reason === 'notFolder') below.push([at, error]);
    else onSkip(at, error, reason, index);
  }));
  if (!isFolder && !found) {
    await reportNotFolder(fs, path, `${path} holds no Maildir (no cur/ or new/ in it or below it)`, onSkip);
    return false;
  }
  for (const [at, error] of below) onSkip?.(at, error, 'notFolder');
  return true;
}

/** The subdirectories of a folder (or of a directory on the way to one) that may be folders; true when one was. */
async function collectChildren(
  fs: FileSystem, dir: string, components: string[], folders: MaildirFolder[], onSkip: SkipHandler | undefined,
): Promise<boolean> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    skip(onSkip, dir, fromSystemError(error, 'list', dir));
    return true;
  }
  let found = false;
  for (const name of names.sort()) {
    if (isServerEntry(name)) continue;
    const path = join(dir, name);
    const stat = await fs.lstatIfExists(path).catch(() => undefined);
    if (!stat || !(stat.isDirectory || stat.isSymbolicLink)) continue;
    if (stat.isSymbolicLink) skip(onSkip, path, symlinkError(path), 'symlink');
    else if (name.startsWith('.')) await reportNotFolder(fs, path, `${path} is a hidden directory inside a folder; Maildir++ folders sit beside the INBOX only`, onSkip);
    else found = (await collectNestedFolders(fs, path, [...components, name], folders, onSkip)) || found;
  }
  return found;
}

/** A directory that is no folder: reported (when there is an onSkip) unless it is empty. */
async function reportNotFolder(fs: FileSystem, path: string, why: string, onSkip: SkipHandler | undefined): Promise<void> {
  if (!onSkip) return;
  const entries = await fs.readdir(path).catch(() => ['?']);
  if (entries.length === 0) return;
  onSkip(path, new MailstoreError('INVALID', `${why}; not imported`, { path }), 'notFolder');
}

/** A LAYOUT=fs directory name: modified UTF-7 as Dovecot writes it; empty or '/' is no name. */
function decodeFolderComponent(name: string): string {
  const decoded = decodeModifiedUtf7(name);
  if (decoded === '' || decoded.includes('/')) throw new MailstoreError('INVALID', `folder ${JSON.stringify(name)} has an empty or '/' name`);
  return decoded;
}

/** cur/ or new/ is there: as a directory, or as a link that reading the folder then reports. */
async function isMaildir(fs: FileSystem, dir: string): Promise<boolean> {
  for (const sub of ['cur', 'new']) {
    const stat = await fs.lstatIfExists(join(dir, sub)).catch(() => undefined);
    if (stat?.isDirectory || stat?.isSymbolicLink) return true;
  }
  return false;
}

/** `.Sub.Child` -> `Sub/Child`. */
export function folderFromMaildirPlusPlus(directoryName: string): string {
  const components = directoryName.replace(/^\./, '').split('.');
  return components.map((component) => {
    const decoded = decodeModifiedUtf7(component);
    if (decoded === '' || decoded.includes('/')) {
      throw new MailstoreError('INVALID', `Maildir++ folder ${JSON.stringify(directoryName)} has an empty or '/' component`);
    }
    return decoded;
  }).join('/');
}

/** The longest file name Linux file systems take (NAME_MAX); ENAMETOOLONG past it. */
export const FILE_NAME_BYTES_MAX = 255;

/**
 * `Sub/Child` -> `.Sub.Child` (each component in modified UTF-7; '.' in a component cannot be
 * kept). The whole path is one directory name, so it must fit one file name.
 */
export function maildirPlusPlusFromFolder(folder: string): string {
  const components = folder.split('/');
  for (const component of components) {
    if (component === '' || component.includes('.')) {
      throw new MailstoreError('INVALID', `folder ${JSON.stringify(folder)} cannot be a Maildir++ name (empty component or '.')`);
    }
  }
  const name = '.' + components.map(encodeModifiedUtf7).join('.');
  if (Buffer.byteLength(name) > FILE_NAME_BYTES_MAX) {
    throw new MailstoreError('INVALID', `folder ${JSON.stringify(folder)} cannot be a Maildir++ name: ${JSON.stringify(name.slice(0, 40))}... would be ${Buffer.byteLength(name)} bytes, over the ${FILE_NAME_BYTES_MAX} bytes of a file name`);
  }
  return name;
}

/** IMAP modified UTF-7 (RFC 3501 5.1.3): `&` + base64 of UTF-16BE with ',' for '/' + `-`; `&-` is '&'. */
export function decodeModifiedUtf7(text: string): string {
  return text.replace(/&([^-]*)(-|$)/g, (_whole, encoded: string, end: string) => {
    const bad = () => new MailstoreError('INVALID', `bad modified UTF-7 sequence &${encoded}${end} in ${JSON.stringify(text)}`);
    if (end !== '-') throw bad();
    if (encoded === '') return '&';
    if (!/^[A-Za-z0-9+,]+$/.test(encoded) || encoded.length % 4 === 1) throw bad();
    const bytes = Buffer.from(encoded.replace(/,/g, '/'), 'base64');
    if (bytes.length % 2 !== 0) throw bad();
    return bytes.swap16().toString('utf16le');
  });
}

export function encodeModifiedUtf7(text: string): string {
  let out = '';
  let pending = '';
  const flush = () => {
    if (!pending) return;
    const base64 = Buffer.from(pending, 'utf16le').swap16().toString('base64').replace(/=+$/, '').replace(/\//g, ',');
    out += `&${base64}-`;
    pending = '';
  };
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code >= 0x20 && code <= 0x7e) {
      flush();
      out += char === '&' ? '&-' : char;
    } else {
      pending += char;
    }
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface MaildirWriterOptions {
  /**
   * fsync each message and the cur/ directory before append returns (default true). Off only for
   * output that can be regenerated, like tools/gen-corpus.
   */
  sync?: boolean;
}

export interface MaildirAppendOptions {
  flags?: readonly string[];
  /** Maildir keeps the internal date as the file's mtime; set before the rename into cur/. */
  internalDate?: Date;
  /**
   * Not yet seen by any client (IMAP \Recent): the message goes to new/, named without info, as a
   * delivery agent leaves it, when it has no flag a name in new/ would lose; else to cur/.
   */
  recent?: boolean;
  /** Keywords the file name could not carry (all 26 letters taken): written without them. */
  onKeywordsDropped?: (keywords: string[]) => void;
  /**
   * The file system could not hold internalDate as the file's mtime and kept `kept` instead (ext4
   * stops at 2038 with 128-byte inodes, at 2446 with 256): a reader takes `kept` for the date.
   */
  onDateNotKept?: (kept: Date) => void;
}

/**
 * The last microsecond a writer of this process named a message by: names are unique in the
 * process, not only in one writer (two exports into one Maildir within a millisecond named their
 * first messages alike, and the second replaced the first).
 */
let lastMicros = 0;

/** Writes messages into a Maildir durably: tmp/, write, check length, fsync, rename into cur/, fsync cur/. */
export class MaildirWriter {
  private sequence = 0;
  private closed = false;
  private newKeywords = false;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    private readonly sync: boolean,
    private readonly keywords: (string | undefined)[],
  ) {}

  /** Opens `dir` as a Maildir, creating it and cur/new/tmp as needed (existing mail is kept). */
  static async create(fs: FileSystem, dir: string, options: MaildirWriterOptions = {}): Promise<MaildirWriter> {
    const sync = options.sync ?? true;
    await ensureDirectory(fs, dir);
    for (const sub of ['cur', 'new', 'tmp']) await ensureDirectory(fs, join(dir, sub));
    if (sync) await fs.syncDir(dir).catch((error) => { throw fromSystemError(error, 'sync', dir); });
    return new MaildirWriter(fs, dir, sync, await readDovecotKeywords(fs, dir));
  }

  /** Writes one message; returns its path in cur/ (or new/, see MaildirAppendOptions.recent). */
  async append(bytes: Buffer, options: MaildirAppendOptions = {}): Promise<string> {
    if (this.closed) throw new MailstoreError('CLOSED', `Maildir writer is closed: ${this.dir}`, { path: this.dir });
    const dropped: string[] = [];
    const info = maildirInfoFromFlags(options.flags ?? [], (keyword) => {
      const letter = this.keywordLetter(keyword);
      if (letter === undefined) dropped.push(keyword);
      return letter;
    });
    if (dropped.length > 0) options.onKeywordsDropped?.(dropped);
    await this.persistKeywords();
    const unique = this.uniqueName();
    const tmpPath = join(this.dir, 'tmp', unique);
    const curPath = options.recent && info === '' ? join(this.dir, 'new', unique) : join(this.dir, 'cur', `${unique}:2,${info}`);
    await this.writeFile(tmpPath, bytes);
    if (options.internalDate) await this.setDate(tmpPath, options.internalDate, options.onDateNotKept);
    // never over a message already there: a name taken all the same (another host, same pid and microsecond) fails
    await this.fs.renameNoReplace(tmpPath, curPath).catch(async (error) => {
      const refusedName = await this.refusedColon(error, tmpPath, curPath);
      await this.fs.unlink(tmpPath).catch(() => {});
      throw refusedName ?? fromSystemError(error, 'rename into', curPath);
    });
    if (this.sync) await this.fs.syncDir(dirname(curPath)).catch((error) => { throw fromSystemError(error, 'sync', curPath); });
    return curPath;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /**
   * A rename to a name with ':' failing ENOENT (exfat-fuse) or EINVAL (vfat) while the file to
   * rename is there: the file system takes no ':' in names (exFAT, FAT, an SMB share), which the
   * flags suffix needs. It was NOT_FOUND "rename into ...: ENOENT", as if the message were missing.
   */
  private async refusedColon(error: unknown, tmpPath: string, curPath: string): Promise<MailstoreError | undefined> {
    if (!['ENOENT', 'EINVAL'].includes((error as NodeJS.ErrnoException).code ?? '') || !basename(curPath).includes(':')) return undefined;
    if (!(await this.fs.statIfExists(tmpPath).catch(() => undefined))) return undefined;
    return new MailstoreError('INVALID', `${this.dir} is on a file system that takes no ':' in file names (exFAT or FAT, as on a USB disk; an SMB share), which a Maildir message's flags need (${basename(curPath)}): export onto a file system that does (ext4, XFS, btrfs), or as one file with --format mbox`, { path: curPath, cause: error });
  }

  /** The internal date as the file's mtime, read back: a file system that clamps it does so silently. */
  private async setDate(path: string, date: Date, onDateNotKept?: (kept: Date) => void): Promise<void> {
    await this.fs.utimes(path, date).catch((error) => { throw fromSystemError(error, 'set the date of', path); });
    const { mtimeMs } = await this.fs.stat(path).catch((error) => { throw fromSystemError(error, 'stat', path); });
    // to the second, as IMAP's INTERNALDATE: a file system of whole seconds (ext4 with 128-byte
    // inodes, ext3) drops the milliseconds of every message, which is no date lost
    if (Math.floor(mtimeMs / 1000) !== Math.floor(date.getTime() / 1000)) onDateNotKept?.(new Date(Math.round(mtimeMs)));
  }

  private async writeFile(path: string, bytes: Buffer): Promise<void> {
    const handle = await this.fs.open(path, 'createNew').catch((error) => { throw fromSystemError(error, 'create', path); });
    try {
      await handle.write(bytes, 0);
      const size = await handle.size();
      if (size !== bytes.length) throw new MailstoreError('IO', `${path} is ${size} bytes after writing ${bytes.length}`, { path });
      if (this.sync) await handle.sync();
    } catch (error) {
      await handle.close().catch(() => {});
      await this.fs.unlink(path).catch(() => {});
      throw fromSystemError(error, 'write', path);
    }
    await handle.close().catch((error) => { throw fromSystemError(error, 'close', path); });
  }

  /** `<seconds>.M<micro>P<pid>Q<n>.mailstore`, strictly increasing within this process so order survives. */
  private uniqueName(): string {
    const micros = Math.max(Date.now() * 1000, lastMicros + 1);
    lastMicros = micros;
    this.sequence += 1;
    return `${Math.floor(micros / 1e6)}.M${micros % 1e6}P${process.pid}Q${this.sequence}.mailstore`;
  }

  /** The letter of a keyword, assigning the next free one (up to 26, Dovecot's limit); else undefined (dropped). */
  private keywordLetter(keyword: string): string | undefined {
    const lower = keyword.toLowerCase();
    let index = this.keywords.findIndex((known) => known?.toLowerCase() === lower);
    if (index < 0) {
      index = this.keywords.length;
      if (index >= KEYWORD_LETTERS.length || !/^[\x21-\x7e]+$/.test(keyword)) return undefined;
      this.keywords.push(keyword);
      this.newKeywords = true;
    }
    return KEYWORD_LETTERS[index];
  }

  /** The keyword map must be durable before a file name refers to its letters. */
  private async persistKeywords(): Promise<void> {
    if (!this.newKeywords) return;
    this.newKeywords = false;
    const text = this.keywords.map((keyword, index) => (keyword ? `${index} ${keyword}\n` : '')).join('');
    const tmpPath = join(this.dir, 'tmp', `${KEYWORDS_FILE}.${process.pid}.${this.sequence}`);
    const path = join(this.dir, KEYWORDS_FILE);
    await this.writeFile(tmpPath, Buffer.from(text, 'utf8'));
    await this.fs.rename(tmpPath, path).catch((error) => { throw fromSystemError(error, 'rename into', path); });
    if (this.sync) await this.fs.syncDir(this.dir).catch((error) => { throw fromSystemError(error, 'sync', this.dir); });
  }
}

/** A link planted where a folder is expected is refused: writing through it would put mail anywhere. */
async function ensureDirectory(fs: FileSystem, dir: string): Promise<void> {
  const stat = await fs.lstatIfExists(dir).catch((error) => { throw fromSystemError(error, 'stat', dir); });
  if (stat) {
    if (stat.isSymbolicLink) throw new MailstoreError('INVALID', `${dir} is a symbolic link; a Maildir is never written through one`, { path: dir });
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `not a directory: ${dir}`, { path: dir });
    return;
  }
  await fs.mkdir(dir).catch((error) => { throw fromSystemError(error, 'create', dir); });
}
