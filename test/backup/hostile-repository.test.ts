// A repository someone else wrote or tampered with: files replaced by FIFOs, links or oversized
// files, and metadata files of the right name and checksums holding the wrong shape. Every command
// answers with a clear code (CORRUPT) in bounded time and memory, and what verifies still restores.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { Repository } from '../../src/backup/repository.js';
import { restoreToNewStore } from '../../src/backup/restore.js';
import { nodeFileSystem } from '../../src/fs/node-fs.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { dump, expectCode, fill, openRepo, source } from './helpers.js';

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
