// Index snapshots and journal retirement: a snapshot verifies (and any damaged byte fails it), a
// rebuild from the newest snapshot plus the journal after it equals the live index key for key,
// a damaged newest snapshot falls back to the one before it (or to the whole journal) and says
// so, retirement waits for two verified snapshots and never passes a consumer's cursor nor the
// older kept one, a damaged snapshot older than the kept ones goes to quarantine/ (bounded), a
// consumer that asks for retired records gets NOT_FOUND, and a retired journal still rebuilds and
// rewrites.
import { describe, expect, it, vi } from 'vitest';
import { chmodSync, cpSync, existsSync, lstatSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { MailstoreError } from '../../src/errors.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { IndexDb } from '../../src/index/index-db.js';
import { compareIndexes } from '../../src/store/recovery.js';
import { meta } from '../../src/store/apply.js';
import { Store } from '../../src/store/store.js';
import { readSnapshotFile } from '../../src/store/snapshot-file.js';
import { writeSetting } from '../../src/store/setting-file.js';
import { unopenedRoot } from '../../src/store/unopened-root.js';
import { writeTierSettings } from '../../src/store/tier.js';
import { rebuildFromBucket } from '../../src/store/rebuild-from-bucket.js';
import type { SnapshotResult } from '../../src/store/snapshots.js';
import { limits } from '../../src/limits.js';
import { reconstruct } from '../../src/scrub/reconstruct.js';
import { scrub } from '../../src/scrub/scrub.js';
import { isDamage } from '../../src/scrub/findings.js';
import { repair } from '../../src/scrub/repair.js';
import { internalsOf } from '../helpers/internals.js';
import { tmpDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/errors.js';
import { monotonicMs } from '../../src/monotonic.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { recordBackup } from '../../src/store/backup-records.js';
import { forgetPrimarySettings, notePrimarySettings } from '../../src/replication/node-settings.js';
import { notePacksToRemove } from '../../src/replication/pack-removal.js';
import { PendingRounds } from '../../src/replication/pending-rounds.js';
import { receiveResync } from '../../src/replication/resync-sink.js';
import type { Connection } from '../../src/replication/transport.js';

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

/** seeded(root) with a journal archive (a new directory) set: `{ root, archive, store }`. */
async function seededWithArchive(root = tmpDir()): Promise<{ root: string; archive: string; store: Store }> {
  const archive = join(tmpDir(), 'archive');
  mkdirSync(archive);
  const store = await seeded(root, 60);
  await store.setJournalArchive(archive);
  return { root, archive, store };
}

/** A seeded store, a snapshot, more churn and a second snapshot: that one retires the journal below the first. */
async function twoGenerations(root: string, records = 60): Promise<{ store: Store; older: SnapshotResult; newest: SnapshotResult }> {
  const store = await seeded(root, records);
  const older = await store.snapshot();
  await churn(store, 1000, 30);
  const newest = await store.snapshot();
  expect(newest.retired.throughSeq).toBe(older.seq);
  expect(newest.retired.segments.length).toBeGreaterThan(0);
  expect(store.changes.firstSeq).toBeGreaterThan(1);
  expect(store.changes.firstSeq).toBeLessThanOrEqual(older.seq + 1);
  return { store, older, newest };
}

const snapshotNames = (root: string) => readdirSync(join(root, 'snapshots')).filter((n) => n.endsWith('.snap')).sort();
const segments = (root: string) => readdirSync(join(root, 'journal')).filter((n) => n.endsWith('.jnl')).sort();
/** Stats without the disk's free space (it moves with other processes) nor the consumers. */
const comparable = async (store: Store, extra: object = {}) => ({ ...(await store.stats()), consumers: [], freeSpace: undefined, ...extra });

/** Every message of every mailbox: uid, flags and the body's bytes (hex), to compare two states exactly. */
async function everyMessage(store: Store): Promise<string[]> {
  const out: string[] = [];
  for (const box of ['INBOX', 'Sent']) {
    for await (const m of store.messages(box)) {
      out.push(`${box} ${m.uid} ${m.modseq} ${[...m.flags].sort().join(',')} ${(await store.fetch(box, m.uid)).toString('hex')}`);
    }
  }
  return out;
}

/** Zeroes `bytes` bytes from the middle of a file (a lost block of the medium). */
function zeroInside(path: string, bytes: number): void {
  const data = readFileSync(path);
  const at = Math.max(64, Math.floor(data.length / 2) - bytes / 2);
  data.fill(0, at, Math.min(data.length, at + bytes));
  writeFileSync(path, data);
}

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
    const before = await comparable(store);
    await store.close();
    renameSync(join(root, 'index'), join(root, 'index.old'));
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.rebuiltFrom).toMatch(/^snapshot /);
    expect(reopened.health.degraded).toBe(false);
    expect(await comparable(reopened)).toEqual(before);
    expect((await reopened.maintenance().reconstructIndex({ check: true })).differences).toBe(0);
    await reopened.close();
    // Every key and value, meta (appliedSeq, store id, uidValidityLast) included, byte for byte.
    const [old, rebuilt] = [await IndexDb.open(join(root, 'index.old'), false), await IndexDb.open(join(root, 'index'), false)];
    const differences: string[] = [];
    // but the store's view of the wall clock (clock.ts), which no journal gives and each open looks at anew
    for await (const d of compareIndexes(old, rebuilt)) if (!d.key.equals(meta.clock)) differences.push(`${d.key.toString('hex')}: ${d.detail}`);
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
    const live = await comparable(store, { snapshotBytes: 0 });
    await store.close();
    const path = join(root, 'snapshots', newest.name);
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(path, bytes);
    rmSync(join(root, 'index'), { recursive: true });
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.rebuiltFrom).toContain(older.name);
    expect(reopened.health.findings.join('\n')).toMatch(new RegExp(`snapshot ${newest.name} is damaged.*rebuilt from the older snapshot ${older.name}`));
    expect(await comparable(reopened, { snapshotBytes: 0 })).toEqual(live);
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

