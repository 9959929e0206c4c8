// Promotion and fencing (PostgreSQL's pg_promote, with an epoch as in Raft's terms): `promote` turns
// a replica into a primary with the epoch raised by one, recorded in its REPLICATION file first
// (from then on it takes writes) and then in its journal (meta.set replication/epoch), so the epoch
// is part of the history its own replicas receive. The old primary is fenced when it learns of the
// higher epoch: the promoted node tells it at once if it can be reached, and any replica that
// connects to it later carries the epoch in its hello. A fenced primary refuses writes
// (READ_ONLY_REPLICA) and fails the synchronous commits still waiting.
import { MailstoreError } from '../errors.js';
import { limits } from '../limits.js';
import type { Store } from '../store/store.js';
import { readKeyFile } from './key.js';
import { PRIMARY_SETTINGS_FILE, forgetPrimarySettings, readNodeSettings, readPrimarySettings, settingWarnings } from './node-settings.js';
import { commitPendingRounds } from './pending-rounds.js';
import { connect, type Log } from './transport.js';

export const EPOCH_META = 'replication/epoch';

export interface PromoteResult {
  epoch: number;
  /** The seq of the epoch record. */
  seq: number;
  /** Whether the old primary was reached and told (it is fenced in any case once it hears of the epoch). */
  oldPrimaryFenced: boolean;
  /** A damaged REPLICATION-PENDING frame set aside (promote --quarantine-damaged-pending); its changes were not applied. */
  damagedPendingFrame?: { offset: number; quarantinedAs: string };
  /** The per-node settings that differ from the old primary's last announced ones (node-settings.ts), one WARNING line each. */
  settingWarnings?: string[];
}

export interface PromoteOptions {
  /** Go on past a damaged REPLICATION-PENDING frame that may hold acknowledged changes (the file is kept). */
  quarantineDamagedPending?: boolean;
}

/** Promotes a replica store (its replication must be stopped: ReplicaHandle.promote does that). */
export async function promoteStore(store: Store, log: Log = () => undefined, options: PromoteOptions = {}): Promise<PromoteResult> {
  const control = store.replication();
  const role = control.role();
  if (role?.role !== 'replica') {
    throw new MailstoreError('INVALID', `the store at ${store.root} is ${role ? `a ${role.role}` : 'a standalone store (a primary)'}, not a replica: nothing to promote`, { path: store.root });
  }
  // tentative rounds of a synchronous primary that died before saying they committed: they
  // continue this history, and one of them may have been acknowledged (pending-rounds.ts)
  const pending = await commitPendingRounds(store, log, { quarantineDamaged: options.quarantineDamagedPending });
  const epoch = role.epoch + 1;
  await control.setRole({ ...role, role: 'primary', epoch, primary: undefined });
  const seq = await control.commitMeta(EPOCH_META, epoch);
  log(`replication: promoted to primary at epoch ${epoch} (seq ${seq}); the old primary ${role.primary ?? '?'} is fenced once it hears of it`);
  // Mailbox deletes (and copies in parts) the old primary began and did not end were its to finish
  // (undo); now they are this store's (open does it too, but a daemon may run for months): in the
  // background, as a delete's chunks go, so the new primary serves at once. close() waits for them.
  control.finishInterrupted().catch((error: unknown) => log(`replication: finishing the mailbox deletes and copies the old primary left half-done failed (${(error as Error).message}); the next open finishes them`));
  const oldPrimaryFenced = role.primary && role.keyFile ? await tellOldPrimary(store, role.primary, role.keyFile, epoch) : false;
  const warnings = settingWarnings(await readPrimarySettings(store.fs, store.root), await readNodeSettings(store.fs, store.root), role.primary ?? '?');
  for (const line of warnings) log(line);
  await forgetPrimarySettings(store.fs, store.root).catch((error: unknown) => log(`replication: could not remove ${PRIMARY_SETTINGS_FILE} (${(error as Error).message}); it names the old primary's settings: remove it`));
  return { epoch, seq, oldPrimaryFenced, ...(pending.damagedFrame ? { damagedPendingFrame: pending.damagedFrame } : {}), ...(warnings.length > 0 ? { settingWarnings: warnings } : {}) };
}

/** Best effort, bounded: a dead or partitioned old primary learns the epoch from its next replica. */
async function tellOldPrimary(store: Store, address: string, keyFile: string, epoch: number): Promise<boolean> {
  try {
    const psk = await readKeyFile(store.fs, keyFile);
    const connection = await Promise.race([
      connect(address, psk),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), limits.replicationPingMs).unref()),
    ]);
    try {
      await connection.send({ t: 'hello', kind: 'fence', storeId: store.identity.storeId, epoch });
      const answer = await connection.next(limits.replicationPingMs);
      return answer?.t === 'error' && answer.code === 'READ_ONLY_REPLICA';
    } finally {
      connection.close();
    }
  } catch {
    return false;
  }
}
