// The store's replication role (DESIGN.md, "Processes"): kept in the store, in REPLICATION beside
// STORE, so that any process opening the store (the daemon, or the CLI with no daemon) learns it
// and a replica cannot be written around. No file: a standalone store, which is a primary.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { MailstoreError, fromSystemError } from '../errors.js';
import type { FileSystem } from '../fs/filesystem.js';
import { writeStoreFile, type StoreRoot } from './setting-file.js';

export const ROLE_FILE = 'REPLICATION';

export interface ReplicationRole {
  /** primary: takes writes; replica: mirrors its primary, serves reads; fenced: a primary that saw a newer epoch. */
  role: 'primary' | 'replica' | 'fenced';
  /** Raised by every promotion; a primary that learns of a higher one stops taking writes. */
  epoch: number;
  /** This node's own id (a store id is shared by a primary and its replicas): names its cursor on the primary. */
  nodeId: string;
  /** A replica's primary (host:port). */
  primary?: string;
  /** The key file the node authenticates with. */
  keyFile?: string;
  /** A fenced primary: the epoch that fenced it. */
  fencedBy?: number;
  /**
   * A primary's --sync-replicas and --sync-fallback as its daemon last ran it: with replicas
   * required and fallback refuse, a process that opens the store with no primary running (the CLI
   * with no daemon) is refused client writes (UNAVAILABLE) instead of writing around them.
   */
  syncReplicas?: number;
  syncFallback?: 'refuse' | 'async';
}

export function newNodeId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex'); // the global: node:crypto loads only here (issue 16)
}

export async function readRole(fs: FileSystem, root: string): Promise<ReplicationRole | undefined> {
  const path = join(root, ROLE_FILE);
  const bytes = await fs.readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw fromSystemError(error, 'reading the replication role', path);
  });
  if (!bytes) return undefined;
  const [body, check] = bytes.toString('utf8').split('\n');
  const crc = /^crc32 ([0-9a-f]{8})$/.exec(check ?? '');
  let parsed: ReplicationRole | undefined;
  try {
    parsed = crc && Number.parseInt(crc[1], 16) === crc32(Buffer.from(body)) ? JSON.parse(body) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['primary', 'replica', 'fenced'].includes(parsed.role) || !Number.isSafeInteger(parsed.epoch)) {
    // Never guessed: taking a damaged role file for "primary" could let a replica be written around.
    // not 'promote': it opens the store, which reads this file first (the same CORRUPT)
    throw new MailstoreError('CORRUPT', `${path} is damaged: this store's role (primary or replica) and epoch are unknown, so it is not opened. Put the file back from a copy of this directory (a backup, a file-system snapshot); a replica can instead be started again in an empty directory (it copies its primary; RECOVERY.md)`, { path });
  }
  return parsed;
}

export async function writeRole(store: StoreRoot, role: ReplicationRole): Promise<void> {
  const body = JSON.stringify(role);
  await writeStoreFile(store, ROLE_FILE, Buffer.from(`${body}\ncrc32 ${crc32(Buffer.from(body)).toString(16).padStart(8, '0')}\n`), 'the replication role');
}

/** The error every client write meets on a replica or a fenced primary. */
export function readOnlyReplicaError(root: string, role: ReplicationRole): MailstoreError {
  const why = role.role === 'replica'
    ? `the store at ${root} is a replica of ${role.primary ?? 'its primary'}: it serves reads; write to the primary (or 'mailstore promote' this one)`
    : `the store at ${root} was a primary and is fenced: a replica was promoted (epoch ${role.fencedBy ?? '?'} > ${role.epoch}); write to the new primary`;
  return new MailstoreError('READ_ONLY_REPLICA', why, { path: root });
}

/** READ_ONLY_REPLICA unless `role` takes writes (a primary, or a store with no role: standalone). */
export function checkWritableRole(root: string, role: ReplicationRole | undefined): void {
  if (role && role.role !== 'primary') throw readOnlyReplicaError(root, role);
}

/** A client write on a primary whose synchronous replicas no running primary waits for (the CLI with no daemon). */
export function unreplicatedError(root: string, role: ReplicationRole): MailstoreError {
  return new MailstoreError('UNAVAILABLE', `the store at ${root} is a primary with ${role.syncReplicas} synchronous replicas (--sync-fallback refuse) and no 'mailstore serve' runs it: nothing was written, as no replica would receive it (temporary: start the daemon; or run it with --sync-replicas 0 or --sync-fallback async)`, { path: root });
}
