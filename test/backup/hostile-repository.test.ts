// A repository someone else wrote or tampered with: files replaced by FIFOs, links or oversized
// files, and metadata files of the right name and checksums holding the wrong shape. Every command
// answers with a clear code (CORRUPT) in bounded time and memory, and what verifies still restores.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { contentName, decodeMetadataFile, encodeMetadataFile } from '../../src/backup/format.js';
import { Repository } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { keys } from '../../src/keys/index-keys.js';
import type { MailboxInfo } from '../../src/store/records.js';
import { dump, expectCode, expectRestoresExactly, fill, openRepo, source } from './helpers.js';

async function backedUp(dir: string): Promise<{ repo: Repository; before: unknown }> {
  const store = await Store.init(join(dir, 's'));
  await store.createMailbox('INBOX');
  await fill(store, 'INBOX', 5);
  const repo = await openRepo(join(dir, 'repo'));
  await runBackup(source(store), repo);
  const before = await dump(store);
  await store.close();
  return { repo, before };
}

const only = (dir: string) => join(dir, readdirSync(dir).filter((n) => !n.startsWith('.'))[0]!);

function replaceWithFifo(path: string): void {
  rmSync(path);
  execFileSync('mkfifo', [path]);
}

describe('repository files that are not regular files', () => {
  it('a FIFO at a snapshot\'s name is damage (CORRUPT), not a command that waits for ever', async () => {
    const { repo } = await backedUp(tmpDir('bkh'));
    replaceWithFifo(only(repo.path('snapshots')));
    await expectCode(repo.snapshots(), 'CORRUPT');
    const report = await checkRepository(repo, {});
    expect(report.findings.filter((f) => f.damage).map((f) => f.kind)).toContain('damaged-snapshot');
    await repo.close();
  });

  it('a link to /dev/zero at an index file\'s name, a FIFO at a data file\'s: CORRUPT, memory bounded; a FIFO in locks/ holds nothing', async () => {
    const dir = tmpDir('bkh');
    const { repo, before } = await backedUp(dir);
    const index = only(repo.path('index'));
    const indexBytes = (await nodeFileSystem.readFile(index));
    rmSync(index);
    symlinkSync('/dev/zero', index);
    execFileSync('mkfifo', [join(repo.path('locks'), 'f00f')]);
    // the index does not read: the data file is scanned, the restore is whole
    expect((await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r1'))).blobsFoundByScan).toBe(5);
    const restored = await Store.open(join(dir, 'r1'));
    expect(await dump(restored)).toEqual(before);
    await restored.close();
    rmSync(index);
    writeFileSync(index, indexBytes);
    await repo.close();
    replaceWithFifo(only(repo.path('data')));
    await expectCode(restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r2')), 'CORRUPT');
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings.filter((f) => f.damage).map((f) => f.kind)).toContain('damaged-data');
    await repo.close();
  });

  it('a config far larger than any config is damage (CORRUPT), not read whole', async () => {
    const dir = tmpDir('bkh');
    const { repo } = await backedUp(dir);
    await repo.close();
    writeFileSync(join(dir, 'repo', 'config'), Buffer.alloc(1024 * 1024, 0x20));
    await expectCode(Repository.open(nodeFileSystem, join(dir, 'repo')), 'CORRUPT');
  });
});

/** Replaces the repository's index files (and the held-ids table that caches them) with one holding `value`. */
function writeIndex(repo: Repository, value: unknown): void {
  for (const name of readdirSync(repo.path('index'))) rmSync(join(repo.path('index'), name));
  rmSync(repo.path('tips'), { recursive: true, force: true });
  const bytes = encodeMetadataFile('index', value, undefined);
  writeFileSync(repo.path('index', contentName(bytes)), bytes);
}

describe('metadata files of the right name and checksums, of the wrong shape', () => {
  it('an index file that is no index file, names a path outside the repository, or a record of 2 GiB: CORRUPT (never a bug\'s INTERNAL), the data is scanned and restores', async () => {
    const dir = tmpDir('bkh');
    const { repo, before } = await backedUp(dir);
    const data = readdirSync(repo.path('data')).find((n) => !n.startsWith('.'))!;
    const id = Buffer.alloc(32, 7);
    const hostile: unknown[] = [
      { files: 'x' },
      { files: [null] },
      { files: [{ file: '../../../../../etc/hostname', blobs: [[id, 12, 10]] }] },
      { files: [{ file: data, blobs: [[id, 12, 2 ** 31]] }] },
      { files: [{ file: data, blobs: [[id, -5, 10]] }] },
      { files: [{ file: data, blobs: [['x', 12, 10]] }] },
    ];
    for (const [n, value] of hostile.entries()) {
      writeIndex(repo, value);
      const report = await checkRepository(repo, {});
      const kinds = report.findings.filter((f) => f.damage).map((f) => f.kind);
      expect(kinds, JSON.stringify(value)).toContain('damaged-index');
      expect(report.findings.some((f) => f.path?.startsWith('/etc'))).toBe(false);
      const summary = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, `r${n}`));
      expect(summary.blobsFoundByScan).toBe(5);
      const restored = await Store.open(join(dir, `r${n}`));
      expect(await dump(restored)).toEqual(before);
      await restored.close();
      await repo.close();
    }
  });

  it('a snapshot whose parent is a path outside the repository is CORRUPT, not read there', async () => {
    const dir = tmpDir('bkh');
    const { repo } = await backedUp(dir);
    const bytes = encodeMetadataFile('snapshot', { version: 1, time: Date.now(), storeId: 'x', hostname: 'h', seq: 1, counts: {}, ops: [], parent: '../config', depth: 1, delta: {} }, undefined, 2);
    writeFileSync(repo.path('snapshots', contentName(bytes)), bytes);
    const error = await repo.readSnapshot(contentName(bytes)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/parent is not a snapshot id/) });
    await repo.close();
  });
});

