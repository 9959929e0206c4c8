// The store's own choice of inline-body threshold (docs/FORMAT.md "Inline bodies"), so that every
// process opening the store (serve, the CLI, a library caller that passes no option) delivers the
// same way. A small checksummed file beside STORE, like JOURNAL-ARCHIVE; absent: the default
// (limits.inlineBodyBytesDefault). StoreOptions.inlineBodyBytesMax still wins for one open.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { writeFileDurable } from '../fs/durable.js';
import { limits } from '../limits.js';

/** The setting's file in the store root (absent: limits.inlineBodyBytesDefault). */
export const INLINE_BODIES_FILE = 'INLINE-BODIES';

/** A threshold a store accepts: a whole number of bytes, 0 (off) to limits.inlineBodyBytesSettingMax. */
export function checkInlineBodyBytes(value: unknown, what = 'inline body bytes'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > limits.inlineBodyBytesSettingMax) {
    throw new MailstoreError('INVALID', `${what} must be a whole number of bytes from 0 (off) to ${limits.inlineBodyBytesSettingMax}, got ${String(value)}`);
  }
  return value;
}

function line(value: number): string {
  return `inline-bytes-max ${value}`;
}

function checksum(text: string): string {
  return `crc32 ${crc32(Buffer.from(text)).toString(16).padStart(8, '0')}`;
}

/** The stored threshold, or undefined when the store has none (the default applies). */
export async function readInlineBodyBytes(fs: FileSystem, root: string): Promise<number | undefined> {
  const path = join(root, INLINE_BODIES_FILE);
  const bytes = await fs.readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'reading the inline bodies setting', path);
  });
  if (!bytes) return undefined;
  const [text, check] = bytes.toString('utf8').split('\n');
  const match = /^inline-bytes-max (\d+)$/.exec(text);
  const value = match ? Number(match[1]) : NaN;
  if (!match || check !== checksum(text) || !Number.isSafeInteger(value) || value > limits.inlineBodyBytesSettingMax) {
    throw new MailstoreError('CORRUPT', `${path} (the inline bodies setting) is damaged; set it again with 'mailstore config --inline-bytes-max N' (or 'default')`, { path });
  }
  return value;
}

/** Stores a threshold (durably), or with undefined removes the setting (the default applies again). */
export async function writeInlineBodyBytes(fs: FileSystem, root: string, value: number | undefined): Promise<void> {
  const path = join(root, INLINE_BODIES_FILE);
  if (value === undefined) {
    await fs.unlink(path).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw fromSystemError(error, 'clearing the inline bodies setting', path); });
    await fs.syncDir(root);
    return;
  }
  const text = line(checkInlineBodyBytes(value));
  await writeFileDurable(fs, path, Buffer.from(`${text}\n${checksum(text)}\n`)).catch((error) => {
    throw fromSystemError(error, 'saving the inline bodies setting', path);
  });
}
