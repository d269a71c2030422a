#!/usr/bin/env bash
# run.sh [parallax arguments] - the main job: installs what is missing, builds
# if needed, then runs `parallax` with the given arguments. With none, it
# serves the real tiny model in ../shared/models/aidreams-260k over the
# OpenAI-compatible API on http://127.0.0.1:3000 (Ctrl-C stops it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh" >/dev/null
bash "$root/scripts/build.sh" normal >/dev/null
if [ $# -eq 0 ]; then
  set -- serve -m "$root/../shared/models/aidreams-260k" --host 127.0.0.1 --port 3000
fi
exec "$root/build/parallax" "$@"
