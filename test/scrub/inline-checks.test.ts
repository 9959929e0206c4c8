// Scrub's and reconstruct's check of inline bodies (docs/FORMAT.md, "Inline bodies"): every
// index entry into the journal is read back and verified. Pins the findings on a store whose inline
// bodies lie in many segments, some intact, some in damaged records, in missing records, in records
// whose body differs from its hash, in records that are not the ones the index names: whatever
// groups the bodies are read in, the findings are these, in this order.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub, unreadableInlineBodies } from '../../src/scrub/scrub.js';
import type { Finding } from '../../src/scrub/findings.js';
import { keys } from '../../src/keys/index-keys.js';
import { encodeValue } from '../../src/index/codec.js';
import { INLINE_PACK } from '../../src/blob/pack-store.js';
import { RECORD_MAGIC, RECORD_HEADER_BYTES } from '../../src/journal/journal-format.js';
import type { BlobRecord } from '../../src/store/records.js';
import type { Journal } from '../../src/journal/journal.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';

const MESSAGES = 150;
const small = (i: number) => Buffer.from(`Message-ID: <check-${i}@example.org>\r\nSubject: ${i}\r\n\r\n${`line ${i} `.repeat(20 + (i % 7) * 11)}\r\n`);
const big = (i: number) => Buffer.alloc(9000 + i, 0x61 + (i % 20));
const hex = (bytes: Buffer) => hashBytes(bytes).toString('hex');

/** The segment file holding message i's text (its path) and where the text starts in it. */
function find(dir: string, i: number): { path: string; bytes: Buffer; at: number } {
  const journal = join(dir, 'journal');
  for (const name of readdirSync(journal).filter((n) => n.endsWith('.jnl')).sort()) {
    const path = join(journal, name);
    const bytes = readFileSync(path);
    const at = bytes.indexOf(`<check-${i}@`);
    if (at >= 0) return { path, bytes, at };
  }
  throw new Error(`message ${i} is in no segment`);
}

/** A flipped byte in message i's body: its record fails its checksum. */
function damageRecord(dir: string, i: number): void {
  const { path, bytes, at } = find(dir, i);
  bytes[at + 60] ^= 0x01;
  writeFileSync(path, bytes);
}

/** A flipped byte in message i's body, the record's checksums made good again: a valid record whose body is not its hash's. */
function changeBody(dir: string, i: number): void {
  const { path, bytes, at } = find(dir, i);
  const start = bytes.lastIndexOf(RECORD_MAGIC, at);
  const length = bytes.readUInt32BE(start + 4);
  bytes[at + 60] ^= 0x01;
  bytes.writeUInt32BE(crc32(bytes.subarray(start + RECORD_HEADER_BYTES, start + RECORD_HEADER_BYTES + length)), start + 16);
  bytes.writeUInt32BE(crc32(bytes.subarray(start, start + 20)), start + 20);
  writeFileSync(path, bytes);
}

async function entry(store: Store, bytes: Buffer): Promise<BlobRecord> {
  return (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(bytes))))!;
}

async function setEntry(store: Store, bytes: Buffer, change: Partial<BlobRecord>): Promise<void> {
  const key = keys.blob(hashBytes(bytes));
  await store.maintenance().index.write([{ type: 'put', key, value: encodeValue(key, { ...(await entry(store, bytes)), ...change }) }]);
}

/** What each damaged body's blob-missing says (its seq in the message). */
interface Damaged {
  store: Store;
  expected: { hash: string; pack: number; offset: number; why: RegExp }[];
}

/**
 * 150 inline deliveries over many small segments and a few pack bodies between them, then: two
 * records damaged (in two segments), one middle segment gone, one record whose body changed with
 * its checksums made good, and index entries naming another message's record, a length off by
 * one, a seq past the journal's end, and a pack body one byte off its record.
 */
