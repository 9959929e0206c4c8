// A one-line setting beside STORE (JOURNAL-ARCHIVE, INLINE-BODIES): "TEXT\ncrc32 XXXXXXXX\n",
// written durably, removed to go back to the default. Each caller parses TEXT and says what a
// damaged file means for it (docs/FORMAT.md's file table).
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { writeFileDurable, type FileOwner } from '../fs/durable.js';

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
export async function writeSetting(fs: FileSystem, root: string, file: string, text: string | undefined, what: string, owner?: FileOwner): Promise<void> {
  const path = join(root, file);
  if (text === undefined) {
    await fs.unlink(path).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw fromSystemError(error, `clearing ${what}`, path); });
    await fs.syncDir(root);
    return;
  }
  await writeFileDurable(fs, path, Buffer.from(`${text}\n${checksumLine(text)}\n`), owner).catch((error) => {
    throw fromSystemError(error, `saving ${what}`, path);
  });
}
