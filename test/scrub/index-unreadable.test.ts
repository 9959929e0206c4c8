// Damaged LevelDB tables under scrub's index pass, both found by the damage explorer:
// - a read failing in the middle ("Corruption: corrupted internal key in DBIter") is a finding,
//   never an error out of scrub: `index-unreadable`, damage, `--repair` rebuilds the index; the raw
//   iterator gives its read failures as MailstoreErrors like every other index read;
// (an entry iteration finds but a point lookup does not, from a flipped bit in a table's bloom
// filter or index block, is found by the tables' CRC32C check: index-tables.test.ts.)
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { internalsOf, rawLevelOf } from '../helpers/internals.js';
import { SPACE } from '../../src/keys/tuple.js';
import { encodeValue } from '../../src/index/codec.js';
import { tmpDir } from '../helpers/tmp.js';

/** The LevelDB under the store's index, its iterators (those `which` accepts) failing their reads after `after` entries. */
function failIterators(store: Store, after: number, which: (options: { gte?: Uint8Array }) => boolean = () => true): () => void {
  const level = (internalsOf(store).db as unknown as { db: { iterator: (o: unknown) => { nextv(n: number): Promise<unknown[]>; close(): Promise<void> } } }).db;
  const original = level.iterator;
  level.iterator = (options: unknown) => {
    const inner = original.call(level, options);
    if (!which(options as { gte?: Uint8Array })) return inner;
    let served = 0;
    return {
      async nextv(n: number) {
        if (served >= after) throw Object.assign(new Error('Corruption: corrupted internal key in DBIter'), { code: 'LEVEL_CORRUPTION' });
        const batch = await inner.nextv(Math.min(n, after - served));
        served += batch.length;
        return batch;
      },
      close: () => inner.close(),
    };
  };
  return () => { level.iterator = original; };
}

/** A new store with INBOX holding `count` small messages (uid i holds bodies[i - 1]). */
async function storeWith(name: string, count: number): Promise<{ store: Store; bodies: Buffer[] }> {
  const store = await Store.open(tmpDir(name), { create: true });
  await store.createMailbox('INBOX');
  const bodies: Buffer[] = [];
  for (let i = 1; i <= count; i++) {
    bodies.push(Buffer.from(`Subject: ${i}\r\n\r\n${'y'.repeat(50 + i)}\r\n`));
    await store.append('INBOX', bodies[i - 1]);
  }
  return { store, bodies };
}

/** Damage reported; `--repair` rebuilds the index, leaves nothing, and every message reads exact. */
async function expectRepairedExact(store: Store, report: Awaited<ReturnType<typeof scrub>>, bodies: Buffer[]): Promise<void> {
  expect(report.summary.damage).toBeGreaterThan(0);
  const result = await repair(store, report);
  expect(result.indexRebuilt).toBe(true);
  expect(result.unrepaired).toEqual([]);
  for (let i = 1; i <= bodies.length; i++) expect((await store.fetch('INBOX', i)).equals(bodies[i - 1])).toBe(true);
}

