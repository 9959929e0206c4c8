#!/usr/bin/env bash
# Replication peers (issue 15): a copy of the whole corpus made to an empty replica.
#
# usage: tools/bench/peers/replication.sh CORPUS WORKDIR
# output: one JSON line per measurement on stdout (measurement "replicate"; logs on stderr):
#   cyrus-sync     Cyrus replication, sync_client -u bench to sync_server over loopback TCP
#                  (two private Cyrus instances; csync protocol, the one rolling replication
#                  speaks; SASL PLAIN from a private sasldb, no TLS, deflate when both offer it)
#   dovecot-dsync  doveadm sync from one Dovecot mdbox home into an empty one (dsync in one
#                  process: no network, no TLS)
# The sources are loaded once and reused while the corpus is the same (WORKDIR/replication/*/loaded):
#   Cyrus  message 1 through LMTP (creates user/bench), the others placed in its spool as files
#          (CRLF) and indexed by reconstruct -u bench (Cyrus has no bulk import; LMTP at ~170/s
#          would take minutes); then the count is checked
#   Dovecot  doveadm import of corpus.mbox into mdbox
# Only the copy is timed; the replica is wiped before each run and its message count checked.
# env: PEERS_REPL_PORT=N (default 24005): the sync_server's loopback port
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_args "$@"

CYRBIN=/usr/lib/cyrus/bin
PORT=${PEERS_REPL_PORT:-24005}
RROOT="$WORK/replication"
mkdir -p -- "$RROOT"; open_path "$RROOT"; open_path "$CDIR"
STAMP="$MESSAGES $BYTES $CORPUS"

# ---- Cyrus ------------------------------------------------------------------------------------

# cyrus_conf DIR REPLICA(0|1): a private instance; the replica runs sync_server on $PORT
cyrus_conf() {
  local c=$1 replica=$2
  mkdir -p "$c/data/config" "$c/data/spool" "$c/run/proc" "$c/run/lock" "$c/run/socket"
  cat > "$c/imapd.conf" <<CONF
configdirectory: $c/data/config
partition-default: $c/data/spool
defaultpartition: default
proc_path: $c/run/proc
mboxname_lockpath: $c/run/lock
lmtpsocket: $c/run/socket/lmtp
idlesocket: $c/run/socket/idle
notifysocket: $c/run/socket/notify
servername: benchrepl
admins: cyrus repl
altnamespace: no
unixhierarchysep: yes
virtdomains: off
lmtp_downcase_rcpt: yes
autocreate_post: yes
autocreate_quota: 0
hashimapspool: true
umask: 077
syslog_prefix: cyrus-bench-repl
duplicatesuppression: 0
allowplaintext: yes
sasl_mech_list: PLAIN
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $c/sasldb2
sync_host: 127.0.0.1
sync_port: $PORT
sync_try_imap: no
sync_authname: repl
sync_password: benchrepl-secret
CONF
  local service=""
  (( replica )) && service="syncserver cmd=\"sync_server -C $c/imapd.conf\" listen=\"127.0.0.1:$PORT\" prefork=1"
  cat > "$c/cyrus.conf" <<CONF
START {
  recover cmd="ctl_cyrusdb -C $c/imapd.conf -r"
}
SERVICES {
  lmtpunix cmd="lmtpd -C $c/imapd.conf" listen="$c/run/socket/lmtp" prefork=1 maxchild=4
  $service
}
EVENTS {
}
DAEMON {
}
CONF
  # the sync user's password, in the replica's private sasldb (Berkeley DB hash, as libsasldb reads it)
  perl -MDB_File -MFcntl -e 'tie my %h, "DB_File", $ARGV[0], O_RDWR|O_CREAT, 0640, $DB_HASH or die "sasldb: $!"; $h{"repl\0benchrepl\0userPassword"} = "benchrepl-secret"; untie %h' "$c/sasldb2"
  chown -R cyrus:mail "$c"
}
cyr() { local c=$1 tool=$2; shift 2; "$CYRBIN/$tool" -C "$c/imapd.conf" "$@"; }
cyrus_start() {
  local c=$1 wait_for=$2
  rm -f "$c/run/master.pid"
  "$CYRBIN/master" -C "$c/imapd.conf" -M "$c/cyrus.conf" -p "$c/run/master.pid" -L "$c/master.log" -d 2>"$WORK/last.err" || return 1
  for _ in $(seq 100); do [[ -s "$c/run/master.pid" ]] && eval "$wait_for" && return 0; sleep 0.1; done
  return 1
}
cyrus_stop() {
  local c=$1 mp
  mp=$(cat "$c/run/master.pid" 2>/dev/null) || return 0
  kill -TERM "$mp" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$mp" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$mp" $(pgrep -P "$mp" || true) 2>/dev/null || true
}
cyrus_count() { cyr "$1" mbexamine user/bench 2>/dev/null | sed -n 's/.*Number of Messages: \([0-9]*\).*/\1/p' | head -n 1; }

