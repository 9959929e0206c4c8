// One message per file: a directory of .eml (or any) files, the way many clients export and the
// way test corpora are kept. Also home of the one-file reader that Maildir shares.
import { join } from 'node:path';
import type { FileStat, FileSystem } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { limits } from '../limits.js';

/**
 * Told about a file (or directory) that could not be read, after which reading goes on. Without
 * one, the first such error is thrown: an import should never lose a message silently.
 */
export type SkipHandler = (path: string, error: MailstoreError) => void;

export interface ReadEmlDirOptions {
  onSkip?: SkipHandler;
  messageBytesMax?: number;
}

export interface EmlMessage {
  bytes: Buffer;
  path: string;
}

/** Every regular, non-hidden file under `dir`, depth first, names in byte order at each level. */
export async function* readEmlDir(
  fs: FileSystem, dir: string, options: ReadEmlDirOptions = {},
): AsyncGenerator<EmlMessage> {
  const stat = await fs.stat(dir).catch((error) => { throw fromSystemError(error, 'stat', dir); });
  if (!stat.isDirectory) throw new MailstoreError('INVALID', `not a directory: ${dir}`, { path: dir });
  yield* walk(fs, dir, options, new Set([`${stat.dev}:${stat.ino}`]));
}

async function* walk(
  fs: FileSystem, dir: string, options: ReadEmlDirOptions, visited: Set<string>,
): AsyncGenerator<EmlMessage> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    skip(options.onSkip, dir, fromSystemError(error, 'list', dir));
    return;
  }
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    const stat = await statForSkip(fs, path, options.onSkip);
    if (!stat) continue;
    if (stat.isDirectory) {
      // A symlinked directory can lead back up the tree; visit each directory once.
      const id = `${stat.dev}:${stat.ino}`;
      if (visited.has(id)) continue;
      visited.add(id);
      yield* walk(fs, path, options, visited);
      continue;
    }
    const bytes = await readMessageFile(fs, path, stat, options);
    if (bytes) yield { bytes, path };
  }
}

/** stat, or undefined after reporting why not (vanished, dangling symlink, EACCES). */
export async function statForSkip(fs: FileSystem, path: string, onSkip: SkipHandler | undefined): Promise<FileStat | undefined> {
  try {
    return await fs.stat(path);
  } catch (error) {
    skip(onSkip, path, fromSystemError(error, 'stat', path));
    return undefined;
  }
}

/**
 * The bytes of one message file, or undefined after reporting why it cannot be one: not a
 * regular file, larger than the message limit, or unreadable.
 */
export async function readMessageFile(
  fs: FileSystem, path: string, stat: FileStat, options: ReadEmlDirOptions,
): Promise<Buffer | undefined> {
  const messageBytesMax = options.messageBytesMax ?? limits.messageBytesMax;
  if (!stat.isFile) {
    skip(options.onSkip, path, new MailstoreError('INVALID', `not a regular file: ${path}`, { path }));
    return undefined;
  }
  if (stat.size > messageBytesMax) {
    skip(options.onSkip, path, new MailstoreError('TOO_LARGE', `${path} is ${stat.size} bytes, over ${messageBytesMax}`, { path }));
    return undefined;
  }
  try {
    const bytes = await fs.readFile(path);
    if (bytes.length > messageBytesMax) {
      throw new MailstoreError('TOO_LARGE', `${path} grew to ${bytes.length} bytes, over ${messageBytesMax}`, { path });
    }
    return bytes;
  } catch (error) {
    skip(options.onSkip, path, fromSystemError(error, 'read', path));
    return undefined;
  }
}

export function skip(onSkip: SkipHandler | undefined, path: string, error: MailstoreError): void {
  if (!onSkip) throw error;
  onSkip(path, error);
}
