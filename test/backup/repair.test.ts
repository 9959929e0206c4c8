// A damaged index file (docs/BACKUP.md, "Damaged index files"): restore and check find its blobs
// by scanning the data files no readable index file names, verified as any read; `backup repair`
// writes the index again and sets the damaged file aside; a power cut during the repair leaves a
// repository restore and check still handle; damage in the data too is still refused.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { repairIndex } from '../../src/backup/repair.js';
import { Repository } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { DATA_HEADER_BYTES, RECORD_HEADER_BYTES, encodeDataHeader, encodeRecord } from '../../src/backup/format.js';
import { scanRecords } from '../../src/backup/scan.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { backupLimits } from '../../src/limits.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { json, requireBuilt, run } from '../cli/helpers.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, reopenAfterCrash, source } from './helpers.js';

/** Flips bytes in the middle of a file (a bit rot the content hash finds). */
function damage(path: string, at = 0.5): void {
  const bytes = readFileSync(path);
  const i = Math.floor(bytes.length * at);
  bytes.fill(0, i, i + 8);
  bytes[i + 9] ^= 0x55;
  writeFileSync(path, bytes);
}

const names = (dir: string) => readdirSync(dir).filter((n) => !n.startsWith('.'));

/**
 * Alice's 12 messages in one run (its own data and index file), then bob's 5 (another data and
 * index file); alice's index file damaged. Returns the store's dump and alice's index file.
 */
async function damagedIndex(dir: string, secret?: Buffer) {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('user/alice/INBOX');
  await fill(store, 'user/alice/INBOX', 12, 1, 3000);
  const repo = await openRepo(join(dir, 'repo'), secret);
  await runBackup(source(store), repo);
  const [alice] = names(repo.path('index'));
  await store.createMailbox('user/bob/INBOX');
  await fill(store, 'user/bob/INBOX', 5, 100, 3000);
  await runBackup(source(store), repo);
  expect(names(repo.path('index'))).toHaveLength(2);
  damage(repo.path('index', alice!));
  return { store, repo, alice: alice! };
}

async function restoredDumpOf(repo: Repository, to: string) {
  const summary = await restoreToNewStore(nodeFileSystem, repo, 'latest', to);
  const back = await Store.open(to);
  try {
    return { summary, dump: await dump(back) };
  } finally {
    await back.close();
  }
}

const damageKinds = async (repo: Repository, readData = false) => (await checkRepository(repo, { readData })).findings.filter((f) => f.damage).map((f) => f.kind);

