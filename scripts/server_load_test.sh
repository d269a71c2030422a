#!/usr/bin/env bash
# server_load_test.sh [normal|asan] [SECONDS] [MODEL_DIR] - the full load test of
# `parallax serve` (docs/server.md): 64 concurrent streaming clients with random
# prompt/output lengths and random disconnects for SECONDS (default 60) against
# a server it starts on MODEL_DIR (default ../shared/models/aidreams-260k).
# Passes with zero 5xx, [DONE] at the end of every stream the client did not
# cut, all KV blocks free afterwards and a clean server exit (with asan: no
# ASan/UBSan/LSan report). ctest runs a 10 s version (server_load_short).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-normal}
secs=${2:-60}
model=${3:-$root/../shared/models/aidreams-260k}
bash "$root/scripts/build.sh" "$kind"
dir=$root/build
if [ "$kind" = asan ]; then
  dir=$root/build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
exec node "$root/tests/server_load.mjs" --parallax "$dir/parallax" --model "$model" --duration "$secs" --clients 64
