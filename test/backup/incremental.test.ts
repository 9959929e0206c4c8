// Incremental backups (src/backup/incremental.ts, src/store/state-since.ts): the state built from
// the previous snapshot plus the store's changes must equal a read of the whole state after every
// kind of change; every reason to read the whole state instead; a parent forgotten and pruned, a
// damaged parent, and a SIGKILL while an incremental run copies.
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup, type BackupOptions, type BackupSource } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { Repository, type SnapshotFile } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import type { Op } from '../../src/store/records.js';
import { MailstoreError } from '../../src/errors.js';
import { hashBytes } from '../../src/hash/blake3.js';
import { backupLimits } from '../../src/limits.js';
import { Store, type StoreOptions } from '../../src/store/store.js';
import { bin, requireBuilt } from '../cli/helpers.js';
import { Rng } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, fill, openRepo, source } from './helpers.js';

/** The store's whole state now (as a full backup reads it), comparable with a snapshot's ops. */
async function wholeState(store: Store): Promise<string> {
  const state = await store.maintenance().snapshotState();
  const ops: Op[] = [];
  for await (const op of state.ops) if (op.op !== 'state.blobs') ops.push(op);
  return normalise(ops);
}

function normalise(ops: Op[]): string {
  return JSON.stringify(ops, (_key, value) => {
    if (value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data).toString('hex');
    if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
    return value;
  });
}

async function snapshotOps(repo: Repository, id: string): Promise<string> {
  return normalise((await repo.readSnapshot(id)).ops); // a delta snapshot applied to its parent
}

/** A backup that must have been built on the previous snapshot; its state must equal the whole state. */
async function incremental(store: Store, repo: Repository, parent: string, from: BackupSource = source(store), options: BackupOptions = {}): Promise<string> {
  const summary = await runBackup(from, repo, options);
  expect(summary.fullReadReason).toBeUndefined();
  expect(summary.parent).toBe(parent);
  expect(await snapshotOps(repo, summary.snapshot)).toBe(await wholeState(store));
  return summary.snapshot;
}

/** A new store (DIR/s, opened with `options`) with `mailboxes` made in it, and a new repository (DIR/repo). */
async function storeAndRepo(mailboxes: string[], options: StoreOptions = {}): Promise<{ dir: string; store: Store; repo: Repository }> {
  const dir = tmpDir('bki');
  const store = await Store.init(join(dir, 's'), options);
  const repo = await openRepo(join(dir, 'repo'));
  for (const name of mailboxes) await store.createMailbox(name);
  return { dir, store, repo };
}

/** The backup's snapshot holds the store's whole state; then both close. */
async function expectWholeThenClose(store: Store, repo: Repository, snapshot: string): Promise<void> {
  expect(await snapshotOps(repo, snapshot)).toBe(await wholeState(store));
  await store.close();
  await repo.close();
}

