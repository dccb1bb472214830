#!/usr/bin/env bash
# Time to first frame of `pubdeck demo` once the workspace exists: the binary runs in a real
# pseudo-terminal (120x40); the clock stops when the first frame's builds table arrives.
# Prints the median and max of N runs (target <= 150 ms).
# usage: scripts/bench-first-frame.sh [RUNS]
set -euo pipefail
RUNS=${1:-15}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pubdeck"
W=$(mktemp -d /dev/shm/pubdeck-bench-frame.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$BIN" demo --no-tui --path "$W/demo" >/dev/null
python3 - "$BIN" "$W/demo" "$RUNS" <<'PY'
import os, pty, sys, time, select, fcntl, termios, struct, statistics
binary, demo, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(runs):
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execv(binary, [binary, "demo", "--path", demo])
    buf = b""
    while b"Builds" not in buf or b"Greets" not in buf:
        r, _, _ = select.select([fd], [], [], 10)
        if not r:
            raise SystemExit("no frame within 10 s")
        buf += os.read(fd, 65536)
    times.append((time.perf_counter() - start) * 1000)
    os.write(fd, b"q")
    os.waitpid(pid, 0)
    os.close(fd)
print(f"first frame of `pubdeck demo` ({runs} runs): median {statistics.median(times):.1f} ms, "
      f"min {min(times):.1f} ms, max {max(times):.1f} ms (target <= 150 ms)")
PY
