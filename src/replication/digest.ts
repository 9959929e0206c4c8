// Divergence checks: per-mailbox digests that do not depend on order (the XOR of BLAKE3 over each
// message's uid, hash, flags and modseq, with a count), over uid ranges, so a mismatch is narrowed
// down by halving ranges until the few messages that differ are listed.
import { hashBytes } from '../hash/blake3.js';
import type { IndexDb } from '../index/index-db.js';
import { decodeMessageKey, keys } from '../keys/index-keys.js';
import { SPACE } from '../keys/tuple.js';
import type { MailboxInfo, MessageRecord } from '../store/records.js';

export const UID_MAX = 0xffffffff;
const DIGEST_READ_ENTRIES = 1000;

export interface MailboxDigest {
  id: string;
  name: string;
  uidValidity: number;
  uidNext: number;
  highestModseq: number;
  owner: string | null;
  acl: Record<string, string>;
  count: number;
  digest: string;
}

export interface RangeDigest {
  count: number;
  digest: string;
}

/** One message as compared: [uid, hash hex, flags, modseq]. */
export type MessageEntry = [uid: number, hash: string, flags: string[], modseq: number];

/** The bytes hashed for one message, built in place (a 1M-message check allocated 3 buffers each). */
let scratch = Buffer.allocUnsafe(4096);

export function messageDigest(uid: number, record: MessageRecord): Buffer {
  const flags = record.f.join('\0');
  const length = 44 + Buffer.byteLength(flags, 'utf8');
  if (length > scratch.length) scratch = Buffer.allocUnsafe(length * 2);
  const b = scratch;
  b.writeUInt32BE(uid, 0);
  b.set(record.h, 4);
  b.writeUInt32BE(Math.floor(record.m / 0x1_0000_0000), 36);
  b.writeUInt32BE(record.m >>> 0, 40);
  b.write(flags, 44, 'utf8');
  return hashBytes(b.subarray(0, length));
}

function range(id: Buffer, lo: number, hi: number): { gte: Buffer; lt: Buffer } {
  return { gte: keys.message(id, lo), lt: hi >= UID_MAX ? Buffer.concat([keys.messagePrefix(id), Buffer.alloc(5, 0xff)]) : keys.message(id, hi + 1) };
}

/** The messages with lo <= uid <= hi, a batch at a time: one LevelDB round trip per thousand. */
async function* messageBatches(db: IndexDb, id: Buffer, lo: number, hi: number): AsyncGenerator<[Buffer, MessageRecord][]> {
  yield* db.entryBatches<MessageRecord>(range(id, lo, hi), DIGEST_READ_ENTRIES);
}

/** The digest of the messages with lo <= uid <= hi. */
export async function rangeDigest(db: IndexDb, id: Buffer, lo: number, hi: number): Promise<RangeDigest> {
  const acc = new Uint32Array(8);
  let count = 0;
  const batches = messageBatches(db, id, lo, hi);
  try {
    // the next batch is read on LevelDB's thread while this one is hashed (a 1M-message check
    // spent as long waiting for the reads as hashing)
    let next = batches.next();
    for (let current = await next; !current.done; current = await next) {
      next = batches.next();
      for (const [key, record] of current.value) {
        const d = messageDigest(decodeMessageKey(key).uid, record);
        for (let i = 0; i < 8; i++) acc[i] ^= d.readUInt32LE(i * 4);
        count++;
      }
    }
  } finally {
    await batches.return(undefined);
  }
  return { count, digest: Buffer.from(acc.buffer).toString('hex') };
}

export async function rangeMessages(db: IndexDb, id: Buffer, lo: number, hi: number): Promise<MessageEntry[]> {
  const out: MessageEntry[] = [];
  for await (const batch of messageBatches(db, id, lo, hi)) {
    for (const [key, record] of batch) out.push([decodeMessageKey(key).uid, Buffer.from(record.h).toString('hex'), record.f, record.m]);
  }
  return out;
}

/** Every live mailbox with its attributes and whole digest, by id. */
export async function mailboxDigests(db: IndexDb): Promise<MailboxDigest[]> {
  const out: MailboxDigest[] = [];
  for await (const [, box] of db.entries<MailboxInfo>({ prefix: keys.space(SPACE.info) })) {
    if (box.deleting) continue;
    const id = Buffer.from(box.id);
    const { count, digest } = await rangeDigest(db, id, 1, UID_MAX);
    out.push({
      id: id.toString('hex'), name: box.name.join('/'), uidValidity: box.uidValidity, uidNext: box.uidNext, highestModseq: box.highestModseq,
      owner: box.owner ?? null, acl: box.acl, count, digest,
    });
  }
  return out;
}
