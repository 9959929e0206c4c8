// Is the replica's journal a prefix of this primary's? Seqs alone do not say: a primary put back
// to an older disk image or copy (a VM rolled back to yesterday) writes its next changes under the
// seqs its replica already holds for others, and a replica that was not ahead of it by then was
// sent the records after its seq and applied a mix of the two histories, silently (or halted on a
// record naming a mailbox only the other history has). The replica names a few of its records by
// checksum in its hello, its last one and others at doubling distances below it; the primary
// compares those it still holds with its own before it sends anything.
import { crc32 } from 'node:zlib';
import { MailstoreError } from '../errors.js';
import type { Journal } from '../journal/journal.js';

/** [seq, crc32 of the record's payload], newest first. */
export type HistoryProbe = [number, number];

/** At most this many probes in a hello: lastSeq and then lastSeq - 2^k down to the journal's first seq. */
const probesMax = 48;

/** The replica's side: probes of its durable records at lastSeq, lastSeq - 1, - 2, - 4, ... (those it still holds). */
export async function historyProbes(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, lastSeq: number): Promise<HistoryProbe[]> {
  const probes: HistoryProbe[] = [];
  for (let distance = 0; lastSeq - distance >= Math.max(1, firstSeq) && probes.length < probesMax; distance = distance === 0 ? 1 : distance * 2) {
    const seq = lastSeq - distance;
    const payload = await journal.readRecordAt(seq);
    if (payload) probes.push([seq, crc32(payload)]);
  }
  return probes;
}

/**
 * The primary's side: REFUSED, before anything is sent, when a record the replica names differs
 * from this journal's record of that seq. Probes of seqs this journal no longer holds (retired, or
 * not committed yet) say nothing. `probes` comes from the network: anything malformed is INVALID.
 */
export async function refuseDivergedHistory(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, committedSeq: number, probes: unknown): Promise<void> {
  if (probes === undefined) return; // an older replica: seqs only, as before
  if (!Array.isArray(probes) || probes.length > probesMax) throw new MailstoreError('INVALID', 'a replica names its records as a list of [seq, crc32]');
  for (const probe of probes as unknown[]) {
    const [seq, crc] = Array.isArray(probe) ? probe as unknown[] : [];
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(crc) || (seq as number) < 1 || (crc as number) < 0 || (crc as number) > 0xffffffff) {
      throw new MailstoreError('INVALID', 'a replica names its records as a list of [seq, crc32]');
    }
    if ((seq as number) < firstSeq || (seq as number) > committedSeq) continue;
    const payload = await journal.readRecordAt(seq as number);
    if (payload && crc32(payload) !== crc) throw divergedError(seq as number);
  }
}

/**
 * promote's side (promote.ts): whether this journal holds the old primary's record at `lastSeq`
 * and every probed record it holds is the same; false for anything malformed.
 */
export async function holdsHistory(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, heldSeq: number, lastSeq: number, probes: unknown): Promise<boolean> {
  if (lastSeq > heldSeq) return false;
  if (lastSeq === 0) return true;
  if (!Array.isArray(probes) || probes.length === 0 || !Array.isArray(probes[0]) || probes[0][0] !== lastSeq) return false;
  if (lastSeq < firstSeq) return false; // retired here: nothing to compare it with
  return sameRecords(journal, firstSeq, heldSeq, probes);
}

/** Whether every probed record this journal holds (up to heldSeq) is the same; false for anything malformed. */
export async function sameRecords(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, heldSeq: number, probes: unknown): Promise<boolean> {
  try {
    await refuseDivergedHistory(journal, firstSeq, heldSeq, probes ?? []);
    return true;
  } catch {
    return false;
  }
}

/**
 * The replica's side: its tentative records past its journal (REPLICATION-PENDING, from a session
 * before this one), newest first, as [seq, crc32 of the payload]. Its primary acknowledged changes
 * once it held them, and died before saying they committed: they may be acknowledged mail.
 */
export function heldProbes(records: { seq: number; payload: Buffer }[], lastSeq: number): HistoryProbe[] {
  return records.filter((r) => r.seq > lastSeq).sort((a, b) => b.seq - a.seq).slice(0, probesMax).map((r) => [r.seq, crc32(r.payload)]);
}

/**
 * The primary's side, when it is at a newer epoch than the replica's hello (it was promoted since
 * the replica's tentative records came from its old primary): REFUSED, before anything is sent,
 * unless this journal holds each of those records as it is. Taking this primary's records for
 * those seqs would empty the replica's REPLICATION-PENDING, and with it changes its old primary
 * may have acknowledged that this one never received (it was not the replica that held them).
 * The same primary's records replace its own tentative rounds, as before: it knows what it committed.
 */
export async function refuseDroppedTentative(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, committedSeq: number, probes: unknown, epochs: { replica: number; primary: number }): Promise<void> {
  if (probes === undefined) return; // a replica holding none, or an older one
  if (!Array.isArray(probes) || probes.length > probesMax) throw new MailstoreError('INVALID', 'a replica names its held records as a list of [seq, crc32]');
  for (const probe of probes as unknown[]) {
    const [seq, crc] = Array.isArray(probe) ? probe as unknown[] : [];
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(crc) || (seq as number) < 1) throw new MailstoreError('INVALID', 'a replica names its held records as a list of [seq, crc32]');
    if ((seq as number) < firstSeq) continue; // retired here: nothing to compare it with
    const payload = (seq as number) <= committedSeq ? await journal.readRecordAt(seq as number) : undefined;
    if (payload && crc32(payload) === crc) continue;
    throw new MailstoreError('REFUSED',
      `the replica holds a tentative change at seq ${seq as number} from its primary of epoch ${epochs.replica}, which may have acknowledged it before it died, ` +
      `and this primary (epoch ${epochs.primary}, promoted since) ${payload ? 'has another record there' : `does not have it (its journal ends at seq ${committedSeq})`}. ` +
      `Nothing was sent, and the replica keeps it (in REPLICATION-PENDING). To keep that change, stop this primary and run 'mailstore promote' on the replica ` +
      `(it commits what it holds); to go on with this primary's history without it, move the replica's directory aside and start the replica in an empty one`);
  }
}

