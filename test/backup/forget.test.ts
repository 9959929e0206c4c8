// Retention (restic's rules) and prune: what no kept snapshot uses is reclaimed, partly used data
// files are rewritten, and every kept snapshot restores exactly afterwards.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { applyPolicy, childrenFirst, forgetSnapshots } from '../../src/backup/forget.js';
import type { Repository, SnapshotFile } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import type { MailstoreError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, source } from './helpers.js';

const at = (iso: string, storeId = 's1') => ({ id: `${storeId}-${iso}`, snapshot: { time: Date.parse(iso), storeId } as SnapshotFile });

describe('retention policy', () => {
  const list = [
    at('2026-01-01T10:00:00Z'), at('2026-01-01T18:00:00Z'), at('2026-01-02T09:00:00Z'), at('2026-01-05T09:00:00Z'),
    at('2026-01-12T09:00:00Z'), at('2026-02-03T09:00:00Z'), at('2026-03-01T09:00:00Z'), at('2026-03-01T12:00:00Z'),
  ];
  const kept = (policy: Parameters<typeof applyPolicy>[1], snapshots = list) => [...applyPolicy(snapshots, policy).keep.keys()].sort();

  it('removes each delta before the snapshot it builds on (a forget killed half-way leaves no delta without its parent)', () => {
    const snap = (id: string, time: number, parent?: string) => ({ id, snapshot: { time, storeId: 's1', ...(parent ? { parent } : {}) } as SnapshotFile });
    // oldest first, as listed: two chains (A <- B <- C, D <- E) and a whole F
    const listedOldestFirst = [snap('A', 1), snap('B', 2, 'A'), snap('D', 3), snap('C', 4, 'B'), snap('E', 5, 'D'), snap('F', 6)];
    const order = childrenFirst(listedOldestFirst).map((s) => s.id);
    expect([...order].sort()).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    for (const [child, parent] of [['B', 'A'], ['C', 'B'], ['E', 'D']]) expect(order.indexOf(child), `${child} before ${parent}`).toBeLessThan(order.indexOf(parent));
    // a parent that is kept (not in the list) does not hold its child back
    expect(childrenFirst([snap('B', 2, 'A'), snap('C', 4, 'B')]).map((s) => s.id)).toEqual(['C', 'B']);
  });

  it('keep-last, daily, weekly, monthly as restic counts them', () => {
    expect(kept({ last: 2 })).toEqual(['s1-2026-03-01T09:00:00Z', 's1-2026-03-01T12:00:00Z']);
    // the newest of each of the last 3 days that have a snapshot
    expect(kept({ daily: 3 })).toEqual(['s1-2026-01-12T09:00:00Z', 's1-2026-02-03T09:00:00Z', 's1-2026-03-01T12:00:00Z']);
    // ISO weeks: 2026-01-01/02 are in week 1, 01-05 and 01-12 weeks 2 and 3
    expect(kept({ weekly: 5 })).toEqual(['s1-2026-01-02T09:00:00Z', 's1-2026-01-05T09:00:00Z', 's1-2026-01-12T09:00:00Z', 's1-2026-02-03T09:00:00Z', 's1-2026-03-01T12:00:00Z']);
    expect(kept({ monthly: 2 })).toEqual(['s1-2026-02-03T09:00:00Z', 's1-2026-03-01T12:00:00Z']);
    expect(kept({ last: 1, monthly: 3 })).toEqual(['s1-2026-01-12T09:00:00Z', 's1-2026-02-03T09:00:00Z', 's1-2026-03-01T12:00:00Z']);
    expect(applyPolicy(list, { last: 1 }).remove).toHaveLength(7);
  });

  const seqAt = (iso: string, seq: number) => ({ id: `s1-${seq}`, snapshot: { time: Date.parse(iso), storeId: 's1', seq } as SnapshotFile });
  /** Nightly runs at 02:30 UTC, one a day from `firstDay` (YYYY-MM-DD), seqs from `firstSeq` up by 10. */
  const nights = (firstDay: string, count: number, firstSeq: number) => Array.from({ length: count }, (_, i) => seqAt(new Date(Date.parse(`${firstDay}T02:30:00Z`) + i * 86_400_000).toISOString(), firstSeq + 10 * i));

  it('a clock stepped back: the run at the store\'s highest seq is kept (by seq), though dated before the runs it follows', () => {
    // hourly runs; before the 12:00 run NTP stepped the clock back two hours
    const runs = [seqAt('2026-01-05T09:00:00Z', 90), seqAt('2026-01-05T10:00:00Z', 100), seqAt('2026-01-05T11:00:00Z', 110), seqAt('2026-01-05T10:00:30Z', 120)];
    expect(applyPolicy(runs, { daily: 1 }).keep).toEqual(new Map([['s1-110', ['daily']], ['s1-120', ['daily by seq']]]));
    expect(applyPolicy(runs, { last: 1 }).keep).toEqual(new Map([['s1-110', ['last']], ['s1-120', ['last by seq']]]));
    // the newest by both measures: nothing more kept than the rules say
    expect(applyPolicy(runs.slice(0, 3), { last: 1 }).keep).toEqual(new Map([['s1-110', ['last']]]));
    // a quiet store (the same seq every night) is counted by time alone
    const quiet = [0, 1, 2, 3].map((day) => ({ ...seqAt(`2026-01-0${day + 1}T02:30:00Z`, 500), id: `q-${day}` }));
    expect(applyPolicy(quiet, { daily: 2 }).keep).toEqual(new Map([['q-3', ['daily']], ['q-2', ['daily']]]));
  });

  it('a clock that was days ahead, then put right: the real newest runs are kept, not only the future-dated ones', () => {
    // five good nights, ten nights with the clock four years ahead (a VM's RTC), then NTP fixed it: three more
    const runs = [...nights('2026-12-01', 5, 10), ...nights('2030-12-06', 10, 60), ...nights('2026-12-16', 3, 160)];
    const { keep, remove } = applyPolicy(runs, { daily: 7 });
    // the last seven nights the store lived through (seq 120..180) are all kept
    for (const seq of [120, 130, 140, 150, 160, 170, 180]) expect(keep.has(`s1-${seq}`), `seq ${seq}`).toBe(true);
    expect(keep.get('s1-170')).toEqual(['daily by seq']);
    expect(remove.map((s) => s.snapshot.seq).sort((a, b) => a - b)).toEqual([10, 20, 30, 40, 50, 60, 70, 80]);
    // keep-last and weekly alike
    expect(keep.has('s1-180')).toBe(true);
    expect([...applyPolicy(runs, { last: 2 }).keep.keys()].sort()).toEqual(['s1-140', 's1-150', 's1-170', 's1-180']);
  });

  it('a clock that booted in 2001 (a dead CMOS battery) for three nights: those runs are not forgotten as the oldest', () => {
    const runs = [...nights('2026-12-01', 5, 10), ...nights('2001-01-01', 3, 60), ...nights('2026-12-09', 2, 90)];
    const { keep } = applyPolicy(runs, { daily: 3 });
    // by seq the three newest states are 100, 90 and 80 (a night dated 2001)
    expect([...keep.keys()].sort()).toEqual(['s1-100', 's1-50', 's1-80', 's1-90']);
    expect(keep.get('s1-80')).toEqual(['daily by seq']);
  });

  it('counts each host apart: a store cloned to another machine (a staging VM with the same nightly job) never has the clone\'s runs push the original\'s out', () => {
    // the same store id on two hosts, backed up a few seconds apart every night into one repository:
    // counted as one, the newest of each day was the clone's, and the original's history went
    const night = (day: number, host: string, seq: number, second: number) => ({
      id: `${host}-${day}`, snapshot: { time: Date.parse(`2026-01-0${day}T02:30:0${second}Z`), storeId: 's1', hostname: host, seq } as SnapshotFile,
    });
    const runs = [1, 2, 3, 4].flatMap((day) => [night(day, 'mail', 1000 * day, 1), night(day, 'staging', 100 + day, 5)]);
    const { keep } = applyPolicy(runs, { daily: 3 });
    expect([...keep.keys()].filter((id) => id.startsWith('mail-')).sort()).toEqual(['mail-2', 'mail-3', 'mail-4']);
    expect([...keep.keys()].filter((id) => id.startsWith('staging-')).sort()).toEqual(['staging-2', 'staging-3', 'staging-4']);
  });

  it('counts each store apart', () => {
    const two = [...list, at('2025-06-01T00:00:00Z', 's2'), at('2025-05-31T00:00:00Z', 's2')];
    expect(kept({ last: 1 }, two)).toEqual(['s1-2026-03-01T12:00:00Z', 's2-2025-06-01T00:00:00Z']);
  });
});

