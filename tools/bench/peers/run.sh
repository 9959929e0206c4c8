#!/usr/bin/env bash
# Run every peer measurement on one corpus, in one run, and collect the JSON lines.
#
# usage: tools/bench/peers/run.sh CORPUS WORKDIR [PEER...]
#   PEER is any of: floor git dovecot cyrus (default: all four, in that order)
# stdout: the JSON lines of every peer script (also saved to WORKDIR/peers.jsonl)
# The env knobs of the individual scripts (PEERS_*) pass through.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 2 ]]; then awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; fi
corpus=$1; work=$2; shift 2
peers=("$@"); (( ${#peers[@]} )) || peers=(floor git dovecot cyrus)
mkdir -p "$work"
"$here/setup.sh" --check >&2 || echo '[peers] some peers are missing; their scripts will print error lines (run setup.sh as root)' >&2
: > "$work/peers.jsonl"
for p in "${peers[@]}"; do
  [[ -x "$here/$p.sh" ]] || { echo "{\"peer\":\"$p\",\"measurement\":\"*\",\"error\":\"no script $p.sh\"}" | tee -a "$work/peers.jsonl"; continue; }
  "$here/$p.sh" "$corpus" "$work" | tee -a "$work/peers.jsonl" \
    || echo "{\"peer\":\"$p\",\"measurement\":\"*\",\"error\":\"$p.sh exited with status $?\"}" | tee -a "$work/peers.jsonl"
done