async function damagedStore(): Promise<Damaged> {
  const dir = tmpDir('inline-checks');
  let store = await Store.open(dir, { create: true, inlineBodyBytesMax: 4096, journalSegmentBytesMax: 8192, autoSnapshot: false, autoCompact: false });
  await store.createMailbox('INBOX');
  for (let i = 0; i < MESSAGES; i++) {
    await store.append('INBOX', small(i));
    if (i % 40 === 5) await store.append('INBOX', big(i));
  }
  const seqOf = new Map<number, number>();
  for (let i = 0; i < MESSAGES; i++) {
    const blob = await entry(store, small(i));
    expect(blob.p).toBe(INLINE_PACK);
    seqOf.set(i, blob.o);
  }
  await store.close();
  const segments = readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).sort();
  expect(segments.length).toBeGreaterThan(5);
  damageRecord(dir, 7);
  damageRecord(dir, 101);
  changeBody(dir, 60);
  // a middle segment moved away: every body in it has no record
  const goneSegment = find(dir, 80).path;
  const gone = [...seqOf.keys()].filter((i) => find(dir, i).path === goneSegment);
  renameSync(goneSegment, join(dir, 'gone.jnl'));
  store = await Store.open(dir, { inlineBodyBytesMax: 4096, autoSnapshot: false, autoCompact: false });
  await setEntry(store, small(20), { o: seqOf.get(21)! }); // another message's record
  await setEntry(store, small(130), { l: small(130).length + 1 }); // a length the body has not
  await setEntry(store, small(140), { o: seqOf.get(MESSAGES - 1)! + 1000 }); // past the end
  const bigEntry = await entry(store, big(45));
  await setEntry(store, big(45), { o: bigEntry.o + 1 }); // a pack location off its record
  const missing = (i: number) => ({ hash: hex(small(i)), pack: INLINE_PACK, offset: seqOf.get(i)!, why: /the record is missing .* or damaged/ });
  const expected = [
    missing(7),
    missing(101),
    { hash: hex(small(60)), pack: INLINE_PACK, offset: seqOf.get(60)!, why: /body does not match its hash/ },
    ...gone.map(missing),
    { hash: hex(small(20)), pack: INLINE_PACK, offset: seqOf.get(21)!, why: /the record holds no body of this hash/ },
    { hash: hex(small(130)), pack: INLINE_PACK, offset: seqOf.get(130)!, why: new RegExp(`body of ${small(130).length} bytes, the index says ${small(130).length + 1}`) },
    { hash: hex(small(140)), pack: INLINE_PACK, offset: seqOf.get(MESSAGES - 1)! + 1000, why: /the record is missing .* or damaged/ },
    { hash: hex(big(45)), pack: bigEntry.p, offset: bigEntry.o + 1, why: /./ },
  ].sort((a, b) => (a.hash < b.hash ? -1 : 1)); // in the index's order: by hash
  expect(gone.length).toBeGreaterThan(3);
  return { store, expected };
}

type Located = Extract<Finding, { kind: 'blob-missing' }>;
const located = (findings: Finding[]) => findings.filter((f): f is Located => f.kind === 'blob-missing' || f.kind === 'blob-corrupt');

function expectFindings(findings: Finding[], expected: Damaged['expected']): void {
  const found = located(findings);
  expect(found.map((f) => f.hash)).toEqual(expected.map((e) => e.hash));
  for (const [i, f] of found.entries()) {
    expect(f).toMatchObject({ kind: 'blob-missing', pack: expected[i]!.pack, offset: expected[i]!.offset, refs: [{ mailbox: 'INBOX', uid: expect.any(Number) }] });
    expect(f.why).toMatch(expected[i]!.why);
  }
}

/** Runs `check` with limits.inlineCheckBatchBytes and inlineCheckEntriesMax set as `set` says (absent: as they are). */
async function withLimits<T>(set: { bytes?: number; entries?: number }, check: () => Promise<T>): Promise<T> {
  const saved = { bytes: limits.inlineCheckBatchBytes, entries: limits.inlineCheckEntriesMax };
  limits.inlineCheckBatchBytes = set.bytes ?? saved.bytes;
  limits.inlineCheckEntriesMax = set.entries ?? saved.entries;
  try {
    return await check();
  } finally {
    limits.inlineCheckBatchBytes = saved.bytes;
    limits.inlineCheckEntriesMax = saved.entries;
  }
}

describe('scrub and reconstruct check inline bodies', () => {
  it('damaged, missing, changed and misnamed records over many segments: the same findings, in index order, in one group or many', async () => {
    const { store, expected } = await damagedStore();
    try {
      const whole = await withLimits({}, () => scrub(store));
      expectFindings(whole.findings, expected);
      const unreadable = await withLimits({}, () => unreadableInlineBodies(store));
      // reconstruct's check: the inline ones, as scrub reports them
      expectFindings(unreadable, expected.filter((e) => e.pack === INLINE_PACK));
      // the intact bodies are read in groups: a record is read alone only for a body the group did not read back
      const journal = (store as unknown as { journal: Journal }).journal;
      const readAlone = journal.readRecordAt.bind(journal);
      let alone = 0;
      journal.readRecordAt = (seq) => { alone++; return readAlone(seq); };
      try {
        await scrub(store);
        await unreadableInlineBodies(store);
      } finally {
        journal.readRecordAt = readAlone;
      }
      const inline = expected.filter((e) => e.pack === INLINE_PACK).length;
      expect(alone).toBe(2 * inline);
      // groups of one body, of a few, of many; windows of a few entries, their findings merged in index order
      for (const set of [{ bytes: 1 }, { bytes: 700 }, { bytes: 5000 }, { entries: 7 }, { bytes: 700, entries: 1 }]) {
        expect((await withLimits(set, () => scrub(store))).findings).toEqual(whole.findings);
        expect(await withLimits(set, () => unreadableInlineBodies(store))).toEqual(unreadable);
      }
    } finally {
      await store.close();
    }
  });
});
