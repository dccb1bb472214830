#!/usr/bin/env bash
# Cost of the live preconditions panel: `pubdeck check` vs `git status --porcelain` on a
# repository with N tracked files (default 50,000), on /dev/shm so disk noise does not hide
# what pubdeck itself costs. Prints both timings and the ratio (target <= 1.5x).
# usage: scripts/bench-check.sh [N_FILES]
set -euo pipefail
N=${1:-50000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pubdeck"
BASE=$(mktemp -d /dev/shm/pubdeck-bench-check.XXXXXX)
trap 'rm -rf "$BASE"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
git init -q --bare -b main "$BASE/remote.git"
git init -q -b main "$BASE/work"
cd "$BASE/work"
echo "creating $N tracked files..."
python3 - "$N" <<'PY'
import os, sys
n = int(sys.argv[1])
for i in range(n):
    d = f"src/m{i // 1000:03d}/d{(i // 100) % 10}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:06d}.c", "w") as f:
        f.write(f"int f{i}(void) {{ return {i}; }}\n")
PY
cp -r "$ROOT/assets/sample-env/.flox" .
git add -A && git commit -qm bench
git remote add origin "file://$BASE/remote.git" && git push -q -u origin main
git status --porcelain >/dev/null   # warm the index stat cache for both contestants
"$BIN" check hello --offline >/dev/null
hyperfine -N --warmup 3 --runs 20 --export-json "$BASE/h.json" \
    -n 'git status --porcelain' 'git status --porcelain' \
    -n 'pubdeck check --offline' "$BIN check hello --offline" \
    -n 'pubdeck check (with fetch)' "$BIN check hello"
python3 - "$BASE/h.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
g = r["git status --porcelain"]
for k, v in r.items():
    print(f"{k:28s} {v*1000:8.1f} ms   {v/g:5.2f}x git status")
PY
