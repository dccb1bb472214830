#!/usr/bin/env bash
# A throw-away PostgreSQL for the catalog test suite, on 127.0.0.1 only.
#
#   scripts/pg-test-server.sh start   # prints the URL to export as PUBDECK_TEST_PG_URL
#   scripts/pg-test-server.sh url
#   scripts/pg-test-server.sh stop    # stops it and deletes its data
#
# Idempotent. Installs Debian's postgresql package when missing (as root). Runs the server as
# the `postgres` user (or the current user when not root), with trust authentication on
# loopback only. Then:
#   PUBDECK_TEST_PG_URL=$(scripts/pg-test-server.sh start) cargo test --test it catalog_service::
set -euo pipefail

PORT="${PUBDECK_PG_PORT:-55432}"
DATA="${PUBDECK_PG_DIR:-/tmp/pubdeck-pg-test}"
URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing postgresql…" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        BIN="$(find_bin)"
    else
        echo "error: PostgreSQL is not installed; run: apt-get install -y postgresql" >&2
        exit 1
    fi
fi

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

case "${1:-start}" in
start)
    if ! running; then
        if [ ! -f "$DATA/PG_VERSION" ]; then
            rm -rf "$DATA"
            mkdir -p "$DATA"
            [ "$(id -u)" = 0 ] && chown postgres: "$DATA"
            as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
        fi
        as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off -c max_connections=200" \
            start >/dev/null
    fi
    echo "$URL"
    ;;
url)
    echo "$URL"
    ;;
stop)
    if running; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    rm -rf "$DATA"
    ;;
*)
    echo "usage: $0 start|url|stop" >&2
    exit 2
    ;;
esac