/**
 * The primary's side of a replica's held frame that does not read (`heldDamage` in its hello:
 * [byte offset in REPLICATION-PENDING, the newest seq held before it]): its seqs cannot be named,
 * so a primary promoted since cannot show it holds them. REFUSED before anything is sent when this
 * primary's epoch is newer than the replica's; `probes` from the network: malformed is INVALID.
 */
export function refuseDamagedHeld(damage: unknown, epochs: { replica: number; primary: number }): void {
  if (damage === undefined) return;
  const [offset, afterSeq] = Array.isArray(damage) ? damage as unknown[] : [];
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(afterSeq) || (offset as number) < 0 || (afterSeq as number) < 0) {
    throw new MailstoreError('INVALID', 'a replica names a damaged held frame as [offset, seq]');
  }
  throw damagedHeldError({ offset: offset as number, afterSeq: afterSeq as number }, epochs, 'this primary');
}

/** The refusal both sides give (the replica itself when its primary predates heldDamage: replica.ts). */
export function damagedHeldError(damage: { offset: number; afterSeq: number }, epochs: { replica: number; primary: number }, primary: string): MailstoreError {
  return new MailstoreError('REFUSED',
    `the replica's REPLICATION-PENDING is damaged at byte ${damage.offset} (after seq ${damage.afterSeq}): the damaged frame may hold a change its primary of ` +
    `epoch ${epochs.replica} acknowledged before it died, and ${primary} (epoch ${epochs.primary}, promoted since) cannot be shown to hold it. Nothing was ` +
    `taken, and the replica keeps the file. To keep what the replica holds, stop that primary and run 'mailstore promote --quarantine-damaged-pending' on ` +
    `the replica (the damaged frame itself cannot be applied; it stays in the kept file); to follow ${primary} without it, stop the replica, move its ` +
    `REPLICATION-PENDING into quarantine/ and start it again`);
}

/**
 * The same primary (same epoch) put back to an older disk image (session 49). A
 * held record at or below `heldCommitted` (the highest `c` a later frame of the replica's file
 * carries: this primary said it had committed through there, so it may have acknowledged it) that
 * this journal lacks or holds otherwise means this primary lost what it committed: REFUSED before
 * anything is sent, as for a newer epoch. Held records above it may be a batch whose write failed
 * here (replaced by this primary's next records, as before), or committed and acknowledged before
 * a commit notice went out: those a rolled-back primary still replaces (nothing on the replica tells
 * the two apart). A primary before session 49 ignores `heldCommitted`.
 */
export async function refuseLostCommitted(journal: Pick<Journal, 'readRecordAt'>, firstSeq: number, committedSeq: number, probes: unknown, heldCommitted: unknown): Promise<void> {
  if (probes === undefined || heldCommitted === undefined) return;
  if (!Number.isSafeInteger(heldCommitted) || !Array.isArray(probes)) throw new MailstoreError('INVALID', 'a replica names its held records as a list of [seq, crc32] and heldCommitted as a seq');
  for (const probe of probes as unknown[]) {
    const [seq, crc] = Array.isArray(probe) ? probe as number[] : [];
    if (!Number.isSafeInteger(seq) || seq > (heldCommitted as number) || seq < firstSeq) continue;
    const payload = seq <= committedSeq ? await journal.readRecordAt(seq) : undefined;
    if (payload && crc32(payload) === crc) continue;
    throw new MailstoreError('REFUSED',
      `the replica holds seq ${seq}, which this primary said had committed here (it may have acknowledged it), and this primary ` +
      `${payload ? 'has another record there' : `ends at seq ${committedSeq}`}: it was put back to an older disk image, snapshot or copy. Nothing was sent, ` +
      `and the replica keeps it (in REPLICATION-PENDING). To keep acknowledged changes, stop this primary and run 'mailstore promote' on the replica`);
  }
}

/** The replica's seq is past this primary's newest: the same two cases, without a record to compare. */
export function aheadError(replicaSeq: number, primarySeq: number): MailstoreError {
  return refusal(`the replica is at seq ${replicaSeq}, ahead of this primary (${primarySeq})`);
}

function divergedError(seq: number): MailstoreError {
  return refusal(`the replica's journal record ${seq} is not this primary's record ${seq}`);
}

function refusal(what: string): MailstoreError {
  return new MailstoreError('REFUSED',
    `${what}: the two histories diverged (this primary was put back to an older disk image, snapshot or copy after the replica took ` +
    `changes it no longer has, or one of them is a copy of the store run beside the original). Nothing was sent. ` +
    `The replica may hold acknowledged changes this primary lost: keep its directory. To go on with the replica's history, stop this primary and run ` +
    `'mailstore promote' on the replica; to go on with this primary's, move the replica's directory aside and start the replica in an empty one`);
}
