// Healing damaged blobs (docs/BACKUP.md, "Healing damaged blobs"): a record whose bytes were
// damaged stays damaged in every later snapshot unless something copies its blob again. `backup
// repair --read-data` lists such blobs in heal/, and the next backup copies each from the store
// while the store still has it; restore then takes the good copy, check no longer counts the
// message lost, and prune keeps the good copy.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { repairIndex } from '../../src/backup/repair.js';
import { Repository } from '../../src/backup/repository.js';
import { restoreIntoStore, restoreToNewStore } from '../../src/backup/restore.js';
import { RECORD_HEADER_BYTES } from '../../src/backup/format.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { json, requireBuilt, run } from '../cli/helpers.js';
import { dump, expectCode, fill, openRepo, recordOffsets, reopenAfterCrash, restoredDump, restoredWith, source, storeTarget } from './helpers.js';

const names = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : []);


/**
 * 12 messages, a full backup, 3 more, an incremental one (2 snapshots); then one byte of the body of
 * the 4th record of the first data file flipped. Returns its blob id (hex: unencrypted, the hash).
 */
async function damagedRecord(dir: string, secret?: Buffer) {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await fill(store, 'INBOX', 12, 1, 3000);
  const repo = await openRepo(join(dir, 'repo'), secret);
  const first = await runBackup(source(store), repo);
  const firstDump = await dump(store);
  const [data] = names(repo.path('data'));
  await fill(store, 'INBOX', 3, 100, 3000);
  const second = await runBackup(source(store), repo);
  expect(second.parent).toBe(first.snapshot);
  const path = repo.path('data', data!);
  const bytes = readFileSync(path);
  const at = recordOffsets(bytes)[3]!;
  const id = bytes.subarray(at + 4, at + 36).toString('hex');
  bytes[at + RECORD_HEADER_BYTES + 20] ^= 0x40;
  writeFileSync(path, bytes);
  return { store, repo, first: first.snapshot, second: second.snapshot, firstDump, id, dataFile: data! };
}

/** Every message's bytes by mailbox and uid. */
async function bodies(store: Store): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const box of await store.listMailboxes()) for await (const { info, body } of store.readMessages(box.name)) out.set(`${box.name} ${info.uid}`, Buffer.from(body));
  return out;
}

const restoredBodies = (repo: Repository, snapshot: string, to: string) => restoredWith(repo, snapshot, to, bodies);

const damageKinds = async (repo: Repository) => new Set((await checkRepository(repo, { readData: true })).findings.filter((f) => f.damage).map((f) => f.kind));