describe('a damaged index file', () => {
  for (const encrypted of [false, true]) {
    it(`${encrypted ? 'encrypted: ' : ''}restore finds its blobs by scanning and restores every message exactly; check names the file, not the messages; repair writes the index again and sets the file aside; later backups and restores work`, async () => {
      const dir = tmpDir('bkr');
      const { store, repo, alice } = await damagedIndex(dir, encrypted ? randomBytes(32) : undefined);
      // a later run builds on the parent (and the held-ids table) that name the damaged file: it copies nothing again
      await fill(store, 'user/bob/INBOX', 2, 200, 3000);
      const later = await runBackup(source(store), repo);
      expect(later.newBlobs).toBe(2);
      // ...but says so, and leaves no held-ids table that covers the damaged file
      expect(later.damagedIndexFiles).toEqual([alice]);
      for (const name of names(repo.path('tips')).filter((n) => n.startsWith('held.'))) {
        expect(readFileSync(repo.path('tips', name)).includes(Buffer.from(alice)), 'a table naming the damaged file').toBe(false);
      }
      const before = await dump(store);

      const { summary, dump: restored } = await restoredDumpOf(repo, join(dir, 'r1'));
      expect(restored).toEqual(before);
      expect(summary.blobsFoundByScan).toBe(12);
      expect(summary.damagedIndexFiles).toEqual([alice]);

      const report = await checkRepository(repo, { readData: true });
      expect(new Set(report.findings.filter((f) => f.damage).map((f) => f.kind))).toEqual(new Set(['damaged-index', 'scanned-data']));
      expect(report.findings.find((f) => f.kind === 'scanned-data')!.message).toMatch(/12 blobs snapshots need were found/);
      expect(report.summary.blobsFoundByScan).toBe(12);

      const repaired = await repairIndex(repo);
      expect(repaired).toMatchObject({ damagedIndexFiles: [alice], dataFilesScanned: 1, blobsIndexed: 12, recordsRefused: 0, damagedStretches: 0 });
      expect(repaired.setAside).toEqual([join(repo.dir, 'damaged', `index.${alice}`)]);
      // unencrypted, the map of the same records is the damaged file's own bytes: its name holds them again
      if (encrypted) expect(readdirSync(repo.path('index'))).not.toContain(alice);
      else expect(repaired.newIndex).toBe(alice);
      await repo.readMetadata('index', repaired.newIndex!);
      expect(existsSync(repaired.setAside[0]!)).toBe(true); // kept, never deleted
      expect(names(repo.path('tips')).filter((n) => n.startsWith('held.'))).toEqual([]);
      const clean = await checkRepository(repo, { readData: true });
      expect(clean.findings.map((f) => f.kind)).toEqual(['set-aside-index']);
      expect(clean.summary.blobsFoundByScan).toBe(0);

      // a repaired repository: the next run, its restore without any scan, forget --prune leave the file aside alone
      await fill(store, 'user/alice/INBOX', 1, 300, 3000);
      const next = await runBackup(source(store), repo);
      expect(next.newBlobs).toBe(1);
      const after = await dump(store);
      await store.close();
      const again = await restoredDumpOf(repo, join(dir, 'r2'));
      expect(again.dump).toEqual(after);
      expect(again.summary.blobsFoundByScan).toBeUndefined();
      await forgetSnapshots(repo, { last: 1 }, { prune: true });
      expect(existsSync(repaired.setAside[0]!)).toBe(true);
      expect((await checkRepository(repo, { readData: true })).findings.map((f) => f.kind)).toEqual(['set-aside-index']);
      expect((await restoredDumpOf(repo, join(dir, 'r3'))).dump).toEqual(after);
      await repo.close();
    });
  }

  it('a data file damaged too: its damaged records are still refused (CORRUPT naming the message), nothing wrong written; repair indexes only records that verify', async () => {
    const dir = tmpDir('bkr');
    const { store, repo, alice } = await damagedIndex(dir);
    const bob = await dump(store, (name) => name.startsWith('user/bob/'));
    await store.close();
    // alice's data file: the one no readable index file names; a record's body damaged, and another record's header
    const bobIndex = names(repo.path('index')).find((n) => n !== alice)!;
    const listed = new Set((await repo.readMetadata<{ files: { file: string }[] }>('index', bobIndex)).files.map((f) => f.file));
    const data = names(repo.path('data')).find((n) => !listed.has(n))!;
    const bytes = readFileSync(repo.path('data', data));
    const offsets: number[] = [];
    for (let at = DATA_HEADER_BYTES; at < bytes.length; at += RECORD_HEADER_BYTES + bytes.readUInt32BE(at + 40)) offsets.push(at);
    expect(offsets).toHaveLength(12);
    bytes[offsets[3]! + RECORD_HEADER_BYTES + 20] ^= 0x40; // a body: the header checks, the hash does not
    bytes[offsets[7]! + 10] ^= 0x01; // a header: the scan finds no record there, and goes on to the next
    writeFileSync(repo.path('data', data), bytes);

    const refused = restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r'));
    await expectCode(refused, 'CORRUPT');
    await expect(refused).rejects.toThrow(/user\/alice\/INBOX uid \d+: its blob (is damaged|.* is missing)/);
    expect(existsSync(join(dir, 'r'))).toBe(false);
    // bob's messages never needed the scan; alice's restore stops at the first damaged one
    await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'bob'), { selection: { user: 'bob' } });
    const back = await Store.open(join(dir, 'bob'));
    expect(await dump(back)).toEqual(bob);
    await back.close();

    const report = await checkRepository(repo, { readData: true });
    const damaged = report.findings.filter((f) => f.damage);
    // uid 8 in both snapshots (each names what it needs)
    expect(damaged.filter((f) => f.kind === 'missing-blob').map((f) => f.message)).toEqual([0, 1].map(() => expect.stringMatching(/user\/alice\/INBOX uid 8 .*nor in the 1 data files/)));
    expect(damaged.filter((f) => f.kind === 'damaged-blob').map((f) => f.message)).toEqual([expect.stringMatching(/user\/alice\/INBOX uid 4: /)]);
    expect(report.summary.blobsFoundByScan).toBe(11);

    const repaired = await repairIndex(repo);
    expect(repaired).toMatchObject({ blobsIndexed: 10, recordsRefused: 1, damagedStretches: 1 });
    const after = await checkRepository(repo, { readData: true });
    // the index no longer lists the two: check names them as missing, a restore refuses them, the rest restore
    expect(new Set(after.findings.filter((f) => f.damage).map((f) => f.kind))).toEqual(new Set(['damaged-data', 'missing-blob']));
    expect(new Set(after.findings.filter((f) => f.kind === 'missing-blob').map((f) => /uid (\d+)/.exec(f.message)![1]))).toEqual(new Set(['4', '8']));
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')), 'CORRUPT');
    expect(existsSync(join(dir, 'r'))).toBe(false);
    await repo.close();
  });

  it('a backup that looks a blob up finds the damaged file, copies the blob again and says so (it failed CORRUPT before)', async () => {
    const dir = tmpDir('bkr');
    const { store, repo, alice } = await damagedIndex(dir);
    for (const name of names(repo.path('tips')).filter((n) => n.startsWith('held.'))) rmSync(repo.path('tips', name));
    // another store with one of alice's messages: its first run looks every blob up in the index files
    const other = await Store.init(join(dir, 'o'));
    await other.createMailbox('INBOX');
    for await (const { body } of store.readMessages('user/alice/INBOX')) {
      await other.appendBatch('INBOX', [{ bytes: body }]);
      break;
    }
    await repo.close();
    const fresh = await openRepo(repo.dir); // a new process: no table in memory either
    const summary = await runBackup(source(other), fresh);
    expect(summary).toMatchObject({ newBlobs: 1, damagedIndexFiles: [alice] });
    await other.close();
    await store.close();
    await fresh.close();
  });

  it('a lost index file: the same recovery (restore scans, check names the data file, repair indexes it)', async () => {
    const dir = tmpDir('bkr');
    const { store, repo, alice } = await damagedIndex(dir);
    rmSync(repo.path('index', alice));
    const before = await dump(store);
    await store.close();
    expect(new Set(await damageKinds(repo))).toEqual(new Set(['scanned-data']));
    const { summary, dump: restored } = await restoredDumpOf(repo, join(dir, 'r'));
    expect(restored).toEqual(before);
    expect(summary.blobsFoundByScan).toBe(12);
    expect(summary.damagedIndexFiles).toBeUndefined();
    expect(await repairIndex(repo)).toMatchObject({ damagedIndexFiles: [], setAside: [], blobsIndexed: 12 });
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await repo.close();
  });

  it('a power cut at every point of a repair: restore still restores every message, check finds no lost message, the next repair makes check clean', { timeout: 300_000 }, async () => {
    const dir = tmpDir('bkrc');
    const { store, repo } = await damagedIndex(dir);
    const before = await dump(store);
    await store.close();
    await repo.close();
    const repoDir = join(dir, 'repo');
    const fs = new FaultFileSystem({ seed: Number(process.env.BACKUP_CRASH_SEED ?? 0x4e9a) });
    await fs.startRecording(repoDir);
    const recorded = await Repository.open(fs, repoDir);
    await repairIndex(recorded);
    await recorded.close();
    const count = Number(process.env.BACKUP_CRASH_STATES ?? (fs.logLength + 1) * 4 + 20);
    let states = 0;
    await fs.forEachCrash(async (crashed, report) => {
      states++;
      const again = await reopenAfterCrash(crashed); // after a reboot the repairer is gone
      try {
        const kinds = await damageKinds(again);
        expect(kinds.filter((k) => k !== 'damaged-index' && k !== 'scanned-data'), report.reproduce).toEqual([]);
        const to = join(dir, `r${states}`);
        expect((await restoredDumpOf(again, to)).dump, report.reproduce).toEqual(before);
        rmSync(to, { recursive: true });
        await repairIndex(again);
        expect((await checkRepository(again, { readData: true })).findings.filter((f) => f.damage), report.reproduce).toEqual([]);
      } finally {
        await again.close();
      }
    }, { count, modes: ['all-lost', 'random', 'all-kept', 'data-lost'] });
    expect(states).toBe(count);
  });
});

