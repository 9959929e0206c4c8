#!/usr/bin/env bash
# Cyrus IMAPd peer measurements, each in a private configuration under WORKDIR.
#
# usage: tools/bench/peers/cyrus.sh CORPUS WORKDIR
#   CORPUS   an mbox file, or a Maildir directory (cur/ + new/, or a flat dir of messages)
#   WORKDIR  scratch directory; WORKDIR/cyrus is wiped and rebuilt on every run
# env:
#   PEERS_DELIVER_LIMIT=N   deliver only the first N messages (default: all)
#   PEERS_DROP_CACHES=1     drop the page cache before the scrub / rebuild runs (root)
#   PEERS_CYRUS_DUPSUPPRESS=0|1  Cyrus duplicate suppression (default 0 = off, so Cyrus
#                           stores every message like the other peers; Cyrus's own default is 1,
#                           which silently drops a re-delivered Message-ID)
#   PEERS_DELIVER_ONLY=1    only the LMTP delivery (the bench's lmtp step: no scrub, rebuild, recover, space)
#   LMTP_WARMUP=W           W untimed deliveries before the timed ones (lmtp-client.mjs; not in the recover run)
# output: one JSON line per measurement on stdout (logs on stderr):
#   deliver   LMTP into user/bench via `cyrus master` + lmtpd on a unix socket,
#             one message at a time, each acknowledged (lmtp-client.mjs)
#   scrub     reconstruct -G -u bench  (re-parses every message file, checks its GUID)
#   scrub-check  reconstruct -n -G -u bench  (same, report-only)
#   rebuild   cyrus.index + cyrus.cache deleted, then reconstruct -u bench
#   recover   master + lmtpd killed with SIGKILL mid-delivery, then ctl_cyrusdb -r
#             and reconstruct -u bench; acked vs found
#   space     on-disk bytes per stored byte (spool + config dir)
# There is no bulk mbox import in Cyrus, so "import" is not measured (reported as an error line).
# Durability settings are Cyrus defaults (no knob like Dovecot's mail_fsync).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_args "$@"

DLIMIT=${PEERS_DELIVER_LIMIT:-$MESSAGES}
(( DLIMIT > MESSAGES )) && DLIMIT=$MESSAGES
# LMTP_WARMUP=W (the bench's lmtp step): lmtp-client.mjs delivers the W messages after the first
# DLIMIT untimed first, so the mailbox then holds DLIMIT + W; the kill -9 run has no warm-up
WARM=${LMTP_WARMUP:-0}
DEXPECT=$(( DLIMIT + WARM ))
CYRBIN=/usr/lib/cyrus/bin
DUPS=${PEERS_CYRUS_DUPSUPPRESS:-0}
peer=cyrus
emit_error "$peer" import "not measured: Cyrus has no bulk mbox import tool; mail enters through LMTP (see deliver)"
if [[ ! -x $CYRBIN/master || ! -x $CYRBIN/lmtpd || ! -x $CYRBIN/reconstruct ]] || ! id -u cyrus >/dev/null 2>&1; then
  for m in deliver scrub scrub-check rebuild recover space; do
    emit_error "$peer" "$m" "Cyrus not installed (need package cyrus-common, which provides master, lmtpd, reconstruct and the cyrus user); run tools/bench/peers/setup.sh"
  done
  exit 0
fi
CVER=$(dpkg-query -W -f '${Version}' cyrus-common 2>/dev/null || echo '?')
CROOT="$WORK/cyrus"
rm -rf -- "$CROOT"; mkdir -p -- "$CROOT"
open_path "$CROOT"; open_path "$CDIR"

