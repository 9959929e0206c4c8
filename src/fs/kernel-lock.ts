// The single-writer lock is the fcntl lock LevelDB takes on `lock/LOCK`. Taken by opening a LevelDB
// in lock/ (node has no fcntl), it cost a new MANIFEST and CURRENT, 3 syncs, at every writable open
// (issue 16); taken here with fs-ext's fcntl, it writes nothing, and older versions, which open the
// LevelDB, meet the same lock. Without fs-ext the caller opens the LevelDB as before.
import { createRequire } from 'node:module';
import { close, constants, open } from 'node:fs';
import { resolve } from 'node:path';
import { assert } from '../errors.js';

interface FsExt {
  fcntl(fd: number, command: 'setlk', type: number, done: (error: NodeJS.ErrnoException | null) => void): void;
  constants: { F_WRLCK: number };
}

/** A held lock: closing its descriptor is what releases it (the kernel also does at exit). */
export interface KernelLock {
  release(): Promise<void>;
}

/** Lock files this process holds or is taking: fcntl locks belong to the process, so a second take here would succeed. */
const takenHere = new Set<string>();

let loaded: FsExt | null | undefined;

/** fs-ext, or null where it is not installed or its binary does not load in this node. */
function fsExt(): FsExt | null {
  if (loaded !== undefined) return loaded;
  try {
    loaded = createRequire(import.meta.url)('fs-ext') as FsExt;
  } catch {
    loaded = null;
  }
  return loaded;
}

/** Whether takeKernelLock works here. */
export function kernelLockAvailable(): boolean {
  return process.platform !== 'win32' && fsExt() !== null;
}

/**
 * LevelDB's LockFile: F_SETLK, F_WRLCK over the whole of `path` (made 0640 when missing, unless
 * `create` is false: then a missing file is thrown, ENOENT). Undefined
 * while another process (or this one) holds it; a failure to open the file is thrown as it is.
 * fs-ext's synchronous fcntl passes the type where a struct flock belongs (EFAULT): the async one.
 */
export async function takeKernelLock(path: string, options: { create?: boolean } = {}): Promise<KernelLock | undefined> {
  const fcntl = fsExt();
  assert(fcntl, 'takeKernelLock without fs-ext: callers ask kernelLockAvailable first');
  const key = resolve(path);
  if (takenHere.has(key)) return undefined;
  takenHere.add(key);
  let fd: number | undefined;
  try {
    fd = await openFile(path, options.create ?? true);
    const opened = fd;
    const error = await new Promise<NodeJS.ErrnoException | null>((done) => fcntl.fcntl(opened, 'setlk', fcntl.constants.F_WRLCK, done));
    if (error && (error.code === 'EAGAIN' || error.code === 'EACCES')) {
      await closeFile(opened);
      takenHere.delete(key);
      return undefined;
    }
    if (error) throw error;
  } catch (error) {
    if (fd !== undefined) await closeFile(fd).catch(() => undefined);
    takenHere.delete(key);
    throw error;
  }
  const held = fd;
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await closeFile(held).catch(() => undefined); // the kernel drops the lock with the descriptor
      takenHere.delete(key);
    },
  };
}

// A descriptor, not a FileHandle: node closes a FileHandle it collects, dropping the lock.
function openFile(path: string, create: boolean): Promise<number> {
  const flags = constants.O_RDWR | (create ? constants.O_CREAT : 0);
  return new Promise((done, fail) => open(path, flags, 0o640, (error, fd) => (error ? fail(error) : done(fd))));
}

function closeFile(fd: number): Promise<void> {
  return new Promise((done, fail) => close(fd, (error) => (error ? fail(error) : done())));
}
