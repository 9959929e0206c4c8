// The .deb's maintainer scripts (postinst, prerm, postrm) as dpkg runs them through a package's
// life: install, upgrade, remove, reinstall, purge, each step twice where dpkg may repeat it. They
// run against stand-ins for what they change on a host (systemctl, adduser, getent, install) in a
// directory of their own, so no root, no systemd and no real user is needed: the stand-ins keep
// the state (units running and enabled, the user) and a log of every call.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { POSTINST, POSTRM, PRERM } from '../../tools/package-deb.js';
import { tempDir } from '../cli/helpers.js';

const SCRIPTS = { postinst: POSTINST, prerm: PRERM, postrm: POSTRM };

/** Each stand-in logs its call, then acts on the state files in $WORLD. */
const STAND_INS: Record<string, string> = {
  systemctl: `
    case "$1" in
      is-active) [ -e "$WORLD/active-$3" ] ;;
      is-enabled) [ -e "$WORLD/enabled-$3" ] ;;
      start) shift; for unit; do touch "$WORLD/active-$unit"; done ;;
      stop) shift; for unit; do rm -f "$WORLD/active-$unit"; done ;;
      try-restart|restart|daemon-reload) ;;
      *) exit 1 ;;
    esac`,
  getent: '[ "$1" = passwd ] && [ -e "$WORLD/user-$2" ]',
  adduser: 'for last; do :; done; touch "$WORLD/user-$last"',
  useradd: 'for last; do :; done; touch "$WORLD/user-$last"',
  install: '',
  // as the real one: update-state notes the links a unit's [Install] makes; purge removes the noted ones
  'deb-systemd-helper': `
    action=$1; shift
    case "$action" in
      update-state) for unit; do touch "$WORLD/noted-$unit"; done ;;
      purge) for unit; do if [ -e "$WORLD/noted-$unit" ]; then rm -f "$WORLD/enabled-$unit" "$WORLD/noted-$unit"; fi; done ;;
      *) exit 1 ;;
    esac`,
};

interface Host {
  /** The host's root: /var/lib/mailstore is ROOT/var/lib/mailstore, /run is ROOT/run. */
  root: string;
  run(script: keyof typeof SCRIPTS, ...args: string[]): { code: number | null; output: string };
  active(unit: string): boolean;
  /** Its enablement links (multi-user.target.wants/, timers.target.wants/) are there. */
  enabled(unit: string): boolean;
  /** Every stand-in call so far, one line each ("systemctl stop mailstore.service"). */
  calls(): string[];
}

function host(state: { systemd: boolean; user?: boolean; running?: string[]; enabled?: string[] }): Host {
  const root = tempDir('maintscript-');
  const world = join(root, 'world');
  const bin = join(root, 'bin');
  mkdirSync(world);
  mkdirSync(bin);
  mkdirSync(join(root, 'run'));
  if (state.systemd) mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
  if (state.user) writeFileSync(join(world, 'user-mailstore'), '');
  for (const unit of state.running ?? []) writeFileSync(join(world, `active-${unit}`), '');
  for (const unit of state.enabled ?? []) writeFileSync(join(world, `enabled-${unit}`), '');
  for (const [name, body] of Object.entries(STAND_INS)) {
    writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "$WORLD/calls"\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const log = join(world, 'calls');
  return {
    root,
    run(script, ...args) {
      // the host's paths, under ROOT (the scripts name them absolutely)
      const text = SCRIPTS[script].replaceAll('/run/', `${root}/run/`).replaceAll('/var/lib/mailstore', `${root}/var/lib/mailstore`);
      const result = spawnSync('sh', ['-c', text, script, ...args], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, WORLD: world } });
      return { code: result.status, output: `${result.stdout}${result.stderr}` };
    },
    active: (unit) => existsSync(join(world, `active-${unit}`)),
    enabled: (unit) => existsSync(join(world, `enabled-${unit}`)),
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
  };
}

const DAEMON = 'mailstore.service';
const TIMER = 'mailstore-scrub.timer';
const SCRUB = 'mailstore-scrub.service';

