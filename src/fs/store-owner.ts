// Who owns a store directory, for a command run as root: what root writes into another user's
// store (a new pack, journal segment, snapshot or index directory) is root's, and that user's
// daemon can then neither read nor replace it.
import { readFileSync, statSync } from 'node:fs';

/** The owner of `dir` when this process runs as root and `dir` belongs to another user; else undefined. */
export function otherOwnerOfRootsStore(dir: string): { uid: number; name: string } | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  let uid: number;
  try {
    uid = statSync(dir).uid;
  } catch {
    return undefined; // missing or unreadable: the open says so
  }
  return uid === 0 ? undefined : { uid, name: userName(uid) ?? String(uid) };
}

function userName(uid: number): string | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.split(':')[2] === String(uid));
    return line?.split(':')[0] || undefined;
  } catch {
    return undefined;
  }
}
