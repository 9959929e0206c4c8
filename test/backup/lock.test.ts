// Repository locks (src/backup/repository.ts, docs/BACKUP.md invariant 6): a lock of a live process
// keeps an exclusive one out (LOCKED); a lock of a process that was killed but never reaped (a
// zombie: its parent died with it where PID 1 does not reap) is stale, as a dead one's is.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runBackup } from '../../src/backup/backup.js';
import { forgetSnapshots } from '../../src/backup/forget.js';
import { lockRepository } from '../../src/backup/repository.js';
import { describeCommandLine } from '../../src/fs/process-files.js';
import { backupLimits, limits } from '../../src/limits.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectCode, fill, openRepo, source } from './helpers.js';

const lockOf = (pid: number) => JSON.stringify({ pid, hostname: hostname(), time: Date.now(), exclusive: false });

describe('repository locks', () => {
  it.runIf(process.platform === 'linux')('a zombie\'s lock is stale; a live process\'s lock keeps forget out (LOCKED)', async () => {
    const repo = await openRepo(join(tmpDir('bkl'), 'repo'));
    // `sleep 0` exits at once and stays a zombie: its parent (exec'd into `sleep 5`) never waits for it
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number((await new Promise<Buffer>((resolve) => parent.stdout.once('data', resolve))).toString().trim());
      await new Promise((resolve) => setTimeout(resolve, 200)); // it has exited by now
      writeFileSync(join(repo.dir, 'locks', 'a'.repeat(32)), lockOf(parent.pid!));
      await expectCode(lockRepository(repo, true), 'LOCKED'); // alive
      writeFileSync(join(repo.dir, 'locks', 'a'.repeat(32)), lockOf(zombie));
      const lock = await lockRepository(repo, true); // the zombie's lock is removed as stale
      await lock.release();
    } finally {
      parent.kill('SIGKILL');
      await repo.close();
    }
  });
});

describe('the holder named in LOCKED', () => {
  it('a lock records its command line, and another run\'s LOCKED names it; a lock of an older mailstore (no command) says forget/prune when exclusive', async () => {
    const repo = await openRepo(join(tmpDir('bkc'), 'repo'));
    try {
      const held = await lockRepository(repo, false);
      const [name] = readdirSync(join(repo.dir, 'locks'));
      const command = describeCommandLine(process.argv)!;
      expect(JSON.parse(readFileSync(join(repo.dir, 'locks', name), 'utf8')).command).toBe(command);
      const refused = await lockRepository(repo, true).then(() => undefined, (error: unknown) => error as Error);
      expect(refused?.message).toContain(`is in use by pid ${process.pid} on ${hostname()} since `);
      expect(refused?.message).toContain(`(${command}); try again`);
      await held.release();
      writeFileSync(join(repo.dir, 'locks', 'b'.repeat(32)), JSON.stringify({ pid: process.pid, hostname: hostname(), time: Date.now(), exclusive: true }));
      const older = await lockRepository(repo, false).then(() => undefined, (error: unknown) => error as Error);
      expect(older?.message).toMatch(/ \(forget\/prune\); try again/);
      rmSync(join(repo.dir, 'locks', 'b'.repeat(32)));
      // another host's command, garbled or hostile: one line, cut to our length
      writeFileSync(join(repo.dir, 'locks', 'c'.repeat(32)), JSON.stringify({ pid: process.pid, hostname: hostname(), time: Date.now(), exclusive: true, command: `mailstore\nforget\x1b[2J${'x'.repeat(500)}` }));
      const garbled = await lockRepository(repo, false).then(() => undefined, (error: unknown) => error as Error);
      expect(garbled?.message).toContain(`(mailstore?forget?[2J${'x'.repeat(limits.lockHolderCommandCharsMax - 20)})`);
    } finally {
      await repo.close();
    }
  });
});

describe('runs that start at the same moment', () => {
  it('of two forgets (exclusive), or a forget and a backup, written at once, exactly one gets the lock: never both refused', async () => {
    const repo = await openRepo(join(tmpDir('bkt'), 'repo'));
    try {
      for (const kinds of [[true, true], [true, false], [false, true]]) {
        const settled = await Promise.allSettled(kinds.map((exclusive) => lockRepository(repo, exclusive)));
        expect(settled.map((s) => s.status).sort(), `exclusive: ${kinds}`).toEqual(['fulfilled', 'rejected']);
        const refused = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
        expect(refused.reason.code).toBe('LOCKED');
        for (const s of settled) if (s.status === 'fulfilled') await s.value.release();
        expect(readdirSync(join(repo.dir, 'locks')), 'the refused run took its lock file away').toEqual([]);
      }
    } finally {
      await repo.close();
    }
  });
});