describe('scanRecords', () => {
  it('finds every record whose header checks, across windows smaller than a record, past a damaged header and a forged magic', async () => {
    const limits = backupLimits as { scanWindowBytes: number };
    const saved = limits.scanWindowBytes;
    limits.scanWindowBytes = 64; // smaller than most records: every header read and every search crosses windows
    try {
      const bodies = [10, 300, 0, 5000, 47, 48, 49, 1000].map((n, i) => Buffer.concat([Buffer.from(`m${i} MSBR `), randomBytes(n)]));
      const parts: Buffer[] = [encodeDataHeader(false)];
      const offsets: number[] = [];
      let at = DATA_HEADER_BYTES;
      for (const body of bodies) {
        const record = Buffer.concat(await encodeRecord(hashBytes(body), body, undefined, 'deflate'));
        offsets.push(at);
        parts.push(record);
        at += record.length;
      }
      const file = Buffer.concat([...parts, Buffer.from('MSBR torn')]);
      file[offsets[4]! + 44] ^= 1; // its CRC: the scan finds the next record by its magic
      const path = join(tmpDir('bkscan'), 'data');
      writeFileSync(path, file);
      const handle = await nodeFileSystem.open(path, 'read');
      const stats = { damagedStretches: 0 };
      const found: number[] = [];
      try {
        for await (const record of scanRecords(handle, file.length, path, stats)) {
          found.push(record.offset);
          expect(record.id.equals(hashBytes(bodies[offsets.indexOf(record.offset)]!))).toBe(true);
        }
      } finally {
        await handle.close();
      }
      expect(found).toEqual(offsets.filter((_, i) => i !== 4));
      expect(stats.damagedStretches).toBe(2); // the damaged header, and the torn tail
    } finally {
      limits.scanWindowBytes = saved;
    }
  });
});

