#!/usr/bin/env bash
# CLI search at scale: `pubdeck search QUERY` (one process per query: start, open the embedded
# catalog, rank, print 20 results) against `fzf --filter QUERY` over the same packages as
# `org/name<TAB>description` lines, alternately in one run. Prints p50/p99 of each and the
# ratio.
#
#   scripts/bench-search.sh [PACKAGES [ORGS [SEED [ROUNDS]]]]     (100000 400 1 3)
#
# The workload (benches/workload.rs) and the seeded catalog are kept on /dev/shm between
# runs; the catalog is seeded through pubdeck's own interface (`catalog create`, `catalog
# import`), and the time that takes is printed too. PUBDECK_BIN picks another binary (e.g.
# an older build, for a before/after figure).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-100000} ORGS=${2:-400} SEED=${3:-1} ROUNDS=${4:-3}
command -v fzf >/dev/null || { echo "bench-search: needs fzf (apt-get install fzf)" >&2; exit 2; }
[[ -n ${PUBDECK_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)
BIN=${PUBDECK_BIN:-$ROOT/target/release/pubdeck}
WORK=/dev/shm/pubdeck-bench-search.$N.$ORGS.$SEED
if [[ ! -f $WORK/queries.txt ]]; then
  (cd "$ROOT" && cargo bench --quiet --bench workload -- "$WORK" "$N" "$ORGS" "$SEED")
fi

export PUBDECK_CATALOG=$WORK/catalog.sqlite XDG_CONFIG_HOME=$WORK/cfg PUBDECK_DATA_DIR=$WORK/data
unset PUBDECK_TOKEN PUBDECK_ORG
if [[ ! -f $WORK/seeded ]]; then
  rm -f "$WORK"/catalog.sqlite* "$WORK"/extras/*.used
  t0=$EPOCHREALTIME
  while read -r org; do
    "$BIN" catalog create "$org" --store "file://$WORK/store" --key "$WORK/key.pub" >/dev/null
    "$BIN" catalog import "$org" "$WORK/builds/$org.ndjson" >/dev/null
  done <"$WORK/orgs.txt"
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" -v n="$N" -v o="$ORGS" \
    'BEGIN { printf "seeded %d packages in %d orgs through `catalog import`: %.1f s\n", n, o, b - a }'
  touch "$WORK/seeded"
fi

ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
: >"$WORK/fzf.ms"
: >"$WORK/pubdeck.ms"
"$BIN" search warmup >/dev/null
mapfile -t QUERIES <"$WORK/queries.txt"
for ((r = 0; r < ROUNDS; r++)); do
  for q in "${QUERIES[@]}"; do
    t0=$EPOCHREALTIME
    fzf --filter "$q" <"$WORK/fzf.txt" >/dev/null || true
    t1=$EPOCHREALTIME
    "$BIN" search "$q" --limit 20 >/dev/null 2>&1
    t2=$EPOCHREALTIME
    ms "$t0" "$t1" >>"$WORK/fzf.ms"
    ms "$t1" "$t2" >>"$WORK/pubdeck.ms"
  done
done

pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; print v[i] }'; }
fp50=$(pct "$WORK/fzf.ms" 50) fp99=$(pct "$WORK/fzf.ms" 99)
pp50=$(pct "$WORK/pubdeck.ms" 50) pp99=$(pct "$WORK/pubdeck.ms" 99)
echo "queries: ${#QUERIES[@]} x $ROUNDS rounds over $N packages in $ORGS orgs"
printf '%-26s p50 %8.1f ms   p99 %8.1f ms\n' "fzf --filter" "$fp50" "$fp99" \
  "pubdeck search --limit 20" "$pp50" "$pp99"
awk -v a="$pp50" -v b="$fp50" -v c="$pp99" -v d="$fp99" \
  'BEGIN { printf "ratio pubdeck/fzf: p50 %.2fx   p99 %.2fx\n", a / b, c / d }'
