#!/usr/bin/env bash
# test.sh - runs every test: installs what is missing (scripts/setup.sh),
# builds the release and the ASan+UBSan configurations, and runs ctest on
# both (the sanitizer build skips tests labelled "slow": full-size model
# shapes that take minutes there). Prints ctest's summary for each and exits
# non-zero if anything failed. A failed test is run once more before it
# counts as failed (--repeat until-pass:2), because a shared 2-core machine
# can starve a test's deadline; a second failure is real, and a test that
# passed only on the retry is named as FLAKY in the last lines.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh || exit 1
bash scripts/build.sh normal asan || exit 1

# run_ctest DIR [ctest args]: ctest with one retry of a failed test; a test
# that needed the retry is named at the end (ctest prints a retry's result
# without the "N/M" prefix), so a flake is reported even when it passes.
retried=()
run_ctest() {
  local dir=$1 log rc
  shift
  log=$(mktemp)
  (cd "$dir" && ctest --output-on-failure --timeout 1500 --repeat until-pass:2 "$@") | tee "$log"
  rc=${PIPESTATUS[0]}
  while read -r name; do retried+=("$dir: $name"); done < <(sed -nE 's/^ +Test +#[0-9]+: ([^ ]+) .*/\1/p' "$log" | sort -u)
  rm -f "$log"
  return "$rc"
}

status=0
echo "== tests: release build =="
run_ctest build || status=1
echo "== tests: ASan + UBSan build =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan -LE slow || status=1
for t in "${retried[@]}"; do echo "test.sh: FLAKY: $t failed once and was run again"; done
if [ $status -eq 0 ]; then echo "test.sh: all tests passed"; else echo "test.sh: FAILURES (see above)"; fi
exit $status
