// A file system that hangs, for real: a bindfs FUSE mount whose daemon is stopped (SIGSTOP) blocks
// every call on it in the kernel until it is continued (SIGCONT), as a hung NFS or iSCSI mount or a
// stopped FUSE daemon does (FAULTLAB.md). Root only. Every mount is continued and unmounted by
// releaseAll (call it in afterEach), also after a failed test, so no process stays hung.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../cli/helpers.js';

export interface HangableMount {
  /** Every call on the mount waits from now on... */
  hang(): void;
  /** ...until this. */
  resume(): void;
}

const mounts: { dir: string; child: ChildProcess }[] = [];

/** Why bindfs mounts cannot be made here, or undefined when they can. */
export function bindfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (FUSE mounts)';
  if (spawnSync('bindfs', ['--version']).status !== 0) return 'bindfs is not installed (apt-get install fuse3 bindfs)';
  return undefined;
}

const mounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === dir);

/**
 * Mounts `source` on `dir` with bindfs in the foreground (its pid is the child's), caching nothing
 * in the kernel (no entry, attribute or negative-entry timeouts), so each call reaches the daemon.
 */
export async function mountHangable(source: string, dir: string): Promise<HangableMount> {
  const child = spawn('bindfs', ['-f', '-o', 'entry_timeout=0,attr_timeout=0,negative_timeout=0', source, dir], { stdio: 'ignore' });
  mounts.push({ dir, child });
  for (let waited = 0; !mounted(dir); waited += 20) {
    if (waited > 10_000 || child.exitCode !== null) throw new Error(`bindfs did not mount ${dir}`);
    await sleep(20);
  }
  return {
    hang: () => { child.kill('SIGSTOP'); },
    resume: () => { child.kill('SIGCONT'); },
  };
}

/** Continues and unmounts every mount (lazily: a process still in it keeps it until it lets go). */
export function releaseAll(): void {
  for (const { dir, child } of mounts.splice(0).reverse()) {
    child.kill('SIGCONT');
    spawnSync('umount', ['-l', dir]);
    child.kill('SIGTERM');
  }
}

/** A new directory on a bindfs mount of a new one, ready to hang. */
export async function hangableDir(): Promise<{ dir: string; mount: HangableMount }> {
  const base = tempDir('mailstore-hang-');
  const source = join(base, 'source');
  const dir = join(base, 'mnt');
  mkdirSync(source);
  mkdirSync(dir);
  return { dir, mount: await mountHangable(source, dir) };
}

export { until } from './until.js';
