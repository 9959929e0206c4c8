#!/usr/bin/env bash
# restic (Debian's package) on the backup step's messages as a Maildir, with the same changes the
# mailstore side applies: full backup, incremental backup after the deliveries and expunges,
# restore of everything, restore of one mailbox, repository bytes. One JSON line each.
#
# usage: tools/bench/peers/restic.sh DIR [MAILBOX]
#   DIR: what `node dist/src/bench/measure/backup.js --prepare --dir DIR` made (maildir/, new/,
#   expunge.txt, prepared.json). restic runs as $PEERS_BENCH_USER (default mailbench), repository
#   format 2 (zstd compression "auto"; restic always encrypts: AES-256-CTR + Poly1305-AES).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
[[ $# -ge 1 ]] || die "usage: restic.sh DIR [MAILBOX]"
D=$(readlink -f -- "$1"); BOX=${2:-box07}
WORK="$D"
PEER=restic
measurements=(backup-full backup-incremental restore restore-mailbox repository)
fail() { for m in "${measurements[@]}"; do emit_error "$PEER" "$m" "$1"; done; exit 0; }
command -v restic >/dev/null || fail "restic not installed (apt-get install restic; tools/bench/peers/setup.sh)"
[[ -f "$D/prepared.json" ]] || fail "$D/prepared.json missing: run backup.js --prepare first"
need_bench_user || fail "cannot create unprivileged user $BENCH_USER"
json() { node -e "const p = require(process.argv[1]); console.log($1)" "$D/prepared.json"; }
MESSAGES=$(json p.messages); BYTES=$(json p.bytes); DELIVERIES=$(json p.deliveries); EXPUNGES=$(json p.expunge.length)
AFTER=$((MESSAGES + DELIVERIES - EXPUNGES)); BOX_BYTES=$(json "p.boxBytesAfter['$BOX']")
VERSION=$(restic version | cut -d' ' -f2)

R="$D/restic-repo"; M="$D/restic-maildir"; T="$D/restic-restored"; C="$D/restic-cache"; P="$D/restic-password"
rm -rf -- "$R" "$M" "$T" "$T-one" "$C"
open_path "$D"; chmod -R o+rX "$D/maildir" "$D/new"
cp -al -- "$D/maildir" "$M"            # hard links: the changes below touch the copy's names only
printf 'bench-password\n' > "$P"
mkdir -p -- "$R" "$T" "$T-one" "$C"
chown "$BENCH_USER" "$P" "$R" "$T" "$T-one" "$C" "$M"; chown -R "$BENCH_USER" "$M"
chmod 0600 "$P"
as_bench() { runuser -u "$BENCH_USER" -- env RESTIC_REPOSITORY="$R" RESTIC_PASSWORD_FILE="$P" RESTIC_CACHE_DIR="$C" "$@"; }
as_bench restic init --repository-version 2 >/dev/null 2>"$WORK/last.err" || fail "restic init failed: $(last_line "$WORK/last.err")"
NOTE="restic $VERSION as $BENCH_USER, repository version 2 (zstd auto), always encrypted; a Maildir per mailbox (its files read once before the full backup: warm page cache); process wall time"

# every file read once before the clock: a warm page cache, as mailstore's store before its full
# backup (backup.js): otherwise a full run's earlier steps leave these files cold and the store hot
find "$M" -type f -print0 | xargs -0 cat > /dev/null
run_timed secs as_bench restic backup --host bench "$M" || fail "restic backup failed: $(last_line "$WORK/last.err")"
FULL_REPO=$(du -sb -- "$R" | cut -f1)
emit "$PEER" backup-full "$MESSAGES" "$BYTES" "$secs" "$NOTE; full backup into a new repository" "\"repo_bytes\":$FULL_REPO"

# the same changes as the store: the expunged messages' files removed, the deliveries added
while IFS= read -r f; do [[ -n "$f" ]] && rm -f -- "$M/$f"; done < "$D/expunge.txt"
cp -al -- "$D/new/." "$M/"; chown -R "$BENCH_USER" "$M"
run_timed secs as_bench restic backup --host bench "$M" || fail "restic backup (incremental) failed: $(last_line "$WORK/last.err")"
emit "$PEER" backup-incremental "$AFTER" "$(json p.deliveryBytes)" "$secs" "$NOTE; after $DELIVERIES new files and $EXPUNGES removed (restic's parent snapshot: unchanged files are not read)"

run_timed secs as_bench restic restore latest --target "$T" || fail "restic restore failed: $(last_line "$WORK/last.err")"
emit "$PEER" restore "$AFTER" "$(du -sb -- "$T" | cut -f1)" "$secs" "$NOTE; the latest snapshot into an empty directory"

run_timed secs as_bench restic restore latest --target "$T-one" --include "$M/$BOX" || fail "restic restore --include failed: $(last_line "$WORK/last.err")"
emit "$PEER" restore-mailbox "$(find "$T-one" -type f | wc -l)" "$(du -sb -- "$T-one" | cut -f1)" "$secs" "$NOTE; restore --include of $BOX ($BOX_BYTES message bytes)" "\"mailbox_bytes\":$BOX_BYTES"

emit "$PEER" repository "$AFTER" "$BYTES" 0 "$NOTE; du -sb of the repository after both backups (after the full one: $FULL_REPO)" "\"repo_bytes\":$(du -sb -- "$R" | cut -f1),\"repo_full_bytes\":$FULL_REPO"
rm -rf -- "$R" "$M" "$T" "$T-one" "$C"
