// Snapshot formats: a format 1 snapshot (checkpoint ops, written by the mailstore before format 2)
// still rebuilds the index exactly; a format 3 snapshot (the index's own entries) rebuilds exactly
// what the whole journal rebuilds, over random histories; a format 3 file whose digest holds but
// whose entries break the format's rules is CORRUPT; a damaged index value is never written.
// (Format 2, entries of index format 1: test/index/key-checksum.test.ts.)
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { createHasher } from '../../src/hash/blake3.js';
import { encodeCbor, encodeValue } from '../../src/index/codec.js';
import { encodeRecord } from '../../src/journal/journal-format.js';
import { keys } from '../../src/keys/index-keys.js';
import { SNAPSHOT_MAGIC, readSnapshotFile, writeSnapshotFile } from '../../src/store/snapshot-file.js';
import { Store } from '../../src/store/store.js';
import { codeOf } from '../helpers/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { indexDifferences } from '../helpers/index-diff.js';

const FIXTURE = new URL('../../fixtures/snapshot-v1/store.tar.gz', import.meta.url).pathname;
const OPTIONS = { autoSnapshot: false } as const;

const differences = indexDifferences;

/** index/ moved to `name` and rebuilt by an open; what the open said it rebuilt from. */
async function rebuildAside(root: string, name: string): Promise<{ rebuiltFrom?: string; degraded: boolean }> {
  renameSync(join(root, 'index'), join(root, name));
  const store = await Store.open(root, OPTIONS);
  const { rebuiltFrom, degraded } = store.health;
  await store.close();
  return { rebuiltFrom, degraded };
}

