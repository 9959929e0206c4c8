#!/usr/bin/env bash
# Issue 12's churn row, Dovecot side: import the corpus into mdbox, expunge the listed UIDs (the
# same list mailstore gets: src/bench/churn.ts), then `doveadm purge` (mdbox's compaction: it
# rewrites the storage files, dropping mails whose refcount reached 0). Timed: the purge alone.
#
# usage: tools/bench/peers/churn-dovecot.sh CORPUS WORKDIR UIDFILE
#   UIDFILE  one UID a line (1-based, corpus order = mbox order = Dovecot's UIDs after the import)
# output: one JSON line, peer dovecot-mdbox, measurement churn: seconds (purge), bytes (live
#   message bytes), disk_bytes (du of the mail home after the purge, indexes included), ratio.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
UIDFILE=$(readlink -f -- "${3:-}") || die "usage: churn-dovecot.sh CORPUS WORKDIR UIDFILE"
setup_args "$1" "$2"
peer=dovecot-mdbox
missing=""
command -v doveadm >/dev/null || missing="doveadm (dovecot-core) not installed; run tools/bench/peers/setup.sh"
if [[ -z "$missing" ]] && ! need_bench_user; then missing="cannot create unprivileged user $BENCH_USER (Dovecot refuses mail access as root)"; fi
[[ -n "$missing" ]] && { emit_error "$peer" churn "$missing"; exit 0; }
DVER=$(dovecot --version 2>/dev/null | cut -d' ' -f1)
BU=$(id -u "$BENCH_USER"); BG=$(id -g "$BENCH_USER")
d="$WORK/dovecot-churn"
rm -rf -- "$d"; mkdir -p "$d/home" "$d/src" "$d/run"
open_path "$d"; open_path "$CDIR"
chown "$BU:$BG" "$d/home" "$d/src"
if ! runuser -u "$BENCH_USER" -- test -r "$MBOX"; then
  cp -- "$MBOX" "$d/corpus.mbox"; chmod 0644 "$d/corpus.mbox"; MBOX="$d/corpus.mbox"
fi
cat > "$d/dovecot.conf" <<CONF
# private benchmark instance; durability settings deliberately left at defaults
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
instance_name = bench-churn
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
dadm() { env HOME="$d/home" USER=bench doveadm -c "$d/dovecot.conf" "$@"; }
count() { dadm mailbox status messages INBOX 2>/dev/null | sed -n 's/.*messages=\([0-9]*\).*/\1/p'; }

if ! run_timed secs dadm import "mbox:$d/src:INBOX=$MBOX:INDEX=MEMORY" "" all; then
  emit_error "$peer" churn "doveadm import failed: $(last_line "$WORK/last.err")"; exit 0
fi
n=$(count)
[[ "$n" == "$MESSAGES" ]] || { emit_error "$peer" churn "imported $n of $MESSAGES messages"; exit 0; }
# the UIDs as an IMAP sequence set of ranges (1:3,5,7:9)
set=$(awk 'NF { u = $1 + 0; if (s == "") { s = u; p = u } else if (u == p + 1) { p = u } else { out = out sep (s == p ? s : s ":" p); sep = ","; s = u; p = u } }
  END { if (s != "") out = out sep (s == p ? s : s ":" p); print out }' "$UIDFILE")
expunged=$(grep -c . "$UIDFILE")
dadm expunge mailbox INBOX uid "$set" 2>"$WORK/last.err" || { emit_error "$peer" churn "doveadm expunge failed: $(last_line "$WORK/last.err")"; exit 0; }
left=$(count)
(( left == MESSAGES - expunged )) || { emit_error "$peer" churn "after expunging $expunged of $MESSAGES, INBOX holds $left"; exit 0; }
live=$(node -e '
  const fs = require("fs");
  const gone = new Set(fs.readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean).map(Number));
  let sum = 0;
  fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).forEach((p, i) => { if (!gone.has(i + 1)) sum += fs.statSync(p).size; });
  console.log(sum);' "$LIST" "$UIDFILE")
before=$(du -sB1 -- "$d/home" | cut -f1)
if ! run_timed secs dadm purge; then
  emit_error "$peer" churn "doveadm purge failed: $(last_line "$WORK/last.err")"; exit 0
fi
after=$(du -sB1 -- "$d/home" | cut -f1)
ratio=$(awk -v a="$after" -v b="$live" 'BEGIN { printf "%.4f", a / b }')
emit "$peer" churn "$left" "$live" "$secs" "Dovecot $DVER mdbox: doveadm import of the corpus, doveadm expunge of $expunged UIDs (the same seeded list as mailstore), then doveadm purge timed; du of the mail home $before -> $after bytes (indexes included)" \
  "\"disk_bytes\":$after,\"disk_bytes_before\":$before,\"ratio\":$ratio,\"expunged\":$expunged"
