#!/usr/bin/env bash
# The workbench on a big catalog: time from starting `pubdeck tui` (in a real 120x40
# pseudo-terminal, on the demo workspace, with the 100k-package catalog of bench-search.sh)
# and pressing `2` to the frame whose Catalog tab lists all the packages. Runs with the
# catalog's search index file present (the usual case) and without it (the first run after
# an upgrade). Then, with the tab open, one more build is registered (`catalog import` of one
# of the workload's extras, as a publish would) and Ctrl-R pressed: the time until the list
# shows it. Prints the median and max of RUNS runs of each (target: first results <= 200 ms).
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
if [[ ! -d $WORK/extras ]]; then # a workload written before extras existed: same seed, same data
  (cd "$ROOT" && cargo bench --quiet --bench workload -- "$WORK" "$N" "$ORGS" "$SEED")
fi
W=$(mktemp -d /dev/shm/pubdeck-bench-tui.XXXXXX)
trap 'rm -rf "$W"' EXIT
export XDG_CONFIG_HOME=$WORK/cfg PUBDECK_DATA_DIR=$W/data
unset PUBDECK_TOKEN PUBDECK_ORG PUBDECK_CATALOG
"$BIN" demo --no-tui --path "$W/demo" >/dev/null
command -v tmux >/dev/null || { echo "bench-tui-catalog: needs tmux" >&2; exit 2; }
python3 - "$BIN" "$W/demo/workspace" "$WORK/catalog.sqlite" "$RUNS" "$WORK" <<'PY'
import os, subprocess, sys, time, statistics
binary, workspace, catalog, runs, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
first_org = open(os.path.join(work, "orgs.txt")).readline().strip()
env = dict(os.environ, PUBDECK_CATALOG=catalog)
sock = None

def count():
    # Packages in the catalog now (the seeded ones plus the extras registered so far).
    used = sum(1 for i in range(64) if os.path.exists(os.path.join(work, "extras", f"{i}.used")))
    return int(open(os.path.join(work, "fzf.txt")).read().count("\n")) + used

def register_extra():
    for i in range(64):
        used = os.path.join(work, "extras", f"{i}.used")
        if not os.path.exists(used):
            subprocess.run([binary, "catalog", "import", first_org, os.path.join(work, "extras", f"{i}.ndjson")],
                           check=True, capture_output=True, env=env)
            open(used, "w").close()
            return
    raise SystemExit("all 64 extras are registered; regenerate the workload")

def tmux(*args, check=True):
    r = subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"tmux {args[0]} failed: {r.stderr.strip()}")
    return r.stdout

def once(run, reload=False):
    global sock
    sock = f"pubdeck-bench-{os.getpid()}-{run}"
    n = count()
    marker = f"{n}/{n}"
    # tmux is the terminal: the screen is read back rendered (every 5 ms), not as a byte stream.
    start = next_key = time.perf_counter()
    tmux("new-session", "-d", "-x", "120", "-y", "40", binary, "tui", "--dir", workspace, "--catalog", catalog)
    try:
        while True:
            screen = tmux("capture-pane", "-p", check=False)
            if time.perf_counter() - start > 20:
                raise SystemExit("no catalog frame within 20 s; the screen:\n" + screen)
            if marker in screen:
                if not reload:
                    return (time.perf_counter() - start) * 1000
                register_extra()
                marker = f"{n + 1}/{n + 1}"
                start = time.perf_counter()
                tmux("send-keys", "C-r", check=False)
                reload = False
                continue
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
    print(f"Catalog tab listing {count()} packages, {label} ({runs} runs): "
          f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
times = [once(f"r-{run}", reload=True) for run in range(runs)]
print(f"Ctrl-R after one more build was registered ({runs} runs): "
      f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
PY