describe('snapshot formats', () => {
  it('a format 1 snapshot (fixture written by the mailstore before format 2) still rebuilds the index exactly, and the next snapshot is format 3', async () => {
    const root = tmpDir();
    execFileSync('tar', ['-xzf', FIXTURE, '-C', root]);
    const [name] = readdirSync(join(root, 'snapshots'));
    const store = await Store.open(root, OPTIONS);
    const info = await readSnapshotFile(nodeFileSystem, join(root, 'snapshots', name), name, store.storeId);
    expect(info.format).toBe(1);
    expect(info.seq).toBeLessThan(store.changes.lastSeq); // a journal tail after it
    const before = await store.stats();
    await store.close();
    const rebuilt = await rebuildAside(root, 'index.old');
    expect(rebuilt.rebuiltFrom).toMatch(new RegExp(`^snapshot ${name} \\(seq ${info.seq}\\) and [1-9]\\d* journal records after it$`));
    expect(rebuilt.degraded).toBe(false);
    expect(await differences(join(root, 'index.old'), join(root, 'index'))).toEqual([]);
    const reopened = await Store.open(root, OPTIONS);
    expect((await reopened.stats()).messages).toBe(before.messages);
    await reopened.setFlags('INBOX', [1], { add: ['$After'] }).catch(() => undefined);
    const next = await reopened.snapshot();
    expect(next.format).toBe(3);
    await reopened.close();
    const again = await rebuildAside(root, 'index.v1');
    expect(again.rebuiltFrom).toMatch(new RegExp(`^snapshot ${next.name} `));
    expect(await differences(join(root, 'index.v1'), join(root, 'index'))).toEqual([]);
  });

  it('property: a rebuild from a format 3 snapshot plus the journal after it equals the whole-journal rebuild and the live index, key for key', async () => {
    const mailboxes = ['INBOX', 'Sent', 'Archive'];
    const step = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), box: fc.integer({ min: 0, max: 2 }), size: fc.integer({ min: 0, max: 300 }), seen: fc.boolean() }),
      fc.record({ kind: fc.constant('flag' as const), box: fc.integer({ min: 0, max: 2 }), pick: fc.nat() }),
      fc.record({ kind: fc.constant('expunge' as const), box: fc.integer({ min: 0, max: 2 }), pick: fc.nat() }),
      fc.record({ kind: fc.constant('acl' as const), box: fc.integer({ min: 0, max: 2 }), who: fc.constantFrom('bob', 'carol') }),
      fc.record({ kind: fc.constant('snapshot' as const) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 60 }), fc.integer({ min: 1, max: 1_000_000 }), async (steps, seed) => {
      const root = tmpDir();
      const store = await Store.open(root, { create: true, ...OPTIONS });
      for (const box of mailboxes) await store.createMailbox(box);
      const uids: number[][] = [[], [], []];
      let snapshots = 0;
      for (const [i, s] of [...steps, { kind: 'snapshot' as const }, { kind: 'append' as const, box: 0, size: 1, seen: false }].entries()) {
        if (s.kind === 'append') {
          const body = Buffer.from(`Subject: ${seed} ${i}\r\n\r\n${'y'.repeat(s.size)}\r\n`);
          uids[s.box].push((await store.append(mailboxes[s.box], body, { flags: s.seen ? ['\\Seen'] : [] })).uid);
        } else if (s.kind === 'flag' && uids[s.box].length > 0) {
          await store.setFlags(mailboxes[s.box], [uids[s.box][s.pick % uids[s.box].length]], { add: ['$Label'] });
        } else if (s.kind === 'expunge' && uids[s.box].length > 0) {
          const [uid] = uids[s.box].splice(s.pick % uids[s.box].length, 1);
          await store.expunge(mailboxes[s.box], [uid]);
        } else if (s.kind === 'acl') {
          await store.setAcl(mailboxes[s.box], s.who, 'lr');
        } else if (s.kind === 'snapshot') {
          expect((await store.snapshot()).format).toBe(3);
          snapshots++;
        }
      }
      await store.close();
      const fromSnapshot = await rebuildAside(root, 'index.live');
      expect(fromSnapshot.rebuiltFrom).toMatch(/^snapshot .* and [1-9]\d* journal records after it$/);
      expect(fromSnapshot.degraded).toBe(false);
      expect(await differences(join(root, 'index.live'), join(root, 'index'))).toEqual([]);
      renameSync(join(root, 'snapshots'), join(root, 'snapshots.aside'));
      const fromJournal = await rebuildAside(root, 'index.snap');
      expect(fromJournal.rebuiltFrom).toMatch(/^the whole journal/);
      expect(await differences(join(root, 'index.snap'), join(root, 'index'))).toEqual([]);
      expect(snapshots).toBeGreaterThan(0);
      rmSync(root, { recursive: true, force: true });
    }), { numRuns: 6 });
  }, 120_000);

  it('a newest snapshot damaged at its very end (found after every entry was loaded) is discarded whole: the rebuild from the older one equals the live index key for key', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true, ...OPTIONS });
    await store.createMailbox('INBOX');
    const uids: number[] = [];
    for (let i = 0; i < 30; i++) uids.push((await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`))).uid);
    const older = await store.snapshot();
    await store.expunge('INBOX', uids.slice(0, 10));
    await store.setFlags('INBOX', uids.slice(10, 20), { add: ['\\Seen'] });
    const newest = await store.snapshot();
    for (let i = 30; i < 35; i++) await store.append('INBOX', Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`));
    await store.close();
    const path = join(root, 'snapshots', newest.name);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 0x01; // the trailer's digest: the last thing a reader checks
    writeFileSync(path, bytes);
    const rebuilt = await rebuildAside(root, 'index.live');
    expect(rebuilt.rebuiltFrom).toMatch(new RegExp(`^snapshot ${older.name} `));
    const reopened = await Store.open(root, OPTIONS);
    expect(reopened.health.findings.join('\n')).toBe('');
    await reopened.close();
    expect(await differences(join(root, 'index.live'), join(root, 'index'))).toEqual([]);
  });

  it('a format 3 file whose digest and checksums hold but whose entries break its rules is CORRUPT, saying why', async () => {
    const root = tmpDir();
    const storeId = Buffer.alloc(16, 7);
    const path = join(root, 'x.snap');
    const blob = (n: number) => keys.blob(Buffer.alloc(32, n));
    const hashed = (first: number[]) => keys.blob(Buffer.concat([Buffer.from(first), Buffer.alloc(32 - first.length, 1)]));
    const value = encodeValue(blob(1), { p: 1, o: 2, l: 3, r: 1 });
    const cases: [string, [Buffer, Buffer][], RegExp, Buffer?][] = [
      ['keys out of order', [[blob(2), value], [blob(1), value]], /out of order/],
      ['a key twice', [[blob(1), value], [blob(1), value]], /out of order/],
      ['a key that begins the one before it', [[Buffer.concat([blob(1), Buffer.of(0)]), value], [blob(1), value]], /out of order/],
      ['a key below the one before it in its last byte', [[blob(1), value], [Buffer.concat([blob(1).subarray(0, -1), Buffer.of(0)]), value]], /out of order/],
      // keys are compared four bytes at a time: a word's first byte with its high bit set (key byte 4), a lower word before a higher one, a tail byte
      ['a key below the one before it in a byte of 0x80 and more', [[hashed([1, 2, 3, 0x80]), value], [hashed([1, 2, 3, 0x7f]), value]], /out of order/],
      ['a key below the one before it in its first word, above it after', [[hashed([1, 2, 3, 4, 0]), value], [hashed([1, 2, 3, 3, 0xff]), value]], /out of order/],
      ['a key below the one before it in a byte past its last whole word', [[Buffer.concat([blob(1), Buffer.of(2, 9)]), value], [Buffer.concat([blob(1), Buffer.of(2, 8)]), value]], /out of order/],
      ['a key of no space', [[Buffer.from('Zzz'), value]], /of no index space/],
      ['an entry head cut short by the record end', [[blob(1), value]], /an entry is cut short/, Buffer.of(0, 1, 0)],
      ['an entry whose value runs past the record', [[blob(1), value]], /runs past the record/, Buffer.concat([Buffer.of(0, 1, 0, 0, 0, 100), blob(2).subarray(0, 1), Buffer.alloc(20)])],
      ['the appliedSeq a rebuild sets', [[keys.meta('appliedSeq'), encodeValue(keys.meta('appliedSeq'), 5)]], /sets itself/],
      ['a value too short for its checksum', [[blob(1), Buffer.alloc(3)]], /too short for its checksum/],
    ];
    for (const [what, entries, why, tail] of cases) {
      writeFileSync(path, await craftedSnapshot(storeId, 9, entries, {}, tail));
      const error = await readSnapshotFile(nodeFileSystem, path, 'x.snap', storeId).then(() => undefined, (e: Error & { code?: string }) => e);
      expect(error?.code, what).toBe('CORRUPT');
      expect(error?.message, what).toMatch(why);
    }
    // the same machinery with valid entries verifies (the cases above fail for their reason only)
    writeFileSync(path, await craftedSnapshot(storeId, 9, [[blob(1), value], [Buffer.concat([blob(1), Buffer.of(0)]), value], [blob(2), value]]));
    expect(await readSnapshotFile(nodeFileSystem, path, 'x.snap', storeId)).toMatchObject({ format: 3, blobs: 3, entries: 3, records: 1 });
    const ascending = [hashed([1, 2, 3, 0x7f]), hashed([1, 2, 3, 0x80]), hashed([1, 0x7f]), hashed([1, 0x80, 0, 0, 0xff]), hashed([1, 0x80, 0, 1, 0]), hashed([1, 0x80]), Buffer.concat([hashed([1, 0x80]), Buffer.of(1)])];
    writeFileSync(path, await craftedSnapshot(storeId, 9, ascending.map((key) => [key, value])));
    expect(await readSnapshotFile(nodeFileSystem, path, 'x.snap', storeId)).toMatchObject({ format: 3, blobs: 7, entries: 7, records: 1 });
    // counts in the trailer that the entries do not add up to
    writeFileSync(path, await craftedSnapshot(storeId, 9, [[blob(1), value]], { blobs: 2 }));
    expect(await codeOf(readSnapshotFile(nodeFileSystem, path, 'x.snap', storeId))).toBe('CORRUPT');
  });

  it('an index value that fails its checksum is never written into a snapshot: CORRUPT, and no file is left', async () => {
    const root = tmpDir();
    const good = encodeValue(keys.blob(Buffer.alloc(32, 1)), { p: 1, o: 2, l: 3, r: 1 });
    const bad = Buffer.from(good);
    bad[bad.length - 1] ^= 1;
    // a damaged body, and a valid value under another key (a flipped key): neither is written
    for (const second of [[keys.blob(Buffer.alloc(32, 2)), bad], [keys.blob(Buffer.alloc(32, 2)), good]] as [Buffer, Buffer][]) {
      async function* entries(): AsyncGenerator<[Buffer, Buffer][]> {
        yield [[keys.blob(Buffer.alloc(32, 1)), good], second];
      }
      expect(await codeOf(writeSnapshotFile(nodeFileSystem, root, Buffer.alloc(16, 7), 9, entries()))).toBe('CORRUPT');
      expect(readdirSync(join(root, 'snapshots'))).toEqual([]);
    }
  });
});

