// Files that hold a secret (a backup key, the replication key, object-store credentials): like
// ssh with a private key, mailstore refuses one that another user may read, since whoever reads it
// reads the mail it guards (a backup repository kept on another host, the replication link).
import { MailstoreError } from '../errors.js';
import type { FileStat } from './filesystem.js';

/** ACCESS when group or others have any access to the secret `what` at `path`. */
export function refuseSecretReadableByOthers(stat: FileStat, path: string, what: string): void {
  if ((stat.mode & 0o077) === 0) return;
  throw new MailstoreError('ACCESS', `${what} ${path} may be read by others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it (on a medium that cannot change it: install -m 600 ${path} A_NEW_PATH)`, { path });
}
