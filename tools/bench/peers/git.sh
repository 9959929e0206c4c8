#!/usr/bin/env bash
# git as a content-addressed reference store.
#
# usage: tools/bench/peers/git.sh CORPUS WORKDIR
#   CORPUS   an mbox file, or a Maildir directory (cur/ + new/, or a flat dir of messages)
#   WORKDIR  scratch directory; WORKDIR/git is wiped and rebuilt on every run
# env: PEERS_DROP_CACHES=1   drop the page cache before read / scrub runs (root)
# output: one JSON line per measurement on stdout (logs on stderr):
#   git        import   git hash-object -w --stdin-paths, git defaults (loose objects are NOT fsynced)
#   git-fsync  import   same with -c core.fsync=loose-object (one fsync per object: durable)
#   git        read     git cat-file --batch-all-objects --batch (loose objects)
#   git        scrub    git fsck --full --no-dangling (loose objects: inflate + SHA-1 every object)
#   git-packed pack     git pack-objects of every object (zlib + deltas) + prune-packed
#   git-packed read / scrub / space   the same over the packed repository
#   git, git-packed  space
# git hashes with SHA-1 (collision-detecting sha1dc) and zlib-compresses every
# object, so its space ratio can be < 1; mailstore stores bodies uncompressed.
# core.fsyncMethod=batch does not help here: hash-object does not open an ODB
# transaction in git 2.39, so batch mode still issues one fsync per object.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_args "$@"

if ! command -v git >/dev/null; then
  for p in git git-fsync git-packed; do emit_error "$p" import "git not installed"; done
  exit 0
fi
GVER=$(git --version | awk '{print $3}')
GROOT="$WORK/git"
rm -rf -- "$GROOT"; mkdir -p -- "$GROOT"
# no user/system config may change what is measured
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
objects() { git -C "$1" count-objects -v | awk '/^count:/ { c += $2 } /^in-pack:/ { c += $2 } END { print c + 0 }'; }

# --- import, default and durable
for variant in git git-fsync; do
  r="$GROOT/$variant"; git init -q "$r"
  cfg=(); note="git $GVER defaults: loose objects written without fsync"
  if [[ $variant == git-fsync ]]; then cfg=(-c core.fsync=loose-object -c core.fsyncMethod=fsync); note="git $GVER, core.fsync=loose-object: every object fsynced before the next"; fi
  if run_timed secs git -C "$r" "${cfg[@]}" hash-object -w --stdin-paths < "$LIST"; then
    emit "$variant" import "$MESSAGES" "$BYTES" "$secs" "hash-object -w --stdin-paths over $MESSAGES message files -> $(objects "$r") loose objects; $note"
  else
    emit_error "$variant" import "git hash-object failed: $(last_line "$WORK/last.err")"
  fi
done
rm -rf -- "$GROOT/git-fsync"
r="$GROOT/git"
[[ -d "$r/.git/objects" ]] || exit 0

readall() { git -C "$1" cat-file --batch-all-objects --batch | wc -c; }
measure_read_scrub() { # PEER REPO WHAT
  local p=$1 repo=$2 what=$3 t out
  cold; t=$(now)
  if out=$(readall "$repo" 2>"$WORK/last.err") && [[ ! -s "$WORK/last.err" ]]; then
    emit "$p" read "$MESSAGES" "$BYTES" "$(since "$t")" "git cat-file --batch-all-objects --batch > pipe ($out bytes incl. headers) over $what; $CACHE_NOTE"
  else
    emit_error "$p" read "git cat-file failed: $(last_line "$WORK/last.err")"
  fi
  cold
  if run_timed secs git -C "$repo" fsck --full --no-dangling --no-progress; then
    emit "$p" scrub "$MESSAGES" "$BYTES" "$secs" "git fsck --full --no-dangling over $what (inflate + SHA-1 of every object); $CACHE_NOTE"
  else
    emit_error "$p" scrub "git fsck reported problems: $(last_line "$WORK/last.err")"
  fi
}
measure_read_scrub git "$r" "loose objects"
emit_space git "$BYTES" "$r/.git/objects" "du of .git/objects, loose zlib-compressed objects (one file per message, 4 KiB blocks)"

# --- pack everything (no refs point at the blobs, so list them explicitly)
t=$(now)
if git -C "$r" cat-file --batch-all-objects --batch-check='%(objectname)' \
     | git -C "$r" pack-objects -q "$r/.git/objects/pack/pack" >/dev/null 2>"$WORK/last.err" \
   && git -C "$r" prune-packed 2>>"$WORK/last.err"; then
  emit git-packed pack "$MESSAGES" "$BYTES" "$(since "$t")" "git pack-objects (zlib + delta compression, default window) of all $(objects "$r") objects, then prune-packed"
  measure_read_scrub git-packed "$r" "one pack"
  emit_space git-packed "$BYTES" "$r/.git/objects" "du of .git/objects after packing: zlib + deltas between similar messages"
else
  emit_error git-packed pack "git pack-objects failed: $(last_line "$WORK/last.err")"
fi
