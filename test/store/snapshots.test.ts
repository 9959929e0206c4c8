// Index snapshots and journal retirement: a snapshot verifies (and any damaged byte fails it), a
// rebuild from the newest snapshot plus the journal after it equals the live index key for key,
// a damaged newest snapshot falls back to the one before it (or to the whole journal) and says
// so, retirement never passes a consumer's cursor nor the older kept snapshot, a consumer that
// asks for retired records gets NOT_FOUND, and a retired journal still rebuilds and rewrites.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { IndexDb } from '../../src/index/index-db.js';
import { compareIndexes } from '../../src/store/recovery.js';
import { Store } from '../../src/store/store.js';
import { readSnapshotFile } from '../../src/store/snapshot-file.js';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { scrub } from '../../src/scrub/scrub.js';
import { repair } from '../../src/scrub/repair.js';
import { internalsOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';

const msg = (i: number) => Buffer.from(`From: a@example.org\r\nSubject: ${i}\r\n\r\nbody ${i} ${'x'.repeat(i % 50)}\r\n`);
/** Small segments, so a few hundred records span many of them. */
const SMALL = { journalSegmentBytesMax: 4096, autoSnapshot: false } as const;


/** Appends, flag changes and expunges: a history much longer than its live state. */
async function churn(store: Store, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const { uid } = await store.append(i % 3 === 0 ? 'Sent' : 'INBOX', msg(i), { flags: i % 2 ? ['\\Seen'] : [] });
    if (i % 4 === 0) await store.setFlags(i % 3 === 0 ? 'Sent' : 'INBOX', [uid], { add: ['$Label'] });
    if (i % 5 !== 0) await store.expunge(i % 3 === 0 ? 'Sent' : 'INBOX', [uid]);
  }
}

async function seeded(root: string, records = 60): Promise<Store> {
  const store = await Store.open(root, { create: true, ...SMALL });
  await store.createMailbox('INBOX');
  await store.createMailbox('Sent');
  await store.setAcl('INBOX', 'bob', 'lr');
  await churn(store, 1, records);
  return store;
}

const snapshotNames = (root: string) => readdirSync(join(root, 'snapshots')).filter((n) => n.endsWith('.snap')).sort();
const segments = (root: string) => readdirSync(join(root, 'journal')).filter((n) => n.endsWith('.jnl')).sort();