describe('incremental backups', () => {
  it('after every kind of change the state built from the parent equals the whole state, and restores exactly', async () => {
    const { dir, store, repo } = await storeAndRepo(['INBOX', 'Archive', 'user/alice/INBOX', 'Trash']);
    await fill(store, 'INBOX', 40);
    await fill(store, 'Archive', 20, 100);
    await fill(store, 'Trash', 10, 200);
    let last = (await runBackup(source(store), repo)).snapshot;
    expect(await snapshotOps(repo, last)).toBe(await wholeState(store));
    const rng = new Rng(0x1bac);
    const steps: [string, () => Promise<unknown>][] = [
      ['append', () => fill(store, 'INBOX', 5, 1000 + rng.int(1e6))],
      ['flags', () => store.setFlags('INBOX', [1 + rng.int(40), 1 + rng.int(40)], { add: ['\\Seen', 'x'] })],
      ['unflag', () => store.setFlags('Archive', [1, 2, 3], { remove: ['\\Seen'] })],
      ['expunge', () => store.expunge('INBOX', [2 + rng.int(30)])],
      ['copy', () => store.copy('Archive', [4, 5], 'user/alice/INBOX')],
      ['rename', () => store.renameMailbox('Archive', 'Archive2')],
      ['acl', () => store.setAcl('user/alice/INBOX', 'bob', 'lrs')],
      ['create', () => store.createMailbox(`new${rng.int(1e6)}`)],
      ['delete', () => store.deleteMailbox('Trash')], // purging expunges and change.purge
      ['nothing', async () => undefined],
      ['mixed', async () => { await fill(store, 'user/alice/INBOX', 3, 5000); await store.expunge('user/alice/INBOX', [1]); await store.setFlags('INBOX', [7], { add: ['\\Deleted'] }); }],
    ];
    for (const [name, change] of steps) {
      await change();
      last = await incremental(store, repo, last).catch((error) => { throw new Error(`after ${name}: ${error.message}`); });
    }
    const expected = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, last, join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(expected);
    await back.close();
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    await repo.close();
  });

  it('a mailbox whose counters disagree with the changes it was given is read whole, and the state is still exact', async () => {
    const { store, repo } = await storeAndRepo(['INBOX', 'Other']);
    await fill(store, 'INBOX', 20);
    await fill(store, 'Other', 5, 100);
    const first = (await runBackup(source(store), repo)).snapshot;
    await store.expunge('INBOX', [3, 4]);
    await store.setFlags('Other', [1], { add: ['y'] });
    // a source that loses the journal's word on INBOX's expunges (its change-log entries still name them)
    // and also hides the change-log entries: only the counters can tell
    const blind: BackupSource = {
      ...source(store),
      stateSince: async (afterSeq) => {
        const since = await store.maintenance().stateSince(afterSeq);
        for (const [key, touched] of since.touched) if (touched.uids.has(3)) since.touched.delete(key);
        const inbox = Buffer.from((await store.mailbox('INBOX')).id.replace(/-/g, ''), 'hex');
        const changesAfter = since.changesAfter;
        return { ...since, changesAfter: async (id, modseq) => (Buffer.from(id).equals(inbox) ? [] : changesAfter(id, modseq)) };
      },
    };
    const summary = await runBackup(blind, repo);
    expect(summary.parent).toBe(first);
    expect(summary.mailboxesReadWhole).toBe(1);
    await expectWholeThenClose(store, repo, summary.snapshot);
  });

  it('a snapshot file dated a year ahead (written under a wrong clock) is not taken for the newest: the next run builds on the newest one', async () => {
    const { store, repo } = await storeAndRepo(['INBOX']);
    await fill(store, 'INBOX', 5);
    const first = (await runBackup(source(store), repo)).snapshot;
    const ahead = new Date(Date.now() + 365 * 86_400_000);
    utimesSync(repo.path('snapshots', first), ahead, ahead);
    await fill(store, 'INBOX', 5, 100);
    const second = await incremental(store, repo, first); // the only earlier one
    await fill(store, 'INBOX', 5, 200);
    await incremental(store, repo, second); // was built on the first again: a year of deltas on it
    await store.close();
    await repo.close();
  });

  it('reads the whole state when the journal after the parent was retired, and when the parent does not read (check reports it)', async () => {
    const { dir, store, repo } = await storeAndRepo(['INBOX'], { journalSegmentBytesMax: 1 }); // a segment per record: a store snapshot retires them
    await fill(store, 'INBOX', 10);
    const first = (await runBackup(source(store), repo)).snapshot;
    for (let i = 0; i < 3; i++) { // store snapshots retire the journal the older kept ones cover
      await fill(store, 'INBOX', 4, 100 + i * 10);
      await store.snapshot();
    }
    await fill(store, 'INBOX', 2, 200);
    expect(store.maintenance().journal.firstSeq).toBeGreaterThan((await repo.readMetadata<SnapshotFile>('snapshot', first)).seq + 1);
    const second = await runBackup(source(store), repo);
    expect(second.parent).toBeUndefined();
    expect(second.fullReadReason).toMatch(/retired/);
    expect(await snapshotOps(repo, second.snapshot)).toBe(await wholeState(store));
    // the newest snapshot damaged: check finds it, the next run builds on none it cannot read
    const path = repo.path('snapshots', second.snapshot);
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] ^= 0x40;
    writeFileSync(path, bytes);
    const report = await checkRepository(repo);
    expect(report.findings.map((f) => [f.kind, f.path])).toContainEqual(['damaged-snapshot', path]);
    await fill(store, 'INBOX', 1, 300);
    const third = await runBackup(source(store), repo);
    expect(third.parent).not.toBe(second.snapshot);
    expect(await snapshotOps(repo, third.snapshot)).toBe(await wholeState(store));
    const expected = await dump(store);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, third.snapshot, join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(expected);
    await back.close();
    await repo.close();
  });

  it('a store rolled back (a copy of its directory put back) that went on is not built on the later snapshot of its other history', async () => {
    const dir = tmpDir('bki');
    const storeDir = join(dir, 's');
    let store = await Store.init(storeDir);
    const repo = await openRepo(join(dir, 'repo'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 10);
    await store.close();
    cpSync(storeDir, join(dir, 'copy'), { recursive: true });
    store = await Store.open(storeDir);
    await fill(store, 'INBOX', 3, 100);
    await store.setFlags('INBOX', [1], { add: ['a'] });
    const later = await runBackup(source(store), repo);
    expect((await repo.readMetadata<SnapshotFile>('snapshot', later.snapshot)).journalDigest).toMatch(/^[0-9a-f]{64}$/);
    await store.close();
    rmSync(storeDir, { recursive: true });
    cpSync(join(dir, 'copy'), storeDir, { recursive: true });
    store = await Store.open(storeDir);
    await fill(store, 'INBOX', 3, 200); // the same seqs as the lost history, other content
    await store.setFlags('INBOX', [2], { add: ['b'] });
    await store.setFlags('INBOX', [3], { add: ['c'] });
    const after = await runBackup(source(store), repo);
    expect(after.parent).toBeUndefined();
    expect(after.fullReadReason).toMatch(/rolled back/);
    await expectWholeThenClose(store, repo, after.snapshot);
  });

  it('an incremental snapshot written whole (--whole) whose parent was forgotten and pruned restores exactly', async () => {
    const { dir, store, repo } = await storeAndRepo(['INBOX']);
    await fill(store, 'INBOX', 30);
    const first = (await runBackup(source(store), repo)).snapshot;
    await store.expunge('INBOX', [1, 2, 3, 4, 5]);
    await fill(store, 'INBOX', 5, 100);
    const second = await incremental(store, repo, first, source(store), { whole: true }); // a delta would keep its parent (delta.test.ts)
    const forgot = await forgetSnapshots(repo, { last: 1 }, { prune: true });
    expect(forgot.removed.map((s) => s.id)).toEqual([first]);
    expect(forgot.prune?.blobsRemoved).toBe(5); // the expunged messages' blobs went with the parent
    expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    const expected = await dump(store);
    await fill(store, 'INBOX', 2, 200);
    const third = await incremental(store, repo, second); // and the next run builds on the survivor
    expect(third).not.toBe(second);
    await store.close();
    await restoreToNewStore(nodeFileSystem, repo, second, join(dir, 'r'));
    const back = await Store.open(join(dir, 'r'));
    expect(await dump(back)).toEqual(expected);
    await back.close();
    await repo.close();
  });

  it('SIGKILL while an incremental run copies: the repository stays consistent, the next run builds on the last whole snapshot', { timeout: 120_000 }, async () => {
    requireBuilt();
    const dir = tmpDir('bki');
    const storeDir = join(dir, 's');
    const repoDir = join(dir, 'repo');
    const store = await Store.init(storeDir);
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 200, 0, 20_000);
    const repo = await openRepo(repoDir);
    const first = (await runBackup(source(store), repo)).snapshot;
    await repo.close();
    await store.close();
    const rng = new Rng(0x1c5eed);
    let killed = 0;
    let lastWholeMs: number | undefined;
    for (let cycle = 0; cycle < 3; cycle++) {
      const s = await Store.open(storeDir);
      await fill(s, 'INBOX', 300, 1000 + cycle * 300, 20_000);
      await s.expunge('INBOX', [1 + cycle]);
      await s.close();
      // a run that finished before its kill sets the next kill inside its own duration (a fast machine)
      const delay = lastWholeMs === undefined ? 150 + rng.int(400) : Math.round(lastWholeMs * (0.3 + rng.int(50) / 100));
      const { code, ms } = await runCli(['--store', storeDir, 'backup', '--repo', repoDir], delay);
      if (code === null) killed++;
      else lastWholeMs = ms;
      const again = await Repository.open(nodeFileSystem, repoDir);
      expect((await checkRepository(again, { readData: true })).findings.filter((f) => f.damage)).toEqual([]);
      expect(await again.list('snapshots')).toContain(first);
      await again.close();
    }
    expect(killed).toBeGreaterThanOrEqual(1);
    const out = await cliJson(['--store', storeDir, 'backup', '--repo', repoDir, '--json']);
    expect(out.fullReadReason).toBeUndefined();
    expect(out.parent).toBeDefined();
    const s = await Store.open(storeDir);
    const reopened = await Repository.open(nodeFileSystem, repoDir);
    expect(await snapshotOps(reopened, out.snapshot)).toBe(await wholeState(s));
    await s.close();
    await reopened.close();
    expect(readdirSync(join(repoDir, 'snapshots')).filter((n) => !n.startsWith('.')).length).toBeGreaterThanOrEqual(2);
  });
});

