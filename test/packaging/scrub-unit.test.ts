// The nightly scrub as mailstore-scrub.service runs it, beside (or without) the daemon of
// mailstore.service. With no daemon serving the store (stopped by an admin, between two restarts,
// at boot) it opened the store itself and held its lock for up to its 2 h budget: a daemon started
// meanwhile waited 30 s, failed LOCKED and was restarted until the scrub ended (mail refused).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { ok, repoRoot, requireBuilt, run, tempDir } from '../cli/helpers.js';
import { freshStore, INBOX, message, serve } from '../daemon/processes.js';

const unit = readFileSync(join(repoRoot, 'packaging/mailstore-scrub.service'), 'utf8');

/** The unit's ExecStart as arguments of the built CLI, on `store` instead of /var/lib/mailstore; `global` before the command. */
function scrubArgs(store: string, global: string[] = []): string[] {
  const words = /^ExecStart=(.*)$/m.exec(unit)![1].trim().split(/\s+/);
  expect(words.slice(0, 3)).toEqual(['/usr/bin/mailstore', '--store', '/var/lib/mailstore']);
  return ['--store', store, ...global, ...words.slice(3)];
}

/**
 * The environment systemd gives the unit: its EnvironmentFile= lines, /etc/default/mailstore read
 * from `defaults` (KEY=VALUE lines, a value in double quotes or bare; # comments).
 */
function unitEnvironment(defaults: string): Record<string, string> {
  const files = [...unit.matchAll(/^EnvironmentFile=-?(.*)$/gm)].map((m) => m[1].trim());
  if (!files.includes('/etc/default/mailstore')) return {};
  const pairs = defaults.split('\n').map((line) => /^([A-Za-z_][A-Za-z0-9_]*)=(?:"(.*)"|(.*))$/.exec(line.trim())).filter((m) => m !== null);
  return Object.fromEntries(pairs.map((m) => [m[1], m[2] ?? m[3]]));
}

/** Exit statuses systemd counts as the unit's success. */
const successes = () => [0, ...(/^SuccessExitStatus=(.*)$/m.exec(unit)?.[1].split(/\s+/).map(Number) ?? [])];

describe('the nightly scrub unit', () => {
  requireBuilt();

  it('with no daemon serving the store opens nothing, says it skipped, and exits with a status the unit counts as success', async () => {
    const store = await freshStore();
    const scrub = await run(scrubArgs(store));
    expect(scrub.code, scrub.stderr).toBe(EXIT.skipped);
    expect(successes()).toContain(EXIT.skipped);
    expect(scrub.stderr).toMatch(/scrub skipped: no daemon serves .*nothing was checked/);
    expect(existsSync(join(store, 'scrub-cursor.json')), 'the scrub opened the store').toBe(false);
    // a daemon started now takes the store at once (--no-wait: it was not held)
    const daemon = await serve(store, ['--no-wait']);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });

  it('with no store there (a partition not mounted, a wrong --store in a drop-in) fails as an open would, never skipped, and creates nothing', async () => {
    const empty = tempDir('scrub-unit-');
    const unmounted = await run(scrubArgs(empty));
    expect(unmounted.code, unmounted.stderr).toBe(EXIT.refused);
    expect(unmounted.stderr).toMatch(/UNMOUNTED: /);
    expect(readdirSync(empty)).toEqual([]);
    const missing = await run(scrubArgs(join(empty, 'typo')));
    expect(missing.code, missing.stderr).toBe(EXIT.notFound);
    expect(existsSync(join(empty, 'typo'))).toBe(false);
  });

  it('with the daemon serving runs in it, which writes the budgeted run\'s cursor', async () => {
    const store = await freshStore();
    const daemon = await serve(store);
    try {
      const scrub = await run(scrubArgs(store));
      expect(scrub.code, scrub.stderr).toBe(EXIT.ok);
      expect(scrub.stdout.toString()).toMatch(/clean/);
      expect(existsSync(join(store, 'scrub-cursor.json'))).toBe(true); // the budgeted run's cursor, written by the daemon
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect(await daemon.exited).toBe(0);
  });

  it('a process that holds the store but does not answer (a daemon on another --socket) is LOCKED, never skipped; MAILSTORE_SOCKET in /etc/default/mailstore, which the unit reads, finds it', async () => {
    const store = await freshStore();
    await ok(['append', INBOX, '-'], { store, input: message(1) });
    const elsewhere = join(store, '..', 'other.sock');
    const daemon = await serve(store, ['--socket', elsewhere]);
    try {
      const scrub = await run(scrubArgs(store, ['--wait', '1']));
      expect(scrub.code, scrub.stderr).toBe(EXIT.couldNotRun);
      expect(scrub.stderr).toMatch(/LOCKED: .*in use by process \d+ .*no daemon answers at .*MAILSTORE_SOCKET=PATH/);
      // as the package's /etc/default/mailstore tells the admin to set it beside --socket: the
      // unit reads that file, so its scrub finds the daemon there
      const shipped = readFileSync(join(repoRoot, 'packaging/default'), 'utf8');
      expect(shipped).toMatch(/^#MAILSTORE_SOCKET=\S+$/m);
      const defaults = shipped.replace(/^MAILSTORE_SERVE_OPTIONS=.*$/m, `MAILSTORE_SERVE_OPTIONS="--socket ${elsewhere}"`).replace(/^#MAILSTORE_SOCKET=.*$/m, `MAILSTORE_SOCKET=${elsewhere}`);
      const found = await run(scrubArgs(store), { env: unitEnvironment(defaults) });
      expect(found.code, found.stderr).toBe(EXIT.ok);
      expect(await ok(['fetch', INBOX, '1'], { store, env: { MAILSTORE_SOCKET: elsewhere } })).toBe(message(1).toString());
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect(await daemon.exited).toBe(0);
  });
});
