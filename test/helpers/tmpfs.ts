// A small tmpfs to fill up (real ENOSPC, root only: docs/FAULTS.md), and what is free on it.
import { spawnSync } from 'node:child_process';
import { statfsSync } from 'node:fs';

/** Mounted by mountTmpfs; unmount them after each test (unmountAll). */
const mounts: string[] = [];

export const noRoot = process.getuid?.() !== 0 ? 'needs root (mount -t tmpfs)' : undefined;

/** Mounts a tmpfs of `size` (e.g. '4m') on `dir`; the reason when it could not. */
export function mountTmpfs(dir: string, size: string): string | undefined {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount -t tmpfs failed: ${r.stderr.trim()}`;
  mounts.push(dir);
  return undefined;
}

export function unmountAll(): void {
  for (const dir of mounts.splice(0).reverse()) spawnSync('umount', ['-l', dir]);
}

/** Bytes an unprivileged writer may still use on the file system of `dir`. */
export const freeBytes = (dir: string): number => { const s = statfsSync(dir); return s.bavail * s.bsize; };
