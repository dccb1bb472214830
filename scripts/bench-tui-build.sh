#!/usr/bin/env bash
# The workbench during a build that floods its log: `pubdeck tui` in a real 120x40 tmux
# terminal, `b` on a build printing LINES lines of 80 bytes, and keys sent all along (focus the
# log, scroll up and down, page, follow again) until the status line says it was built. The
# workbench records its own timings (PUBDECK_FRAME_STATS, src/tui/frames.rs): each turn of its
# event loop (the actions it applied, then its draw if any; input waits while a turn runs),
# each draw, and each key's wait from the loop taking it to the end of the frame that shows it.
# Printed against the 16 ms frame budget, with the build's wall time in the workbench against
# `pubdeck build` of the same build.
#
#   scripts/bench-tui-build.sh [LINES [RUNS]]      (1000000 5)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LINES=${1:-1000000} RUNS=${2:-5}
command -v tmux >/dev/null || { echo "bench-tui-build: needs tmux" >&2; exit 2; }
[[ -n ${PUBDECK_BIN:-} ]] || (cd "$ROOT" && cargo build --release --quiet)
BIN=${PUBDECK_BIN:-$ROOT/target/release/pubdeck}
WORK=$(mktemp -d /dev/shm/pubdeck-bench-tui-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export XDG_CONFIG_HOME=$WORK/cfg PUBDECK_DATA_DIR=$WORK/data
unset PUBDECK_TOKEN PUBDECK_ORG PUBDECK_CATALOG
# shellcheck source=scripts/noisy-repo.sh
source "$ROOT/scripts/noisy-repo.sh"
noisy_repo "$WORK" "$LINES"
"$BIN" build noisy --dir "$WORK/repo" >/dev/null 2>&1 # warm the page cache

python3 - "$BIN" "$WORK" "$RUNS" "$LINES" <<'PY'
import json, os, subprocess, sys, time, statistics
binary, work, runs, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
repo = os.path.join(work, "repo")
KEYS = ["Tab", "Tab", "k", "k", "k", "C-u", "j", "j", "C-d", "k", "g", "G"]

def tmux(sock, *args, check=True):
    r = subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"tmux {args[0]} failed: {r.stderr.strip()}")
    return r.stdout

def cli_build():
    t = time.perf_counter()
    subprocess.run([binary, "build", "noisy", "--dir", repo], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000

def once(run):
    sock = f"pubdeck-bench-build-{os.getpid()}-{run}"
    stats = os.path.join(work, f"frames-{run}.json")
    env_args = ["env", f"PUBDECK_FRAME_STATS={stats}", binary, "tui", "--dir", repo]
    tmux(sock, "new-session", "-d", "-x", "120", "-y", "40", *env_args)
    try:
        deadline = time.perf_counter() + 20
        while "noisy" not in tmux(sock, "capture-pane", "-p", check=False):
            if time.perf_counter() > deadline:
                raise SystemExit("the workbench did not show the builds within 20 s")
            time.sleep(0.01)
        start = time.perf_counter()
        tmux(sock, "send-keys", "b")
        sent = 0
        deadline = start + 120
        while True:
            screen = tmux(sock, "capture-pane", "-p", check=False)
            if "built noisy" in screen:
                wall = (time.perf_counter() - start) * 1000
                break
            if "failed" in screen.splitlines()[0]:
                raise SystemExit("the build failed:\n" + screen)
            if time.perf_counter() > deadline:
                raise SystemExit("no `built noisy` within 120 s; the screen:\n" + screen)
            if sent < 2000:
                tmux(sock, "send-keys", KEYS[sent % len(KEYS)], check=False)
                sent += 1
            time.sleep(0.005)
        tmux(sock, "send-keys", "q", check=False)
        deadline = time.perf_counter() + 10
        while not os.path.exists(stats):
            if time.perf_counter() > deadline:
                raise SystemExit("the workbench wrote no frame statistics")
            time.sleep(0.01)
        time.sleep(0.05)
        return wall, sent, json.load(open(stats))
    finally:
        tmux(sock, "kill-server", check=False)

rows = []
for run in range(runs):
    cli = cli_build()
    wall, sent, s = once(run)
    rows.append((cli, wall, sent, s))
    t, d, k = s["turn"], s["draw"], s["key_to_frame"]
    print(f"run {run + 1}: build {wall:.0f} ms in the workbench, {cli:.0f} ms by `pubdeck build`; "
          f"{t['n']} turns p50 {t['p50_ms']:.1f} / p99 {t['p99_ms']:.1f} / max {t['max_ms']:.1f} ms; "
          f"{d['n']} draws p99 {d['p99_ms']:.1f} ms; {k['n']} keys (`b` and {sent} more) shown "
          f"p50 {k['p50_ms']:.1f} / p99 {k['p99_ms']:.1f} / max {k['max_ms']:.1f} ms")
worst = lambda what: max(r[3][what]["p99_ms"] for r in rows)
ratio = statistics.median(r[1] for r in rows) / statistics.median(r[0] for r in rows)
print(f"{lines} lines, worst of {runs} runs: turn p99 {worst('turn'):.1f} ms = {worst('turn') / 16:.2f}x "
      f"the 16 ms frame budget; key to frame p99 {worst('key_to_frame'):.1f} ms = "
      f"{worst('key_to_frame') / 16:.2f}x; build in the workbench / `pubdeck build`: {ratio:.2f}x (medians)")
PY
