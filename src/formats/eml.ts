// One message per file: a directory of .eml (or any) files, the way many clients export and the
// way test corpora are kept. Also home of the one-file reader that Maildir shares.
import { join } from 'node:path';
import type { FileHandle, FileStat, FileSystem, HeldDirectory } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { importLimits, limits } from '../limits.js';

/** Why an entry of an import source was left out; the summary counts skips by it. */
export type SkipReason =
  /** A symbolic link inside the source: never followed (it could point anywhere the importer can read). */
  | 'symlink'
  /** A FIFO, socket or device: not mail, and reading one could block or never end. */
  | 'special'
  /** Larger than the message limit. */
  | 'tooLarge'
  /** The operating system refused or failed the read (EACCES, EIO, vanished). */
  | 'unreadable'
  /** A Maildir++ folder whose name is no valid mailbox name. */
  | 'badName'
  /** Bytes that are no message (an mbox's text before its first From_ line). */
  | 'notMail'
  /**
   * A directory inside the source that holds entries but is no folder the format knows (a dot
   * directory without cur/ or new/, a subdirectory of a Maildir with no Maildir below it), or a
   * folder nested deeper than importLimits.folderDepthMax: reported whole, never silently left out.
   */
  | 'notFolder';

/**
 * Told about a file (or directory) that could not be read, after which reading goes on. Without
 * one, the first such error is thrown: an import should never lose a message silently. `index`
 * is the entry's place in the reader's message order, when it holds one (a file, not a folder).
 */
export type SkipHandler = (path: string, error: MailstoreError, reason: SkipReason, index?: number) => void;

export interface ReadEmlDirOptions {
  onSkip?: SkipHandler;
  messageBytesMax?: number;
  /** Read the files of subdirectories too, depth first (default true); false: this directory's own only. */
  recursive?: boolean;
  /** `dir` was found inside the source (a subfolder): a link there is refused, not followed. */
  noFollow?: boolean;
}

export interface EmlFolder {
  /** Path below the source, '/'-separated: '' for the source directory itself. */
  folder: string;
  path: string;
}

export interface ReadMessageFileOptions extends ReadEmlDirOptions {
  /** The admin named this file: a symbolic link is followed (one found inside a source never is). */
  followLink?: boolean;
}

export interface EmlMessage {
  bytes: Buffer;
  path: string;
  /** 0-based place in the walk's order of files, counting files that were skipped. */
  index: number;
}

/**
 * Every regular, non-hidden file under `dir`, depth first, names in compareNatural order at each level
 * (only `dir`'s own files with recursive: false). `dir` itself may be a symbolic link (the admin
 * named it) unless noFollow; nothing inside it is followed.
 */
export async function* readEmlDir(
  fs: FileSystem, dir: string, options: ReadEmlDirOptions = {},
): AsyncGenerator<EmlMessage> {
  let held: HeldDirectory | undefined;
  if (options.noFollow) {
    held = await holdSubdirectory(fs, dir, dir, options.onSkip);
    if (!held) return;
  } else {
    const stat = await fs.stat(dir).catch((error) => { throw fromSystemError(error, 'stat', dir); });
    if (!stat.isDirectory) throw new MailstoreError('INVALID', `not a directory: ${dir}`, { path: dir });
    held = await fs.holdDirectory(dir).catch((error) => { throw fromSystemError(error, 'open', dir); });
  }
  try {
    yield* walk(fs, dir, held.path, options, { files: 0 });
  } finally {
    await held.close().catch(() => {});
  }
}

/**
 * The folders of a tree of message files: `dir` itself ('') and every subdirectory below it that
 * holds a file (or a link, FIFO..., which reading it then reports), named by its path. Symbolic
 * links are never followed (the folder's reader reports them); hidden entries are not mail; a
 * directory nested deeper than importLimits.folderDepthMax is reported to onSkip as notFolder.
 */
