// Reading the files of a backup repository, which someone else may have written or tampered with
// (a copy from another host, a shared disk, an attacker): mailstore only ever puts regular files
// there, so a link, FIFO, socket or device at a file's name is damage, refused before it is read.
// A FIFO hung every command on the repository, and a link to /dev/zero read until memory ran out.
import { MailstoreError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/filesystem.js';
import { readUpTo } from '../formats/eml.js';

const notOurs = (path: string, what: string) =>
  new MailstoreError('CORRUPT', `${path}: ${what}; mailstore writes only regular files into a backup repository (damaged, or put there by someone else)`, { path });

/**
 * A repository file opened for reading: without following a link or waiting for a FIFO's writer,
 * and checked to be a regular file (CORRUPT otherwise). Other errors are the system's, as thrown
 * (ENOENT for a missing file), for the caller to name.
 */
export async function openRepositoryFile(fs: FileSystem, path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'readNoFollow');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') {
      // O_NOFOLLOW's ELOOP names a link at the file's own name; a loop of links among the
      // directories above it (--repo itself: /backup -> /mnt/b -> /backup) is no damage of a file
      // here but a path that leads nowhere
      if ((await fs.lstatIfExists(path).catch(() => undefined))?.isSymbolicLink) throw notOurs(path, 'a symbolic link');
      throw new MailstoreError('INVALID', `${path}: a directory above it is a loop of symbolic links (${code}): give the repository's real directory`, { path, cause: error });
    }
    if (code === 'ENXIO') throw notOurs(path, 'not a regular file (a socket or device)');
    throw error;
  }
  try {
    if (!(await handle.stat()).isFile) throw notOurs(path, 'not a regular file (a FIFO, socket, device or directory)');
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
  return handle;
}

/** A repository file's bytes, whole, when it is a regular file of at most `bytesMax` bytes (CORRUPT otherwise). */
export async function readRepositoryFile(fs: FileSystem, path: string, bytesMax: number): Promise<Buffer> {
  const handle = await openRepositoryFile(fs, path);
  try {
    const size = (await handle.stat()).size;
    if (size > bytesMax) throw notOurs(path, `${size} bytes, more than such a file holds (${bytesMax})`);
    return await readUpTo(handle, size, bytesMax, path);
  } catch (error) {
    if (error instanceof MailstoreError && error.code === 'TOO_LARGE') throw notOurs(path, `grew past ${bytesMax} bytes while it was read`);
    throw error;
  } finally {
    await handle.close().catch(() => undefined);
  }
}
