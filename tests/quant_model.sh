#!/usr/bin/env bash
# quant_model.sh MAKE_RANDOM_MODEL TEST_QUANT_MODEL DIR - writes the random
# Qwen3-0.6B-shaped model into DIR/qwen3-0.6b once (again when the generator
# changes), then runs the quantization test on it with 2 threads.
# PX_DROP_MODELS=1 removes the model afterwards.
set -euo pipefail
gen=$1 test=$2 dir=$3
model=$dir/qwen3-0.6b
stamp=$dir/qwen3-0.6b.stamp
want=$(sha256sum "$gen" | cut -d' ' -f1)
if [ ! -f "$model/config.json" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$model" "$stamp"
  mkdir -p "$dir"
  "$gen" --shape qwen3-0.6b --hf-out "$model" --quiet
  echo "$want" > "$stamp"
fi
rc=0
"$test" "$model" 2 || rc=$?
[ "${PX_DROP_MODELS:-}" = 1 ] && rm -rf "$model" "$stamp" # see .ci/run
exit $rc
