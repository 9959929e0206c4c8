#!/usr/bin/env bash
# Physical floor: what the bare machine does with the same bytes.
#
# usage: tools/bench/peers/floor.sh CORPUS WORKDIR
#   CORPUS   an mbox file, or a Maildir directory (cur/ + new/, or a flat dir of messages)
#   WORKDIR  scratch directory; WORKDIR/floor is wiped on every run
# env:
#   PEERS_DELIVER_LIMIT=N   fsync-per-message floor over the first N messages (default: all)
#   PEERS_DROP_CACHES=1     drop the page cache before each read-type run (root)
# output: one JSON line per measurement on stdout (logs on stderr):
#   b3sum-files   scrub   b3sum over every message file (xargs batches)
#   b3sum-mbox    scrub   b3sum over the one mbox file (all threads; b3sum mmaps big files)
#   b3sum-mbox-1t scrub   the same with --num-threads 1
#   cat-files     scrub   cat every message file > /dev/null (read cost without hashing)
#   cat-mbox      scrub   cat the mbox > /dev/null
#   floor-write   import  copy the mbox into a new file with one fsync at the end (dd conv=fsync)
#   floor-fsync   deliver per message: new file, write, fsync, rename, fsync(dir) (fsync-floor.mjs)
# "scrub" here means "read + hash every stored byte once": the lower bound of a scrub.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_args "$@"

FROOT="$WORK/floor"
rm -rf -- "$FROOT"; mkdir -p -- "$FROOT"
DLIMIT=${PEERS_DELIVER_LIMIT:-$MESSAGES}
(( DLIMIT > MESSAGES )) && DLIMIT=$MESSAGES
files() { tr '\n' '\0' < "$LIST" | xargs -0 "$@"; }

if command -v b3sum >/dev/null; then
  BV=$(b3sum --version 2>/dev/null | awk '{print $2}')
  cold
  if run_timed secs files b3sum; then
    emit b3sum-files scrub "$MESSAGES" "$BYTES" "$secs" "b3sum $BV over $MESSAGES message files via xargs; $CACHE_NOTE"
  else emit_error b3sum-files scrub "b3sum failed: $(last_line "$WORK/last.err")"; fi
  cold
  if run_timed secs b3sum "$MBOX"; then
    emit b3sum-mbox scrub "$MESSAGES" "$MBOX_BYTES" "$secs" "b3sum $BV over the single mbox file ($MBOX_BYTES bytes), default threads ($(nproc) CPUs); $CACHE_NOTE"
  else emit_error b3sum-mbox scrub "b3sum failed: $(last_line "$WORK/last.err")"; fi
  cold
  if run_timed secs b3sum --num-threads 1 "$MBOX"; then
    emit b3sum-mbox-1t scrub "$MESSAGES" "$MBOX_BYTES" "$secs" "b3sum $BV --num-threads 1 over the single mbox file; $CACHE_NOTE"
  else emit_error b3sum-mbox-1t scrub "b3sum failed: $(last_line "$WORK/last.err")"; fi
else
  for p in b3sum-files b3sum-mbox b3sum-mbox-1t; do emit_error "$p" scrub "b3sum not installed (Debian 12 package b3sum); run tools/bench/peers/setup.sh"; done
fi

cold
if run_timed secs files cat; then
  emit cat-files scrub "$MESSAGES" "$BYTES" "$secs" "cat over $MESSAGES message files via xargs > /dev/null; $CACHE_NOTE"
else emit_error cat-files scrub "cat failed: $(last_line "$WORK/last.err")"; fi
cold
if run_timed secs cat "$MBOX"; then
  emit cat-mbox scrub "$MESSAGES" "$MBOX_BYTES" "$secs" "cat of the single mbox file > /dev/null; $CACHE_NOTE"
else emit_error cat-mbox scrub "cat failed: $(last_line "$WORK/last.err")"; fi

if run_timed secs dd if="$MBOX" of="$FROOT/copy.mbox" bs=1M conv=fsync status=none; then
  emit floor-write import "$MESSAGES" "$MBOX_BYTES" "$secs" "dd bs=1M conv=fsync: sequential copy of the mbox into a new file, one fsync at the end (new file's directory not fsynced)"
else emit_error floor-write import "dd failed: $(last_line "$WORK/last.err")"; fi
rm -f -- "$FROOT/copy.mbox"

out=$(node "$PEERS_DIR/fsync-floor.mjs" "$LIST" "$FROOT/maildir" --limit "$DLIMIT" 2>"$WORK/last.err") \
  && echo "$out" || emit_error floor-fsync deliver "fsync-floor.mjs failed: $(last_line "$WORK/last.err")"
rm -rf -- "$FROOT/maildir"