/** A store of `count` messages in INBOX and a repository holding one backup of it. */
async function backedUp(count: number) {
  const dir = tmpDir('bkf');
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await fill(store, 'INBOX', count);
  const repo = await openRepo(join(dir, 'repo'));
  await runBackup(source(store), repo);
  return { dir, store, repo };
}

/** Two backups of a store, the second (its id returned) made with the clock stepped back two hours: dated before the first. */
async function backupAfterAStepBack() {
  const { dir, store, repo } = await backedUp(5);
  await fill(store, 'INBOX', 5, 100);
  const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() - 2 * 3600_000);
  let id: string;
  try {
    id = (await runBackup(source(store), repo)).snapshot;
  } finally {
    clock.mockRestore();
  }
  const latest = await dump(store);
  await store.close();
  return { dir, repo, id, latest };
}

async function expectRestores(repo: Repository, snapshot: string, to: string, expected: unknown): Promise<void> {
  await restoreToNewStore(nodeFileSystem, repo, snapshot, to);
  const back = await Store.open(to);
  expect(await dump(back)).toEqual(expected);
  await back.close();
}

describe('forget --prune', () => {
  it('reclaims what only forgotten snapshots used, rewrites partly used data files, keeps the rest restorable', async () => {
    const dir = tmpDir('bkf');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 40, 1, 3000);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.expunge('INBOX', Array.from({ length: 20 }, (_, i) => i + 1)); // half of the first data file is no longer needed
    await fill(store, 'INBOX', 10, 100, 3000);
    await runBackup(source(store), repo, { whole: true }); // not a delta: the first one can go
    const latest = await dump(store);
    await store.close();
    await expectCode(forgetSnapshots(repo, {}), 'INVALID');
    // a misspelt rule beside a given one, or a count that is no count, removes nothing: INVALID
    await expectCode(forgetSnapshots(repo, { keepLast: 2, daily: 1 } as never), 'INVALID');
    await expectCode(forgetSnapshots(repo, { last: 1.5 }), 'INVALID');
    await expectCode(forgetSnapshots(repo, { last: '2' } as never), 'INVALID');
    await expectCode(forgetSnapshots(repo, { last: 1 }, { purne: true } as never), 'INVALID');
    expect((await forgetSnapshots(repo, { last: 100 })).removed).toEqual([]);
    const summary = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(summary.removed).toHaveLength(1);
    expect(summary.prune).toMatchObject({ blobsRemoved: 20, dataFilesRewritten: 1, dataFilesRemoved: 1, indexFilesReplaced: 2 });
    expect(summary.prune!.bytesFreed).toBeGreaterThan(0);
    expect(readdirSync(repo.path('index'))).toHaveLength(1);
    expect(readdirSync(repo.path('data'))).toHaveLength(2);
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings).toEqual([]);
    expect(report.summary.blobs).toBe(30);
    await expectRestores(repo, 'latest', join(dir, 'r'), latest);
    // a second prune finds nothing to do
    expect((await forgetSnapshots(repo, { last: 1 }, { prune: true })).prune).toMatchObject({ blobsRemoved: 0, dataFilesRemoved: 0, dataFilesRewritten: 0 });
    await repo.close();
  });

  it('a prune interrupted after its new index (old index and data files still there) is consistent, and the next prune finishes', async () => {
    const dir = tmpDir('bkf');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 20, 1, 3000);
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    await store.expunge('INBOX', [1, 2, 3, 4, 5]);
    await fill(store, 'INBOX', 5, 100, 3000);
    await runBackup(source(store), repo, { whole: true }); // not a delta: the first one can go
    const latest = await dump(store);
    await store.close();
    const saved = new Map<string, Buffer>();
    for (const area of ['index', 'data']) for (const name of readdirSync(repo.path(area as 'data'))) saved.set(`${area}/${name}`, readFileSync(join(repo.dir, area, name)));
    await forgetSnapshots(repo, { last: 1 }, { prune: true });
    for (const [path, bytes] of saved) writeFileSync(join(repo.dir, path), bytes); // as if killed before the old files went
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings).toEqual([]);
    expect(readdirSync(repo.path('index')).length).toBe(3);
    const again = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(again.prune).toMatchObject({ dataFilesRewritten: 0, dataFilesRemoved: 1, blobsRemoved: 20, indexFilesReplaced: 3 }); // the old file goes whole: its needed blobs are in the rewritten one
    expect(readdirSync(repo.path('index'))).toHaveLength(1);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestores(repo, 'latest', join(dir, 'r'), latest);
    await repo.close();
  });

  it('a backup taken after the clock stepped back is not forgotten as the oldest: keep-daily keeps it and it restores every message', async () => {
    const { dir, repo, id, latest } = await backupAfterAStepBack();
    const summary = await forgetSnapshots(repo, { daily: 1 }, { prune: true });
    expect(summary.kept.map((k) => k.id)).toContain(id);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await expectRestores(repo, id, join(dir, 'r'), latest);
    await repo.close();
  });

  it("restore of 'latest' after the clock stepped back: INVALID naming both snapshots (the newest by time is the older state), nothing written; by id it restores", async () => {
    const { dir, repo, id, latest } = await backupAfterAStepBack();
    const error = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'l')).catch((e: MailstoreError) => e);
    expect((error as MailstoreError).code).toBe('INVALID');
    expect((error as MailstoreError).message).toContain(id.slice(0, 12));
    expect(existsSync(join(dir, 'l'))).toBe(false);
    await expectRestores(repo, id, join(dir, 'r'), latest);
    await repo.close();
  });

  it('refuses (REFUSED) while a snapshot does not read, and removes nothing', async () => {
    const { store, repo } = await backedUp(5);
    await store.close();
    const [name] = readdirSync(repo.path('snapshots'));
    writeFileSync(repo.path('snapshots', name), 'garbage');
    const before = readdirSync(repo.path('data'));
    await expectCode(forgetSnapshots(repo, { last: 1 }, { prune: true }), 'REFUSED');
    expect(readdirSync(repo.path('data'))).toEqual(before);
    await repo.close();
  });
});