describe('snapshots', () => {
  it('a snapshot verifies; any flipped byte, a cut or an appended byte fails it with CORRUPT', async () => {
    const root = tmpDir();
    const store = await seeded(root, 30);
    const committed = store.changes.lastSeq;
    const result = await store.snapshot();
    // at the seq committed when it started (retirement after it may commit the move of inline bodies)
    expect(result.seq).toBe(committed);
    expect(result.reused).toBe(false);
    const path = join(root, 'snapshots', result.name);
    const info = await readSnapshotFile(nodeFileSystem, path, result.name, store.storeId);
    expect(info).toMatchObject({ seq: result.seq, records: result.records, bytes: result.bytes });
    expect(info.messages).toBe((await store.stats()).messages);
    await store.close();
    const good = readFileSync(path);
    const fails = async (bytes: Buffer) => {
      writeFileSync(path, bytes);
      return codeOf(readSnapshotFile(nodeFileSystem, path, result.name, store.storeId));
    };
    for (const at of [0, 30, 40, Math.floor(good.length / 2), good.length - 40, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 0x01;
      expect(await fails(bad), `flip at ${at}`).toBe('CORRUPT');
    }
    expect(await fails(good.subarray(0, good.length - 1))).toBe('CORRUPT');
    expect(await fails(Buffer.concat([good, Buffer.of(0)]))).toBe('CORRUPT');
    writeFileSync(path, good);
  });

  it('a rebuild from the newest snapshot plus the journal tail equals the live index key for key', async () => {
    const root = tmpDir();
    const store = await seeded(root, 80);
    await store.snapshot();
    await churn(store, 100, 40); // the tail after the snapshot
    const check = await store.maintenance().reconstructIndex({ check: true });
    expect(check.snapshot?.seq).toBeGreaterThan(0);
    expect(check.differences).toBe(0);
    expect(check.journalIntact).toBe(true);
    expect(check.rebuiltFrom).toMatch(/^snapshot .* and \d+ journal records after it$/);
    const before = await store.stats();
    await store.close();
    renameSync(join(root, 'index'), join(root, 'index.old'));
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.rebuiltFrom).toMatch(/^snapshot /);
    expect(reopened.health.degraded).toBe(false);
    const after = await reopened.stats();
    expect({ ...after, consumers: [] }).toEqual({ ...before, consumers: [] });
    expect((await reopened.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await reopened.close();
    // Every key and value, meta (appliedSeq, store id, uidValidityLast) included, byte for byte.
    const [old, rebuilt] = [await IndexDb.open(join(root, 'index.old'), false), await IndexDb.open(join(root, 'index'), false)];
    const differences: string[] = [];
    for await (const d of compareIndexes(old, rebuilt)) differences.push(`${d.key.toString('hex')}: ${d.detail}`);
    await old.close();
    await rebuilt.close();
    expect(differences).toEqual([]);
  });

  it('a damaged newest snapshot falls back to the one before it, and says so; scrub reports it and --repair quarantines it', async () => {
    const root = tmpDir();
    const store = await seeded(root, 40);
    const older = await store.snapshot();
    await churn(store, 200, 20);
    const newest = await store.snapshot();
    expect(snapshotNames(root)).toEqual([older.name, newest.name]);
    await churn(store, 300, 10);
    const live = await store.stats();
    await store.close();
    const path = join(root, 'snapshots', newest.name);
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(path, bytes);
    rmSync(join(root, 'index'), { recursive: true });
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.rebuiltFrom).toContain(older.name);
    expect(reopened.health.findings.join('\n')).toMatch(new RegExp(`snapshot ${newest.name} is damaged.*rebuilt from the older snapshot ${older.name}`));
    expect({ ...(await reopened.stats()), consumers: [], snapshotBytes: 0 }).toEqual({ ...live, consumers: [], snapshotBytes: 0 });
    const report = await scrub(reopened);
    expect(report.findings.filter((f) => f.kind === 'snapshot-damage')).toHaveLength(1);
    const repaired = await repair(reopened, report);
    expect(repaired.quarantined.some((p) => p.includes(newest.name))).toBe(true);
    expect(snapshotNames(root)).toEqual([older.name]);
    expect((await scrub(reopened)).summary.damage).toBe(0);
    await reopened.close();
  });

  it('with every snapshot damaged and the journal whole, the rebuild replays the whole journal', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true, autoSnapshot: false }); // one big segment: nothing retires
    await store.createMailbox('INBOX');
    await store.createMailbox('Sent');
    await churn(store, 1, 20);
    const snap = await store.snapshot();
    expect(snap.retired.segments).toEqual([]);
    const live = await store.stats();
    await store.close();
    writeFileSync(join(root, 'snapshots', snap.name), Buffer.from('not a snapshot'));
    rmSync(join(root, 'index'), { recursive: true });
    const reopened = await Store.open(root, { autoSnapshot: false });
    expect(reopened.health.rebuiltFrom).toMatch(/^the whole journal/);
    expect(reopened.health.findings.join('\n')).toMatch(/rebuilt from the whole retained journal instead/);
    expect((await reopened.stats()).messages).toBe(live.messages);
    await reopened.close();
  });
});