describe('healing a damaged record', () => {
  for (const encrypted of [false, true]) {
    it(`${encrypted ? 'encrypted: ' : ''}check reports it, repair --read-data lists it, the next incremental backup heals it; both snapshots restore byte for byte; check: the damaged copy, no message lost; prune keeps the good copy`, { timeout: 60_000 }, async () => {
      const dir = tmpDir('bkh');
      const { store, repo, first, firstDump } = await damagedRecord(dir, encrypted ? randomBytes(32) : undefined);
      const firstBodies = await bodies(store); // the first 12 are unchanged since
      const report = await checkRepository(repo, { readData: true });
      expect(report.findings.filter((f) => f.kind === 'damaged-blob').map((f) => f.message)).toEqual([expect.stringMatching(/INBOX uid 4: /)]);
      await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r0')), 'CORRUPT');

      // a backup before the repair keeps the damage (the gap): nothing copied again
      const kept = await runBackup(source(store), repo);
      expect(kept.newBlobs).toBe(0);
      expect(kept.healed).toBeUndefined();

      // repair without --read-data cannot see it (the record is listed); with it, it lists it
      expect(await repairIndex(repo)).toMatchObject({ blobsToHeal: 0 });
      expect(names(repo.path('heal'))).toEqual([]);
      const repaired = await repairIndex(repo, { readData: true });
      expect(repaired).toMatchObject({ readData: true, recordsDamaged: 1, blobsToHeal: 1 });
      expect(names(repo.path('heal'))).toEqual([repaired.healList]);
      expect((await checkRepository(repo)).findings.map((f) => f.kind)).toEqual(['heal-pending']);

      await fill(store, 'INBOX', 1, 200, 3000);
      const healing = await runBackup(source(store), repo);
      expect(healing).toMatchObject({ healed: 1, unhealed: 0, newBlobs: 2 });
      expect(healing.parent).toBe(kept.snapshot); // an incremental run
      expect(names(repo.path('heal'))).toEqual([]); // the list is gone once every entry is healed
      const after = await dump(store);
      const afterBodies = await bodies(store);
      // the next run has nothing to heal, and reads no list
      const steady = await runBackup(source(store), repo);
      expect(steady.healed).toBeUndefined();
      expect(steady.newBlobs).toBe(0);
      await store.close();

      expect(await restoredDump(repo, 'latest', join(dir, 'r1'))).toEqual(after);
      expect(await restoredBodies(repo, 'latest', join(dir, 'r2'))).toEqual(afterBodies);
      // the older snapshot names the same blob id: its restore takes the good copy too
      expect(await restoredDump(repo, first, join(dir, 'r3'))).toEqual(firstDump);
      const older = await restoredBodies(repo, first, join(dir, 'r4'));
      expect(older.size).toBe(12);
      for (const [key, body] of older) expect(body.equals(firstBodies.get(key)!), key).toBe(true);

      const checked = await checkRepository(repo, { readData: true });
      expect(new Set(checked.findings.filter((f) => f.damage).map((f) => f.kind))).toEqual(new Set(['damaged-data', 'damaged-copy']));
      expect(checked.findings.find((f) => f.kind === 'damaged-copy')!.message).toMatch(/INBOX uid 4: .*another record of the same blob verifies, so the message restores/);

      // prune keeps the good copy (it verifies the copies of a blob listed twice), drops the damaged one
      await forgetSnapshots(repo, { last: 100 }, { prune: true });
      expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
      expect(await restoredDump(repo, first, join(dir, 'r5'))).toEqual(firstDump);
      await repo.close();
    });
  }

  it('the damaged blob delivered again after the repair (a restore into the live store, a copy): the run heals it and says so', { timeout: 60_000 }, async () => {
    // RECOVERY.md's row: "the next mailstore backup says healed N of M". With the blob among the
    // journal's new ones, they were copied before the run read the heal list: the good copy was
    // written but not counted, and the run said "healed 0 of 1 ... the store no longer has them"
    const dir = tmpDir('bkh');
    const { store, repo, id } = await damagedRecord(dir);
    expect((await repairIndex(repo, { readData: true })).blobsToHeal).toBe(1);
    let body: Buffer | undefined;
    for await (const message of store.readMessages('INBOX')) if (message.info.hash === id) body = Buffer.from(message.body);
    await store.deleteMailbox('INBOX'); // deleted by mistake, then restored twice (under another name too)
    for (const box of ['INBOX', 'INBOX-restored']) {
      await store.createMailbox(box);
      await store.append(box, body!);
    }
    // the state read slow (a big store, a loaded disk), as the CLI's was here: the new blobs were
    // copied while it ran, before the heal list was taken in
    const slow = source(store);
    const stateSince = slow.stateSince!;
    const later = <T>(value: Promise<T>) => value.then((v) => new Promise<T>((done) => setTimeout(() => done(v), 200)));
    slow.stateSince = async (afterSeq) => {
      const since = await stateSince(afterSeq);
      return { ...since, messages: (id, uids) => later(since.messages(id, uids)), mailbox: (id) => later(since.mailbox(id)) };
    };
    const summary = await runBackup(slow, repo);
    expect(summary).toMatchObject({ healed: 1, unhealed: 0 });
    expect(names(repo.path('heal'))).toEqual([]);
    expect(await damageKinds(repo)).toEqual(new Set(['damaged-data', 'damaged-copy'])); // a good copy beside the damaged one
    await store.close();
    await repo.close();
  });

  it('the message was expunged from the store meanwhile: the run cannot heal it, says so, and nothing fails; it stays listed', { timeout: 60_000 }, async () => {
    const dir = tmpDir('bkh');
    const { store, repo, id, first } = await damagedRecord(dir);
    // the damaged blob's message, expunged and compacted away
    let uid = 0;
    for await (const { info } of store.readMessages('INBOX')) if (info.hash === id) uid = info.uid;
    expect(uid).toBe(4);
    expect((await repairIndex(repo, { readData: true })).blobsToHeal).toBe(1);
    await store.expunge('INBOX', [uid]);
    await store.compact({ deadRatio: 0.001 });
    await expectCode(store.fetchBlob(Buffer.from(id, 'hex')), 'NOT_FOUND');
    const summary = await runBackup(source(store), repo);
    expect(summary).toMatchObject({ healed: 0, unhealed: 1 });
    expect(names(repo.path('heal'))).toHaveLength(1);
    await expectCode(restoreToNewStore(nodeFileSystem, repo, first, join(dir, 'r0')), 'CORRUPT');
    const after = await dump(store);
    await store.close();
    // the latest snapshot does not need it: it restores
    expect(await restoredDump(repo, 'latest', join(dir, 'r1'))).toEqual(after);
    await repo.close();
  });

  it('forget drops from the list the blobs only forgotten snapshots needed; a blob a kept snapshot needs stays listed', { timeout: 60_000 }, async () => {
    const dir = tmpDir('bkh');
    const { store, repo, id } = await damagedRecord(dir);
    let uid = 0;
    for await (const { info } of store.readMessages('INBOX')) if (info.hash === id) uid = info.uid;
    expect((await repairIndex(repo, { readData: true })).blobsToHeal).toBe(1);
    await store.expunge('INBOX', [uid]);
    await store.compact({ deadRatio: 0.001 });
    // a whole snapshot that does not need it ends the chain: the older ones can go
    const latest = await runBackup(source(store), repo, { whole: true });
    expect(latest).toMatchObject({ healed: 0, unhealed: 1 });
    const after = await dump(store);
    await store.close();
    // keeping every snapshot: the list stays as it is
    expect((await forgetSnapshots(repo, { last: 100 })).healDropped).toBeUndefined();
    expect(names(repo.path('heal'))).toHaveLength(1);
    expect((await checkRepository(repo)).findings.map((f) => f.kind)).toEqual(['heal-pending']);
    // keeping only the latest: nothing kept needs the blob, so the entry goes and heal/ is empty
    const forgot = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(forgot.kept.map((k) => k.id)).toEqual([latest.snapshot]);
    expect(forgot.healDropped).toBe(1);
    expect(names(repo.path('heal'))).toEqual([]);
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    expect(await restoredDump(repo, 'latest', join(dir, 'r1'))).toEqual(after);
    await repo.close();
  });

  it('a power cut at every point of the healing run: check and restore handle every state, and the next run heals', { timeout: 300_000 }, async () => {
    const dir = tmpDir('bkhc');
    const { store, repo, first, firstDump } = await damagedRecord(dir);
    await repairIndex(repo, { readData: true });
    await fill(store, 'INBOX', 1, 200, 3000);
    await repo.close();
    const repoDir = join(dir, 'repo');
    const fs = new FaultFileSystem({ seed: Number(process.env.BACKUP_CRASH_SEED ?? 0x4ea1) });
    await fs.startRecording(repoDir);
    const recorded = await Repository.open(fs, repoDir);
    expect((await runBackup(source(store), recorded)).healed).toBe(1);
    await recorded.close();
    const count = Number(process.env.BACKUP_CRASH_STATES ?? 24);
    let states = 0;
    await fs.forEachCrash(async (crashed, report) => {
      states++;
      const again = await reopenAfterCrash(crashed);
      try {
        // the damaged record is all check may find; a message is lost only while the heal is not durable
        const kinds = await damageKinds(again);
        for (const kind of kinds) expect(['damaged-data', 'damaged-blob', 'damaged-copy'], report.reproduce).toContain(kind);
        const to = join(dir, `r${states}`);
        const older = restoredDump(again, first, to);
        if (kinds.has('damaged-blob')) await expectCode(older, 'CORRUPT');
        else expect(await older, report.reproduce).toEqual(firstDump);
        rmSync(to, { recursive: true, force: true });
        // the next run heals what the cut left unhealed (the list is still there until the heal was durable)
        const next = await runBackup(source(store), again);
        expect(next.unhealed ?? 0, report.reproduce).toBe(0);
        expect(await restoredDump(again, first, to), report.reproduce).toEqual(firstDump);
        rmSync(to, { recursive: true, force: true });
        expect((await damageKinds(again)).has('damaged-blob'), report.reproduce).toBe(false);
      } finally {
        await again.close();
      }
    }, { count, modes: ['all-lost', 'random', 'all-kept', 'data-lost'] });
    expect(states).toBe(count);
    await store.close();
  });
});