describe('an index LevelDB cannot read during scrub', () => {
  it('the raw iterator fails CORRUPT (not a plain Error); scrub reports index-unreadable as damage; repair rebuilds the index; every message exact', async () => {
    const { store, bodies } = await storeWith('unreadable', 40);
    try {
      // a raw iterator reads LevelDB alone (scrub's runs inside runExclusive, which settles): the
      // 40 appends' index batch may still wait for its hand-over (limits.indexBehindMs)
      await store.maintenance().index.settle();
      const restore = failIterators(store, 5);
      const iterator = store.maintenance().index.rawIterator({ gte: Buffer.alloc(0), lt: Buffer.from([0xff]) });
      await expect(iterator.nextv(100)).resolves.toHaveLength(5);
      await expect(iterator.nextv(100)).rejects.toMatchObject({ name: 'MailstoreError', code: 'CORRUPT' });
      await iterator.close();
      const report = await scrub(store);
      expect(report.findings.filter((f) => f.kind === 'index-unreadable')).toHaveLength(1);
      restore(); // the rebuilt index is a new LevelDB: repair's own reads work
      await expectRepairedExact(store, report, bodies);
    } finally {
      await store.close();
    }
  });

  it('a cut index pass ends scrub\'s passes there: one index-unreadable, no totals comparison from a partial read, the budgeted cursor not moved on', async () => {
    const { store, bodies } = await storeWith('cut', 40);
    try {
      const cursorFile = join(store.root, 'scrub-cursor.json');
      const clean = await scrub(store, { timeBudgetMs: 600_000 });
      expect(clean.summary.damage).toBe(0);
      const cursor = readFileSync(cursorFile, 'utf8');
      expect(JSON.parse(cursor)).toMatchObject({ cycle: 1, pack: 0, offset: 0 });
      const restore = failIterators(store, 5, (o) => o.gte?.[0] === SPACE.message); // the index pass's walk over the messages fails
      const report = await scrub(store, { timeBudgetMs: 600_000 });
      restore();
      expect(report.summary.journalRecords).toBeGreaterThan(0); // the journal pass ran: the cut came in the index pass
      expect(report.summary.indexKeys).toBe(0);
      expect(report.findings.map((f) => f.kind)).toEqual(['index-unreadable']); // not index-journal-mismatch from the partial totals
      expect(readFileSync(cursorFile, 'utf8')).toBe(cursor); // the cycle did not finish: the next run starts where this one did
      await expectRepairedExact(store, report, bodies);
    } finally {
      await store.close();
    }
  });

  it('an I/O error reading the index still stops scrub with its code (there is nothing to rebuild on a failing disk)', async () => {
    const dir = tmpDir('unreadable-io');
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', Buffer.from('Subject: x\r\n\r\nx\r\n'));
      const level = (internalsOf(store).db as unknown as { db: { iterator: (o: unknown) => unknown } }).db;
      level.iterator = () => ({
        nextv: async () => { throw Object.assign(new Error('IO error: /s/index/000005.ldb: Input/output error'), { code: 'LEVEL_IO_ERROR' }); },
        close: async () => undefined,
      });
      await expect(scrub(store)).rejects.toMatchObject({ name: 'MailstoreError', code: 'IO' });
    } finally {
      await store.close().catch(() => undefined);
    }
  });

  it('a name key that does not decode (a flipped byte left its string unterminated) is index-unreadable, not an error out of scrub', async () => {
    const dir = tmpDir('badkey');
    const store = await Store.open(dir, { create: true });
    try {
      await store.createMailbox('INBOX');
      await store.append('INBOX', Buffer.from('Subject: k\r\n\r\nk\r\n'));
      const level = rawLevelOf(store);
      const [id] = (await store.listMailboxes()).map((b) => Buffer.from(b.id.replace(/-/g, ''), 'hex'));
      const broken = Buffer.concat([Buffer.from([SPACE.name]), Buffer.from('BROKEN')]);
      await level.put(broken, encodeValue(broken, id)); // no terminator
      const report = await scrub(store);
      expect(report.findings.some((f) => f.kind === 'index-unreadable' && /unterminated/.test(f.detail))).toBe(true);
      expect(report.summary.damage).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });

  it('a mailbox entry holding a value of another shape (a key flipped into I) is index-value-corrupt, not a TypeError out of scrub', async () => {
    const { store } = await storeWith('shape', 2);
    try {
      const infoKey = Buffer.concat([Buffer.from([SPACE.info]), Buffer.alloc(16, 7)]);
      await rawLevelOf(store).put(infoKey, encodeValue(infoKey, Buffer.alloc(16, 1)));
      const report = await scrub(store);
      expect(report.findings.some((f) => f.kind === 'index-value-corrupt')).toBe(true);
      expect(report.summary.damage).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});
