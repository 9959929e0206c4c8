// Every file an open store writes under its root (settings, REPLICATION, BACKUPS, cursors, a
// replica's files): each write first asks the store whether the root is still the file system it
// opened (umount -l leaves an empty mount point): UNMOUNTED, nothing written. A one-line setting
// is "TEXT\ncrc32 XXXXXXXX\n", removed to go back to the default; each caller parses TEXT and says
// what a damaged file means for it (docs/FORMAT.md's file table).
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { fromSystemError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { ensureDir, writeFileDurable, type FileOwner } from '../fs/durable.js';

/** An open store's root, as its files are written (a Store is one). */
export interface StoreRoot {
  readonly fs: FileSystem;
  readonly root: string;
  /** UNMOUNTED when the root left the file system the open found (open.ts mountCheck). */
  readonly checkMounted: (path: string) => Promise<void>;
}

function checksumLine(text: string): string {
  return `crc32 ${crc32(Buffer.from(text)).toString(16).padStart(8, '0')}`;
}

/** The file's text, and whether its checksum holds; undefined when there is no such file. */
export async function readSetting(fs: FileSystem, root: string, file: string, what: string): Promise<{ text: string; intact: boolean } | undefined> {
  const path = join(root, file);
  const bytes = await fs.readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, `reading ${what}`, path);
  });
  if (!bytes) return undefined;
  const [text, check] = bytes.toString('utf8').split('\n');
  return { text, intact: check === checksumLine(text) };
}

/** Stores `text` durably, or with undefined removes the file (and syncs the directory). */
export function writeSetting(store: StoreRoot, file: string, text: string | undefined, what: string, owner?: FileOwner): Promise<void> {
  if (text === undefined) return removeStoreFile(store, file, what);
  return writeStoreFile(store, file, Buffer.from(`${text}\n${checksumLine(text)}\n`), what, owner);
}

/** Replaces `file` (relative to the root; its directory made when missing) durably. */
export async function writeStoreFile(store: StoreRoot, file: string, data: Buffer, what: string, owner?: FileOwner): Promise<void> {
  const path = join(store.root, file);
  await store.checkMounted(path);
  try {
    if (dirname(file) !== '.') await ensureDir(store.fs, dirname(path));
    await writeFileDurable(store.fs, path, data, owner);
  } catch (error) {
    throw fromSystemError(error, `saving ${what}`, path);
  }
}

/** Opens `file` to write in place, made when missing (REPLICATION-PENDING). */
export async function openStoreFile(store: StoreRoot, file: string): Promise<FileHandle> {
  const path = join(store.root, file);
  await store.checkMounted(path);
  return store.fs.open(path, 'createOrOpen');
}

/** Removes `file` (relative to the root) and syncs its directory; a missing one is no error. */
export async function removeStoreFile(store: StoreRoot, file: string, what: string): Promise<void> {
  const path = join(store.root, file);
  await store.checkMounted(path);
  await store.fs.unlink(path).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw fromSystemError(error, `clearing ${what}`, path); });
  await store.fs.syncDir(dirname(path));
}
