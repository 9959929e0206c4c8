// Issue 10 #4: a torn pack record followed by new records. The scan must not trust the torn
// record's length (which reaches into the records appended after it), and scrub must verify
// every blob the index refers to, so damage to a message written after the tear is found.
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
// every body in a pack: these tests tear pack records (helpers/packed.ts)
import { PackedStore as Store } from '../helpers/packed.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { keys } from '../../src/keys/index-keys.js';
import type { BlobRecord } from '../../src/store/records.js';
import { tmpDir } from '../helpers/tmp.js';
import { rawLevelOf } from '../helpers/internals.js';

const CLI = new URL('../../dist/src/cli/main.js', import.meta.url).pathname;
const cli = (args: string[], dir: string) => spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, MAILSTORE_DIR: dir }, encoding: 'utf8' });

function message(i: number, size: number): Buffer {
  const body = Buffer.alloc(size, 0x61 + (i % 26));
  return Buffer.concat([Buffer.from(`Message-ID: <t${i}@example.org>\r\nSubject: ${i}\r\n\r\n`), body, Buffer.from('\r\n')]);
}

/** 20 messages in one pack, a copy of the store, the pack torn by 700 bytes, one more message appended and damaged. */
async function tornThenDamaged() {
  const dir = tmpDir();
  let store = await Store.open(dir, { create: true });
  await store.createMailbox('T');
  for (let i = 1; i <= 20; i++) await store.append('T', message(i, 2000 + i * 300));
  await store.close();
  const good = tmpDir('good');
  cpSync(dir, good, { recursive: true });
  const packPath = join(dir, 'packs', '00000001.pack');
  truncateSync(packPath, statSync(packPath).size - 700);
  store = await Store.open(dir);
  const added = message(99, 5000);
  const { uid } = await store.append('T', added);
  const blob = (await store.maintenance().index.get<BlobRecord>(keys.blob((await import('../../src/hash/blake3.js')).hashBytes(added))))!;
  await store.close();
  const bytes = readFileSync(packPath);
  expect(blob.p).toBe(1);
  bytes[blob.o + 48 + 100] ^= 0x20; // a flipped byte in the new message's body
  writeFileSync(packPath, bytes);
  return { dir, good, uid, added, blobOffset: blob.o };
}

describe('a torn pack record followed by new records', () => {
  it('the scan resynchronises after the torn record and finds the record appended after it', async () => {
    const { dir, blobOffset } = await tornThenDamaged();
    const store = await Store.open(dir);
    try {
      const offsets: number[] = [];
      for await (const item of store.maintenance().packs.scan(1)) if (item.kind === 'blob') offsets.push(item.offset);
      expect(offsets).toContain(blobOffset);
      const small: number[] = [];
      for await (const item of store.maintenance().packs.scan(1, { chunkBytes: 4096 })) if (item.kind === 'blob') small.push(item.offset);
      expect(small).toEqual(offsets);
    } finally {
      await store.close();
    }
  });

  it('scrub reports the damaged message; repair from a copy restores the torn one and still reports the other (exit 1)', async () => {
    const { dir, good, uid } = await tornThenDamaged();
    const store = await Store.open(dir);
    try {
      const report = await scrub(store);
      const damaged = report.findings.filter((f) => f.kind === 'blob-corrupt' || f.kind === 'blob-missing');
      const refs = damaged.flatMap((f) => (f as { refs: { mailbox: string; uid: number }[] }).refs.map((r) => `${r.mailbox}:${r.uid}`)).sort();
      expect(refs).toEqual(['T:20', `T:${uid}`]);
      const result = await repair(store, report, { sources: [good] });
      expect(result.blobsRestored).toBe(1);
      expect(result.unrepaired.flatMap((f) => (f as { refs: { uid: number }[] }).refs.map((r) => r.uid))).toEqual([uid]);
      await expect(store.fetch('T', uid)).rejects.toMatchObject({ code: 'CORRUPT' });
      expect((await store.fetch('T', 20)).equals(message(20, 2000 + 20 * 300))).toBe(true);
      expect((await scrub(store)).summary.damage).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it('through the CLI (hostile.sh step 7): scrub exits 1, repair does not say clean, a later scrub still exits 1', async () => {
    const { dir, good } = await tornThenDamaged();
    expect(cli(['scrub'], dir).status).toBe(1);
    const repaired = cli(['scrub', '--repair', '--source', good], dir);
    expect(repaired.stdout).not.toContain('second scrub: clean');
    expect(repaired.status).toBe(1);
    expect(cli(['scrub'], dir).status).toBe(1);
  });
});

describe('scrub verifies every blob the index refers to', () => {
  it('an index entry pointing inside another valid record (never visited by the pack pass) is read and hashed', async () => {
    const dir = tmpDir();
    const store = await Store.open(dir, { create: true });
    const { hashBytes } = await import('../../src/hash/blake3.js');
    const { encodeRecordHeader } = await import('../../src/blob/pack-format.js');
    const { encodeValue } = await import('../../src/index/codec.js');
    try {
      await store.createMailbox('M');
      const x = message(1, 3000);
      await store.append('M', x);
      // A message whose body holds a copy of x's record with one byte changed.
      const damaged = Buffer.from(x);
      damaged[200] ^= 1;
      const prefix = Buffer.from('Subject: carrier\r\n\r\n');
      const carrier = Buffer.concat([prefix, encodeRecordHeader(hashBytes(x), x.length), damaged]);
      await store.append('M', carrier);
      const carrierBlob = (await store.maintenance().index.get<BlobRecord>(keys.blob(hashBytes(carrier))))!;
      const key = keys.blob(hashBytes(x));
      const blob = (await store.maintenance().index.get<BlobRecord>(key))!;
      await rawLevelOf(store).put(key, encodeValue(key, { ...blob, o: carrierBlob.o + 48 + prefix.length }));
      // the message record's blob-location hint still names x's own record: fetch reads verified
      // bytes there (docs/FORMAT.md, "Blob-location hints"); the B entry is what scrub checks
      expect((await store.fetch('M', 1)).equals(x)).toBe(true);
      const report = await scrub(store);
      const found = report.findings.filter((f) => f.kind === 'blob-corrupt');
      expect(found.map((f) => (f as { refs: { uid: number }[] }).refs.map((r) => r.uid))).toEqual([[1]]);
      expect(report.summary.damage).toBe(1);
    } finally {
      await store.close();
    }
  });
});
