// Files that hold a secret (a backup key, the replication key, object-store credentials): like
// ssh with a private key, mailstore refuses one that another user may read, since whoever reads it
// reads the mail it guards (a backup repository kept on another host, the replication link).
// "May read" counts the directories above it too: a key written with the usual umask (0644) in a
// directory only its owner may enter (mktemp -d, ~/.config at 0700) is out of others' reach, and
// `head -c 32 /dev/urandom > KEY` there is how people make one.
import { realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { MailstoreError } from '../errors.js';
import type { FileStat } from './filesystem.js';

/** ACCESS when group or others may read the secret `what` at `path` (its mode, and the directories above it). */
export function refuseSecretReadableByOthers(stat: FileStat, path: string, what: string): void {
  const byOthers = (stat.mode & 0o007) !== 0 && reachable(path, 0o001);
  const byGroup = (stat.mode & 0o070) !== 0 && reachable(path, 0o011);
  if (!byOthers && !byGroup) return;
  throw new MailstoreError('ACCESS', `${what} ${path} may be read by others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it (on a medium that cannot change it: install -m 600 ${path} A_NEW_PATH)`, { path });
}

/** Whether every directory above `path` has one of the search bits in `bits` (unknown: yes). */
function reachable(path: string, bits: number): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return true;
  }
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    try {
      if ((statSync(dir).mode & bits) === 0) return false;
    } catch {
      return true;
    }
    if (dirname(dir) === dir) return true;
  }
}
