#!/usr/bin/env bash
# Dovecot peer measurements, each in a private configuration under WORKDIR.
#
# usage: tools/bench/peers/dovecot.sh CORPUS WORKDIR
#   CORPUS   an mbox file, or a Maildir directory (cur/ + new/, or a flat dir of messages)
#   WORKDIR  scratch directory; WORKDIR/dovecot is wiped and rebuilt on every run
# env:
#   PEERS_FORMATS="mdbox sdbox maildir"   formats for import / read / rebuild / space
#   PEERS_DELIVER_FORMATS="mdbox"         formats that get the LMTP delivery + kill -9 runs ("" = none)
#   PEERS_DELIVER_LIMIT=N                 deliver only the first N messages (default: all)
#   PEERS_DROP_CACHES=1                   drop the page cache before read-type runs (root)
#   PEERS_DELIVER_ONLY=1                  the LMTP delivery without the kill -9 run (the bench's lmtp step)
#   LMTP_WARMUP=W                         W untimed deliveries before the timed ones (lmtp-client.mjs; not in the kill -9 run)
# output: one JSON line per measurement on stdout (logs on stderr):
#   import   doveadm import of the mbox into each format
#   read     doveadm fetch text all (every message, full text)
#   resync   doveadm force-resync with intact indexes
#   rebuild  all dovecot.*index* files deleted, then doveadm force-resync
#   deliver  LMTP, one message at a time, each acknowledged (lmtp-client.mjs)
#   recover  dovecot killed with SIGKILL mid-delivery, then force-resync; acked vs found
#   space    on-disk bytes per stored byte
# Dovecot's durability settings are left at their defaults (mail_fsync = optimized)
# and reported in each note.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_args "$@"

FORMATS=${PEERS_FORMATS-mdbox sdbox maildir}
DELIVER_FORMATS=${PEERS_DELIVER_FORMATS-mdbox}
DLIMIT=${PEERS_DELIVER_LIMIT:-$MESSAGES}
(( DLIMIT > MESSAGES )) && DLIMIT=$MESSAGES
# LMTP_WARMUP=W (the bench's lmtp step): lmtp-client.mjs delivers the W messages after the first
# DLIMIT untimed first, so the mailbox then holds DLIMIT + W; the kill -9 run has no warm-up
WARM=${LMTP_WARMUP:-0}
DEXPECT=$(( DLIMIT + WARM ))

missing=""
command -v doveadm >/dev/null || missing="doveadm (dovecot-core) not installed; run tools/bench/peers/setup.sh"
if [[ -z "$missing" ]] && ! need_bench_user; then missing="cannot create unprivileged user $BENCH_USER (Dovecot refuses mail access as root)"; fi
if [[ -n "$missing" ]]; then
  for f in $FORMATS; do for m in import read resync rebuild space; do emit_error "dovecot-$f" "$m" "$missing"; done; done
  for f in $DELIVER_FORMATS; do for m in deliver recover; do emit_error "dovecot-$f" "$m" "$missing"; done; done
  exit 0
fi
DVER=$(dovecot --version 2>/dev/null | cut -d' ' -f1)
BU=$(id -u "$BENCH_USER"); BG=$(id -g "$BENCH_USER")
DROOT="$WORK/dovecot"
rm -rf -- "$DROOT"; mkdir -p -- "$DROOT"
open_path "$DROOT"; open_path "$CDIR"
# doveadm reads the mbox as $BENCH_USER: use a readable copy if the corpus is not (e.g. mode 0600)
if ! runuser -u "$BENCH_USER" -- test -r "$MBOX"; then
  log "$MBOX is not readable by $BENCH_USER; copying it to $DROOT/corpus.mbox"
  cp -- "$MBOX" "$DROOT/corpus.mbox"; chmod 0644 "$DROOT/corpus.mbox"; MBOX="$DROOT/corpus.mbox"
fi

