// What a replica of an older mailstore must not be sent. Such a replica applies a meta.set of any
// key, so a record whose meaning came later is stored there without it: promoted, it did not undo
// a copy in parts its old primary left half done (and the next open after its upgrade expunged
// those copies, days later, perhaps the only ones left), nor refused mail for a user XFER moved
// away. Refused by name before the round that holds it is sent: the replica stays the prefix it is.
import { MailstoreError } from '../errors.js';
import { decodeCbor } from '../index/codec.js';
import type { JournalPayload, Op } from '../store/records.js';
import { REPLICATION_SESSION, REPLICATION_VERSION } from './transport.js';

/** Meta keys (by prefix) a replica must name this replication version or later to be sent, and what they are. */
const NEWER_META: readonly { prefix: string; version: number; what: string }[] = [
  { prefix: 'copying/', version: 3, what: 'the intent of a copy in parts (session 37), which a promoted replica must undo if its primary left the copy half done' },
  { prefix: 'moved/', version: 3, what: 'the mark of a user XFER moved away (session 36; one of session 36 reads it, but names the version of session 35)' },
];

/** Op kinds a replica must name this replication version or later to be sent (it would refuse the record and stop). */
const NEWER_OPS: readonly { op: Op['op']; version: number; what: string }[] = [
  { op: 'mailbox.uidValidity', version: 4, what: 'the new uidValidity a promotion gives a mailbox (session 39)' },
];

/** What of `ops` a replica of `version` would store without its meaning; undefined when nothing. */
export function newerThan(version: number, ops: readonly Op[]): string | undefined {
  for (const op of ops) {
    const newerOp = NEWER_OPS.find((o) => o.version > version && o.op === op.op);
    if (newerOp) return newerOp.what;
    if (op.op !== 'meta.set') continue;
    const newer = NEWER_META.find((m) => m.version > version && op.key.startsWith(m.prefix));
    if (newer) return newer.what;
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
    const what = newerThan(version, payload.ops);
    if (what !== undefined) {
      if (batchesEnd > 0) return records.slice(0, batchesEnd);
      throw new MailstoreError('REFUSED', `replica ${nodeId} runs an older mailstore (replication version ${version}): record ${record.seq} holds ${what}; ` +
        `nothing of its batch or after it was sent. Upgrade the replica to mailstore of session ${REPLICATION_SESSION} or later (replication version ${REPLICATION_VERSION}): it goes on from its seq`);
    }
    if (payload.end === true) batchesEnd = i + 1;
  }
  return records;
}