# write_conf DIR: DIR/imapd.conf + DIR/cyrus.conf, data under DIR/data/{config,spool}
write_conf() {
  local c=$1
  cyrus_imapd_conf "$c"
  cat >> "$c/imapd.conf" <<CONF
admins: cyrus
syslog_prefix: cyrus-bench
# Cyrus default is 1 (drop a second delivery of the same Message-ID); see PEERS_CYRUS_DUPSUPPRESS
duplicatesuppression: $DUPS
CONF
  cat > "$c/cyrus.conf" <<CONF
START {
  recover cmd="ctl_cyrusdb -C $c/imapd.conf -r"
}
SERVICES {
  lmtpunix cmd="lmtpd -C $c/imapd.conf" listen="$c/run/socket/lmtp" prefork=1 maxchild=4
}
EVENTS {
  checkpoint cmd="ctl_cyrusdb -C $c/imapd.conf -c" period=30
}
DAEMON {
}
CONF
  chown -R cyrus:mail "$c"
}
cyr() { local c=$1 tool=$2; shift 2; "$CYRBIN/$tool" -C "$c/imapd.conf" "$@"; }
start_master() {
  local c=$1
  rm -f "$c/run/master.pid" "$c/run/socket/lmtp"
  "$CYRBIN/master" -C "$c/imapd.conf" -M "$c/cyrus.conf" -p "$c/run/master.pid" -L "$c/master.log" -d 2>"$WORK/last.err" || return 1
  for _ in $(seq 100); do [[ -S "$c/run/socket/lmtp" && -s "$c/run/master.pid" ]] && return 0; sleep 0.1; done
  return 1
}
stop_master() {
  local c=$1 mp
  mp=$(cat "$c/run/master.pid" 2>/dev/null) || return 0
  kill -TERM "$mp" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$mp" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$mp" $(pgrep -P "$mp" || true) 2>/dev/null || true
}
kill9_master() {
  local c=$1 mp
  mp=$(cat "$c/run/master.pid" 2>/dev/null) || return 0
  kill -9 "$mp" $(pgrep -P "$mp" || true) 2>/dev/null || true
}
count() { cyr "$1" mbexamine user/bench 2>/dev/null | sed -n 's/.*Number of Messages: \([0-9]*\).*/\1/p' | head -n 1; }
deliver() { # deliver DIR [extra client args]
  local c=$1; shift
  node "$PEERS_DIR/lmtp-client.mjs" --socket "$c/run/socket/lmtp" --rcpt bench --list "$LIST" \
    --limit "$DLIMIT" --peer "$peer" --note "Cyrus $CVER lmtpd via master, default durability, duplicatesuppression=$DUPS (Cyrus default 1)" "$@"
}

# --- deliver
c="$CROOT/main"; write_conf "$c"
delivered=0
if ! start_master "$c"; then
  emit_error "$peer" deliver "cyrus master did not start: $(last_line "$WORK/last.err") $(last_line "$c/master.log" 2>/dev/null)"
else
  out=$(deliver "$c" || true)
  stop_master "$c"
  n=$(count "$c"); n=${n:-0}
  if [[ "$out" == *'"error"'* || -z "$out" ]]; then
    echo "${out:-$(emit_error "$peer" deliver "lmtp client produced no output")}"
  elif [[ "$n" != "$DEXPECT" ]]; then
    emit_error "$peer" deliver "client reported success but user/bench holds $n of $DEXPECT messages ($DLIMIT timed + $WARM warm-up) (duplicatesuppression=$DUPS: with 1, repeated Message-IDs are dropped)"
  else
    echo "$out"
  fi
  delivered=$n
fi
[[ ${PEERS_DELIVER_ONLY:-0} == 1 ]] && exit 0