export async function listEmlFolders(fs: FileSystem, dir: string, onSkip?: SkipHandler): Promise<EmlFolder[]> {
  const folders: EmlFolder[] = [{ folder: '', path: dir }];
  const visit = async (path: string, components: string[]): Promise<void> => {
    let names: string[];
    try {
      names = await fs.readdir(path);
    } catch (error) {
      skip(onSkip, path, fromSystemError(error, 'list', path));
      return;
    }
    let holdsFiles = false;
    const subdirectories: string[] = [];
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const stat = await fs.lstatIfExists(join(path, name)).catch(() => undefined);
      if (stat?.isDirectory) subdirectories.push(name);
      else holdsFiles = true;
    }
    if (components.length > 0 && holdsFiles) folders.push({ folder: components.join('/'), path });
    for (const name of subdirectories) {
      const sub = join(path, name);
      if (components.length + 1 > importLimits.folderDepthMax) {
        if (onSkip) onSkip(sub, new MailstoreError('INVALID', `${sub} is nested deeper than ${importLimits.folderDepthMax} folders; not imported`, { path: sub }), 'notFolder');
        continue;
      }
      await visit(sub, [...components, name]);
    }
  };
  await visit(dir, []);
  return folders;
}

/**
 * `dir` names the directory in reports; `at` reaches the very directory that was checked, so a
 * subdirectory swapped for a link after its lstat cannot lead the reads elsewhere.
 */
async function* walk(fs: FileSystem, dir: string, at: string, options: ReadEmlDirOptions, counter: { files: number }): AsyncGenerator<EmlMessage> {
  let names: string[];
  try {
    names = await fs.readdir(at);
  } catch (error) {
    skip(options.onSkip, dir, fromSystemError(error, 'list', dir));
    return;
  }
  for (const name of names.sort(compareNatural)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let stat: FileStat;
    try {
      stat = await fs.lstat(join(at, name));
    } catch (error) {
      skip(options.onSkip, path, fromSystemError(error, 'stat', path), 'unreadable', counter.files++);
      continue;
    }
    if (stat.isDirectory) {
      if (options.recursive === false) continue; // a folder of its own
      const held = await holdSubdirectory(fs, path, join(at, name), options.onSkip);
      if (!held) continue;
      try {
        yield* walk(fs, path, held.path, options, counter);
      } finally {
        await held.close().catch(() => {});
      }
      continue;
    }
    const index = counter.files++;
    if (!isPlainEntry(path, stat, options.onSkip, index)) continue;
    const read = await readMessageFile(fs, path, options, index, join(at, name));
    if (read) yield { bytes: read.bytes, path, index };
  }
}

/**
 * Byte order, except that runs of digits compare as numbers: Maildir unique names do not pad
 * their counters (`M999` before `M1000`, `Q9` before `Q10`), nor do MH folders (nmh, Claws Mail)
 * and most exporters of numbered .eml files their names (`2` before `10`).
 */
export function compareNatural(a: string, b: string): number {
  const partsA = a.match(/\d+|\D+/g) ?? [];
  const partsB = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(partsA.length, partsB.length); i += 1) {
    const x = partsA[i]!;
    const y = partsB[i]!;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const tx = x.replace(/^0+(?=\d)/, '');
      const ty = y.replace(/^0+(?=\d)/, '');
      if (tx.length !== ty.length) return tx.length - ty.length;
      if (tx !== ty) return tx < ty ? -1 : 1;
    }
    return x < y ? -1 : 1;
  }
  return partsA.length - partsB.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** A directory inside a source, held open without following a link; undefined after reporting why not. */
