#!/usr/bin/env bash
# Closures against `nix copy` (issue 27). An output whose closure has N store paths in the real
# Nix store (each `dep-<run>-<i>` holds KIB KiB of text naming the next one, added with
# `nix-store --add` and registered with it as its reference, so pubdeck must make every one
# content-addressed), published with a release build, in three cases:
#   a. first publish into an empty file:// store;
#   b. the next version, every dependency already in the store;
#   c. install of the closure into an empty store root (pubdeck's own store, PUBDECK_NIX=0).
# Each case runs Nix on the same paths in the same run: a/b `nix copy --to
# 'file://…?compression=zstd&secret-key=…'` (b: the new top path only is missing), c `nix copy
# --from` pubdeck's store into an empty chroot store. For a and b the ratio is pubdeck's
# post-build stages (pack + sign + upload + register, from `publish --json`) over nix copy's
# wall time; for c wall time over wall time. Workloads live on /dev/shm; the dependencies go
# into the real /nix/store (that is where pubdeck reads them) and are deleted at exit.
# usage: scripts/bench-closure.sh [N [KIB]]          (300 2048; small paths: 2000 4)
# SELF=1: every dependency also names itself (as libraries do in their RPATH), so it is made
# content-addressed modulo its own hash part, as `nix store make-content-addressed` does.
# PUBDECK_BIN=/path/to/pubdeck benches that binary (e.g. an older build) instead of building.
# WRAP="perf record -g -o /dev/shm/a.perf" runs case a's publish under that command, WRAP_B
# case b's.
set -euo pipefail
N=${1:-300}
KIB=${2:-2048}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v nix >/dev/null || { apt-get install -y -qq nix-bin >/dev/null; }
if [[ -z ${PUBDECK_BIN:-} ]]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${PUBDECK_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/pubdeck}
W=$(mktemp -d /dev/shm/pubdeck-bench-closure.XXXXXX)
export NIX_CONFIG=$'experimental-features = nix-command\nsubstituters =\nsandbox = false'
export XDG_CACHE_HOME=$W/xdg XDG_CONFIG_HOME=$W/cfg PUBDECK_DATA_DIR=$W/data
export PUBDECK_CATALOG=$W/catalog.sqlite PUBDECK_SIGNING_KEY=$W/sk PUBDECK_ORG=bench
unset PUBDECK_TOKEN PUBDECK_STORE
cleanup() {
  if [[ -s $W/paths ]]; then
    # shellcheck disable=SC2046
    nix store delete $(cat "$W/tops" 2>/dev/null) $(tac "$W/paths") >/dev/null 2>&1 || true
  fi
  chmod -R u+w "$W" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')

echo "adding $N store paths of $KIB KiB, each referring to the next..."
python3 - "$W" "$N" "$KIB" "$RUN" <<'PY'
import hashlib, json, os, subprocess, sys
w, n, kib, run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
A = "0123456789abcdfghijklmnpqrsvwxyz"
def nix32(h):
    out = []
    for k in range(len(h) * 8 // 5 + (1 if len(h) * 8 % 5 else 0) - 1, -1, -1):
        b = k * 5; i, j = b // 8, b % 8
        c = (h[i] >> j) | ((h[i + 1] << (8 - j)) if i + 1 < len(h) else 0)
        out.append(A[c & 31])
    return "".join(out)
def s(b): return len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8)
def nar(data):
    f = s(b"(") + s(b"type") + s(b"regular") + s(b"contents") + s(data) + s(b")")
    share = s(b"(") + s(b"type") + s(b"directory") + s(b"entry") + s(b"(") + s(b"name") + s(b"data.txt") + s(b"node") + f + s(b")") + s(b")")
    return s(b"nix-archive-1") + s(b"(") + s(b"type") + s(b"directory") + s(b"entry") + s(b"(") + s(b"name") + s(b"share") + s(b"node") + share + s(b")") + s(b")")
def ca_path(nar_bytes, name):
    d = hashlib.sha256(f"source:sha256:{hashlib.sha256(nar_bytes).hexdigest()}:/nix/store:{name}".encode()).digest()
    c = bytearray(20)
    for i, x in enumerate(d): c[i % 20] ^= x
    return f"/nix/store/{nix32(bytes(c))}-{name}"
line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
selfref = os.environ.get("SELF") == "1"
paths, trees, nxt = [], [], None
for i in reversed(range(n)):
    name = f"dep-{run}-{i}"
    body = (line * (kib * 1024 // len(line) + 1))[: kib * 1024]
    if selfref:
        # Written straight into the store under a made-up hash part, so it can name itself
        # (as a library names its own directory in an RPATH); registered below.
        own = f"/nix/store/{nix32(os.urandom(20))}-{name}"
        body = f"self: {own}/lib\n".encode() + body + f"self again: {own}\n".encode()
    data = body + (f"next: {nxt}\n".encode() if nxt else b"last\n") + f"{i}\n".encode()
    tree = own if selfref else os.path.join(w, "deps", name)
    os.makedirs(os.path.join(tree, "share"))
    with open(os.path.join(tree, "share", "data.txt"), "wb") as f: f.write(data)
    nxt = own if selfref else ca_path(nar(data), name)
    paths.append(nxt); trees.append(tree)
paths.reverse(); trees.reverse()
info = {}
if selfref:
    for p, t in zip(paths, trees):
        b = nar(open(os.path.join(t, "share", "data.txt"), "rb").read())
        info[p] = {"narHash": "sha256:" + nix32(hashlib.sha256(b).digest()), "narSize": len(b)}
else:
    added = []
    for k in range(0, n, 200):
        out = subprocess.run(["nix-store", "--add", *trees[k:k + 200]], check=True, capture_output=True, text=True).stdout.split()
        added += out
    assert added == paths, "computed store paths differ from Nix's"
    for k in range(0, n, 500):
        for p in json.loads(subprocess.run(["nix", "path-info", "--json", *paths[k:k + 500]], check=True, capture_output=True, text=True).stdout):
            info[p["path"]] = p
def refs(i):
    r = ([paths[i]] if selfref else []) + ([paths[i + 1]] if i + 1 < n else [])
    return f"{len(r)}\n" + "".join(f"{x}\n" for x in r)
reg = "".join(f"{p}\n{info[p]['narHash']}\n{info[p]['narSize']}\n\n{refs(i)}" for i, p in enumerate(paths))
subprocess.run(["nix-store", "--register-validity", "--reregister", "--hash-given"], input=reg, check=True, text=True)
open(os.path.join(w, "paths"), "w").write("\n".join(paths) + "\n")
PY
DEP0=$(head -1 "$W/paths")

"$BIN" key generate --name bench-1 --out "$W/sk" >/dev/null 2>&1
"$BIN" catalog create bench --store "file://$W/cache-pubdeck" --key "$W/sk.pub" >/dev/null
mkdir -p "$W/repo/.flox/env"
git -C "$W" init -q --bare -b main remote.git
manifest() {
  cat >"$W/repo/.flox/env/manifest.toml" <<EOF
version = 1
[install]
hello.pkg-path = "hello"

[build.app]
version = "$1.0.0"
command = '''
  mkdir -p \$out/bin
  ln -s $DEP0/share \$out/share
  printf '#!/bin/sh\\necho version $1\\n' > \$out/bin/app
  chmod +x \$out/bin/app
'''
EOF
}
g() { git -C "$W/repo" -c user.name=bench -c user.email=bench@example.invalid "$@"; }
echo '{"name": "bench", "version": 1}' >"$W/repo/.flox/env.json"
manifest 1
g init -q -b main && g add -A && g commit -q -m v1
g remote add origin "file://$W/remote.git" && g push -q -u origin main

# Nix's side: a top path of the same shape (a tiny tree naming dep 0, registered with it).
nix_top() {
  mkdir -p "$W/top$1/app-$RUN-$1/bin"
  printf '#!/bin/sh\necho %s %s\n' "$1" "$DEP0" >"$W/top$1/app-$RUN-$1/bin/app"
  local p
  p=$(nix-store --add "$W/top$1/app-$RUN-$1")
  nix path-info --json "$p" | python3 -c '
import json, sys
p = json.load(sys.stdin)[0]
print(p["path"]); print(p["narHash"]); print(p["narSize"]); print(); print(1); print(sys.argv[1])' "$DEP0" |
    nix-store --register-validity --reregister --hash-given
  echo "$p" >>"$W/tops"
  echo "$p"
}
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>>"$W/stderr.log"; e=$(date +%s.%N); echo "$e - $s" | bc; }
stages() { # the post-build stages of a `publish --json` answer
  python3 -c '
import json, sys
d = dict(json.load(open(sys.argv[1]))["durations"])
print(sum(d.get(s, 0) for s in ("pack", "sign", "upload", "register")))
print(" ".join(f"{s} {d.get(s, 0):.3f}" for s in ("pack", "sign", "upload", "register")))' "$1"
}
NIXTO="file://$W/cache-nix?compression=zstd&secret-key=$W/sk"

echo "a. first publish..."
TOP1=$(nix_top 1)
${WRAP:-} "$BIN" publish app --dir "$W/repo" --json --yes >"$W/a.json"
mapfile -t A < <(stages "$W/a.json")
NA=$(t nix copy --to "$NIXTO" "$TOP1")

echo "b. next version, dependencies in the store..."
manifest 2
g commit -q -am v2 && g push -q
TOP2=$(nix_top 2)
${WRAP_B:-} "$BIN" publish app --dir "$W/repo" --json --yes >"$W/b.json"
mapfile -t B < <(stages "$W/b.json")
NB=$(t nix copy --to "$NIXTO" "$TOP2")

echo "c. install into an empty store root..."
mkdir -p "$W/consumer/.flox/env"
echo 'version = 1' >"$W/consumer/.flox/env/manifest.toml"
CI=$(PUBDECK_NIX=0 PUBDECK_DATA_DIR=$W/consumer-data t "$BIN" install bench/app@2.0.0 --dir "$W/consumer")
PTOP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["store_path"])' "$W/b.json")
NC=$(NIX_CONFIG="$NIX_CONFIG"$'\n'"trusted-public-keys = $(cat "$W/sk.pub")" \
  t nix copy --from "file://$W/cache-pubdeck" --to "$W/nixroot-c" "$PTOP")
COUNT=$(nix path-info --store "$W/nixroot-c" -r "$PTOP" | wc -l)

python3 - "$N" "$KIB" "$COUNT" "${A[0]}" "${A[1]}" "$NA" "${B[0]}" "${B[1]}" "$NB" "$CI" "$NC" <<'PY'
import sys
n, kib, count = sys.argv[1:4]
a, a_st, na, b, b_st, nb, ci, nc = sys.argv[4:]
a, na, b, nb, ci, nc = map(float, (a, na, b, nb, ci, nc))
print(f"\n{n} dependencies of {kib} KiB ({count} paths installed by nix copy --from)")
print(f"{'case':44s} {'nix':>8s} {'pubdeck':>8s} {'ratio':>7s}  goal")
print(f"{'a. first publish (post-build stages)':44s} {na:7.3f}s {a:7.3f}s {a/na:6.2f}x  <= 1.0   ({a_st})")
print(f"{'b. next version, deps present':44s} {nb:7.3f}s {b:7.3f}s {b/nb:6.2f}x  <= 1.5   ({b_st})")
print(f"{'c. install into an empty store root (wall)':44s} {nc:7.3f}s {ci:7.3f}s {ci/nc:6.2f}x  <= 1.0")
PY
