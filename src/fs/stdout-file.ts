// A command's output written with write(2) on the descriptor itself when it is a regular file or
// /dev/null (the bench, cron's `> log`, an MTA that discards it): node's process.stdout there is a
// SyncWriteStream over node's fs streams, whose making was ~10M instructions (~2 ms) of an append
// that prints one uid (issue 16). It writes synchronously too, so the bytes and their order are the
// same. A pipe, socket or terminal keeps node's stream (EPIPE, a TTY's handling).
import { fstatSync, statSync, writeSync } from 'node:fs';

/** Whether `fd` is a regular file or /dev/null: a write there neither blocks nor breaks like a pipe. */
export function isFileOrNull(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    if (stat.isFile()) return true;
    return stat.isCharacterDevice() && stat.rdev === statSync('/dev/null').rdev;
  } catch {
    return false; // closed (EBADF): node's stream says what it says for that
  }
}

/** All of `bytes` to `fd`; the write's error (ENOSPC, EIO, EFBIG) is thrown as node's stream passes it on. */
export function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let offset = 0; offset < bytes.length;) offset += writeSync(fd, bytes, offset);
}
