#!/usr/bin/env bash
# The catalog service under load: wrk against /v1/health (the HTTP floor of this stack on this
# machine), /v1/search with the workload's 50 queries in rotation (after one warm pass, as a
# running service would have seen them: answers come from the result cache), /v1/catalogs/
# {org}/packages/{pkg}, "distinct": /v1/search with up to 60,000 queries never asked twice
# in the run (every one a full scan), and "rot1000": 1,000 other distinct queries in rotation,
# on SQLite and on PostgreSQL, in one run. Prints req/s and latency of each, and each as a
# ratio of the health floor.
#
#   scripts/bench-serve.sh [PACKAGES [ORGS [SEED [SECONDS [CONNECTIONS]]]]]   (100000 400 1 10 200)
#
# The workload is benches/workload.rs' (shared with bench-search.sh, on /dev/shm). Each
# database is seeded through the service itself (`catalog create` and `catalog import` over
# HTTP as its owner) and the seeding time is printed: that is the "10,000 builds in under
# 30 s" figure, scaled. PostgreSQL comes from scripts/pg-test-server.sh (loopback only);
# BENCH_BACKENDS="sqlite" skips it. Only 127.0.0.1 is used.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-100000} ORGS=${2:-400} SEED=${3:-1} SECS=${4:-10} CONNS=${5:-200}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
command -v wrk >/dev/null || { echo "bench-serve: needs wrk (apt-get install wrk)" >&2; exit 2; }
[[ -n ${PUBDECK_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)
BIN=${PUBDECK_BIN:-$ROOT/target/release/pubdeck}
WORK=/dev/shm/pubdeck-bench-search.$N.$ORGS.$SEED
if [[ ! -f $WORK/queries.txt ]]; then
  (cd "$ROOT" && cargo bench --quiet --bench workload -- "$WORK" "$N" "$ORGS" "$SEED")
fi
RUN=$(mktemp -d /dev/shm/pubdeck-bench-serve.XXXXXX)
SERVER=
cleanup() {
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$RUN"
}
trap cleanup EXIT
export XDG_CONFIG_HOME=$RUN/cfg PUBDECK_DATA_DIR=$RUN/data
unset PUBDECK_TOKEN PUBDECK_ORG PUBDECK_CATALOG

command -v jq >/dev/null || { echo "bench-serve: needs jq" >&2; exit 2; }
# Distinct queries, none asked twice in a run (no answer comes from the result cache): name
# prefixes, fuzzy abbreviations and description words, drawn from the workload with a seed.
DISTINCT=$WORK/distinct-queries.txt
if [[ ! -f $DISTINCT ]]; then
  python3 - "$WORK/fzf.txt" "$DISTINCT" "$SEED" <<'PY'
import random, sys
src, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(seed)
rows = [l.rstrip("\n").split("\t") for l in open(src)]
names = [r[0].split("/")[1] for r in rows]
queries = set()
while len(queries) < min(60000, 3 * len(names)):
    r, n = random.random(), random.choice(names)
    if r < 0.4:
        q = n[: random.randint(2, min(8, len(n)))]
    elif r < 0.8:
        picked = sorted(random.sample(range(len(n)), min(len(n), random.randint(3, 6))))
        q = "".join(n[i] for i in picked)
    else:
        words = random.choice(rows)[1].rstrip(".").lower().split()
        q = " ".join(random.sample(words, min(2, len(words))))
    queries.add(q)
queries = sorted(queries)
random.shuffle(queries)
open(out, "w").write("\n".join(queries) + "\n")
PY
fi
# wrk scripts: rotating search queries and package pages, with the bearer token. Each of
# wrk's threads takes every THREADS-th entry from its own offset, so no entry is asked twice
# per pass (a plain counter per thread would ask each one once per thread).
THREADS=2
threads_lua() {
  cat <<EOF
threads = $THREADS
local next_id = 0
setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
EOF
}
search_lua() { # QUERIES_FILE -> a wrk script asking them in turn (URL-escaped by Python)
  python3 -c 'import sys, urllib.parse
print("local queries = {")
for q in open(sys.argv[1]).read().splitlines():
    print("  \"%s\"," % urllib.parse.quote(q, safe=""))
print("}")' "$1"
  cat <<'EOF'
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/v1/search?q=" .. queries[((i * threads + id) % #queries) + 1] .. "&limit=20")
end
EOF
  threads_lua
}
search_lua "$WORK/queries.txt" >"$RUN/search.lua"
search_lua "$DISTINCT" >"$RUN/distinct.lua"
# 1,000 distinct queries in rotation (the last of the file: the distinct run does not reach
# them), more than the service's first answer cache held: the first pass scans, later ones
# find their answers.
tail -n 1000 "$DISTINCT" >"$RUN/rotating.txt"
search_lua "$RUN/rotating.txt" >"$RUN/rotating.lua"
{
  printf 'local pages = {\n'
  while IFS=/ read -r org pkg; do printf '  "/v1/catalogs/%s/packages/%s",\n' "$org" "$pkg"; done <"$WORK/show.txt"
  cat <<'EOF'
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", pages[((i * threads + id) % #pages) + 1])
end
EOF
  threads_lua
} >"$RUN/show.lua"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

load() { # NAME URL_PATH [LUA] -> "req/s p50_ms p99_ms errors"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
    ${3:+-s "$3"} "http://127.0.0.1:$PORT$2" 2>&1)
  echo "$out" >"$RUN/$1.wrk"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50.000%" { p50 = ms($2) } $1 == "50%" { p50 = ms($2) }
    $1 == "99.000%" { p99 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { err += $NF } /Socket errors/ { err += 1 }
    END { printf "%s %s %s %d\n", rps, p50, p99, err }' <<<"$out"
}

for backend in $BACKENDS; do
  case $backend in
    sqlite) DB="sqlite://$RUN/service.sqlite" ;;
    postgres)
      PGURL=$("$ROOT/scripts/pg-test-server.sh" start)
      psql "$PGURL" -qc 'DROP DATABASE IF EXISTS pubdeck_bench' -c 'CREATE DATABASE pubdeck_bench' >/dev/null
      DB=${PGURL%/*}/pubdeck_bench
      ;;
    *) echo "bench-serve: unknown backend $backend" >&2; exit 2 ;;
  esac
  TOKEN=$("$BIN" user add bench --db "$DB" --json | jq -r .token)
  PORT=$(free_port)
  "$BIN" serve --listen "127.0.0.1:$PORT" --db "$DB" >"$RUN/serve-$backend.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
  t0=$EPOCHREALTIME
  while read -r org; do
    PUBDECK_CATALOG=http://127.0.0.1:$PORT PUBDECK_TOKEN=$TOKEN \
      "$BIN" catalog create "$org" --store "file://$RUN/store" --key "$WORK/key.pub" >/dev/null
    PUBDECK_CATALOG=http://127.0.0.1:$PORT PUBDECK_TOKEN=$TOKEN \
      "$BIN" catalog import "$org" "$WORK/builds/$org.ndjson" >/dev/null
  done <"$WORK/orgs.txt"
  t1=$EPOCHREALTIME
  seed_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  # One pass over the queries and pages first, as a running service would have.
  load warm /v1/search "$RUN/search.lua" >/dev/null
  read -r h_rps h_p50 h_p99 h_err < <(load health /v1/health)
  read -r s_rps s_p50 s_p99 s_err < <(load search /v1/search "$RUN/search.lua")
  read -r p_rps p_p50 p_p99 p_err < <(load show / "$RUN/show.lua")
  read -r d_rps d_p50 d_p99 d_err < <(load distinct /v1/search "$RUN/distinct.lua")
  read -r r_rps r_p50 r_p99 r_err < <(load rot1000 /v1/search "$RUN/rotating.lua")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
  echo "== $backend: $N packages in $ORGS orgs, seeded over HTTP in ${seed_s} s; wrk -t$THREADS -c$CONNS -d${SECS}s"
  row() { awk -v n="$1" -v r="$2" -v a="$3" -v b="$4" -v e="$5" -v h="$h_rps" \
    'BEGIN { printf "  %-8s %10.0f req/s  p50 %7.1f ms  p99 %7.1f ms  errors %d  %5.3fx health\n", n, r, a, b, e, r / h }'; }
  row health "$h_rps" "$h_p50" "$h_p99" "$h_err"
  row search "$s_rps" "$s_p50" "$s_p99" "$s_err"
  row show "$p_rps" "$p_p50" "$p_p99" "$p_err"
  row distinct "$d_rps" "$d_p50" "$d_p99" "$d_err"
  row rot1000 "$r_rps" "$r_p50" "$r_p99" "$r_err"
  echo "$backend $s_rps $p_rps $d_rps $r_rps" >>"$RUN/summary"
done
if [[ $(wc -l <"$RUN/summary") -eq 2 ]]; then
  awk 'NR == 1 { s = $2; p = $3; d = $4; r = $5 } NR == 2 { printf "postgres/sqlite: search %.2fx  show %.2fx  distinct %.2fx  rot1000 %.2fx\n", $2 / s, $3 / p, $4 / d, $5 / r }' "$RUN/summary"
fi
