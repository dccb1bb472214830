#!/usr/bin/env bash
# Build log capture at volume: `pubdeck build` of a build whose command prints LINES lines of
# 80 bytes, against the same command with its output thrown away (`bash -c CMD > /dev/null`)
# and through a pipe (`bash -c CMD | cat > /dev/null`, the floor: a reader that does nothing),
# alternately in one run (hyperfine). Prints each median, pubdeck's ratio to both, and
# pubdeck's peak RSS. pubdeck's log goes to stderr, here /dev/null, like cat's output.
#
#   scripts/bench-log.sh [LINES [RUNS]]      (1000000 7)
#
# Also times `pubdeck build` of the same build printing nothing: its fixed cost (fresh clone,
# output kept), which is part of the ratio. Work directories are on /dev/shm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LINES=${1:-1000000} RUNS=${2:-7}
command -v hyperfine >/dev/null || { echo "bench-log: needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench-log: needs jq" >&2; exit 2; }
[[ -n ${PUBDECK_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)
BIN=${PUBDECK_BIN:-$ROOT/target/release/pubdeck}
WORK=$(mktemp -d /dev/shm/pubdeck-bench-log.XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$WORK"' EXIT
export XDG_CONFIG_HOME=$WORK/cfg PUBDECK_DATA_DIR=$WORK/data
unset PUBDECK_TOKEN PUBDECK_ORG PUBDECK_CATALOG

# shellcheck source=scripts/noisy-repo.sh
source "$ROOT/scripts/noisy-repo.sh"
noisy_repo "$WORK" "$LINES"
repo=$WORK/repo

"$BIN" build noisy --dir "$repo" >/dev/null 2>&1 # warm the page cache
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$WORK/h.json" \
  -n 'bash -c CMD > /dev/null' "bash $repo/noisy.sh > /dev/null" \
  -n 'bash -c CMD | cat > /dev/null' "bash $repo/noisy.sh | cat > /dev/null" \
  -n 'pubdeck build (quiet)' "$BIN build quiet --dir $repo > /dev/null 2>&1" \
  -n 'pubdeck build' "$BIN build noisy --dir $repo > /dev/null 2>&1" >/dev/null
/usr/bin/time -o "$WORK/rss" -f '%M' "$BIN" build noisy --dir "$repo" >/dev/null 2>&1
rss=$(tail -1 "$WORK/rss")
jq -r --arg rss "$rss" --arg lines "$LINES" '
  (.results | map({(.command): .median}) | add) as $m
  | "\($lines) lines of 80 bytes, median of \(.results[0].times | length) runs each:",
    (.results[] | "  \(.command): \(.median * 1000 | floor) ms"),
    "pubdeck build / pipe floor:   \(($m["pubdeck build"] / $m["bash -c CMD | cat > /dev/null"]) * 1000 | round / 1000)x",
    "pubdeck build / no reader:    \(($m["pubdeck build"] / $m["bash -c CMD > /dev/null"]) * 1000 | round / 1000)x",
    "pubdeck peak RSS:             \(($rss | tonumber) / 1024 | floor) MiB"' "$WORK/h.json"
