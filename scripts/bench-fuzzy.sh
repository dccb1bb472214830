#!/usr/bin/env bash
# Compares the workbench's per-keystroke filtering (the one catalog search, nucleo) with skim v2
# and with `fzf --filter` on the same 100,000-package list and queries.
#   scripts/bench-fuzzy.sh            (needs fzf: apt-get install -y fzf)
set -euo pipefail
cd "$(dirname "$0")/.."
QUERIES="py-dh,lbtaoc,perl-q,ut,json-check,rs-auth,paygw,cfgsync,service,org001/web,xyz"
LIST="$(mktemp)"
trap 'rm -f "$LIST"' EXIT

echo "== pubdeck (in-process, per keystroke)"
cargo bench -q --bench search -- --write-list "$LIST" --queries "$QUERIES"

if ! command -v fzf >/dev/null; then
  echo "fzf not installed; skipping the comparison" >&2
  exit 0
fi
echo "== fzf $(fzf --version | cut -d' ' -f1) --filter (whole query, includes process start and reading the list)"
best=""
for _ in 1 2 3 4 5; do
  s=$(date +%s%N); fzf --filter x </dev/null >/dev/null || true; e=$(( ($(date +%s%N) - s) / 1000 ))
  if [ -z "$best" ] || [ "$e" -lt "$best" ]; then best=$e; fi
done
awk -v us="$best" 'BEGIN { printf "(fzf start-up on empty input, best of 5: %.2f ms)\n", us / 1000 }'
IFS=',' read -ra qs <<<"$QUERIES"
for q in "${qs[@]}"; do
  best=""
  for _ in 1 2 3 4 5; do
    s=$(date +%s%N)
    n=$( (fzf --filter "$q" <"$LIST" || true) | wc -l)
    e=$(( ($(date +%s%N) - s) / 1000 ))
    if [ -z "$best" ] || [ "$e" -lt "$best" ]; then best=$e; fi
  done
  awk -v q="$q" -v n="$n" -v us="$best" 'BEGIN { printf "%-14s %6d matches  best of 5: %7.2f ms\n", q, n, us / 1000 }'
done
