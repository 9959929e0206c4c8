// Repository locks (src/backup/repository.ts, docs/BACKUP.md invariant 6): a lock of a live process
// keeps an exclusive one out (LOCKED); a lock of a process that was killed but never reaped (a
// zombie: its parent died with it where PID 1 does not reap) is stale, as a dead one's is.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockRepository } from '../../src/backup/repository.js';
import { tmpDir } from '../helpers/tmp.js';
import { expectCode, openRepo } from './helpers.js';

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
