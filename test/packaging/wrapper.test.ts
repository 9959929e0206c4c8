// The package's /usr/bin/mailstore, laid out as the .deb installs it (usr/bin beside
// usr/lib/mailstore, here this checkout's build): it runs /usr/bin/node, the node of the package's
// dependency, not the first on PATH (systemd's puts /usr/local/bin first, where a node installed by
// hand ran the daemon with native bindings built for another node); with that node missing it
// says what to do, with an exit code that defers an MTA's delivery.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WRAPPER } from '../../tools/package-deb.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { SYSEXITS } from '../../src/cli/sysexits.js';
import { repoRoot, requireBuilt, tempDir } from '../cli/helpers.js';

/** ROOT/usr/bin/mailstore (the wrapper) and ROOT/usr/lib/mailstore (this checkout), and a stand-in `node` in ROOT/local/bin. */
function installed(): { cli: string; standIn: string; localBin: string } {
  const root = tempDir('wrapper-');
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  symlinkSync(repoRoot, join(root, 'usr/lib/mailstore'));
  const cli = join(root, 'usr/bin/mailstore');
  writeFileSync(cli, WRAPPER);
  chmodSync(cli, 0o755);
  const localBin = join(root, 'local/bin');
  mkdirSync(localBin, { recursive: true });
  const standIn = join(localBin, 'node');
  writeFileSync(standIn, '#!/bin/sh\necho "stand-in node: arenas=${MALLOC_ARENA_MAX:-unset} $1"\n');
  chmodSync(standIn, 0o755);
  return { cli, standIn, localBin };
}

function run(cli: string, args: string[], env: NodeJS.ProcessEnv) {
  const result = spawnSync(cli, args, { env, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.skipIf(!existsSync('/usr/bin/node'))('/usr/bin/mailstore', () => {
  requireBuilt();
  const { MALLOC_ARENA_MAX: _, MAILSTORE_NODE: __, ...bare } = process.env;

  it('runs /usr/bin/node, not a node found first on PATH (/usr/local/bin under systemd)', () => {
    const { cli, localBin } = installed();
    const result = run(cli, ['--help'], { ...bare, PATH: `${localBin}:${process.env.PATH ?? ''}` });
    expect(result.stdout).not.toContain('stand-in node');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Usage: mailstore/);
  });

  it('MAILSTORE_NODE names another node; the malloc arenas are two unless the admin chose otherwise', () => {
    const { cli, standIn } = installed();
    expect(run(cli, ['--help'], { ...bare, MAILSTORE_NODE: standIn }).stdout.trim()).toMatch(/^stand-in node: arenas=2 \S+\/usr\/bin\/\.\.\/lib\/mailstore\/dist\/src\/cli\/main\.cjs$/);
    expect(run(cli, ['--help'], { ...bare, MAILSTORE_NODE: standIn, MALLOC_ARENA_MAX: '8' }).stdout).toMatch(/arenas=8 /);
  });

  it('started with SIGHUP ignored (nohup), it tells the CLI, which node cannot (it resets the signal at start)', () => {
    const { cli, standIn } = installed();
    writeFileSync(standIn, '#!/bin/sh\necho "sighup=${MAILSTORE_SIGHUP_IGNORED:-unset}"\n');
    const env = { ...bare, MAILSTORE_NODE: standIn };
    const under = (trap: string) => spawnSync('/bin/sh', ['-c', `${trap}exec "$0" --help`, cli], { env, encoding: 'utf8' }).stdout.trim();
    expect(under("trap '' HUP; ")).toBe('sighup=1');
    expect(under('')).toBe('sighup=unset');
    expect(under("trap '' INT; ")).toBe('sighup=unset');
  });

  it('its node missing: a line saying what to install, exit 2 (could not run), 75 for append --sysexits so the MTA defers', () => {
    const { cli } = installed();
    const env = { ...bare, MAILSTORE_NODE: '/nonexistent/node' };
    const scrub = run(cli, ['--store', '/var/lib/mailstore', 'scrub', '--through-daemon'], env);
    expect(scrub.code).toBe(EXIT.couldNotRun); // never 75, which scrub --through-daemon means as "skipped"
    expect(scrub.stderr).toMatch(/^mailstore: IO: \/nonexistent\/node is missing or not executable: .*nodejs \(>= 20\.15\).*apt-get install --reinstall nodejs/);
    expect(run(cli, ['append', '--sysexits', 'INBOX', '-'], env).code).toBe(SYSEXITS.tempFail);
    expect(run(cli, ['append', 'INBOX', '-'], { ...env, MAILSTORE_SYSEXITS: '1' }).code).toBe(SYSEXITS.tempFail);
  });
});
if (!existsSync('/usr/bin/node')) it('no /usr/bin/node here: the wrapper tests skipped', () => console.log('skip: no /usr/bin/node'));
