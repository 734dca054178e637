#!/usr/bin/env bash
# Configure (once) and build dpsec into build/ (or $DPSEC_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DPSEC_BUILD:-build}
[ -f "$dir/build.ninja" ] || meson setup "$dir" --buildtype=debugoptimized "$@"
ninja -C "$dir"