# cyrus_load DIR: user/bench holding the whole corpus (reused when loaded from the same corpus)
cyrus_load() {
  local c=$1 mbdir n
  [[ -f "$c/loaded" && "$(cat "$c/loaded")" == "$STAMP" ]] && return 0
  rm -rf -- "$c"; cyrus_conf "$c" 0
  log "cyrus: loading $MESSAGES messages into the replication source (LMTP for the first, reconstruct for the rest)"
  cyrus_start "$c" '[[ -S "$c/run/socket/lmtp" ]]' || { echo "master did not start: $(last_line "$WORK/last.err")"; return 1; }
  node "$PEERS_DIR/lmtp-client.mjs" --socket "$c/run/socket/lmtp" --rcpt bench --list "$LIST" --limit 1 --peer cyrus >/dev/null
  cyrus_stop "$c"
  mbdir=$(cyr "$c" mbpath -u bench 2>/dev/null | head -n 1)
  [[ -d "$mbdir" ]] || { echo "no mailbox directory for user/bench after the first delivery"; return 1; }
  # messages 2..N as spool files UID. with CRLF line ends (what lmtpd would have written)
  node -e '
    const fs = require("fs"); const [list, dir] = process.argv.slice(1);
    const files = fs.readFileSync(list, "utf8").split("\n").filter(Boolean);
    for (let i = 1; i < files.length; i++) fs.writeFileSync(`${dir}/${i + 1}.`, fs.readFileSync(files[i]).toString("latin1").replace(/\r?\n/g, "\r\n"), "latin1");
  ' "$LIST" "$mbdir"
  chown -R cyrus:mail "$mbdir"
  rm -f "$mbdir/cyrus.index" "$mbdir/cyrus.cache"
  runuser -u cyrus -- "$CYRBIN/reconstruct" -C "$c/imapd.conf" -u bench >/dev/null 2>"$WORK/last.err" || { echo "reconstruct failed: $(last_line "$WORK/last.err")"; return 1; }
  n=$(cyrus_count "$c")
  [[ "$n" == "$MESSAGES" ]] || { echo "the source holds ${n:-?} of $MESSAGES messages after reconstruct"; return 1; }
  echo "$STAMP" > "$c/loaded"
}

cyrus_replicate() {
  local peer=cyrus-sync src="$RROOT/cyrus-src" dst="$RROOT/cyrus-dst" why secs n cver
  if [[ ! -x $CYRBIN/sync_client || ! -x $CYRBIN/sync_server ]] || ! id -u cyrus >/dev/null 2>&1; then
    emit_error "$peer" replicate "Cyrus replication not installed (need packages cyrus-common and cyrus-replication: sync_client, sync_server)"; return 0
  fi
  cver=$(dpkg-query -W -f '${Version}' cyrus-replication 2>/dev/null || echo '?')
  if ! why=$(cyrus_load "$src"); then emit_error "$peer" replicate "loading the source failed: $why"; return 0; fi
  rm -rf -- "$dst"; cyrus_conf "$dst" 1
  if ! cyrus_start "$dst" "(exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null"; then
    emit_error "$peer" replicate "the replica's master (sync_server on 127.0.0.1:$PORT) did not start: $(last_line "$WORK/last.err") $(last_line "$dst/master.log" 2>/dev/null)"; return 0
  fi
  if run_timed secs runuser -u cyrus -- "$CYRBIN/sync_client" -C "$src/imapd.conf" -S 127.0.0.1 -o -u bench; then
    n=$(cyrus_count "$dst")
    if [[ "$n" == "$MESSAGES" ]]; then
      emit "$peer" replicate "$MESSAGES" "$BYTES" "$secs" "Cyrus $cver sync_client -u bench (csync, the protocol of rolling replication) to sync_server over loopback TCP, an empty replica; SASL PLAIN, no TLS; the replica then holds $n messages; sync_client process timed (connection and auth included)"
    else
      emit_error "$peer" replicate "sync_client exited 0 but the replica holds ${n:-?} of $MESSAGES messages"
    fi
  else
    emit_error "$peer" replicate "sync_client failed: $(last_line "$WORK/last.err")"
  fi
  cyrus_stop "$dst"
}

