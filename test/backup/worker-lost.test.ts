// A backup whose compression workers cannot load their zstd binding (here: a path that is not
// there, as a binding built for another node would fail) still writes a whole snapshot: what the
// workers held and everything after is compressed in the main thread, the summary says so, and
// the snapshot restores exactly and checks clean with every byte read.
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectRestoresExactly, fill, openRepo, recordFlags, source } from './helpers.js';

vi.mock('../../src/backup/zstd.js', async (original) => ({
  ...await original<typeof import('../../src/backup/zstd.js')>(),
  zstdOneShotModule: '/nonexistent/zstd-napi/binding.node',
}));

describe('a backup whose compression workers die', () => {
  it('compresses in the main thread instead: a whole snapshot, said in the summary, restored exactly, checked clean', async () => {
    const dir = tmpDir('bk-worker-lost');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    for (let i = 0; i < 4; i++) await fill(store, 'INBOX', 40, 1 + i * 40, 40_000); // 6.4 MB: the workers start
    const repo = await openRepo(join(dir, 'repo'));
    expect(repo.codec).toBe('zstd');
    const summary = await runBackup(source(store), repo);
    expect(summary).toMatchObject({ messages: 160, newBlobs: 160 });
    expect(summary.compressionWorkerLost).toMatch(/nonexistent|Cannot find module/);
    expect(recordFlags(join(dir, 'repo')).every((flags) => flags === 4)).toBe(true); // every record zstd, none stored raw
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings.filter((f) => f.damage)).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });
});