describe('a damaged record under a restore into a live store', () => {
  it('stops at that message naming it (the snapshot\'s mailbox and uid, and where it was going): the messages before it are in the new mailbox, exact, as docs/BACKUP.md says', { timeout: 60_000 }, async () => {
    const { store, repo } = await damagedRecord(tmpDir('bkh'));
    const error = await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { mailbox: 'INBOX', as: 'R' } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/^INBOX uid 4 \(restoring as R\): its blob is damaged/) });
    const again = await restoreIntoStore(storeTarget(store), 's', repo, 'latest', { selection: { mailbox: 'INBOX', as: 'R' } }).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'EXISTS' }); // which is why the first error says what it left
    expect((error as Error).message).toMatch(/; the restore stopped there: R holds the 3 messages restored before it \(delete it, or give another --as, to restore again\)$/);
    const all = await bodies(store);
    expect([...all.keys()].filter((k) => k.startsWith('R '))).toEqual(['R 1', 'R 2', 'R 3']);
    for (const uid of [1, 2, 3]) expect(all.get(`R ${uid}`)).toEqual(all.get(`INBOX ${uid}`));
    await store.close();
    await repo.close();
  });
});

describe('healing, the commands', () => {
  it('check exits 1; repair --read-data lists it (exit 1); backup says it healed 1; check --read-data then names only the damaged copy', { timeout: 90_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bkh');
    const { store, repo } = await damagedRecord(dir);
    await store.close();
    await repo.close();
    const repoDir = join(dir, 'repo');
    expect((await run(['backup', 'check', '--repo', repoDir, '--read-data'])).code).toBe(1);
    const repaired = await run(['backup', 'repair', '--repo', repoDir, '--read-data', '--json']);
    expect(repaired.code).toBe(1);
    expect(JSON.parse(repaired.stdout.toString())).toMatchObject({ blobsToHeal: 1, recordsDamaged: 1 });
    const line = await run(['--store', join(dir, 's'), 'backup', '--repo', repoDir]);
    expect(line.code, line.stderr.toString()).toBe(0);
    expect(line.stdout.toString()).toMatch(/healed 1 of 1 blobs/);
    expect(await json(['--store', join(dir, 's'), 'backup', '--repo', repoDir])).not.toHaveProperty('healed');
    const check = await run(['backup', 'check', '--repo', repoDir, '--read-data']);
    expect(check.stdout.toString()).toMatch(/damaged-copy/);
    expect(check.stdout.toString()).not.toMatch(/damaged-blob|missing-blob/);
    expect((await run(['restore', '--repo', repoDir, '--to', join(dir, 'r')])).code).toBe(0);
  });
});