# write_conf DIR FORMAT -> DIR/dovecot.conf; mail under DIR/home (one user "bench")
write_conf() {
  local d=$1 f=$2 loc
  case $f in
    mdbox) loc="mdbox:~/mdbox" ;;
    sdbox) loc="sdbox:~/sdbox" ;;
    maildir) loc="maildir:~/Maildir" ;;
    *) die "unknown format $f" ;;
  esac
  dovecot_conf "$d" "$loc" "bench-$(basename "$d")" "protocols = lmtp
listen = 127.0.0.1
auth_username_format = %Ln
postmaster_address = postmaster@example.com
lmtp_save_to_detail_mailbox = no
service lmtp {
  unix_listener $d/lmtp.sock {
    mode = 0666
  }
}"
}
count() { dovecot_count "$1"; }
fsync_note() { echo "Dovecot $DVER, $(doveconf -c "$1/dovecot.conf" -h mail_fsync 2>/dev/null | sed 's/^/mail_fsync=/') (default)"; }
rm_indexes() { find "$1/home" -type f \( -name 'dovecot.index*' -o -name 'dovecot.map.index*' -o -name 'dovecot.list.index*' \) -delete; }

for f in $FORMATS; do
  peer="dovecot-$f"; d="$DROOT/$f"
  write_conf "$d" "$f"
  fnote=$(fsync_note "$d")
  # --- import (the mbox read once before: warm, as mailstore's import reads it)
  warm "$MBOX"
  if run_timed secs dadm "$d" import "mbox:$d/src:INBOX=$MBOX:INDEX=MEMORY" "" all; then
    n=$(count "$d")
    if [[ "$n" == "$MESSAGES" ]]; then
      emit "$peer" import "$MESSAGES" "$BYTES" "$secs" "doveadm import mbox -> $f; $fnote; mbox of $MBOX_BYTES bytes"
    else
      emit_error "$peer" import "imported $n of $MESSAGES messages"
    fi
  else
    emit_error "$peer" import "doveadm import failed: $(last_line "$WORK/last.err")"; continue
  fi
  # --- read back every message
  cold
  t=$(now)
  if out=$(dadm "$d" fetch text all 2>"$WORK/last.err" | wc -c) && [[ ! -s "$WORK/last.err" ]]; then
    secs=$(since "$t")
    emit "$peer" read "$MESSAGES" "$BYTES" "$secs" "doveadm fetch text all > pipe ($out bytes out incl. 'text:' labels); $CACHE_NOTE"
  else
    emit_error "$peer" read "doveadm fetch failed: $(last_line "$WORK/last.err")"
  fi
  # --- force-resync with the indexes intact
  if run_timed secs dadm "$d" force-resync '*'; then
    emit "$peer" resync "$MESSAGES" "$BYTES" "$secs" "doveadm force-resync '*' with intact indexes (no message bodies read)"
  else
    emit_error "$peer" resync "force-resync failed: $(last_line "$WORK/last.err")"
  fi
  # --- full index rebuild
  rm_indexes "$d"
  cold
  if run_timed secs dadm "$d" force-resync '*'; then
    n=$(count "$d")
    # a shortfall is reported, not hidden: mdbox's rebuild keeps one record per mail GUID, so
    # exact duplicates in the corpus (same headers -> same GUID from an mbox) collapse into one
    warn=""; [[ "$n" == "$MESSAGES" ]] || warn="WARNING: only $n of $MESSAGES messages are in INBOX after the rebuild (mdbox rebuild keeps one record per mail GUID; exact duplicates in the corpus share a GUID); "
    emit "$peer" rebuild "$MESSAGES" "$BYTES" "$secs" "${warn}all dovecot*.index* files deleted, then doveadm force-resync '*'; found ${n:-?}; $CACHE_NOTE" "\"found\":${n:-0},\"expected\":$MESSAGES"
  else
    emit_error "$peer" rebuild "force-resync failed: $(last_line "$WORK/last.err")"
  fi
  # --- space
  emit_space "$peer" "$BYTES" "$d/home" "du of the $f mail home after import + rebuild (indexes and cache included)"
