// --wait is for the whole command, across the tries a daemon starting in the meantime causes
// (context.ts openHandle): the time already waited is measured on the monotonic clock.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect, it, vi } from 'vitest';
import { daemonSocketPath, openHandle } from '../../src/cli/context.js';
import { tmpDir } from '../helpers/tmp.js';

it('a wall clock stepped back an hour while a command waits for the lock does not stretch --wait by that hour on its next try', async () => {
  const dir = tmpDir('wait-clock');
  const socket = daemonSocketPath(dir);
  mkdirSync(dirname(socket), { recursive: true });
  const given: number[] = [];
  const real = Date.now();
  const clock = vi.spyOn(Date, 'now');
  try {
    const opened = openHandle(dir, { lockWaitMs: 5000 }, async (_root, wait) => {
      given.push(wait.lockWaitMs!);
      if (given.length > 1) throw new Error('second try: enough');
      clock.mockImplementation(() => real - 3600_000); // NTP steps the clock back an hour
      writeFileSync(socket, ''); // a daemon starts meanwhile: its socket appears (it does not answer)
      wait.onLockWait!('another process', 10); // the lock wait sees it and tries the daemon again
      throw new Error('not reached');
    });
    await expect(opened).rejects.toThrow('second try: enough');
  } finally {
    clock.mockRestore();
  }
  expect(given).toHaveLength(2);
  expect(given[0]).toBeGreaterThan(4000); // minus the first look for a daemon
  expect(given[1]).toBeLessThanOrEqual(5000);
});
