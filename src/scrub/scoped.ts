// scrub --mailbox PREFIX: the scrub of one subtree (Dovecot's force-resync MAILBOX, Cyrus's
// reconstruct -r user.x). Verifies every blob the subtree's messages refer to (read and hashed) and
// the index records of those mailboxes: counts, name entry, reverse ACL map, change log, and that
// each blob's refcount covers the subtree's references. Check-only, like scrub; the packs outside
// the subtree, the journal and unreferenced records are not looked at.
import { MailstoreError } from '../errors.js';
import { hashHex } from '../hash/blake3.js';
import { decodeValue } from '../index/codec.js';
import { SPACE, prefixEnd } from '../keys/tuple.js';
import { ID_BYTES, decodeChangeKey, decodeMessageKey, decodeNameKey, decodeRightsKey, keys } from '../keys/index-keys.js';
import { limits } from '../limits.js';
import type { BlobRecord, MailboxInfo, MessageRecord, RightsRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import { formatMailboxName, parseMailboxName } from '../store/validate.js';
import { emptyTally, isDamage, mailboxCountsFinding, modseqAheadFinding, nextModseq, tallyMessage, type Finding } from './findings.js';
import type { ScrubOptions, ScrubReport, ScrubSummary } from './scrub.js';
import { monotonicMs } from '../monotonic.js';

export interface ScopedScrubOptions extends Pick<ScrubOptions, 'onProgress' | 'now'> {
  /** The mailbox and every mailbox below it. */
  mailbox: string;
}

/** A user's PREFIX as the index spells names (NFC, validated). */
export function normalizePrefix(mailbox: string): string {
  return formatMailboxName(parseMailboxName(mailbox));
}

/**
 * Whether an index key belongs to the subtree: I, M and C keys by mailbox id (the ids the index
 * has under PREFIX now), N and R keys by name. B and X keys belong to no mailbox.
 */
export function keyInSubtree(prefix: string, ids: Set<string>): (key: Buffer) => boolean {
  const under = (components: string[]) => {
    const name = formatMailboxName(components);
    return name === prefix || name.startsWith(prefix + '/');
  };
  return (key) => {
    switch (key[0]) {
      case SPACE.info: case SPACE.message: case SPACE.change: return ids.has(key.subarray(1, 1 + ID_BYTES).toString('hex'));
      case SPACE.name: return under(decodeNameKey(key));
      case SPACE.rights: return under(decodeRightsKey(key).components);
      default: return false;
    }
  };
}

export async function scrubMailboxes(store: Store, options: ScopedScrubOptions, attachRefs: (findings: Finding[]) => Promise<void>): Promise<ScrubReport> {
  const now = options.now ?? (() => monotonicMs()); // monotonic, as the whole scrub's
  const started = now();
  const prefix = normalizePrefix(options.mailbox);
  const findings: Finding[] = [];
  const boxes = await store.maintenance().runExclusive(() => mailboxesUnder(store, prefix, findings));
  if (boxes.length === 0 && findings.length === 0) throw new MailstoreError('NOT_FOUND', `no mailbox ${prefix} or below it`, { path: prefix });
  const summary: ScrubSummary = {
    packs: 0, blobsVerified: 0, bytesVerified: 0, journalRecords: 0, indexKeys: 0, seconds: 0,
    cycleComplete: false, scanned: [], damage: 0, informational: 0, scope: { mailbox: prefix, mailboxes: boxes.length },
  };
  const verified = new Set<string>();
  for (const info of boxes) {
    // One mailbox at a time holds the writer, so its several reads see one state.
    summary.indexKeys += await store.maintenance().runExclusive(() => checkMailbox(store, info, findings));
    await verifyBlobs(store, info, findings, verified, summary);
    options.onProgress?.({ phase: 'index', bytesDone: summary.bytesVerified, bytesTotal: 0, blobs: summary.blobsVerified });
  }
  await attachRefs(findings);
  summary.seconds = (now() - started) / 1000;
  summary.damage = findings.filter(isDamage).length;
  summary.informational = findings.length - summary.damage;
  return { findings, summary };
}

/** The mailboxes named PREFIX or below it (not those being deleted), by name. */
export async function mailboxesUnder(store: Store, prefix: string, findings: Finding[] = []): Promise<MailboxInfo[]> {
  const found: MailboxInfo[] = [];
  for await (const [key, raw] of store.maintenance().index.rawIterator({ gte: Buffer.of(SPACE.info), lt: Buffer.of(SPACE.info + 1) })) {
    let info: MailboxInfo;
    try {
      info = decodeValue<MailboxInfo>(raw, key);
    } catch { // whose name cannot be told: reported, since it may be in the subtree
      findings.push({ kind: 'index-value-corrupt', key: Buffer.from(key).toString('hex') });
      continue;
    }
    const name = formatMailboxName(info.name);
    if (!info.deleting && (name === prefix || name.startsWith(prefix + '/'))) found.push(info);
  }
  return found.sort((a, b) => formatMailboxName(a.name).localeCompare(formatMailboxName(b.name)));
}

/** A key range read in batches, values decoded; a value failing its checksum is a finding. */
async function* range<T>(store: Store, gte: Buffer, findings: Finding[]): AsyncGenerator<[Buffer, T]> {
  const iterator = store.maintenance().index.rawIterator({ gte, lt: prefixEnd(gte) });
  try {
    for (;;) {
      const batch = await iterator.nextv(limits.scrubIndexReadEntries);
      if (batch.length === 0) return;
      for (const [rawKey, raw] of batch) {
        const key = Buffer.from(rawKey);
        try {
          yield [key, decodeValue<T>(raw, key)];
        } catch {
          findings.push({ kind: 'index-value-corrupt', key: key.toString('hex') });
        }
      }
    }
  } finally {
    await iterator.close();
  }
}

/**
 * The mailbox's index records against each other, and each blob's refcount against the mailbox's
 * references; returns the keys read. Called with the writer held: the mailbox's record is read
 * again here (the one listed before is from an earlier moment, writers ran since: its counts
 * disagreed with the messages, and a refcount read after an expunge with references counted
 * before it, both damage on a healthy store).
 */
async function checkMailbox(store: Store, listed: MailboxInfo, findings: Finding[]): Promise<number> {
  const id = Buffer.from(listed.id);
  const info = await store.maintenance().index.get<MailboxInfo>(keys.info(id)).catch(() => listed);
  if (!info || info.deleting) return 1; // deleted since it was listed
  const name = formatMailboxName(info.name);
  let keysRead = 1;
  const named = await store.maintenance().index.get<Buffer>(keys.name(info.name)).catch(() => undefined);
  if (!named || !Buffer.from(named).equals(id)) findings.push({ kind: 'name-index-mismatch', name, detail: named ? 'the name points to another mailbox' : 'the mailbox has no name entry' });
  for (const [user, rights] of Object.entries(info.acl)) {
    keysRead++;
    const entry = await store.maintenance().index.get<RightsRecord>(keys.rights(user, info.name)).catch(() => undefined);
    if (!entry || !Buffer.from(entry.id).equals(id)) findings.push({ kind: 'acl-map-mismatch', identifier: user, name, detail: 'ACL entry missing from the reverse map' });
    else if (entry.rights !== rights) findings.push({ kind: 'acl-map-mismatch', identifier: user, name, detail: `reverse map says '${entry.rights}', the ACL says '${rights}'` });
  }
  const modseqs = new Map<number, number>(); // uid -> modseq
  const counted = emptyTally();
  const references = new Map<string, number>();
  for await (const [key, record] of range<MessageRecord>(store, keys.messagePrefix(id), findings)) {
    keysRead++;
    const { uid } = decodeMessageKey(key);
    modseqs.set(uid, record.m);
    tallyMessage(counted, uid, record);
    const hex = hashHex(Buffer.from(record.h));
    references.set(hex, (references.get(hex) ?? 0) + 1);
  }
  await checkRefcounts(store, references, findings);
  const counts = mailboxCountsFinding(name, info, counted);
  if (counts) findings.push(counts);
  const ahead = modseqAheadFinding(name, info, counted, await nextModseq(store.maintenance().index));
  if (ahead) findings.push(ahead);
  // Every message has exactly one 'changed' entry, at its modseq.
  let changed = 0;
  const problems: string[] = [];
  for await (const [key, value] of range<number>(store, keys.changePrefix(id), findings)) {
    keysRead++;
    if (value !== 0) continue;
    const c = decodeChangeKey(key);
    changed++;
    if (modseqs.get(c.uid) !== c.modseq && problems.length < 3) problems.push(`a change entry for uid ${c.uid} at modseq ${c.modseq} has no message at that modseq`);
  }
  if (changed !== modseqs.size && problems.length < 3) problems.push(`${changed} change entries for ${modseqs.size} messages`);
  if (problems.length) findings.push({ kind: 'change-log-mismatch', mailbox: name, detail: problems.join('; ') });
  return keysRead;
}

/** Reads and hashes every blob the mailbox's messages refer to (outside the writer: records are immutable). */
async function verifyBlobs(store: Store, info: MailboxInfo, findings: Finding[], verified: Set<string>, summary: ScrubSummary): Promise<void> {
  let batch: Buffer[] = [];
  const flush = async () => {
    const blobs = await store.maintenance().index.getMany<BlobRecord>(batch.map((hash) => keys.blob(hash)));
    for (let i = 0; i < batch.length; i++) await verifyBlob(store, batch[i], blobs[i], findings, summary);
    batch = [];
  };
  for await (const [, record] of range<MessageRecord>(store, keys.messagePrefix(Buffer.from(info.id)), [])) {
    const hash = Buffer.from(record.h);
    const hex = hashHex(hash);
    if (verified.has(hex)) continue;
    if (verified.size >= limits.scopedScrubVerifiedHashesMax) verified.clear();
    verified.add(hex);
    batch.push(hash);
    if (batch.length >= limits.scrubLookupBatch) await flush();
  }
  if (batch.length) await flush();
}

/** A refcount below the mailbox's own references (`references`: hash -> count) is wrong whatever the rest of the store holds. */
async function checkRefcounts(store: Store, references: Map<string, number>, findings: Finding[]): Promise<void> {
  const hashes = [...references.keys()];
  for (let i = 0; i < hashes.length; i += limits.scrubLookupBatch) {
    const part = hashes.slice(i, i + limits.scrubLookupBatch);
    const blobs = await store.maintenance().index.getMany<BlobRecord>(part.map((hex) => keys.blob(Buffer.from(hex, 'hex'))));
    part.forEach((hex, k) => {
      const blob = blobs[k];
      if (blob instanceof MailstoreError) return; // reported by verifyBlob
      const recorded = blob?.r ?? 0;
      if (recorded < references.get(hex)!) findings.push({ kind: 'refcount-mismatch', hash: hex, recorded, counted: references.get(hex)! });
    });
  }
}

async function verifyBlob(store: Store, hash: Buffer, blob: BlobRecord | MailstoreError | undefined, findings: Finding[], summary: ScrubSummary, again = true): Promise<void> {
  const hex = hashHex(hash);
  if (blob instanceof MailstoreError) {
    if (blob.code !== 'CORRUPT') throw blob;
    findings.push({ kind: 'index-value-corrupt', key: keys.blob(hash).toString('hex') });
    return;
  }
  if (!blob) return; // no entry at all: reported below as a refcount of 0, as the full scrub does
  const location = { pack: blob.p, offset: blob.o, length: blob.l };
  const why = await store.maintenance().packs.checkLocation(location, hash);
  let finding: Finding | undefined;
  if (why) finding = { kind: 'blob-missing', hash: hex, pack: blob.p, offset: blob.o, why, refs: [] };
  else {
    try {
      await store.maintenance().packs.read(location, hash);
      summary.blobsVerified++;
      summary.bytesVerified += blob.l;
      return;
    } catch (error) {
      if (!(error instanceof MailstoreError) || error.code !== 'CORRUPT') throw error;
      finding = { kind: 'blob-corrupt', pack: blob.p, offset: blob.o, hash: hex, length: blob.l, refs: [] };
    }
  }
  // read outside the writer: a compaction may have moved the blob since (verified where it is
  // now), or reclaimed it once its messages were expunged (nothing refers to it: no damage)
  const now = await store.maintenance().index.get<BlobRecord>(keys.blob(hash)).catch((error: unknown) => error as MailstoreError);
  if (now && !(now instanceof MailstoreError) && now.r === 0) return;
  if (again && now && !(now instanceof MailstoreError) && (now.p !== blob.p || now.o !== blob.o)) return verifyBlob(store, hash, now, findings, summary, false);
  if (now) findings.push(finding);
}