export async function holdSubdirectory(fs: FileSystem, path: string, at: string, onSkip: SkipHandler | undefined): Promise<HeldDirectory | undefined> {
  try {
    return await fs.holdDirectory(at, { noFollow: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Linux says ENOTDIR, not ELOOP, for a link opened with O_DIRECTORY|O_NOFOLLOW.
    const link = code === 'ELOOP' || code === 'EMLINK' || (code === 'ENOTDIR' && (await fs.lstat(at).catch(() => undefined))?.isSymbolicLink);
    if (link) skip(onSkip, path, symlinkError(path), 'symlink');
    else if (code === 'ENOTDIR') skip(onSkip, path, new MailstoreError('INVALID', `${path} is no longer a directory`, { path }), 'special');
    else skip(onSkip, path, fromSystemError(error, 'open', path));
    return undefined;
  }
}

/** True for a regular file or a directory; a symbolic link or special file is reported and false. */
export function isPlainEntry(path: string, stat: FileStat, onSkip: SkipHandler | undefined, index?: number): boolean {
  if (stat.isFile || stat.isDirectory) return true;
  if (stat.isSymbolicLink) skip(onSkip, path, symlinkError(path), 'symlink', index);
  else skip(onSkip, path, specialFileError(path), 'special', index);
  return false;
}

export function symlinkError(path: string): MailstoreError {
  return new MailstoreError('INVALID', `${path} is a symbolic link; import never follows links inside a source`, { path });
}

function specialFileError(path: string): MailstoreError {
  return new MailstoreError('INVALID', `${path} is not a regular file (a FIFO, socket, device or directory)`, { path });
}

/**
 * The bytes of one message file and its fstat, or undefined after reporting why it cannot be one.
 * The file is opened without following a symbolic link and without blocking on a FIFO, and the
 * opened file is checked to be regular, so a link or FIFO swapped in after the listing is refused
 * too; the message limit holds while reading, whatever the size said (a file can grow). `path`
 * names the file in reports; `at` is where it is opened (below a held directory).
 */
export async function readMessageFile(
  fs: FileSystem, path: string, options: ReadMessageFileOptions, index?: number, at: string = path,
): Promise<{ bytes: Buffer; stat: FileStat } | undefined> {
  const messageBytesMax = options.messageBytesMax ?? limits.messageBytesMax;
  const report = (error: MailstoreError, reason?: SkipReason) => skip(options.onSkip, path, error, reason, index);
  let handle: FileHandle;
  try {
    handle = await fs.open(at, options.followLink ? 'read' : 'readNoFollow');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') report(symlinkError(path), 'symlink');
    else if (code === 'ENXIO') report(specialFileError(path), 'special');
    else report(fromSystemError(error, 'open', path));
    return undefined;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile) {
      report(specialFileError(path), 'special');
      return undefined;
    }
    if (stat.size > messageBytesMax) {
      report(tooLargeError(path, stat.size, messageBytesMax));
      return undefined;
    }
    return { bytes: await readUpTo(handle, stat.size, messageBytesMax, path), stat };
  } catch (error) {
    report(fromSystemError(error, 'read', path));
    return undefined;
  } finally {
    await handle.close().catch(() => {});
  }
}

/** The whole file, read from its start until EOF; TOO_LARGE as soon as it passes `bytesMax`. */
export async function readUpTo(handle: FileHandle, sizeHint: number, bytesMax: number, path = handle.path): Promise<Buffer> {
  // One byte over the expected size: reading it tells EOF, or that the file grew.
  let buffer = Buffer.allocUnsafe(Math.min(sizeHint, bytesMax) + 1);
  let total = 0;
  for (;;) {
    if (total === buffer.length) {
      if (total > bytesMax) throw tooLargeError(path, total, bytesMax, 'grew to at least');
      const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, bytesMax + 1));
      buffer.copy(bigger, 0, 0, total);
      buffer = bigger;
    }
    const bytesRead = await handle.read(buffer, total, buffer.length - total, total);
    if (bytesRead === 0) return buffer.subarray(0, total);
    total += bytesRead;
  }
}

function tooLargeError(path: string, bytes: number, bytesMax: number, verb = 'is'): MailstoreError {
  return new MailstoreError('TOO_LARGE', `${path} ${verb} ${bytes} bytes, over the message limit of ${bytesMax}`, { path });
}

export function skip(onSkip: SkipHandler | undefined, path: string, error: MailstoreError, reason?: SkipReason, index?: number): void {
  if (!onSkip || outOfDescriptors(error)) throw error;
  onSkip(path, error, reason ?? (error.code === 'TOO_LARGE' ? 'tooLarge' : 'unreadable'), index);
}

/**
 * EMFILE, ENFILE: this process (or the system) is out of descriptors, which says nothing of the
 * entry: skipped, every file and folder it could not open then went unread ('unreadable') and the
 * run went on (a whole folder of them, imported 0); it stops instead, and the next run goes on.
 */
function outOfDescriptors(error: MailstoreError): boolean {
  const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EMFILE' || code === 'ENFILE';
}
