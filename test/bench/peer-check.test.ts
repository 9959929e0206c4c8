// The peer check's decision (issue 16), from an injected environment: root or not, apt-get or not,
// which peers setup.sh --check reports. Nothing is installed and no apt runs here.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkPeers } from '../../src/bench/corpus-run.js';
import { MailstoreError } from '../../src/errors.js';
import { PEER_NEEDS, STEP_NEEDS, ensurePeers, missingPeersText, needsOf, parseCheck, type PeerEnvironment, type PeerStatus } from '../../src/bench/peer-check.js';

const PEERS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../tools/bench/peers');

const ALL = ['dovecot', 'cyrus', 'b3sum', 'git', 'node', 'mailbench'];

/** A machine with `present` installed; `installs` is what setup.sh would manage to install. */
function machine(options: { root: boolean; aptGet: boolean; present: string[]; installs?: string[] }): PeerEnvironment & { installs: number } {
  const present = new Set(options.present);
  const env = {
    root: options.root, aptGet: options.aptGet, installs: 0,
    check: (): PeerStatus[] => ALL.map((name) => ({ name, ok: present.has(name), detail: present.has(name) ? '1.0' : `need ${name}` })),
    install: () => {
      env.installs++;
      for (const name of options.installs ?? ALL) present.add(name);
    },
  };
  return env;
}

describe('ensurePeers', () => {
  it('everything present: nothing installed, nothing missing', () => {
    const env = machine({ root: true, aptGet: true, present: ALL });
    expect(ensurePeers(env, { install: true })).toEqual({ installTried: false, missing: [] });
    expect(env.installs).toBe(0);
  });

  it('root with apt-get: setup.sh installs what is missing, then the check passes', () => {
    const env = machine({ root: true, aptGet: true, present: ['git', 'node', 'b3sum'] });
    expect(ensurePeers(env, { install: true })).toEqual({ installTried: true, missing: [] });
    expect(env.installs).toBe(1);
  });

  it('root with apt-get, but the install fails for one: that one is named', () => {
    const env = machine({ root: true, aptGet: true, present: ['git', 'node', 'b3sum'], installs: ['dovecot', 'mailbench'] });
    const check = ensurePeers(env, { install: true });
    expect(check.installTried).toBe(true);
    expect(check.missing.map((s) => s.name)).toEqual(['cyrus']);
    expect(missingPeersText(check, env, 'setup.sh', 'use --no-peers')).toMatch(/^peers missing:\n {2}cyrus: need cyrus\nsetup.sh could not install them/);
  });

  it('not root, or no apt-get: nothing is installed and every missing peer is named at once', () => {
    for (const [root, aptGet] of [[false, true], [true, false], [false, false]] as const) {
      const env = machine({ root, aptGet, present: ['git', 'node', 'b3sum'] });
      const check = ensurePeers(env, { install: true });
      expect(env.installs).toBe(0);
      expect(check).toEqual({ installTried: false, missing: expect.any(Array) });
      expect(check.missing.map((s) => s.name)).toEqual(['dovecot', 'cyrus', 'mailbench']);
      const text = missingPeersText(check, env, 'tools/bench/peers/setup.sh', 'measure mailstore alone with --no-peers');
      expect(text).toContain('  dovecot: need dovecot\n  cyrus: need cyrus\n  mailbench: need mailbench\n');
      expect(text).toContain(root && aptGet ? 'install them with tools/bench/peers/setup.sh' : 'run tools/bench/peers/setup.sh as root');
      expect(text).toMatch(/or measure mailstore alone with --no-peers$/);
      if (!aptGet) expect(text).toContain('no apt-get here');
    }
  });

  it('install: false (mailstore bench --corpus) never installs, even as root with apt-get', () => {
    const env = machine({ root: true, aptGet: true, present: ['git'] });
    expect(ensurePeers(env, { install: false, wanted: needsOf(['dovecot', 'git']) }).missing.map((s) => s.name)).toEqual(['dovecot', 'mailbench']);
    expect(env.installs).toBe(0);
  });

  it('only the wanted peers count; one setup.sh does not list is missing, not passed', () => {
    const env = machine({ root: false, aptGet: false, present: ['git', 'b3sum'] });
    expect(ensurePeers(env, { install: true, wanted: needsOf(['floor', 'git']) })).toEqual({ installTried: false, missing: [] });
    expect(ensurePeers(env, { install: true, wanted: ['exim'] }).missing).toEqual([{ name: 'exim', ok: false, detail: 'not listed by setup.sh --check' }]);
  });
});

