// Minimal reproductions of what the damage explorer found outside the pack and journal readers.
// They are in src/scrub (and src/keys), so they were reported to the lead rather than fixed here:
// each is `it.fails` — it passes while the bug is there. When a fix lands, vitest reports the
// test as failing ("expected to fail"): turn `it.fails` into `it` and drop the matching class from
// REPORTED_TO_LEAD in damage-explorer.test.ts.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { MailstoreError } from '../../src/errors.js';
import { keys } from '../../src/keys/index-keys.js';
import { SPACE } from '../../src/keys/tuple.js';
import { encodeValue } from '../../src/index/codec.js';
import { parseSegment } from '../../src/journal/segment-reader.js';
import { limits } from '../../src/limits.js';
import { tmpDir } from '../helpers/tmp.js';
import { msg } from './helpers.js';

async function smallStore(options: { journalSegmentBytesMax?: number } = {}, count = 4): Promise<string> {
  const dir = tmpDir('damage-regression');
  const store = await Store.open(dir, { create: true, ...options });
  await store.createMailbox('INBOX', { owner: 'alice' });
  for (let i = 0; i < count; i++) await store.append('INBOX', msg(i, 200));
  await store.close();
  return dir;
}

const segments = (dir: string) => readdirSync(join(dir, 'journal')).filter((n) => n.endsWith('.jnl')).sort();

/** Opens, scrubs, closes; returns the damage count (or throws what scrub threw). */
async function scrubDamage(dir: string): Promise<number> {
  const store = await Store.open(dir);
  try {
    return (await scrub(store, { hashThreads: 0 })).summary.damage;
  } finally {
    await store.close();
  }
}

describe('damage explorer regressions (reported to the lead; it.fails until fixed in src/scrub)', () => {
  it('the journal cut at its last record boundary (index present): scrub reports the missing acknowledged record', async () => {
    const dir = await smallStore();
    const path = join(dir, 'journal', segments(dir)[0]);
    const bytes = readFileSync(path);
    const last = [...parseSegment(bytes, limits.journalRecordBytesMax)].filter((x) => x.kind === 'record').at(-1)!;
    writeFileSync(path, bytes.subarray(0, (last as { offset: number }).offset)); // only whole records remain
    // open notices (health: "the index has applied journal records up to N but the journal ends at N-1")...
    const store = await Store.open(dir);
    expect(store.health.degraded).toBe(true);
    await store.close();
    // ...but scrub's journal pass only looks for gaps between the records it read
    expect(await scrubDamage(dir)).toBeGreaterThan(0);
  });

  it('the first journal segment deleted (index present): scrub reports the missing records 1..N', async () => {
    const dir = await smallStore({ journalSegmentBytesMax: 1024 }, 12);
    expect(segments(dir).length).toBeGreaterThan(2);
    rmSync(join(dir, 'journal', segments(dir)[0]));
    expect(await scrubDamage(dir)).toBeGreaterThan(0);
  });

  it('a reverse-ACL (R) value failing its checksum is a finding, not a CORRUPT thrown out of scrub', async () => {
    const dir = await smallStore();
    const store = await Store.open(dir);
    await store.db.write([{ type: 'put', key: keys.rights('alice', ['INBOX']), value: Buffer.from([0, 0, 0, 0, 0xa1]) }]);
    try {
      const report = await scrub(store, { hashThreads: 0 }); // throws CORRUPT from checkIndex's store.db.get of the R key
      expect(report.findings.some((f) => f.kind === 'index-value-corrupt')).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('an undecodable index key (a name string without its terminator) gives a finding or CORRUPT, never a plain Error', async () => {
    const dir = await smallStore();
    const store = await Store.open(dir);
    const nameKey = Buffer.from([SPACE.name, 0x41, 0x42]);
    await store.db.write([{ type: 'put', key: nameKey, value: encodeValue(nameKey, Buffer.alloc(16, 7)) }]);
    try {
      // scrub (checkIndex → decodeNameKey → decodeString) and listMailboxes both throw
      // "assertion failed: unterminated string in key", a plain Error (CLI exit 70)
      const errors: unknown[] = [];
      await scrub(store, { hashThreads: 0 }).catch((e) => errors.push(e));
      await store.listMailboxes().catch((e) => errors.push(e));
      for (const e of errors) expect(e, String(e)).toBeInstanceOf(MailstoreError);
    } finally {
      await store.close();
    }
  });

  it('an index that silently lost its keys (a damaged .ldb block LevelDB reads as empty): scrub reports it', async () => {
    const dir = await smallStore();
    const store = await Store.open(dir);
    // what the explorer saw after zeroing one 512-byte block of an .ldb: every key but the X
    // (meta: storeId, appliedSeq) ones gone, no error from LevelDB, every mailbox vanished
    const drop: Buffer[] = [];
    for await (const [key] of store.db.rawIterator({ gte: Buffer.of(0), lt: Buffer.of(SPACE.meta) })) drop.push(Buffer.from(key));
    await store.db.write(drop.map((key) => ({ type: 'del' as const, key })));
    try {
      expect(await store.listMailboxes()).toEqual([]);
      const report = await scrub(store, { hashThreads: 0 }); // was only 'unreferenced-pack-record' (informational)
      expect(report.summary.damage).toBeGreaterThan(0);
      expect(report.findings.some((f) => f.kind === 'index-journal-mismatch')).toBe(true);
      const before = (await scrub(store, { hashThreads: 0 }));
      await repair(store, before); // rebuilds the index from the journal: it keeps more, so no gate refuses
      expect((await store.listMailboxes()).length).toBeGreaterThan(0);
      expect((await scrub(store, { hashThreads: 0 })).summary.damage).toBe(0);
    } finally {
      await store.close();
    }
  });
});
