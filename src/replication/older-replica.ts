// What a replica of an older mailstore must not be sent. Such a replica applies a meta.set of any
// key, so a record whose meaning came later is stored there without it: promoted, it did not undo
// a copy in parts its old primary left half done (and the next open after its upgrade expunged
// those copies, days later, perhaps the only ones left), nor refused mail for a user XFER moved
// away. Refused by name before the round that holds it is sent: the replica stays the prefix it is.
import { MailstoreError } from '../errors.js';
import { decodeCbor } from '../index/codec.js';
import type { JournalPayload, Op } from '../store/records.js';
import { REPLICATION_VERSION } from './transport.js';

/** Meta keys (by prefix) a replica must name this replication version or later to be sent, and what they are. */
const NEWER_META: readonly { prefix: string; version: number; what: string }[] = [
  { prefix: 'copying/', version: 3, what: 'the intent of a copy in parts (session 37), which a promoted replica must undo if its primary left the copy half done' },
  { prefix: 'moved/', version: 3, what: 'the mark of a user XFER moved away (session 36; one of session 36 reads it, but names the version of session 35)' },
];

/** Op kinds a replica must name this replication version or later to be sent (an older one's replay refuses them). */
const NEWER_OPS: readonly { op: string; version: number; what: string }[] = [
  { op: 'mailbox.uidValidity', version: 4, what: 'the new uidValidity a promotion gives a mailbox (session 39), an op that version\'s replay refuses' },
  { op: 'change.floor', version: 4, what: "a mailbox's vanished floor (session 39: its older tombstones expired, or it came by XFER or undump), an op that version's replay refuses" },
];

/** The session whose mailstore first names each replication version (the upgrade a refusal asks for). */
const SESSION_OF_VERSION: Record<number, number> = { 3: 37, 4: 39 };

/** What of `ops` a replica of `version` would store without its meaning (or refuse); undefined when nothing. */
export function newerThan(version: number, ops: readonly Op[]): { what: string; version: number } | undefined {
  for (const op of ops) {
    const newOp = NEWER_OPS.find((m) => m.version > version && op.op === m.op);
    if (newOp) return newOp;
    if (op.op !== 'meta.set') continue;
    const newer = NEWER_META.find((m) => m.version > version && op.key.startsWith(m.prefix));
    if (newer) return newer;
  }
  return undefined;
}

/**
 * The records of a round (whole batches) that a replica of `version` can be sent: the batches before
 * the first that holds a record newer than it; REFUSED, naming the version to upgrade to, when that
 * batch is the round's first.
 */
export function sendableRecords<T extends { seq: number; payload: Buffer }>(records: T[], version: number, nodeId: string): T[] {
  if (version >= REPLICATION_VERSION) return records;
  let batchesEnd = 0; // records[0, batchesEnd) are whole batches without one
  for (const [i, record] of records.entries()) {
    const payload = decodeCbor<JournalPayload>(record.payload);
    const newer = newerThan(version, payload.ops);
    if (newer !== undefined) {
      if (batchesEnd > 0) return records.slice(0, batchesEnd);
      throw new MailstoreError('REFUSED', `replica ${nodeId} runs an older mailstore (replication version ${version}): record ${record.seq} holds ${newer.what}; ` +
        `nothing of its batch or after it was sent. Upgrade the replica to mailstore of session ${SESSION_OF_VERSION[newer.version]} or later (replication version ${newer.version} or later; this one's is ${REPLICATION_VERSION}): it goes on from its seq`);
    }
    if (payload.end === true) batchesEnd = i + 1;
  }
  return records;
}
