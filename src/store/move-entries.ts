// Moving a directory aside where the file system will not rename it (overlayfs: EXDEV for a
// directory from a lower layer). Loaded only when a rename into quarantine/ failed so.
import { join } from 'node:path';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { LAYOUT } from './identity.js';

/**
 * A directory that overlayfs will not rename (EXDEV): one from a lower layer (a container image
 * that ships a store), or merged with one, unless the overlay is mounted redirect_dir=on (off by
 * default). The index is derived, so it moves file by file (files rename there, copied up) and its
 * emptied directory is removed: a crash half-way leaves a partial index, which the next open finds
 * damaged and moves aside in turn. Anything else (the journal) is not taken apart: refused, saying
 * why. Until session 50 an open that found the index damaged failed IO EXDEV, every time.
 */
export async function moveEntriesAside(fs: FileSystem, root: string, path: string, target: string): Promise<void> {
  if (path !== join(root, LAYOUT.index)) {
    throw new MailstoreError('IO', `moving aside ${path}: EXDEV: the file system will not rename this directory (overlayfs does so for a directory from a lower layer, a container image's, unless mounted redirect_dir=on). Nothing was moved. Mount the overlay with redirect_dir=on, or copy the store onto a volume of its own (not the image's layers) and run this there`, { path });
  }
  try {
    await fs.mkdir(target);
    for (const name of await fs.readdir(path)) await fs.rename(join(path, name), join(target, name));
    await fs.syncDir(target);
    await fs.syncDir(path);
    await fs.rmdir(path);
  } catch (error) {
    throw fromSystemError(error, 'moving aside (file by file: the directory would not rename)', path);
  }
}
