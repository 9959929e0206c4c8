// Import takes a path and works out what it holds, so the admin need not say (and cannot say wrong).
import { join } from 'node:path';
import type { FileSystem } from '../fs/filesystem.js';
import { MailstoreError, fromSystemError } from '../errors.js';
import { publicInboxLayout } from './public-inbox.js';

export type MailFormat = 'mbox' | 'maildir' | 'eml' | 'public-inbox';

/** Blank lines an mbox may start with before its first From_ line (the reader reports them). */
const LEADING_BLANK_BYTES_MAX = 64;

/**
 * A directory with cur/ or new/ (or a Maildir++ root with only `.Sub/cur` folders) is a Maildir;
 * a git directory (HEAD, objects/) or one with git/N.git epochs is a public-inbox archive;
 * another directory holds eml files; a file starting with `From ` is an mbox; another non-empty
 * file is one message. Anything else (missing: NOT_FOUND; empty file, device, socket: INVALID).
 */
export async function detectFormat(fs: FileSystem, path: string): Promise<MailFormat> {
  const stat = await fs.stat(path).catch((error) => { throw fromSystemError(error, 'stat', path); });
  if (stat.isDirectory) {
    if (await looksLikeMaildir(fs, path)) return 'maildir';
    return (await publicInboxLayout(fs, path)) ? 'public-inbox' : 'eml';
  }
  if (!stat.isFile) throw new MailstoreError('INVALID', `neither a file nor a directory: ${path}`, { path });
  if (stat.size === 0) throw new MailstoreError('INVALID', `empty file, neither an mbox nor a message: ${path}`, { path });
  const head = await readHead(fs, path, LEADING_BLANK_BYTES_MAX + 5);
  const text = head.toString('latin1').replace(/^[\r\n]+/, '');
  return text.startsWith('From ') ? 'mbox' : 'eml';
}

/**
 * Magic numbers of the compressors mail archives come in, by the command that undoes each; bzip2's
 * with its first block's (or an empty stream's) magic, since a header `BZh...:` is text.
 */
const COMPRESSED: [tool: string, magic: RegExp][] = [
  ['gzip', /^\x1f\x8b/],
  ['xz', /^\xfd7zXZ\x00/],
  ['zstd', /^\x28\xb5\x2f\xfd/],
  ['bzip2', /^BZh[1-9](1AY&SY|\x17rE8P\x90)/],
];

/**
 * A compressed file (`archive.mbox.gz`) is neither an mbox nor a message: read as one it went in
 * as a single message of compressed bytes. INVALID, naming the command that decompresses it.
 */
export async function refuseCompressed(fs: FileSystem, path: string): Promise<void> {
  const head = (await readHead(fs, path, 10)).toString('latin1');
  const found = COMPRESSED.find(([, magic]) => magic.test(head));
  if (found) {
    const [tool] = found;
    throw new MailstoreError('INVALID', `${path} is ${tool}-compressed, neither an mbox nor a message; decompress it first (${tool} -dk ${path}) and import the result`, { path });
  }
}

async function looksLikeMaildir(fs: FileSystem, dir: string): Promise<boolean> {
  if (await hasMaildirSubdirectory(fs, dir)) return true;
  const names = await fs.readdir(dir).catch((error) => { throw fromSystemError(error, 'list', dir); });
  for (const name of names) {
    if (!name.startsWith('.') || name === '.' || name === '..') continue;
    // Nothing inside the source is followed, not even to guess its format.
    const stat = await fs.lstatIfExists(join(dir, name)).catch(() => undefined);
    if (stat?.isDirectory && (await hasMaildirSubdirectory(fs, join(dir, name)))) return true;
  }
  return false;
}

async function hasMaildirSubdirectory(fs: FileSystem, dir: string): Promise<boolean> {
  for (const sub of ['cur', 'new']) {
    const stat = await fs.lstatIfExists(join(dir, sub)).catch(() => undefined);
    if (stat?.isDirectory) return true;
  }
  return false;
}

async function readHead(fs: FileSystem, path: string, length: number): Promise<Buffer> {
  const handle = await fs.open(path, 'read').catch((error) => { throw fromSystemError(error, 'open', path); });
  try {
    const buffer = Buffer.alloc(length);
    const bytesRead = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } catch (error) {
    throw fromSystemError(error, 'read', path);
  } finally {
    await handle.close();
  }
}
