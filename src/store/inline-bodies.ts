// Message bodies stored inside their journal record (docs/FORMAT.md, "Inline bodies"): a small
// message's delivery writes one file and fdatasyncs it once. The blob's location is
// (INLINE_PACK, seq of the record); reading it finds the record, takes the body from its
// message.add op and verifies the hash, as every pack read does.
import { MailstoreError } from '../errors.js';
import { hashBytes, hashHex } from '../hash/blake3.js';
import { decodeCbor } from '../index/codec.js';
import { INLINE_PACK, type BlobLocation, type InlineSource } from '../blob/pack-store.js';
import type { Journal } from '../journal/journal.js';
import type { JournalPayload } from './records.js';

/** The body of `hash` inside a decoded record, or undefined. */
export function inlineBodyIn(payload: JournalPayload, hash: Buffer): Buffer | undefined {
  for (const op of payload.ops) {
    if (op.op === 'message.add' && op.body && Buffer.from(op.hash).equals(hash)) return Buffer.from(op.body);
  }
  return undefined;
}

/** Reads inline bodies from `journal` (PackStore.setInlineSource). */
export function journalInlineSource(journal: Journal): InlineSource {
  return async (location: BlobLocation, hash: Buffer) => {
    const payload = await journal.readRecordAt(location.offset);
    const where = `journal record ${location.offset}`;
    if (!payload) throw corrupt(hash, where, `the record is missing (journal starts at ${journal.firstSeq}, ends at ${journal.lastSeq}) or damaged`);
    let body: Buffer | undefined;
    try {
      body = inlineBodyIn(decodeCbor<JournalPayload>(payload), hash);
    } catch {
      throw corrupt(hash, where, 'the record does not decode');
    }
    if (!body) throw corrupt(hash, where, 'the record holds no body of this hash');
    if (body.length !== location.length) throw corrupt(hash, where, `body of ${body.length} bytes, the index says ${location.length}`);
    if (!hashBytes(body).equals(hash)) throw corrupt(hash, where, `body does not match its hash ${hashHex(hash)}`);
    return body;
  };
}

function corrupt(hash: Buffer, where: string, why: string): MailstoreError {
  return new MailstoreError('CORRUPT', `inline body of blob ${hashHex(hash)} in ${where}: ${why}; run 'mailstore scrub'`, { path: `journal@${where.split(' ').pop()}` });
}

/** Whether a location is inside the journal. */
export function isInline(location: { pack: number } | { p: number }): boolean {
  return ('pack' in location ? location.pack : location.p) === INLINE_PACK;
}
