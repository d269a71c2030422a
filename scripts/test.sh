#!/usr/bin/env bash
# test.sh - runs every test: installs what is missing (scripts/setup.sh),
# builds the release and the ASan+UBSan configurations, and runs ctest on
# both (the sanitizer build skips tests labelled "slow": full-size model
# shapes that take minutes there). Prints ctest's summary for each and exits
# non-zero if anything failed. A failed test is run once more before it
# counts as failed (--repeat until-pass:2): the browser tests' streaming checks
# are timing-sensitive on a loaded 2-core machine; a second failure is real.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh || exit 1
bash scripts/build.sh normal asan || exit 1

status=0
echo "== tests: release build =="
(cd build && ctest --output-on-failure --timeout 1500 --repeat until-pass:2) || status=1
echo "== tests: ASan + UBSan build =="
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure --timeout 1500 --repeat until-pass:2 -LE slow) || status=1
if [ $status -eq 0 ]; then echo "test.sh: all tests passed"; else echo "test.sh: FAILURES (see above)"; fi
exit $status