describe('a snapshot whose state is not of the shape mailstore writes', () => {
  it('a uid that is no uid, one uid twice, a mailbox without a name, an op of no kind mailstore writes: CORRUPT naming the snapshot (never INTERNAL), and the restore writes nothing', async () => {
    const dir = tmpDir('bkh');
    const { repo } = await backedUp(dir);
    const name = readdirSync(repo.path('snapshots'))[0]!;
    const original = readFileSync(repo.path('snapshots', name));
    const edits: ((ops: { op: string; messages?: unknown[][]; info?: Record<string, unknown> }[]) => void)[] = [
      (ops) => { ops.find((o) => o.op === 'state.messages')!.messages![0]![0] = 'x'; },
      (ops) => { ops.find((o) => o.op === 'state.messages')!.messages![0]![0] = 2 ** 40; },
      (ops) => { const m = ops.find((o) => o.op === 'state.messages')!.messages!; m[1]![0] = m[0]![0]; },
      (ops) => { ops.find((o) => o.op === 'state.mailbox')!.info!.name = 7; },
      (ops) => { ops.splice(0, ops.length, {} as never); }, // restored as an empty store, without a word
      (ops) => { ops.push({ op: 'state.mailboxes' }); },
    ];
    for (const [n, edit] of edits.entries()) {
      for (const other of readdirSync(repo.path('snapshots'))) rmSync(repo.path('snapshots', other));
      rmSync(repo.path('tips'), { recursive: true, force: true });
      const snapshot = decodeMetadataFile<{ ops: never[] }>('snapshot', original, name, 'x', undefined);
      edit(snapshot.ops);
      const bytes = encodeMetadataFile('snapshot', snapshot, undefined);
      writeFileSync(repo.path('snapshots', contentName(bytes)), bytes);
      const error = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, `r${n}`)).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/not a snapshot mailstore wrote/) });
      expect(readdirSync(dir)).not.toContain(`r${n}`);
      const report = await checkRepository(repo, {});
      expect(report.findings.filter((f) => f.damage).map((f) => f.kind)).toContain('damaged-snapshot');
    }
    await repo.close();
  });
});

describe('metadata files whose CBOR decodes to far more than their size', () => {
  it('a snapshot of a few KiB holding a million empty maps (70 MB once decoded) is CORRUPT before it is decoded; check calls it damage and the restore writes nothing', async () => {
    const dir = tmpDir('bkh');
    const { repo } = await backedUp(dir);
    for (const other of readdirSync(repo.path('snapshots'))) rmSync(repo.path('snapshots', other));
    rmSync(repo.path('tips'), { recursive: true, force: true });
    const bytes = encodeMetadataFile('snapshot', { version: 1, time: Date.now(), storeId: 'x', hostname: 'h', seq: 1, counts: {}, ops: Array.from({ length: 1_000_000 }, () => ({})) }, undefined);
    expect(bytes.length).toBeLessThan(64 * 1024);
    writeFileSync(repo.path('snapshots', contentName(bytes)), bytes);
    const error = await restoreToNewStore(nodeFileSystem, repo, 'latest', join(dir, 'r')).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CORRUPT', message: expect.stringMatching(/would decode to more than/) });
    expect(readdirSync(dir)).not.toContain('r');
    const report = await checkRepository(repo, {});
    expect(report.findings.filter((f) => f.damage).map((f) => f.kind)).toContain('damaged-snapshot');
    await repo.close();
  });
});

describe('a snapshot of a mailbox that has given out its last uid', () => {
  it('uid 2^32 - 1 given out (uidNext 2^32, as XFER, undump or 4G appends leave it) is a healthy snapshot: check finds no damage, restore puts it back', async () => {
    const dir = tmpDir('bkh');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 2);
    const id = Buffer.from((await store.mailbox('INBOX')).id.replace(/-/g, ''), 'hex');
    await store.replication().commitOps(async ({ view }) => {
      const box = (await view.get<MailboxInfo>(keys.info(id)))!;
      return { ops: [{ op: 'state.mailbox', info: { ...box, uidNext: 0xffffffff } }], result: undefined };
    });
    await fill(store, 'INBOX', 1, 3);
    expect(await store.status('INBOX')).toMatchObject({ messages: 3, uidNext: 2 ** 32 });
    const repo = await openRepo(join(dir, 'repo'));
    await runBackup(source(store), repo);
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings.filter((f) => f.damage)).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });
});
