// Who owns a store directory, for a command run as root: what root writes into another user's
// store (a new pack, journal segment, snapshot or index directory) is root's, and that user's
// daemon can then neither read nor replace it.
import { readFileSync, statSync } from 'node:fs';

/** The owner (and group) of `dir` when this process runs as root and `dir` belongs to another user; else undefined. */
export function otherOwnerOfRootsStore(dir: string): { uid: number; gid: number; name: string } | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  let owner: { uid: number; gid: number };
  try {
    owner = statSync(dir);
  } catch {
    return undefined; // missing or unreadable: the open says so
  }
  return owner.uid === 0 ? undefined : { uid: owner.uid, gid: owner.gid, name: userName(owner.uid) ?? String(owner.uid) };
}

function userName(uid: number): string | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.split(':')[2] === String(uid));
    return line?.split(':')[0] || undefined;
  } catch {
    return undefined;
  }
}
