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
 * Files that are mail, but in no format import reads, each with what to do about it: read as one
 * message, each went in whole (`archive.mbox.gz`: its compressed bytes; an RMAIL file: every
 * message of it as one). bzip2's magic is taken with its first block's (or an empty stream's),
 * since a header `BZh...:` is text.
 */
const FOREIGN: [what: string, magic: RegExp, advice: (path: string) => string][] = [
  ['gzip-compressed', /^\x1f\x8b/, (path) => `decompress it first (gzip -dk ${path})`],
  ['xz-compressed', /^\xfd7zXZ\x00/, (path) => `decompress it first (xz -dk ${path})`],
  ['zstd-compressed', /^\x28\xb5\x2f\xfd/, (path) => `decompress it first (zstd -dk ${path})`],
  ['bzip2-compressed', /^BZh[1-9](1AY&SY|\x17rE8P\x90)/, (path) => `decompress it first (bzip2 -dk ${path})`],
  ['a Babyl mailbox (Emacs RMAIL)', /^BABYL OPTIONS:/, () => 'convert it to mbox first (Emacs: M-x unrmail; or Python\'s mailbox module)'],
  ['an MMDF mailbox', /^\x01\x01\x01\x01\r?\n/, () => 'convert it to mbox first (Python\'s mailbox module reads it)'],
];

/** A file in one of the FOREIGN formats is refused (INVALID), naming it and what to do. */
export async function refuseForeign(fs: FileSystem, path: string): Promise<void> {
  const head = (await readHead(fs, path, 16)).toString('latin1');
  const found = FOREIGN.find(([, magic]) => magic.test(head));
  if (found) {
    const [what, , advice] = found;
    throw new MailstoreError('INVALID', `${path} is ${what}, neither an mbox nor a message; ${advice(path)} and import the result`, { path });
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