# ---- Dovecot ----------------------------------------------------------------------------------

dovecot_conf() { # DIR: mdbox under DIR/home (user "bench", owned by $BENCH_USER)
  local d=$1
  mkdir -p "$d/home" "$d/src" "$d/run"; chown "$BU:$BG" "$d/home" "$d/src"
  cat > "$d/dovecot.conf" <<CONF
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
instance_name = bench-repl-$(basename "$d")
protocols =
ssl = no
mail_location = mdbox:~/mdbox
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
CONF
}
dadm() { local d=$1; shift; env HOME="$d/home" USER=bench doveadm -c "$d/dovecot.conf" "$@"; }
dovecot_count() { dadm "$1" mailbox status messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p'; }

dovecot_replicate() {
  local peer=dovecot-dsync src="$RROOT/dovecot-src" dst="$RROOT/dovecot-dst" secs n mbox=$MBOX dver
  if ! command -v doveadm >/dev/null || ! need_bench_user; then emit_error "$peer" replicate "doveadm (dovecot-core) or the user $BENCH_USER missing; run tools/bench/peers/setup.sh"; return 0; fi
  BU=$(id -u "$BENCH_USER"); BG=$(id -g "$BENCH_USER"); dver=$(dovecot --version 2>/dev/null | cut -d' ' -f1)
  if ! [[ -f "$src/loaded" && "$(cat "$src/loaded")" == "$STAMP" ]]; then
    rm -rf -- "$src"; dovecot_conf "$src"
    if ! runuser -u "$BENCH_USER" -- test -r "$mbox"; then cp -- "$mbox" "$src/corpus.mbox"; chmod 0644 "$src/corpus.mbox"; mbox="$src/corpus.mbox"; fi
    log "dovecot: importing $MESSAGES messages into the replication source (mdbox)"
    if ! dadm "$src" import "mbox:$src/src:INBOX=$mbox:INDEX=MEMORY" "" all >/dev/null 2>"$WORK/last.err"; then emit_error "$peer" replicate "doveadm import failed: $(last_line "$WORK/last.err")"; return 0; fi
    n=$(dovecot_count "$src")
    [[ "$n" == "$MESSAGES" ]] || { emit_error "$peer" replicate "the source holds ${n:-?} of $MESSAGES messages after import"; return 0; }
    echo "$STAMP" > "$src/loaded"
  fi
  rm -rf -- "$dst"; mkdir -p "$dst/home"; chown "$BU:$BG" "$dst/home"
  if run_timed secs dadm "$src" sync "mdbox:$dst/home/mdbox"; then
    n=$(env HOME="$dst/home" USER=bench doveadm -c "$src/dovecot.conf" -o "mail_location=mdbox:$dst/home/mdbox" mailbox status messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p')
    if [[ "$n" == "$MESSAGES" ]]; then
      emit "$peer" replicate "$MESSAGES" "$BYTES" "$secs" "Dovecot $dver doveadm sync (dsync, two-way) from an mdbox home into an empty mdbox, in one process: no network, no TLS; the copy then holds $n messages"
    else
      emit_error "$peer" replicate "doveadm sync exited 0 but the copy holds ${n:-?} of $MESSAGES messages"
    fi
  else
    emit_error "$peer" replicate "doveadm sync failed: $(last_line "$WORK/last.err")"
  fi
}

cyrus_replicate
dovecot_replicate
