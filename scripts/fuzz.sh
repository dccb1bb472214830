#!/usr/bin/env bash
# Fuzz one of pubdeck's parsers on the stable toolchain with cargo-afl (AFL++).
#
#   scripts/fuzz.sh TARGET SECONDS      TARGET: nar | narinfo | manifest | catalog_json |
#                                               store_url | key_name
#   scripts/fuzz.sh all SECONDS         each target in turn
#
# The targets live in tests/fuzz (a package of its own); their properties are in
# tests/fuzz/src/properties.rs, which the normal suite (tests/it/fuzz_regressions.rs) also runs.
# Seeds: tests/fuzz/seeds/TARGET plus the matching files of tests/vectors. Every crash or
# hang found is copied to tests/fuzz/crashers/TARGET/<sha256 prefix>, where the normal suite
# replays it from then on. Prints executions per second and what was found; exits 1 if
# anything was.
#
# Needs cargo-afl (installed here with `cargo install cargo-afl` when missing; it builds its
# own AFL++ on first use). Output and the instrumented build stay under target/fuzz.
set -euo pipefail

usage() { echo "usage: scripts/fuzz.sh nar|narinfo|manifest|catalog_json|store_url|key_name|all SECONDS" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
TARGET=$1 SECONDS_=$2
[[ $SECONDS_ =~ ^[0-9]+$ ]] || usage
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=(nar narinfo manifest catalog_json store_url key_name)

if [[ $TARGET == all ]]; then
  status=0
  for t in "${TARGETS[@]}"; do "$0" "$t" "$SECONDS_" || status=1; done
  exit $status
fi
[[ " ${TARGETS[*]} " == *" $TARGET "* ]] || usage

if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-afl" >&2
  cargo install --locked cargo-afl
fi
# cargo-afl builds its AFL++ once (the Debian afl++ package is not needed).
cargo afl config --build >/dev/null 2>&1 || true

export CARGO_TARGET_DIR=$ROOT/target/fuzz
cargo afl build --release --manifest-path "$ROOT/tests/fuzz/Cargo.toml" --bin "$TARGET" >&2

WORK=$ROOT/target/fuzz/runs/$TARGET
rm -rf "$WORK"
mkdir -p "$WORK/in"
seed() { for f in "$@"; do [[ -f $f ]] && cp "$f" "$WORK/in/$(sha256sum "$f" | cut -c1-16)"; done; return 0; }
seed "$ROOT"/tests/fuzz/seeds/"$TARGET"/*
case $TARGET in
  narinfo) seed $(find "$ROOT/tests/vectors" -name '*.narinfo') ;;
  manifest) seed "$ROOT"/tests/vectors/flox-manifests/*.toml ;;
  nar) seed "$ROOT"/tests/vectors/selfref/*.nar ;;
esac

# The NAR target unpacks each accepted input: keep that on tmpfs.
SCRATCH=$(mktemp -d /dev/shm/pubdeck-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

echo "fuzz: $TARGET for ${SECONDS_}s ($(ls "$WORK/in" | wc -l) seeds)" >&2
TMPDIR=$SCRATCH AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  AFL_FORKSRV_INIT_TMOUT=20000 \
  nice cargo afl fuzz -V "$SECONDS_" -i "$WORK/in" -o "$WORK/out" \
  "$CARGO_TARGET_DIR/release/$TARGET" >"$WORK/afl.log" 2>&1 || {
    echo "fuzz: afl-fuzz failed; see $WORK/afl.log" >&2
    tail -20 "$WORK/afl.log" >&2
    exit 1
  }

STATS=$WORK/out/default/fuzzer_stats
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$STATS"; }
found=0
for kind in crashes hangs; do
  for f in "$WORK/out/default/$kind"/id:*; do
    [[ -f $f ]] || continue
    mkdir -p "$ROOT/tests/fuzz/crashers/$TARGET"
    cp "$f" "$ROOT/tests/fuzz/crashers/$TARGET/$kind-$(sha256sum "$f" | cut -c1-16)"
    found=$((found + 1))
  done
done
printf 'fuzz %-12s %6ss  execs %10s  %8s execs/s  corpus %5s  edges %s  crashes %s  hangs %s\n' \
  "$TARGET" "$(stat run_time)" "$(stat execs_done)" "$(stat execs_per_sec)" \
  "$(stat corpus_count)" "$(stat edges_found)" "$(stat saved_crashes)" "$(stat saved_hangs)"
if ((found > 0)); then
  echo "fuzz: $found new input(s) in tests/fuzz/crashers/$TARGET; cargo test --test it fuzz_regressions:: replays them" >&2
  exit 1
fi
