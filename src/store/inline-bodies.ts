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
import { limits } from '../limits.js';

/** The body of `hash` inside a decoded record (a copy of its own), or undefined. */
export function inlineBodyIn(payload: JournalPayload, hash: Buffer): Buffer | undefined {
  const body = inlineBodyView(payload, hash);
  return body && Buffer.from(body);
}

/** As inlineBodyIn, but a view of the body where the decoder left it (in the record's bytes), no copy. */
function inlineBodyView(payload: JournalPayload, hash: Buffer): Buffer | undefined {
  for (const op of payload.ops) {
    if (op.op === 'message.add' && op.body && hash.equals(op.hash)) return Buffer.from(op.body.buffer, op.body.byteOffset, op.body.byteLength);
  }
  return undefined;
}

/** An inline body to read in a group (compact-inline.ts): its blob hash, the seq of its record and its length. */
export interface InlineBodyRef {
  hash: Buffer;
  seq: number;
  length: number;
}

/**
 * Reads many inline bodies at once (the blobs compact-inline.ts moves into packs): their records
 * with one pread per run into one buffer (`into` when big enough; Journal.readRecordsAt), each
 * decoded once and its body checked (length, hash) as journalInlineSource checks it. The bodies
 * are views into `buffer`, which must outlive them; undefined for a body that could not be read
 * so: its caller reads it alone (PackStore.read) for the error that names the damage.
 */
export type InlineRunSource = (blobs: InlineBodyRef[], into?: Buffer) => Promise<{ bodies: (Buffer | undefined)[]; buffer: Buffer }>;

export function journalInlineRuns(journal: Journal): InlineRunSource {
  return async (blobs, into) => {
    const seqs = [...new Set(blobs.map((b) => b.seq))].sort((a, b) => a - b);
    const { payloads, buffer } = await journal.readRecordsAt(seqs, limits.readGapBytes, into);
    const decoded = new Map<number, JournalPayload | undefined>();
    const bodies = blobs.map((blob) => {
      const payload = payloads.get(blob.seq);
      if (!payload) return undefined;
      if (!decoded.has(blob.seq)) {
        try {
          decoded.set(blob.seq, decodeCbor<JournalPayload>(payload));
        } catch {
          decoded.set(blob.seq, undefined);
        }
      }
      const record = decoded.get(blob.seq);
      const body = record && inlineBodyView(record, blob.hash);
      return body && body.length === blob.length && hashBytes(body).equals(blob.hash) ? body : undefined;
    });
    return { bodies, buffer };
  };
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
