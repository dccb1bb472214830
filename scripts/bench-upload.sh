#!/usr/bin/env bash
# Upload benchmark: `pubdeck store put` vs `aws s3 cp` on the same 1 GiB file (in /dev/shm)
# to the same local s3s-fs server, in one run. Prints the wall-time ratio pubdeck/aws
# (issue 27's goal: <= 0.5) and pubdeck's peak RSS (<= 150 MiB).
#
# Env: SIZE_MIB (1024), S3_PORT (random), PUBDECK (target/release/pubdeck),
#      S3_SERVER_SH (../shared/tools/s3-server.sh), PART_SIZE / CONCURRENCY /
#      MULTIPART_THRESHOLD (pubdeck defaults; e.g. MULTIPART_THRESHOLD=2GiB sends one
#      streamed PUT), STRICT=1 to exit non-zero when a target is missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
PUBDECK=${PUBDECK:-$ROOT/target/release/pubdeck}
S3_SERVER_SH=${S3_SERVER_SH:-$ROOT/../shared/tools/s3-server.sh}
export S3_PORT=${S3_PORT:-$((20000 + RANDOM % 20000))}
WORK=$(mktemp -d /dev/shm/pubdeck-bench.XXXXXX)
export S3_DIR=$WORK/s3
BUCKET=bench
FILE=$WORK/payload.bin

# shellcheck source=/dev/null
. "$S3_SERVER_SH"
cleanup() { s3_down || true; rm -rf "$WORK"; }
trap cleanup EXIT

if [[ ! -x $PUBDECK ]]; then
    (cd "$ROOT" && cargo build --release --quiet --bin pubdeck)
fi
if ! command -v aws >/dev/null 2>&1; then
    python3 -m pip install --quiet awscli
fi

s3_up
mkdir -p "$S3_DIR/data/$BUCKET"          # an s3s-fs bucket is a directory
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_DEFAULT_REGION=$S3_REGION AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

# pubdeck sends environment credentials only to endpoints the user trusts.
export XDG_CONFIG_HOME=$WORK/xdg
mkdir -p "$XDG_CONFIG_HOME/pubdeck"
printf 'trusted-endpoints = ["%s"]\n' "$S3_ENDPOINT" >"$XDG_CONFIG_HOME/pubdeck/config.toml"

echo "bench: writing ${SIZE_MIB} MiB of random data to $FILE"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$FILE"
SIZE=$(stat -c %s "$FILE")

now() { date +%s.%N; }

extra=()
[[ -n ${PART_SIZE:-} ]] && extra+=(--part-size "$PART_SIZE")
[[ -n ${CONCURRENCY:-} ]] && extra+=(--concurrency "$CONCURRENCY")
[[ -n ${MULTIPART_THRESHOLD:-} ]] && extra+=(--multipart-threshold "$MULTIPART_THRESHOLD")

echo "bench: pubdeck store put"
t0=$(now)
/usr/bin/time -v -o "$WORK/pubdeck.time" "$PUBDECK" store put "$FILE" nar/pubdeck.bin \
    --store "s3://$BUCKET?endpoint=$S3_ENDPOINT&region=$S3_REGION" \
    --journal-dir "$WORK/journal" "${extra[@]}" 2>"$WORK/pubdeck.log" || { cat "$WORK/pubdeck.log" >&2; exit 1; }
t1=$(now)
tail -n 1 "$WORK/pubdeck.log"

echo "bench: aws s3 cp"
t2=$(now)
aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$FILE" "s3://$BUCKET/nar/aws.bin"
t3=$(now)

for key in pubdeck.bin aws.bin; do
    got=$(stat -c %s "$S3_DIR/data/$BUCKET/nar/$key")
    [[ $got == "$SIZE" ]] || { echo "bench: $key has $got bytes, expected $SIZE" >&2; exit 1; }
done
cmp -s "$FILE" "$S3_DIR/data/$BUCKET/nar/pubdeck.bin" || { echo "bench: pubdeck's object differs" >&2; exit 1; }

rss_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/pubdeck.time")
awk -v p0="$t0" -v p1="$t1" -v a0="$t2" -v a1="$t3" -v rss="$rss_kib" -v mib="$SIZE_MIB" \
    -v strict="${STRICT:-0}" 'BEGIN {
    p = p1 - p0; a = a1 - a0; r = p / a; m = rss / 1024
    printf "pubdeck: %.2f s (%.0f MiB/s)   aws s3 cp: %.2f s (%.0f MiB/s)\n", p, mib / p, a, mib / a
    printf "ratio pubdeck/aws: %.2f (target <= 0.5)\n", r
    printf "pubdeck peak RSS: %.1f MiB (target <= 150)\n", m
    ok = (r <= 0.5 && m <= 150)
    print (ok ? "bench: targets met" : "bench: target missed")
    exit (strict == 1 && !ok) ? 1 : 0
}'
