// `systemctl reload mailstore` (the unit's ExecReload: SIGHUP, also logrotate's postrotate) while
// the daemon is still opening its store (recovery, or waiting for the store's lock): node's default
// for SIGHUP ends the process, and systemd counts an end by SIGHUP as clean, so Restart=on-failure
// did not start it again: mail refused, the unit inactive, nothing failed.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { finish, newStore, repoRoot, requireBuilt, start, tempDir } from '../cli/helpers.js';
import { until } from '../helpers/until.js';

describe('reload while the daemon starts', () => {
  requireBuilt();

  it('SIGHUP while serve waits for its store does not end it: it opens the store once it can, serves, and stops cleanly', async () => {
    const store = await newStore(['INBOX']);
    const log = join(tempDir('reload-'), 'serve.log');
    const holder = await Store.open(store); // the lock: serve waits for it, as it would during a long recovery
    let released = false;
    try {
      const daemon = start(['--store', store, '--wait', '60', 'serve', '--log', log]);
      const ended = finish(daemon);
      await until(() => existsSync(log) || daemon.exitCode !== null, 'the daemon\'s log', 60_000); // its logger is there: serve has begun
      expect(existsSync(log)).toBe(true);
      daemon.kill('SIGHUP');
      await sleep(500);
      expect(daemon.exitCode, 'serve ended on SIGHUP').toBeNull();
      expect(daemon.signalCode).toBeNull();
      await holder.close();
      released = true;
      // serving: its log says so once the socket's mode is set (the file alone appears a moment
      // before that, and a SIGTERM in that moment failed the start: exit 4, left alone)
      const listening = () => existsSync(log) && readFileSync(log, 'utf8').includes('"event":"listening"');
      await until(() => listening() || daemon.exitCode !== null, 'the daemon listening', 60_000);
      expect(listening(), 'serve did not start serving').toBe(true);
      expect(existsSync(join(store, 'run/mailstore.sock'))).toBe(true);
      daemon.kill('SIGTERM');
      const result = await ended;
      expect(result.code, result.stderr).toBe(0);
    } finally {
      if (!released) await holder.close();
    }
  });

  it('the unit starts again a daemon a reload ended before serve could take SIGHUP (node still loading)', () => {
    const service = readFileSync(join(repoRoot, 'packaging/mailstore.service'), 'utf8');
    expect(service).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(service).toMatch(/^RestartForceExitStatus=SIGHUP$/m);
  });
});
