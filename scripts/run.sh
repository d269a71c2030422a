#!/usr/bin/env bash
# run.sh [parallax arguments] - the main job: installs what is missing, builds
# if needed, then runs `parallax` with the given arguments. With none, it
# generates text with the real tiny model in ../shared/models/aidreams-260k.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh" >/dev/null
bash "$root/scripts/build.sh" normal >/dev/null
if [ $# -eq 0 ]; then
  set -- generate -m "$root/../shared/models/aidreams-260k" -p "I dream of" -n 64
fi
exec "$root/build/parallax" "$@"
