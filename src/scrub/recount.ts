// scrub --repair's `quota -f` (Cyrus): mailbox counters (messages, unseen, bytes: what quota usage
// sums) and blob refcounts that disagree with the messages even in an index just rebuilt from a
// whole journal were written wrong into the journal itself (a bug of the version that wrote it,
// such as the XFER target's before f7916ea); every rebuild gives them again. One journaled record
// puts them right, so replay, snapshots and replicas hold the same, and states the index's totals
// for scrub's tally of the journal, which counted the wrong records too.
import { digestHex } from '../store/mailbox-digest.js';
import { decodeMessageKey, keys } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import { checkRecordSize } from '../store/prepare.js';
import type { BlobRecord, MailboxInfo, MessageRecord, Op } from '../store/records.js';
import type { Store } from '../store/store.js';
import { formatMailboxName } from '../store/validate.js';
import { emptyTally, mailboxCountsFinding, tallyMessage, type MessageTally } from './findings.js';

/** The meta entry the record sets: `{mailboxes, messages}` the index held then (scrub.ts countLive starts its tally from it). */
export const RECOUNT_META = 'scrub/recounted';

export interface RecountTotals {
  mailboxes: number;
  messages: number;
}

export interface RecountResult {
  /** Mailboxes whose counters were put right, by name. */
  mailboxes: string[];
  /** Blob refcounts put right. */
  blobs: number;
}

/**
 * Recounts every mailbox, and the refcounts of `hashes` (hex, scrub's refcount-mismatch findings),
 * from the messages, and commits what differs. Only for an index rebuilt from a whole journal:
 * counted against messages LevelDB lost, it would call the loss clean.
 */
export async function recountCounters(store: Store, hashes: ReadonlySet<string>): Promise<RecountResult> {
  const index = store.administration().index;
  return store.administration().mutate({
    exclusive: true, // the scans below and the totals stated must be of one state
    prepare: async () => {
      await index.settle();
      const ops: Op[] = [];
      const mailboxes: string[] = [];
      const totals: RecountTotals = { mailboxes: 0, messages: 0 };
      const references = new Map<string, number>([...hashes].map((hash) => [hash, 0]));
      for await (const [, info] of index.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
        totals.mailboxes++;
        const counted = emptyTally();
        for await (const [key, record] of index.entries<MessageRecord>({ prefix: keys.messagePrefix(info.id) })) {
          tallyMessage(counted, decodeMessageKey(key).uid, record);
          const hash = Buffer.from(record.h).toString('hex');
          const seen = references.get(hash);
          if (seen !== undefined) references.set(hash, seen + 1);
        }
        totals.messages += counted.messages;
        if (info.deleting || !mailboxCountsFinding('', info, counted)) continue;
        ops.push({ op: 'state.mailbox', info: recounted(info, counted) });
        mailboxes.push(formatMailboxName(info.name));
      }
      const blobs = await refcountOps(store, references);
      ops.push(...blobs);
      if (ops.length === 0) return { ops, result: { mailboxes, blobs: 0 } };
      ops.push({ op: 'meta.set', key: RECOUNT_META, value: totals });
      checkRecordSize(ops, `recounting ${mailboxes.length} mailboxes and ${blobs.length} refcounts`);
      return { ops, result: { mailboxes, blobs: blobs.length } };
    },
  });
}

/** The mailbox's record with its counters as its messages add up (uidNext and highestModseq only raised). */
function recounted(info: MailboxInfo, counted: MessageTally): MailboxInfo {
  const box: MailboxInfo = {
    ...info, messages: counted.messages, unseen: counted.unseen, bytes: counted.bytes,
    uidNext: Math.max(info.uidNext, counted.maxUid + 1), highestModseq: Math.max(info.highestModseq, counted.maxModseq),
  };
  if (info.digest && digestHex(info.digest) !== digestHex(counted.digest)) box.digest = counted.digest;
  return box;
}

/** state.blobs for each entry whose refcount differs from the messages counted; one left unused keeps (or starts) its grace period. */
async function refcountOps(store: Store, references: Map<string, number>): Promise<Op[]> {
  const entries: Extract<Op, { op: 'state.blobs' }>['blobs'] = [];
  for (const [hex, counted] of references) {
    const hash = Buffer.from(hex, 'hex');
    const blob = await store.administration().index.get<BlobRecord>(keys.blob(hash));
    if (!blob || blob.r === counted) continue; // no entry: blob-missing, nothing to count into
    entries.push(counted > 0 ? [hash, blob.p, blob.o, blob.l, counted] : [hash, blob.p, blob.o, blob.l, 0, blob.z ?? Date.now()]);
  }
  return entries.length > 0 ? [{ op: 'state.blobs', blobs: entries }] : [];
}
