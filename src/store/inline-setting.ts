// The store's own choice of inline-body threshold (docs/FORMAT.md "Inline bodies"), so that every
// process opening the store (serve, the CLI, a library caller that passes no option) delivers the
// same way. A small checksummed file beside STORE, like JOURNAL-ARCHIVE; absent: the default
// (limits.inlineBodyBytesDefault). StoreOptions.inlineBodyBytesMax still wins for one open.
import { join } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { limits } from '../limits.js';
import { readSetting, writeSetting, type StoreRoot } from './setting-file.js';

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

/** The stored threshold, or undefined when the store has none (the default applies). */
export async function readInlineBodyBytes(fs: FileSystem, root: string): Promise<number | undefined> {
  const stored = await readSetting(fs, root, INLINE_BODIES_FILE, 'the inline bodies setting');
  if (!stored) return undefined;
  const match = /^inline-bytes-max (\d+)$/.exec(stored.text);
  const value = match ? Number(match[1]) : NaN;
  if (!match || !stored.intact || !Number.isSafeInteger(value) || value > limits.inlineBodyBytesSettingMax) {
    const path = join(root, INLINE_BODIES_FILE);
    throw new MailstoreError('CORRUPT', `${path} (the inline bodies setting) is damaged; set it again with 'mailstore config --inline-bytes-max N' (or 'default')`, { path });
  }
  return value;
}

/** Stores a threshold (durably), or with undefined removes the setting (the default applies again). */
export async function writeInlineBodyBytes(store: StoreRoot, value: number | undefined): Promise<void> {
  await writeSetting(store, INLINE_BODIES_FILE, value === undefined ? undefined : line(checkInlineBodyBytes(value)), 'the inline bodies setting');
}
