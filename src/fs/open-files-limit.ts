// The process's open-file limit (RLIMIT_NOFILE, soft: Node raises it to the hard limit at start),
// which Node does not expose: the daemon keeps its connections within it (daemon/server.ts).
import { readFileSync } from 'node:fs';

/** The soft limit on open files, from /proc/self/limits; undefined where that cannot be read (not Linux) or says unlimited. */
export function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft !== undefined && /^[0-9]+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}
