#!/usr/bin/env bash
# Build log capture at volume: `pubdeck build` of a build whose command prints LINES lines of
# 80 bytes, against the same command with its output thrown away (`bash -c CMD > /dev/null`)
# and through a pipe (`bash -c CMD | cat > /dev/null`, the floor: a reader that does nothing),
# interleaved in one run. Prints each median, pubdeck's ratio to both, and
# pubdeck's peak RSS. pubdeck's log goes to stderr, here /dev/null, like cat's output.
#
#   scripts/bench-log.sh [LINES [RUNS]]      (1000000 7)
#
# Also times `pubdeck build` of the same build printing nothing: its fixed cost (fresh clone,
# output kept), which is part of the ratio. Work directories are on /dev/shm.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LINES=${1:-1000000} RUNS=${2:-7}
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
# Interleaved: each round runs the four commands one after the other, so a slower minute of
# the machine weighs on all of them alike; the ratios are medians of the per-round ratios.
names=('bash -c CMD > /dev/null' 'bash -c CMD | cat > /dev/null' 'pubdeck build (quiet)' 'pubdeck build')
cmds=("bash $repo/noisy.sh > /dev/null" "bash $repo/noisy.sh | cat > /dev/null"
  "$BIN build quiet --dir $repo > /dev/null 2>&1" "$BIN build noisy --dir $repo > /dev/null 2>&1")
for ((round = 0; round <= RUNS; round++)); do # round 0 warms up and is not kept
  for i in 0 1 2 3; do
    start=$EPOCHREALTIME
    bash -c "${cmds[$i]}"
    end=$EPOCHREALTIME
    ((round > 0)) && echo "$i $start $end" >>"$WORK/times"
  done
done
/usr/bin/time -o "$WORK/rss" -f '%M' "$BIN" build noisy --dir "$repo" >/dev/null 2>&1
rss=$(tail -1 "$WORK/rss")
python3 - "$WORK/times" "$LINES" "$rss" "${names[@]}" <<'PY'
import statistics, sys
path, lines, rss, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
ms = [[] for _ in names]
for line in open(path):
    i, start, end = line.split()
    ms[int(i)].append((float(end) - float(start)) * 1000)
med = [statistics.median(v) for v in ms]
print(f"{lines} lines of 80 bytes, {len(ms[0])} interleaved rounds, median of each:")
for n, m in zip(names, med):
    print(f"  {n}: {m:.0f} ms")
ratio = lambda a, b: statistics.median(x / y for x, y in zip(ms[a], ms[b]))
print(f"pubdeck build / pipe floor:   {ratio(3, 1):.3f}x (median of per-round ratios)")
print(f"pubdeck build / no reader:    {ratio(3, 0):.3f}x")
print(f"pubdeck peak RSS:             {rss // 1024} MiB")
PY
