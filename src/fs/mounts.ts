// Whether a path lies under a mount point the system expects (/etc/fstab) with nothing mounted on
// it now (/proc/self/mountinfo): a backup disk that did not mount leaves an empty directory, and a
// new backup repository made there fills the parent file system (the root disk, or the store's own)
// while the real repository is never written again (issue 14).
import { dirname, join, basename } from 'node:path';
import type { FileSystem } from './filesystem.js';

export const FSTAB_PATH = '/etc/fstab';
export const MOUNTINFO_PATH = '/proc/self/mountinfo';

export interface UnmountedMountPoint {
  /** The mount point /etc/fstab names (the path or one of its parents). */
  mountPoint: string;
  /** What fstab mounts there (a device, UUID=..., LABEL=..., a remote share). */
  source: string;
}

/** fstab and mountinfo write a space, tab, newline or backslash in a path as \NNN (octal). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** The mount points /etc/fstab names (swap and pseudo entries left out). */
export function fstabMountPoints(text: string): { mountPoint: string; source: string }[] {
  const entries: { mountPoint: string; source: string }[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3 || fields[0].startsWith('#')) continue;
    const mountPoint = unescapeOctal(fields[1]);
    if (!mountPoint.startsWith('/') || fields[2] === 'swap') continue;
    entries.push({ mountPoint: mountPoint.length > 1 ? mountPoint.replace(/\/+$/, '') : mountPoint, source: unescapeOctal(fields[0]) });
  }
  return entries;
}

/** The mount points of this process's mount namespace (the fifth field of each line). */
export function mountedPoints(text: string): Set<string> {
  const points = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(unescapeOctal(field));
  }
  return points;
}

/**
 * The nearest existing directory at or above `path`, its symbolic links resolved (a missing
 * repository directory is made on whatever file system that one is on), and `path` below it.
 */
export async function existingAncestor(fs: FileSystem, path: string): Promise<{ dir: string; path: string }> {
  let at = path;
  const rest: string[] = [];
  while (!(await fs.statIfExists(at).catch(() => undefined)) && dirname(at) !== at) {
    rest.unshift(basename(at));
    at = dirname(at);
  }
  const dir = fs.realpath ? await fs.realpath(at).catch(() => at) : at;
  return { dir, path: rest.length ? join(dir, ...rest) : dir };
}

/**
 * The mount point /etc/fstab names at or above `path` that has nothing mounted on it, if any;
 * undefined too where either file does not read (no fstab: nothing is expected to be mounted).
 */
export async function unmountedMountPointAbove(fs: FileSystem, path: string): Promise<UnmountedMountPoint | undefined> {
  const [fstab, mountinfo] = await Promise.all([FSTAB_PATH, MOUNTINFO_PATH].map((file) => fs.readFile(file).then((b) => b.toString('utf8'), () => undefined)));
  if (fstab === undefined || mountinfo === undefined) return undefined;
  const mounted = mountedPoints(mountinfo);
  const real = (await existingAncestor(fs, path)).path;
  for (const candidate of new Set([path, real])) {
    for (const entry of fstabMountPoints(fstab)) {
      if (entry.mountPoint === '/' || mounted.has(entry.mountPoint)) continue;
      if (candidate === entry.mountPoint || candidate.startsWith(`${entry.mountPoint}/`)) return entry;
    }
  }
  return undefined;
}
