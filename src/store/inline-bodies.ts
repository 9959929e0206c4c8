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

/** The body of `hash` inside a decoded record: a view where the decoder left it (in the record's bytes), no copy; or undefined. */
function inlineBodyView(payload: JournalPayload, hash: Buffer): Buffer | undefined {
  for (const op of payload.ops) {
    if (op.op === 'message.add' && op.body && hash.equals(op.hash)) return Buffer.from(op.body.buffer, op.body.byteOffset, op.body.byteLength);
  }
  return undefined;
}

/** The body of `hash` in a decoded record, checked against the index's `length` and the hash (a view); else why it cannot be used. */
function checkedBody(record: JournalPayload, hash: Buffer, length: number): Buffer | string {
  const body = inlineBodyView(record, hash);
  if (!body) return 'the record holds no body of this hash';
  if (body.length !== length) return `body of ${body.length} bytes, the index says ${length}`;
  if (!hashBytes(body).equals(hash)) return `body does not match its hash ${hashHex(hash)}`;
  return body;
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
 * decoded once and its body checked as journalInlineSource checks it (checkedBody). The bodies
 * are views into `buffer`, which must outlive them; undefined for a body that could not be read
 * so: its caller reads it alone (PackStore.read) for the error that names the damage.
 */
export type InlineRunSource = (blobs: InlineBodyRef[], into?: Buffer) => Promise<{ bodies: (Buffer | undefined)[]; buffer: Buffer }>;

export function journalInlineRuns(journal: Pick<Journal, 'readRecordsAt'>): InlineRunSource {
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
      const body = record && checkedBody(record, blob.hash, blob.length);
      return typeof body === 'string' ? undefined : body;
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
    let record: JournalPayload;
    try {
      record = decodeCbor<JournalPayload>(payload);
    } catch {
      throw corrupt(hash, where, 'the record does not decode');
    }
    const body = checkedBody(record, hash, location.length);
    if (typeof body === 'string') throw corrupt(hash, where, body);
    return Buffer.from(body); // a copy of its own: the record's bytes are not kept
  };
}

function corrupt(hash: Buffer, where: string, why: string): MailstoreError {
  return new MailstoreError('CORRUPT', `inline body of blob ${hashHex(hash)} in ${where}: ${why}; run 'mailstore scrub'`, { path: `journal@${where.split(' ').pop()}` });
}

/** Whether a location is inside the journal. */
export function isInline(location: { pack: number } | { p: number }): boolean {
  return ('pack' in location ? location.pack : location.p) === INLINE_PACK;
}
