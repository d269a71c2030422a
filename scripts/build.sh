#!/usr/bin/env bash
# build.sh [normal|asan]... - configures and builds the project (release build
# in build/, ASan+UBSan build in build-asan/). Incremental: cheap when nothing changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
for kind in "${@:-normal}"; do
  case "$kind" in
    normal) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
    asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_SANITIZE=ON) ;;
    *) echo "build.sh: unknown build kind '$kind' (normal, asan)" >&2; exit 2 ;;
  esac
  cmake -S "$root" -B "$root/$dir" "${flags[@]}" >/dev/null
  cmake --build "$root/$dir" -j "$jobs" -- --no-print-directory >/dev/null
  echo "build.sh: $dir/ is up to date"
done