/** A format 3 snapshot built by hand (header, one entries record, trailer with a right digest). */
/** `tail`: raw bytes after the entries, inside the same record (a broken entry head). */
async function craftedSnapshot(storeId: Buffer, seq: number, entries: [Buffer, Buffer][], countsOverride: Record<string, number> = {}, tail?: Buffer): Promise<Buffer> {
  const header = Buffer.alloc(36);
  SNAPSHOT_MAGIC.copy(header, 0);
  header.writeUInt32BE(3, 4);
  storeId.copy(header, 8);
  header.writeBigUInt64BE(BigInt(seq), 24);
  header.writeUInt32BE(crc32(header.subarray(0, 32)), 32);
  const parts: Buffer[] = [Buffer.of(0x45)];
  for (const [key, value] of entries) {
    const head = Buffer.alloc(6);
    head.writeUInt16BE(key.length, 0);
    head.writeUInt32BE(value.length, 2);
    parts.push(head, key, value);
  }
  if (tail) parts.push(tail);
  const record = encodeRecord(1, Buffer.concat(parts));
  const hasher = await createHasher();
  hasher.update(header);
  hasher.update(record);
  const counts = { records: 1, mailboxes: 0, messages: 0, blobs: entries.filter(([k]) => k[0] === 0x42).length, entries: entries.length, ...countsOverride };
  const trailer = encodeRecord(2, Buffer.concat([Buffer.of(0x54), encodeCbor({ trailer: { ...counts, seq, digest: hasher.digest() } })]));
  return Buffer.concat([header, record, trailer]);
}

