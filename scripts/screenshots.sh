#!/usr/bin/env bash
# Regenerates the README screenshots (screenshots/*.svg) from the real views on the demo world.
set -euo pipefail
cd "$(dirname "$0")/.."
PUBDECK_UPDATE_SCREENSHOTS=1 cargo test -q --test it tui_screenshots::
