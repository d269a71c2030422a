#!/bin/sh
# tokenizer_cli.sh - checks `parallax tokenize` and `parallax template` from
# the outside: correct output for good input, and for bad input (missing
# flags or files, malformed JSON, bad ids, invalid UTF-8) one clear error
# line naming the flag or file and a non-zero exit code, never a crash.
#   tokenizer_cli.sh PARALLAX AIDREAMS_DIR QWEN3_DIR      (exit 77: skipped)
px=$1 aid=$2 qwen=$3
[ -x "$px" ] && [ -f "$aid/tokenizer.json" ] || { echo "skipped: need $px and $aid"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

# expect CODE PATTERN -- command...: exit code CODE, one stderr line matching PATTERN (or stdout = PATTERN for code 0)
expect() {
  code=$1 pattern=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$code" = 0 ]; then
    ok=$([ $rc = 0 ] && [ "$(cat "$tmp/out")" = "$pattern" ] && echo yes)
  else
    ok=$([ $rc = "$code" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$pattern" "$tmp/err" && echo yes)
  fi
  if [ "$ok" = yes ]; then passes=$((passes + 1)); else
    fails=$((fails + 1))
    echo "FAIL: $* -> rc $rc (want $code), stdout: $(head -c 200 "$tmp/out"), stderr: $(head -c 300 "$tmp/err")"
  fi
}

expect 0 "1,303,281,269,435,447,275" -- "$px" tokenize -m "$aid" "I dream of"
expect 0 "303,281,269,435,447,275" -- "$px" tokenize -m "$aid" --no-special "I dream of"
expect 0 "I dream of" -- "$px" tokenize -m "$aid" --decode 1,303,281,269,435,447,275 --skip-special
printf 'I dream of' >"$tmp/text.txt"
expect 0 "1,303,281,269,435,447,275" -- "$px" tokenize -m "$aid" --file "$tmp/text.txt"
expect 2 "-m MODEL_DIR is required" -- "$px" tokenize "text"
expect 1 "/nonexistent.*tokenizer.json" -- "$px" tokenize -m /nonexistent "text"
expect 2 "unknown flag '--bogus'" -- "$px" tokenize -m "$aid" --bogus "text"
expect 2 "--decode" -- "$px" tokenize -m "$aid" --decode 1,x,3
expect 2 "outside the vocabulary" -- "$px" tokenize -m "$aid" --decode 99999
expect 2 "--file" -- "$px" tokenize -m "$aid" --file "$tmp/missing.txt"
printf 'bad \377 byte' >"$tmp/bad.txt"
expect 1 "not valid UTF-8" -- "$px" tokenize -m "$aid" --file "$tmp/bad.txt"
mkdir "$tmp/broken" && printf '{"model": {"type": "BPE",\n "vocab": {' >"$tmp/broken/tokenizer.json"
expect 1 "broken/tokenizer.json: malformed JSON near line 2" -- "$px" tokenize -m "$tmp/broken" "x"

printf '[{"role": "user", "content": "Hi"}]' >"$tmp/msgs.json"
printf '[{"role": "user", ' >"$tmp/bad.json"
expect 1 "no chat template" -- "$px" template -m "$aid" --messages "$tmp/msgs.json"
expect 2 "--messages FILE.json is required" -- "$px" template -m "$aid"
expect 2 "--messages.*missing.json" -- "$px" template -m "$aid" --messages "$tmp/missing.json"
expect 2 "--messages.*not valid JSON" -- "$px" template -m "$aid" --messages "$tmp/bad.json"
expect 2 "unknown argument '--nope'" -- "$px" template -m "$aid" --nope
if [ -f "$qwen/tokenizer.json" ]; then
  want=$(printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>')
  expect 0 "$want" -- "$px" template -m "$qwen" --messages "$tmp/msgs.json" --kwargs '{"enable_thinking": false}'
  expect 0 "$(printf '<|im_start|>user\nHi<|im_end|>')" -- "$px" template -m "$qwen" --messages "$tmp/msgs.json" --no-generation-prompt
  expect 2 "--kwargs" -- "$px" template -m "$qwen" --messages "$tmp/msgs.json" --kwargs '{bad'
  printf '{"messages": [{"role": "assistant", "content": "x", "tool_calls": [1]}]}' >"$tmp/weird.json"
  expect 1 "chat template line" -- "$px" template -m "$qwen" --messages "$tmp/weird.json"
fi
echo "$passes passed, $fails failed"
[ $fails = 0 ]