describe('locks dated ahead of this clock', () => {
  const lockAt = (host: string, pid: number, time: number) => JSON.stringify({ pid, hostname: host, time, exclusive: false });

  it("another host's lock dated a year ahead (its clock was wrong) is stale; one an hour ahead is kept; this host's live one is kept however dated", async () => {
    const repo = await openRepo(join(tmpDir('bkl'), 'repo'));
    const path = join(repo.dir, 'locks', 'b'.repeat(32));
    try {
      writeFileSync(path, lockAt('elsewhere.example', 4242, Date.now() + 365 * 86_400_000));
      const lock = await lockRepository(repo, true); // removed as stale: forget was LOCKED for that year
      await lock.release();
      expect(existsSync(path)).toBe(false);
      writeFileSync(path, lockAt('elsewhere.example', 4242, Date.now() + 3600_000)); // clocks an hour apart: still a holder
      await expectCode(lockRepository(repo, true), 'LOCKED');
      writeFileSync(path, lockAt(hostname(), process.ppid, Date.now() + 365 * 86_400_000)); // this clock stepped back under a live run
      await expectCode(lockRepository(repo, true), 'LOCKED');
    } finally {
      await repo.close();
    }
  });
});

describe('this host\'s locks judged by the holder\'s boot and start, not by age', () => {
  /** The boot id and a process's start (ticks since boot, /proc/PID/stat field 22), as a lock records them. */
  const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  const startOf = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  };

  it.runIf(process.platform === 'linux')('a running backup\'s lock written 2 hours ago by a clock since stepped forward keeps forget out; the same pid started at another time, or of another boot, is stale', async () => {
    const repo = await openRepo(join(tmpDir('bkl'), 'repo'));
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    const path = join(repo.dir, 'locks', 'd'.repeat(32));
    const lockAt = (fields: object) => JSON.stringify({ pid: holder.pid, hostname: hostname(), time: Date.now() - 2 * 3600_000, exclusive: false, ...fields });
    try {
      await new Promise((resolve) => holder.once('spawn', resolve));
      // the clock stepped 2 h forward since the holder's last refresh: by age (lockStaleMs, 30 min) it was stale and removed
      writeFileSync(path, lockAt({ boot: bootId(), started: startOf(holder.pid!) }));
      await expectCode(lockRepository(repo, true), 'LOCKED');
      expect(existsSync(path)).toBe(true);
      // the pid given again to another process since: the holder is gone
      writeFileSync(path, lockAt({ boot: bootId(), started: startOf(holder.pid!) - 1, time: Date.now() }));
      await (await lockRepository(repo, true)).release();
      expect(existsSync(path)).toBe(false);
      // written in an earlier boot of this host
      writeFileSync(path, lockAt({ boot: '00000000-0000-4000-8000-000000000000', started: startOf(holder.pid!), time: Date.now() }));
      await (await lockRepository(repo, true)).release();
      expect(existsSync(path)).toBe(false);
      // what this mailstore's locks record
      const own = await lockRepository(repo, false);
      const [name] = readdirSync(join(repo.dir, 'locks'));
      expect(JSON.parse(readFileSync(join(repo.dir, 'locks', name), 'utf8'))).toMatchObject({ pid: process.pid, boot: bootId(), started: startOf(process.pid) });
      await own.release();
    } finally {
      holder.kill('SIGKILL');
      await repo.close();
    }
  });
});

describe('another host\'s lock under a wrong clock here', () => {
  it('with this clock 2 days behind or 2 hours ahead of the repository\'s file times, a live lock of another host is not judged by time: LOCKED, kept', async () => {
    const repo = await openRepo(join(tmpDir('bkl'), 'repo'));
    const path = join(repo.dir, 'locks', 'e'.repeat(32));
    const realNow = Date.now.bind(Date);
    try {
      for (const offsetMs of [-2 * 86_400_000, 2 * 3600_000]) {
        // refreshed just now by a backup on another host whose clock is right
        writeFileSync(path, JSON.stringify({ pid: 4242, hostname: 'elsewhere.example', time: realNow(), exclusive: false }));
        // this host's clock: behind, the lock looked 2 days ahead (clockAheadMaxMs: stale); ahead, 2 h old (lockStaleMs: stale)
        const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offsetMs);
        try {
          const refused = await lockRepository(repo, true).then(() => undefined, (error: unknown) => error as { code: string; message: string });
          expect(refused?.code).toBe('LOCKED');
          expect(refused?.message).toMatch(/in use by pid 4242 on elsewhere\.example .*this host's clock, .*, disagrees with the repository's file times/);
        } finally {
          clock.mockRestore();
        }
        expect(existsSync(path), `offset ${offsetMs} ms`).toBe(true);
      }
      // this clock right, the same lock 2 h without a refresh: stale as before
      writeFileSync(path, JSON.stringify({ pid: 4242, hostname: 'elsewhere.example', time: realNow() - 2 * 3600_000, exclusive: false }));
      await (await lockRepository(repo, true)).release();
      expect(existsSync(path)).toBe(false);
    } finally {
      await repo.close();
    }
  });
});

