// Whether the peers a benchmark compares with are installed, before anything is measured (issue 16:
// the harness used to warn and measure on with half the peers, and a goal row then said "not
// measured" an hour later). `npm run bench` installs them itself when it can (root and apt-get:
// tools/bench/peers/setup.sh knows how) and otherwise stops; `mailstore bench --corpus` names the
// missing ones at once. The decision is a pure function of an injected environment, so it is
// tested without root, apt or the peers (test/bench/peer-check.test.ts).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

/** One line of `setup.sh --check`: a tool or account and whether it is there. */
export interface PeerStatus {
  name: string;
  ok: boolean;
  /** setup.sh's words: the version found, or what to install. */
  detail: string;
}

/** What ensurePeers needs to know and do; the real one runs setup.sh (peerEnvironment). */
export interface PeerEnvironment {
  root: boolean;
  aptGet: boolean;
  /** `setup.sh --check`: every tool's status (installs nothing). */
  check(): PeerStatus[];
  /** `setup.sh`: installs what is missing with apt-get (only called as root with apt-get). */
  install(): void;
}

export interface PeerCheck {
  /** setup.sh was run to install what was missing. */
  installTried: boolean;
  /** Wanted and still missing after any install: the run must not measure as if they were there. */
  missing: PeerStatus[];
}

/**
 * What each peer of run.sh needs from setup.sh's list: the floor is b3sum (cat and dd are
 * everywhere), Dovecot refuses mail access as root so it needs the mailbench user.
 */
export const PEER_NEEDS: Record<string, string[]> = {
  floor: ['b3sum'],
  dovecot: ['dovecot', 'mailbench'],
  cyrus: ['cyrus'],
  git: ['git'],
  replication: ['cyrus', 'cyrus-repl', 'dovecot', 'mailbench'],
};

/**
 * What `npm run bench`'s steps outside run.sh compare with: the backup step runs peers/restic.sh
 * as mailbench, the tier step a one-node Ceph. setup.sh installs and lists these too, so a fresh
 * machine gets them instead of a report whose backup and tier rows say "not measured".
 */
export const STEP_NEEDS: Record<string, string[]> = {
  backup: ['restic', 'mailbench'],
  tier: ['ceph'],
};

/** The setup.sh names behind the run.sh peers `peers` (unknown names stand for themselves). */
export function needsOf(peers: string[]): string[] {
  return [...new Set(peers.flatMap((p) => PEER_NEEDS[p] ?? [p]))];
}

/**
 * Checks the peers named by `wanted` (setup.sh names; undefined: everything setup.sh lists).
 * With `install` and root and apt-get, setup.sh installs what is missing first; a tool setup.sh
 * does not list counts as missing (a typo must not pass as installed).
 */
export function ensurePeers(env: PeerEnvironment, options: { wanted?: string[]; install: boolean }): PeerCheck {
  const missingOf = (statuses: PeerStatus[]): PeerStatus[] => {
    if (!options.wanted) return statuses.filter((s) => !s.ok);
    return options.wanted.map((name) => statuses.find((s) => s.name === name) ?? { name, ok: false, detail: 'not listed by setup.sh --check' }).filter((s) => !s.ok);
  };
  const missing = missingOf(env.check());
  if (missing.length === 0) return { installTried: false, missing };
  if (!options.install || !env.root || !env.aptGet) return { installTried: false, missing };
  env.install();
  return { installTried: true, missing: missingOf(env.check()) };
}

/** The message naming each missing peer and what to do about it. */
export function missingPeersText(check: PeerCheck, env: Pick<PeerEnvironment, 'root' | 'aptGet'>, setupPath: string, alternative: string): string {
  const lines = check.missing.map((s) => `  ${s.name}: ${s.detail}`);
  const why = check.installTried ? `${setupPath} could not install them (its output is above)`
    : env.root && env.aptGet ? `install them with ${setupPath}`
      : `run ${setupPath} as root (it uses apt-get) to install them${env.aptGet ? '' : ' (no apt-get here: install the packages it names by hand)'}`;
  return `peers missing:\n${lines.join('\n')}\n${why}, or ${alternative}`;
}

/** Parses `setup.sh --check` output: "NAME  ok|MISSING  detail" per line. */
export function parseCheck(stdout: string): PeerStatus[] {
  const out: PeerStatus[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\S+)\s+(ok|MISSING)\s*(.*)$/.exec(line.trim());
    if (m) out.push({ name: m[1]!, ok: m[2] === 'ok', detail: m[3]!.trim() });
  }
  return out;
}

/** The machine's own environment: setup.sh in `peersDir` (tools/bench/peers). */
export function peerEnvironment(peersDir: string): PeerEnvironment {
  const setup = join(peersDir, 'setup.sh');
  return {
    root: process.getuid?.() === 0,
    aptGet: spawnSync('bash', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0,
    check: () => parseCheck(spawnSync('bash', [setup, '--check'], { encoding: 'utf8' }).stdout ?? ''),
    // its log lines (what it installs, why it failed) go to our stderr; apt's output too
    install: () => { spawnSync('bash', [setup], { stdio: ['ignore', 'ignore', 'inherit'] }); },
  };
}