describe('incremental runs: work started early', () => {
  it('the changed mailboxes\' change-log ranges are read at once: one that fails while another is awaited gives a whole read, not an unhandled rejection', async () => {
    const { store, repo } = await storeAndRepo([]);
    for (const name of ['A', 'B', 'C']) { await store.createMailbox(name); await fill(store, name, 4, name.charCodeAt(0) * 10); }
    await runBackup(source(store), repo);
    for (const name of ['A', 'B', 'C']) await store.setFlags(name, [2], { add: ['x'] });
    let calls = 0;
    const failing: BackupSource = {
      ...source(store),
      stateSince: async (afterSeq) => {
        const since = await store.maintenance().stateSince(afterSeq);
        const changesAfter = since.changesAfter;
        return {
          ...since,
          changesAfter: async (id, modseq) => {
            if (calls++ === 0) { await new Promise((done) => setTimeout(done, 50)); return changesAfter(id, modseq); }
            throw new MailstoreError('IO', 'range read failed (test)');
          },
        };
      },
    };
    const summary = await runBackup(failing, repo);
    expect(calls).toBe(3); // all three asked before the first answered
    expect(summary.fullReadReason).toMatch(/range read failed/);
    await expectWholeThenClose(store, repo, summary.snapshot);
  });

  it('start once the journal says how many new bytes may come (freshBytes); a copy through them, and one a damaged message stops, leave the repository right', async () => {
    const { dir, store, repo } = await storeAndRepo(['INBOX', 'Other']);
    const first = await fill(store, 'INBOX', 10);
    const parent = (await runBackup(source(store), repo)).snapshot;
    const seq = (await repo.readMetadata<SnapshotFile>('snapshot', parent)).seq;
    // no new blob: flags, an expunge, a copy, the same bytes delivered again
    await store.setFlags('INBOX', [1], { add: ['x'] });
    await store.expunge('INBOX', [2]);
    await store.copy('INBOX', [3], 'Other');
    await store.appendBatch('Other', [{ bytes: first[4]! }]);
    const freshBytes = async () => {
      const since = await store.maintenance().stateSince(seq);
      await since.close();
      return since.freshBytes;
    };
    expect(await freshBytes()).toBe(0);
    const added = await fill(store, 'Other', 6, 100, 3000);
    expect(await freshBytes()).toBe(added.reduce((sum, bytes) => sum + bytes.length, 0));
    const saved = backupLimits.inlineCompressBytesMax;
    backupLimits.inlineCompressBytesMax = 1000; // more than this is new: the workers start before the state is built
    try {
      const damaged = hashBytes(added[2]!);
      const failing: BackupSource = {
        ...source(store),
        fetchBlob: async (hash) => {
          if (hash.equals(damaged)) throw new MailstoreError('CORRUPT', 'blob damaged (test)');
          return store.fetchBlob(hash);
        },
        // read where the state says: the damaged one does not read there, so it is asked of fetchBlob
        fetchBlobsAt: async (blobs, lend) => (await store.fetchBlobsAt(blobs, lend)).map((bytes, i) => (blobs[i]!.hash.equals(damaged) ? undefined : bytes)),
      };
      await expect(runBackup(failing, repo)).rejects.toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/Other uid \d+ is damaged/) });
      expect(await repo.list('snapshots')).toEqual([parent]);
      const next = await runBackup(source(store), repo);
      expect(next.parent).toBe(parent);
      expect(next.newBlobs).toBeLessThanOrEqual(added.length); // what the failed run indexed is reused
      expect(await snapshotOps(repo, next.snapshot)).toBe(await wholeState(store));
      expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
      const restored = join(dir, 'restored');
      await restoreToNewStore(nodeFileSystem, repo, next.snapshot, restored);
      const back = await Store.open(restored);
      expect(await dump(back)).toEqual(await dump(store));
      await back.close();
    } finally {
      backupLimits.inlineCompressBytesMax = saved;
      await store.close();
      await repo.close();
    }
  });

  it('copies the journal\'s new blobs beside the state\'s reads: not one expunged since, not one the repository holds (another store\'s), and reads no expunged uid\'s message', async () => {
    const { dir, store, repo } = await storeAndRepo(['INBOX', 'Other']);
    await fill(store, 'INBOX', 10);
    const parent = (await runBackup(source(store), repo)).snapshot;
    const seq = (await repo.readMetadata<SnapshotFile>('snapshot', parent)).seq;
    // another store's message, backed up into the same repository first
    const other = await Store.init(join(dir, 'other'));
    await other.createMailbox('INBOX');
    const shared = (await fill(other, 'INBOX', 1, 500))[0]!;
    await runBackup(source(other), repo);
    await other.close();
    await store.appendBatch('Other', [{ bytes: shared }]);
    const added = await fill(store, 'Other', 3, 600);
    const gone = (await fill(store, 'INBOX', 1, 700))[0]!;
    await store.expunge('INBOX', [2, 11]); // an old message, and the one just added
    const since = await store.maintenance().stateSince(seq);
    await since.close();
    expect(since.fresh.map((blob) => Buffer.from(blob.hash).toString('hex')).sort()).toEqual([shared, ...added].map((b) => hashBytes(b).toString('hex')).sort());
    const inboxId = Buffer.from(since.mailboxes.find((info) => info.name.join('/') === 'INBOX')!.id).toString('hex');
    expect([...since.touched.get(inboxId)!.gone].sort((a, b) => a - b)).toEqual([2, 11]);
    const fetched: string[] = [];
    const read: string[] = [];
    const watched: BackupSource = {
      ...source(store),
      fetchBlob: (hash) => { fetched.push(hash.toString('hex')); return store.fetchBlob(hash); },
      fetchBlobsAt: (blobs, lend) => { fetched.push(...blobs.map((blob) => blob.hash.toString('hex'))); return store.fetchBlobsAt(blobs, lend); },
      stateSince: async (after) => {
        const s = await store.maintenance().stateSince(after);
        return { ...s, messages: (id, uids) => { read.push(...uids.map((uid) => `${id.toString('hex')} ${uid}`)); return s.messages(id, uids); } };
      },
    };
    try {
      const before = new Set(await repo.list('index'));
      const summary = await runBackup(watched, repo);
      expect(summary.parent).toBe(parent);
      expect(summary.newBlobs).toBe(3); // the shared blob was in the repository: read, not written again
      expect(fetched).not.toContain(hashBytes(gone).toString('hex'));
      expect(read.length).toBeGreaterThan(0);
      expect(read).not.toContain(`${inboxId} 2`); // INBOX's expunged uids: nothing read
      expect(read).not.toContain(`${inboxId} 11`);
      const indexed = (await Promise.all((await repo.list('index')).filter((n) => !before.has(n)).map((n) => repo.readMetadata<{ files: { blobs: [Uint8Array][] }[] }>('index', n))))
        .flatMap((index) => index.files.flatMap((f) => f.blobs.map(([id]) => Buffer.from(id).toString('hex'))));
      expect(indexed.sort()).toEqual(added.map((b) => hashBytes(b).toString('hex')).sort());
      expect(await snapshotOps(repo, summary.snapshot)).toBe(await wholeState(store));
      expect((await checkRepository(repo, { readData: true })).findings).toEqual([]);
    } finally {
      await store.close();
      await repo.close();
    }
  });
});

/** Runs the CLI and SIGKILLs it after `delayMs` (null: killed; else its exit code). */
/** Runs the CLI, SIGKILLed after `delayMs` unless it exits first: its exit code (null: killed) and how long it ran. */
function runCli(args: string[], delayMs: number): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [bin, ...args], { stdio: 'ignore' });
  const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
  return new Promise((done) => child.on('exit', (code) => { clearTimeout(timer); done({ code, ms: Date.now() - started }); }));
}

function cliJson(args: string[]): Promise<{ snapshot: string; parent?: string; fullReadReason?: string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk; });
  // 'close', not 'exit': the exit can be heard before the last of stdout, and half a JSON fails to parse
  return new Promise((done, fail) => child.on('close', (code) => (code === 0 ? done(JSON.parse(out)) : fail(new Error(`exit ${code}`)))));
}