describe('a run whose lock may no longer be its own publishes nothing', () => {
  async function storeAndRepo() {
    const dir = tmpDir('bkl');
    const store = await Store.init(join(dir, 's'));
    await store.createMailbox('INBOX');
    await fill(store, 'INBOX', 5, 1, 2000);
    return { store, repo: await openRepo(join(dir, 'repo')) };
  }

  it('its lock file removed mid-run (another run took it for stale): LOCKED, no snapshot; the next run saves one', async () => {
    const { store, repo } = await storeAndRepo();
    const locks = join(repo.dir, 'locks');
    await expectCode(runBackup(source(store), repo, { onPlan: () => { for (const name of readdirSync(locks)) rmSync(join(locks, name)); } }), 'LOCKED');
    expect(await repo.snapshots()).toEqual([]);
    expect((await runBackup(source(store), repo)).messages).toBe(5);
    expect(await repo.snapshots()).toHaveLength(1);
    await store.close();
    await repo.close();
  });

  it('a lock file removed and then due for a refresh is not written again: the lock stays lost (LOCKED), so what another run did meanwhile is never hidden', async () => {
    const { store, repo } = await storeAndRepo();
    const saved = { ...backupLimits };
    try {
      backupLimits.lockRefreshMs = 20;
      const lock = await lockRepository(repo, false);
      const locks = join(repo.dir, 'locks');
      for (const name of readdirSync(locks)) rmSync(join(locks, name));
      await new Promise((resolve) => setTimeout(resolve, 150)); // several refreshes due
      expect(readdirSync(locks).filter((n) => !n.startsWith('.'))).toEqual([]);
      await expectCode(lock.held(), 'LOCKED');
      await lock.release();
    } finally {
      Object.assign(backupLimits, saved);
    }
    await store.close();
    await repo.close();
  });

  it('its own silence is timed on the monotonic clock: a wall clock stepped forward does not lose a lock refreshed on time, one stepped back does not hide the refreshes it missed', async () => {
    const { store, repo } = await storeAndRepo();
    const saved = { ...backupLimits };
    let offsetMs = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => new Date().getTime() + offsetMs);
    try {
      backupLimits.lockRefreshMs = 60 * 60 * 1000; // no refresh comes within the test
      backupLimits.lockStaleMs = backupLimits.lockRefreshMs + 1500; // silent for 1.5 s: may be another's
      const fresh = await lockRepository(repo, false);
      offsetMs = 86_400_000; // a VM resumed a day later: no time passed for this run
      await fresh.held();
      await fresh.release();
      offsetMs = 0;
      const silent = await lockRepository(repo, false);
      offsetMs = -3600_000; // NTP steps back an hour
      await new Promise((resolve) => setTimeout(resolve, 1600));
      await expectCode(silent.held(), 'LOCKED');
      await silent.release();
    } finally {
      clock.mockRestore();
      Object.assign(backupLimits, saved);
    }
    await store.close();
    await repo.close();
  });

  it('its lock not refreshed for most of lockStaleMs (the repository unwritable): LOCKED before the snapshot, and prune removes nothing', async () => {
    const { store, repo } = await storeAndRepo();
    await runBackup(source(store), repo);
    const saved = { ...backupLimits };
    try {
      backupLimits.lockRefreshMs = 60 * 60 * 1000; // no refresh comes within the test
      backupLimits.lockStaleMs = backupLimits.lockRefreshMs; // no margin left: stale to others from the first millisecond
      await fill(store, 'INBOX', 3, 100, 2000);
      await expectCode(runBackup(source(store), repo, { onPlan: () => { const until = Date.now() + 5; while (Date.now() < until); } }), 'LOCKED');
      expect(await repo.snapshots()).toHaveLength(1);
      const before = readdirSync(join(repo.dir, 'data')).sort();
      await expectCode(forgetSnapshots(repo, { last: 1 }, { prune: true }), 'LOCKED');
      expect(readdirSync(join(repo.dir, 'data')).sort()).toEqual(before);
    } finally {
      Object.assign(backupLimits, saved);
    }
    expect((await runBackup(source(store), repo)).messages).toBe(8);
    await store.close();
    await repo.close();
  });
});
