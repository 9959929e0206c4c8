# shellcheck shell=bash
# Shared helpers for the peer benchmark scripts. Source it; do not run it.
set -euo pipefail
PEERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_USER="${PEERS_BENCH_USER:-mailbench}"   # unprivileged owner of Dovecot mail (Dovecot refuses root)

log() { printf '[peers] %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
jstr() { # JSON string literal
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/}; s=${s//$'\t'/ }
  printf '"%s"' "$s"
}
# emit PEER MEASUREMENT MESSAGES BYTES SECONDS NOTE [EXTRA_JSON_MEMBERS]
emit() {
  local extra=${7:-}
  printf '{"peer":%s,"measurement":%s,"messages":%s,"bytes":%s,"seconds":%s%s,"note":%s}\n' \
    "$(jstr "$1")" "$(jstr "$2")" "$3" "$4" "$5" "${extra:+,$extra}" "$(jstr "$6")"
}
# emit_error PEER MEASUREMENT WHY
emit_error() { printf '{"peer":%s,"measurement":%s,"error":%s}\n' "$(jstr "$1")" "$(jstr "$2")" "$(jstr "$3")"; }
# emit_space PEER STORED_BYTES DIR NOTE [MESSAGES]  (on-disk = allocated blocks, du -sB1; apparent = du -sb)
emit_space() {
  local disk app n=${5:-$MESSAGES}
  disk=$(du -sB1 -- "$3" | cut -f1); app=$(du -sb -- "$3" | cut -f1)
  printf '{"peer":%s,"measurement":"space","messages":%s,"bytes":%s,"disk_bytes":%s,"apparent_bytes":%s,"ratio":%s,"note":%s}\n' \
    "$(jstr "$1")" "$n" "$2" "$disk" "$app" "$(awk -v d="$disk" -v b="$2" 'BEGIN { printf "%.4f", d / b }')" "$(jstr "$4")"
}
last_line() { tail -n 1 "$1" | tr -d '\n' | cut -c1-400; }

# run_timed OUTVAR CMD...: run CMD (stdout to /dev/null, stderr to $WORK/last.err), store seconds in OUTVAR; returns CMD's status
run_timed() {
  local __var=$1; shift
  local t rc=0
  t=$(now)
  "$@" >/dev/null 2>"$WORK/last.err" || rc=$?
  printf -v "$__var" '%s' "$(since "$t")"
  return $rc
}

# drop the page cache before a read-type measurement when PEERS_DROP_CACHES=1
cold() {
  if [[ "${PEERS_DROP_CACHES:-0}" == 1 ]]; then
    sync; if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then CACHE_NOTE="cold page cache"; else CACHE_NOTE="warm page cache (drop_caches not permitted)"; fi
  else
    CACHE_NOTE="warm page cache"
  fi
}

# warm PATH...: every file below each PATH read once, so that a timed read of it starts from a warm
# page cache: DAMON reclaim here pages out what was not touched for about a minute
# (tools/bench/README.md, "The page cache here")
warm() { find "$@" -type f -print0 | xargs -0 cat > /dev/null; }

# parse "CORPUS WORKDIR" arguments and prepare $WORK/corpus (list.txt, corpus.mbox, stats.env)
# sets: CORPUS WORK CDIR LIST MBOX MESSAGES BYTES MBOX_BYTES
setup_args() {
  if [[ $# -lt 2 || "$1" == -h || "$1" == --help ]]; then
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
  fi
  CORPUS=$(readlink -f -- "$1"); WORK=$(mkdir -p -- "$2" && readlink -f -- "$2")
  [[ -e "$CORPUS" ]] || die "corpus not found: $1"
  command -v node >/dev/null || die "node is required"
  CDIR="$WORK/corpus"
  node "$PEERS_DIR/corpus.mjs" "$CORPUS" "$CDIR" || die "could not prepare corpus from $CORPUS"
  LIST="$CDIR/list.txt"; MBOX="$CDIR/corpus.mbox"
  # shellcheck disable=SC1091
  source <(grep -E '^(MESSAGES|BYTES|MBOX_BYTES)=' "$CDIR/stats.env")
  chmod o+rx "$WORK" "$CDIR" 2>/dev/null || true
  [[ -d "$CDIR/msgs" ]] && chmod -R o+rX "$CDIR/msgs" 2>/dev/null || true
  log "corpus: $MESSAGES messages, $BYTES bytes ($CORPUS); work dir $WORK"
}

# bytes_of_first N: total size of the first N corpus messages
bytes_of_first() { head -n "$1" "$LIST" | tr '\n' '\0' | xargs -0 -r stat -c %s | awk '{ s += $1 } END { print s + 0 }'; }

# the unprivileged user that owns Dovecot mail (created by setup.sh)
need_bench_user() {
  id -u "$BENCH_USER" >/dev/null 2>&1 || \
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group "$BENCH_USER" 2>/dev/null || return 1
}

# make every directory above $1 traversable for other users (Dovecot/Cyrus run unprivileged)
open_path() {
  local d; d=$(readlink -f -- "$1")
  while [[ "$d" != / ]]; do
    if [[ -d "$d" && "$(stat -c %A "$d")" != d????????x ]]; then chmod o+x "$d" 2>/dev/null || true; fi
    d=$(dirname "$d")
  done
}

# ---- private Dovecot and Cyrus instances (dovecot.sh, churn-dovecot.sh, replication.sh) -------

# dovecot_conf DIR LOCATION INSTANCE [EXTRA]: DIR/dovecot.conf for one user "bench" (uid/gid $BU/$BG)
# with mail under DIR/home; EXTRA (settings and blocks) is added as is. Durability settings are
# deliberately left at Dovecot's defaults.
dovecot_conf() {
  local d=$1 loc=$2 instance=$3 extra=${4:-}
  mkdir -p "$d/home" "$d/src" "$d/run"
  chown "$BU:$BG" "$d/home" "$d/src"
  cat > "$d/dovecot.conf" <<CONF
# private benchmark instance; durability settings deliberately left at defaults
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
instance_name = $instance
ssl = no
mail_location = $loc
first_valid_uid = $BU
first_valid_gid = $BG
mail_uid = $BU
mail_gid = $BG
passdb {
  driver = static
  args = password=bench
}
userdb {
  driver = static
  args = uid=$BU gid=$BG home=$d/home
}
$extra
CONF
}
# dadm DIR ARGS...: doveadm on DIR's config as user "bench", without needing the auth daemon
dadm() { local d=$1; shift; env HOME="$d/home" USER=bench doveadm -c "$d/dovecot.conf" "$@"; }
# dovecot_count DIR: messages in bench's INBOX
dovecot_count() { dadm "$1" mailbox status messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p'; }

# cyrus_imapd_conf DIR: writes DIR/imapd.conf with the lines every private Cyrus instance shares
# (data under DIR/data, sockets and locks under DIR/run; user/bench is created by the first
# delivery); the caller appends its own lines. Durability behaviour is Cyrus's default.
cyrus_imapd_conf() {
  local c=$1
  mkdir -p "$c/data/config" "$c/data/spool" "$c/run/proc" "$c/run/lock" "$c/run/socket"
  cat > "$c/imapd.conf" <<CONF
# private benchmark instance
configdirectory: $c/data/config
partition-default: $c/data/spool
defaultpartition: default
proc_path: $c/run/proc
mboxname_lockpath: $c/run/lock
lmtpsocket: $c/run/socket/lmtp
idlesocket: $c/run/socket/idle
notifysocket: $c/run/socket/notify
altnamespace: no
unixhierarchysep: yes
virtdomains: off
lmtp_downcase_rcpt: yes
autocreate_post: yes
autocreate_quota: 0
hashimapspool: true
umask: 077
CONF
}
