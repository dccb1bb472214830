#!/usr/bin/env bash
# The workbench on a big catalog: time from starting `pubdeck tui` (in a real 120x40
# pseudo-terminal, on the demo workspace, with the 100k-package catalog of bench-search.sh)
# and pressing `2` to the frame whose Catalog tab lists all the packages. Runs with the
# catalog's search index file present (the usual case) and without it (the first run after
# an upgrade). Prints the median and max of RUNS runs of each (target: first results <= 200 ms).
#
#   scripts/bench-tui-catalog.sh [RUNS [PACKAGES [ORGS [SEED]]]]     (7 100000 400 1)
#
# Keystroke cost on the same size is measured in-process by `cargo bench --bench search`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-7} N=${2:-100000} ORGS=${3:-400} SEED=${4:-1}
[[ -n ${PUBDECK_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)
BIN=${PUBDECK_BIN:-$ROOT/target/release/pubdeck}
WORK=/dev/shm/pubdeck-bench-search.$N.$ORGS.$SEED
if [[ ! -f $WORK/seeded ]]; then
  PUBDECK_BIN=$BIN "$ROOT/scripts/bench-search.sh" "$N" "$ORGS" "$SEED" 1 >/dev/null
fi
W=$(mktemp -d /dev/shm/pubdeck-bench-tui.XXXXXX)
trap 'rm -rf "$W"' EXIT
export XDG_CONFIG_HOME=$WORK/cfg PUBDECK_DATA_DIR=$W/data
unset PUBDECK_TOKEN PUBDECK_ORG PUBDECK_CATALOG
"$BIN" demo --no-tui --path "$W/demo" >/dev/null
command -v tmux >/dev/null || { echo "bench-tui-catalog: needs tmux" >&2; exit 2; }
python3 - "$BIN" "$W/demo/workspace" "$WORK/catalog.sqlite" "$RUNS" "$N" <<'PY'
import os, subprocess, sys, time, statistics
binary, workspace, catalog, runs, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
marker = f"{n}/{n}"
sock = None

def tmux(*args, check=True):
    r = subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"tmux {args[0]} failed: {r.stderr.strip()}")
    return r.stdout

def once(run):
    global sock
    sock = f"pubdeck-bench-{os.getpid()}-{run}"
    # tmux is the terminal: the screen is read back rendered (every 5 ms), not as a byte stream.
    start = next_key = time.perf_counter()
    tmux("new-session", "-d", "-x", "120", "-y", "40", binary, "tui", "--dir", workspace, "--catalog", catalog)
    try:
        while True:
            screen = tmux("capture-pane", "-p", check=False)
            if time.perf_counter() - start > 20:
                raise SystemExit("no catalog frame within 20 s; the screen:\n" + screen)
            if marker in screen:
                return (time.perf_counter() - start) * 1000
            # Press `2` once the first frame is up (again if the tab has not switched in 0.5 s:
            # once on the Catalog tab, keys go to its search field).
            if "Builds" in screen and "Results" not in screen and time.perf_counter() > next_key:
                tmux("send-keys", "2", check=False)
                next_key = time.perf_counter() + 0.5
            time.sleep(0.005)
    finally:
        tmux("kill-server", check=False)

for label, drop_index in (("with the index file", False), ("without it", True)):
    times = []
    for run in range(runs):
        if drop_index:
            try:
                os.remove(catalog + ".search")
            except FileNotFoundError:
                pass
        times.append(once(f"{int(drop_index)}-{run}"))
    print(f"Catalog tab listing {n} packages, {label} ({runs} runs): "
          f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
PY