describe('maintainer scripts', () => {
  it('remove, then install again: the daemon and the nightly scrub the removal stopped run again', () => {
    const h = host({ systemd: true, user: true, running: [DAEMON, TIMER], enabled: [DAEMON, TIMER] });
    expect(h.run('prerm', 'remove').code).toBe(0);
    expect([h.active(DAEMON), h.active(TIMER)]).toEqual([false, false]); // stopped before its files go
    expect(h.run('postrm', 'remove').code).toBe(0);
    // dpkg -i again: postinst configure with the version last configured (the package's config files stayed)
    expect(h.run('postinst', 'configure', '0.1.0').code).toBe(0);
    // they stayed stopped, the unit enabled: LMTP refused, Postfix deferring, until a reboot or an admin
    expect([h.active(DAEMON), h.active(TIMER)]).toEqual([true, true]);
    // configure again (dpkg --configure -a after a half-run): nothing more is started
    const before = h.calls().length;
    h.run('postinst', 'configure', '0.1.0');
    expect(h.calls().slice(before).filter((call) => call.startsWith('systemctl start'))).toEqual([]);
  });

  it('a removal stops a nightly scrub that is running too, before its files go', () => {
    // left running from removed files, holding the store (no daemon ran): a daemon started after a
    // reinstall waited for the lock, failed LOCKED and was restarted until the scrub's 2 h were up
    const h = host({ systemd: true, user: true, running: [TIMER, SCRUB], enabled: [TIMER] });
    expect(h.run('prerm', 'remove').code).toBe(0);
    expect([h.active(TIMER), h.active(SCRUB)]).toEqual([false, false]);
    h.run('postrm', 'remove');
    h.run('postinst', 'configure', '0.1.0');
    expect([h.active(TIMER), h.active(SCRUB)]).toEqual([true, false]); // the timer back, the night's run not started again
  });

  it('a daemon the admin stopped stays stopped across an upgrade and a remove and install; a running one is restarted on upgrade', () => {
    const stopped = host({ systemd: true, user: true, enabled: [DAEMON] });
    stopped.run('prerm', 'upgrade', '0.1.1');
    stopped.run('postinst', 'configure', '0.1.0');
    stopped.run('prerm', 'remove');
    stopped.run('postrm', 'remove');
    stopped.run('postinst', 'configure', '0.1.0');
    expect(stopped.active(DAEMON)).toBe(false);
    expect(stopped.calls().filter((call) => call.startsWith('systemctl start'))).toEqual([]);

    const running = host({ systemd: true, user: true, running: [DAEMON], enabled: [DAEMON] });
    running.run('prerm', 'upgrade', '0.1.1');
    expect(running.active(DAEMON)).toBe(true); // not stopped while the new files are unpacked: restarted once they are
    running.run('postinst', 'configure', '0.1.0');
    expect(running.calls()).toContain(`systemctl try-restart ${DAEMON}`);
  });

  it("an upgrade leaves the store directory's owner and mode as the admin set them (another service user, a symlink to /srv)", () => {
    const h = host({ systemd: true, user: true });
    expect(h.run('postinst', 'configure', '').code).toBe(0);
    expect(h.calls()).toContain(`install -d -o mailstore -g mailstore -m 0750 ${h.root}/var/lib/mailstore`); // a fresh install makes it
    mkdirSync(join(h.root, 'var/lib/mailstore'), { recursive: true }); // (the stand-in install makes nothing)
    const before = h.calls().length;
    // chown -R vmail: /var/lib/mailstore and User=vmail: each upgrade gave the directory back to
    // mailstore:mailstore 0750, and a daemon not started by systemd (whose StateDirectory= chowns
    // it again) could no longer open its store (ACCESS)
    expect(h.run('postinst', 'configure', '0.1.0').code).toBe(0);
    expect(h.calls().slice(before).filter((call) => call.startsWith('install'))).toEqual([]);
  });

  it('an upgrade that finds no store says to look at the mount, never to make a new store there', () => {
    const h = host({ systemd: true, user: true });
    const fresh = h.run('postinst', 'configure', '');
    expect(fresh.output).toMatch(/mailstore --store \S*\/var\/lib\/mailstore init/); // the first install: make one
    mkdirSync(join(h.root, 'var/lib/mailstore'), { recursive: true });
    // upgraded while its partition was not mounted: an admin who ran the init it printed made an
    // empty store on the root file system, served mail from it, and a later mount hid that mail
    const upgrade = h.run('postinst', 'configure', '0.1.0');
    expect(upgrade.code).toBe(0);
    expect(upgrade.output).not.toMatch(/ init/);
    expect(upgrade.output).toMatch(/holds no store: is its partition mounted\?/);
  });

  it('a purge says what it kept: the store, the user (and what it did not: the settings in /etc/default/mailstore)', () => {
    const h = host({ systemd: false, user: true });
    mkdirSync(join(h.root, 'var/lib/mailstore'), { recursive: true });
    writeFileSync(join(h.root, 'var/lib/mailstore/STORE'), 'a store');
    const purged = h.run('postrm', 'purge');
    expect(purged.code).toBe(0);
    // an `apt purge` by mistake said nothing: was the mail gone? (it never is: the store stays)
    expect(purged.output).toMatch(/\/var\/lib\/mailstore [^]*kept/);
    expect(purged.output).toMatch(/mailstore user/);
    expect(purged.output).toMatch(/\/etc\/default\/mailstore/);
    expect(existsSync(join(h.root, 'var/lib/mailstore/STORE'))).toBe(true);
    expect(h.run('postrm', 'remove').output).toBe(''); // a removal keeps everything, as always, silently
  });

  it('a purge removes the enablement links of the units the admin enabled (a removal keeps them, for an install again)', () => {
    // installed, then systemctl enable --now mailstore.service mailstore-scrub.timer, as README says
    const enabled = host({ systemd: true, user: true, running: [DAEMON, TIMER], enabled: [DAEMON, TIMER] });
    expect(enabled.run('postinst', 'configure', '').code).toBe(0);
    enabled.run('prerm', 'remove');
    enabled.run('postrm', 'remove');
    expect([enabled.enabled(DAEMON), enabled.enabled(TIMER)]).toEqual([true, true]);
    // left after a purge, they dangled (systemctl list-unit-files: a unit not found, wanted by its target)
    expect(enabled.run('postrm', 'purge').code).toBe(0);
    expect([enabled.enabled(DAEMON), enabled.enabled(TIMER)]).toEqual([false, false]);
  });

  it('a purge forgets what the removal stopped: the install after it starts nothing; without systemd (a container, a chroot) the scripts work too', () => {
    const h = host({ systemd: true, user: true, running: [DAEMON, TIMER], enabled: [DAEMON, TIMER] });
    for (const [script, ...args] of [['prerm', 'remove'], ['postrm', 'remove'], ['postrm', 'purge'], ['postinst', 'configure', '']] as const) {
      expect(h.run(script, ...args).code).toBe(0);
    }
    expect([h.active(DAEMON), h.active(TIMER)]).toEqual([false, false]);

    const bare = host({ systemd: false, user: true });
    for (const [script, ...args] of [['prerm', 'remove'], ['postrm', 'remove'], ['postrm', 'purge'], ['postinst', 'configure', '']] as const) {
      expect(bare.run(script, ...args).code).toBe(0);
    }
    expect(bare.calls().filter((call) => call.startsWith('systemctl'))).toEqual([]);
  });
});