describe('journal retirement', () => {
  it('retires segments below the older kept snapshot, deletes snapshots past two generations, and the journal firstSeq follows', async () => {
    const root = tmpDir();
    const store = await seeded(root, 80);
    const segmentsBefore = segments(root).length;
    expect(segmentsBefore).toBeGreaterThan(3);
    const first = await store.snapshot();
    // One generation: retirement may pass it (there is nothing older to fall back to anyway).
    expect(first.retired.throughSeq).toBe(first.seq);
    expect(first.retired.segments.length).toBeGreaterThan(0);
    expect(store.changes.firstSeq).toBeGreaterThan(1);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(first.seq + 1);
    await churn(store, 500, 60);
    const second = await store.snapshot();
    expect(second.retired.throughSeq).toBe(first.seq); // the older kept generation bounds it
    await churn(store, 600, 60);
    const third = await store.snapshot();
    expect(third.removedSnapshots).toEqual([first.name]);
    expect(third.retired.throughSeq).toBe(second.seq);
    expect(store.changes.firstSeq).toBeGreaterThan(first.seq);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(second.seq + 1);
    expect(snapshotNames(root)).toEqual([second.name, third.name]);
    const stats = await store.stats();
    expect(stats.journalBytesRetained).toBe(stats.journalBytes);
    expect(stats.journalFirstSeq).toBe(store.changes.firstSeq);
    // A consumer asking for retired records is told so; from the first retained seq on it reads.
    expect(await codeOf((async () => { for await (const _ of store.changes.read(0)) break; })())).toBe('NOT_FOUND');
    const from = store.changes.firstSeq - 1;
    let n = 0;
    for await (const change of store.changes.read(from)) { expect(change.seq).toBe(from + 1 + n); n++; }
    expect(n).toBe(store.changes.lastSeq - from);
    // Scrub: a retired journal under a verified snapshot is no gap; totals agree.
    expect((await scrub(store)).findings.filter((f) => f.kind !== 'unreferenced-blob')).toEqual([]);
    // Reopen: no finding about missing records.
    await store.close();
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.findings).toEqual([]);
    expect(reopened.health.degraded).toBe(false);
    await reopened.close();
  });

  it('never passes the slowest consumer cursor', async () => {
    const root = tmpDir();
    const store = await seeded(root, 40);
    await store.changes.register('slow', 10);
    await churn(store, 100, 60);
    const result = await store.snapshot();
    expect(result.retired.throughSeq).toBe(10);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(11);
    const read: number[] = [];
    for await (const c of store.changes.read(10, { limit: 3 })) read.push(c.seq);
    expect(read).toEqual([11, 12, 13]);
    await store.changes.advance('slow', store.changes.lastSeq);
    const next = await store.snapshot();
    expect(next.retired.throughSeq).toBe(result.seq);
    expect(store.changes.firstSeq).toBeGreaterThan(11);
    await store.close();
  });

  it('moves retired segments into the journal archive when one is set, and refuses to retire into a missing one', async () => {
    const root = tmpDir();
    const archive = join(tmpDir(), 'archive');
    mkdirSync(archive);
    const store = await seeded(root, 60);
    await store.setJournalArchive(archive);
    expect(await store.journalArchive()).toBe(archive);
    const result = await store.snapshot();
    expect(result.retired.archive).toBe(archive);
    expect(result.retired.segments.length).toBeGreaterThan(0);
    expect(readdirSync(archive).sort()).toEqual(result.retired.segments);
    rmSync(archive, { recursive: true });
    await churn(store, 100, 60);
    const skipped = await store.snapshot();
    expect(skipped.retired.skipped).toMatch(/not a directory/);
    expect(skipped.retired.segments).toEqual([]);
    expect(await codeOf(store.setJournalArchive('relative/dir'))).toBe('INVALID');
    // the setting file damaged: CORRUPT naming it, never read as "no archive" (segments would be deleted)
    const file = join(root, 'JOURNAL-ARCHIVE');
    writeFileSync(file, readFileSync(file, 'utf8').replace('archive', 'archivf'));
    expect(await codeOf(store.journalArchive())).toBe('CORRUPT');
    await store.setJournalArchive(undefined);
    expect(existsSync(file)).toBe(false);
    expect(await store.journalArchive()).toBeUndefined();
    await store.close();
  });

  it('reconstruct works with a retired journal: from the snapshot, and --from-index rewrites it', async () => {
    const root = tmpDir();
    const store = await seeded(root, 80);
    await store.snapshot();
    await churn(store, 100, 30);
    await store.close();
    const result = await reconstruct(root, { fs: nodeFileSystem });
    expect(result.source).toBe('snapshot');
    expect(result.differences).toBe(0);
    const rewritten = await reconstruct(root, { fs: nodeFileSystem, from: 'index' });
    expect(rewritten.source).toBe('index');
    expect(rewritten.journalRewritten?.records).toBeGreaterThan(0);
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.findings).toEqual([]);
    expect((await reopened.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    expect((await scrub(reopened)).summary.damage).toBe(0);
    await reopened.close();
  });

  it('a retired journal with no snapshot to cover it is a gap (open finding, scrub journal-gap)', async () => {
    const root = tmpDir();
    const store = await seeded(root, 60);
    const snap = await store.snapshot();
    expect(snap.retired.segments.length).toBeGreaterThan(0);
    await store.close();
    rmSync(join(root, 'snapshots', snap.name));
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.findings.join('\n')).toMatch(/journal records 1\.\.\d+ are missing/);
    expect((await scrub(reopened)).findings.some((f) => f.kind === 'journal-gap')).toBe(true);
    await reopened.close();
  });

  it('close() while a snapshot moves inline bodies into packs before retiring: the snapshot finishes and every message stays', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, inlineBodyBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 40; i++) await store.append('INBOX', msg(i));
    const snapshot = store.snapshot(); // the only snapshot: it retires through its own seq
    const closed = store.close(); // before the snapshot's retirement commits its move of inline bodies
    const result = await snapshot; // was CLOSED: the move was refused once close had begun
    await closed;
    expect(result.retired.segments.length).toBeGreaterThan(0);
    const reopened = await Store.open(root);
    try {
      for (let uid = 1; uid <= 40; uid++) expect((await reopened.fetch('INBOX', uid)).equals(msg(uid)), `uid ${uid}`).toBe(true);
      expect((await scrub(reopened)).findings).toEqual([]);
    } finally {
      await reopened.close();
    }
  });

  it('a running store snapshots and retires by itself once the journal grew enough', async () => {
    const root = tmpDir();
    const results: number[] = [];
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    await store.createMailbox('INBOX');
    await store.createMailbox('Sent');
    const every = (await import('../../src/limits.js')).limits.snapshotEveryRecords;
    (internalsOf(store) as unknown as { snapshots: { lastSeq: number } }).snapshots.lastSeq = -every + 50; // as if the last one were long ago
    await churn(store, 1, 30);
    await store.close(); // waits for the running snapshot
    expect(results.length).toBeGreaterThan(0);
    expect(existsSync(join(root, 'snapshots'))).toBe(true);
    expect(snapshotNames(root).length).toBeGreaterThan(0);
  });

  it('the next automatic snapshot waits snapshotAutoPauseFactor times the last one\'s duration, however much the journal grew', async () => {
    const { limits } = await import('../../src/limits.js');
    const saved = limits.snapshotAutoPauseFactor;
    const root = tmpDir();
    const results: number[] = [];
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    const snapshots = (internalsOf(store) as unknown as { snapshots: { lastSeq: number; autoNotBefore: number } }).snapshots;
    try {
      limits.snapshotAutoPauseFactor = 1e9; // the pause after the first one lasts the whole test
      await store.createMailbox('INBOX');
      await store.createMailbox('Sent');
      snapshots.lastSeq = -limits.snapshotEveryRecords; // as if the last one were long ago
      await churn(store, 1, 10);
      for (let i = 0; i < 500 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(results).toHaveLength(1);
      expect(snapshots.autoNotBefore).toBeGreaterThan(Date.now() + 60_000);
      snapshots.lastSeq = -limits.snapshotEveryRecords; // grown enough again: only the pause holds it back
      await churn(store, 11, 20);
      await new Promise((r) => setTimeout(r, 50));
      expect(results).toHaveLength(1);
      snapshots.autoNotBefore = 0; // the pause is over
      await churn(store, 31, 3);
      for (let i = 0; i < 500 && results.length === 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(results).toHaveLength(2);
      expect(results[1]).toBeGreaterThan(results[0]!);
    } finally {
      limits.snapshotAutoPauseFactor = saved;
      await store.close();
    }
  });
});