done

# start_master DIR: dovecot master for DIR's config (LMTP on DIR/lmtp.sock)
start_master() {
  dovecot -c "$1/dovecot.conf" 2>"$WORK/last.err" || return 1
  for _ in $(seq 50); do [[ -S "$1/lmtp.sock" ]] && return 0; sleep 0.1; done
  return 1
}
stop_master() { doveadm -c "$1/dovecot.conf" stop >/dev/null 2>&1 || true; }
kill9_master() { # SIGKILL the master and every child of it (only this instance)
  local mp kids
  mp=$(cat "$1/run/master.pid" 2>/dev/null) || return 0
  kids=$(pgrep -P "$mp" || true)
  kill -9 "$mp" $kids 2>/dev/null || true
}

for f in $DELIVER_FORMATS; do
  peer="dovecot-$f"
  # --- deliver, one at a time
  d="$DROOT/$f-lmtp"; write_conf "$d" "$f"; fnote=$(fsync_note "$d")
  if ! start_master "$d"; then
    emit_error "$peer" deliver "dovecot master did not start: $(last_line "$WORK/last.err") $(tail -n 2 "$d/dovecot.log" 2>/dev/null | tr '\n' ' ')"
  else
    out=$(node "$PEERS_DIR/lmtp-client.mjs" --socket "$d/lmtp.sock" --rcpt bench@example.com --list "$LIST" \
      --limit "$DLIMIT" --peer "$peer" --note "Dovecot LMTP into $f; $fnote" || true)
    stop_master "$d"
    n=$(count "$d")
    if [[ "$out" == *'"error"'* || -z "$out" ]]; then
      echo "${out:-$(emit_error "$peer" deliver "lmtp client produced no output")}"
    elif [[ "$n" != "$DEXPECT" ]]; then
      emit_error "$peer" deliver "client reported success but the mailbox holds $n of $DEXPECT messages ($DLIMIT timed + $WARM warm-up)"
    else
      echo "$out"
    fi
  fi
  [[ ${PEERS_DELIVER_ONLY:-0} == 1 ]] && continue
  # --- kill -9 mid-delivery, then recover
  d="$DROOT/$f-crash"; write_conf "$d" "$f"
  if ! start_master "$d"; then
    emit_error "$peer" recover "dovecot master did not start: $(last_line "$WORK/last.err")"; continue
  fi
  LMTP_WARMUP=0 node "$PEERS_DIR/lmtp-client.mjs" --socket "$d/lmtp.sock" --rcpt bench@example.com --list "$LIST" \
    --limit "$DLIMIT" --peer "$peer" --progress "$d/acked" > "$d/client.out" 2>&1 &
  cpid=$!
  # kill once about half of the messages were acknowledged (or after 60 s)
  for _ in $(seq 600); do
    a=$(cat "$d/acked" 2>/dev/null || echo 0); (( a * 2 >= DLIMIT )) && break
    kill -0 "$cpid" 2>/dev/null || break; sleep 0.1
  done
  kill9_master "$d"
  wait "$cpid" 2>/dev/null || true
  acked=$(cat "$d/acked" 2>/dev/null || echo 0)
  rm -f "$d/run/master.pid"
  if run_timed secs dadm "$d" force-resync INBOX; then
    n=$(count "$d")
    if (( n >= acked )); then
      emit "$peer" recover "$n" "$(bytes_of_first "$n")" "$secs" "SIGKILL to the dovecot instance after $acked acked deliveries (a process crash, not a power cut); doveadm force-resync INBOX; found $n >= $acked acked" "\"acked\":$acked,\"found\":$n"
    else
      emit_error "$peer" recover "LOST MAIL: $acked deliveries acked before SIGKILL but only $n found after force-resync"
    fi
  else
    emit_error "$peer" recover "force-resync after SIGKILL failed: $(last_line "$WORK/last.err")"
  fi
done
