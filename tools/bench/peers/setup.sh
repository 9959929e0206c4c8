#!/usr/bin/env bash
# Install the peer benchmark tools (Debian 12) if missing, then print what is available.
#
# usage: tools/bench/peers/setup.sh [--check]
#   --check   install nothing; only report (exit 1 if something is missing)
# Idempotent and non-interactive (safe under CI=true). Needs root for apt-get.
#
# Installs, with --no-install-recommends:
#   dovecot-core dovecot-lmtpd   doveadm, dovecot master, LMTP
#   cyrus-common cyrus-admin     Cyrus master, lmtpd, reconstruct, mbexamine (pulls an MTA: exim4)
#   cyrus-replication            sync_client, sync_server (the replication step, peers/replication.sh)
#   b3sum git                    floor + content-addressed reference
#   restic                       the backup step's peer (peers/restic.sh)
#   ceph-mon ceph-osd radosgw ceph-common   the object-storage tier step (a one-node Ceph on loopback)
# Deliberately NOT installed: dovecot-imapd and cyrus-imapd. Both "Provide: imap-server"
# and cyrus-imapd "Conflicts: imap-server", so apt refuses to install the pair; no
# measurement needs an IMAP daemon.
# While installing, service starts are denied (a temporary /usr/sbin/policy-rc.d,
# only if none exists), so no system-wide dovecot/cyrus/exim daemon is started.
# Also creates the unprivileged system user "mailbench" (Dovecot refuses mail access as root).
set -euo pipefail
CHECK=0; [[ "${1:-}" == --check ]] && CHECK=1
PKGS=(dovecot-core dovecot-lmtpd cyrus-common cyrus-admin cyrus-replication b3sum git restic ceph-mon ceph-osd radosgw ceph-common)
export DEBIAN_FRONTEND=noninteractive
log() { printf '[peers-setup] %s\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if (( ${#missing[@]} )) && (( ! CHECK )); then
  if (( EUID != 0 )); then log "not root: cannot install ${missing[*]}"; else
    log "installing: ${missing[*]}"
    policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy_added=1
    fi
    trap '[[ $policy_added == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt_install() { apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >&2; }
    if ! apt_install; then
      log "install failed; running apt-get update and retrying"
      apt-get update -q >&2 && apt_install || log "apt-get install failed"
    fi
  fi
fi

if ! id -u mailbench >/dev/null 2>&1 && (( ! CHECK )) && (( EUID == 0 )); then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group mailbench \
    && log "created system user mailbench"
fi

# --- report
rc=0
report() { printf '%-10s %-9s %s\n' "$1" "$2" "$3"; }
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true; }
if command -v doveadm >/dev/null && [[ -x /usr/lib/dovecot/lmtp ]]; then
  report dovecot ok "$(ver dovecot-core) (doveadm, lmtp; mail_fsync default: $(doveconf -d -h mail_fsync 2>/dev/null || echo '?'))"
else report dovecot MISSING "need dovecot-core dovecot-lmtpd"; rc=1; fi
if [[ -x /usr/lib/cyrus/bin/master && -x /usr/lib/cyrus/bin/lmtpd && -x /usr/lib/cyrus/bin/reconstruct ]] && id -u cyrus >/dev/null 2>&1; then
  report cyrus ok "$(ver cyrus-common) (master, lmtpd, reconstruct, mbexamine)"
else report cyrus MISSING "need cyrus-common"; rc=1; fi
if [[ -x /usr/lib/cyrus/bin/sync_client && -x /usr/lib/cyrus/bin/sync_server ]] && perl -MDB_File -e 1 2>/dev/null; then
  report cyrus-repl ok "$(ver cyrus-replication) (sync_client, sync_server; perl DB_File writes the private sasldb)"
else report cyrus-repl MISSING "need cyrus-replication (and perl's DB_File, in perl)"; rc=1; fi
if command -v b3sum >/dev/null; then report b3sum ok "$(b3sum --version | awk '{print $2}')"; else report b3sum MISSING "need package b3sum"; rc=1; fi
if command -v git >/dev/null; then report git ok "$(git --version | awk '{print $3}')"; else report git MISSING "need package git"; rc=1; fi
if command -v restic >/dev/null; then report restic ok "$(ver restic)"; else report restic MISSING "need package restic"; rc=1; fi
if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null && command -v ceph >/dev/null; then
  report ceph ok "$(ver ceph-mon) (ceph-mon, ceph-osd, radosgw)"
else report ceph MISSING "need ceph-mon ceph-osd radosgw ceph-common"; rc=1; fi
if command -v node >/dev/null; then report node ok "$(node --version)"; else report node MISSING "node is required for the LMTP client and corpus tools"; rc=1; fi
if id -u mailbench >/dev/null 2>&1; then report mailbench ok "uid $(id -u mailbench)"; else report mailbench MISSING "system user for Dovecot mail (created by this script as root)"; rc=1; fi
exit $rc