/** 4 KiB of zeros inside a snapshot, index/ deleted, the store opened: the rebuild's fallback loses nothing (not degraded). */
async function reopenAfterDamage(root: string, snapshot: string): Promise<Store> {
  zeroInside(join(root, 'snapshots', snapshot), 4096);
  rmSync(join(root, 'index'), { recursive: true });
  const reopened = await Store.open(root, SMALL);
  expect(reopened.health.degraded, reopened.health.findings.join('; ')).toBe(false);
  return reopened;
}

describe('a snapshot of a store whose file system left it', () => {
  // `umount -l` under a running store, whose root is the mount point: its open files go on, its
  // paths now name the empty mount-point directory. Within the daemon's mount look (1 s) a snapshot
  // wrote snapshots/<seq>.snap and consumers/snapshot there and said it succeeded, and `snapshot`
  // with a journal archive wrote JOURNAL-ARCHIVE there (wt48e's outside run). As a new pack or
  // segment, each is UNMOUNTED and nothing lands in the mount point.
  it('UNMOUNTED, nothing created in the directory now at the store\'s path; the store, mounted again, snapshots', async () => {
    const dir = join(tmpDir('snapshot-unmounted'), 'store');
    const store = await Store.open(dir, { create: true, autoSnapshot: false });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.changes.register('webhook', 0);
    const away = `${dir}-detached`;
    renameSync(dir, away); // the open files keep their file system, as a lazily unmounted one
    mkdirSync(dir); // the empty mount point
    await expect(store.snapshot()).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.changes.register('indexer', 0), 'a consumer cursor is a new file too').rejects.toMatchObject({ code: 'UNMOUNTED' });
    // `consumers --remove` and `--move` found no cursor in the mount point: NOT_FOUND, "no consumer named webhook"
    await expect(store.changes.remove('webhook')).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.changes.rewind('webhook', 0)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    // and the list (`consumers`, stats) found no consumers/ there: "no consumers", exit 0
    await expect(store.changes.report()).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.changes.names()).rejects.toMatchObject({ code: 'UNMOUNTED' });
    // `init --object-store` writes the bucket's settings into the store it just made (it was written after the close, unchecked)
    await expect(writeTierSettings(store, { url: 'http://127.0.0.1:9/mail' })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(writeTierSettings(unopenedRoot(nodeFileSystem, dir), { url: 'http://127.0.0.1:9/mail' })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    // and so is a setting beside STORE (the journal archive was written there before the snapshot that named it)
    const archive = tmpDir('snapshot-unmounted-archive');
    await expect(store.setJournalArchive(archive)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.setInlineBodies(1000)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.setFreeSpaceReserve(1 << 20)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(store.replication().setRole({ role: 'primary', epoch: 1, nodeId: 'a1' })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    // and every other file under the root, which wrote there before (each writer had its own check, or none):
    // a backup's record, a replica's settings note, its list of packs to remove and its tentative rounds
    await expect(recordBackup(store, { id: 'r1', path: '/backup', snapshot: 's1', time: 1 })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(notePrimarySettings(store, { 'JOURNAL-ARCHIVE': null })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(forgetPrimarySettings(store)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(notePacksToRemove(store, 1, [0])).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(new PendingRounds(store).beginSession()).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(receiveResync(store, {} as Connection, { t: 'resync', seq: 1, bytes: 10, name: 'x.snap' }, () => undefined)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    // a compaction or a scrub then finds no packs/: UNMOUNTED, not NOT_FOUND (nor damage)
    await expect(store.compact()).rejects.toMatchObject({ code: 'UNMOUNTED' });
    await expect(scrub(store)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    expect(readdirSync(dir), 'nothing written into the empty mount point').toEqual([]);
    expect(existsSync(join(away, 'snapshots')), 'nor a snapshot taken elsewhere').toBe(false);
    rmSync(dir, { recursive: true });
    renameSync(away, dir); // mounted again
    expect((await store.snapshot()).seq).toBeGreaterThan(0);
    expect(await store.changes.remove('webhook')).toBe(true);
    await store.close();
  });

  // `mv mail mail.old; mv mail.restored mail` under a running store: the path names another store
  // on the same device, whose STORE is there, so a look at the device and STORE alone passed and
  // the snapshot went into the other store's directory (wt52g's outside run).
  it('another store\'s directory moved into its place (same device): UNMOUNTED, nothing written into that store; moved back, it snapshots', async () => {
    const base = tmpDir('snapshot-swapped');
    const dir = join(base, 'mail');
    const store = await Store.open(dir, { create: true, autoSnapshot: false });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    const other = await Store.open(join(base, 'restored'), { create: true, autoSnapshot: false });
    await other.close();
    renameSync(dir, join(base, 'mail.old'));
    renameSync(join(base, 'restored'), dir);
    const before = readdirSync(dir).sort();
    await expect(store.snapshot()).rejects.toMatchObject({ code: 'UNMOUNTED', message: expect.stringMatching(/moved away: mv/) });
    await expect(store.changes.register('indexer', 0)).rejects.toMatchObject({ code: 'UNMOUNTED' });
    expect(readdirSync(dir).sort(), 'nothing written into the other store').toEqual(before);
    expect(existsSync(join(dir, 'snapshots')) ? readdirSync(join(dir, 'snapshots')) : []).toEqual([]);
    renameSync(dir, join(base, 'restored'));
    renameSync(join(base, 'mail.old'), dir);
    expect((await store.snapshot()).seq).toBeGreaterThan(0);
    await store.close();
  });

  it('rebuild-from-bucket: a target whose file system left it during the run is UNMOUNTED before OBJECT-STORE and STORE, nothing in the mount point', async () => {
    const source = join(tmpDir('rebuild-unmounted'), 'store');
    const store = await Store.open(source, { create: true, autoSnapshot: false });
    await store.createMailbox('INBOX');
    await store.append('INBOX', msg(1));
    await store.close();
    const copy = tmpDir('rebuild-unmounted-copy');
    cpSync(join(source, 'STORE'), join(copy, 'STORE'));
    cpSync(join(source, 'journal'), join(copy, 'journal'), { recursive: true });
    // a bucket that answers the check (HEAD bucket): nothing else is asked before the settings are written
    const bucket = createServer((_, response) => response.end());
    await new Promise<void>((resolve) => bucket.listen(0, '127.0.0.1', resolve));
    vi.stubEnv('MAILSTORE_S3_ACCESS_KEY', 'access');
    vi.stubEnv('MAILSTORE_S3_SECRET_KEY', 'secret');
    const target = join(tmpDir('rebuild-unmounted-target'), 'new');
    const away = `${target}-detached`;
    let unmounted = false;
    // umount -l of the target's file system once the copy is in, just before the settings (their check, or their write)
    const fs = new Proxy(nodeFileSystem, {
      get(real, name: keyof typeof nodeFileSystem) {
        const method = real[name];
        if (typeof method !== 'function') return method;
        return (...args: unknown[]) => {
          const path = args[0];
          if (!unmounted && typeof path === 'string' && (path === join(target, 'REBUILDING') && name === 'statIfExists' || path.startsWith(join(target, 'OBJECT-STORE')))) {
            unmounted = true;
            renameSync(target, away);
            mkdirSync(target);
          }
          return (method as (...a: unknown[]) => unknown).apply(real, args);
        };
      },
    });
    try {
      const settings = { url: `http://127.0.0.1:${(bucket.address() as AddressInfo).port}/mail` };
      await expect(rebuildFromBucket(target, { journalCopy: copy, settings, fs })).rejects.toMatchObject({ code: 'UNMOUNTED' });
    } finally {
      vi.unstubAllEnvs();
      bucket.close();
    }
    expect(unmounted).toBe(true);
    expect(readdirSync(target), 'neither OBJECT-STORE nor STORE in the empty mount point').toEqual([]);
    expect(readdirSync(away)).toContain('REBUILDING'); // mounted again, a new run clears it and starts over
  });
});

describe('a damaged snapshot is never the only copy of the metadata', () => {
  it('one snapshot, damaged, index lost: every message is rebuilt from the whole journal (it retired nothing), and the open says so', async () => {
    // The reproduction: the first snapshot retired the whole journal it covered, so 4 KiB of zeros
    // inside it and a lost index/ opened a degraded store with 0 mailboxes (all 60 messages lost).
    const root = tmpDir();
    const store = await Store.open(root, { create: true, ...SMALL });
    await store.createMailbox('INBOX');
    await store.createMailbox('Sent');
    for (let i = 1; i <= 60; i++) await store.append(i % 3 === 0 ? 'Sent' : 'INBOX', msg(i), { flags: i % 2 ? ['\\Seen'] : [] });
    const journalBefore = segments(root);
    expect(journalBefore.length).toBeGreaterThan(1); // there were segments it could have retired
    const snap = await store.snapshot();
    expect(snap.retired.segments).toEqual([]);
    expect(segments(root)).toEqual(journalBefore);
    const before = await everyMessage(store);
    expect(before).toHaveLength(60);
    await store.close();
    const reopened = await reopenAfterDamage(root, snap.name);
    try {
      expect(reopened.health.rebuiltFrom).toMatch(/^the whole journal/);
      expect(reopened.health.findings.join('\n')).toMatch(new RegExp(`snapshot ${snap.name} is damaged.*rebuilt from the whole retained journal instead`));
      expect(await everyMessage(reopened)).toEqual(before);
    } finally {
      await reopened.close();
    }
  });

  it('two snapshots, the newest damaged, index lost: rebuilt from the older one plus the journal since it, every message exact, and the open says so', async () => {
    const root = tmpDir();
    // the journal before the older snapshot is gone: the fallback is that snapshot and what follows it
    const { store, older, newest } = await twoGenerations(root);
    await churn(store, 300, 10);
    const before = await everyMessage(store);
    const live = await comparable(store, { snapshotBytes: 0 });
    await store.close();
    const reopened = await reopenAfterDamage(root, newest.name);
    try {
      expect(reopened.health.rebuiltFrom).toContain(older.name);
      expect(reopened.health.findings.join('\n')).toMatch(new RegExp(`snapshot ${newest.name} is damaged.*rebuilt from the older snapshot ${older.name}`));
      expect(await everyMessage(reopened)).toEqual(before);
      expect(await comparable(reopened, { snapshotBytes: 0 })).toEqual(live);
      expect(await reopened.getAcl('INBOX')).toEqual({ bob: 'lr' });
    } finally {
      await reopened.close();
    }
  });

  it('a damaged snapshot among the kept ones is not counted; once older than the kept ones it goes to quarantine/, past snapshotsQuarantinedMax it is deleted', async () => {
    const root = tmpDir();
    const store = await seeded(root, 30);
    const quarantined = () => readdirSync(join(root, 'quarantine')).filter((n) => n.startsWith('snapshot-'));
    const s1 = await store.snapshot();
    await churn(store, 100, 10);
    const s2 = await store.snapshot();
    await churn(store, 200, 10);
    zeroInside(join(root, 'snapshots', s2.name), 512);
    // s2 is damaged: the two verified ones are s3 and s1, and retirement stops at s1
    const s3 = await store.snapshot();
    expect(s3.retired.throughSeq).toBe(s1.seq);
    expect(s3.damagedSnapshots).toEqual([]);
    expect(snapshotNames(root)).toEqual([s1.name, s2.name, s3.name]);
    await churn(store, 300, 10);
    // s4 and s3 are kept; s2 (damaged) goes to quarantine/, s1 (verified) is deleted
    const s4 = await store.snapshot();
    expect(s4.retired.throughSeq).toBe(s3.seq);
    expect(s4.removedSnapshots).toEqual([s1.name]);
    expect(s4.damagedSnapshots).toHaveLength(1);
    expect(s4.damagedSnapshots[0]).toMatchObject({ name: s2.name, why: expect.stringMatching(/damaged/) });
    expect(existsSync(s4.damagedSnapshots[0]!.quarantined!)).toBe(true);
    expect(quarantined()).toHaveLength(1);
    expect(snapshotNames(root)).toEqual([s3.name, s4.name]);
    // bounded: with the quarantine full, a further damaged old snapshot is deleted
    const saved = limits.snapshotsQuarantinedMax;
    limits.snapshotsQuarantinedMax = 1;
    try {
      await churn(store, 400, 10);
      zeroInside(join(root, 'snapshots', s4.name), 512);
      const s5 = await store.snapshot(); // kept: s5, s3 (s4 damaged, not counted)
      expect(s5.retired.throughSeq).toBe(s3.seq);
      await churn(store, 500, 10);
      const s6 = await store.snapshot(); // kept: s6, s5; s4 damaged and older, s3 verified and older
      expect(s6.removedSnapshots).toEqual([s3.name]);
      expect(s6.damagedSnapshots).toEqual([{ name: s4.name, why: expect.stringMatching(/damaged/) }]);
      expect(quarantined()).toHaveLength(1);
      expect(snapshotNames(root)).toEqual([s5.name, s6.name]);
    } finally {
      limits.snapshotsQuarantinedMax = saved;
    }
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });
});

describe('journal retirement', () => {
  it('retires segments below the older kept snapshot, deletes snapshots past two generations, and the journal firstSeq follows', async () => {
    const root = tmpDir();
    const store = await seeded(root, 80);
    const segmentsBefore = segments(root).length;
    expect(segmentsBefore).toBeGreaterThan(3);
    const first = await store.snapshot();
    // One generation: nothing retires (the snapshot would be the only copy of the metadata).
    expect(first.retired.segments).toEqual([]);
    expect(first.retired.held).toMatch(/1 verified snapshot of the 2 kept/);
    expect(store.changes.firstSeq).toBe(1);
    expect(segments(root).length).toBe(segmentsBefore);
    await churn(store, 500, 60);
    const second = await store.snapshot();
    expect(second.retired.throughSeq).toBe(first.seq); // the older kept generation bounds it
    expect(second.retired.held).toBeUndefined();
    expect(second.retired.segments.length).toBeGreaterThan(0);
    expect(store.changes.firstSeq).toBeGreaterThan(1);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(first.seq + 1);
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
    await store.snapshot(); // the older generation: without it nothing retires at all
    await churn(store, 100, 60);
    const result = await store.snapshot();
    expect(result.retired.throughSeq).toBe(10);
    // and says who holds it (the CLI prints it): a consumer left behind is never a silent "nothing to retire"
    expect(result.retired.heldBy).toMatchObject({ consumer: 'slow', seq: 10 });
    expect(result.retired.heldBy!.lagRecords).toBeGreaterThanOrEqual(result.seq - 10);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(11);
    const read: number[] = [];
    for await (const c of store.changes.read(10, { limit: 3 })) read.push(c.seq);
    expect(read).toEqual([11, 12, 13]);
    await store.changes.advance('slow', store.changes.lastSeq);
    await churn(store, 200, 10); // a newer snapshot than `result`, which becomes the older kept one
    const next = await store.snapshot();
    expect(next.retired.throughSeq).toBe(result.seq);
    expect(next.retired.heldBy).toBeUndefined();
    expect(store.changes.firstSeq).toBeGreaterThan(11);
    await store.close();
  });

  for (const fault of ['EIO on a segment unlink', 'EACCES on a segment unlink', 'another consumer\'s cursor damaged'] as const) {
    it(`the retirement a consumer's removal starts in the background fails (${fault}): a health finding says so, the journal and every message stay; the next snapshot retires`, async () => {
      const root = tmpDir();
      const fs = new FaultFileSystem();
      const store = await Store.open(root, { create: true, ...SMALL, fs });
      try {
        await store.createMailbox('INBOX');
        await store.createMailbox('Sent');
        await churn(store, 1, 40);
        await store.changes.register('slow', 10);
        await store.changes.register('gone', 10);
        await store.changes.register('live', 10);
        await store.snapshot();
        await churn(store, 100, 60);
        expect((await store.snapshot()).retired.throughSeq).toBe(10); // held by the consumers
        await store.changes.advance('live', store.changes.lastSeq);
        await store.changes.advance('slow', store.changes.lastSeq);
        const messages = await everyMessage(store);
        const journal = internalsOf(store).journal;
        const [firstSeq, kept] = [store.changes.firstSeq, segments(root)];
        const cursor = join(root, 'consumers', 'slow');
        if (fault === 'another consumer\'s cursor damaged') {
          const bytes = readFileSync(cursor);
          bytes[3] ^= 0x20;
          writeFileSync(cursor, bytes);
        } else {
          fs.failAll(fault.startsWith('EIO') ? 'EIO' : 'EACCES', { pathPrefix: join(root, 'journal'), ops: ['unlink'] });
        }
        expect(await store.changes.remove('gone')).toBe(true); // starts the retirement in the background
        const snapshotter = (internalsOf(store) as unknown as { snapshots: { chain: Promise<unknown> } }).snapshots;
        for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
        await snapshotter.chain;
        // the other consumer moves on (a replica's cursor moves at every round): no retry, no finding, at each move
        for (let i = 0; i < 3; i++) {
          await store.append('INBOX', msg(400 + i));
          await store.changes.advance('live', store.changes.lastSeq);
          for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
          await snapshotter.chain;
        }
        const said = store.health.findings.filter((f) => f.startsWith('retiring the journal after a consumer caught up failed (no record was lost; the next snapshot retires it, or says why not): '));
        const [code, path] = fault === 'another consumer\'s cursor damaged' ? ['is damaged', cursor] : [fault.startsWith('EIO') ? 'EIO' : 'EACCES', join(root, 'journal', kept[0])];
        expect(said, `${store.health.findings.join('\n')}`).toHaveLength(1); // before: one more at each move (tried again, failed again); the old text promised the next snapshot would retire
        expect(said[0]).toContain(path);
        expect(said[0]).toContain(code);
        // nothing acknowledged lost: the journal as it was, every record and message there
        expect(store.changes.firstSeq).toBe(firstSeq);
        // (the retirement moved inline bodies into packs first: its record may have started a segment)
        expect(segments(root)).toEqual(expect.arrayContaining(kept));
        expect(journal.segmentNames).toEqual(expect.arrayContaining(kept));
        const read: number[] = [];
        for await (const c of store.changes.read(firstSeq - 1)) read.push(c.seq);
        expect(read).toEqual(Array.from({ length: store.changes.lastSeq - firstSeq + 1 }, (_, i) => firstSeq + i));
        const now = await everyMessage(store);
        expect(now).toEqual(expect.arrayContaining(messages));
        expect(now).toHaveLength(messages.length + 3); // and the three appended since
        // mended (the fault gone, the damaged consumer removed): the next snapshot retires, clean
        fs.clear();
        if (fault === 'another consumer\'s cursor damaged') await store.changes.remove('slow');
        await store.append('INBOX', msg(500));
        expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
        expect(store.changes.firstSeq).toBeGreaterThan(firstSeq);
        expect((await scrub(store)).findings.filter(isDamage)).toEqual([]);
      } finally {
        await store.close();
      }
    });
  }

  it('retires again as soon as the consumer that held it catches up or is removed, without waiting for the next snapshot', async () => {
    const root = tmpDir();
    const store = await seeded(root, 40);
    await store.changes.register('slow', 10);
    await store.changes.register('gone', 10);
    await store.snapshot();
    await churn(store, 100, 60);
    const held = await store.snapshot();
    expect(held.retired.throughSeq).toBe(10);
    const firstSeq = store.changes.firstSeq;
    const journal = internalsOf(store).journal;
    const pinned = journal.segmentNames.length;
    const snapshotter = (internalsOf(store) as unknown as { snapshots: { chain: Promise<unknown> } }).snapshots;
    const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); await snapshotter.chain; };
    // one of two consumers past the kept snapshots: the other still holds the journal
    await store.changes.advance('slow', store.changes.lastSeq);
    await settle();
    expect(store.changes.firstSeq).toBe(firstSeq);
    // the last one gone: retired below the older kept snapshot, as the snapshot would have
    expect(await store.changes.remove('gone')).toBe(true);
    await settle(); // the retirement it started, whole
    expect(store.changes.firstSeq).toBeGreaterThan(firstSeq);
    const older = (await store.stats()).consumers; // nothing else moved
    expect(older.map((c) => c.name)).toEqual(['slow', 'snapshot']);
    expect(store.changes.firstSeq).toBeLessThanOrEqual(held.seq + 1);
    expect(journal.segmentNames.length).toBeLessThan(pinned);
    // every record from the first retained one on still reads; the store reopens and scrubs clean
    const read: number[] = [];
    for await (const c of store.changes.read(store.changes.firstSeq - 1)) read.push(c.seq);
    expect(read[0]).toBe(store.changes.firstSeq);
    expect(read.at(-1)).toBe(store.changes.lastSeq);
    const before = await comparable(store);
    await store.close();
    const again = await Store.open(root, SMALL);
    expect(await comparable(again)).toEqual(before);
    expect((await scrub(again)).findings.filter(isDamage)).toEqual([]);
    await again.close();
  });

  it('moves retired segments into the journal archive when one is set, and refuses to retire into a missing one', async () => {
    const { root, archive, store } = await seededWithArchive();
    expect(await store.journalArchive()).toBe(archive);
    expect((await store.snapshot()).retired.segments).toEqual([]); // the first generation: nothing retires
    await churn(store, 70, 10);
    const result = await store.snapshot();
    expect(result.retired.archive).toBe(archive);
    expect(result.retired.segments.length).toBeGreaterThan(0);
    expect(readdirSync(archive).sort()).toEqual([...result.retired.segments, 'STORE-ID']);
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

  it('never overwrites a segment of the same name in the journal archive (two stores sharing one): EXISTS, the segment stays in the journal', async () => {
    const { archive, store: first } = await seededWithArchive();
    await first.snapshot();
    await churn(first, 70, 10);
    const archived = (await first.snapshot()).retired.segments;
    expect(archived.length).toBeGreaterThan(0);
    const kept = new Map(archived.map((name) => [name, readFileSync(join(archive, name))]));
    await first.close();
    const secondRoot = tmpDir();
    const second = await seeded(secondRoot, 60); // the same history: the same segment names
    await expect(second.setJournalArchive(archive)).rejects.toMatchObject({ code: 'INVALID' }); // the first's STORE-ID is there (session 48)
    // as an older mailstore left them: the setting written without that check, the archive without a marker
    await writeSetting(unopenedRoot(nodeFileSystem, secondRoot), 'JOURNAL-ARCHIVE', archive, 'the journal archive setting');
    rmSync(join(archive, 'STORE-ID'));
    await second.snapshot();
    await churn(second, 70, 10);
    const segmentsBefore = readdirSync(join(secondRoot, 'journal')).sort();
    const error = await second.snapshot().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(MailstoreError);
    expect((error as MailstoreError).code).toBe('EXISTS');
    expect((error as MailstoreError).message).toMatch(/archive of its own/);
    for (const [name, bytes] of kept) expect(readFileSync(join(archive, name)).equals(bytes)).toBe(true); // the first store's history whole
    expect(readdirSync(join(secondRoot, 'journal'))).toEqual(expect.arrayContaining(segmentsBefore)); // nothing of the second's left its journal
    const own = join(tmpDir(), 'own');
    mkdirSync(own);
    await second.setJournalArchive(own);
    expect((await second.snapshot()).retired.segments.length).toBeGreaterThan(0); // retired once it has an archive of its own
    const messages = await everyMessage(second);
    await second.close();
    rmSync(join(secondRoot, 'index'), { recursive: true, force: true });
    const rebuilt = await Store.open(secondRoot, SMALL);
    expect(await everyMessage(rebuilt)).toEqual(messages);
    await rebuilt.close();
  });

  it('refuses a journal archive that group or others may write (ACCESS): another user could remove the archived history, or plant names that stop every retirement', async () => {
    const root = tmpDir();
    const store = await seeded(root, 60);
    const shared = join(tmpDir(), 'shared');
    mkdirSync(shared);
    for (const mode of [0o777, 0o1777, 0o775]) {
      chmodSync(shared, mode);
      await expect(store.setJournalArchive(shared)).rejects.toMatchObject({ code: 'ACCESS', message: expect.stringContaining(`chmod go-w ${shared}`) });
      expect(await store.journalArchive()).toBeUndefined();
    }
    chmodSync(shared, 0o755);
    await store.setJournalArchive(shared);
    expect(await store.journalArchive()).toBe(shared);
    await store.close();
  });

  it('refuses a journal archive inside the store (journal/, index/, the root, or a link into them); one set before is not retired into', async () => {
    const root = tmpDir();
    const store = await seeded(root, 60);
    const link = join(tmpDir(), 'link');
    symlinkSync(join(root, 'index'), link);
    for (const dir of [join(root, 'journal'), join(root, 'index'), root, join(root, 'snapshots', '..'), link]) {
      if (!existsSync(dir)) mkdirSync(dir);
      expect(await codeOf(store.setJournalArchive(dir))).toBe('INVALID');
    }
    expect(await store.journalArchive()).toBeUndefined();
    // a setting written by an older mailstore: the retirement keeps the segments and says why
    await writeSetting(unopenedRoot(nodeFileSystem, root), 'JOURNAL-ARCHIVE', join(root, 'journal'), 'the journal archive setting');
    await store.snapshot();
    await churn(store, 70, 10);
    const before = segments(root);
    const result = await store.snapshot();
    expect(result.retired.segments).toEqual([]);
    expect(result.retired.skipped).toMatch(/inside the store/);
    expect(segments(root)).toEqual(expect.arrayContaining(before));
    await store.close();
  });

  it('an archive whose file system is not mounted (the directory gone, or an empty mount point) or another store\'s: nothing retired, nothing deleted, scrub reports it (exit 1) with the path and what to do; mounted again, it retires there', async () => {
    const { root, archive, store } = await seededWithArchive();
    expect(readFileSync(join(archive, 'STORE-ID'), 'utf8')).toBe(`${store.identity.storeId}\n`);
    await store.snapshot();
    await churn(store, 70, 10);
    const unmounted = join(tmpDir(), 'mounted-archive');
    renameSync(archive, unmounted); // its file system unmounted: an empty mount point stays
    mkdirSync(archive, { mode: 0o700 });
    const other = join(tmpDir(), 'other');
    mkdirSync(other);
    for (const [state, why] of [
      ['an empty mount point', /holds no STORE-ID of this store \(an empty mount point: its file system not mounted\?\)/],
      ['another store\'s archive', /is the archive of store 0{8}-0{4}-0{4}-0{4}-0{12} \(its STORE-ID\), not of this one/],
      ['the directory gone', /is not a directory \(not mounted\?\)/],
    ] as const) {
      if (state === 'another store\'s archive') writeFileSync(join(archive, 'STORE-ID'), '00000000-0000-0000-0000-000000000000\n');
      if (state === 'the directory gone') rmSync(archive, { recursive: true });
      const before = segments(root);
      const result = await store.snapshot();
      expect(result.retired.segments, state).toEqual([]); // before: an empty mount point took every segment, hidden below the archive once mounted
      expect(result.retired.skipped).toMatch(why);
      expect(segments(root)).toEqual(expect.arrayContaining(before));
      const report = await scrub(store);
      const found = report.findings.filter((f) => f.kind === 'journal-archive-unusable');
      expect(found, state).toEqual([{ kind: 'journal-archive-unusable', archive, why: expect.stringMatching(why), todo: expect.stringContaining('mailstore snapshot --journal-archive') }]); // before: none, scrub clean
      expect(report.summary.damage).toBe(1);
      if (state !== 'the directory gone') rmSync(join(archive, 'STORE-ID'), { force: true });
    }
    writeFileSync(join(other, 'STORE-ID'), '00000000-0000-0000-0000-000000000000\n');
    await expect(store.setJournalArchive(other)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('give each store a directory of its own') });
    expect(await store.journalArchive()).toBe(archive);
    renameSync(unmounted, archive); // mounted again
    const retired = await store.snapshot();
    expect(retired.retired.segments.length).toBeGreaterThan(0);
    expect(readdirSync(archive)).toEqual(expect.arrayContaining(retired.retired.segments));
    expect((await scrub(store)).summary.damage).toBe(0);
    await store.close();
  });

  it('an archive an older mailstore set (segments in it, no STORE-ID) is marked at the next retirement and used', async () => {
    const { root, archive, store } = await seededWithArchive();
    await store.snapshot();
    await churn(store, 70, 10);
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    rmSync(join(archive, 'STORE-ID'));
    expect((await scrub(store)).summary.damage).toBe(0);
    await churn(store, 100, 60);
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    expect(readFileSync(join(archive, 'STORE-ID'), 'utf8')).toBe(`${store.identity.storeId}\n`);
    await store.close();
  });

  it('an automatic snapshot that retires nothing for the archive says so once in store.health.findings (a library without onSnapshot)', async () => {
    const root = tmpDir();
    const archive = join(tmpDir(), 'archive');
    mkdirSync(archive);
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, autoSnapshot: true });
    const before = { ...limits };
    limits.snapshotEveryRecords = 20;
    limits.snapshotAutoPauseFactor = 0;
    try {
      await store.createMailbox('INBOX');
      await store.createMailbox('Sent');
      await store.setJournalArchive(archive);
      rmSync(archive, { recursive: true });
      await churn(store, 1, 120);
      await store.snapshot(); // waits for the automatic ones
      const said = store.health.findings.filter((f) => f.includes(`the journal archive ${archive} is not a directory`));
      expect(said).toHaveLength(1); // before: none
      expect(said[0]).toMatch(/^automatic snapshots retire no journal segment: .*nothing was retired; mount it/);
    } finally {
      Object.assign(limits, before);
      await store.close();
    }
  });

  it('a damaged consumer cursor: the snapshot is written and resolves, retiring nothing (damagedFile names the cursor); the consumer removed, the next one retires', async () => {
    const root = tmpDir();
    const store = await seeded(root, 60);
    await store.changes.register('replica-0123456789abcdef');
    await store.snapshot();
    await churn(store, 70, 10);
    const cursor = join(root, 'consumers', 'replica-0123456789abcdef');
    const bytes = readFileSync(cursor);
    bytes[3] ^= 0x20;
    writeFileSync(cursor, bytes);
    const before = segments(root);
    const result = await store.snapshot(); // before: rejected CORRUPT after the snapshot was durable
    expect(result.retired).toEqual({ throughSeq: 0, segments: [], bytes: 0, damagedFile: { path: cursor, why: expect.stringContaining(`'mailstore consumers --remove replica-0123456789abcdef' forgets it`) } });
    expect(snapshotNames(root)).toContain(result.name);
    expect(segments(root)).toEqual(before);
    await store.changes.remove('replica-0123456789abcdef');
    expect((await store.snapshot()).retired.segments.length).toBeGreaterThan(0);
    await store.close();
  });

  /** A store with a journal archive and a second snapshot's worth of changes: its oldest segment retires next. */
  async function segmentToRetire(): Promise<{ archive: string; root: string; store: Store; oldest: string }> {
    const { root, archive, store } = await seededWithArchive();
    await store.snapshot();
    await churn(store, 70, 10);
    const oldest = readdirSync(join(root, 'journal')).filter((name) => name.endsWith('.jnl')).sort()[0];
    return { archive, root, store, oldest };
  }

  it('a segment the archive already holds byte for byte (a move a crash interrupted) is taken as archived', async () => {
    const { archive, root, store, oldest } = await segmentToRetire();
    writeFileSync(join(archive, oldest), readFileSync(join(root, 'journal', oldest))); // copied, the source not yet removed
    const result = await store.snapshot();
    expect(result.retired.segments).toContain(oldest);
    expect(existsSync(join(root, 'journal', oldest))).toBe(false);
    await store.close();
  });

  it('a link in the archive under a segment\'s name (another user who may write it, pointing back at the segment) is not taken as archived: EXISTS, the segment stays', async () => {
    const { archive, root, store, oldest } = await segmentToRetire();
    const bytes = readFileSync(join(root, 'journal', oldest));
    symlinkSync(join(root, 'journal', oldest), join(archive, oldest)); // reads back the very bytes of the segment
    const error = await store.snapshot().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'EXISTS' });
    expect(readFileSync(join(root, 'journal', oldest)).equals(bytes)).toBe(true); // was unlinked: the archive held only a dangling link
    rmSync(join(archive, oldest));
    expect((await store.snapshot()).retired.segments).toContain(oldest);
    expect(readFileSync(join(archive, oldest)).equals(bytes)).toBe(true);
    expect(lstatSync(join(archive, oldest)).isFile()).toBe(true);
    await store.close();
  });

  it('reconstruct works with a retired journal: from the snapshot, and --from-index rewrites it', async () => {
    const root = tmpDir();
    const { store } = await twoGenerations(root, 80);
    await churn(store, 200, 10);
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
    const { store, older, newest } = await twoGenerations(root);
    await store.close();
    rmSync(join(root, 'snapshots', older.name));
    rmSync(join(root, 'snapshots', newest.name));
    const reopened = await Store.open(root, SMALL);
    expect(reopened.health.findings.join('\n')).toMatch(/journal records 1\.\.\d+ are missing/);
    expect((await scrub(reopened)).findings.some((f) => f.kind === 'journal-gap')).toBe(true);
    await reopened.close();
  });

  it('close() while a snapshot moves inline bodies into packs before retiring: the snapshot finishes and every message stays', async () => {
    const root = tmpDir();
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, inlineBodyBytesMax: 4096, autoSnapshot: false });
    await store.createMailbox('INBOX');
    for (let i = 1; i <= 30; i++) await store.append('INBOX', msg(i));
    await store.snapshot(); // the older generation: it retires nothing and moves nothing
    for (let i = 31; i <= 40; i++) await store.append('INBOX', msg(i));
    const snapshot = store.snapshot(); // the second: it retires through the first's seq
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

  it('a store whose journal an older mailstore retired below its one snapshot snapshots again at its first change, not 100k records later', async () => {
    const root = tmpDir();
    const { store, older, newest } = await twoGenerations(root);
    await store.close();
    rmSync(join(root, 'snapshots', older.name)); // as the one-snapshot rule before session 30 left it
    expect(snapshotNames(root)).toEqual([newest.name]);
    const results: number[] = [];
    const reopened = await Store.open(root, { journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    expect(reopened.changes.firstSeq).toBeGreaterThan(1);
    await reopened.close(); // no change: nothing new to snapshot
    expect(results).toEqual([]);
    const again = await Store.open(root, { journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    await again.append('INBOX', msg(7000));
    await again.close(); // waits for the snapshot the change started
    expect(results).toHaveLength(1);
    expect(results[0]).toBeGreaterThan(newest.seq);
    expect(snapshotNames(root)).toHaveLength(2);
    // two copies now: the next change does not snapshot again
    const last = await Store.open(root, { journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    await last.append('INBOX', msg(7001));
    await last.close();
    expect(results).toHaveLength(1);
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
      expect(snapshots.autoNotBefore).toBeGreaterThan(monotonicMs() + 60_000);
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

  it('the wall clock stepped back a day after an automatic snapshot does not hold the next one back for that day', async () => {
    const root = tmpDir();
    const results: number[] = [];
    const store = await Store.open(root, { create: true, journalSegmentBytesMax: 4096, autoSnapshot: true, onSnapshot: (r, e) => { if (e) throw e; results.push(r!.seq); } });
    const snapshots = (internalsOf(store) as unknown as { snapshots: { lastSeq: number } }).snapshots;
    const waitFor = async (count: number) => { for (let i = 0; i < 500 && results.length < count; i++) await new Promise((r) => setTimeout(r, 10)); };
    let clock: { mockRestore(): void } | undefined;
    const saved = limits.snapshotAutoPauseFactor;
    try {
      limits.snapshotAutoPauseFactor = 0; // no pause of its own: only the clock could hold the next one back
      await store.createMailbox('INBOX');
      await store.createMailbox('Sent');
      snapshots.lastSeq = -limits.snapshotEveryRecords; // as if the last one were long ago
      await churn(store, 1, 10);
      await waitFor(1);
      expect(results).toHaveLength(1);
      clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() - 86_400_000);
      snapshots.lastSeq = -limits.snapshotEveryRecords; // grown enough again
      await churn(store, 11, 3);
      await waitFor(2);
      expect(results).toHaveLength(2);
      expect(results[1]).toBeGreaterThan(results[0]!);
    } finally {
      clock?.mockRestore();
      limits.snapshotAutoPauseFactor = saved;
      await store.close();
    }
  });
});