describe('setup.sh --check output', () => {
  it('is parsed line by line (the format setup.sh prints)', () => {
    const text = 'dovecot    MISSING   need dovecot-core dovecot-lmtpd\ncyrus      ok        3.6.1 (master, lmtpd, reconstruct, mbexamine)\n[peers-setup] a log line\nb3sum      ok        1.3.1\n';
    expect(parseCheck(text)).toEqual([
      { name: 'dovecot', ok: false, detail: 'need dovecot-core dovecot-lmtpd' },
      { name: 'cyrus', ok: true, detail: '3.6.1 (master, lmtpd, reconstruct, mbexamine)' },
      { name: 'b3sum', ok: true, detail: '1.3.1' },
    ]);
  });

  it('needsOf maps run.sh peers to what setup.sh checks', () => {
    expect(needsOf(['floor', 'dovecot', 'cyrus', 'git'])).toEqual(['b3sum', 'dovecot', 'mailbench', 'cyrus', 'git']);
  });
});

describe('mailstore bench --corpus: its peers are optional, but a missing one is said at once', () => {
  const env = () => machine({ root: true, aptGet: true, present: ['git', 'b3sum', 'node'] });

  it('a peer named with --peers that is missing stops the run before anything is prepared (NOT_FOUND), naming it; nothing is installed', () => {
    const e = env();
    let thrown: unknown;
    try { checkPeers({ peers: ['dovecot', 'git'], peersNamed: true, peerEnvironment: e }); } catch (error) { thrown = error; }
    expect(thrown).toBeInstanceOf(MailstoreError);
    expect((thrown as MailstoreError).code).toBe('NOT_FOUND');
    expect((thrown as Error).message).toMatch(/dovecot: need dovecot\n {2}mailbench: need mailbench\n/);
    expect((thrown as Error).message).toContain('leave them out of --peers');
    expect(e.installs).toBe(0);
  });

  it('of the default list, the missing peers are left out and returned to be listed in the report; the present ones run', () => {
    const e = env();
    const result = checkPeers({ peers: ['dovecot', 'cyrus', 'git'], peersNamed: false, peerEnvironment: e });
    expect(result.peers).toEqual(['git']);
    expect([...result.missing.keys()]).toEqual(['dovecot', 'cyrus']);
    expect(result.missing.get('dovecot')!.map((s) => s.name)).toEqual(['dovecot', 'mailbench']);
    expect(e.installs).toBe(0);
  });

  it('everything there, or --no-peers: nothing to say', () => {
    expect(checkPeers({ peers: ['dovecot', 'cyrus', 'git'], peersNamed: true, peerEnvironment: machine({ root: false, aptGet: false, present: ALL }) }).missing.size).toBe(0);
    expect(checkPeers({ peers: [], peerEnvironment: machine({ root: false, aptGet: false, present: [] }) })).toEqual({ peers: [], missing: new Map() });
  });
});

describe('tools/bench/peers/setup.sh', () => {
  // A fresh machine's bench once installed Dovecot and Cyrus but not restic or Ceph (setup.sh did
  // not list them) and ran on, its backup and tier rows "not measured". Every tool a step needs
  // must be one setup.sh installs and reports, or the check above cannot stop the run.
  it('lists every tool the bench steps need in its --check report (installed or MISSING)', () => {
    const ran = spawnSync('bash', [join(PEERS_DIR, 'setup.sh'), '--check'], { encoding: 'utf8' });
    const listed = parseCheck(ran.stdout).map((s) => s.name);
    const needed = needsOf([...Object.keys(PEER_NEEDS), ...Object.values(STEP_NEEDS).flat()]);
    expect(needed).toEqual(expect.arrayContaining(['restic', 'ceph']));
    expect(needed.filter((name) => !listed.includes(name))).toEqual([]);
  });
});
