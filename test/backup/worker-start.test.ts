// A backup whose compression workers cannot be started at all (`new Worker` throws
// ERR_WORKER_INIT_FAILED: a thread limit, ulimit -u or a cgroup's pids.max, or out of memory) still
// writes a whole snapshot, compressed in the main thread, and says so in its summary; it failed
// INTERNAL ('EAGAIN', exit 70: "a bug") before. The store's worker starts fail by test/helpers/failing-worker.ts.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { failWorkerStarts } from '../helpers/failing-worker.js';
import { decompress } from 'fzstd';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { CompressPool } from '../../src/backup/compress-pool.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectRestoresExactly, fill, message, openRepo, recordFlags, source } from './helpers.js';

const workerStarts = { failFrom: Infinity, made: 0, terminated: 0 };

beforeEach(() => failWorkerStarts(workerStarts));

afterEach(() => {
  Object.assign(workerStarts, { failFrom: Infinity, made: 0, terminated: 0 });
  vi.restoreAllMocks();
});

describe('compression workers that cannot be started', () => {
  it('the pool keeps the workers it could start, or compresses in this thread with none, and says why', async () => {
    for (const failFrom of [0, 1]) {
      workerStarts.failFrom = failFrom;
      workerStarts.made = 0;
      const pool = new CompressPool('zstd', 2);
      try {
        expect(pool.threads).toBe(failFrom);
        const blobs = [message(1, 5000), message(2, 70_000)];
        const out = await pool.compress(blobs);
        out.forEach((c, i) => expect(Buffer.from(decompress(c)).equals(blobs[i]!)).toBe(true));
        expect(pool.lost?.message).toMatch(/EAGAIN/);
      } finally {
        await pool.close();
      }
    }
  });

  it('a backup: a whole snapshot compressed in the main thread, said in the summary, restored exactly, checked clean', async () => {
    const dir = tmpDir('bk-worker-start');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    for (let i = 0; i < 4; i++) await fill(store, 'INBOX', 40, 1 + i * 40, 40_000); // 6.4 MB: the workers would start
    workerStarts.failFrom = 0;
    const repo = await openRepo(join(dir, 'repo'));
    const summary = await runBackup(source(store), repo);
    expect(summary).toMatchObject({ messages: 160, newBlobs: 160 });
    expect(summary.compressionWorkerLost).toMatch(/EAGAIN/);
    expect(recordFlags(join(dir, 'repo')).every((flags) => flags === 4)).toBe(true); // every record zstd, none stored raw
    const report = await checkRepository(repo, { readData: true });
    expect(report.findings.filter((f) => f.damage)).toEqual([]);
    await expectRestoresExactly(store, repo, join(dir, 'r'));
  });
});
