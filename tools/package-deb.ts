// `npm run package:deb`: a Debian package of the built mailstore, the way admins install daemons.
// It holds the compiled dist/src and the production node_modules (what `npm ls --omit=dev` lists,
// copied from this checkout: no download) under /usr/lib/mailstore, the /usr/bin/mailstore
// wrapper, the systemd units of packaging/, /etc/default/mailstore, and maintainer scripts that
// create the `mailstore` system user. Built with dpkg-deb; Architecture is this machine's, since
// the LevelDB and BLAKE3 bindings are native. gzip, not xz: several times faster to build, a little bigger.
//
//   node dist/tools/package-deb.js [--out DIR]     (default DIR: dist/deb)
//
// Prints the path of the .deb. Exit 0 built; 1 a tool failed (its output is printed).
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const NODE_DEPENDENCY = 'nodejs (>= 20.15)';

interface PackageJson {
  name: string;
  version: string;
  description: string;
  license?: string;
}

function main(argv: string[]): void {
  const at = argv.indexOf('--out');
  const out = resolve(at >= 0 && argv[at + 1] ? argv[at + 1] : join(repoRoot, 'dist/deb'));
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const stage = mkdtempSync(join(tmpdir(), 'mailstore-deb-'));
  chmodSync(stage, 0o755); // it becomes the package's "./": the mode of / as dpkg records it
  try {
    layout(stage, pkg, arch);
    mkdirSync(out, { recursive: true });
    const deb = join(out, `${pkg.name}_${pkg.version}_${arch}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', stage, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
    process.stdout.write(`${deb}\n`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** The package's file tree and DEBIAN/ control files in `stage`. */
function layout(stage: string, pkg: PackageJson, arch: string): void {
  const lib = join(stage, 'usr/lib/mailstore');
  mkdirSync(lib, { recursive: true });
  cpSync(join(repoRoot, 'dist/src'), join(lib, 'dist/src'), { recursive: true, filter: (path) => !NOT_RUNTIME.test(path) });
  for (const file of ['package.json', 'package-lock.json']) cpSync(join(repoRoot, file), join(lib, file));
  copyProductionModules(join(lib, 'node_modules'));
  put(stage, 'usr/bin/mailstore', WRAPPER, 0o755);
  for (const unit of ['mailstore.service', 'mailstore-scrub.service', 'mailstore-scrub.timer']) {
    cpSync(join(repoRoot, 'packaging', unit), join(stage, 'lib/systemd/system', unit));
  }
  // not world-readable: the unit's EnvironmentFile, where an admin puts MAILSTORE_S3_SECRET_KEY or
  // a --webhook URL with its secret (systemd reads it as root)
  put(stage, 'etc/default/mailstore', readFileSync(join(repoRoot, 'packaging/default'), 'utf8'), 0o640);
  copyNamedFiles(stage);
  put(stage, 'usr/share/doc/mailstore/copyright', `mailstore ${pkg.version}\nLicense: ${pkg.license ?? 'see package.json'}\n`, 0o644);
  put(stage, 'DEBIAN/control', control(pkg, arch, installedKib(stage)), 0o644);
  put(stage, 'DEBIAN/conffiles', '/etc/default/mailstore\n', 0o644);
  put(stage, 'DEBIAN/postinst', POSTINST, 0o755);
  put(stage, 'DEBIAN/prerm', PRERM, 0o755);
  put(stage, 'DEBIAN/postrm', POSTRM, 0o755);
}

/**
 * What the texts name beside the program. The docs README.md and RECOVERY.md send an admin to
 * (docs/PERMISSIONS.md, docs/BACKUP.md, BENCHMARKS.md ...), at the same relative paths under
 * /usr/share/doc/mailstore; only README and RECOVERY were shipped, so every such reference led
 * nowhere. And the bench's peer scripts and their README under /usr/lib/mailstore/tools/bench:
 * `mailstore bench` runs tools/bench/peers/setup.sh --check and run.sh from its package, so from
 * the .deb it called Dovecot, git and b3sum not installed (they were) and told the admin to run a
 * setup.sh the package did not have.
 */
export function copyNamedFiles(stage: string): void {
  const docs = join(stage, 'usr/share/doc/mailstore');
  for (const doc of ['README.md', 'RECOVERY.md', 'BENCHMARKS.md']) cpSync(join(repoRoot, doc), join(docs, doc));
  cpSync(join(repoRoot, 'docs'), join(docs, 'docs'), { recursive: true, filter: (path) => !path.endsWith('ACCEPTANCE.md') });
  const bench = join(stage, 'usr/lib/mailstore/tools/bench');
  cpSync(join(repoRoot, 'tools/bench/peers'), join(bench, 'peers'), { recursive: true });
  cpSync(join(repoRoot, 'tools/bench/README.md'), join(bench, 'README.md'));
}

/** Files of a dependency that nothing loads at run time (types, source maps, docs): left out. */
// Object files and static libraries a native module's build leaves beside its .node (zstd-napi
// builds zstd from source where its prebuilt binary cannot be fetched: 3.8 MB) are not loaded.
const NOT_RUNTIME = /(\.d\.[cm]?ts|\.map|\.md|\.markdown|\.o|\.a)$|\/obj\.target(\/|$)/i;

/** Every package `npm ls --omit=dev` lists, at the same place under node_modules. */
function copyProductionModules(target: string): void {
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  for (const path of listed.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const rel = relative(join(repoRoot, 'node_modules'), path);
    if (rel === '' || rel.startsWith('..')) continue; // the project itself
    // nested node_modules of a package are listed on their own; copy the package without them
    cpSync(path, join(target, rel), {
      recursive: true, dereference: true,
      filter: (p) => p === path || (!relative(path, p).split('/').includes('node_modules') && !NOT_RUNTIME.test(p)),
    });
  }
}

function put(stage: string, path: string, text: string, mode: number): void {
  const full = join(stage, path);
  mkdirSync(join(full, '..'), { recursive: true });
  writeFileSync(full, text);
  chmodSync(full, mode);
}

function installedKib(stage: string): number {
  return Number(execFileSync('du', ['-sk', '--exclude=DEBIAN', stage], { encoding: 'utf8' }).split('\t')[0]);
}

function control(pkg: PackageJson, arch: string, kib: number): string {
  return [
    `Package: ${pkg.name}`, `Version: ${pkg.version}`, `Architecture: ${arch}`,
    'Maintainer: mailstore maintainers <mailstore@localhost>', `Installed-Size: ${kib}`,
    `Depends: ${NODE_DEPENDENCY}, adduser`, 'Section: mail', 'Priority: optional',
    `Description: ${pkg.description}`,
    ' Message bodies stored once by BLAKE3 hash, a durable journal as the commit point,',
    ' LevelDB metadata, a scrubber; a CLI, LMTP delivery and a spool daemon (systemd units).',
    '',
  ].join('\n');
}

/**
 * Finds its installation relative to itself, so an unpacked copy (dpkg-deb -x DIR) runs too. Runs
 * the node the package depends on, /usr/bin/node, not the first on PATH: systemd's PATH (and most
 * shells') puts /usr/local/bin first, where a node installed by hand (a tarball, nvm's, an older
 * one) ran the daemon with LevelDB's and BLAKE3's bindings built for another node, or failed on
 * code it cannot run.
 */
export const WRAPPER = `#!/bin/sh
# mailstore: the CLI of the mailstore package (node ${NODE_DEPENDENCY}).
# two glibc malloc arenas, as the unit sets: memory a thread freed is reused instead of kept per
# thread (a 1M-message compaction peaked at 232 MB instead of 248-272; BENCHMARKS.md, session 17)
export MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"
# started with SIGHUP ignored (nohup): node resets it to the default at start, so an import went
# with the logout; the CLI ignores it again when told (SigIgn bit 0 is signal 1, SIGHUP)
if [ -r /proc/$$/status ]; then
  while read -r key value; do
    if [ "$key" = SigIgn: ]; then case $value in *[13579bdfBDF]) export MAILSTORE_SIGHUP_IGNORED=1 ;; esac; fi
  done < /proc/$$/status
fi
here=$(dirname "$(readlink -f "$0")")
node="\${MAILSTORE_NODE:-/usr/bin/node}"
if [ ! -x "$node" ]; then
  # as a dependency that does not load: could not run (2); an MTA's append --sysexits gets 75, so
  # the mail is deferred, not bounced
  status=2
  for arg; do if [ "$arg" = --sysexits ]; then status=75; fi; done
  case " $* " in *" append "*) if [ "\${MAILSTORE_SYSEXITS:-}" = 1 ]; then status=75; fi ;; esac
  echo "mailstore: IO: $node is missing or not executable: the package runs the node of its dependency ${NODE_DEPENDENCY} (apt-get install --reinstall nodejs); MAILSTORE_NODE=PATH names another node, of the same version or newer" >&2
  exit $status
fi
exec "$node" "$here/../lib/mailstore/dist/src/cli/main.cjs" "$@"
`;

/** The units an admin enables (their [Install] sections): README's \`systemctl enable --now ...\`. */
const ENABLED_BY_ADMIN = 'mailstore.service mailstore-scrub.timer';

export const POSTINST = `#!/bin/sh
# The mailstore system user owns the store; the store itself is never created here: an empty
# /var/lib/mailstore may be a partition that is not mounted yet (README, "systemd").
set -e
if [ "$1" = configure ]; then
  if ! getent passwd mailstore >/dev/null; then
    if command -v adduser >/dev/null; then
      adduser --system --group --home /var/lib/mailstore --no-create-home --quiet mailstore
    else
      useradd --system --user-group --home-dir /var/lib/mailstore --shell /usr/sbin/nologin mailstore
    fi
  fi
  # made once: an upgrade leaves the owner and mode an admin gave it (another service user, a
  # symlink to a store on /srv, which install -d would follow) as they are
  if [ ! -e /var/lib/mailstore ] && [ ! -L /var/lib/mailstore ]; then
    install -d -o mailstore -g mailstore -m 0750 /var/lib/mailstore
  fi
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
  # deb-systemd-helper notes the links \`systemctl enable\` makes for the units (it enables
  # nothing), so that a purge can remove them: left behind, they dangled once the unit files were gone
  if command -v deb-systemd-helper >/dev/null; then deb-systemd-helper update-state ${ENABLED_BY_ADMIN} >/dev/null || true; fi
  # An upgrade ($2: the version replaced): a running daemon still runs the replaced code, and loads
  # the new one's files as its commands need them. Restarted, it runs one version; one the admin
  # stopped stays stopped.
  if [ -n "$2" ] && [ -d /run/systemd/system ]; then systemctl try-restart mailstore.service || true; fi
  if [ -n "$2" ] && [ ! -d /run/systemd/system ]; then
    echo "mailstore: upgraded; restart a 'mailstore serve' that runs (it still runs the replaced code)"
  fi
  # What prerm stopped to remove the package runs again now that it is back (enabled, a unit stayed
  # stopped until a reboot or an admin: mail refused meanwhile). Once: a second configure starts nothing.
  if [ -s /run/mailstore.stopped-for-removal ] && [ -d /run/systemd/system ]; then
    systemctl start $(cat /run/mailstore.stopped-for-removal) || true
  fi
  rm -f /run/mailstore.stopped-for-removal
  if [ ! -e /var/lib/mailstore/STORE ] && [ -z "$2" ]; then
    echo "mailstore: create the store, then start the daemon and the nightly scrub:"
    echo "  runuser -u mailstore -- mailstore --store /var/lib/mailstore init"
    echo "  systemctl enable --now mailstore.service mailstore-scrub.timer"
  fi
  # Installed before ($2), the store is there unless its partition is not mounted: a store made now
  # would take mail on the root file system, hidden again by the mount.
  if [ ! -e /var/lib/mailstore/STORE ] && [ -n "$2" ]; then
    echo "mailstore: /var/lib/mailstore holds no store: is its partition mounted? mailstore serve refuses it"
    echo "  (UNMOUNTED) until it is. Never had a store: /usr/share/doc/mailstore/README.md, 'systemd and the Debian package'"
  fi
fi
exit 0
`;

export const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  # the units running now run again when the package is installed again (postinst); one an admin
  # stopped stays stopped
  for unit in mailstore.service mailstore-scrub.timer; do
    if systemctl is-active --quiet "$unit"; then echo "$unit"; fi
  done > /run/mailstore.stopped-for-removal
  # a scrub running now too: it runs from files about to go
  systemctl stop mailstore-scrub.timer mailstore-scrub.service mailstore.service >/dev/null 2>&1 || true
fi
exit 0
`;

/** The store (mail) and the user stay, even on purge: removing a package never deletes mail. */
export const POSTRM = `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
if [ "$1" = purge ]; then
  # an install after it starts what it is told to, not what the removal stopped
  rm -f /run/mailstore.stopped-for-removal
  # the enablement links (multi-user.target.wants/, timers.target.wants/) go with the units
  if command -v deb-systemd-helper >/dev/null; then deb-systemd-helper purge ${ENABLED_BY_ADMIN} >/dev/null || true; fi
  echo "mailstore: purged: its settings (/etc/default/mailstore) are gone; /var/lib/mailstore (the store, the mail)"
  echo "  and the mailstore user are kept. Remove them by hand once nothing in them is needed."
fi
exit 0
`;

// imported by the tests (the maintainer scripts), run by npm run package:deb
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
