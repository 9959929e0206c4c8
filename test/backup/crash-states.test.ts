// Power cuts during a backup and a forget --prune, on FaultFS's model of the repository: every
// crash state a POSIX file system allows (un-synced writes lost, torn or kept; un-synced names
// lost) must be a consistent repository (check --read-data finds no damage, so every snapshot it
// holds restores), hold the first snapshot until the forget began, and let the next prune finish.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { checkRepository } from '../../src/backup/check.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { Repository } from '../../src/backup/repository.js';
import { Store } from '../../src/store/store.js';
import { FaultFileSystem } from '../sim/faultfs.js';
import { tmpDir } from '../helpers/tmp.js';
import { fill, openRepo, reopenAfterCrash, source } from './helpers.js';

describe('backup crash states', () => {
  it('a backup and a forget --prune cut at every point: consistent, no snapshot lost before its forget, the next prune finishes', { timeout: 300_000 }, async () => {
    const dir = tmpDir('bkcs');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 12, 1, 1500);
    const repoDir = join(dir, 'repo');
    const first = await runBackup(source(store), await openRepo(repoDir));
    await store.expunge('INBOX', [1, 2, 3, 4]);
    await fill(store, 'INBOX', 4, 100, 1500);
    const fs = new FaultFileSystem({ seed: Number(process.env.BACKUP_CRASH_SEED ?? 0xbacc) });
    await fs.startRecording(repoDir);
    const repo = await Repository.open(fs, repoDir);
    const second = await runBackup(source(store), repo, { whole: true }); // a delta would keep the first through the forget (delta.test.ts)
    await forgetSnapshots(repo, { last: 1 }, { prune: true });
    await repo.close();
    await store.close();
    // every point in every mode (a drive that loses what was not flushed included), then random states
    const count = Number(process.env.BACKUP_CRASH_STATES ?? (fs.logLength + 1) * 4 + 60);
    let states = 0;
    const seen = { both: 0, secondOnly: 0, firstOnly: 0 };
    await fs.forEachCrash(async (crashed, report) => {
      states++;
      const again = await reopenAfterCrash(crashed); // after a reboot the writer is gone
      try {
        const damage = (await checkRepository(again, { readData: true })).findings.filter((f) => f.damage);
        expect(damage, report.reproduce).toEqual([]);
        const ids = await again.list('snapshots');
        const has = (id: string) => ids.includes(id);
        expect(has(first.snapshot) || has(second.snapshot), report.reproduce).toBe(true);
        if (!has(first.snapshot)) expect(has(second.snapshot), `${report.reproduce}: the first snapshot went before the second was durable`).toBe(true);
        seen[has(first.snapshot) && has(second.snapshot) ? 'both' : has(second.snapshot) ? 'secondOnly' : 'firstOnly']++;
        await forgetSnapshots(again, { last: 1 }, { prune: true });
        expect((await checkRepository(again, { readData: true })).findings, report.reproduce).toEqual([]);
      } finally {
        await again.close();
      }
    }, { count, modes: ['all-lost', 'random', 'all-kept', 'data-lost'] });
    expect(states).toBe(count);
    expect(seen.both).toBeGreaterThan(0);
    expect(seen.secondOnly).toBeGreaterThan(0);
    expect(seen.firstOnly).toBeGreaterThan(0);
  });
});