if (( delivered > 0 )); then
  DBYTES=$(bytes_of_first "$delivered")
  mbdir=$(cyr "$c" mbpath -u bench 2>/dev/null | head -n 1)
  # --- scrub: reconstruct -G re-reads every message file and checks its GUID (SHA-1) against cyrus.index.
  # It prints "<mbox> uid N guid mismatch" on stdout but still exits 0, so count those lines;
  # without -R or -U it only reports (the damaged record is left as it is).
  scrub() { # MEASUREMENT NOTE ARGS...
    local m=$1 note=$2 t bad; shift 2
    cold; t=$(now)
    if cyr "$c" reconstruct "$@" -u bench >"$WORK/last.out" 2>"$WORK/last.err"; then
      secs=$(since "$t"); bad=$(grep -c 'mismatch' "$WORK/last.out" || true)
      emit "$peer" "$m" "$delivered" "$DBYTES" "$secs" "reconstruct $* -u bench: $note; $bad GUID mismatches reported; $CACHE_NOTE" "\"problems\":$bad"
    else
      emit_error "$peer" "$m" "reconstruct $* failed: $(last_line "$WORK/last.err")"
    fi
  }
  scrub scrub "re-parses every message file and checks its GUID (SHA-1); reports mismatches on stdout, exit status 0 regardless; fixes only with -R/-U" -G
  scrub scrub-check "as scrub, with -n (no changes made)" -n -G
  # --- full index rebuild from the message files
  if [[ -n "$mbdir" && -f "$mbdir/cyrus.index" ]]; then
    rm -f "$mbdir/cyrus.index" "$mbdir/cyrus.cache"
    cold
    if run_timed secs cyr "$c" reconstruct -u bench; then
      n=$(count "$c")
      warn=""; [[ "$n" == "$delivered" ]] || warn="WARNING: only ${n:-?} of $delivered messages after the rebuild; "
      emit "$peer" rebuild "$delivered" "$DBYTES" "$secs" "${warn}cyrus.index + cyrus.cache deleted, then reconstruct -u bench (re-parses every message file); found ${n:-?}; flags/modseq history lost; $CACHE_NOTE" "\"found\":${n:-0},\"expected\":$delivered"
    else
      emit_error "$peer" rebuild "reconstruct failed: $(last_line "$WORK/last.err")"
    fi
  else
    emit_error "$peer" rebuild "could not locate the mailbox directory of user/bench (mbpath gave '$mbdir')"
  fi
  # --- space
  emit_space "$peer" "$DBYTES" "$c/data" "du of Cyrus spool + config dir (mailboxes.db, deliver.db, conversations) after delivery of $delivered messages" "$delivered"
else
  for m in scrub scrub-check rebuild space; do emit_error "$peer" "$m" "no delivered mailbox to measure (delivery failed)"; done
fi

# --- SIGKILL mid-delivery, then recover
c="$CROOT/crash"; write_conf "$c"
if ! start_master "$c"; then
  emit_error "$peer" recover "cyrus master did not start: $(last_line "$WORK/last.err")"
  exit 0
fi
LMTP_WARMUP=0 deliver "$c" --progress "$c/acked" > "$c/client.out" 2>&1 &
cpid=$!
for _ in $(seq 600); do
  a=$(cat "$c/acked" 2>/dev/null || echo 0); (( a * 2 >= DLIMIT )) && break
  kill -0 "$cpid" 2>/dev/null || break; sleep 0.1
done
kill9_master "$c"
wait "$cpid" 2>/dev/null || true
acked=$(cat "$c/acked" 2>/dev/null || echo 0)
t=$(now)
if cyr "$c" ctl_cyrusdb -r >/dev/null 2>"$WORK/last.err" && cyr "$c" reconstruct -u bench >/dev/null 2>>"$WORK/last.err"; then
  secs=$(since "$t")
  n=$(count "$c"); n=${n:-0}
  if (( n >= acked )); then
    emit "$peer" recover "$n" "$(bytes_of_first "$n")" "$secs" "SIGKILL to master + lmtpd after $acked acked deliveries (a process crash, not a power cut); ctl_cyrusdb -r then reconstruct -u bench; found $n >= $acked acked" "\"acked\":$acked,\"found\":$n"
  else
    emit_error "$peer" recover "LOST MAIL: $acked deliveries acked before SIGKILL but only $n found after recovery"
  fi
else
  emit_error "$peer" recover "recovery after SIGKILL failed: $(last_line "$WORK/last.err")"
fi