describe('backup repair, the command', () => {
  it('restore says how many blobs it found by scanning; repair --json; then check exits 0', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkr');
    const { store, repo, alice } = await damagedIndex(dir);
    await store.close();
    await repo.close();
    const repoDir = join(dir, 'repo');
    expect((await run(['backup', 'check', '--repo', repoDir])).code).toBe(1);
    const warned = await run(['--store', join(dir, 's'), 'backup', '--repo', repoDir]);
    expect(warned.code).toBe(0);
    expect(warned.stderr.toString()).toMatch(/1 index files of the repository are damaged .*run 'mailstore backup repair'/);
    const restored = await run(['restore', '--repo', repoDir, '--to', join(dir, 'r')]);
    expect(restored.code).toBe(0);
    expect(restored.stdout.toString()).toMatch(/1 index files do not read .*12 blobs found by scanning/);
    const summary = await json(['backup', 'repair', '--repo', repoDir]);
    expect(summary).toMatchObject({ damagedIndexFiles: [alice], blobsIndexed: 12, recordsRefused: 0 });
    const check = await run(['backup', 'check', '--repo', repoDir, '--read-data']);
    expect(check.code, check.stderr.toString()).toBe(0);
    expect(check.stdout.toString()).toMatch(/info set-aside-index/);
    const nothing = await run(['backup', 'repair', '--repo', repoDir]);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout.toString()).toMatch(/nothing to repair/);
  });

  it('a damaged or lost config: an unencrypted repository gets a new one (--new-config), the damaged one kept in damaged/, and every snapshot restores exactly; an encrypted one is refused, nothing changed', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkr');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 8);
    const plain = await openRepo(join(dir, 'plain'));
    await runBackup(source(store), plain);
    const sealed = await openRepo(join(dir, 'sealed'), randomBytes(32));
    await runBackup(source(store), sealed);
    const before = await dump(store);
    await store.close();
    await plain.close();
    await sealed.close();
    const plainDir = join(dir, 'plain');
    const config = readFileSync(join(plainDir, 'config'));
    config[10] ^= 0x01; // one flipped bit: until now no snapshot of the repository read again
    writeFileSync(join(plainDir, 'config'), config);
    const refused = await run(['backups', '--repo', plainDir]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toMatch(/backup repair --repo .* --new-config/);
    const made = await json(['backup', 'repair', '--repo', plainDir, '--new-config']);
    expect(made).toMatchObject({ id: expect.any(String), setAside: expect.stringMatching(/damaged\/config\.\d+$/) });
    expect(readFileSync(made.setAside)).toEqual(config);
    const check = await run(['backup', 'check', '--repo', plainDir, '--read-data']);
    expect(check.code).toBe(0);
    expect(check.stdout.toString()).toMatch(/info set-aside-index: a config 'backup repair --new-config' replaced because it did not read/);
    expect((await run(['restore', '--repo', plainDir, '--to', join(dir, 'r1')])).code).toBe(0);
    const back = await Store.open(join(dir, 'r1'));
    expect(await dump(back)).toEqual(before);
    await back.close();
    expect((await run(['backup', 'repair', '--repo', plainDir, '--new-config'])).code).toBe(5); // a config that reads is left alone
    // lost: the same, nothing to set aside
    rmSync(join(plainDir, 'config'));
    expect((await run(['backups', '--repo', plainDir])).stderr).toMatch(/holds a backup repository's snapshots but no config .*--new-config/);
    expect(await json(['backup', 'repair', '--repo', plainDir, '--new-config'])).toEqual({ id: expect.any(String), version: 3, versionFrom: 'records' });
    expect((await run(['restore', '--repo', plainDir, '--to', join(dir, 'r2')])).code).toBe(0);
    // encrypted: its salt is gone with it
    const sealedDir = join(dir, 'sealed');
    writeFileSync(join(sealedDir, 'config'), 'garbage');
    const no = await run(['backup', 'repair', '--repo', sealedDir, '--new-config']);
    expect(no.code).toBe(3);
    expect(no.stderr).toMatch(/REFUSED: .* is encrypted/);
    expect(readFileSync(join(sealedDir, 'config'), 'utf8')).toBe('garbage');
    expect(existsSync(join(sealedDir, 'damaged'))).toBe(false);
  });
});
